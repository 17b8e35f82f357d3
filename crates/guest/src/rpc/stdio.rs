//! go-plugin's stdio stream (`plugin.GRPCStdio/StreamStdio`), plugin side:
//! once a host asks for it, what the plugin writes to stdout goes to that
//! host over the stream instead of down the pipe.
//!
//! go-plugin 1.4 and later hosts ask at once, and read a plugin's stdout
//! only this way. stderr stays where it was: it is the plugin's log, which
//! every host reads from the pipe, and where a crashing process's last words
//! go. An Outlet host reads the pipes and never asks.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use outlet_rpc::wire::StdioData;
use prost::Message;
use tokio::sync::{mpsc, watch};

/// Chunks of stdout waiting for the host; beyond that, they are dropped
/// rather than stall the plugin behind a host that does not read.
const BACKLOG: usize = 1024;

/// Whether a host is reading the stream: there is one stdout to give.
static STREAMING: AtomicBool = AtomicBool::new(false);

/// The stream's messages, from now until the plugin stops or the host goes.
pub(super) fn stream(
    plugin: &str,
    stopping: watch::Receiver<bool>,
) -> Result<impl futures_util::Stream<Item = Result<Bytes, tonic::Status>> + use<>, tonic::Status> {
    if STREAMING.swap(true, Ordering::AcqRel) {
        return Err(tonic::Status::already_exists(format!(
            "plugin `{plugin}`: another host reads its stdio stream"
        )));
    }
    let failed = |e: std::io::Error| {
        STREAMING.store(false, Ordering::Release);
        tonic::Status::internal(format!(
            "plugin `{plugin}`: cannot send its stdout over the stream: {e}"
        ))
    };
    let (pipe, writer) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| failed(e.into()))?;
    let original = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 0)
        .map_err(|e| failed(e.into()))?;
    let (chunks, received) = mpsc::channel(BACKLOG);
    // The reader first: should stdout not be redirected after all, it
    // reads the end of the pipe at once and gives everything back.
    std::thread::Builder::new()
        .name("outlet-rpc-stdio".into())
        .spawn(move || forward(pipe, original, &chunks))
        .map_err(failed)?;
    {
        use std::io::Write;
        // What was written before goes where it was meant to.
        let _ = std::io::stdout().lock().flush();
    }
    rustix::stdio::dup2_stdout(&writer).map_err(|e| {
        tonic::Status::internal(format!(
            "plugin `{plugin}`: cannot send its stdout over the stream: {e}"
        ))
    })?;
    drop(writer);
    let messages = futures_util::stream::unfold(received, |mut received| async move {
        let data = received.recv().await?;
        let message = StdioData { channel: 1, data };
        Some((Ok(Bytes::from(message.encode_to_vec())), received))
    });
    let mut stopping = stopping;
    Ok(messages.take_until(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    }))
}

/// Passes what the pipe yields to the stream until the host stops reading
/// (noticed at the next write), then gives stdout back its old file.
fn forward(pipe: OwnedFd, original: OwnedFd, chunks: &mpsc::Sender<Vec<u8>>) {
    let mut pipe = std::fs::File::from(pipe);
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match pipe.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        match chunks.try_send(buffer[..read].to_vec()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
    let _ = rustix::stdio::dup2_stdout(&original);
    STREAMING.store(false, Ordering::Release);
}

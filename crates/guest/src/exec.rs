//! The exec mechanism's guest side: one call per process.
//!
//! The host writes one `Call` frame to stdin; the plugin writes one `Reply`
//! frame to stdout and exits. A `Call` that opens a stream is followed by
//! its requests and answered by its responses, a `Piece` frame each, the
//! last one each way marked `end`. Stdout is kept for that frame: anything the
//! plugin's code prints goes to stderr, which the host turns into log events.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outlet_protocol::context::{self, CallContext, Cancel, TraceContext};
use outlet_protocol::core::{Call, Piece, Reply};
use outlet_protocol::prost::Message;
use outlet_protocol::{Messages, Status, frame};

use crate::Plugin;

/// The largest call the guest reads: far above any host's limit, so the
/// host's `limits.max_message_bytes` is what counts.
const MAX_CALL: usize = 1 << 30;

/// Serves one call from stdin and exits.
///
/// Exits with 0 when a reply was written, even if the reply is an error
/// status; with 1 when there was no call to read or no way to reply (a
/// message on stderr says which).
pub fn serve(plugin: &Plugin) -> ExitCode {
    match serve_one(plugin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("outlet-guest: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve_one(plugin: &Plugin) -> io::Result<()> {
    // Keep the real stdout for the reply; send everything else printed there
    // to stderr, so a stray `println!` cannot corrupt the frame.
    let mut out = File::from(rustix::io::dup(io::stdout().as_fd())?);
    rustix::stdio::dup2_stdout(io::stderr().as_fd())?;

    let call = frame::read(&mut io::stdin().lock(), MAX_CALL).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!(
                "reading a call from stdin: {error}; this program is an Outlet exec plugin \
                 and is started by an Outlet host, not by hand"
            ),
        )
    })?;
    let reply = match Call::decode(&call[..]) {
        Ok(call) if call.stream => return stream(plugin, call, &mut out),
        Ok(call) => answer(plugin, call),
        Err(error) => Err(Status::invalid_argument(format!(
            "the call does not decode: {error}"
        ))),
    };
    let reply = match reply {
        Ok(body) => Reply { body, status: None },
        Err(status) => Reply {
            body: Vec::new(),
            status: Some((&status).into()),
        },
    };
    out.write_all(&frame::encode(&reply))?;
    out.flush()
}

fn answer(plugin: &Plugin, call: Call) -> Result<Vec<u8>, Status> {
    if !call.config.is_empty() {
        plugin.configure(&call.config.clone().into_iter().collect())?;
    }
    context::scope(call_context(&call), || {
        plugin.call(&call.method, &call.body)
    })
}

/// The context a call came with: its deadline, its trace, and SIGTERM as
/// its cancel.
fn call_context(call: &Call) -> CallContext {
    let deadline =
        (call.timeout_us > 0).then(|| Instant::now() + Duration::from_micros(call.timeout_us));
    let trace = TraceContext::new(&call.traceparent, &call.tracestate);
    CallContext::new(deadline, Some(Cancel::probe(terminated))).with_trace(trace)
}

/// Serves a stream: requests read from stdin as the plugin's code asks for
/// them, each response written to stdout as it is made, a `Piece` each;
/// the last response `Piece` ends the stream, with its status if it failed.
fn stream(plugin: &Plugin, call: Call, out: &mut File) -> io::Result<()> {
    // Responses and asks for requests go to stdout a whole frame at a time,
    // whichever thread the plugin's code makes them on.
    let out = Writer(Arc::new(Mutex::new(out.try_clone()?)));
    let asking = out.clone();
    let send = |piece: Piece| out.write(&piece);
    let configured = match call.config.is_empty() {
        true => Ok(()),
        false => plugin.configure(&call.config.clone().into_iter().collect()),
    };
    let ended = context::scope(call_context(&call), || -> io::Result<Option<Status>> {
        if let Err(status) = configured {
            return Ok(Some(status));
        }
        let requests = Messages::new(Requests(Some((io::stdin(), asking))));
        let responses = match plugin.open(&call.method, requests) {
            Ok(responses) => responses,
            Err(status) => return Ok(Some(status)),
        };
        for response in responses {
            match response {
                Ok(body) => send(Piece {
                    body,
                    ..Piece::default()
                })?,
                Err(status) => return Ok(Some(status)),
            }
        }
        Ok(None)
    })
    .or_else(|error| match error.kind() {
        // The host stopped reading: it has given up on the stream.
        io::ErrorKind::BrokenPipe => Err(error),
        _ => Ok(Some(Status::internal(error.to_string()))),
    })?;
    // A status says an error, whatever its code.
    let status = ended.map(|status| match status.code() {
        outlet_protocol::Code::Ok => Status::unknown(status.message()),
        _ => status,
    });
    send(Piece {
        end: true,
        status: status.as_ref().map(Into::into),
        ..Piece::default()
    })
}

/// A stream's requests, each asked for with a `want` on stdout (the
/// host pulls its caller's next request only then) and read from stdin.
struct Requests(Option<(io::Stdin, Writer)>);

/// stdout, shared by a stream's responses and its asks for requests.
#[derive(Clone)]
struct Writer(Arc<Mutex<File>>);

impl Writer {
    /// Writes one whole frame holding `piece`.
    fn write(&self, piece: &Piece) -> io::Result<()> {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(&frame::encode(piece))?;
        out.flush()
    }
}

impl Iterator for Requests {
    type Item = Result<Vec<u8>, Status>;

    fn next(&mut self) -> Option<Self::Item> {
        let (stdin, out) = self.0.as_mut()?;
        let want = Piece {
            want: true,
            ..Piece::default()
        };
        if let Err(error) = out.write(&want) {
            self.0 = None;
            return Some(Err(Status::cancelled(format!(
                "the host's stream ended: {error}"
            ))));
        }
        let piece = frame::read(&mut stdin.lock(), MAX_CALL)
            .map_err(|error| Status::cancelled(format!("the host's stream ended: {error}")))
            .and_then(|bytes| {
                Piece::decode(&bytes[..]).map_err(|error| {
                    Status::invalid_argument(format!("a request does not decode: {error}"))
                })
            });
        match piece {
            Ok(Piece {
                status: Some(status),
                ..
            }) => {
                self.0 = None;
                Some(Err(Status::from(status)))
            }
            Ok(Piece { end: true, .. }) => {
                self.0 = None;
                None
            }
            Ok(Piece { body, .. }) => Some(Ok(body)),
            Err(status) => {
                self.0 = None;
                Some(Err(status))
            }
        }
    }
}

/// Whether the host sent SIGTERM, which is how it cancels an exec call.
/// Until the plugin first asks, SIGTERM ends it as usual; from then on it
/// only sets the flag asked here, and the host sends SIGKILL if the plugin
/// is not gone shortly after.
fn terminated() -> bool {
    static TERMINATED: AtomicBool = AtomicBool::new(false);
    static WATCHING: Once = Once::new();
    WATCHING.call_once(|| {
        // SAFETY: the action runs in a signal handler, where it only stores
        // to an atomic, which is async-signal-safe.
        let watched = unsafe {
            signal_hook_registry::register(rustix::process::Signal::TERM.as_raw(), || {
                TERMINATED.store(true, Ordering::Relaxed);
            })
        };
        if let Err(error) = watched {
            eprintln!("outlet-guest: cannot watch for SIGTERM: {error}");
        }
    });
    TERMINATED.load(Ordering::Relaxed)
}

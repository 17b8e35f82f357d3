//! Outlet's frames: how an Outlet host and an Outlet plugin call each other
//! without gRPC, with length-prefixed frames (`outlet_protocol::frame`) on a
//! connection of its own to the plugin's socket, one call at a time per
//! connection.
//!
//! gRPC costs tens of microseconds per call in HTTP/2 framing, task wake-ups
//! and, on an idle machine, waking the sleeping side's CPU. Here each side
//! reads with a short spin before it blocks: a reply that comes within the
//! spin, or a next call that does, costs no sleep and no wake-up; a side
//! with nothing to do blocks in `poll` and costs no CPU.
//!
//! The plugin tells the two kinds of connection apart by their first byte:
//! a frame starts with `O` (`OUTL`), HTTP/2 with `P` (`PRI * HTTP/2.0`).
//! Both sides offer the path as the capability [`CAPABILITY`] in Hello; a
//! go-plugin peer never sees it.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use outlet_protocol::frame::{self, HEADER_LEN};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::SendFlags;
use tokio::io::Interest;

/// The capability both sides announce in Hello to use Outlet's frames.
pub const CAPABILITY: &str = outlet_protocol::capability::RPC_FRAMES;

/// How long the host spins for a reply before it blocks.
pub const HOST_SPIN: Duration = Duration::from_micros(200);
/// How long a host's call from async code spins for a reply before it
/// waits on the runtime: a bound on how long it keeps the runtime's thread.
pub const ASYNC_SPIN: Duration = Duration::from_micros(50);
/// How long the plugin spins for the next call before it blocks.
pub const PLUGIN_SPIN: Duration = Duration::from_micros(100);

/// One connection carrying Outlet's frames.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    /// Bytes read: `buffer[..filled]`; the first `consumed` of them are the
    /// frame `recv` returned last. Its length only grows to fit a frame, so
    /// it is zero-filled once, not on every read.
    buffer: Vec<u8>,
    filled: usize,
    consumed: usize,
    /// The frame being sent.
    out: Vec<u8>,
}

impl Connection {
    /// Wraps a connected stream; makes it non-blocking.
    ///
    /// # Errors
    /// When the stream cannot be made non-blocking.
    pub fn new(stream: UnixStream) -> io::Result<Connection> {
        stream.set_nonblocking(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::new(),
            filled: 0,
            consumed: 0,
            out: Vec::new(),
        })
    }

    /// Connects to the Unix socket at `path`, giving up at `deadline` (a
    /// plugin whose backlog is full makes `connect` wait).
    ///
    /// # Errors
    /// The socket's errors; `TimedOut` at the deadline.
    pub fn connect(path: &Path, deadline: Instant) -> io::Result<Connection> {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        let address = SocketAddrUnix::new(path)?;
        match rustix::net::connect(&socket, &address) {
            Ok(()) => {}
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INPROGRESS) => {
                let connection = Connection::new(UnixStream::from(socket))?;
                connection.wait(PollFlags::OUT, Some(deadline))?;
                if let Some(error) = connection.stream.take_error()? {
                    return Err(error);
                }
                return Ok(connection);
            }
            Err(e) => return Err(e.into()),
        }
        Connection::new(UnixStream::from(socket))
    }

    /// The socket, to ask the kernel about its peer.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.stream)
    }

    /// Sends one frame holding `payload`, giving up at `deadline`. A peer
    /// that has gone away is an error (`BrokenPipe`), never a SIGPIPE.
    ///
    /// # Errors
    /// The socket's errors; `TimedOut` at the deadline; `InvalidInput` for
    /// a payload of 4 GiB or more.
    pub fn send(&mut self, payload: &[u8], deadline: Option<Instant>) -> io::Result<()> {
        self.frame(payload)?;
        let mut sent = 0;
        while !self.try_send(&mut sent)? {
            self.wait(PollFlags::OUT, deadline)?;
        }
        self.sent();
        Ok(())
    }

    /// [`Connection::send`] from async code: waits for room on the
    /// socket without blocking the thread. A deadline is the caller's to
    /// keep (`tokio::time::timeout`).
    ///
    /// # Errors
    /// As [`Connection::send`], but for `TimedOut`.
    pub async fn send_async(&mut self, payload: &[u8]) -> io::Result<()> {
        self.frame(payload)?;
        let mut sent = 0;
        if !self.try_send(&mut sent)? {
            let ready = self.waiter()?;
            loop {
                ready.writable().await?;
                // A wait that finds no room clears the readiness it saw.
                let tried =
                    ready.try_io(Interest::WRITABLE, || match self.try_send(&mut sent)? {
                        true => Ok(()),
                        false => Err(io::ErrorKind::WouldBlock.into()),
                    });
                match tried {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.sent();
        Ok(())
    }

    /// The frame holding `payload`, into `out`.
    fn frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a frame over 4 GiB"))?;
        self.out.clear();
        self.out.extend_from_slice(&frame::MAGIC);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(payload);
        Ok(())
    }

    /// Sends what the socket takes of `out` past `sent`; whether all of it
    /// has gone.
    fn try_send(&mut self, sent: &mut usize) -> io::Result<bool> {
        while *sent < self.out.len() {
            match rustix::net::send(&self.stream, &self.out[*sent..], SendFlags::NOSIGNAL) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => *sent += n,
                Err(rustix::io::Errno::AGAIN) => return Ok(false),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// A frame is sent: a large buffer goes.
    fn sent(&mut self) {
        if self.out.capacity() > 1 << 20 {
            self.out = Vec::new();
        }
    }

    /// Receives one frame's payload of at most `limit` bytes, spinning for
    /// `spin` before blocking, until `deadline`.
    ///
    /// # Errors
    /// `TimedOut` at the deadline; `UnexpectedEof` when the peer closed;
    /// `InvalidData` holding a [`frame::FrameError`] for a frame that is not
    /// Outlet's or is over `limit`.
    pub fn recv(
        &mut self,
        limit: usize,
        spin: Duration,
        deadline: Option<Instant>,
    ) -> io::Result<&[u8]> {
        self.next_frame();
        let spin_until = Instant::now() + spin;
        loop {
            if let Some(end) = self.try_recv(limit)? {
                return Ok(&self.buffer[HEADER_LEN..end]);
            }
            if Instant::now() < spin_until {
                std::hint::spin_loop();
            } else {
                self.wait(PollFlags::IN, deadline)?;
            }
        }
    }

    /// [`Connection::recv`] from async code: spins for `spin`, then waits
    /// for the socket without blocking the thread. A deadline is the
    /// caller's to keep (`tokio::time::timeout`).
    ///
    /// # Errors
    /// As [`Connection::recv`], but for `TimedOut`.
    pub async fn recv_async(&mut self, limit: usize, spin: Duration) -> io::Result<&[u8]> {
        self.next_frame();
        let spin_until = Instant::now() + spin;
        let end = loop {
            if let Some(end) = self.try_recv(limit)? {
                break end;
            }
            if Instant::now() >= spin_until {
                let ready = self.waiter()?;
                let end = loop {
                    ready.readable().await?;
                    // A wait that finds no frame clears the readiness it saw.
                    let tried = ready.try_io(Interest::READABLE, || {
                        self.try_recv(limit)?
                            .ok_or_else(|| io::ErrorKind::WouldBlock.into())
                    });
                    match tried {
                        Ok(end) => break end,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                };
                return Ok(&self.buffer[HEADER_LEN..end]);
            }
            std::hint::spin_loop();
        };
        Ok(&self.buffer[HEADER_LEN..end])
    }

    /// What an async wait waits on: the socket, registered with the
    /// runtime for the length of one wait (a descriptor of its own, so that
    /// the connection outlives the runtime). Made only when a spin did not
    /// find the frame: a call answered within it costs no registration.
    fn waiter(&self) -> io::Result<tokio::net::UnixStream> {
        tokio::net::UnixStream::from_std(self.stream.try_clone()?)
    }

    /// Drops the frame returned last: the bytes read past it move to the
    /// front.
    fn next_frame(&mut self) {
        self.buffer.copy_within(self.consumed..self.filled, 0);
        self.filled -= self.consumed;
        self.consumed = 0;
        if self.filled == 0 && self.buffer.len() > 1 << 20 {
            self.buffer = Vec::new();
        }
    }

    /// Reads what has arrived, without waiting; once a whole frame has, the
    /// end of its payload in `buffer`.
    fn try_recv(&mut self, limit: usize) -> io::Result<Option<usize>> {
        let mut want = HEADER_LEN;
        loop {
            if self.filled >= HEADER_LEN {
                let header: [u8; HEADER_LEN] = self.buffer[..HEADER_LEN]
                    .try_into()
                    .expect("the header's length");
                let len = frame::parse_header(&header, limit)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                want = HEADER_LEN + len;
                if self.filled >= want {
                    self.consumed = want;
                    return Ok(Some(want));
                }
            }
            if self.buffer.len() < want.max(4096) {
                self.buffer.resize(want.max(4096), 0);
            }
            match self.stream.read(&mut self.buffer[self.filled..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Blocks until the socket is ready for `flags`, or the deadline.
    fn wait(&self, flags: PollFlags, deadline: Option<Instant>) -> io::Result<()> {
        let timeout = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Some(Timespec::try_from(left).unwrap_or(Timespec {
                    tv_sec: i64::MAX,
                    tv_nsec: 0,
                }))
            }
            None => None,
        };
        let mut fds = [PollFd::new(&self.stream, flags)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_announcing_4_gib_is_refused_before_the_buffer_grows() {
        use std::io::Write;
        let (mut peer, ours) = UnixStream::pair().unwrap();
        let mut ours = Connection::new(ours).unwrap();
        peer.write_all(b"OUTL\xff\xff\xff\xff").unwrap();
        peer.write_all(&[0; 4096]).unwrap();
        let error = ours.recv(64 << 20, Duration::ZERO, None).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("4294967295 bytes"), "{error}");
        // Nothing was sized by the length: the buffer is the first read's.
        assert!(ours.buffer.len() <= 8192, "{} bytes", ours.buffer.len());
    }

    #[test]
    fn frames_cross_a_socket_pair_and_time_out() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a, mut b) = (Connection::new(a).unwrap(), Connection::new(b).unwrap());
        let big = vec![7u8; 1 << 20];
        let sender = std::thread::spawn(move || {
            a.send(b"hello", None).unwrap();
            a.send(&big, None).unwrap();
            a
        });
        assert!(b.recv(2 << 20, PLUGIN_SPIN, None).unwrap() == b"hello");
        assert!(b.recv(2 << 20, PLUGIN_SPIN, None).unwrap() == vec![7u8; 1 << 20]);
        let mut a = sender.join().unwrap();

        let started = Instant::now();
        let deadline = Some(started + Duration::from_millis(50));
        let error = b.recv(1024, PLUGIN_SPIN, deadline).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(50));

        a.send(&[0; 2048], None).unwrap();
        let error = b.recv(1024, PLUGIN_SPIN, None).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        drop(a);
        let error = b.recv(1024, PLUGIN_SPIN, None).unwrap_err();
        assert!(matches!(
            error.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
        ));
    }

    #[test]
    fn async_frames_wait_on_the_runtime_past_the_spin_and_for_room() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a, mut b) = (Connection::new(a).unwrap(), Connection::new(b).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Answered well after the spin: the wait is the runtime's.
        let peer = std::thread::spawn(move || {
            let got = b.recv(4 << 20, PLUGIN_SPIN, None).unwrap().len();
            std::thread::sleep(Duration::from_millis(20));
            b.send(b"late", None).unwrap();
            (b, got)
        });
        // 2 MiB: more than the socket holds, so the send waits for room.
        let big = vec![1u8; 2 << 20];
        let reply = runtime.block_on(async {
            a.send_async(&big).await.unwrap();
            a.recv_async(1024, ASYNC_SPIN).await.unwrap().to_vec()
        });
        assert_eq!(reply, b"late");
        let (b, got) = peer.join().unwrap();
        assert_eq!(got, 2 << 20);
        drop(b);
        let error = runtime
            .block_on(a.recv_async(1024, ASYNC_SPIN))
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn connects_by_path_within_a_deadline() {
        let path = std::env::temp_dir().join(format!("outlet-frames-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut a = Connection::connect(&path, deadline).unwrap();
        let mut b = Connection::new(listener.accept().unwrap().0).unwrap();
        a.send(b"over a path", Some(deadline)).unwrap();
        assert!(b.recv(1024, PLUGIN_SPIN, Some(deadline)).unwrap() == b"over a path");
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        let error = Connection::connect(&path, deadline).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}

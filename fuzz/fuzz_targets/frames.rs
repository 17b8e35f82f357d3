//! Outlet's frames as a peer sends them: the first four bytes of the input
//! are the reader's limit, the rest what arrives, read by the rpc
//! mechanism's connection (over a real socket pair) and by the blocking
//! reader exec and the guest use. Both must take it apart exactly as the
//! format says: each whole frame within the limit, then the error the first
//! bad header or the cut end makes; never more memory than a frame.
#![no_main]

use std::io::{self, Cursor, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use outlet_fuzz as _;
use outlet_protocol::frame::{self, FrameError, HEADER_LEN, MAGIC};
use outlet_rpc::frames::Connection;

/// What the format says a reader finds next in `bytes`.
#[derive(Debug, PartialEq)]
enum Next<'a> {
    Frame(&'a [u8]),
    BadMagic,
    TooLarge,
    Eof,
}

fn model(bytes: &[u8], limit: usize) -> (Next<'_>, usize) {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return (Next::Eof, 0);
    };
    if header[..4] != MAGIC {
        return (Next::BadMagic, 0);
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > limit {
        return (Next::TooLarge, 0);
    }
    match bytes.get(HEADER_LEN..HEADER_LEN + len) {
        Some(payload) => (Next::Frame(payload), HEADER_LEN + len),
        None => (Next::Eof, 0),
    }
}

fn kind(error: &io::Error) -> Next<'static> {
    match error.kind() {
        ErrorKind::UnexpectedEof => Next::Eof,
        ErrorKind::InvalidData => match error.get_ref().and_then(|e| e.downcast_ref()) {
            Some(FrameError::BadMagic { .. }) => Next::BadMagic,
            Some(FrameError::TooLarge { .. }) => Next::TooLarge,
            other => panic!("InvalidData without a FrameError: {other:?}"),
        },
        other => panic!("unexpected error kind {other:?}: {error}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((limit, bytes)) = data.split_first_chunk::<4>() else {
        return;
    };
    // Small limits, so that the limit is met often.
    let limit = u32::from_le_bytes(*limit) as usize % 4096;

    // The blocking reader.
    let mut cursor = Cursor::new(bytes);
    let mut rest = bytes;
    loop {
        let (expected, used) = model(rest, limit);
        match frame::read(&mut cursor, limit) {
            Ok(payload) => {
                assert_eq!(Next::Frame(&payload), expected);
                rest = &rest[used..];
            }
            Err(error) => {
                assert_eq!(kind(&error), expected, "{error}");
                break;
            }
        }
    }

    // The rpc mechanism's connection, over a socket pair whose writing end
    // is closed once everything is in.
    let (mut peer, ours) = UnixStream::pair().expect("a socket pair");
    peer.write_all(bytes)
        .expect("the bytes fit the socket's buffer");
    drop(peer);
    let mut connection = Connection::new(ours).expect("non-blocking");
    let mut rest = bytes;
    loop {
        let (expected, used) = model(rest, limit);
        match connection.recv(limit, Duration::ZERO, None) {
            Ok(payload) => {
                assert!(payload.len() <= limit);
                assert_eq!(Next::Frame(payload), expected);
                rest = &rest[used..];
            }
            Err(error) => {
                assert_eq!(kind(&error), expected, "{error}");
                break;
            }
        }
    }
});

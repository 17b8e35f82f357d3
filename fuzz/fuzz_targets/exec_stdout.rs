//! An exec plugin's stdout, arriving in pieces of any size: read as a
//! call's `Reply` and as a stream's `Piece`s, as the exec mechanism reads
//! them. The input's first two bytes are the limit, the third how the rest
//! is cut into reads. The reply reader holds at most one frame of at most
//! the limit and takes exactly the frame the format says; the stream
//! reader takes exactly the frames there are.
#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use outlet_fuzz as _;
use outlet_host::fuzzing::{
    PieceError, Pieces, ReadError, ReplyReader, exec_answer, exec_response,
};
use outlet_protocol::frame::{HEADER_LEN, MAGIC};

/// A pipe that hands out `bytes` in reads of the sizes `cut` gives, with
/// nothing to read (`WouldBlock`) between them.
struct Pipe<'a> {
    bytes: &'a [u8],
    cut: u8,
    blocked: bool,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::take(&mut self.blocked) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.blocked = true;
        self.cut = self.cut.rotate_left(3) ^ 0x5a;
        let n = (usize::from(self.cut) + 1)
            .min(buf.len())
            .min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// The frame the format says starts `bytes`: `Ok(Some(payload))`, `Ok(None)`
/// for a cut one, `Err(())` for a bad header or one over the limit.
fn first_frame(bytes: &[u8], limit: usize) -> Result<Option<&[u8]>, ()> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if header[..4] != MAGIC || len > limit {
        return Err(());
    }
    Ok(bytes.get(HEADER_LEN..HEADER_LEN + len))
}

fuzz_target!(|data: &[u8]| {
    let Some((&[l0, l1, cut], bytes)) = data.split_first_chunk::<3>() else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes([l0, l1]));

    // A call: one Reply frame.
    let mut reader = ReplyReader::new(limit);
    let mut pipe = Pipe {
        bytes,
        cut,
        blocked: false,
    };
    let read = loop {
        assert!(reader.held() <= HEADER_LEN + limit);
        match reader.read_from(&mut pipe) {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(ReadError::Frame(error)) => break Err(error),
            Err(ReadError::Io(error)) => panic!("the pipe does not fail: {error}"),
        }
    };
    let expected = first_frame(bytes, limit);
    match (read, expected) {
        (Ok(()), Ok(frame)) => {
            let reply = reader.into_reply();
            assert_eq!(reply.as_deref(), frame);
            if let Some(payload) = reply {
                if let Ok(body) = exec_answer("fuzz", "/fuzz.F/Call", &payload) {
                    assert!(body.len() <= payload.len());
                }
            }
        }
        (Err(_), Err(())) => {}
        (read, expected) => panic!("read {read:?}, the format says {expected:?}"),
    }

    // A stream: Piece frames, as they come.
    let mut pieces = Pieces::default();
    let mut pipe = Pipe {
        bytes,
        cut,
        blocked: false,
    };
    let mut rest = bytes;
    let mut chunk = [0; 256];
    'reads: loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => {
                // At the end, no whole frame is left untaken.
                assert!(matches!(first_frame(rest, limit), Ok(None)));
                break;
            }
            Ok(n) => n,
            Err(_) => continue,
        };
        pieces.extend(&chunk[..n]);
        loop {
            assert!(pieces.unread() <= pieces.held());
            match pieces.next(limit) {
                Ok(Some(piece)) => {
                    let frame = first_frame(rest, limit).expect("a good header");
                    let frame = frame.expect("a whole frame");
                    rest = &rest[HEADER_LEN + frame.len()..];
                    let _ = exec_response(piece);
                }
                Ok(None) => break,
                Err(PieceError::Frame(_)) => {
                    assert_eq!(first_frame(rest, limit), Err(()));
                    break 'reads;
                }
                Err(PieceError::Decode(_)) => {
                    assert!(matches!(first_frame(rest, limit), Ok(Some(_))));
                    break 'reads;
                }
            }
        }
    }
});

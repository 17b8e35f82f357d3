//! What an exec plugin writes to its stdout, taken apart apart from the
//! pipes (so that it can be fuzzed alone): one `Reply` frame answering a
//! call, `Piece` frames for a stream. Each frame's length is checked
//! against the limit before anything is sized by it.

use std::io::{self, Read};

use outlet_protocol::Status;
use outlet_protocol::core::{Piece, Reply};
use outlet_protocol::frame::{self, FrameError, HEADER_LEN};
use outlet_protocol::prost::Message;

/// Why stdout cannot be read as frames.
#[derive(Debug)]
pub enum ReadError {
    /// Not a frame, or one over the limit.
    Frame(FrameError),
    /// The pipe failed.
    Io(io::Error),
}

/// A call's reply as it arrives: the header, then exactly the payload it
/// announces. The buffer is sized once, when the header is in.
#[derive(Debug)]
pub struct ReplyReader {
    buffer: Vec<u8>,
    /// How many bytes of `buffer` hold what was read.
    filled: usize,
    /// The payload's length, once the header is in.
    len: Option<usize>,
    limit: usize,
}

impl ReplyReader {
    /// A reader of a reply of at most `limit` bytes.
    pub fn new(limit: usize) -> ReplyReader {
        ReplyReader {
            buffer: Vec::new(),
            filled: 0,
            len: None,
            limit,
        }
    }

    /// How many bytes it holds.
    pub fn held(&self) -> usize {
        self.buffer.len()
    }

    /// Whether a whole reply is in.
    pub fn is_whole(&self) -> bool {
        self.len.is_some_and(|len| self.filled == HEADER_LEN + len)
    }

    /// Reads what `from` holds of the reply, never past its end; whether
    /// reading is over (the reply is whole, or `from` is at its end). A
    /// reader with nothing now (`WouldBlock`) leaves it unfinished.
    pub fn read_from(&mut self, from: &mut impl Read) -> Result<bool, ReadError> {
        loop {
            if self.is_whole() {
                return Ok(true);
            }
            let wanted = HEADER_LEN + self.len.unwrap_or(0);
            if self.buffer.len() < wanted {
                self.buffer.resize(wanted, 0);
            }
            let n = match from.read(&mut self.buffer[self.filled..wanted]) {
                Ok(0) => return Ok(true),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Io(e)),
            };
            self.filled += n;
            if self.len.is_none() && self.filled == HEADER_LEN {
                let header = self.buffer.first_chunk().expect("the header is in");
                let len = frame::parse_header(header, self.limit).map_err(ReadError::Frame)?;
                self.len = Some(len);
            }
        }
    }

    /// The reply's payload, if a whole one was read.
    pub fn into_reply(mut self) -> Option<Vec<u8>> {
        self.is_whole().then(|| self.buffer.split_off(HEADER_LEN))
    }
}

/// The answer a `Reply` payload carries: its body, or the error in it.
pub fn answer(plugin: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
    let reply = Reply::decode(payload).map_err(|error| {
        Status::internal(format!(
            "plugin `{plugin}`: its reply to {method} does not decode: {error}"
        ))
    })?;
    match reply.status {
        Some(status) if status.code != 0 => Err(status.into()),
        _ => Ok(reply.body),
    }
}

/// Why a stream's next `Piece` cannot be read.
#[derive(Debug)]
pub enum PieceError {
    /// Not a frame, or one over the limit.
    Frame(FrameError),
    /// A frame that holds no `Piece`.
    Decode(outlet_protocol::prost::DecodeError),
}

/// A stream's stdout as it arrives, taken apart into `Piece`s.
#[derive(Debug, Default)]
pub struct Pieces {
    /// What was read; the first `consumed` bytes are taken.
    read: Vec<u8>,
    consumed: usize,
}

impl Pieces {
    /// Adds what was read.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.read.extend_from_slice(bytes);
    }

    /// How many bytes it holds.
    pub fn held(&self) -> usize {
        self.read.len()
    }

    /// How many bytes were read and not yet taken as a `Piece`.
    pub fn unread(&self) -> usize {
        self.read.len() - self.consumed
    }

    /// The next whole `Piece` of at most `limit` bytes, if one is in.
    pub fn next(&mut self, limit: usize) -> Result<Option<Piece>, PieceError> {
        let unread = &self.read[self.consumed..];
        let Some(header) = unread.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = frame::parse_header(header, limit).map_err(PieceError::Frame)?;
        let end = HEADER_LEN + len;
        if unread.len() < end {
            return Ok(None);
        }
        let piece = Piece::decode(&unread[HEADER_LEN..end]).map_err(PieceError::Decode)?;
        // Taken pieces are dropped from the front only now and then: one
        // at a time would move the rest each time.
        self.consumed += end;
        if self.consumed == self.read.len() {
            self.read.clear();
            self.consumed = 0;
        } else if self.consumed > self.read.len() / 2 {
            self.read.drain(..self.consumed);
            self.consumed = 0;
        }
        Ok(Some(piece))
    }
}

/// What a response `Piece` says: a message, or the end (with an error if
/// it carries a status, whatever its code).
pub fn response(piece: Piece) -> Result<Option<Vec<u8>>, Status> {
    match piece {
        Piece {
            status: Some(status),
            ..
        } => Err(match status.code {
            0 => Status::unknown(status.message),
            _ => status.into(),
        }),
        Piece { end: true, .. } => Ok(None),
        Piece { body, .. } => Ok(Some(body)),
    }
}

#[cfg(test)]
mod tests {
    use outlet_protocol::Code;

    use super::*;

    #[test]
    fn a_header_announcing_4_gib_is_refused_with_only_the_header_held() {
        let mut reader = ReplyReader::new(64 << 20);
        let mut stdout = &b"OUTL\xff\xff\xff\xffmore"[..];
        match reader.read_from(&mut stdout) {
            Err(ReadError::Frame(FrameError::TooLarge { len, .. })) => {
                assert_eq!(len, u64::from(u32::MAX));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reader.held(), HEADER_LEN);
    }

    #[test]
    fn a_reply_nested_without_end_is_refused_not_recursed_into() {
        // 100 000 groups, each opened inside the last (field 3, wire type
        // 3): decoding stops at prost's depth limit, not the stack's.
        let error = answer("deep", "Greet", &[0x1b; 100_000]).unwrap_err();
        assert_eq!(error.code(), Code::Internal);
        assert!(
            error.message().contains("plugin `deep`")
                && error.message().contains("does not decode"),
            "{error}"
        );
        let mut pieces = Pieces::default();
        let mut frame = b"OUTL".to_vec();
        frame.extend_from_slice(&100_000u32.to_le_bytes());
        frame.extend_from_slice(&[0x2b; 100_000]);
        pieces.extend(&frame);
        assert!(matches!(pieces.next(1 << 20), Err(PieceError::Decode(_))));
    }
}

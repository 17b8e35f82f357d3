//! Length-prefixed frames: how a message crosses a byte stream (the exec
//! mechanism's stdin and stdout).
//!
//! A frame is the 4 bytes `OUTL`, the payload's length as a little-endian
//! `u32`, then the payload: one encoded protobuf message. The magic makes a
//! plugin that prints to stdout by mistake fail with a clear error instead of
//! a confusing decode error.

use std::io::{self, Read, Write};

use prost::Message;

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"OUTL";
/// Bytes before the payload: magic and length.
pub const HEADER_LEN: usize = 8;

/// A frame header that cannot start a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The stream did not start with [`MAGIC`].
    #[error("expected an Outlet frame, found the bytes {found:?}")]
    BadMagic {
        /// What the stream held instead, shown lossily as text.
        found: String,
    },
    /// The payload is longer than the reader accepts.
    #[error("a frame of {len} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The length the header announced.
        len: u64,
        /// The reader's limit.
        limit: u64,
    },
}

/// Checks a header and returns the payload's length.
///
/// # Errors
/// [`FrameError`] when the header is not an Outlet frame or announces more
/// than `limit` bytes.
pub fn parse_header(header: &[u8; HEADER_LEN], limit: usize) -> Result<usize, FrameError> {
    if header[..4] != MAGIC {
        return Err(FrameError::BadMagic {
            found: String::from_utf8_lossy(header).into_owned(),
        });
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > limit {
        return Err(FrameError::TooLarge {
            len: len as u64,
            limit: limit as u64,
        });
    }
    Ok(len)
}

/// Encodes `message` as one frame.
///
/// # Panics
/// If the message is 4 GiB or larger, which no caller of Outlet's protocol
/// produces: message sizes are limited far below that.
pub fn encode(message: &impl Message) -> Vec<u8> {
    let len = message.encoded_len();
    let header_len = u32::try_from(len).expect("a frame's payload is under 4 GiB");
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&header_len.to_le_bytes());
    message
        .encode(&mut out)
        .expect("a Vec grows to fit any message");
    out
}

/// Reads one frame's payload from a blocking reader.
///
/// # Errors
/// The reader's errors; `InvalidData` for a bad header or one over `limit`.
pub fn read(reader: &mut impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut header = [0; HEADER_LEN];
    reader.read_exact(&mut header)?;
    let len = parse_header(&header, limit)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload)?;
    Ok(payload)
}

/// Writes `message` as one frame and flushes.
///
/// # Errors
/// The writer's errors.
pub fn write(writer: &mut impl Write, message: &impl Message) -> io::Result<()> {
    writer.write_all(&encode(message))?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Reply;

    #[test]
    fn frames_round_trip() {
        let reply = Reply {
            body: b"hello".to_vec(),
            status: None,
        };
        let bytes = encode(&reply);
        assert_eq!(&bytes[..4], b"OUTL");
        let payload = read(&mut &bytes[..], 1024).unwrap();
        assert_eq!(Reply::decode(&payload[..]).unwrap(), reply);
    }

    #[test]
    fn garbage_and_oversized_frames_are_refused() {
        let error = parse_header(b"Hello, w", 1024).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"expected an Outlet frame, found the bytes "Hello, w""#
        );
        let mut header = *b"OUTL\0\0\0\0";
        header[4..].copy_from_slice(&2048u32.to_le_bytes());
        assert_eq!(
            parse_header(&header, 1024),
            Err(FrameError::TooLarge {
                len: 2048,
                limit: 1024
            })
        );
    }
}

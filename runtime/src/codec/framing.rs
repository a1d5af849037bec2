//! A `tokio_util` codec for any top-level message: the unit named by a spec's `framing`
//! declaration frames a TCP stream.

use std::marker::PhantomData;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::error::{DecodeError, EncodeError};
use super::Message;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    #[error("frame larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Frames a byte stream into messages of type `M`.
#[derive(Debug)]
pub struct FrameCodec<M> {
    max_len: usize,
    _m: PhantomData<fn() -> M>,
}

impl<M> FrameCodec<M> {
    /// A frame may not exceed `max_len` bytes; a peer that sends a longer one is cut off.
    pub fn new(max_len: usize) -> Self {
        FrameCodec {
            max_len,
            _m: PhantomData,
        }
    }
}

impl<M> Default for FrameCodec<M> {
    fn default() -> Self {
        FrameCodec::new(1 << 24)
    }
}

impl<M: Message> Decoder for FrameCodec<M> {
    type Item = M;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<M>, FrameError> {
        if src.is_empty() {
            return Ok(None);
        }
        // Decode from a frozen view so the message's payloads share the buffer (no copy);
        // what was not used goes back to `src`.
        let frozen = src.split().freeze();
        match M::decode(frozen.clone()) {
            Ok((msg, used)) => {
                *src = give_back(frozen.slice(used..));
                Ok(Some(msg))
            }
            Err(e) if e.is_incomplete() => {
                let len = frozen.len();
                *src = give_back(frozen);
                if len > self.max_len {
                    return Err(FrameError::TooLarge { max: self.max_len });
                }
                if let super::DecodeErrorKind::Incomplete { needed } = e.kind {
                    src.reserve(needed.min(self.max_len));
                }
                Ok(None)
            }
            Err(e) => {
                *src = give_back(frozen);
                Err(e.into())
            }
        }
    }
}

fn give_back(b: Bytes) -> BytesMut {
    b.try_into_mut().unwrap_or_else(|b| BytesMut::from(&b[..]))
}

impl<M: Message> Encoder<M> for FrameCodec<M> {
    type Error = FrameError;

    fn encode(&mut self, msg: M, dst: &mut BytesMut) -> Result<(), FrameError> {
        msg.encode(dst)?;
        Ok(())
    }
}

impl<M: Message> Encoder<&M> for FrameCodec<M> {
    type Error = FrameError;

    fn encode(&mut self, msg: &M, dst: &mut BytesMut) -> Result<(), FrameError> {
        msg.encode(dst)?;
        Ok(())
    }
}

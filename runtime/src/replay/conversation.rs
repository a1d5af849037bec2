//! One side's view of a TCP conversation: the decoder state that outlives a message (what
//! earlier messages remembered, what the last request was), and the framing of a byte stream
//! into messages with the generated decoders.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

use crate::codec::{AnyMessage, DecodeError, DecodeErrorKind, Description, Entry, Reader};

/// A decoded message with the bytes it came from.
#[derive(Debug)]
pub struct Decoded {
    pub msg: Box<dyn AnyMessage>,
    pub bytes: Bytes,
}

/// What a conversation may remember (`@remember`, `@append`) by default: an attacker who
/// sends fragment after fragment of one call must not fill the farm's memory.
pub const MEMORY_LIMIT: usize = 32 << 20;

/// What `recall()` and `answering()` see: the session memory shared by both directions.
#[derive(Debug, Clone)]
pub struct Conversation {
    memory: HashMap<Bytes, Bytes>,
    answering: Bytes,
    memory_limit: usize,
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation {
            memory: HashMap::new(),
            answering: Bytes::new(),
            memory_limit: MEMORY_LIMIT,
        }
    }
}

impl Conversation {
    pub fn new() -> Self {
        Self::default()
    }

    /// A conversation that may remember at most `bytes` (keys and values).
    pub fn with_memory_limit(bytes: usize) -> Self {
        Conversation {
            memory_limit: bytes,
            ..Self::default()
        }
    }

    /// The bytes remembered now.
    pub fn remembered(&self) -> usize {
        self.memory.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Decodes the message at the start of `buf` (sent by the client if `to_server`). On
    /// success the memory keeps what the message remembered; on error it is left as it was,
    /// so an incomplete message can be tried again when more bytes have come.
    pub fn decode(
        &mut self,
        entry: &Entry,
        buf: Bytes,
        to_server: bool,
    ) -> Result<Decoded, DecodeError> {
        let mut r = Reader::new(buf.clone());
        if !to_server {
            r.set_answering(self.answering.clone());
        }
        r.set_memory(self.memory.clone());
        let msg = (entry.decode)(&mut r)?;
        self.memory = r.take_memory();
        let used = r.pos();
        if to_server {
            let first = Description::of(msg.as_ref()).first_content;
            self.answering = Bytes::from(first.unwrap_or_default().into_bytes());
        }
        Ok(Decoded {
            msg,
            bytes: buf.slice(..used),
        })
    }

    /// Takes the next whole message off the front of `buf`: `Ok(None)` while it is incomplete.
    /// A message that says it is longer than `max` bytes is an error at once.
    pub fn next_message(
        &mut self,
        entry: &Entry,
        buf: &mut BytesMut,
        to_server: bool,
        max: usize,
    ) -> Result<Option<Decoded>, FrameError> {
        if buf.is_empty() {
            return Ok(None);
        }
        match self.decode(entry, Bytes::copy_from_slice(buf), to_server) {
            Ok(d) => {
                let remembered = self.remembered();
                if remembered > self.memory_limit {
                    return Err(FrameError::MemoryFull {
                        remembered,
                        max: self.memory_limit,
                    });
                }
                buf.advance(d.bytes.len().max(1));
                Ok(Some(d))
            }
            Err(e) => match e.kind {
                DecodeErrorKind::Incomplete { needed } => {
                    let total = buf.len().saturating_add(needed);
                    if total > max {
                        Err(FrameError::TooLong { total, max })
                    } else {
                        Ok(None)
                    }
                }
                _ => Err(FrameError::Decode(e)),
            },
        }
    }
}

/// Why a stream cannot be cut into messages.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Decode(DecodeError),
    #[error("a message of at least {total} bytes, more than the {max} accepted")]
    TooLong { total: usize, max: usize },
    #[error("the conversation would remember {remembered} bytes, more than the {max} allowed")]
    MemoryFull { remembered: usize, max: usize },
}

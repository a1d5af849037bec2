//! Framing a TCP stream into messages, one path for every caller: whole frames are split off
//! the receive buffer without copying it, a decoder runs only once the bytes it asked for have
//! come (its `Incomplete { needed }` is the frame-length probe: a length-prefixed frame is
//! parsed once its header is in and again only when it is whole), and what is gathered is
//! bounded by the largest message accepted. [`FrameCodec`] adapts it to `tokio_util`.

use std::marker::PhantomData;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::error::{DecodeError, DecodeErrorKind, EncodeError};
use super::Message;

/// Why a stream cannot be cut into messages.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("a message of at least {total} bytes, more than the {max} accepted")]
    TooLong { total: usize, max: usize },
    #[error("the conversation would remember {remembered} bytes, more than the {max} allowed")]
    MemoryFull { remembered: usize, max: usize },
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Needs up to this many bytes are taken as a lower bound, larger ones as the frame's length.
const GUESSED_NEED: usize = 16;
/// The smallest read a [`FrameBuf`] makes room for when no frame length is known yet (small:
/// an idle connection holds it).
const MIN_READ: usize = 1024;
/// The largest room a [`FrameBuf`] makes for one read.
const MAX_READ: usize = 64 << 10;

/// A receive buffer that frames messages: bytes read arrive in `fresh`; what is left after a
/// whole frame was split off stays in `pending` (still shared with the messages decoded from
/// it, so it is not copied back).
#[derive(Debug, Default)]
pub struct FrameBuf {
    pending: Bytes,
    fresh: BytesMut,
    /// The length the next frame needs before decoding it is worth trying.
    want: usize,
    max: usize,
    copied: usize,
}

/// One attempt at the front of the buffer.
enum Attempt<T> {
    Whole {
        value: T,
        used: usize,
    },
    /// The frame needs `total` bytes.
    Incomplete {
        total: usize,
    },
    Failed(FrameError),
}

/// Runs `decode` on `input`; a frame longer than `max` fails at once.
fn attempt<T>(
    input: Bytes,
    max: usize,
    decode: impl FnOnce(Bytes) -> Result<(T, usize), DecodeError>,
) -> Attempt<T> {
    let len = input.len();
    match decode(input) {
        Ok((value, used)) => Attempt::Whole { value, used },
        Err(e) => match e.kind {
            DecodeErrorKind::Incomplete { needed } => {
                let total = len.saturating_add(needed.max(1));
                if total > max {
                    Attempt::Failed(FrameError::TooLong { total, max })
                } else {
                    Attempt::Incomplete { total }
                }
            }
            _ => Attempt::Failed(FrameError::Decode(e)),
        },
    }
}

impl FrameBuf {
    /// A buffer for messages of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameBuf {
            max,
            ..Self::default()
        }
    }

    /// Bytes received and not yet framed.
    pub fn len(&self) -> usize {
        self.pending.len() + self.fresh.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `N` bytes received and not yet framed, once that many are there.
    pub fn head<const N: usize>(&self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        let mut bytes = self.pending.iter().chain(self.fresh.iter());
        for b in &mut out {
            *b = *bytes.next()?;
        }
        Some(out)
    }

    /// The largest message accepted.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes copied inside the buffer so far: a partial frame left behind a whole one is moved
    /// once to join the bytes read after it (besides that, only the buffer's amortised growth
    /// while a long frame comes in copies).
    pub fn copied(&self) -> usize {
        self.copied
    }

    /// Whether a gathered message is already over the limit.
    pub fn over_limit(&self) -> bool {
        self.len() > self.max
    }

    /// Where the next read goes, with room for what the next frame still needs (within
    /// bounds: a peer that announces a long frame gets room as its bytes come).
    pub fn read_target(&mut self) -> &mut BytesMut {
        let missing = self.want.saturating_sub(self.len());
        let room = missing.clamp(MIN_READ, MAX_READ);
        if self.fresh.capacity() - self.fresh.len() < room.min(MIN_READ) {
            self.fresh.reserve(room);
        }
        &mut self.fresh
    }

    /// Adds received bytes.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.fresh.extend_from_slice(bytes);
    }

    /// Splits the next whole frame off the front and returns what `decode` made of it, with
    /// the frame's bytes; `Ok(None)` while it is incomplete. `decode` gets every byte
    /// received and returns its value and the length of the frame.
    pub fn next<T>(
        &mut self,
        decode: impl FnOnce(Bytes) -> Result<(T, usize), DecodeError>,
    ) -> Result<Option<(T, Bytes)>, FrameError> {
        if self.is_empty() || self.len() < self.want {
            return Ok(None);
        }
        let input = self.take_input();
        match attempt(input.clone(), self.max, decode) {
            Attempt::Whole { value, used } => {
                self.want = 0;
                let used = used.min(input.len());
                let frame = input.slice(..used);
                // A message of no bytes still moves the stream on.
                self.pending = input.slice(used.max(1).min(input.len())..);
                Ok(Some((value, frame)))
            }
            Attempt::Incomplete { total } => {
                let len = input.len();
                // A need of a few bytes may be a guess at a terminator (`\r\n`, `.\r\n`) that
                // fewer bytes complete: tried again on the next byte.
                self.want = if total - len > GUESSED_NEED {
                    total
                } else {
                    len + 1
                };
                self.give_back(input);
                Ok(None)
            }
            Attempt::Failed(e) => {
                self.give_back(input);
                Err(e)
            }
        }
    }

    /// Everything received, as one `Bytes`: a move when it lies in one piece.
    fn take_input(&mut self) -> Bytes {
        if self.fresh.is_empty() {
            return std::mem::take(&mut self.pending);
        }
        if self.pending.is_empty() {
            return std::mem::take(&mut self.fresh).freeze();
        }
        let mut joined = BytesMut::with_capacity(self.len() + MIN_READ);
        joined.extend_from_slice(&self.pending);
        joined.extend_from_slice(&self.fresh);
        self.copied += joined.len();
        self.pending = Bytes::new();
        self.fresh = BytesMut::new();
        joined.freeze()
    }

    /// Puts back an input no frame was taken from: as the buffer to read into when nothing
    /// else holds it (no copy), else as pending bytes (joined once more bytes come).
    fn give_back(&mut self, input: Bytes) {
        match input.try_into_mut() {
            Ok(m) => self.fresh = m,
            Err(b) => self.pending = b,
        }
    }
}

/// Frames a byte stream into messages of type `M`, for `tokio_util::codec::Framed`.
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
        // Decoded from a frozen view so the message's payloads share the buffer; the bytes
        // after the frame go back to `src` (`Framed` owns the buffer, so they are copied
        // unless the message holds none of it).
        let input = std::mem::take(src).freeze();
        match attempt(input.clone(), self.max_len, M::decode) {
            Attempt::Whole { value, used } => {
                *src = into_mut(input.slice(used.max(1).min(input.len())..));
                Ok(Some(value))
            }
            Attempt::Incomplete { total } => {
                *src = into_mut(input);
                src.reserve(total - src.len());
                Ok(None)
            }
            Attempt::Failed(e) => {
                *src = into_mut(input);
                Err(e)
            }
        }
    }
}

fn into_mut(b: Bytes) -> BytesMut {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame: a length byte, then that many bytes.
    fn decode(b: Bytes) -> Result<((), usize), DecodeError> {
        let mut r = super::super::Reader::new(b);
        let n = r.uint(1)? as usize;
        r.bytes(n)?;
        Ok(((), r.pos()))
    }

    #[test]
    fn frames_split_off_without_copies() {
        let mut f = FrameBuf::new(1000);
        let stream: Vec<u8> = (0..50u8).flat_map(|i| [3, i, i, i]).collect();
        let mut frames = Vec::new();
        for chunk in stream.chunks(3) {
            f.extend_from_slice(chunk);
            while let Some(((), frame)) = f.next(decode).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 50);
        assert!(frames
            .iter()
            .enumerate()
            .all(|(i, fr)| fr[..] == [3, i as u8, i as u8, i as u8]));
        assert!(f.is_empty());
        // Only the partial frames left behind whole ones were moved, once each.
        assert!(f.copied() <= 50 * 4, "{}", f.copied());
    }

    #[test]
    fn a_terminator_completed_by_one_byte_is_not_waited_for() {
        let line = |b: Bytes| -> Result<(Bytes, usize), DecodeError> {
            let mut r = super::super::Reader::new(b);
            let l = r.bytes_until(b"\r\n")?;
            Ok((l, r.pos()))
        };
        let mut f = FrameBuf::new(100);
        f.extend_from_slice(b"USER x\r");
        assert!(f.next(line).unwrap().is_none());
        f.extend_from_slice(b"\n");
        let (l, frame) = f.next(line).unwrap().expect("a whole line");
        assert_eq!((&l[..], &frame[..]), (&b"USER x"[..], &b"USER x\r\n"[..]));
    }

    #[test]
    fn a_long_frame_fails_at_once_and_a_partial_one_waits() {
        let mut f = FrameBuf::new(100);
        f.extend_from_slice(&[5 + GUESSED_NEED as u8, 1]);
        assert!(f.next(decode).unwrap().is_none());
        // Not tried again until the frame can be whole.
        f.extend_from_slice(&[1]);
        assert!(f
            .next(|_| -> Result<((), usize), DecodeError> { panic!("tried") })
            .unwrap()
            .is_none());
        f.extend_from_slice(&[1; GUESSED_NEED + 3]);
        assert!(f.next(decode).unwrap().is_some());
        f.extend_from_slice(&[200]);
        assert!(matches!(
            f.next(decode),
            Err(FrameError::TooLong {
                total: 201,
                max: 100
            })
        ));
    }
}

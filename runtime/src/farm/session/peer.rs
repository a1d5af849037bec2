//! One end of a session (after mini-redis's `Connection`): the socket, the receive buffer that
//! frames its messages, and the decoder memory of the conversation with it.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::codec::{DecodeError, DecodeErrorKind, Entry, FrameBuf, FrameError};
use crate::replay::{Conversation, Decoded, ServiceCodecs};

use super::error::{SessionError, Side};

/// How long a peer may take.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Between two reads; `None`: as long as it likes.
    pub idle: Option<Duration>,
    /// From a message's first byte to its last.
    pub message: Option<Duration>,
}

pub struct Peer {
    pub side: Side,
    sock: TcpStream,
    buf: FrameBuf,
    conv: Conversation,
    /// What it sends, and what it is sent.
    sends: &'static Entry,
    receives: &'static Entry,
    pub patience: Patience,
    /// When the first byte of the message being gathered came.
    gathering: Option<Instant>,
    /// Messages read from it so far.
    read: usize,
}

/// How long a peer waits silent, between messages, before the messages whose decoding was
/// deferred are decoded (their copies freed): a peer that answers at once (a scripted
/// dialog) leaves them to the next decode, or to none when the session ends on the fast path;
/// one that falls silent holds no copies.
const SETTLE: Duration = Duration::from_millis(250);

impl Peer {
    /// The attacker's end (it sends client messages) or a honeypot's (server messages).
    pub fn new(
        side: Side,
        sock: TcpStream,
        codecs: &ServiceCodecs,
        max_message: usize,
        patience: Patience,
    ) -> Self {
        let (sends, receives) = match side {
            Side::Attacker => (codecs.client, codecs.server),
            Side::Honeypot => (codecs.server, codecs.client),
        };
        // Replies go out as soon as they are written (one write per step), not held back
        // until the previous segment is acknowledged.
        let _ = sock.set_nodelay(true);
        Peer {
            side,
            sock,
            // The spec's largest frame, when smaller than the configuration's.
            buf: FrameBuf::new(sends.max_message(max_message)),
            conv: Conversation::new(),
            sends,
            receives,
            patience,
            gathering: None,
            read: 0,
        }
    }

    /// Whether the messages it sends travel to the server.
    fn to_server(&self) -> bool {
        self.side == Side::Attacker
    }

    /// Messages read from it so far.
    pub fn messages_read(&self) -> usize {
        self.read
    }

    /// The next whole message already received, if any.
    pub fn try_message(&mut self) -> Result<Option<Decoded>, SessionError> {
        let to_server = self.to_server();
        let (side, at) = (self.side, self.read);
        match self.conv.next_message(self.sends, &mut self.buf, to_server) {
            Ok(Some(d)) => {
                self.read += 1;
                self.gathering = (!self.buf.is_empty()).then(Instant::now);
                Ok(Some(d))
            }
            Ok(None) => Ok(None),
            Err(FrameError::Decode(source)) => Err(SessionError::Undecodable { side, at, source }),
            Err(source) => Err(SessionError::Frame { side, at, source }),
        }
    }

    /// The next whole message already received, when `known` recognises it at the front of
    /// the received bytes without decoding (and says how long it is): what `known` made of
    /// it, and its bytes. Its decoding is deferred (see [`Conversation::defer`]).
    pub fn try_known<T>(
        &mut self,
        known: impl FnOnce(&[u8]) -> Option<(usize, T)>,
    ) -> Result<Option<(T, Bytes)>, SessionError> {
        let unknown = || {
            DecodeError::new(
                DecodeErrorKind::Invalid {
                    reason: String::new(),
                },
                0,
            )
        };
        let Ok(Some((t, frame))) = self
            .buf
            .next(|b| known(&b).map(|(n, t)| (t, n)).ok_or_else(unknown))
        else {
            return Ok(None);
        };
        self.read += 1;
        self.gathering = (!self.buf.is_empty()).then(Instant::now);
        // Copied: the receive buffer is not kept for it.
        let bytes = Bytes::copy_from_slice(&frame);
        let to_server = self.to_server();
        self.conv
            .defer(self.sends, bytes.clone(), to_server)
            .map_err(|source| SessionError::Undecodable {
                side: self.side,
                at: self.read - 1,
                source,
            })?;
        Ok(Some((t, bytes)))
    }

    /// Decodes the last message [`Peer::try_known`] returned after all (a message recognised,
    /// but recorded or handed on as the full path does it).
    pub fn decode_known(&mut self) -> Result<Decoded, DecodeError> {
        self.conv.catch_up()?.ok_or_else(|| {
            DecodeError::new(
                DecodeErrorKind::Invalid {
                    reason: "no message was recognised".into(),
                },
                0,
            )
        })
    }

    /// Notes a message sent to this peer as [`Peer::note_sent`] does, its decoding deferred.
    pub fn defer_sent(&mut self, bytes: Bytes) -> Result<(), DecodeError> {
        let to_server = !self.to_server();
        self.conv.defer(self.receives, bytes, to_server)
    }

    /// Reads more bytes; `Ok(false)` at the end of the stream. Fails when the peer is silent
    /// for longer than it may be, or takes too long over one message.
    pub async fn fill(&mut self) -> Result<bool, SessionError> {
        let side = self.side;
        if self.buf.over_limit() {
            return Err(SessionError::Frame {
                side,
                at: self.read,
                source: FrameError::TooLong {
                    total: self.buf.len(),
                    max: self.buf.max(),
                },
            });
        }
        let slow = |limit: Duration| SessionError::SlowMessage {
            side,
            at: self.read,
            ms: limit.as_millis(),
        };
        let message_left = match (self.gathering, self.patience.message) {
            (Some(t), Some(limit)) => {
                Some(limit.checked_sub(t.elapsed()).ok_or_else(|| slow(limit))?)
            }
            _ => None,
        };
        let mut wait = match (self.patience.idle, message_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let was_empty = self.buf.is_empty();
        if was_empty {
            // Between messages: the room the last decode used goes while the peer is silent.
            self.conv.trim();
        }
        // Between messages, with decoding deferred: first wait as long as a peer that answers
        // at once takes.
        let mut settle = (was_empty
            && message_left.is_none()
            && self.conv.has_deferred()
            && wait.is_none_or(|w| w > SETTLE))
        .then_some(SETTLE);
        let r = loop {
            let read = read_into(&self.sock, &mut self.buf);
            match settle.or(wait) {
                Some(w) => match tokio::time::timeout(w, read).await {
                    Ok(r) => break r,
                    Err(_) if settle.take().is_some() => {
                        // Silent: the deferred messages decoded, their copies freed (an error
                        // stays deferred, for the next decode to meet).
                        let _ = self.conv.catch_up();
                        self.conv.trim();
                        wait = wait.map(|w| w - SETTLE);
                    }
                    Err(_) if message_left == Some(w) => {
                        return Err(slow(self.patience.message.unwrap_or(w)))
                    }
                    Err(_) => {
                        return Err(SessionError::Silent {
                            side,
                            secs: self.patience.idle.unwrap_or(w).as_secs(),
                        })
                    }
                },
                None => break read.await,
            }
        };
        match r {
            Ok(0) => Ok(false),
            Ok(_) => {
                if was_empty {
                    self.gathering = Some(Instant::now());
                }
                Ok(true)
            }
            Err(source) => Err(SessionError::Io { side, source }),
        }
    }

    /// The next message: `Ok(None)` when the peer closed between messages.
    pub async fn read_message(&mut self) -> Result<Option<Decoded>, SessionError> {
        loop {
            if let Some(d) = self.try_message()? {
                return Ok(Some(d));
            }
            if !self.fill().await? {
                return match self.buf.len() {
                    0 => Ok(None),
                    n => Err(SessionError::ClosedMidMessage(n)),
                };
            }
        }
    }

    /// Decodes a message sent to this peer on its conversation (later messages may recall
    /// what it remembers): the caller decides what an undecodable one means.
    pub fn note_sent(&mut self, bytes: &Bytes) -> Result<Decoded, DecodeError> {
        let to_server = !self.to_server();
        self.conv.decode(self.receives, bytes.clone(), to_server)
    }

    /// Writes a message to the peer. A peer that reads nothing (its window closed) holds the
    /// write as long as it may stay silent, no longer: else an attacker that never reads keeps
    /// the connection, and the bytes waiting for it, until the session's deadline.
    pub async fn write_message(&mut self, bytes: &Bytes) -> Result<(), SessionError> {
        let side = self.side;
        let write = self.sock.write_all(bytes);
        let written = match self.patience.idle {
            Some(w) => {
                tokio::time::timeout(w, write)
                    .await
                    .map_err(|_| SessionError::NotReading {
                        side,
                        secs: w.as_secs(),
                    })?
            }
            None => write.await,
        };
        written.map_err(|source| SessionError::Io { side, source })
    }

    /// Writes messages to the peer in one write (one segment, not one per message).
    pub async fn write_messages(&mut self, messages: &[Bytes]) -> Result<(), SessionError> {
        match messages {
            [] => Ok(()),
            [one] => self.write_message(one).await,
            many => {
                let mut all = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
                for m in many {
                    all.extend_from_slice(m);
                }
                self.write_message(&all.freeze()).await
            }
        }
    }

    /// Reads and drops what the peer sends until it closes or stays silent past its idle
    /// patience: a server waiting for the rest of a message it will not use.
    pub async fn wait_out(&mut self) {
        // On the heap: an array here would be part of every session's future, idle or not.
        let mut scrap = vec![0u8; 4096];
        loop {
            let read = self.sock.read(&mut scrap);
            let r = match self.patience.idle {
                Some(w) => match tokio::time::timeout(w, read).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
                None => read.await,
            };
            if !matches!(r, Ok(n) if n > 0) {
                return;
            }
        }
    }

    /// The first 4 of the bytes received and not yet framed, and their count.
    pub fn unframed(&self) -> (Option<[u8; 4]>, usize) {
        (self.buf.head(), self.buf.len())
    }

    /// Drops the connection with a reset (what a server that stops reading mid-stream sends).
    pub fn reset(&mut self) {
        // Zero linger makes the close a reset, sent at once: the close never blocks (the
        // reason tokio deprecates SO_LINGER).
        #[allow(deprecated)]
        let _ = self.sock.set_linger(Some(Duration::ZERO));
    }

    /// Closes our half of the connection.
    pub async fn shutdown(&mut self) {
        // The peer may be gone already: nothing to do then.
        let _ = self.sock.shutdown().await;
    }
}

/// Reads what has come into `buf`. An empty buffer gets its room only once the socket is
/// readable, and gives it back when the read finds nothing (as the read after each message
/// does): a connection idle between messages holds no receive buffer. Polled on the socket's
/// readiness: the future is two references, where a `readable()` future's waiter would be part
/// of every idle connection's memory.
fn read_into<'a>(
    sock: &'a TcpStream,
    buf: &'a mut FrameBuf,
) -> impl std::future::Future<Output = std::io::Result<usize>> + 'a {
    std::future::poll_fn(move |cx| loop {
        std::task::ready!(sock.poll_read_ready(cx))?;
        match sock.try_read_buf(buf.read_target()) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => buf.release_if_empty(),
            r => return std::task::Poll::Ready(r),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{AnyMessage, Entry, Reader};

    /// Nothing is decoded in these tests.
    fn never(_: &mut Reader) -> Result<Box<dyn AnyMessage>, DecodeError> {
        Err(DecodeError::new(
            DecodeErrorKind::Invalid {
                reason: "not decoded here".into(),
            },
            0,
        ))
    }

    static BYTES: Entry = Entry {
        name: "bytes",
        framing: true,
        max_frame: None,
        decode: never,
    };

    /// An attacker that reads nothing: the write ends after its idle patience, as an error
    /// the session records, instead of waiting for the session's deadline.
    #[tokio::test]
    async fn a_write_the_peer_never_reads_ends_after_its_idle_patience() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let attacker = tokio::net::TcpSocket::new_v4().unwrap();
        // A small window, so that the kernel's buffers fill with little.
        attacker.set_recv_buffer_size(4096).unwrap();
        let attacker = attacker
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (sock, _) = listener.accept().await.unwrap();
        let codecs = ServiceCodecs {
            name: "bytes".into(),
            client: &BYTES,
            server: &BYTES,
            text: false,
        };
        let patience = Patience {
            idle: Some(Duration::from_millis(300)),
            message: None,
        };
        let mut peer = Peer::new(Side::Attacker, sock, &codecs, 1 << 20, patience);
        let reply = Bytes::from(vec![0u8; 64 << 20]);
        let written = tokio::time::timeout(Duration::from_secs(60), peer.write_message(&reply))
            .await
            .expect("the write ends by itself");
        assert!(
            matches!(
                written,
                Err(SessionError::NotReading {
                    side: Side::Attacker,
                    ..
                })
            ),
            "{written:?}"
        );
        drop(attacker);
    }
}

//! One side's view of a TCP conversation: the decoder state that outlives a message (what
//! earlier messages remembered, what the last request was), and the framing of a byte stream
//! into messages with the generated decoders (through [`FrameBuf`], the one framing path).
//! Messages recognised without decoding are deferred here, and every decode decodes them
//! first, in order: one decoding path, whichever way a message came.

use bytes::Bytes;

use crate::codec::{
    AnyMessage, Class, DecodeError, DecodeErrorKind, DecodeFn, Entry, FieldValue, FrameBuf,
    FrameError, Memory, Reader, Span, Value, Visitor,
};

/// A decoded message with the bytes it came from.
#[derive(Debug)]
pub struct Decoded {
    pub msg: Box<dyn AnyMessage>,
    pub bytes: Bytes,
    /// Where its role fields lay in `bytes` (only when traced).
    pub spans: Vec<Span>,
}

/// What a conversation may remember (`@remember`, `@append`) by default: an attacker who
/// sends fragment after fragment of one call must not fill the farm's memory.
pub const MEMORY_LIMIT: usize = 32 << 20;

/// What `recall()` and `answering()` see: the session memory shared by both directions.
#[derive(Debug, Clone)]
pub struct Conversation {
    memory: Memory,
    answering: Bytes,
    memory_limit: usize,
    /// Messages whose decoding waits (see [`Conversation::defer`]), oldest first.
    deferred: Vec<Deferred>,
}

/// A message taken without decoding: its decoder, its bytes and its direction.
#[derive(Debug, Clone)]
struct Deferred {
    decode: DecodeFn,
    bytes: Bytes,
    to_server: bool,
}

/// Deferred messages past this many bytes are decoded before another is deferred: a long
/// dialog on the fast path holds no more than this.
const DEFERRED_MAX: usize = 16 << 10;

impl Default for Conversation {
    fn default() -> Self {
        Conversation {
            memory: Memory::new(),
            answering: Bytes::new(),
            memory_limit: MEMORY_LIMIT,
            deferred: Vec::new(),
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
        self.memory.size()
    }

    /// Gives back room kept for the next message's decode (while the peer is silent).
    pub fn trim(&mut self) {
        self.memory.trim();
    }

    /// Takes a whole message (sent by the client if `to_server`) whose decoding may wait: the
    /// caller knows what it needs of it without decoding. It is decoded before the next message
    /// this conversation decodes, or by [`Conversation::catch_up`], whichever comes first.
    pub fn defer(
        &mut self,
        entry: &Entry,
        bytes: Bytes,
        to_server: bool,
    ) -> Result<(), DecodeError> {
        let held: usize = self.deferred.iter().map(|d| d.bytes.len()).sum();
        if held + bytes.len() > DEFERRED_MAX {
            self.catch_up()?;
        }
        self.deferred.push(Deferred {
            decode: entry.decode,
            bytes,
            to_server,
        });
        Ok(())
    }

    /// Whether messages wait to be decoded.
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Decodes the deferred messages, in order; returns the last one. On an error the message
    /// that failed and those after it stay deferred (the next decode meets the error again).
    pub fn catch_up(&mut self) -> Result<Option<Decoded>, DecodeError> {
        let mut last = None;
        let mut done = 0;
        let res = loop {
            let Some(d) = self.deferred.get(done) else {
                break Ok(());
            };
            let (decode, bytes, to_server) = (d.decode, d.bytes.clone(), d.to_server);
            match self.decode_now(decode, bytes, to_server, false) {
                Ok(d) => last = Some(d),
                Err(e) => break Err(e),
            }
            done += 1;
        };
        self.deferred.drain(..done);
        if self.deferred.is_empty() {
            // Their room goes with them: an idle conversation holds none.
            self.deferred = Vec::new();
        }
        res.map(|()| last)
    }

    /// Says what the next server message answers, where the caller knows better than the
    /// last client message decoded here (dissect pairs them by time).
    pub fn set_answering(&mut self, kind: Bytes) {
        self.answering = kind;
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
        self.run(entry, buf, to_server, false)
    }

    /// Like [`Conversation::decode`], recording where each role field lay.
    pub fn decode_traced(
        &mut self,
        entry: &Entry,
        buf: Bytes,
        to_server: bool,
    ) -> Result<Decoded, DecodeError> {
        self.run(entry, buf, to_server, true)
    }

    /// The one decode: the deferred messages first, then `buf`.
    fn run(
        &mut self,
        entry: &Entry,
        buf: Bytes,
        to_server: bool,
        trace: bool,
    ) -> Result<Decoded, DecodeError> {
        if !self.deferred.is_empty() {
            self.catch_up().map_err(|e| match e.kind {
                // Not the new message's need: a deferred message was whole when taken.
                DecodeErrorKind::Incomplete { .. } => DecodeError::new(
                    DecodeErrorKind::Invalid {
                        reason: format!("a deferred message does not decode: {e}"),
                    },
                    e.offset,
                ),
                _ => e,
            })?;
        }
        self.decode_now(entry.decode, buf, to_server, trace)
    }

    fn decode_now(
        &mut self,
        decode: DecodeFn,
        buf: Bytes,
        to_server: bool,
        trace: bool,
    ) -> Result<Decoded, DecodeError> {
        let mut r = Reader::new(buf.clone());
        if trace {
            r.trace_roles();
        }
        if !to_server {
            r.set_answering(self.answering.clone());
        }
        // Lent to the decoder, not copied; what a failed decode remembered is undone.
        self.memory.begin();
        r.set_memory(std::mem::take(&mut self.memory));
        let res = decode(&mut r);
        self.memory = r.take_memory();
        let msg = match res {
            Ok(m) => m,
            Err(e) => {
                self.memory.rollback();
                return Err(e);
            }
        };
        self.memory.commit();
        let used = r.pos();
        if to_server {
            let mut first = FirstContent(None);
            msg.visit(&mut first);
            self.answering = Bytes::from(first.0.unwrap_or_default().into_bytes());
        }
        Ok(Decoded {
            msg,
            bytes: buf.slice(..used),
            spans: r.take_spans(),
        })
    }

    /// Takes the next whole message off the front of `buf`: `Ok(None)` while it is incomplete.
    /// A message that says it is longer than the buffer's limit is an error at once, as is one
    /// that makes the conversation remember more than its limit.
    pub fn next_message(
        &mut self,
        entry: &Entry,
        buf: &mut FrameBuf,
        to_server: bool,
    ) -> Result<Option<Decoded>, FrameError> {
        let Some((d, _)) = buf.next(|b| {
            let d = self.decode(entry, b, to_server)?;
            let used = d.bytes.len();
            Ok((d, used))
        })?
        else {
            return Ok(None);
        };
        let remembered = self.remembered();
        if remembered > self.memory_limit {
            return Err(FrameError::MemoryFull {
                remembered,
                max: self.memory_limit,
            });
        }
        Ok(Some(d))
    }
}

/// A message's first content field that is a number or bytes (at most 24 bytes of it), as
/// [`crate::codec::Description`] has it, without describing the rest.
struct FirstContent(Option<String>);

impl Visitor for FirstContent {
    fn field(&mut self, _name: &'static str, class: Class, value: &dyn FieldValue) {
        if self.0.is_some() || class != Class::Content {
            return;
        }
        match value.value() {
            Value::Bytes(b) => {
                self.0 = Some(String::from_utf8_lossy(&b[..b.len().min(24)]).into_owned())
            }
            v @ Value::Uint(_) => self.0 = Some(v.to_string()),
            _ => {}
        }
    }
}

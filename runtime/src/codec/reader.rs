//! A zero-copy reader over one input buffer, used by generated decoders.
//!
//! Positions are absolute offsets into the buffer, so anchors, alignment and offsets work
//! across nested units and layers. A stack of limits models lengths: inside a limit, running
//! out of bytes is a [`DecodeErrorKind::Truncated`] error; at the end of the input it is
//! [`DecodeErrorKind::Incomplete`], which a stream decoder treats as "wait for more".

use bytes::Bytes;

use super::anchors::Anchors;
use super::decode::RunField;
use super::error::{DecodeError, DecodeErrorKind, FieldInfo};
use super::int::assemble;
use super::memory::{DecoderMemory, Memory, Small};
use super::ByteOrder;

/// Deepest nesting of units a decoder follows (AndX chains, recursive units).
pub const MAX_DEPTH: usize = 128;

/// A saved outer limit, restored by [`Reader::end_limit`].
#[must_use]
#[derive(Debug)]
pub struct Limit {
    end: usize,
    hard: bool,
}

/// A line being decoded: the outer limit and the terminator that ends it.
#[must_use]
#[derive(Debug)]
pub struct Line {
    outer: Limit,
    eol: usize,
}

#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    pos: usize,
    end: usize,
    hard: bool,
    order: ByteOrder,
    anchors: Anchors,
    depth: usize,
    request: Option<bool>,
    answering: Bytes,
    memory: DecoderMemory,
    trace: Option<Vec<Span>>,
}

/// Where one role field lay in the input (absolute offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub field: &'static FieldInfo,
    pub start: usize,
    pub end: usize,
}

impl Reader {
    #[inline]
    pub fn new(buf: Bytes) -> Self {
        let end = buf.len();
        Reader {
            buf,
            pos: 0,
            end,
            hard: false,
            order: ByteOrder::Big,
            anchors: Anchors::default(),
            depth: 0,
            request: None,
            answering: Bytes::new(),
            memory: DecoderMemory::default(),
            trace: None,
        }
    }

    /// Gives the decoder a session's memory: what earlier messages remembered (`@remember`),
    /// for `recall()` in specs. It is moved, not copied; take it back with
    /// [`Reader::take_memory`] (with its journal, if one is open, so a caller can undo what a
    /// failed decode remembered).
    pub fn set_memory(&mut self, memory: Memory) {
        self.memory.set(memory);
    }

    pub fn take_memory(&mut self) -> Memory {
        self.memory.take()
    }

    /// Stores `value` under `name` and `key` (`@remember(name, key)` in specs).
    #[inline]
    pub fn remember(&mut self, name: &[u8], key: &[u8], value: &[u8]) {
        self.memory
            .store()
            .set(memory_key(name, key), Small::copy(value));
    }

    /// Stores the number `value`, in decimal, under `name` and `key`: [`Reader::remember`]
    /// without formatting the number apart first.
    #[inline]
    pub fn remember_int(&mut self, name: &[u8], key: &[u8], value: i128) {
        self.memory
            .store()
            .set(memory_key(name, key), Small::decimal(value));
    }

    /// [`Reader::remember_int`] under a constant name and key: stored when the memory is next
    /// used or taken, so that a decode whose memory is dropped unread pays no more than a
    /// note of it (a `recall_int` of it in the same message is answered from the note).
    #[inline(always)]
    pub fn remember_int_static(&mut self, name: &'static [u8], key: &'static [u8], value: i128) {
        self.memory.defer_int(name, key, value);
    }

    /// Adds `value` to what is remembered under `name` and `key` (pieces of one value that
    /// arrive in several messages).
    pub fn append_memory(&mut self, name: &[u8], key: &[u8], value: &[u8]) {
        let k = memory_key(name, key);
        let memory = self.memory.store();
        let v = match memory.remove(&k) {
            Some(old) => Small::concat(&old, value),
            None => Small::copy(value),
        };
        memory.set(k, v);
    }

    /// What was remembered under `name` and `key`; empty if nothing.
    pub fn recall(&self, name: &[u8], key: &[u8]) -> &[u8] {
        if let Some(text) = self.memory.deferred_text(name, key) {
            return text;
        }
        with_key(name, key, |k| self.memory.stored(k).unwrap_or_default())
    }

    /// A remembered decimal number; -1 if nothing (or not a number) was remembered.
    pub fn recall_int(&self, name: &[u8], key: &[u8]) -> i128 {
        if let Some(v) = self.memory.deferred_int(name, key) {
            return v;
        }
        let text = with_key(name, key, |k| self.memory.stored(k).unwrap_or_default());
        std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1)
    }

    /// Tells the decoder what the message answers: the kind of the last message the other
    /// side sent (an HTTP method, an SMTP verb). `answering()` in expressions.
    pub fn set_answering(&mut self, kind: Bytes) {
        self.answering = kind;
    }

    /// What the message answers; empty when the caller did not say.
    pub fn answering(&self) -> &[u8] {
        &self.answering
    }

    /// Records the span of every role field decoded from now on.
    pub fn trace_roles(&mut self) {
        self.trace = Some(Vec::new());
    }

    /// The spans recorded since [`Reader::trace_roles`], in decode order.
    pub fn take_spans(&mut self) -> Vec<Span> {
        self.trace.take().unwrap_or_default()
    }

    /// Tells the decoder which way the message travels.
    pub fn set_request(&mut self, is_request: bool) {
        self.request = Some(is_request);
    }

    /// `is_request()` in expressions; `None` when the caller did not say.
    pub fn is_request(&self) -> Option<bool> {
        self.request
    }

    /// Runs the decoding of one field, naming the field in any error it returns. Always
    /// inlined: otherwise every large value would be moved through one more `Result`.
    #[inline(always)]
    pub fn field<T>(
        &mut self,
        info: &'static FieldInfo,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        let start = self.pos;
        let v = f(self).map_err(|e| e.in_field(info))?;
        if let Some(t) = &mut self.trace {
            if info.role.is_some() {
                t.push(Span {
                    field: info,
                    start,
                    end: self.pos,
                });
            }
        }
        Ok(v)
    }

    /// The error for an expression that overflowed or used an unset direction.
    pub fn arithmetic(&self) -> DecodeError {
        self.error(DecodeErrorKind::Arithmetic)
    }

    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    #[inline]
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    #[inline]
    pub fn set_order(&mut self, order: ByteOrder) {
        self.order = order;
    }

    /// The bytes between two absolute positions already read (for spans and tracing).
    #[inline]
    pub fn slice(&self, start: usize, end: usize) -> Bytes {
        self.buf.slice(start.min(end)..end.min(self.buf.len()))
    }

    pub fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.pos)
    }

    pub fn invalid(&self, reason: impl Into<String>) -> DecodeError {
        self.error(DecodeErrorKind::Invalid {
            reason: reason.into(),
        })
    }

    #[inline]
    fn short(&self, needed: usize) -> DecodeError {
        self.short_at(self.pos, needed)
    }

    /// The error of a field of `needed` bytes at `at` that runs past the end.
    pub(crate) fn short_at(&self, at: usize, needed: usize) -> DecodeError {
        let available = self.end - at;
        let kind = if self.hard {
            DecodeErrorKind::Truncated { needed, available }
        } else {
            DecodeErrorKind::Incomplete {
                needed: needed - available,
            }
        };
        DecodeError::new(kind, at)
    }

    #[inline]
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if n > self.remaining() {
            Err(self.short(n))
        } else {
            Ok(())
        }
    }

    /// The next `N` bytes and where they start, for a run of fixed-size fields read at once
    /// (one bounds check instead of one per field); the position moves past them. When fewer
    /// remain, the error is the one the fields read one by one would give (see
    /// [`RunField`]); traced role spans are recorded for each field.
    #[inline(always)]
    pub fn run<const N: usize>(
        &mut self,
        fields: &'static [RunField],
        order: ByteOrder,
    ) -> Result<(usize, [u8; N]), DecodeError> {
        if N > self.remaining() {
            return Err(self.run_short(fields, order));
        }
        let at = self.pos;
        let mut b = [0u8; N];
        b.copy_from_slice(&self.buf[at..at + N]);
        self.pos = at + N;
        if self.trace.is_some() {
            self.trace_run(at, fields);
        }
        Ok((at, b))
    }

    /// The spans of a run's role fields, which began at `at`.
    #[cold]
    fn trace_run(&mut self, mut at: usize, fields: &'static [RunField]) {
        let Some(t) = &mut self.trace else { return };
        for f in fields {
            if f.info.role.is_some() {
                t.push(Span {
                    field: f.info,
                    start: at,
                    end: at + f.size,
                });
            }
            at += f.size;
        }
    }

    /// Restricts reading to the next `n` bytes.
    #[inline]
    pub fn limit(&mut self, n: usize) -> Result<Limit, DecodeError> {
        self.need(n)?;
        let saved = Limit {
            end: self.end,
            hard: self.hard,
        };
        self.end = self.pos + n;
        self.hard = true;
        Ok(saved)
    }

    /// Leaves a limit; every byte inside it must have been read.
    #[inline]
    pub fn end_limit(&mut self, saved: Limit) -> Result<(), DecodeError> {
        if self.pos != self.end {
            return Err(self.error(DecodeErrorKind::Trailing {
                count: self.end - self.pos,
            }));
        }
        self.end = saved.end;
        self.hard = saved.hard;
        Ok(())
    }

    #[inline]
    pub fn enter(&mut self) -> Result<usize, DecodeError> {
        self.descend()?;
        Ok(self.anchors.len())
    }

    /// Leaves a unit: drops the anchors it set (`mark` from [`Reader::enter`]).
    #[inline]
    pub fn leave(&mut self, mark: usize) {
        self.ascend();
        self.anchors.truncate(mark);
    }

    /// One unit deeper, within [`MAX_DEPTH`].
    #[inline]
    pub(crate) fn descend(&mut self) -> Result<(), DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(DecodeErrorKind::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }

    /// Back out of a unit entered with [`Reader::descend`].
    #[inline]
    pub(crate) fn ascend(&mut self) {
        self.depth -= 1;
    }

    #[inline]
    pub fn push_anchor(&mut self, name: &'static str) {
        self.anchors.push(name, self.pos);
    }

    /// The innermost anchor of that name; the start of the input when none is set.
    pub fn anchor(&self, name: &str) -> usize {
        self.anchors.find(name).unwrap_or(0)
    }

    #[inline]
    pub fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        self.uint_in(n, self.order)
    }

    #[inline]
    pub fn uint_in(&mut self, n: usize, order: ByteOrder) -> Result<u64, DecodeError> {
        self.need(n)?;
        let b = &self.buf[self.pos..self.pos + n];
        let v = assemble(b, order);
        self.pos += n;
        Ok(v)
    }

    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    /// Everything up to the current limit.
    #[inline]
    pub fn rest(&mut self) -> Bytes {
        let b = self.buf.slice(self.pos..self.end);
        self.pos = self.end;
        b
    }

    /// Bytes up to `delim`; the delimiter is consumed and not returned. Always inlined: the
    /// delimiter is a constant where generated code calls it, and the usual single byte (a
    /// NUL, a CR) then goes straight to the byte search.
    #[inline(always)]
    pub fn bytes_until(&mut self, delim: &[u8]) -> Result<Bytes, DecodeError> {
        let found = match delim {
            [d] => find_byte(*d, &self.buf[self.pos..self.end]),
            _ => find(&self.buf[self.pos..self.end], delim),
        };
        match found {
            Some(i) => {
                let b = self.buf.slice(self.pos..self.pos + i);
                self.pos += i + delim.len();
                Ok(b)
            }
            None => Err(self.no_terminator(delim)),
        }
    }

    #[cold]
    fn no_terminator(&self, delim: &[u8]) -> DecodeError {
        if self.hard {
            self.error(DecodeErrorKind::Mismatch {
                expected: format!("terminator {}", escape(delim)),
                found: "end of field".into(),
            })
        } else {
            self.error(DecodeErrorKind::Incomplete {
                needed: delim.len(),
            })
        }
    }

    /// UTF-16 code units up to a NUL code unit (consumed, not returned).
    pub fn utf16z(&mut self) -> Result<Bytes, DecodeError> {
        let hay = &self.buf[self.pos..self.end];
        let i = hay.chunks_exact(2).position(|c| c == [0, 0]);
        match i {
            Some(i) => {
                let b = self.buf.slice(self.pos..self.pos + 2 * i);
                self.pos += 2 * i + 2;
                Ok(b)
            }
            None => Err(self.short(hay.len() + 2)),
        }
    }

    /// A literal that must be present. Always inlined: the literal is a constant where generated code calls it, and the usual
    /// case, all of it there and equal, is then one comparison of a few bytes, not a call.
    #[inline(always)]
    pub fn literal(&mut self, lit: &[u8]) -> Result<(), DecodeError> {
        if self.buf[self.pos..self.end].starts_with(lit) {
            self.pos += lit.len();
            return Ok(());
        }
        self.literal_slow(lit)
    }

    /// [`Reader::literal`] when the input differs from the literal or ends first.
    #[cold]
    fn literal_slow(&mut self, lit: &[u8]) -> Result<(), DecodeError> {
        let avail = self.remaining().min(lit.len());
        let got = &self.buf[self.pos..self.pos + avail];
        if got != &lit[..avail] {
            return Err(self.mismatch(lit, got));
        }
        self.need(lit.len())?;
        self.pos += lit.len();
        Ok(())
    }

    /// A literal matched without regard to ASCII case; the bytes received are returned.
    pub fn ci_literal(&mut self, lit: &[u8]) -> Result<Bytes, DecodeError> {
        let avail = self.remaining().min(lit.len());
        let got = &self.buf[self.pos..self.pos + avail];
        if !got.eq_ignore_ascii_case(&lit[..avail]) {
            return Err(self.mismatch(lit, got));
        }
        self.bytes(lit.len())
    }

    fn mismatch(&self, lit: &[u8], got: &[u8]) -> DecodeError {
        self.error(DecodeErrorKind::Mismatch {
            expected: escape(lit),
            found: escape(got),
        })
    }

    /// Padding up to the next multiple of `to` counted from `anchor`; returned as received.
    pub fn align(&mut self, to: usize, anchor: &str) -> Result<Bytes, DecodeError> {
        let rel = self.pos - self.anchor(anchor);
        let pad = (to - rel % to) % to;
        self.bytes(pad)
    }

    /// Moves forward to an absolute position; the bytes skipped are returned (kept as received).
    pub fn seek_to(&mut self, target: usize) -> Result<Bytes, DecodeError> {
        if target < self.pos {
            return Err(self.error(DecodeErrorKind::OffsetBackwards { target }));
        }
        self.bytes(target - self.pos)
    }

    /// Starts a line: limits reading to its content, up to `\n` (with or without `\r`),
    /// which must come within `max` bytes.
    pub fn line(&mut self, max: usize) -> Result<Line, DecodeError> {
        let window = &self.buf[self.pos..self.end];
        let scan = &window[..window.len().min(max + 2)];
        match scan.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let eol = if i > 0 && scan[i - 1] == b'\r' { 2 } else { 1 };
                if i + 1 - eol > max {
                    return Err(self.error(DecodeErrorKind::LineTooLong { max }));
                }
                let outer = Limit {
                    end: self.end,
                    hard: self.hard,
                };
                self.end = self.pos + i + 1 - eol;
                self.hard = true;
                Ok(Line { outer, eol })
            }
            None if window.len() > max + 1 => Err(self.error(DecodeErrorKind::LineTooLong { max })),
            None if self.hard => Err(self.error(DecodeErrorKind::Mismatch {
                expected: "end of line".into(),
                found: "end of field".into(),
            })),
            None => Err(self.error(DecodeErrorKind::Incomplete { needed: 1 })),
        }
    }

    /// Ends a line: all of its content must have been read. Returns the terminator as received.
    pub fn end_line(&mut self, line: Line) -> Result<Bytes, DecodeError> {
        let eol = line.eol;
        self.end_limit(line.outer)?;
        self.bytes(eol)
    }

    /// One or more spaces, as received.
    pub fn spaces(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.buf[self.pos..self.end]
            .iter()
            .take_while(|&&b| b == b' ')
            .count();
        if n == 0 {
            return Err(self.error(DecodeErrorKind::Mismatch {
                expected: "a space".into(),
                found: self.peek_text(),
            }));
        }
        self.bytes(n)
    }

    /// How many bytes from here on satisfy `pred` (within the current limit).
    pub fn count_while(&self, pred: impl Fn(u8) -> bool) -> usize {
        self.buf[self.pos..self.end]
            .iter()
            .take_while(|&&b| pred(b))
            .count()
    }

    /// The input not yet decoded, up to the current limit.
    #[inline]
    pub fn ahead(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// The input not yet decoded, up to the current limit, begins with `lit`.
    #[inline]
    pub fn next_is(&self, lit: &[u8]) -> bool {
        self.buf[self.pos..self.end].starts_with(lit)
    }

    /// The input not yet decoded, up to the current limit, contains `lit`.
    pub fn ahead_contains(&self, lit: &[u8]) -> bool {
        find(&self.buf[self.pos..self.end], lit).is_some()
    }

    /// Zero or more spaces and tabs (HTTP's optional whitespace), as received.
    pub fn optional_spaces(&mut self) -> Bytes {
        let n = self.buf[self.pos..self.end]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        b
    }

    /// One or more bytes up to a space or the end of the line.
    pub fn token(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.buf[self.pos..self.end]
            .iter()
            .take_while(|&&b| b != b' ')
            .count();
        if n == 0 {
            return Err(self.error(DecodeErrorKind::Mismatch {
                expected: "a word".into(),
                found: self.peek_text(),
            }));
        }
        self.bytes(n)
    }

    /// The bytes of a decimal number (optional sign, then digits), kept as received.
    pub fn decimal(&mut self, width: Option<usize>) -> Result<Bytes, DecodeError> {
        let window = &self.buf[self.pos..self.end];
        let sign = usize::from(matches!(window.first(), Some(b'-' | b'+')));
        let digits = window[sign..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let n = sign + digits;
        if digits == 0 || width.is_some_and(|w| n != w) {
            return Err(self.error(DecodeErrorKind::Mismatch {
                expected: match width {
                    Some(w) => format!("a {w}-digit number"),
                    None => "a number".into(),
                },
                found: self.peek_text(),
            }));
        }
        self.bytes(n)
    }

    fn peek_text(&self) -> String {
        let w = &self.buf[self.pos..self.end];
        if w.is_empty() {
            "end of line".into()
        } else {
            escape(&w[..w.len().min(16)])
        }
    }
}

/// Calls `f` with the memory key of `name` and `key`, built on the stack when it is short.
fn with_key<R>(name: &[u8], key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let n = name.len() + 1 + key.len();
    let mut buf = [0u8; 96];
    if n > buf.len() {
        let mut k = Vec::with_capacity(n);
        k.extend_from_slice(name);
        k.push(0);
        k.extend_from_slice(key);
        return f(&k);
    }
    buf[..name.len()].copy_from_slice(name);
    buf[name.len() + 1..n].copy_from_slice(key);
    f(&buf[..n])
}

/// `name\0key`.
#[inline(always)]
fn memory_key(name: &[u8], key: &[u8]) -> Small {
    Small::key(name, key)
}

/// Where `needle` first occurs in `hay`: a byte search for the first byte, then a comparison
/// of the rest.
#[inline]
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [] => Some(0),
        [b] => find_byte(*b, hay),
        [first, rest @ ..] => {
            let mut from = 0;
            while let Some(i) = find_byte(*first, &hay[from..]) {
                let at = from + i;
                if hay[at + 1..].starts_with(rest) {
                    return Some(at);
                }
                from = at + 1;
            }
            None
        }
    }
}

/// Where `b` first occurs in `hay`. Terminated fields (names, paths, lines) are mostly short,
/// where `memchr`'s set-up costs more than the search: the first [`SHORT`] bytes are searched
/// eight at a time in a word (the zero-byte test of "Bit Twiddling Hacks"), the rest, if it
/// comes to that, by `memchr`.
#[inline]
pub(crate) fn find_byte(b: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() <= SHORT {
        return find_short(b, hay);
    }
    find_short(b, &hay[..SHORT]).or_else(|| find_long(b, &hay[SHORT..]))
}

/// [`find_byte`] past its first [`SHORT`] bytes: out of line, as it is seldom needed.
#[inline(never)]
fn find_long(b: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(b, hay).map(|i| SHORT + i)
}

/// How far [`find_byte`] searches a word at a time before it hands over to `memchr`.
const SHORT: usize = 64;

/// [`find_byte`] in a word at a time; a tail shorter than a word is searched in the last
/// word of `hay`, which overlaps what was searched already.
#[inline]
fn find_short(b: u8, hay: &[u8]) -> Option<usize> {
    let pattern = u64::from_ne_bytes([b; 8]);
    let n = hay.len();
    if n < 8 {
        return hay.iter().position(|&c| c == b);
    }
    let mut at = 0;
    while at + 8 <= n {
        if let Some(i) = first_in_word(hay, at, pattern) {
            return Some(at + i);
        }
        at += 8;
    }
    if at == n {
        return None;
    }
    // Nothing before `at` matched, so the first match in the last word is at or past it.
    let last = n - 8;
    first_in_word(hay, last, pattern).map(|i| last + i)
}

/// Where the first byte of `pattern` (all its bytes alike) occurs in the 8 bytes of `hay` at
/// `at`, which must be there.
#[inline(always)]
fn first_in_word(hay: &[u8], at: usize, pattern: u64) -> Option<usize> {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut word = [0u8; 8];
    word.copy_from_slice(&hay[at..at + 8]);
    let x = u64::from_le_bytes(word) ^ pattern;
    // The lowest set bit marks the first zero byte of `x` exactly (borrows only run up).
    let zero = x.wrapping_sub(LO) & !x & HI;
    (zero != 0).then(|| (zero.trailing_zeros() / 8) as usize)
}

/// `b"\xffSMB"` style rendering for messages.
pub(crate) fn escape(b: &[u8]) -> String {
    let mut s = String::from("b\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::{find, find_byte};

    /// The word-at-a-time search agrees with a plain one, wherever the byte is (or is not),
    /// before and after bytes that the zero-byte test could mistake (0x01 above a match).
    #[test]
    fn find_byte_matches_position() {
        for len in 0..150 {
            for at in 0..=len {
                let mut hay: Vec<u8> = (0..len).map(|i| 1 + (i % 200) as u8).collect();
                if at < len {
                    hay[at] = 0;
                    if at + 1 < len {
                        hay[at + 1] = 1;
                    }
                }
                let want = hay.iter().position(|&c| c == 0);
                assert_eq!(find_byte(0, &hay), want, "len {len} at {at}");
                // A second match further on (in an overlapping last word) changes nothing.
                if at + 1 < len {
                    hay[len - 1] = 0;
                    assert_eq!(find_byte(0, &hay), Some(at), "len {len} at {at}, twice");
                }
            }
        }
        assert_eq!(find_byte(b'\n', b"abc\r\nx\n"), Some(4));
        assert_eq!(find(b"ab\r\r\ncd", b"\r\n"), Some(3));
        assert_eq!(find(b"abc", b"\r\n"), None);
    }
}

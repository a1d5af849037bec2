//! Text bodies with their own framing: SMTP `DATA` (dot-stuffed, ended by a lone `.`) and HTTP
//! chunked transfer coding. Each keeps its bytes as received, so an unchanged body re-encodes
//! exactly; its value is the content, and setting a new content re-frames it canonically.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, DecodeErrorKind, EncodeError};
use super::reader::Reader;
use super::text::Leaf;
use super::value::{FieldValue, SetError, Value};
use super::writer::Writer;

/// An SMTP `DATA` body (RFC 5321 §4.5.2): lines up to a line holding a single `.`. `raw` is
/// everything as sent, the final `.` line included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DotStuffed {
    pub raw: Bytes,
}

impl DotStuffed {
    /// Dot-stuffs `content` and ends it with `.` on a line of its own (CRLF line ends).
    pub fn new(content: &[u8]) -> Self {
        let mut out = BytesMut::with_capacity(content.len() + 8);
        let mut at_line_start = true;
        for &b in content {
            if at_line_start && b == b'.' {
                out.put_u8(b'.');
            }
            out.put_u8(b);
            at_line_start = b == b'\n';
        }
        if !content.is_empty() && !content.ends_with(b"\r\n") {
            out.put_slice(b"\r\n");
        }
        out.put_slice(b".\r\n");
        DotStuffed { raw: out.freeze() }
    }

    /// The message content: stuffing removed, without the final `.` line.
    pub fn content(&self) -> Bytes {
        let end = self.raw.len() - terminator_len(&self.raw);
        let mut out = BytesMut::with_capacity(end);
        for line in self.raw[..end].split_inclusive(|&b| b == b'\n') {
            out.put_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out.freeze()
    }
}

/// Length of the final `.` line (`.\r\n` or `.\n`) at the end of `raw`.
fn terminator_len(raw: &[u8]) -> usize {
    if raw.ends_with(b".\r\n") {
        3
    } else {
        2
    }
}

impl Leaf for DotStuffed {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let start = r.pos();
        let mut probe = r.clone();
        let rest = probe.rest();
        let mut line_start = 0;
        while line_start < rest.len() {
            let Some(nl) = rest[line_start..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let line = &rest[line_start..line_start + nl + 1];
            if line == b".\r\n" || line == b".\n" {
                return Ok(DotStuffed {
                    raw: r.bytes(line_start + nl + 1)?,
                });
            }
            line_start += nl + 1;
        }
        let _ = start;
        Err(r.error(DecodeErrorKind::Incomplete { needed: 3 }))
    }

    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.raw);
        Ok(())
    }
}

/// An HTTP/1.1 chunked body (RFC 9112 §7.1): chunks `size[;ext]CRLF data CRLF`, a last chunk
/// `0`, trailer fields, and an empty line. `raw` is all of it as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chunked {
    pub raw: Bytes,
}

impl Chunked {
    /// One chunk holding `content`, then the last chunk.
    pub fn new(content: &[u8]) -> Self {
        let mut out = BytesMut::with_capacity(content.len() + 16);
        if !content.is_empty() {
            out.put_slice(format!("{:x}\r\n", content.len()).as_bytes());
            out.put_slice(content);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"0\r\n\r\n");
        Chunked { raw: out.freeze() }
    }

    /// The body with the chunk framing removed.
    pub fn content(&self) -> Bytes {
        let mut out = BytesMut::new();
        // `raw` was validated on decode (or built by `new`), so the walk cannot fail.
        let _ = walk(&self.raw, |data| out.put_slice(data));
        out.freeze()
    }
}

/// Walks chunked framing, passing each chunk's data to `data`; returns the framing's length.
fn walk(b: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, (usize, String)> {
    let mut at = 0;
    loop {
        let nl = b[at..]
            .iter()
            .position(|&c| c == b'\n')
            .ok_or((at, String::new()))?;
        let line = &b[at..at + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let hex_end = line
            .iter()
            .position(|c| !c.is_ascii_hexdigit())
            .unwrap_or(line.len());
        let size_text = &line[..hex_end];
        if size_text.is_empty()
            || size_text.len() > 15
            || !(hex_end == line.len() || matches!(line[hex_end], b';' | b' ' | b'\t'))
        {
            return Err((
                at,
                format!("bad chunk size line {:?}", String::from_utf8_lossy(line)),
            ));
        }
        let size =
            usize::from_str_radix(std::str::from_utf8(size_text).unwrap_or("0"), 16).unwrap_or(0);
        at += nl + 1;
        if size == 0 {
            // Trailer fields up to an empty line.
            loop {
                let nl = b[at..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .ok_or((at, String::new()))?;
                let line = &b[at..at + nl];
                at += nl + 1;
                if line.is_empty() || line == b"\r" {
                    return Ok(at);
                }
            }
        }
        if b.len() < at + size + 1 {
            return Err((b.len(), String::new()));
        }
        data(&b[at..at + size]);
        at += size;
        match &b[at..] {
            [b'\r', b'\n', ..] => at += 2,
            [b'\n', ..] => at += 1,
            [b'\r'] | [] => return Err((b.len(), String::new())),
            _ => return Err((at, "chunk data not followed by a line end".into())),
        }
    }
}

impl Leaf for Chunked {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let start = r.pos();
        let mut probe = r.clone();
        let rest = probe.rest();
        match walk(&rest, |_| {}) {
            Ok(n) => Ok(Chunked { raw: r.bytes(n)? }),
            Err((_, reason)) if reason.is_empty() => {
                Err(r.error(DecodeErrorKind::Incomplete { needed: 1 }))
            }
            Err((at, reason)) => Err(DecodeError::new(
                DecodeErrorKind::Invalid { reason },
                start + at,
            )),
        }
    }

    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.raw);
        Ok(())
    }
}

/// The value of a framed body is its content; setting a content re-frames it.
macro_rules! body_value {
    ($t:ty, $name:literal) => {
        impl FieldValue for $t {
            fn value(&self) -> Value {
                Value::Bytes(self.content())
            }
            fn set(&mut self, v: Value) -> Result<(), SetError> {
                match v {
                    Value::Bytes(b) => *self = <$t>::new(&b),
                    Value::Str(s) => *self = <$t>::new(s.as_bytes()),
                    other => {
                        return Err(SetError::WrongKind {
                            field: $name,
                            value: other.to_string(),
                        })
                    }
                }
                Ok(())
            }
        }
    };
}
body_value!(DotStuffed, "dot_stuffed");
body_value!(Chunked, "chunked");

#[cfg(test)]
mod tests {
    use super::*;

    fn decode<T: Leaf>(b: &'static [u8]) -> Result<(T, usize), DecodeError> {
        let mut r = Reader::new(Bytes::from_static(b));
        let v = T::decode(&mut r)?;
        Ok((v, r.pos()))
    }

    #[test]
    fn dot_stuffing_roundtrips_and_unstuffs() {
        let wire = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        let (d, used) = decode::<DotStuffed>(wire).unwrap();
        assert_eq!(used, wire.len() - 6);
        assert_eq!(&d.content()[..], b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(DotStuffed::new(&d.content()), d);
        assert!(decode::<DotStuffed>(b"no end yet\r\n")
            .unwrap_err()
            .is_incomplete());
    }

    #[test]
    fn chunked_roundtrips_and_unframes() {
        let wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let (c, used) = decode::<Chunked>(wire).unwrap();
        assert_eq!(used, wire.len() - 4);
        assert_eq!(&c.content()[..], b"Wikipedia");
        assert_eq!(
            &Chunked::new(b"Wikipedia").raw[..],
            b"9\r\nWikipedia\r\n0\r\n\r\n"
        );
        assert!(decode::<Chunked>(b"4\r\nWi").unwrap_err().is_incomplete());
        assert!(matches!(
            decode::<Chunked>(b"zz\r\n").unwrap_err().kind,
            DecodeErrorKind::Invalid { .. }
        ));
    }
}

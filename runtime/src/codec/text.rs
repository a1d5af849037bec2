//! Built-in text leaf types: decimal numbers and text renderings of addresses. Each keeps the
//! bytes it was decoded from, so an unchanged value re-encodes exactly (leading zeros, a `+`
//! sign, out-of-range numbers), and renders canonically once set.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use bytes::Bytes;

use super::error::{DecodeError, EncodeError};
use super::reader::Reader;
use super::value::{FieldValue, SetError, Value};
use super::writer::Writer;

/// A leaf type the runtime provides (referenced by name from specs).
pub trait Leaf: Sized {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError>;
    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError>;
}

/// A decimal number as sent: `250`, `-1`, `0042`, `99999999999999999999`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TextNumber {
    pub raw: Bytes,
}

impl TextNumber {
    pub fn from_value(v: i128) -> Self {
        TextNumber {
            raw: Bytes::from(v.to_string()),
        }
    }

    /// The number, if it fits an `i128`.
    pub fn value(&self) -> Option<i128> {
        std::str::from_utf8(&self.raw).ok()?.parse().ok()
    }

    /// Exactly `width` characters (a reply code).
    pub fn decode_width(r: &mut Reader, width: usize) -> Result<Self, DecodeError> {
        Ok(TextNumber {
            raw: r.decimal(Some(width))?,
        })
    }
}

impl Default for TextNumber {
    fn default() -> Self {
        TextNumber::from_value(0)
    }
}

impl Leaf for TextNumber {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(TextNumber {
            raw: r.decimal(None)?,
        })
    }
    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.raw);
        Ok(())
    }
}

impl FieldValue for TextNumber {
    fn value(&self) -> Value {
        match self.value() {
            Some(v) if v >= 0 && v <= u64::MAX as i128 => Value::Uint(v as u64),
            Some(v) if v >= i64::MIN as i128 && v < 0 => Value::Int(v as i64),
            _ => Value::Bytes(self.raw.clone()),
        }
    }
    fn set(&mut self, v: Value) -> Result<(), SetError> {
        *self = match v {
            Value::Uint(x) => TextNumber::from_value(x.into()),
            Value::Int(x) => TextNumber::from_value(x.into()),
            other => {
                return Err(SetError::WrongKind {
                    field: "number",
                    value: other.to_string(),
                })
            }
        };
        Ok(())
    }
}

/// Splits `text` on `sep` into numbers, each checked against `max`.
fn numbers(text: &[u8], sep: u8, count: usize, max: u32) -> Option<Vec<u32>> {
    let parts: Vec<&[u8]> = text.split(|&b| b == sep).collect();
    if parts.len() != count {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            if p.is_empty() || p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let v: u32 = std::str::from_utf8(p).ok()?.parse().ok()?;
            (v <= max).then_some(v)
        })
        .collect()
}

fn take_while_in(
    r: &mut Reader,
    allowed: impl Fn(u8) -> bool,
    what: &str,
) -> Result<Bytes, DecodeError> {
    let start = r.pos();
    let mut probe = r.clone();
    let mut n = 0;
    while probe.remaining() > 0 {
        let b = probe.uint(1)? as u8;
        if !allowed(b) {
            break;
        }
        n += 1;
    }
    if n == 0 {
        return Err(r.invalid(format!("expected {what} at byte {start}")));
    }
    r.bytes(n)
}

/// FTP's `h1,h2,h3,h4,p1,p2` (RFC 959 PORT and the 227 reply). Text that is not a valid
/// host-port (`114,115`, `300,1,1,1,1,1`) is kept as sent, with no address: fingerprinters send
/// such things, and the reply to them is part of a server's personality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub raw: Bytes,
    pub addr: Option<SocketAddrV4>,
}

impl HostPort {
    pub fn new(addr: SocketAddrV4) -> Self {
        let [a, b, c, d] = addr.ip().octets();
        let p = addr.port();
        HostPort {
            raw: Bytes::from(format!("{a},{b},{c},{d},{},{}", p >> 8, p & 0xff)),
            addr: Some(addr),
        }
    }
}

impl Leaf for HostPort {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count_while(|b| b.is_ascii_digit() || b == b',');
        let raw = r.bytes(n)?;
        let addr = numbers(&raw, b',', 6, 255).map(|n| {
            let ip = Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8);
            SocketAddrV4::new(ip, (n[4] << 8 | n[5]) as u16)
        });
        Ok(HostPort { raw, addr })
    }
    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.raw);
        Ok(())
    }
}

impl FieldValue for HostPort {
    fn value(&self) -> Value {
        match self.addr {
            Some(a) => Value::Socket(SocketAddr::V4(a)),
            None => Value::Bytes(self.raw.clone()),
        }
    }
    fn set(&mut self, v: Value) -> Result<(), SetError> {
        match (v, self.addr) {
            (Value::Socket(SocketAddr::V4(a)), _) => *self = HostPort::new(a),
            (Value::Ip(std::net::IpAddr::V4(ip)), Some(old)) => {
                *self = HostPort::new(SocketAddrV4::new(ip, old.port()))
            }
            (other, _) => {
                return Err(SetError::WrongKind {
                    field: "host_port",
                    value: other.to_string(),
                })
            }
        }
        Ok(())
    }
}

/// A dotted-quad IPv4 address in text (`132.235.1.2`), as in EPRT or `[1.2.3.4]` literals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ipv4Text {
    pub raw: Bytes,
    pub addr: Ipv4Addr,
}

impl Ipv4Text {
    pub fn new(addr: Ipv4Addr) -> Self {
        Ipv4Text {
            raw: Bytes::from(addr.to_string()),
            addr,
        }
    }
}

impl Leaf for Ipv4Text {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let at = r.pos();
        let raw = take_while_in(
            r,
            |b| b.is_ascii_digit() || b == b'.',
            "a dotted-quad address",
        )?;
        let n = numbers(&raw, b'.', 4, 255).ok_or_else(|| {
            DecodeError::new(
                super::DecodeErrorKind::Invalid {
                    reason: format!(
                        "not a dotted-quad address: {:?}",
                        String::from_utf8_lossy(&raw)
                    ),
                },
                at,
            )
        })?;
        Ok(Ipv4Text {
            raw,
            addr: Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8),
        })
    }
    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.raw);
        Ok(())
    }
}

impl FieldValue for Ipv4Text {
    fn value(&self) -> Value {
        Value::Ip(self.addr.into())
    }
    fn set(&mut self, v: Value) -> Result<(), SetError> {
        match v {
            Value::Ip(std::net::IpAddr::V4(a)) => *self = Ipv4Text::new(a),
            other => {
                return Err(SetError::WrongKind {
                    field: "dotted_quad",
                    value: other.to_string(),
                })
            }
        }
        Ok(())
    }
}

/// An SMTP enhanced status code (RFC 3463) and the space after it: `2.1.0 `. Empty when the
/// reply has none, so a reply without one decodes too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EnhancedStatus {
    pub raw: Bytes,
}

impl EnhancedStatus {
    /// `(class, subject, detail)`, when present.
    pub fn code(&self) -> Option<(u16, u16, u16)> {
        let t = std::str::from_utf8(&self.raw).ok()?.trim_end();
        let mut it = t.split('.').map(|p| p.parse::<u16>().ok());
        Some((it.next()??, it.next()??, it.next()??))
    }
}

/// Length of `class.subject.detail ` at the start of `b` (RFC 3463: class 2, 4 or 5, then one to
/// three digits, twice), or 0.
fn enhanced_len(b: &[u8]) -> usize {
    let digits = |from: usize, max: usize| {
        b[from..]
            .iter()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    if !matches!(b.first(), Some(b'2' | b'4' | b'5')) || b.get(1) != Some(&b'.') {
        return 0;
    }
    let s = digits(2, 3);
    if s == 0 || b.get(2 + s) != Some(&b'.') {
        return 0;
    }
    let d = digits(3 + s, 3);
    let end = 3 + s + d;
    if d == 0 || b.get(end).is_some_and(|c| c.is_ascii_digit()) {
        return 0;
    }
    match b.get(end) {
        Some(b' ') => end + 1,
        None => end,
        _ => 0,
    }
}

impl Leaf for EnhancedStatus {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let mut probe = r.clone();
        let n = enhanced_len(&probe.rest());
        Ok(EnhancedStatus { raw: r.bytes(n)? })
    }
    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.raw);
        Ok(())
    }
}

impl FieldValue for EnhancedStatus {
    fn value(&self) -> Value {
        Value::Bytes(self.raw.clone())
    }
    fn set(&mut self, v: Value) -> Result<(), SetError> {
        match v {
            Value::Bytes(b) if b.is_empty() || enhanced_len(&b) == b.len() => self.raw = b,
            Value::Str(s) if s.is_empty() || enhanced_len(s.as_bytes()) == s.len() => {
                self.raw = Bytes::from(s)
            }
            other => {
                return Err(SetError::WrongKind {
                    field: "enhanced_status",
                    value: other.to_string(),
                })
            }
        }
        Ok(())
    }
}

/// Text that may hold an RFC 5322 date (`Mon, 05 Oct 2009 01:05:54 -0500`), as SMTP banners
/// do: the whole text is kept; the date, when found, is the value, and setting a new date
/// replaces it in place.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DatedText {
    pub raw: Bytes,
}

const WEEKDAYS: [&[u8]; 7] = [
    b"Mon, ", b"Tue, ", b"Wed, ", b"Thu, ", b"Fri, ", b"Sat, ", b"Sun, ",
];

impl DatedText {
    /// Where the date is: from a weekday name to the end of its zone (`+0200`, `GMT`, ...).
    pub fn date_span(&self) -> Option<(usize, usize)> {
        let b = &self.raw[..];
        for start in 0..b.len() {
            if !WEEKDAYS.iter().any(|w| b[start..].starts_with(w)) {
                continue;
            }
            // day month year hh:mm:ss zone: five space-separated words after the weekday.
            let mut end = start + 5;
            let mut words = 0;
            while words < 5 && end < b.len() {
                let w = b[end..].iter().take_while(|c| **c != b' ').count();
                if w == 0 {
                    break;
                }
                end += w;
                words += 1;
                if words < 5 {
                    if b.get(end) != Some(&b' ') {
                        break;
                    }
                    end += 1;
                }
            }
            if words == 5 && b[start..end].iter().filter(|c| **c == b':').count() == 2 {
                return Some((start, end));
            }
        }
        None
    }
}

impl Leaf for DatedText {
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DatedText { raw: r.rest() })
    }
    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.bytes(&self.raw);
        Ok(())
    }
}

impl FieldValue for DatedText {
    fn value(&self) -> Value {
        match self.date_span() {
            Some((s, e)) => Value::Bytes(self.raw.slice(s..e)),
            None => Value::Bytes(Bytes::new()),
        }
    }
    fn set(&mut self, v: Value) -> Result<(), SetError> {
        let new = match v {
            Value::Bytes(b) => b,
            Value::Str(s) => Bytes::from(s),
            other => {
                return Err(SetError::WrongKind {
                    field: "dated_text",
                    value: other.to_string(),
                })
            }
        };
        let Some((s, e)) = self.date_span() else {
            return Err(SetError::WrongKind {
                field: "dated_text without a date",
                value: String::from_utf8_lossy(&new).into_owned(),
            });
        };
        let mut out = Vec::with_capacity(self.raw.len() + new.len());
        out.extend_from_slice(&self.raw[..s]);
        out.extend_from_slice(&new);
        out.extend_from_slice(&self.raw[e..]);
        self.raw = out.into();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_codes() {
        assert_eq!(enhanced_len(b"2.1.0 Ok"), 6);
        assert_eq!(enhanced_len(b"5.7.1"), 5);
        assert_eq!(enhanced_len(b"2.5 MB free"), 0);
        assert_eq!(enhanced_len(b"OK id=1"), 0);
        assert_eq!(enhanced_len(b"2.0.0Ok"), 0);
        let e = EnhancedStatus {
            raw: Bytes::from_static(b"4.7.10 "),
        };
        assert_eq!(e.code(), Some((4, 7, 10)));
    }

    #[test]
    fn dates_in_banner_text() {
        let mut t = DatedText {
            raw: Bytes::from_static(b"ESMTP Exim 4.69 #1 Mon, 05 Oct 2009 01:05:54 -0500 "),
        };
        assert_eq!(
            t.value(),
            Value::Bytes(Bytes::from_static(b"Mon, 05 Oct 2009 01:05:54 -0500"))
        );
        t.set(Value::Str("Sun, 22 Nov 2026 23:59:01 +0000".into()))
            .unwrap();
        assert_eq!(
            &t.raw[..],
            b"ESMTP Exim 4.69 #1 Sun, 22 Nov 2026 23:59:01 +0000 "
        );
        let none = DatedText {
            raw: Bytes::from_static(b"ESMTP Postfix"),
        };
        assert_eq!(none.value(), Value::Bytes(Bytes::new()));
    }
}

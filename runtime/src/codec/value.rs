//! Leaf values as the runtime sees them: read with [`FieldValue::value`], rewritten with
//! [`FieldValue::set`], whatever their wire form (binary integer, UTF-16, decimal text, ...).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

/// A leaf field's value, independent of its wire form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Uint(u64),
    Int(i64),
    Bytes(Bytes),
    Str(String),
    Ip(IpAddr),
    Socket(SocketAddr),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Uint(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Bytes(b) => {
                if !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c)) {
                    write!(f, "{:?}", String::from_utf8_lossy(b))
                } else {
                    f.write_str("0x")?;
                    b.iter().try_for_each(|c| write!(f, "{c:02x}"))
                }
            }
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Ip(a) => write!(f, "{a}"),
            Value::Socket(a) => write!(f, "{a}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("a {field} field cannot hold {value}")]
    WrongKind { field: &'static str, value: String },
    #[error("{value} does not fit in {bits} bits")]
    OutOfRange { value: String, bits: u32 },
}

/// A leaf field that the runtime can read and rewrite.
pub trait FieldValue {
    fn value(&self) -> Value;
    fn set(&mut self, v: Value) -> Result<(), SetError>;
}

fn wrong(field: &'static str, v: &Value) -> SetError {
    SetError::WrongKind {
        field,
        value: v.to_string(),
    }
}

macro_rules! uint_value {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn value(&self) -> Value {
                Value::Uint(u64::from(*self))
            }
            fn set(&mut self, v: Value) -> Result<(), SetError> {
                match v {
                    Value::Uint(x) => {
                        *self = <$t>::try_from(x).map_err(|_| SetError::OutOfRange {
                            value: x.to_string(),
                            bits: <$t>::BITS,
                        })?;
                        Ok(())
                    }
                    other => Err(wrong(stringify!($t), &other)),
                }
            }
        }
    )*};
}
uint_value!(u8, u16, u32, u64);

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
            fn set(&mut self, v: Value) -> Result<(), SetError> {
                let x = match v {
                    Value::Int(x) => x,
                    Value::Uint(x) => i64::try_from(x).unwrap_or(i64::MAX),
                    other => return Err(wrong(stringify!($t), &other)),
                };
                *self = <$t>::try_from(x).map_err(|_| SetError::OutOfRange {
                    value: x.to_string(),
                    bits: <$t>::BITS,
                })?;
                Ok(())
            }
        }
    )*};
}
int_value!(i8, i16, i32, i64);

impl FieldValue for Bytes {
    fn value(&self) -> Value {
        Value::Bytes(self.clone())
    }
    fn set(&mut self, v: Value) -> Result<(), SetError> {
        match v {
            Value::Bytes(b) => *self = b,
            Value::Str(s) => *self = Bytes::from(s.into_bytes()),
            Value::Ip(a) => *self = Bytes::from(a.to_string().into_bytes()),
            Value::Uint(x) => *self = Bytes::from(x.to_string().into_bytes()),
            other => return Err(wrong("bytes", &other)),
        }
        Ok(())
    }
}

/// A UTF-16LE string as received (code units, no terminator).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf16 {
    pub raw: Bytes,
}

impl Utf16 {
    pub fn from_text(s: &str) -> Self {
        let raw: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
        Utf16 { raw: raw.into() }
    }

    /// The string, with unpaired surrogates replaced.
    pub fn to_string_lossy(&self) -> String {
        let units: Vec<u16> = self
            .raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    }
}

impl FieldValue for Utf16 {
    fn value(&self) -> Value {
        Value::Str(self.to_string_lossy())
    }
    fn set(&mut self, v: Value) -> Result<(), SetError> {
        match v {
            Value::Str(s) => *self = Utf16::from_text(&s),
            Value::Ip(a) => *self = Utf16::from_text(&a.to_string()),
            Value::Bytes(b) => *self = Utf16 { raw: b },
            other => return Err(wrong("utf16", &other)),
        }
        Ok(())
    }
}

//! Decode and encode errors. A decode error names the byte offset where it happened, the path
//! of fields that led there (`netbios.Session.payload.smb.Message.body`) and the place in the
//! `.proto-dsl` file that declared the innermost field.

use std::fmt;

/// Static facts about one declared field, baked into generated code.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldInfo {
    pub protocol: &'static str,
    pub unit: &'static str,
    pub field: &'static str,
    /// `file.proto-dsl:line:col` of the field's declaration.
    pub location: &'static str,
    /// The field's role, if it has one.
    pub role: Option<&'static crate::codec::Role>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ends before the message does: a stream decoder waits for more bytes.
    Incomplete { needed: usize },
    /// A field needs more bytes than its enclosing length allows.
    Truncated { needed: usize, available: usize },
    /// A sized unit or line did not use all of its bytes.
    Trailing { count: usize },
    /// A constant or literal did not match.
    Mismatch { expected: String, found: String },
    /// No case of a switch matched and the switch has no `_` case.
    NoCase { value: String },
    /// A value that the declared type cannot hold (a malformed number, say).
    Invalid { reason: String },
    /// A line longer than the protocol's maximum.
    LineTooLong { max: usize },
    /// An offset points behind the current position.
    OffsetBackwards { target: usize },
    /// Nested units deeper than [`crate::codec::MAX_DEPTH`].
    TooDeep,
    /// A size or offset computation overflowed or went negative.
    Arithmetic,
}

/// A decode error, boxed: every decoder returns `Result<T, DecodeError>`, and a pointer-sized
/// error keeps those results (and the moves of them on the success path) small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(Box<DecodeErrorInner>);

/// What a [`DecodeError`] holds (its fields read through `Deref`: `e.kind`, `e.offset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeErrorInner {
    pub kind: DecodeErrorKind,
    /// Absolute byte offset in the decoded buffer.
    pub offset: usize,
    /// Fields from the innermost outwards.
    path: Vec<&'static FieldInfo>,
}

impl std::ops::Deref for DecodeError {
    type Target = DecodeErrorInner;
    fn deref(&self) -> &DecodeErrorInner {
        &self.0
    }
}

impl DecodeError {
    #[cold]
    pub fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        DecodeError(Box::new(DecodeErrorInner {
            kind,
            offset,
            path: Vec::new(),
        }))
    }

    /// Adds the enclosing field; generated code calls it as the error leaves each field.
    #[cold]
    pub fn in_field(mut self, info: &'static FieldInfo) -> Self {
        self.0.path.push(info);
        self
    }

    /// True when more input could make the decode succeed.
    pub fn is_incomplete(&self) -> bool {
        matches!(self.kind, DecodeErrorKind::Incomplete { .. })
    }

    /// `netbios.Session.payload.smb.Message.magic`.
    pub fn field_path(&self) -> String {
        render_path(&self.path)
    }

    /// Where the innermost field was declared.
    pub fn location(&self) -> Option<&'static str> {
        self.path.first().map(|f| f.location)
    }
}

fn render_path(path: &[&'static FieldInfo]) -> String {
    let mut out = String::new();
    let mut protocol = "";
    for info in path.iter().rev() {
        if !out.is_empty() {
            out.push('.');
        }
        if info.protocol != protocol {
            out.push_str(info.protocol);
            out.push('.');
            protocol = info.protocol;
        }
        out.push_str(info.unit);
        out.push('.');
        out.push_str(info.field);
    }
    out
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::Incomplete { needed } => {
                write!(f, "input ends {needed} byte(s) early")
            }
            DecodeErrorKind::Truncated { needed, available } => {
                write!(
                    f,
                    "needs {needed} byte(s) but only {available} remain in the enclosing length"
                )
            }
            DecodeErrorKind::Trailing { count } => {
                write!(f, "{count} byte(s) left over after the last field")
            }
            DecodeErrorKind::Mismatch { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            DecodeErrorKind::NoCase { value } => write!(f, "no switch case for {value}"),
            DecodeErrorKind::Invalid { reason } => f.write_str(reason),
            DecodeErrorKind::LineTooLong { max } => write!(f, "line longer than {max} bytes"),
            DecodeErrorKind::OffsetBackwards { target } => {
                write!(
                    f,
                    "offset points back to byte {target}, before the current position"
                )
            }
            DecodeErrorKind::TooDeep => {
                write!(f, "units nested deeper than {}", crate::codec::MAX_DEPTH)
            }
            DecodeErrorKind::Arithmetic => f.write_str("size or offset arithmetic overflowed"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)?;
        if !self.path.is_empty() {
            write!(f, " ({}", self.field_path())?;
            if let Some(loc) = self.location() {
                write!(f, ", {loc}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeErrorKind {
    /// A recomputed length, count or offset does not fit its field.
    OutOfRange { value: i128, bits: u32 },
    /// A size is not a whole number of the declared unit (an odd byte count for `words`).
    NotMultiple { size: usize, unit: usize },
    /// A value breaks the declared format (a bit field wider than declared, say).
    Invalid { reason: String },
}

/// An encode error, boxed for the same reason as [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(Box<EncodeErrorInner>);

/// What an [`EncodeError`] holds (`e.kind` through `Deref`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeErrorInner {
    pub kind: EncodeErrorKind,
    path: Vec<&'static FieldInfo>,
}

impl std::ops::Deref for EncodeError {
    type Target = EncodeErrorInner;
    fn deref(&self) -> &EncodeErrorInner {
        &self.0
    }
}

impl EncodeError {
    #[cold]
    pub fn new(kind: EncodeErrorKind) -> Self {
        EncodeError(Box::new(EncodeErrorInner {
            kind,
            path: Vec::new(),
        }))
    }

    #[cold]
    pub fn in_field(mut self, info: &'static FieldInfo) -> Self {
        self.0.path.push(info);
        self
    }

    pub fn field_path(&self) -> String {
        render_path(&self.path)
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EncodeErrorKind::OutOfRange { value, bits } => {
                write!(f, "value {value} does not fit in {bits} bits")?
            }
            EncodeErrorKind::NotMultiple { size, unit } => {
                write!(f, "size {size} is not a multiple of {unit} bytes")?
            }
            EncodeErrorKind::Invalid { reason } => f.write_str(reason)?,
        }
        if !self.path.is_empty() {
            write!(f, " ({})", self.field_path())?;
        }
        Ok(())
    }
}

impl std::error::Error for EncodeError {}

/// Names the field an error happened in, on a `Result` (`w.token(v).in_field(&INFO)?`).
pub trait InField {
    fn in_field(self, info: &'static FieldInfo) -> Self;
}

impl<T> InField for Result<T, DecodeError> {
    #[inline]
    fn in_field(self, info: &'static FieldInfo) -> Self {
        self.map_err(|e| e.in_field(info))
    }
}

impl<T> InField for Result<T, EncodeError> {
    #[inline]
    fn in_field(self, info: &'static FieldInfo) -> Self {
        self.map_err(|e| e.in_field(info))
    }
}

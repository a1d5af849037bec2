//! Support for generated codecs: a zero-copy [`Reader`], a patching [`Writer`], errors that name
//! the byte offset and the field path, field roles and the visitors that let the runtime
//! enumerate and rewrite role fields without naming a protocol, text and NDR value types, and a
//! `tokio_util` framing adapter.

mod anchors;
mod body;
mod decode;
mod describe;
mod encode;
mod error;
mod framing;
mod int;
mod memory;
mod ndr;
pub mod ops;
mod reader;
mod registry;
mod role;
mod text;
mod value;
mod walk;
mod writer;

pub use body::{Chunked, DotStuffed};
pub use bytes::{Bytes, BytesMut};
pub use decode::{bits, int_at, RunCheck, RunField, UnitScope};
pub use describe::Description;
pub use encode::{
    check_len, evaluated, invalid, length_value, offset_value, pack, put_at, text_after_space, Slot,
};
pub use error::{
    DecodeError, DecodeErrorInner, DecodeErrorKind, EncodeError, EncodeErrorInner, EncodeErrorKind,
    FieldInfo, InField,
};
pub use framing::{FrameBuf, FrameCodec, FrameError};
pub use int::Int;
pub use memory::Memory;
pub use ndr::Pointer;
pub use reader::{Limit, Reader, Span, MAX_DEPTH};
pub use registry::{decode_boxed, AnyMessage, DecodeFn, Entry};
pub use role::{
    Choices, Class, Issuer, MatchKey, Role, RoleField, RoleFields, SizeUnit, Visitor, VisitorMut,
};
pub use text::{DatedText, EnhancedStatus, HostPort, Ipv4Text, Leaf, TextNumber};
pub use value::{FieldValue, SetError, Utf16, Value};
pub use walk::{visit_elements, visit_unit, Walk};
pub use writer::{fit, Writer};

/// Byte order of multi-byte integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    Big,
    Little,
}

/// A top-level message: a unit without parameters, decodable from a buffer on its own.
pub trait Message: Sized {
    /// `protocol.Unit`.
    const NAME: &'static str;

    /// Decodes the message at the reader's position.
    fn decode_from_reader(r: &mut Reader) -> Result<Self, DecodeError>;

    /// Decodes one message from the start of `buf`; returns it and the bytes it used.
    fn decode(buf: Bytes) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(buf);
        let m = Self::decode_from_reader(&mut r)?;
        Ok((m, r.pos()))
    }

    /// Like [`Message::decode`], telling the spec which way the message travels
    /// (`is_request()` in expressions).
    fn decode_directed(buf: Bytes, is_request: bool) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(buf);
        r.set_request(is_request);
        let m = Self::decode_from_reader(&mut r)?;
        Ok((m, r.pos()))
    }

    /// Encodes the message at the writer's position.
    fn encode_to_writer(&self, w: &mut Writer) -> Result<(), EncodeError>;

    /// Encodes the message, recomputing every length, count and offset.
    fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode_to_writer(&mut Writer::new(out))
    }

    /// Shows every leaf field, with its class (content, role, layout), to `v`.
    fn visit(&self, v: &mut dyn Visitor);

    /// Lets `v` change leaf fields in place (rewriting); re-encode afterwards.
    fn visit_mut(&mut self, v: &mut dyn VisitorMut);

    /// Encodes into a fresh buffer.
    fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.freeze())
    }
}

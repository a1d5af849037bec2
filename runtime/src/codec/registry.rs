//! Messages whose type is chosen at run time: the binary and the runtime find a protocol's
//! decoder by name (`netbios.Session`) in a registry the build script generates.

use bytes::BytesMut;

use super::{DecodeError, EncodeError, Message, Reader, Visitor, VisitorMut};

/// The object-safe face of a [`Message`].
pub trait AnyMessage: std::fmt::Debug + Send + Sync {
    /// `protocol.Unit`.
    fn name(&self) -> &'static str;
    fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError>;
    fn visit(&self, v: &mut dyn Visitor);
    fn visit_mut(&mut self, v: &mut dyn VisitorMut);
}

impl<M: Message + std::fmt::Debug + Send + Sync> AnyMessage for M {
    fn name(&self) -> &'static str {
        M::NAME
    }
    fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        Message::encode(self, out)
    }
    fn visit(&self, v: &mut dyn Visitor) {
        Message::visit(self, v)
    }
    fn visit_mut(&mut self, v: &mut dyn VisitorMut) {
        Message::visit_mut(self, v)
    }
}

/// Decodes one message of a fixed type from the reader's position.
pub type DecodeFn = fn(&mut Reader) -> Result<Box<dyn AnyMessage>, DecodeError>;

/// Decodes with `M` and boxes the result (the registry's entries are this, per type).
pub fn decode_boxed<M: Message + std::fmt::Debug + Send + Sync + 'static>(
    r: &mut Reader,
) -> Result<Box<dyn AnyMessage>, DecodeError> {
    Ok(Box::new(M::decode_from_reader(r)?))
}

/// One registered message type.
#[derive(Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    /// Frames a TCP stream (declared with `framing`).
    pub framing: bool,
    /// The largest frame the spec allows, header included (`framing Unit max N;`); a stream's
    /// limit is the smaller of this and the configuration's.
    pub max_frame: Option<usize>,
    pub decode: DecodeFn,
}

impl Entry {
    /// The largest message accepted on a stream of these frames: `configured`, or less when
    /// the spec says so.
    pub fn max_message(&self, configured: usize) -> usize {
        self.max_frame.map_or(configured, |m| m.min(configured))
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("framing", &self.framing)
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

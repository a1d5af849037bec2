//! The encoder's side: appends to a `BytesMut`, and lets generated code reserve room for a
//! length, count or offset and patch it once the field it describes has been written.

use bytes::{BufMut, BytesMut};

use super::anchors::Anchors;
use super::error::{EncodeError, EncodeErrorKind};
use super::int::scatter;
use super::ByteOrder;

pub struct Writer<'a> {
    buf: &'a mut BytesMut,
    start: usize,
    order: ByteOrder,
    anchors: Anchors,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut BytesMut) -> Self {
        let start = buf.len();
        Writer {
            buf,
            start,
            order: ByteOrder::Big,
            anchors: Anchors::default(),
        }
    }

    /// Absolute position (in the underlying buffer) of the next byte written.
    #[inline]
    pub fn pos(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub fn order(&self) -> ByteOrder {
        self.order
    }

    #[inline]
    pub fn set_order(&mut self, order: ByteOrder) {
        self.order = order;
    }

    #[inline]
    pub fn enter(&self) -> usize {
        self.anchors.len()
    }

    #[inline]
    pub fn leave(&mut self, mark: usize) {
        self.anchors.truncate(mark);
    }

    #[inline]
    pub fn push_anchor(&mut self, name: &'static str) {
        self.anchors.push(name, self.buf.len());
    }

    /// The innermost anchor of that name; where encoding started when none is set.
    pub fn anchor(&self, name: &str) -> usize {
        self.anchors.find(name).unwrap_or(self.start)
    }

    #[inline]
    pub fn uint(&mut self, v: u64, n: usize) {
        self.uint_in(v, n, self.order);
    }

    #[inline]
    pub fn uint_in(&mut self, v: u64, n: usize, order: ByteOrder) {
        match (n, order) {
            (1, _) => self.buf.put_u8(v as u8),
            (2, ByteOrder::Big) => self.buf.put_u16(v as u16),
            (2, ByteOrder::Little) => self.buf.put_u16_le(v as u16),
            (4, ByteOrder::Big) => self.buf.put_u32(v as u32),
            (4, ByteOrder::Little) => self.buf.put_u32_le(v as u32),
            (8, ByteOrder::Big) => self.buf.put_u64(v),
            (8, ByteOrder::Little) => self.buf.put_u64_le(v),
            (_, ByteOrder::Big) => self.buf.put_slice(&v.to_be_bytes()[8 - n..]),
            (_, ByteOrder::Little) => self.buf.put_slice(&v.to_le_bytes()[..n]),
        }
    }

    #[inline]
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
    }

    /// `v` then `end`, with room made for both at once.
    #[inline]
    pub(crate) fn bytes_then(&mut self, v: &[u8], end: &[u8]) {
        self.buf.reserve(v.len() + end.len());
        self.buf.extend_from_slice(v);
        self.buf.extend_from_slice(end);
    }

    /// What was written from `pos` on.
    pub fn since(&self, pos: usize) -> &[u8] {
        &self.buf[pos.min(self.buf.len())..]
    }

    /// Room for an `n`-byte value written later with [`Writer::patch`].
    #[inline]
    pub fn reserve(&mut self, n: usize) -> usize {
        let at = self.buf.len();
        self.buf.put_bytes(0, n);
        at
    }

    /// Writes `v` into room reserved earlier.
    #[inline]
    pub fn patch(&mut self, at: usize, v: u64, n: usize, order: ByteOrder) {
        scatter(&mut self.buf[at..at + n], v, order);
    }

    /// Padding to the next multiple of `to` from `anchor`: the bytes received when they still
    /// fit, zeros otherwise.
    pub fn align(&mut self, to: usize, anchor: &str, kept: &[u8]) {
        let rel = self.buf.len() - self.anchor(anchor);
        let pad = (to - rel % to) % to;
        if kept.len() == pad {
            self.buf.put_slice(kept);
        } else {
            self.buf.put_bytes(0, pad);
        }
    }
}

/// Checks that a recomputed value fits its field.
#[inline]
pub fn fit(value: i128, bits: u32) -> Result<u64, EncodeError> {
    let max = if bits >= 64 {
        u64::MAX as i128
    } else {
        (1i128 << bits) - 1
    };
    if value < 0 || value > max {
        Err(EncodeError::new(EncodeErrorKind::OutOfRange {
            value,
            bits,
        }))
    } else {
        Ok(value as u64)
    }
}

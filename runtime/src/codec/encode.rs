//! What generated encoders share, as [`Writer`] methods and functions: typed integers, room
//! for a length, count or offset filled in once its target is written, the recomputed
//! values themselves, and bit-field packing.

use super::decode::UnitScope;
use super::error::{EncodeError, EncodeErrorKind};
use super::int::{scatter, Int};
use super::writer::{fit, Writer};
use super::{ops, ByteOrder, Pointer};

/// Room reserved for a value written once what it describes is encoded.
#[must_use]
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    at: usize,
    n: usize,
    order: ByteOrder,
}

impl Writer<'_> {
    /// Begins a unit, in its own byte order if it declares one.
    #[inline]
    pub fn begin_unit(&mut self, order: Option<ByteOrder>) -> UnitScope {
        let mark = self.enter();
        let outer = self.order();
        if let Some(o) = order {
            self.set_order(o);
        }
        UnitScope { mark, outer }
    }

    /// Ends a unit: its anchors go, the byte order around it comes back.
    #[inline]
    pub fn end_unit(&mut self, scope: UnitScope) {
        self.set_order(scope.outer);
        self.leave(scope.mark);
    }

    /// [`Writer::begin_unit`] for a unit that sets no anchors; returns the byte order around
    /// it, which [`Writer::set_order`] restores at its end.
    #[inline]
    pub fn begin_plain(&mut self, order: Option<ByteOrder>) -> ByteOrder {
        let outer = self.order();
        if let Some(o) = order {
            self.set_order(o);
        }
        outer
    }

    /// An integer in `n` bytes, in the current byte order.
    #[inline]
    pub fn int<T: Int>(&mut self, v: T, n: usize) {
        self.uint(v.to_wire(), n);
    }

    /// An integer in `n` bytes, in a byte order of its own.
    #[inline]
    pub fn int_in<T: Int>(&mut self, v: T, n: usize, order: ByteOrder) {
        self.uint_in(v.to_wire(), n, order);
    }

    /// Room for an `n`-byte value in the current byte order, filled by [`Writer::fill`].
    #[inline]
    pub fn slot(&mut self, n: usize) -> Slot {
        let order = self.order();
        self.slot_in(n, order)
    }

    /// Room for an `n`-byte value in a byte order of its own.
    #[inline]
    pub fn slot_in(&mut self, n: usize, order: ByteOrder) -> Slot {
        Slot {
            at: self.reserve(n),
            n,
            order,
        }
    }

    /// Writes `v` into room reserved earlier.
    #[inline]
    pub fn fill(&mut self, slot: Slot, v: u64) {
        self.patch(slot.at, v, slot.n, slot.order);
    }

    /// Bytes then their terminator, which they must not contain. Always inlined: the delimiter is a constant where generated code calls it, and the
    /// usual NUL or CR then goes straight to the byte search.
    #[inline(always)]
    pub fn bytes_until(&mut self, v: &[u8], delim: &[u8]) -> Result<(), EncodeError> {
        let inside = match delim {
            [d] => super::reader::find_byte(*d, v).is_some(),
            _ => v.windows(delim.len()).any(|x| x == delim),
        };
        if inside {
            return Err(invalid("the value contains its own terminator"));
        }
        self.bytes_then(v, delim);
        Ok(())
    }

    /// A word: one or more bytes, no space.
    pub fn token(&mut self, v: &[u8]) -> Result<(), EncodeError> {
        if v.is_empty() || v.contains(&b' ') {
            return Err(invalid("a token must be one or more bytes without spaces"));
        }
        self.bytes(v);
        Ok(())
    }

    /// A literal kept as received, matched without regard to case; the spec's when empty.
    pub fn ci_literal(&mut self, v: &[u8], lit: &[u8]) {
        self.bytes(if v.is_empty() { lit } else { v });
    }

    /// Zero or more spaces and tabs.
    pub fn optional_spaces(&mut self, v: &[u8]) -> Result<(), EncodeError> {
        if v.iter().any(|b| *b != b' ' && *b != b'\t') {
            return Err(invalid("optional whitespace must be spaces or tabs"));
        }
        self.bytes(v);
        Ok(())
    }

    /// One or more spaces (one when none was kept).
    pub fn spaces(&mut self, v: &[u8]) -> Result<(), EncodeError> {
        if v.iter().any(|b| *b != b' ') {
            return Err(invalid("spaces must be spaces"));
        }
        self.bytes(if v.is_empty() { b" " } else { v });
        Ok(())
    }

    /// UTF-16 code units, then the NUL code unit that ends them.
    pub fn utf16z(&mut self, raw: &[u8]) -> Result<(), EncodeError> {
        if !raw.len().is_multiple_of(2) || raw.chunks_exact(2).any(|c| c == [0, 0]) {
            return Err(invalid("the string contains a NUL, its terminator"));
        }
        self.bytes(raw);
        self.bytes(&[0, 0]);
        Ok(())
    }

    /// A pointer's referent id; a null one has no pointee, and a pointee needs a referent.
    pub fn referent<T>(&mut self, p: &Pointer<T>) -> Result<(), EncodeError> {
        if (p.referent == 0) != p.value.is_none() {
            return Err(invalid(
                "a null referent must have no pointee, and a pointee needs a referent",
            ));
        }
        self.uint(u64::from(p.referent), 4);
        Ok(())
    }

    /// Ends a line begun at `start`: the content must not hold a line break, end in CR before
    /// a bare LF, or pass `max`; then the terminator as received (`eol`), or the protocol's.
    pub fn end_line(
        &mut self,
        start: usize,
        eol: &[u8],
        term: &[u8],
        max: usize,
    ) -> Result<(), EncodeError> {
        let content = self.since(start);
        if content.contains(&b'\n')
            || content.len() > max
            || (content.last() == Some(&b'\r') && eol == b"\n")
        {
            return Err(invalid("a line cannot contain a line break, end in CR before a bare LF, or pass the maximum length"));
        }
        self.bytes(if eol.is_empty() { term } else { eol });
        Ok(())
    }
}

/// Text that follows whitespace must not start with whitespace: the decoder would take it as
/// part of the spaces before it.
pub fn text_after_space(v: Option<&[u8]>, tabs_too: bool) -> Result<(), EncodeError> {
    match v.and_then(|v| v.first()) {
        Some(b' ') => Err(invalid(
            "text after whitespace cannot start with a space or a tab",
        )),
        Some(b'\t') if tabs_too => Err(invalid(
            "text after whitespace cannot start with a space or a tab",
        )),
        _ => Ok(()),
    }
}

/// A byte string sized by an expression of fields must still have that size, or it would not
/// decode back (a `bytes[8]` signature set to 9 bytes).
#[inline]
pub fn check_len(len: usize, want: i128) -> Result<(), EncodeError> {
    if i128::try_from(len).ok() == Some(want) {
        Ok(())
    } else {
        Err(invalid("the value does not have the size its spec gives"))
    }
}

/// The value of a length or count field of `bits` bits for `size` bytes (or elements):
/// `size / unit + add`.
#[inline]
pub fn length_value(size: usize, add: i64, unit: u64, bits: u32) -> Result<u64, EncodeError> {
    let v = ops::length_of(size, add, unit).ok_or_else(|| {
        EncodeError::new(EncodeErrorKind::NotMultiple {
            size,
            unit: unit as usize,
        })
    })?;
    fit(v, bits)
}

/// The value of an offset field of `bits` bits: from `anchor` to `target`, plus `add`.
#[inline]
pub fn offset_value(target: usize, anchor: usize, add: i64, bits: u32) -> Result<u64, EncodeError> {
    let v = ops::add(target as i128 - anchor as i128, i128::from(add)).ok_or(EncodeError::new(
        EncodeErrorKind::OutOfRange {
            value: i128::MAX,
            bits,
        },
    ))?;
    fit(v, bits)
}

/// Puts `x` at bit `shift` of a bit-field group; `x` must fit in `bits` bits.
#[inline]
pub fn pack(group: u64, x: u64, bits: u32, shift: u32) -> Result<u64, EncodeError> {
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    if x > mask {
        return Err(invalid(format!("{x} does not fit in {bits} bits")));
    }
    Ok(group | (x << shift))
}

/// The value of a spec expression on encode; `None` means it overflowed.
#[inline]
pub fn evaluated<T>(v: Option<T>) -> Result<T, EncodeError> {
    v.ok_or_else(|| invalid("expression overflowed"))
}

/// A value the encoder refuses, with the reason.
pub fn invalid(reason: impl Into<String>) -> EncodeError {
    EncodeError::new(EncodeErrorKind::Invalid {
        reason: reason.into(),
    })
}

/// Puts `v` in `n` bytes at `at` of `b` (a run of integers encoded at once), in `order`.
/// Always inlined: `at`, `n` and usually `order` are constants where generated code calls it.
#[inline(always)]
pub fn put_at<T: Int, const N: usize>(
    b: &mut [u8; N],
    at: usize,
    n: usize,
    order: ByteOrder,
    v: T,
) {
    scatter(&mut b[at..at + n], v.to_wire(), order);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_lengths_and_bits() {
        let mut out = bytes::BytesMut::new();
        let mut w = Writer::new(&mut out);
        w.set_order(ByteOrder::Little);
        let s = w.slot(2);
        w.int(-2i8, 1);
        let len = length_value(w.pos() - 2, 0, 1, 16).unwrap();
        w.fill(s, len);
        assert_eq!(&out[..], b"\x01\x00\xfe");
        assert!(length_value(3, 0, 2, 16).is_err());
        assert!(length_value(70000, 0, 1, 16).is_err());
        assert_eq!(offset_value(10, 4, 2, 8).unwrap(), 8);
        assert_eq!(pack(0, 3, 2, 4).unwrap(), 0b11_0000);
        assert!(pack(0, 4, 2, 4).is_err());
    }
}

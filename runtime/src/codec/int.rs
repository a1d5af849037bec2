//! Integers as generated codecs read and write them: every field type converts from and to
//! the `u64` the [`crate::codec::Reader`] and [`crate::codec::Writer`] move, so generated code
//! needs no casts of its own.

use super::ByteOrder;

/// A fixed-width integer field type (`u8` .. `u64`, `i8` .. `i64`).
pub trait Int: Copy {
    /// The value of `n` wire bytes (already assembled in the right byte order); signed types
    /// take the bits as they are (two's complement of their own width).
    fn from_wire(v: u64) -> Self;
    /// The bits to put on the wire, zero-extended.
    fn to_wire(self) -> u64;
}

macro_rules! int {
    ($($t:ty => $u:ty),*) => {$(
        impl Int for $t {
            #[inline]
            fn from_wire(v: u64) -> Self {
                v as $u as $t
            }
            #[inline]
            fn to_wire(self) -> u64 {
                self as $u as u64
            }
        }
    )*};
}

/// The value of wire bytes `b` (at most 8) in `order`. Always inlined: where the length and
/// order are constants, it folds into one load.
#[inline(always)]
pub(crate) fn assemble(b: &[u8], order: ByteOrder) -> u64 {
    match (b.len(), order) {
        (1, _) => u64::from(b[0]),
        (2, ByteOrder::Big) => u64::from(u16::from_be_bytes([b[0], b[1]])),
        (2, ByteOrder::Little) => u64::from(u16::from_le_bytes([b[0], b[1]])),
        (4, ByteOrder::Big) => u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        (4, ByteOrder::Little) => u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        (_, ByteOrder::Big) => b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
        (_, ByteOrder::Little) => b
            .iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
    }
}

/// Writes the low `dst.len()` bytes of `v` into `dst` in `order` (the inverse of
/// [`assemble`]).
#[inline(always)]
pub(crate) fn scatter(dst: &mut [u8], v: u64, order: ByteOrder) {
    let n = dst.len();
    match order {
        ByteOrder::Big => dst.copy_from_slice(&v.to_be_bytes()[8 - n..]),
        ByteOrder::Little => dst.copy_from_slice(&v.to_le_bytes()[..n]),
    }
}

int!(u8 => u8, u16 => u16, u32 => u32, u64 => u64, i8 => u8, i16 => u16, i32 => u32, i64 => u64);

#[cfg(test)]
mod tests {
    use super::Int;

    #[test]
    fn signed_values_keep_their_bits() {
        assert_eq!(i16::from_wire(0xfffe), -2);
        assert_eq!((-2i16).to_wire(), 0xfffe);
        assert_eq!(u32::from_wire(0x0102_0304), 0x0102_0304);
        assert_eq!(0x0102u16.to_wire(), 0x0102);
    }
}

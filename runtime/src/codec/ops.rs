//! Checked arithmetic for expressions in generated code. Expression values are `i128`;
//! anything that would overflow, divide by zero or shift too far yields `None`, which the
//! decoder reports as [`crate::codec::DecodeErrorKind::Arithmetic`] instead of panicking.

#[inline]
pub fn add(a: i128, b: i128) -> Option<i128> {
    a.checked_add(b)
}
#[inline]
pub fn sub(a: i128, b: i128) -> Option<i128> {
    a.checked_sub(b)
}
#[inline]
pub fn mul(a: i128, b: i128) -> Option<i128> {
    a.checked_mul(b)
}
#[inline]
pub fn div(a: i128, b: i128) -> Option<i128> {
    a.checked_div(b)
}
#[inline]
pub fn rem(a: i128, b: i128) -> Option<i128> {
    a.checked_rem(b)
}
#[inline]
pub fn neg(a: i128) -> Option<i128> {
    a.checked_neg()
}
#[inline]
pub fn shl(a: i128, b: i128) -> Option<i128> {
    u32::try_from(b).ok().and_then(|b| a.checked_shl(b))
}
#[inline]
pub fn shr(a: i128, b: i128) -> Option<i128> {
    u32::try_from(b).ok().and_then(|b| a.checked_shr(b))
}

/// A size or count as `usize`.
#[inline]
pub fn usize(v: i128) -> Option<usize> {
    usize::try_from(v).ok()
}

/// The byte size a length field gives: `(value - add) * unit`.
#[inline]
pub fn size(value: i128, add: i64, unit: u64) -> Option<usize> {
    usize(
        value
            .checked_sub(i128::from(add))?
            .checked_mul(i128::from(unit))?,
    )
}

/// The value a length field takes for `size` bytes: `size / unit + add`; `None` if `size` is
/// not a whole number of units.
#[inline]
pub fn length_of(size: usize, add: i64, unit: u64) -> Option<i128> {
    let unit = usize::try_from(unit).ok()?;
    if !size.is_multiple_of(unit) {
        return None;
    }
    i128::try_from(size / unit)
        .ok()?
        .checked_add(i128::from(add))
}

/// A number as decimal text, kept on the stack: how numbers are keyed and stored in session
/// memory, without an allocation per message.
pub struct Decimal {
    buf: [u8; 40],
    start: usize,
}

/// `v` in decimal (`-170141183460469231731687303715884105728` is the longest, 40 bytes).
#[inline]
pub fn decimal(v: i128) -> Decimal {
    let mut buf = [0u8; 40];
    let mut start = buf.len();
    let mut n = v.unsigned_abs();
    // 128-bit division is a library call: digits of what fits 64 bits use 64-bit division.
    while n > u128::from(u64::MAX) {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let mut n = n as u64;
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    Decimal { buf, start }
}

impl std::ops::Deref for Decimal {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimal_matches_to_string() {
        for v in [
            0i128,
            7,
            -7,
            10,
            65535,
            4294967296 * 3 + 5,
            i128::from(u64::MAX),
            i128::from(u64::MAX) + 1,
            i128::MAX,
            i128::MIN,
        ] {
            assert_eq!(&decimal(v)[..], v.to_string().as_bytes());
        }
    }
}

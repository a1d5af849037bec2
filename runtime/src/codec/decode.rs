//! What generated decoders share, as [`Reader`] methods: typed integers, expected constants,
//! regions sized by a length field, arrays, and the check that a length agrees with what it
//! describes. Each would otherwise be inlined at every field of every spec.

use bytes::Bytes;

use super::error::{DecodeError, DecodeErrorKind, FieldInfo};
use super::int::{assemble, Int};
use super::reader::{Limit, Reader};
use super::{ops, ByteOrder};

/// A unit being decoded (or encoded): where its anchors begin, and the byte order around it.
#[must_use]
#[derive(Debug)]
pub struct UnitScope {
    pub(crate) mark: usize,
    pub(crate) outer: ByteOrder,
}

impl Reader {
    /// Begins a unit: one level deeper, in its own byte order if it declares one.
    #[inline]
    pub fn begin_unit(&mut self, order: Option<ByteOrder>) -> Result<UnitScope, DecodeError> {
        let mark = self.enter()?;
        let outer = self.order();
        if let Some(o) = order {
            self.set_order(o);
        }
        Ok(UnitScope { mark, outer })
    }

    /// Ends a unit: its anchors go, the byte order around it comes back.
    #[inline]
    pub fn end_unit(&mut self, scope: UnitScope) {
        self.set_order(scope.outer);
        self.leave(scope.mark);
    }

    /// [`Reader::begin_unit`] for a unit that sets no anchors (most): nothing to remember of
    /// them; returns the byte order around it, for [`Reader::end_plain`].
    #[inline]
    pub fn begin_plain(&mut self, order: Option<ByteOrder>) -> Result<ByteOrder, DecodeError> {
        self.descend()?;
        let outer = self.order();
        if let Some(o) = order {
            self.set_order(o);
        }
        Ok(outer)
    }

    /// Ends a unit begun with [`Reader::begin_plain`].
    #[inline]
    pub fn end_plain(&mut self, outer: ByteOrder) {
        self.set_order(outer);
        self.ascend();
    }

    /// The error of a switch without a case for the values of its selectors.
    pub fn no_case(&self, values: &[&dyn std::fmt::Debug]) -> DecodeError {
        let value = values
            .iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.error(DecodeErrorKind::NoCase { value })
    }

    /// An integer of `n` bytes in the current byte order.
    #[inline]
    pub fn int<T: Int>(&mut self, n: usize) -> Result<T, DecodeError> {
        self.uint(n).map(T::from_wire)
    }

    /// An integer of `n` bytes in a byte order of its own.
    #[inline]
    pub fn int_in<T: Int>(&mut self, n: usize, order: ByteOrder) -> Result<T, DecodeError> {
        self.uint_in(n, order).map(T::from_wire)
    }

    /// `v`, if it is the constant the spec expects (`word_count: u8 = 1`).
    #[inline]
    pub fn expect<T: Int + Into<i128>>(&self, v: T, want: i128) -> Result<T, DecodeError> {
        self.expect_at(v, want, self.pos())
    }

    /// [`Reader::expect`] for a field of a run read at once ([`Reader::run`]): `end` is where
    /// the field ends, the position a field read alone would report.
    #[inline]
    pub fn expect_at<T: Int + Into<i128>>(
        &self,
        v: T,
        want: i128,
        end: usize,
    ) -> Result<T, DecodeError> {
        let got: i128 = v.into();
        if got == want {
            Ok(v)
        } else {
            Err(mismatch(want, got, end))
        }
    }

    /// The value of a spec expression; `None` (overflow, division by zero, ...) is an
    /// arithmetic error.
    #[inline]
    pub fn arith<T>(&self, v: Option<T>) -> Result<T, DecodeError> {
        v.ok_or_else(|| self.arithmetic())
    }

    /// `n` bytes, `n` computed by an expression.
    #[inline]
    pub fn bytes_by(&mut self, n: i128) -> Result<Bytes, DecodeError> {
        let n = self.arith(ops::usize(n))?;
        self.bytes(n)
    }

    /// The bytes a size held in another field gives: none when that field is absent; an
    /// arithmetic error when it is there but holds no size (a text number too long for any
    /// size would otherwise read as absent and re-encode as 0).
    #[inline]
    pub fn bytes_held(&mut self, held: Option<Option<i128>>) -> Result<Bytes, DecodeError> {
        let n = match held {
            None => 0,
            Some(v) => self.arith(v.and_then(ops::usize))?,
        };
        self.bytes(n)
    }

    /// Restricts reading to what a length field gives: `(value - add) * unit` bytes, less
    /// the `used` bytes already read since the first field it covers.
    #[inline]
    pub fn limit_by(
        &mut self,
        value: i128,
        add: i64,
        unit: u64,
        used: usize,
    ) -> Result<Limit, DecodeError> {
        let n = self.arith(ops::size(value, add, unit).and_then(|n| n.checked_sub(used)))?;
        self.limit(n)
    }

    /// Restricts reading to `n` bytes, `n` computed by an expression (`within`).
    #[inline]
    pub fn limit_to(&mut self, n: i128) -> Result<Limit, DecodeError> {
        let n = self.arith(ops::usize(n))?;
        self.limit(n)
    }

    /// Moves forward to where an offset field points: `offset` from the anchor `from`, less
    /// `add`; the bytes skipped are returned (kept as received).
    #[inline]
    pub fn seek_offset(
        &mut self,
        offset: i128,
        from: &str,
        add: i64,
    ) -> Result<Bytes, DecodeError> {
        let target = ops::add(offset, self.anchor(from) as i128)
            .and_then(|t| ops::sub(t, i128::from(add)))
            .and_then(ops::usize);
        let target = self.arith(target)?;
        self.seek_to(target)
    }

    /// Leaves a limit that was only set when a condition held.
    #[inline]
    pub fn end_limit_if(&mut self, saved: Option<Limit>) -> Result<(), DecodeError> {
        match saved {
            Some(l) => self.end_limit(l),
            None => Ok(()),
        }
    }

    /// Checks that a length, count or offset that did not size its target agrees with it
    /// (`want`, `None` when the target is not a whole number of units), so that a decoded
    /// message re-encodes to the bytes it came from.
    #[inline]
    pub fn check_size(
        &self,
        info: &'static FieldInfo,
        want: Option<i128>,
        have: i128,
        what: &str,
    ) -> Result<(), DecodeError> {
        if want == Some(have) {
            return Ok(());
        }
        Err(self.size_mismatch(info, want, have, what))
    }

    #[cold]
    fn size_mismatch(
        &self,
        info: &'static FieldInfo,
        want: Option<i128>,
        have: i128,
        what: &str,
    ) -> DecodeError {
        let want = want.map_or_else(|| "a whole number of units".to_string(), |v| v.to_string());
        self.error(DecodeErrorKind::Mismatch {
            expected: format!("{want} ({what})"),
            found: have.to_string(),
        })
        .in_field(info)
    }

    /// `n` elements decoded by `elem`.
    #[inline]
    pub fn count<T>(
        &mut self,
        n: usize,
        mut elem: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        // Every element uses a byte at least: a count larger than the input cannot reserve more.
        let mut out = Vec::with_capacity(n.min(self.remaining()));
        for _ in 0..n {
            out.push(self.element(&mut elem)?);
        }
        Ok(out)
    }

    /// `n` elements, `n` given by a count field: `value - add`.
    #[inline]
    pub fn count_by<T>(
        &mut self,
        value: i128,
        add: i64,
        elem: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.arith(ops::size(value, add, 1))?;
        self.count(n, elem)
    }

    /// `n` elements, `n` computed by an expression.
    #[inline]
    pub fn count_expr<T>(
        &mut self,
        n: i128,
        elem: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.arith(ops::usize(n))?;
        self.count(n, elem)
    }

    /// Elements up to the end of the current limit, each at least `min` bytes long (known
    /// when generating; 1 when nothing better is). Room for the most elements the bytes left
    /// can hold is made at once, up to 1 KiB of elements, so that a short
    /// list (SMB's dialects) is allocated once instead of grown.
    #[inline]
    pub fn to_end<T>(
        &mut self,
        min: usize,
        mut elem: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let most = self.remaining() / min.max(1);
        let mut out = Vec::with_capacity(most.min(TO_END_RESERVE / size_of::<T>().max(1)));
        while self.remaining() > 0 {
            out.push(self.element(&mut elem)?);
        }
        Ok(out)
    }

    /// Elements up to and including the first for which `stop` holds.
    #[inline]
    pub fn until<T>(
        &mut self,
        mut elem: impl FnMut(&mut Self) -> Result<T, DecodeError>,
        mut stop: impl FnMut(&Self, &T) -> Result<bool, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let mut out = Vec::new();
        loop {
            let e = self.element(&mut elem)?;
            let last = stop(self, &e)?;
            out.push(e);
            if last {
                return Ok(out);
            }
        }
    }

    /// One array element, which must use input: an empty one would repeat forever.
    #[inline]
    fn element<T>(
        &mut self,
        elem: &mut impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        let before = self.pos();
        let e = elem(self)?;
        if self.pos() == before {
            return Err(self.invalid("an array element used no bytes"));
        }
        Ok(e)
    }
}

/// The most bytes of elements [`Reader::to_end`] reserves before the first: enough for a
/// typical list, little enough that a list of long elements wastes no more.
const TO_END_RESERVE: usize = 1024;

/// A field of a run of fixed-size fields read at once ([`Reader::run`]), as the run's error
/// path needs it: what was read before a short field is checked as the field alone would be.
#[derive(Debug)]
pub struct RunField {
    pub info: &'static FieldInfo,
    /// Its bytes; it begins where the previous field of the run ends.
    pub size: usize,
    /// The constant an integer field must hold (`word_count: u8 = 0`).
    pub check: Option<RunCheck>,
}

/// The constant a field of a run must hold, and how to read it.
#[derive(Debug)]
pub struct RunCheck {
    pub want: i128,
    pub signed: bool,
    /// Its own byte order, when it names one; the run's otherwise.
    pub order: Option<ByteOrder>,
}

impl RunField {
    pub const fn new(info: &'static FieldInfo, size: usize) -> Self {
        RunField {
            info,
            size,
            check: None,
        }
    }

    /// A field that must hold `want`.
    pub const fn checked(
        info: &'static FieldInfo,
        size: usize,
        want: i128,
        signed: bool,
        order: Option<ByteOrder>,
    ) -> Self {
        RunField {
            info,
            size,
            check: Some(RunCheck {
                want,
                signed,
                order,
            }),
        }
    }
}

impl Reader {
    /// The error of a run that does not fit in what remains: the fields are gone through as
    /// if read one by one, so that a constant that does not hold, or else the field that runs
    /// past the end, is the error, named and placed as it would be alone.
    #[cold]
    pub(crate) fn run_short(&self, fields: &[RunField], order: ByteOrder) -> DecodeError {
        let mut at = self.pos();
        for f in fields {
            let bytes = &self.ahead()[at - self.pos()..];
            if bytes.len() < f.size {
                return self.short_at(at, f.size).in_field(f.info);
            }
            if let Some(c) = &f.check {
                let wire = assemble(&bytes[..f.size], c.order.unwrap_or(order));
                let got = if c.signed {
                    let shift = 128 - 8 * f.size as u32;
                    (i128::from(wire) << shift) >> shift
                } else {
                    i128::from(wire)
                };
                if got != c.want {
                    return mismatch(c.want, got, at + f.size).in_field(f.info);
                }
            }
            at += f.size;
        }
        // Unreachable while the fields add up to the run: the last one would have been short.
        self.short_at(self.pos(), fields.iter().map(|f| f.size).sum())
    }
}

#[cold]
fn mismatch(want: i128, got: i128, at: usize) -> DecodeError {
    DecodeError::new(
        DecodeErrorKind::Mismatch {
            expected: want.to_string(),
            found: got.to_string(),
        },
        at,
    )
}

/// The integer of `n` bytes at `at` in `b` (the bytes of a [`Reader::run`]), in `order`.
/// Always inlined: `at`, `n` and usually `order` are constants where generated code calls it,
/// and the whole read then folds into one load.
#[inline(always)]
pub fn int_at<T: Int, const N: usize>(b: &[u8; N], at: usize, n: usize, order: ByteOrder) -> T {
    T::from_wire(assemble(&b[at..at + n], order))
}

/// Bits `shift ..` of a bit-field group, as the field's type (the width is the type's, masked
/// to `bits`).
#[inline]
pub fn bits<T: Int>(group: u64, shift: u32, bits: u32) -> T {
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    T::from_wire((group >> shift) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_arrays_and_checks() {
        let mut r = Reader::new(Bytes::from_static(b"\x02\x01\x02\x03\x04"));
        let n: u8 = r.int(1).unwrap();
        let lim = r.limit_by(i128::from(n), 0, 2, 0).unwrap();
        let v: Vec<u8> = r.to_end(1, |r| r.int(1)).unwrap();
        r.end_limit(lim).unwrap();
        assert_eq!(v, [1, 2, 3, 4]);
        assert!(r.expect(3u8, 3).is_ok());
        assert!(r.expect(3u8, 4).is_err());
        assert!(r.limit_by(1, 2, 1, 0).is_err());
        assert_eq!(bits::<u8>(0b1011_0000, 4, 3), 0b011);
    }

    static WORDS: FieldInfo = info("word_count");
    static BYTES: FieldInfo = info("byte_count");
    static RUN: [RunField; 2] = [
        RunField::checked(&WORDS, 1, 0, false, None),
        RunField::new(&BYTES, 2),
    ];

    const fn info(field: &'static str) -> FieldInfo {
        FieldInfo {
            protocol: "t",
            unit: "U",
            field,
            location: "t.proto-dsl:1:1",
            role: None,
        }
    }

    /// The two fields read one by one, as a run replaces them.
    fn one_by_one(r: &mut Reader) -> Result<(u8, u16), DecodeError> {
        let w = r.field(&WORDS, |r| r.int::<u8>(1).and_then(|v| r.expect(v, 0)))?;
        let b = r.field(&BYTES, |r| r.int::<u16>(2))?;
        Ok((w, b))
    }

    /// A run that does not fit gives the error of the fields read one by one: a constant
    /// that does not hold before the field that runs short, the short field otherwise, inside
    /// a limit (truncated) or at the end of the input (incomplete).
    #[test]
    fn a_short_run_fails_as_its_fields_would() {
        for input in [
            &b"\x05\x01"[..],
            b"\x00\x01",
            b"",
            b"\x07\x01\x02\x03",
            b"\x00\x01\x02",
        ] {
            for limit in [None, Some(2)] {
                let reader = || {
                    let mut r = Reader::new(Bytes::copy_from_slice(input));
                    let lim = limit.map(|n: usize| r.limit(n.min(input.len())));
                    (r, lim)
                };
                let (mut r, _lim) = reader();
                let want = one_by_one(&mut r).map(|_| r.pos());
                let (mut r, _lim) = reader();
                let got = r
                    .run::<3>(&RUN, ByteOrder::Little)
                    .and_then(|(at, b)| {
                        r.expect_at(int_at::<u8, 3>(&b, 0, 1, ByteOrder::Little), 0, at + 1)
                            .map_err(|e| e.in_field(&WORDS))
                    })
                    .map(|_| r.pos());
                assert_eq!(got, want, "{input:?} in {limit:?}");
            }
        }
    }

    #[test]
    fn empty_elements_are_refused() {
        let mut r = Reader::new(Bytes::from_static(b"ab"));
        assert!(r.to_end(1, |_| Ok(())).is_err());
        let mut r = Reader::new(Bytes::from_static(b"ab\0c"));
        let v = r.until(|r| r.int::<u8>(1), |_, e| Ok(*e == 0)).unwrap();
        assert_eq!(v, [b'a', b'b', 0]);
    }
}

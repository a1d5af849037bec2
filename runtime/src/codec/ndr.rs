//! NDR pointers: a referent id on the wire where the pointer stands, the pointee later, after
//! the scalars of the enclosing deferring unit (C706 ch. 14).

use super::{DecodeError, Reader};

/// A unique or full pointer. `referent` is kept as decoded (it is a cookie: declare it with
/// `@cookie`); `value` is `None` for a null pointer (referent 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pointer<T> {
    pub referent: u32,
    pub value: Option<T>,
}

impl<T> Pointer<T> {
    pub fn null() -> Self {
        Pointer {
            referent: 0,
            value: None,
        }
    }

    pub fn to(referent: u32, value: T) -> Self {
        Pointer {
            referent,
            value: Some(value),
        }
    }
}

impl<T> Pointer<T> {
    /// Decodes the referent id and, unless it is null, the pointee right after it.
    #[inline]
    pub fn decode(
        r: &mut Reader,
        pointee: impl FnOnce(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let referent: u32 = r.int(4)?;
        let value = if referent != 0 {
            Some(pointee(r)?)
        } else {
            None
        };
        Ok(Pointer { referent, value })
    }

    /// Decodes the referent id alone; the pointee comes later, deferred.
    #[inline]
    pub fn decode_referent(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Pointer {
            referent: r.int(4)?,
            value: None,
        })
    }
}

impl<T> Default for Pointer<T> {
    fn default() -> Self {
        Pointer::null()
    }
}

//! NDR pointers: a referent id on the wire where the pointer stands, the pointee later, after
//! the scalars of the enclosing deferring unit (C706 ch. 14).

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

impl<T> Default for Pointer<T> {
    fn default() -> Self {
        Pointer::null()
    }
}

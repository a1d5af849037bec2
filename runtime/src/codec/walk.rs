//! What generated `visit_fields` and `visit_fields_mut` share: a nested unit and the elements
//! of an array are levels of the field path, for a [`Visitor`] and a [`VisitorMut`] alike.

use super::{Visitor, VisitorMut};

/// The path levels of a visitor, either kind.
pub trait Walk {
    fn enter(&mut self, name: &str);
    fn leave(&mut self);
}

impl Walk for dyn Visitor + '_ {
    #[inline]
    fn enter(&mut self, name: &str) {
        Visitor::enter(self, name)
    }
    #[inline]
    fn leave(&mut self) {
        Visitor::leave(self)
    }
}

impl Walk for dyn VisitorMut + '_ {
    #[inline]
    fn enter(&mut self, name: &str) {
        VisitorMut::enter(self, name)
    }
    #[inline]
    fn leave(&mut self) {
        VisitorMut::leave(self)
    }
}

/// Visits a nested unit (`f`) as the level `name`.
#[inline]
pub fn visit_unit<V: Walk + ?Sized>(v: &mut V, name: &str, f: impl FnOnce(&mut V)) {
    v.enter(name);
    f(v);
    v.leave();
}

/// Visits the elements of an array as the level `name`, each as the level of its index.
pub fn visit_elements<V: Walk + ?Sized, T>(
    v: &mut V,
    name: &str,
    items: impl IntoIterator<Item = T>,
    mut f: impl FnMut(&mut V, T),
) {
    v.enter(name);
    for (i, e) in items.into_iter().enumerate() {
        // Decimal text on the stack: no allocation per element.
        let digits = super::ops::decimal(i as i128);
        v.enter(std::str::from_utf8(&digits).unwrap_or_default());
        f(v, e);
        v.leave();
    }
    v.leave();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Class, FieldValue};

    #[derive(Default)]
    struct Paths(Vec<String>, Vec<String>);

    impl Visitor for Paths {
        fn enter(&mut self, name: &str) {
            self.1.push(name.to_string());
        }
        fn leave(&mut self) {
            self.1.pop();
        }
        fn field(&mut self, name: &'static str, _: Class, _: &dyn FieldValue) {
            self.0.push(format!("{}.{name}", self.1.join(".")));
        }
    }

    #[test]
    fn elements_are_levels_by_index() {
        let mut p = Paths::default();
        let items = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        let v: &mut dyn Visitor = &mut p;
        visit_unit(v, "u", |v| {
            visit_elements(v, "a", &items, |v, e| v.field("item", Class::Content, e))
        });
        assert_eq!(p.0[0], "u.a.0.item");
        assert_eq!(p.0[10], "u.a.10.item");
        assert!(p.1.is_empty());
    }
}

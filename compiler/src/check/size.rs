//! A rough estimate of the bytes a unit's generated struct takes, so that a wide switch boxes
//! only the cases that would make every value large (a box costs an allocation per message).

use std::collections::HashMap;

use crate::ir::{self, Ty, TypeRef};

/// What a heap-owning leaf (`Bytes`, `String`, a `Vec`) takes inline.
const HANDLE: usize = 32;
/// A pointer, an `Option`'s tag or a switch's discriminant (with padding).
const WORD: usize = 8;

/// Estimated sizes of units by `protocol::Unit`, computed on demand.
pub(super) struct Sizes<'a> {
    units: HashMap<String, &'a ir::Unit>,
    known: HashMap<String, usize>,
    /// Units being estimated: reaching one again is a cycle, which is boxed (a pointer).
    open: Vec<String>,
}

impl<'a> Sizes<'a> {
    pub(super) fn new(protocols: &'a [ir::Protocol]) -> Self {
        let units = protocols
            .iter()
            .flat_map(|p| {
                p.units
                    .iter()
                    .map(|u| (format!("{}::{}", p.name, u.name), u))
            })
            .collect();
        Sizes {
            units,
            known: HashMap::new(),
            open: Vec::new(),
        }
    }

    /// The estimated size of the unit `t`.
    pub(super) fn unit(&mut self, t: &TypeRef) -> usize {
        let key = format!("{}::{}", t.protocol, t.name);
        if let Some(&n) = self.known.get(&key) {
            return n;
        }
        if self.open.contains(&key) {
            return WORD;
        }
        let Some(&u) = self.units.get(&key) else {
            return WORD;
        };
        self.open.push(key.clone());
        let n = u.fields().map(|f| self.field(f)).sum();
        self.open.pop();
        self.known.insert(key, n);
        n
    }

    fn field(&mut self, f: &ir::Field) -> usize {
        let inner = if f.boxed { WORD } else { self.ty(&f.ty) };
        inner + if f.optional() { WORD } else { 0 }
    }

    /// The estimated size of a value of type `ty`.
    pub(super) fn ty(&mut self, ty: &Ty) -> usize {
        match ty {
            Ty::Int { bits, .. } => int_bytes(*bits),
            Ty::Enum { bits, .. } => 2 * int_bytes(*bits),
            Ty::Unit { target, .. } => self.unit(target),
            Ty::Ptr(inner) => WORD + self.ty(inner),
            Ty::Switch(sw) => {
                let mut largest = 0;
                for c in &sw.cases {
                    let n = match &c.ty {
                        _ if c.boxed => WORD,
                        Some(t) => self.ty(t),
                        None => 0,
                    };
                    largest = largest.max(n);
                }
                WORD + largest
            }
            _ => HANDLE,
        }
    }
}

/// The bytes of the smallest Rust integer holding `bits`.
fn int_bytes(bits: u32) -> usize {
    match bits {
        0..=8 => 1,
        9..=16 => 2,
        17..=32 => 4,
        33..=64 => 8,
        _ => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{field, program};
    use super::*;

    #[test]
    fn sizes_add_up_fields_and_take_the_largest_case() {
        let p = program(&["protocol t;\nunit Small {\n    a: u8;\n    b: u32;\n}\nunit Big {\n    s: Small;\n    d: bytes[4];\n    k: u8;\n    c: switch (k) {\n        0 -> A: Small;\n        _ -> B: u16;\n    };\n}\n"]);
        let mut sizes = Sizes::new(&p.protocols);
        let t = |name: &str| TypeRef {
            protocol: "t".into(),
            name: name.into(),
        };
        assert_eq!(sizes.unit(&t("Small")), 5);
        assert_eq!(sizes.ty(&field(&p, "Big", "c").ty), WORD + 5);
        assert_eq!(sizes.unit(&t("Big")), 5 + HANDLE + 1 + WORD + 5);
    }
}

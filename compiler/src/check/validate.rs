//! Validation of a lowered field against what declares it: a length's target can vary in
//! size, a constant fits its integer, a field holding a length is an unconditional integer.

use protodsl_grammar::ast;
use protodsl_grammar::Source;

use super::state::{Scope, UnitBody};
use super::Checker;
use crate::ir::{self, SizeUnit, Ty};

impl Checker<'_> {
    /// Lengths must describe something whose size can vary, counts an array; records the
    /// fields a length measures.
    pub(super) fn check_lengths_of(&mut self, src: &Source, u: &mut UnitBody, name: &str, ty: &Ty) {
        let lengths: Vec<_> = u
            .facts
            .lengths
            .iter()
            .filter(|(target, _)| target.name == name)
            .cloned()
            .collect();
        for (target, info) in lengths {
            match (ty, info.unit) {
                (Ty::Array { .. }, SizeUnit::Elements) => {}
                (_, SizeUnit::Elements) => self.err_hint(
                    src,
                    target.span,
                    format!("`{name}` is not an array, so it has no count"),
                    "use @length for a size in bytes or words",
                ),
                (Ty::Int { .. } | Ty::Enum { .. } | Ty::Literal(_) | Ty::CiLiteral(_), _)
                    if info.last == name =>
                {
                    self.err_hint(
                        src,
                        target.span,
                        format!("`{name}` has a fixed size, so no length can describe it"),
                        "a length describes bytes, strings, units, arrays or a range of fields (`of = first .. last`)",
                    )
                }
                _ => {}
            }
            if info.unit != SizeUnit::Elements {
                u.layout.measured.insert(info.last.clone());
                u.layout.measured.insert(target.name.clone());
            }
        }
    }

    /// A constant (`flags: u8 = 0x18;`): checked on decode when the field is named, a default
    /// when reserved. Returns `(check, default)`.
    pub(super) fn field_constant(
        &mut self,
        src: &Source,
        proto: &str,
        f: &ast::Field,
        ty: &Ty,
    ) -> (Option<i128>, Option<i128>) {
        let Some(v) = &f.value else {
            return (None, None);
        };
        let Some(val) = self.const_eval(src, &Scope::constants(proto), v, &mut Vec::new()) else {
            return (None, None);
        };
        let Ty::Int { bits, signed, .. } = ty else {
            self.err(src, v.span, "only integer fields take a constant; write the literal as the type (`magic: b\"\\xffSMB\";`)");
            return (None, None);
        };
        let (lo, hi) = if *signed {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        } else {
            (0, (1i128 << bits) - 1)
        };
        if val < lo || val > hi {
            self.err(src, v.span, format!("{val} does not fit in {bits} bits"));
        }
        if f.name.is_some() {
            (Some(val), None)
        } else {
            (None, Some(val))
        }
    }

    /// A field holding a length, count or offset is an unconditional integer; an integer is 1
    /// to 64 bits wide. False when the field must be dropped.
    pub(super) fn check_field_holds_roles(
        &mut self,
        src: &Source,
        f: &ast::Field,
        name: &str,
        ty: &Ty,
        roles: &[ir::Role],
    ) -> bool {
        let bits = match ty {
            Ty::Int { bits, .. } => Some(*bits),
            _ => None,
        };
        if roles.iter().any(ir::Role::is_derived) {
            if bits.is_none() {
                self.err_hint(
                    src,
                    f.ty.span,
                    format!("`{name}` holds a length, count or offset, so it must be an integer"),
                    "declare it as u8..u64 (text lengths are not supported yet)",
                );
                return false;
            }
            if f.condition.is_some() {
                self.err(
                    src,
                    f.name_span,
                    "a length, count or offset cannot be conditional",
                );
                return false;
            }
        }
        if let Some(bits @ (0 | 65..)) = bits {
            self.err(
                src,
                f.ty.span,
                format!("integer width {bits} is out of range (1 to 64 bits)"),
            );
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{errors, field, program};

    #[test]
    fn constants_check_named_fields_and_default_reserved_ones() {
        let p = program(&["protocol t;\nunit A {\n    magic: u8 = 0xfe;\n    _: u16 = 7;\n}\n"]);
        assert_eq!(field(&p, "A", "magic").check, Some(0xfe));
        let reserved = field(&p, "A", "_reserved0");
        assert_eq!((reserved.check, reserved.default), (None, Some(7)));
        assert_eq!(
            errors(&["protocol t;\nunit A {\n    x: i8 = 128;\n}\n"]),
            ["128 does not fit in 8 bits"]
        );
    }

    #[test]
    fn lengths_describe_what_can_vary() {
        assert!(errors(&["protocol t;\nunit A {\n    n: u8 @length(of = a .. b);\n    a: u8;\n    b: bytes;\n}\n"]).is_empty(), "a range may start at a fixed-size field");
        assert_eq!(
            errors(&["protocol t;\nunit A {\n    n: u8 @count(of = d);\n    d: bytes;\n}\n"]),
            ["`d` is not an array, so it has no count"]
        );
    }
}

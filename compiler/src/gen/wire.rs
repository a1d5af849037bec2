//! The fewest input bytes a value takes, known when generating: an array read to the end of
//! its length reserves room for as many elements as the bytes left could hold (bounded by the
//! runtime) instead of growing. An estimate only sizes that reservation; 1 where nothing
//! better is known (every element uses a byte, or the array refuses it).

use crate::ir::{self, BytesSize, Expr, Item, Ty};

/// How deep units are followed into units (recursive units end there).
const MAX_DEPTH: usize = 4;

/// The fewest bytes a value of `ty` (of protocol `p`) takes, at least 1.
pub(super) fn min_size(p: &ir::Protocol, ty: &Ty) -> usize {
    ty_min(p, ty, 0).max(1)
}

fn ty_min(p: &ir::Protocol, ty: &Ty, depth: usize) -> usize {
    match ty {
        Ty::Int { bits, .. } | Ty::Enum { bits, .. } => bits.div_ceil(8) as usize,
        Ty::Bytes(BytesSize::Until(d)) => d.len(),
        Ty::Bytes(BytesSize::Expr(Expr::Int(n))) => usize::try_from(*n).unwrap_or(0),
        Ty::Literal(l) | Ty::CiLiteral(l) => l.len(),
        Ty::Utf16z => 2,
        Ty::Unit { target, .. } if target.protocol == p.name && depth < MAX_DEPTH => p
            .units
            .iter()
            .find(|u| u.name == target.name)
            .map_or(0, |u| unit_min(p, u, depth + 1)),
        _ => 0,
    }
}

fn unit_min(p: &ir::Protocol, u: &ir::Unit, depth: usize) -> usize {
    u.items
        .iter()
        .map(|i| match i {
            Item::Field(f) if f.cond.is_none() && f.view.is_none() && f.size_from.is_none() => {
                ty_min(p, &f.ty, depth)
            }
            Item::Bits(g) => g.bytes,
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{field, program};

    /// An SMB dialect: a format byte and a NUL-terminated name take 2 bytes at least; what
    /// only a condition reads counts nothing, and a value of no known size counts 1.
    #[test]
    fn fixed_fields_and_terminators_add_up() {
        let prog = program(&["protocol t;\nunit Dialect {\n    format: u8 = 2;\n    name: cstring;\n}\nunit List {\n    k: u8;\n    x: u32 if k == 1;\n    d: Dialect[];\n    rest: bytes;\n}\n"]);
        let p = prog.protocols.last().expect("a protocol");
        let ty = |name: &str| &field(&prog, "List", name).ty;
        let Ty::Array { elem, .. } = ty("d") else {
            panic!("an array")
        };
        assert_eq!(min_size(p, elem), 2);
        assert_eq!(min_size(p, ty("x")), 4);
        assert_eq!(min_size(p, ty("rest")), 1);
        let list = p.units.iter().find(|u| u.name == "List").expect("List");
        assert_eq!(unit_min(p, list, 0), 1);
    }
}

//! Bit layout: packing bit fields into whole bytes, and the decode limits a length opens
//! around its target.

use protodsl_grammar::{ast, Source};

use super::state::{FieldSym, OpenLimit, SizedBy, UnitBody};
use super::Checker;
use crate::ir::{self, Conv, Ty};

impl Checker<'_> {
    pub(super) fn flush_bits(&mut self, src: &Source, u: &mut UnitBody) {
        if u.layout.bits.is_empty() {
            return;
        }
        let total: u32 = u.layout.bits.iter().map(|f| f.bits()).sum();
        let first_span = u.layout.bits[0].span;
        if !total.is_multiple_of(8) {
            let widths: Vec<String> = u
                .layout
                .bits
                .iter()
                .map(|f| format!("u{}", f.bits()))
                .collect();
            self.err_hint(
                src,
                first_span,
                format!(
                    "bit fields {} fill {total} bits, which is not a whole number of bytes",
                    widths.join(" + ")
                ),
                format!(
                    "pad the group to {} bits with a reserved field such as `_: u{};`",
                    total.div_ceil(8) * 8,
                    total.div_ceil(8) * 8 - total
                ),
            );
        } else if total > 64 {
            self.err(
                src,
                first_span,
                format!(
                    "bit fields fill {total} bits; a group of packed fields may take at most 64"
                ),
            );
        } else {
            let fields = std::mem::take(&mut u.layout.bits)
                .into_iter()
                .map(|f| f.field)
                .collect();
            u.layout.items.push(ir::Item::Bits(ir::BitGroup {
                bytes: (total / 8) as usize,
                fields,
            }));
        }
        u.layout.bits.clear();
        self.emit_inclusive_limits(u);
    }

    /// Opens the limit of a length that counts from an earlier field, once the length field
    /// itself has been read.
    pub(super) fn emit_inclusive_limits(&mut self, u: &mut UnitBody) {
        for inc in std::mem::take(&mut u.layout.pending_inclusive) {
            open_limit(u, &inc.sized, Some(inc.first), None);
        }
    }

    /// Places a lowered field: into the pending bit group, or (after flushing it) as an item,
    /// `within` a size when declared so; then it enters the scope and closes the limits that end
    /// with it.
    pub(super) fn place_field(
        &mut self,
        src: &Source,
        u: &mut UnitBody,
        f: &ast::Field,
        field: ir::Field,
        within: Option<ir::Expr>,
        layout: bool,
    ) {
        let name = field.name.clone();
        let ty = field.ty.clone();
        let bits = match ty {
            Ty::Int { bits, .. } => Some(bits),
            _ => None,
        };
        if bits.is_some_and(|b| b % 8 != 0) || (bits.is_some() && !u.layout.bits.is_empty()) {
            if field.cond.is_some() {
                self.err(src, f.name_span, "a bit field cannot be conditional");
            }
            if within.is_some() {
                self.err(
                    src,
                    f.name_span,
                    "a bit field cannot be decoded `within` a size",
                );
            }
            u.layout.bits.push(BitField {
                field,
                span: f.name_span,
            });
            let total: u32 = u.layout.bits.iter().map(BitField::bits).sum();
            if total.is_multiple_of(8) {
                self.flush_bits(src, u);
            }
        } else {
            self.flush_bits(src, u);
            match within {
                Some(size) => {
                    let id = u.layout.limit_id();
                    u.layout.items.push(ir::Item::BeginWithin { id, size });
                    u.layout.items.push(ir::Item::Field(field));
                    u.layout.items.push(ir::Item::EndLimit { id });
                }
                None => u.layout.items.push(ir::Item::Field(field)),
            }
        }
        if let Some(inc) = u.facts.inclusive.get(&name).cloned() {
            u.layout.pending_inclusive.push(inc);
        }
        if u.layout.bits.is_empty() {
            self.emit_inclusive_limits(u);
        }
        if !layout {
            let sym = FieldSym {
                conv: ty.conv(),
                optional: f.condition.is_some(),
                unit: match &ty {
                    Ty::Unit { target, .. } => Some(target.clone()),
                    _ => None,
                },
            };
            u.names.decoded.insert(name.clone(), sym);
        }
        // Close limits that end with this field.
        while let Some(open) = u.layout.open_limits.last().cloned() {
            if open.last != name {
                break;
            }
            self.flush_bits(src, u);
            u.layout.items.push(ir::Item::EndLimit { id: open.id });
            u.layout.open_limits.pop();
        }
    }
}

/// Opens the decode limit a length puts around its target (`since`: a length that counts from
/// an earlier field, opened right after the length itself).
pub(super) fn open_limit(
    u: &mut UnitBody,
    sb: &SizedBy,
    since: Option<String>,
    when: Option<ir::Expr>,
) {
    let id = u.layout.limit_id();
    let conv = u
        .names
        .decoded
        .get(&sb.length_field)
        .map_or(Conv::Int, |s| s.conv);
    u.layout.items.push(ir::Item::BeginLimit {
        id,
        length_field: sb.length_field.clone(),
        conv,
        unit_bytes: sb.unit.bytes(),
        add: sb.add,
        since,
        when,
    });
    u.layout.open_limits.push(OpenLimit {
        last: sb.last.clone(),
        id,
    });
}

/// A bit field waiting for its group to fill whole bytes.
pub(super) struct BitField {
    pub(super) field: ir::Field,
    /// Where it is declared (a group's errors point at its first field).
    pub(super) span: ast::Span,
}

impl BitField {
    pub(super) fn bits(&self) -> u32 {
        match self.field.ty {
            Ty::Int { bits, .. } => bits,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{program, unit};
    use crate::ir::Item;

    fn shape(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Field(f) => format!("field {}", f.name),
                Item::Bits(g) => format!("bits {}x{}", g.bytes, g.fields.len()),
                Item::BeginLimit { id, .. } => format!("limit {id}"),
                Item::BeginWithin { id, .. } => format!("within {id}"),
                Item::EndLimit { id } => format!("end {id}"),
                Item::Mark(n) => format!("mark {n}"),
                Item::Seek(n) => format!("seek {n}"),
                Item::Align { to, .. } => format!("align {to}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn bit_fields_pack_into_whole_bytes() {
        let p = program(&["protocol t;\nunit A {\n    a: u4;\n    b: u12;\n    c: u8;\n}\n"]);
        assert_eq!(shape(&unit(&p, "A").items), ["bits 2x2", "field c"]);
    }

    #[test]
    fn a_length_opens_a_limit_around_its_target() {
        let p = program(&["protocol t;\nunit A {\n    n: u8 @length(of = d);\n    d: bytes;\n    w: bytes[2] within 4;\n    align 4;\n}\n"]);
        assert_eq!(
            shape(&unit(&p, "A").items),
            ["field n", "limit 0", "field d", "end 0", "within 1", "field w", "end 1", "align 4"]
        );
    }

    #[test]
    fn an_inclusive_length_marks_and_opens_after_itself() {
        let p = program(&["protocol t;\nunit A {\n    head: u8;\n    n: u16 @length(of = head .. body);\n    body: bytes;\n}\n"]);
        assert_eq!(
            shape(&unit(&p, "A").items),
            [
                "mark head",
                "field head",
                "field n",
                "limit 0",
                "field body",
                "end 0"
            ]
        );
    }
}

//! Bit layout: packing bit fields into whole bytes, and the decode limits a length opens
//! around its target.

use protodsl_grammar::Source;

use super::state::{SizedBy, UnitBody};
use super::Checker;
use crate::ir::{self, Conv, Ty};

impl Checker<'_> {
    pub(super) fn flush_bits(&mut self, src: &Source, u: &mut UnitBody) {
        if u.bits.is_empty() {
            return;
        }
        let total: u32 = u.bits.iter().map(|(f, _)| f.bits()).sum();
        let (first_span, _) = (u.bits[0].1, ());
        if !total.is_multiple_of(8) {
            let widths: Vec<String> = u
                .bits
                .iter()
                .map(|(f, _)| format!("u{}", f.bits()))
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
            let fields = std::mem::take(&mut u.bits)
                .into_iter()
                .map(|(f, _)| f.field)
                .collect();
            u.items.push(ir::Item::Bits(ir::BitGroup {
                bytes: (total / 8) as usize,
                fields,
            }));
        }
        u.bits.clear();
        self.emit_inclusive_limits(u);
    }

    /// Opens the limit of a length that counts from an earlier field, once the length field
    /// itself has been read.
    pub(super) fn emit_inclusive_limits(&mut self, u: &mut UnitBody) {
        for (first, sb) in std::mem::take(&mut u.pending_inclusive) {
            open_limit(u, &sb, Some(first), None);
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
    let id = u.counter();
    let conv = u.scope.get(&sb.length_field).map_or(Conv::Int, |s| s.conv);
    u.items.push(ir::Item::BeginLimit {
        id,
        length_field: sb.length_field.clone(),
        conv,
        unit_bytes: sb.unit.bytes(),
        add: sb.add,
        since,
        when,
    });
    u.open_limits.push((sb.last.clone(), id));
}

pub(super) struct BitField {
    pub(super) field: ir::Field,
}

impl BitField {
    pub(super) fn bits(&self) -> u32 {
        match self.field.ty {
            Ty::Int { bits, .. } => bits,
            _ => 0,
        }
    }
}

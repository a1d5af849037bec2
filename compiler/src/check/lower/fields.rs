//! Lowering one field: its roles, condition, limits, type, constant and place in the layout.

use protodsl_grammar::ast::{self};

use crate::check::layout::{open_limit, BitField};
use crate::check::state::{FieldSym, Scope, UnitBody, UnitCx};
use crate::check::{short_location, Checker};
use crate::ir::{self, Conv, ExprTy, Ty};

impl Checker<'_> {
    pub(in crate::check) fn lower_field(
        &mut self,
        ucx: &mut UnitCx,
        u: &mut UnitBody,
        f: &ast::Field,
        docs: &[String],
    ) {
        let src = ucx.src.clone();
        let location = short_location(&src, f.name_span.start);
        let (name, layout) = match &f.name {
            Some(n) => (n.name.clone(), false),
            None => {
                u.reserved += 1;
                (format!("_reserved{}", u.reserved - 1), true)
            }
        };
        // Roles.
        let mut roles = Vec::new();
        let mut remember = None;
        let mut append = false;
        for r in &f.roles {
            if r.name.name == "size" {
                self.pending_size(ucx, u, &name, r);
                continue;
            }
            if r.name.name == "remember" || r.name.name == "append" {
                remember = self.lower_remember(&src, ucx, u, r);
                append = r.name.name == "append";
                continue;
            }
            if let Some(role) = self.lower_role(&src, u, &name, r) {
                roles.push(role);
            }
        }
        let cond = f.condition.as_ref().and_then(|c| {
            let scope = Scope::unit(&ucx.proto, u, true);
            let (e, ty) = self.lower_expr(&src, &scope, c)?;
            if ty != ExprTy::Bool {
                self.err(&src, c.span, "a condition must be true or false");
                return None;
            }
            Some(e)
        });
        // A length that governs this field opens a limit before it.
        let governing = u.sized_by.get(&name).cloned().unwrap_or_default();
        let located = u.located.get(&name).cloned();
        if located.is_some() {
            self.flush_bits(&src, u);
            u.items.push(ir::Item::Seek(name.clone()));
        }
        let limit_id: Option<usize> = None;
        for sb in governing
            .iter()
            .filter(|g| g.unit != ir::SizeUnit::Elements)
        {
            self.flush_bits(&src, u);
            // A limit around this field alone is opened only when the field is present.
            let when = cond.clone().filter(|_| sb.last == name);
            open_limit(u, sb, None, when);
        }
        let _ = limit_id;
        if u.marks.contains(&name) {
            self.flush_bits(&src, u);
            u.items.push(ir::Item::Mark(name.clone()));
        }
        let view = f.from.as_ref().and_then(|w| {
            let scope = Scope::unit(&ucx.proto, u, true);
            let (e, ty) = self.lower_expr(&src, &scope, w)?;
            if ty != ExprTy::Bytes {
                self.err(&src, w.span, "`from` takes bytes (what `recall` gives)");
                return None;
            }
            if f.condition.is_some() || f.within.is_some() {
                self.err(
                    &src,
                    w.span,
                    "a field decoded `from` bytes cannot also be conditional or `within` a size",
                );
                return None;
            }
            Some(e)
        });
        let within = f.within.as_ref().and_then(|w| {
            let scope = Scope::unit(&ucx.proto, u, true);
            let (e, ty) = self.lower_expr(&src, &scope, w)?;
            if ty != ExprTy::Int {
                self.err(&src, w.span, "`within` takes a number of bytes");
                return None;
            }
            Some(e)
        });
        let count = governing
            .iter()
            .find(|g| g.unit == ir::SizeUnit::Elements)
            .map(|g| {
                let conv = u.scope.get(&g.length_field).map_or(Conv::Int, |s| s.conv);
                ir::ArrayLen::CountField {
                    field: g.length_field.clone(),
                    conv,
                    add: g.add,
                }
            });
        let ty = self.lower_type(ucx, u, &name, &f.ty, count);
        let Some(ty) = ty else { return };
        // Lengths must describe something whose size can vary.
        for (len_field, target, info) in u.lengths.clone() {
            if target.name != name {
                continue;
            }
            let _ = len_field;
            match (&ty, info.unit) {
                (Ty::Array { .. }, ir::SizeUnit::Elements) => {}
                (_, ir::SizeUnit::Elements) => self.err_hint(
                    &src,
                    target.span,
                    format!("`{name}` is not an array, so it has no count"),
                    "use @length for a size in bytes or words",
                ),
                (Ty::Int { .. } | Ty::Enum { .. } | Ty::Literal(_) | Ty::CiLiteral(_), _) if info.last == name => self.err_hint(
                    &src,
                    target.span,
                    format!("`{name}` has a fixed size, so no length can describe it"),
                    "a length describes bytes, strings, units, arrays or a range of fields (`of = first .. last`)",
                ),
                _ => {}
            }
            if info.unit != ir::SizeUnit::Elements {
                u.measured.insert(info.last.clone());
                u.measured.insert(target.name.clone());
            }
        }
        // A constant: checked on decode when named, a default when reserved.
        let mut check = None;
        let mut default = None;
        if let Some(v) = &f.value {
            let scope = Scope::constants(&ucx.proto);
            if let Some(val) = self.const_eval(&src, &scope, v, &mut Vec::new()) {
                match &ty {
                    Ty::Int { bits, signed, .. } => {
                        let (lo, hi) = if *signed {
                            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
                        } else {
                            (0, (1i128 << bits) - 1)
                        };
                        if val < lo || val > hi {
                            self.err(&src, v.span, format!("{val} does not fit in {bits} bits"));
                        }
                        if f.name.is_some() {
                            check = Some(val);
                        } else {
                            default = Some(val);
                        }
                    }
                    _ => self.err(&src, v.span, "only integer fields take a constant; write the literal as the type (`magic: b\"\\xffSMB\";`)"),
                }
            }
        }
        let is_int = matches!(ty, Ty::Int { .. });
        let bits = if let Ty::Int { bits, .. } = ty {
            bits
        } else {
            0
        };
        let located = located.map(|(offset_field, from, add)| {
            u.measured.insert(name.clone());
            ir::Located {
                offset_conv: u.scope.get(&offset_field).map_or(Conv::Int, |s| s.conv),
                offset_field,
                from,
                add,
                gap: format!("_gap_{name}"),
            }
        });
        if let Some(l) = &located {
            if !l.from.is_empty() && !self.anchor_known(&l.from) {
                self.err(&src, f.name_span, format!("unknown anchor `{}`", l.from));
            }
        }
        if roles.iter().any(ir::Role::is_derived) {
            if !is_int {
                self.err_hint(
                    &src,
                    f.ty.span,
                    format!("`{name}` holds a length, count or offset, so it must be an integer"),
                    "declare it as u8..u64 (text lengths are not supported yet)",
                );
                return;
            }
            if f.condition.is_some() {
                self.err(
                    &src,
                    f.name_span,
                    "a length, count or offset cannot be conditional",
                );
                return;
            }
        }
        if is_int && (bits > 64 || bits == 0) {
            self.err(
                &src,
                f.ty.span,
                format!("integer width {bits} is out of range (1 to 64 bits)"),
            );
            return;
        }
        let field = ir::Field {
            name: name.clone(),
            docs: docs.to_vec(),
            location,
            layout: layout || matches!(ty, Ty::CiLiteral(_)),
            roles,
            ty: ty.clone(),
            check,
            default,
            cond,
            located,
            boxed: false,
            size_from: None,
            hint: u.hints.contains(&name),
            remember,
            append,
            view,
        };
        let conv = ty.conv();
        if is_int && (bits % 8 != 0 || !u.bits.is_empty()) {
            if field.cond.is_some() {
                self.err(&src, f.name_span, "a bit field cannot be conditional");
            }
            if within.is_some() {
                self.err(
                    &src,
                    f.name_span,
                    "a bit field cannot be decoded `within` a size",
                );
            }
            u.bits.push((BitField { field }, f.name_span));
            let total: u32 = u.bits.iter().map(|(b, _)| b.bits()).sum();
            if total.is_multiple_of(8) {
                self.flush_bits(&src, u);
            }
        } else {
            self.flush_bits(&src, u);
            match within {
                Some(size) => {
                    let id = u.counter();
                    u.items.push(ir::Item::BeginWithin { id, size });
                    u.items.push(ir::Item::Field(field));
                    u.items.push(ir::Item::EndLimit { id });
                }
                None => u.items.push(ir::Item::Field(field)),
            }
        }
        if let Some((first, sb)) = u.inclusive.get(&name).cloned() {
            u.pending_inclusive.push((first, sb));
        }
        if u.bits.is_empty() {
            self.emit_inclusive_limits(u);
        }
        if !layout {
            u.scope.insert(
                name.clone(),
                FieldSym {
                    conv,
                    optional: f.condition.is_some(),
                    unit: match &ty {
                        Ty::Unit { target, .. } => Some(target.clone()),
                        _ => None,
                    },
                },
            );
        }
        // Close limits that end with this field.
        while let Some((last, id)) = u.open_limits.last().cloned() {
            if last != name {
                break;
            }
            self.flush_bits(&src, u);
            u.items.push(ir::Item::EndLimit { id });
            u.open_limits.pop();
        }
    }
}

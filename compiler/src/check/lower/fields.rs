//! Lowering one field: its roles, condition, limits, type and constant, then its place in the
//! layout.

use protodsl_grammar::ast;

use crate::check::layout::open_limit;
use crate::check::state::{Scope, SizedBy, UnitBody, UnitCx};
use crate::check::{short_location, Checker};
use crate::ir::{self, Conv, ExprTy};

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
                u.layout.reserved += 1;
                (format!("_reserved{}", u.layout.reserved - 1), true)
            }
        };
        let specs = u.facts.per_field.pop_front().unwrap_or_default();
        let roles = self.lower_field_roles(ucx, u, &name, specs);
        let cond = self.typed_expr(
            ucx,
            u,
            f.condition.as_ref(),
            ExprTy::Bool,
            "a condition must be true or false",
        );
        let governing = u.facts.sized_by.get(&name).cloned().unwrap_or_default();
        let located = u.facts.located.get(&name).cloned();
        self.open_field_limits(ucx, u, &name, located.is_some(), &governing, &cond);
        let view = self.field_view(ucx, u, f);
        let within = self.typed_expr(
            ucx,
            u,
            f.within.as_ref(),
            ExprTy::Int,
            "`within` takes a number of bytes",
        );
        let count = count_of(u, &governing);
        let Some(ty) = self.lower_type(ucx, u, &name, &f.ty, count) else {
            return;
        };
        self.check_lengths_of(&src, u, &name, &ty);
        let (check, default) = self.field_constant(&src, &ucx.proto, f, &ty);
        let located = located.map(|l| {
            u.layout.measured.insert(name.clone());
            ir::Located {
                offset_conv: u
                    .names
                    .decoded
                    .get(&l.offset_field)
                    .map_or(Conv::Int, |s| s.conv),
                offset_field: l.offset_field,
                from: l.from,
                add: l.add,
                gap: format!("_gap_{name}"),
            }
        });
        if let Some(l) = &located {
            if !l.from.is_empty() && !self.anchor_known(&l.from) {
                self.err(&src, f.name_span, format!("unknown anchor `{}`", l.from));
            }
        }
        if !self.check_field_holds_roles(&src, f, &name, &ty, &roles.roles) {
            return;
        }
        let field = ir::Field {
            name: name.clone(),
            docs: docs.to_vec(),
            location,
            layout: layout || matches!(ty, ir::Ty::CiLiteral(_)),
            roles: roles.roles,
            ty,
            check,
            default,
            cond,
            located,
            boxed: false,
            size_from: None,
            hint: u.facts.hints.contains(&name),
            remember: roles.remember,
            append: roles.append,
            view,
        };
        self.place_field(&src, u, f, field, within, layout);
    }

    /// An optional expression of the type `want`, lowered in the scope of the fields before.
    fn typed_expr(
        &mut self,
        ucx: &UnitCx,
        u: &UnitBody,
        e: Option<&ast::Expr>,
        want: ExprTy,
        msg: &str,
    ) -> Option<ir::Expr> {
        let e = e?;
        let scope = Scope::unit(&ucx.proto, u, true);
        let (ex, ty) = self.lower_expr(&ucx.src, &scope, e)?;
        if ty != want {
            self.err(&ucx.src, e.span, msg);
            return None;
        }
        Some(ex)
    }

    /// Before a field: the seek of an offset that locates it, the limits of the lengths that
    /// govern it, the mark a length counting from it needs.
    fn open_field_limits(
        &mut self,
        ucx: &UnitCx,
        u: &mut UnitBody,
        name: &str,
        located: bool,
        governing: &[SizedBy],
        cond: &Option<ir::Expr>,
    ) {
        let src = &ucx.src;
        if located {
            self.flush_bits(src, u);
            u.layout.items.push(ir::Item::Seek(name.to_string()));
        }
        for sb in governing
            .iter()
            .filter(|g| g.unit != ir::SizeUnit::Elements)
        {
            self.flush_bits(src, u);
            // A limit around this field alone is opened only when the field is present.
            let when = cond.clone().filter(|_| sb.last == name);
            open_limit(u, sb, None, when);
        }
        if u.facts.marks.contains(name) {
            self.flush_bits(src, u);
            u.layout.items.push(ir::Item::Mark(name.to_string()));
        }
    }

    /// `field: T from recall(...)`: decoded from remembered bytes rather than the wire.
    fn field_view(&mut self, ucx: &UnitCx, u: &UnitBody, f: &ast::Field) -> Option<ir::Expr> {
        let w = f.from.as_ref()?;
        let e = self.typed_expr(
            ucx,
            u,
            Some(w),
            ExprTy::Bytes,
            "`from` takes bytes (what `recall` gives)",
        )?;
        if f.condition.is_some() || f.within.is_some() {
            self.err(
                &ucx.src,
                w.span,
                "a field decoded `from` bytes cannot also be conditional or `within` a size",
            );
            return None;
        }
        Some(e)
    }
}

/// The count field of an array, when a `@count` governs it.
fn count_of(u: &UnitBody, governing: &[SizedBy]) -> Option<ir::ArrayLen> {
    let g = governing
        .iter()
        .find(|g| g.unit == ir::SizeUnit::Elements)?;
    let conv = u
        .names
        .decoded
        .get(&g.length_field)
        .map_or(Conv::Int, |s| s.conv);
    Some(ir::ArrayLen::CountField {
        field: g.length_field.clone(),
        conv,
        add: g.add,
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::{field, program};

    #[test]
    fn a_field_gathers_its_condition_view_location_and_hint() {
        let p = program(&["protocol t;\nunit A {\n    k: u8;\n    n: u8 @length(hint, of = d);\n    o: u8 @offset(of = d);\n    x: u8 if k == 1;\n    d: bytes;\n    v: u16 from recall(m, 0);\n}\n"]);
        assert!(field(&p, "A", "x").cond.is_some());
        assert!(field(&p, "A", "n").hint);
        let d = field(&p, "A", "d");
        assert!(matches!(&d.located, Some(l) if l.offset_field == "o" && l.gap == "_gap_d"));
        assert!(field(&p, "A", "v").view.is_some());
        assert_eq!(field(&p, "A", "k").location, "t.proto-dsl:3:5");
    }
}

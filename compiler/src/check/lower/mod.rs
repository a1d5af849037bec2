//! Lowering: protocols, enums, units and statements into the IR.

mod exprs;
mod fields;
mod roles;
mod switches;
mod types;

pub(super) use exprs::uses_params;
pub(super) use switches::case_name;

use std::collections::HashMap;

use protodsl_grammar::ast::{self, ItemKind, StmtKind};
use protodsl_grammar::Source;

use crate::check::state::{Scope, UnitBody, UnitCx};
use crate::check::{int_type, short_location, Checker};
use crate::ir::{self, ExprTy, TypeRef};
use crate::load::Loaded;

/// The largest `max` a framing may declare (4 GiB less one byte).
const MAX_FRAME: usize = 0xffff_ffff;

impl<'a> Checker<'a> {
    pub(in crate::check) fn lower_protocol(&mut self, f: &'a Loaded) -> ir::Protocol {
        let pname = f.ast.protocol.name.clone();
        let src = f.source.clone();
        let mut out = ir::Protocol {
            name: pname.clone(),
            file: src
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            docs: f.ast.docs.clone(),
            order: self.protos[&pname].order,
            text: self.protos[&pname].text.clone(),
            consts: Vec::new(),
            enums: Vec::new(),
            units: Vec::new(),
            framings: Vec::new(),
        };
        for item in &f.ast.items {
            match &item.kind {
                ItemKind::Const { name, value } => {
                    let scope = Scope::constants(&pname);
                    if let Some(v) = self.const_eval(&src, &scope, value, &mut Vec::new()) {
                        out.consts.push(ir::Const {
                            name: name.name.clone(),
                            docs: item.docs.clone(),
                            value: v,
                        });
                    }
                }
                ItemKind::Enum(e) => {
                    if let Some(en) = self.lower_enum(&src, item, e) {
                        out.enums.push(en);
                    }
                }
                ItemKind::Unit(u) => {
                    let mut ucx = UnitCx::new(&pname, &src, &u.name.name);
                    let unit = self.lower_unit(
                        &mut ucx,
                        &item.docs,
                        &u.params,
                        u.kind.as_ref(),
                        &u.body,
                        item.span,
                    );
                    out.units.extend(ucx.extra);
                    out.units.extend(unit);
                }
                ItemKind::Framing(ast::Framing { unit: path, max }) => {
                    let max = max.and_then(|(n, span)| self.framing_max(&src, n, span));
                    if let Some(TypeRef { protocol, name }) = self.resolve_unit(&src, &pname, path)
                    {
                        if protocol != pname {
                            self.err(
                                &src,
                                path.span,
                                "a framing must name a unit of this protocol",
                            );
                        } else if !self.protos[&pname].units[&name].params.is_empty() {
                            self.err(
                                &src,
                                path.span,
                                format!("`{name}` has parameters, so it cannot frame a stream"),
                            );
                        } else {
                            out.framings.push(ir::Framing { unit: name, max });
                        }
                    }
                }
                ItemKind::Import(_) | ItemKind::DefaultOrder(_) | ItemKind::Text { .. } => {}
            }
        }
        out
    }

    /// The `max` of a framing: the largest frame in bytes, header included, from 1 to 4 GiB.
    fn framing_max(&mut self, src: &Source, n: i128, span: ast::Span) -> Option<usize> {
        match usize::try_from(n) {
            Ok(n) if (1..=MAX_FRAME).contains(&n) => Some(n),
            _ => {
                self.err_hint(
                    src,
                    span,
                    format!("a framing cannot allow messages of at most {n} bytes"),
                    "write the largest frame in bytes, header included, from 1 to 0xffffffff, or leave `max` out",
                );
                None
            }
        }
    }

    pub(in crate::check) fn lower_enum(
        &mut self,
        src: &Source,
        item: &ast::Item,
        e: &ast::EnumDef,
    ) -> Option<ir::Enum> {
        let bits = match int_type(&e.repr.name) {
            Some((b @ (8 | 16 | 32 | 64), false, None)) => b,
            _ => {
                self.err_hint(
                    src,
                    e.repr.span,
                    format!("`{}` cannot hold an enum", e.repr.name),
                    "use u8, u16, u32 or u64",
                );
                return None;
            }
        };
        let mut seen = HashMap::new();
        let mut variants = Vec::new();
        for v in &e.variants {
            if seen.insert(v.name.name.clone(), ()).is_some() {
                self.err(
                    src,
                    v.name.span,
                    format!("variant `{}` is defined twice", v.name.name),
                );
            }
            if v.value < 0 || (bits < 64 && v.value >= 1i128 << bits) || v.value > u64::MAX as i128
            {
                self.err(
                    src,
                    v.span,
                    format!("{} does not fit in {}", v.value, e.repr.name),
                );
            }
            variants.push(ir::Variant {
                name: v.name.name.clone(),
                docs: v.docs.clone(),
                value: v.value,
            });
        }
        Some(ir::Enum {
            name: e.name.name.clone(),
            docs: item.docs.clone(),
            bits,
            is_flags: e.is_flags,
            variants,
        })
    }

    /// Lowers the unit `ucx.unit`.
    pub(in crate::check) fn lower_unit(
        &mut self,
        ucx: &mut UnitCx,
        docs: &[String],
        params: &[ast::Param],
        kind: Option<&ast::Ident>,
        body: &[ast::Stmt],
        span: ast::Span,
    ) -> Option<ir::Unit> {
        let src = ucx.src.clone();
        let name = ucx.unit.clone();
        let kind = match kind.map(|k| k.name.as_str()) {
            None => ir::UnitKind::Plain,
            Some("line") => ir::UnitKind::Line,
            Some("deferred") => ir::UnitKind::Deferred,
            Some(other) => {
                let k = kind.expect("some");
                self.err_hint(
                    &src,
                    k.span,
                    format!("unknown unit kind `{other}`"),
                    "the kinds are `line` and `deferred`",
                );
                ir::UnitKind::Plain
            }
        };
        let mut uparams = Vec::new();
        for p in params {
            let ty = match types::param_ty(&p.ty.name) {
                Some(ty) => ty,
                None => {
                    self.err_hint(
                        &src,
                        p.ty.span,
                        format!("unknown parameter type `{}`", p.ty.name),
                        "parameters are integers (u8..u64), bool or bytes",
                    );
                    ExprTy::Int
                }
            };
            uparams.push((p.name.name.clone(), ty));
        }
        let mut u = UnitBody::new(&ucx.proto, &name, uparams.clone());
        let before = self.diags.len();
        self.collect_fields(&src, &mut u, body);
        for stmt in body {
            self.lower_stmt(ucx, &mut u, stmt);
        }
        self.flush_bits(&src, &mut u);
        if self.diags.len() > before {
            return None;
        }
        let measured = u.layout.measured.iter().cloned().collect();
        Some(ir::Unit {
            name,
            docs: docs.to_vec(),
            params: uparams,
            kind,
            items: u.layout.items,
            has_deferred: false,
            measured,
            location: short_location(&src, span.start),
        })
    }

    pub(in crate::check) fn lower_inline(
        &mut self,
        ucx: &mut UnitCx,
        name: &str,
        kind: Option<&ast::Ident>,
        body: &[ast::Stmt],
        span: ast::Span,
    ) -> Option<TypeRef> {
        let mut inner = UnitCx::new(&ucx.proto, &ucx.src, name);
        let unit = self.lower_unit(&mut inner, &[], &[], kind, body, span)?;
        ucx.extra.extend(inner.extra);
        ucx.extra.push(unit);
        Some(TypeRef {
            protocol: ucx.proto.clone(),
            name: name.to_string(),
        })
    }

    pub(in crate::check) fn lower_stmt(
        &mut self,
        ucx: &mut UnitCx,
        u: &mut UnitBody,
        stmt: &ast::Stmt,
    ) {
        let src = ucx.src.clone();
        match &stmt.kind {
            StmtKind::Anchor(a) => {
                self.flush_bits(&src, u);
                u.layout.items.push(ir::Item::Anchor(a.name.clone()));
            }
            StmtKind::Align { to, from } => {
                self.flush_bits(&src, u);
                if *to == 0 || !to.is_power_of_two() || *to > 64 {
                    self.err(
                        &src,
                        stmt.span,
                        format!("cannot align to {to}: use a power of two up to 64"),
                    );
                }
                if let Some(a) = from {
                    if !self.anchor_known(&a.name) {
                        self.err_hint(
                            &src,
                            a.span,
                            format!("unknown anchor `{}`", a.name),
                            "declare it with `anchor NAME;` in this unit or one that contains it",
                        );
                    }
                }
                let field = format!("_pad{}", u.layout.pads);
                u.layout.pads += 1;
                u.layout.items.push(ir::Item::Align {
                    to: *to,
                    from: from.as_ref().map_or_else(String::new, |f| f.name.clone()),
                    field,
                });
            }
            StmtKind::ByteOrder { order, condition } => {
                self.flush_bits(&src, u);
                let cond = condition.as_ref().and_then(|(e, other)| {
                    let scope = Scope::unit(&ucx.proto, u, false);
                    let (ex, ty) = self.lower_expr(&src, &scope, e)?;
                    if ty != ExprTy::Bool {
                        self.err(&src, e.span, "a byte order condition must be true or false");
                        return None;
                    }
                    if uses_params(&ex) {
                        self.err(&src, e.span, "a byte order condition can use only fields (the encoder has no parameters)");
                        return None;
                    }
                    Some((ex, *other))
                });
                u.layout.items.push(ir::Item::Order {
                    order: *order,
                    cond,
                });
            }
            StmtKind::Field(f) => self.lower_field(ucx, u, f, &stmt.docs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{program, unit};
    use crate::ir::{self, UnitKind};

    #[test]
    fn enums_units_inline_units_and_framings() {
        let p = program(&["protocol t;\nflags F: u16 {\n    A = 1,\n    B = 2,\n}\nunit L: line {\n    w: token;\n}\nunit M(n: u8, ok: bool) {\n    body: unit {\n        x: bytes[2];\n    };\n}\nunit Top {\n    a: u8;\n}\nframing Top;\n"]);
        let t = &p.protocols[0];
        assert!(t.enums[0].is_flags && t.enums[0].bits == 16);
        assert_eq!(unit(&p, "L").kind, UnitKind::Line);
        assert_eq!(
            unit(&p, "M").params,
            [
                ("n".to_string(), ir::ExprTy::Int),
                ("ok".to_string(), ir::ExprTy::Bool)
            ]
        );
        assert!(
            t.units.iter().any(|u| u.name == "MBody"),
            "an inline unit is named after its field"
        );
        assert_eq!(
            t.framings,
            [ir::Framing {
                unit: "Top".into(),
                max: None
            }]
        );
        assert_eq!(unit(&p, "Top").location, "t.proto-dsl:14:1");
    }

    #[test]
    fn a_framing_keeps_its_largest_frame() {
        let p = program(&["protocol t;\nunit Top {\n    a: u8;\n}\nframing Top max 0x2_0003;\n"]);
        assert_eq!(p.protocols[0].framings[0].max, Some(0x20003));
    }
}

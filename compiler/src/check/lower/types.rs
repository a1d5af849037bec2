//! Lowering types: arrays, byte strings, built-ins, enums, units with arguments.

use protodsl_grammar::ast::{self, TypeKind};

use crate::check::state::{Scope, UnitBody, UnitCx};
use crate::check::{camel, int_type, is_byte_string, Checker, LEAVES};
use crate::ir::{self, ExprTy, Ty, TypeRef};

impl Checker<'_> {
    pub(in crate::check) fn lower_type(
        &mut self,
        ucx: &mut UnitCx,
        u: &mut UnitBody,
        field: &str,
        te: &ast::TypeExpr,
        count: Option<ir::ArrayLen>,
    ) -> Option<Ty> {
        let src = ucx.src.clone();
        match &te.kind {
            TypeKind::Switch(sw) => self.lower_switch(ucx, u, field, sw).map(Ty::Switch),
            TypeKind::Inline { kind, body } => {
                let name = format!("{}{}", ucx.unit, camel(field));
                let target = self.lower_inline(ucx, &name, kind.as_ref(), body, te.span)?;
                Some(Ty::Unit {
                    target,
                    args: Vec::new(),
                    deferred: false,
                })
            }
            TypeKind::Sized { base, size, until } => {
                let scope = Scope::unit(&ucx.proto, u, true);
                match size {
                    // `T[n]`, `T[]`: an array, except for byte strings where it is a size.
                    Some(sz) if !is_byte_string(base) => {
                        let elem = self.lower_base(ucx, u, field, base, te.span, None)?;
                        if let Ty::Literal(_) | Ty::CiLiteral(_) = elem {
                            self.err(&src, te.span, "an array of literals is not allowed");
                            return None;
                        }
                        let len = match (sz, until, count) {
                            (Some(_), Some(u), _) => {
                                self.err(
                                    &src,
                                    u.span,
                                    "an array takes a count or `until`, not both",
                                );
                                return None;
                            }
                            (None, None, Some(c)) => c,
                            (Some(e), None, c) => {
                                if c.is_some() {
                                    self.err_hint(
                                        &src,
                                        e.span,
                                        format!(
                                            "`{field}` has a count field and a count expression"
                                        ),
                                        "drop `[...]`: the @count sizes the array",
                                    );
                                    return None;
                                }
                                let (ex, ty) = self.lower_expr(&src, &scope, e)?;
                                if ty != ExprTy::Int {
                                    self.err(&src, e.span, "an array count must be an integer");
                                    return None;
                                }
                                ir::ArrayLen::Count(ex)
                            }
                            (None, Some(cond), _) => {
                                let Ty::Unit { target, .. } = &elem else {
                                    self.err(
                                        &src,
                                        cond.span,
                                        "`until` on an array needs elements that are units",
                                    );
                                    return None;
                                };
                                let escope = Scope::element(&ucx.proto, u, target.clone());
                                let (ex, ty) = self.lower_expr(&src, &escope, cond)?;
                                if ty != ExprTy::Bool {
                                    self.err(
                                        &src,
                                        cond.span,
                                        "an `until` condition must be true or false",
                                    );
                                    return None;
                                }
                                ir::ArrayLen::Until(ex)
                            }
                            (None, None, None) => ir::ArrayLen::ToEnd,
                        };
                        Some(Ty::Array {
                            elem: Box::new(elem),
                            len,
                        })
                    }
                    _ => {
                        let bsize = match (size, until) {
                            (Some(Some(_)), Some(u)) => {
                                self.err(
                                    &src,
                                    u.span,
                                    "a byte string takes a size or `until`, not both",
                                );
                                return None;
                            }
                            (Some(Some(e)), None) => {
                                let (ex, ty) = self.lower_expr(&src, &scope, e)?;
                                if ty != ExprTy::Int {
                                    self.err(&src, e.span, "a size must be an integer");
                                    return None;
                                }
                                Some(ir::BytesSize::Expr(ex))
                            }
                            (_, Some(d)) => match &d.kind {
                                ast::ExprKind::Bytes(b) if !b.is_empty() => {
                                    Some(ir::BytesSize::Until(b.clone()))
                                }
                                _ => {
                                    self.err_hint(
                                        &src,
                                        d.span,
                                        "a byte string ends at a literal delimiter",
                                        "write `bytes until b\"\\r\\n\"`",
                                    );
                                    return None;
                                }
                            },
                            _ => None,
                        };
                        // A count on a non-array is reported at the role (lower_field).
                        self.lower_base(ucx, u, field, base, te.span, bsize)
                    }
                }
            }
        }
    }

    pub(in crate::check) fn lower_base(
        &mut self,
        ucx: &mut UnitCx,
        u: &mut UnitBody,
        field: &str,
        base: &ast::BaseType,
        span: ast::Span,
        size: Option<ir::BytesSize>,
    ) -> Option<Ty> {
        let src = ucx.src.clone();
        let no_size = |cx: &mut Self, what: &str| {
            if size.is_some() {
                cx.err(&src, span, format!("{what} takes no size"));
            }
        };
        match base {
            ast::BaseType::Literal(b) => {
                no_size(self, "a literal");
                Some(Ty::Literal(b.clone()))
            }
            ast::BaseType::CiLiteral(b) => {
                no_size(self, "a literal");
                Some(Ty::CiLiteral(b.clone()))
            }
            ast::BaseType::Ptr(inner) => {
                no_size(self, "a pointer");
                let t = self.lower_type(ucx, u, field, inner, None)?;
                if matches!(t, Ty::Ptr(_) | Ty::Literal(_) | Ty::CiLiteral(_)) {
                    self.err(&src, inner.span, "a pointer must point to data");
                    return None;
                }
                Some(Ty::Ptr(Box::new(t)))
            }
            ast::BaseType::Named { path, args } => {
                let n = path.name.name.as_str();
                if path.protocol.is_none() {
                    if let Some((bits, signed, order)) = int_type(n) {
                        no_size(self, "an integer");
                        if signed && bits % 8 != 0 {
                            self.err(&src, path.span, "signed integers must be whole bytes");
                        }
                        if order.is_some() && bits % 8 != 0 {
                            self.err(
                                &src,
                                path.span,
                                "bit fields take the byte order of their group",
                            );
                        }
                        if !args.is_empty() {
                            self.err(&src, path.span, "an integer takes no arguments");
                        }
                        return Some(Ty::Int {
                            bits,
                            signed,
                            order,
                        });
                    }
                    let sized = size.clone().unwrap_or(ir::BytesSize::Rest);
                    let builtin = match n {
                        "bytes" => Some(Ty::Bytes(sized)),
                        "utf16" => Some(Ty::Utf16(sized)),
                        "cstring" => {
                            no_size(self, "a cstring (it ends at NUL)");
                            Some(Ty::Bytes(ir::BytesSize::Until(vec![0])))
                        }
                        "utf16z" => {
                            no_size(self, "a utf16z (it ends at a NUL code unit)");
                            Some(Ty::Utf16z)
                        }
                        "sp" => {
                            no_size(self, "sp");
                            Some(Ty::Spaces)
                        }
                        "token" => {
                            no_size(self, "token");
                            Some(Ty::Token)
                        }
                        "ows" => {
                            no_size(self, "ows");
                            Some(Ty::OptionalSpaces)
                        }
                        "number" => match size {
                            None => Some(Ty::Number(None)),
                            Some(ir::BytesSize::Expr(ir::Expr::Int(w)))
                                if (1..=40).contains(&w) =>
                            {
                                Some(Ty::Number(Some(w as usize)))
                            }
                            Some(_) => {
                                self.err(&src, span, "a number's width must be a constant from 1 to 40 (`number[3]`)");
                                return None;
                            }
                        },
                        _ => LEAVES
                            .iter()
                            .find(|(dsl, ..)| *dsl == n)
                            .map(|(_, rust, what)| {
                                no_size(self, what);
                                Ty::Leaf(rust)
                            }),
                    };
                    if let Some(t) = builtin {
                        if !args.is_empty() {
                            self.err(&src, path.span, format!("`{n}` takes no arguments"));
                        }
                        return Some(t);
                    }
                }
                let proto = self.target_protocol(&src, &ucx.proto, path)?;
                let syms = &self.protos[&proto];
                if let Some(e) = syms.enums.get(n).copied() {
                    no_size(self, "an enum");
                    let bits = int_type(&e.repr.name).map_or(8, |(b, _, _)| b);
                    return Some(Ty::Enum {
                        target: TypeRef {
                            protocol: proto,
                            name: n.to_string(),
                        },
                        bits,
                        flags: e.is_flags,
                    });
                }
                if let Some(unit) = self.protos[&proto].units.get(n).copied() {
                    if size.is_some() {
                        self.err_hint(&src, span, format!("a unit is sized by a @length, not `[...]` (`{n}[n]` would be an array)"), "declare a length field with `@length(of = ...)`");
                        return None;
                    }
                    if unit.params.len() != args.len() {
                        self.err(
                            &src,
                            path.span,
                            format!(
                                "`{n}` takes {} argument(s), {} given",
                                unit.params.len(),
                                args.len()
                            ),
                        );
                        return None;
                    }
                    let scope = Scope::unit(&ucx.proto, u, true);
                    let mut out = Vec::new();
                    for (a, p) in args.iter().zip(&unit.params) {
                        let (ex, ty) = self.lower_expr(&src, &scope, a)?;
                        let want = match p.ty.name.as_str() {
                            "bool" => ExprTy::Bool,
                            "bytes" => ExprTy::Bytes,
                            _ => ExprTy::Int,
                        };
                        if ty != want {
                            self.err(
                                &src,
                                a.span,
                                format!(
                                    "argument `{}` of `{n}` must be {}",
                                    p.name.name,
                                    match want {
                                        ExprTy::Bool => "true or false",
                                        ExprTy::Bytes => "a byte string",
                                        ExprTy::Int => "an integer",
                                    }
                                ),
                            );
                            return None;
                        }
                        out.push((ex, want));
                    }
                    return Some(Ty::Unit {
                        target: TypeRef {
                            protocol: proto,
                            name: n.to_string(),
                        },
                        args: out,
                        deferred: false,
                    });
                }
                self.err_hint(
                    &src,
                    path.span,
                    format!("unknown type `{path}`"),
                    "built-in types are u1..u64, i8..i64 (optionally ...le/...be), bytes, utf16, utf16z, cstring, sp, ows, token, number, host_port, dotted_quad, dot_stuffed, chunked, enhanced_status, dated_text",
                );
                None
            }
        }
    }
}

//! Lowering types: arrays, byte strings, built-ins, enums, units with arguments.

use protodsl_grammar::ast::{self, TypeKind};
use protodsl_grammar::Source;

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
        let sized = Sized {
            src: &src,
            span,
            size: &size,
        };
        match base {
            ast::BaseType::Literal(b) => {
                sized.none(self, "a literal");
                Some(Ty::Literal(b.clone()))
            }
            ast::BaseType::CiLiteral(b) => {
                sized.none(self, "a literal");
                Some(Ty::CiLiteral(b.clone()))
            }
            ast::BaseType::Ptr(inner) => {
                sized.none(self, "a pointer");
                let t = self.lower_type(ucx, u, field, inner, None)?;
                if matches!(t, Ty::Ptr(_) | Ty::Literal(_) | Ty::CiLiteral(_)) {
                    self.err(&src, inner.span, "a pointer must point to data");
                    return None;
                }
                Some(Ty::Ptr(Box::new(t)))
            }
            ast::BaseType::Named { path, args } => {
                if path.protocol.is_none() {
                    if let Some(t) = self.lower_builtin(&sized, path, args) {
                        return t;
                    }
                }
                self.lower_declared(ucx, u, &sized, path, args)
            }
        }
    }

    /// A built-in type (integers, byte strings, text leaves); `None` when `path` names none.
    fn lower_builtin(
        &mut self,
        sized: &Sized<'_>,
        path: &ast::Path,
        args: &[ast::Expr],
    ) -> Option<Option<Ty>> {
        let (src, n) = (sized.src, path.name.name.as_str());
        if let Some((bits, signed, order)) = int_type(n) {
            sized.none(self, "an integer");
            if signed && bits % 8 != 0 {
                self.err(src, path.span, "signed integers must be whole bytes");
            }
            if order.is_some() && bits % 8 != 0 {
                self.err(
                    src,
                    path.span,
                    "bit fields take the byte order of their group",
                );
            }
            if !args.is_empty() {
                self.err(src, path.span, "an integer takes no arguments");
            }
            return Some(Some(Ty::Int {
                bits,
                signed,
                order,
            }));
        }
        let rest = || sized.size.clone().unwrap_or(ir::BytesSize::Rest);
        let (ty, what) = match n {
            "bytes" => (Ty::Bytes(rest()), None),
            "utf16" => (Ty::Utf16(rest()), None),
            "cstring" => (
                Ty::Bytes(ir::BytesSize::Until(vec![0])),
                Some("a cstring (it ends at NUL)"),
            ),
            "utf16z" => (Ty::Utf16z, Some("a utf16z (it ends at a NUL code unit)")),
            "sp" => (Ty::Spaces, Some("sp")),
            "token" => (Ty::Token, Some("token")),
            "ows" => (Ty::OptionalSpaces, Some("ows")),
            "number" => match sized.size {
                None => (Ty::Number(None), None),
                Some(ir::BytesSize::Expr(ir::Expr::Int(w))) if (1..=40).contains(w) => {
                    (Ty::Number(Some(*w as usize)), None)
                }
                Some(_) => {
                    self.err(
                        src,
                        sized.span,
                        "a number's width must be a constant from 1 to 40 (`number[3]`)",
                    );
                    return Some(None);
                }
            },
            _ => {
                let (_, rust, what) = LEAVES.iter().find(|(dsl, ..)| *dsl == n)?;
                (Ty::Leaf(rust), Some(*what))
            }
        };
        if let Some(what) = what {
            sized.none(self, what);
        }
        if !args.is_empty() {
            self.err(src, path.span, format!("`{n}` takes no arguments"));
        }
        Some(Some(ty))
    }

    /// A declared enum or unit (of this protocol or an imported one).
    fn lower_declared(
        &mut self,
        ucx: &UnitCx,
        u: &UnitBody,
        sized: &Sized<'_>,
        path: &ast::Path,
        args: &[ast::Expr],
    ) -> Option<Ty> {
        let (src, n) = (sized.src, path.name.name.as_str());
        let proto = self.target_protocol(src, &ucx.proto, path)?;
        let target = TypeRef {
            protocol: proto.clone(),
            name: n.to_string(),
        };
        if let Some(e) = self.protos[&proto].enums.get(n).copied() {
            sized.none(self, "an enum");
            let bits = int_type(&e.repr.name).map_or(8, |(b, _, _)| b);
            return Some(Ty::Enum {
                target,
                bits,
                flags: e.is_flags,
            });
        }
        if let Some(unit) = self.protos[&proto].units.get(n).copied() {
            if sized.size.is_some() {
                self.err_hint(
                    src,
                    sized.span,
                    format!(
                        "a unit is sized by a @length, not `[...]` (`{n}[n]` would be an array)"
                    ),
                    "declare a length field with `@length(of = ...)`",
                );
                return None;
            }
            let args = self.unit_args(ucx, u, src, path, &unit.params, args)?;
            return Some(Ty::Unit {
                target,
                args,
                deferred: false,
            });
        }
        self.err_hint(
            src,
            path.span,
            format!("unknown type `{path}`"),
            "built-in types are u1..u64, i8..i64 (optionally ...le/...be), bytes, utf16, utf16z, cstring, sp, ows, token, number, host_port, dotted_quad, dot_stuffed, chunked, enhanced_status, dated_text",
        );
        None
    }

    /// The arguments of a unit with parameters, typed against them.
    fn unit_args(
        &mut self,
        ucx: &UnitCx,
        u: &UnitBody,
        src: &Source,
        path: &ast::Path,
        params: &[ast::Param],
        args: &[ast::Expr],
    ) -> Option<Vec<(ir::Expr, ExprTy)>> {
        let n = &path.name.name;
        if params.len() != args.len() {
            self.err(
                src,
                path.span,
                format!(
                    "`{n}` takes {} argument(s), {} given",
                    params.len(),
                    args.len()
                ),
            );
            return None;
        }
        let scope = Scope::unit(&ucx.proto, u, true);
        let mut out = Vec::new();
        for (a, p) in args.iter().zip(params) {
            let (ex, ty) = self.lower_expr(src, &scope, a)?;
            let want = param_ty(&p.ty.name).unwrap_or(ExprTy::Int);
            if ty != want {
                let what = match want {
                    ExprTy::Bool => "true or false",
                    ExprTy::Bytes => "a byte string",
                    ExprTy::Int => "an integer",
                };
                self.err(
                    src,
                    a.span,
                    format!("argument `{}` of `{n}` must be {what}", p.name.name),
                );
                return None;
            }
            out.push((ex, want));
        }
        Some(out)
    }
}

/// The type of a unit parameter declared as `name`: an integer type, `bool` or `bytes`.
pub(in crate::check) fn param_ty(name: &str) -> Option<ExprTy> {
    match name {
        "bool" => Some(ExprTy::Bool),
        "bytes" => Some(ExprTy::Bytes),
        n if int_type(n).is_some() => Some(ExprTy::Int),
        _ => None,
    }
}

/// A type being lowered with the size written after it (`T[n]`, `bytes until ...`), for the
/// types that take none.
struct Sized<'s> {
    src: &'s Source,
    span: ast::Span,
    size: &'s Option<ir::BytesSize>,
}

impl Sized<'_> {
    /// Reports a size given to `what`, which takes none.
    fn none(&self, cx: &mut Checker<'_>, what: &str) {
        if self.size.is_some() {
            cx.err(self.src, self.span, format!("{what} takes no size"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::{field, program};
    use crate::ir::{ArrayLen, BytesSize, Ty};

    #[test]
    fn built_ins_arrays_and_byte_strings() {
        let p = program(&["protocol t;\nunit E {\n    last: u8;\n}\nunit A {\n    n: u8 @count(of = xs);\n    xs: u16le[];\n    s: cstring;\n    num: number[3];\n    host: host_port;\n    es: E[] until last == 0;\n    line: bytes until b\"\\r\\n\";\n    rest: utf16;\n}\n"]);
        let ty = |f: &str| field(&p, "A", f).ty.clone();
        assert!(matches!(
            ty("xs"),
            Ty::Array {
                len: ArrayLen::CountField { .. },
                ..
            }
        ));
        assert!(matches!(ty("s"), Ty::Bytes(BytesSize::Until(d)) if d == [0]));
        assert!(matches!(ty("num"), Ty::Number(Some(3))));
        assert!(matches!(ty("host"), Ty::Leaf("HostPort")));
        assert!(matches!(
            ty("es"),
            Ty::Array {
                len: ArrayLen::Until(_),
                ..
            }
        ));
        assert!(matches!(ty("line"), Ty::Bytes(BytesSize::Until(d)) if d == b"\r\n"));
        assert!(matches!(ty("rest"), Ty::Utf16(BytesSize::Rest)));
    }

    #[test]
    fn declared_types_and_arguments() {
        let p = program(&["protocol t;\nenum K: u32 {\n    A = 1,\n}\nunit B(n: u8, tag: bytes) {\n    x: bytes[n];\n}\nunit A {\n    k: K;\n    b: B(2, b\"x\");\n}\n"]);
        assert!(matches!(
            field(&p, "A", "k").ty,
            Ty::Enum {
                bits: 32,
                flags: false,
                ..
            }
        ));
        assert!(matches!(&field(&p, "A", "b").ty, Ty::Unit { args, .. } if args.len() == 2));
    }
}

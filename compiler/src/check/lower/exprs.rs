//! Lowering expressions: names, members, built-in functions and operators, typed.

use protodsl_grammar::ast::{self, ExprKind as K};
use protodsl_grammar::Source;

use crate::check::state::Scope;
use crate::check::{Checker, PendingCase};
use crate::ir::{self, Conv, ExprTy, TypeRef};

impl Checker<'_> {
    pub(in crate::check) fn lower_expr(
        &mut self,
        src: &Source,
        scope: &Scope,
        e: &ast::Expr,
    ) -> Option<(ir::Expr, ExprTy)> {
        Some(match &e.kind {
            K::Int(v) => (ir::Expr::Int(*v), ExprTy::Int),
            K::Bool(b) => (ir::Expr::Bool(*b), ExprTy::Bool),
            K::Bytes(b) => (ir::Expr::Bytes(b.clone()), ExprTy::Bytes),
            K::CiBytes(b) => (ir::Expr::CiBytes(b.clone()), ExprTy::Bytes),
            K::Path(p) if p.protocol.is_none() => self.lower_name(src, scope, e, p)?,
            K::Path(_) => (
                ir::Expr::Int(self.const_eval(
                    src,
                    &Scope::constants(&scope.proto),
                    e,
                    &mut Vec::new(),
                )?),
                ExprTy::Int,
            ),
            K::Member(base, name) => self.lower_member(src, scope, e, base, name)?,
            K::Call(f, args) => match (f.name.as_str(), args.len()) {
                ("remaining", 0) => (ir::Expr::Remaining, ExprTy::Int),
                ("answering", 0) => (ir::Expr::Answering, ExprTy::Bytes),
                ("recall" | "recall_int", 2) => self.lower_recall(src, scope, f, args)?,
                ("found", 1) => self.lower_found(src, scope, args)?,
                ("ahead", 0) => (ir::Expr::Ahead, ExprTy::Bytes),
                ("next_is" | "contains", 1) => {
                    let K::Bytes(b) = &args[0].kind else {
                        self.err_hint(
                            src,
                            args[0].span,
                            format!("{}() takes a byte string literal", f.name),
                            "write `next_is(b\"[\")`",
                        );
                        return None;
                    };
                    let e = if f.name == "next_is" {
                        ir::Expr::NextIs(b.clone())
                    } else {
                        ir::Expr::Contains(b.clone())
                    };
                    (e, ExprTy::Bool)
                }
                ("starts_with", 2) => {
                    let (a, ta) = self.lower_expr(src, scope, &args[0])?;
                    let (b, tb) = self.lower_expr(src, scope, &args[1])?;
                    if ta != ExprTy::Bytes || tb != ExprTy::Bytes {
                        self.err(src, e.span, "starts_with() takes two byte strings");
                        return None;
                    }
                    (ir::Expr::StartsWith(Box::new(a), Box::new(b)), ExprTy::Bool)
                }
                ("byte_at", 2) => {
                    let (a, ta) = self.lower_expr(src, scope, &args[0])?;
                    let (i, ti) = self.lower_expr(src, scope, &args[1])?;
                    if ta != ExprTy::Bytes || ti != ExprTy::Int {
                        self.err(src, e.span, "byte_at() takes a byte string and an index");
                        return None;
                    }
                    (ir::Expr::ByteAt(Box::new(a), Box::new(i)), ExprTy::Int)
                }
                ("raw", 1) => self.lower_raw(src, scope, args)?,
                ("is", 2) => self.lower_is(src, scope, e, args)?,
                ("is_request", 0) => (ir::Expr::IsRequest, ExprTy::Bool),
                ("len", 1) => self.lower_len(src, scope, args)?,
                (name, n) => {
                    self.err_hint(
                        src,
                        f.span,
                        format!("unknown function `{name}` with {n} argument(s)"),
                        "the functions are len(field), remaining(), is_request(), is(switch_field, Case), starts_with(a, b), raw(number), byte_at(s, i), ahead(), next_is(b\"..\"), contains(b\"..\"), found(path), answering(), recall(name, key) and recall_int(name, key)",
                    );
                    return None;
                }
            },
            K::Unary(op, inner) => self.lower_unary(src, scope, e, op, inner)?,
            K::Binary(op, a, b) => self.lower_binary(src, scope, e, op, a, b)?,
        })
    }

    /// A name: an element field (in `until`), a field decoded before, a parameter or a constant.
    fn lower_name(
        &mut self,
        src: &Source,
        scope: &Scope,
        e: &ast::Expr,
        p: &ast::Path,
    ) -> Option<(ir::Expr, ExprTy)> {
        let n = &p.name.name;
        if let Some(elem) = &scope.element {
            if let Some(conv) = self.unit_field_conv(&elem.protocol, &elem.name, n) {
                return Some((
                    ir::Expr::Elem {
                        name: n.clone(),
                        conv,
                    },
                    expr_ty(conv, src, e.span, self)?,
                ));
            }
        }
        if let Some(sym) = scope.fields.get(n) {
            if sym.optional {
                self.err_hint(
                    src,
                    e.span,
                    format!("`{n}` is optional (declared with `if`), so it cannot be used here"),
                    "test the same condition instead",
                );
                return None;
            }
            return Some((
                ir::Expr::Field {
                    name: n.clone(),
                    conv: sym.conv,
                },
                expr_ty(sym.conv, src, e.span, self)?,
            ));
        }
        if let Some((_, ty)) = scope.params.iter().find(|(p, _)| p == n) {
            return Some((ir::Expr::Param(n.clone()), *ty));
        }
        if scope.all_fields.contains(n) {
            self.err_hint(
                src,
                e.span,
                format!("field `{n}` is used before it is decoded"),
                "an expression can use only the fields before it",
            );
            return None;
        }
        let v = self.const_eval(src, &Scope::constants(&scope.proto), e, &mut Vec::new())?;
        Some((ir::Expr::Int(v), ExprTy::Int))
    }

    /// `field.member`: a field of a unit field decoded before.
    fn lower_member(
        &mut self,
        src: &Source,
        scope: &Scope,
        e: &ast::Expr,
        base: &ast::Expr,
        name: &ast::Ident,
    ) -> Option<(ir::Expr, ExprTy)> {
        let (b, _) = match &base.kind {
            K::Path(p) if p.protocol.is_none() => {
                let n = &p.name.name;
                let Some(sym) = scope.fields.get(n) else {
                    self.err(src, base.span, format!("unknown field `{n}`"));
                    return None;
                };
                let Some(unit) = &sym.unit else {
                    self.err(
                        src,
                        name.span,
                        format!("`{n}` is not a unit, so it has no field `{}`", name.name),
                    );
                    return None;
                };
                if sym.optional {
                    self.err(
                        src,
                        base.span,
                        format!(
                            "`{n}` is optional (declared with `if`), so it cannot be used here"
                        ),
                    );
                    return None;
                }
                (
                    ir::Expr::Field {
                        name: n.clone(),
                        conv: Conv::Unit,
                    },
                    unit.clone(),
                )
            }
            _ => {
                self.err(
                    src,
                    base.span,
                    "only a field of this unit can be followed by `.member`",
                );
                return None;
            }
        };
        let unit = match &b {
            ir::Expr::Field { name, .. } => scope.fields[name].unit.clone().expect("checked"),
            _ => unreachable!(),
        };
        let Some(conv) = self.unit_field_conv(&unit.protocol, &unit.name, &name.name) else {
            self.err(
                src,
                name.span,
                format!("unit `{}` has no field `{}`", unit.name, name.name),
            );
            return None;
        };
        let ty = expr_ty(conv, src, e.span, self)?;
        Some((
            ir::Expr::Member {
                base: Box::new(b),
                name: name.name.clone(),
                conv,
            },
            ty,
        ))
    }

    /// `recall(name, key)`, `recall_int(name, key)`: what the session remembered.
    fn lower_recall(
        &mut self,
        src: &Source,
        scope: &Scope,
        f: &ast::Ident,
        args: &[ast::Expr],
    ) -> Option<(ir::Expr, ExprTy)> {
        let K::Path(n) = &args[0].kind else {
            self.err_hint(
                src,
                args[0].span,
                format!("{}() takes a memory name first", f.name),
                "write `recall(interface, context_id)`",
            );
            return None;
        };
        let (key, key_ty) = self.lower_expr(src, scope, &args[1])?;
        if key_ty == ExprTy::Bool {
            self.err(src, args[1].span, "a memory key is a number or bytes");
            return None;
        }
        let int = f.name == "recall_int";
        Some((
            ir::Expr::Recall {
                name: n.name.name.clone(),
                key: Box::new(key),
                key_ty,
                int,
            },
            if int { ExprTy::Int } else { ExprTy::Bytes },
        ))
    }

    /// `found(a.b.c)`: whether a path through optional fields and cases is present.
    fn lower_found(
        &mut self,
        src: &Source,
        scope: &Scope,
        args: &[ast::Expr],
    ) -> Option<(ir::Expr, ExprTy)> {
        let Some(names) = dotted_names(&args[0]) else {
            self.err_hint(
                src,
                args[0].span,
                "found() takes a path of fields",
                "write `found(head.lines.entry.Field.value.ContentLength)`",
            );
            return None;
        };
        let root = &names[0];
        let Some(unit) = scope.fields.get(&root.name).and_then(|s| s.unit.clone()) else {
            self.err(
                src,
                root.span,
                format!("`{}` is not a unit field decoded before this", root.name),
            );
            return None;
        };
        let steps = self.ast_path(src, &unit, &names[1..])?;
        Some((
            ir::Expr::Found {
                root: root.name.clone(),
                steps,
            },
            ExprTy::Bool,
        ))
    }

    /// `raw(number)`: a number field's digits as received.
    fn lower_raw(
        &mut self,
        src: &Source,
        scope: &Scope,
        args: &[ast::Expr],
    ) -> Option<(ir::Expr, ExprTy)> {
        let (a, _) = self.lower_expr(src, scope, &args[0])?;
        let base = match a {
            ir::Expr::Field {
                name,
                conv: Conv::Number,
            } => ir::Expr::Field {
                name,
                conv: Conv::Unit,
            },
            ir::Expr::Elem {
                name,
                conv: Conv::Number,
            } => ir::Expr::Elem {
                name,
                conv: Conv::Unit,
            },
            ir::Expr::Member {
                base,
                name,
                conv: Conv::Number,
            } => ir::Expr::Member {
                base,
                name,
                conv: Conv::Unit,
            },
            _ => {
                self.err(src, args[0].span, "raw() takes a number field");
                return None;
            }
        };
        Some((ir::Expr::Raw(Box::new(base)), ExprTy::Bytes))
    }

    /// `is(field, Case)`: whether a switch field holds a case (the case is checked later).
    fn lower_is(
        &mut self,
        src: &Source,
        scope: &Scope,
        e: &ast::Expr,
        args: &[ast::Expr],
    ) -> Option<(ir::Expr, ExprTy)> {
        let (K::Path(field), K::Path(case)) = (&args[0].kind, &args[1].kind) else {
            self.err_hint(
                src,
                e.span,
                "is() takes a switch field and a case name",
                "write `is(entry, End)`",
            );
            return None;
        };
        let name = &field.name.name;
        let elem_unit = scope
            .element
            .as_ref()
            .filter(|t| self.unit_field_conv(&t.protocol, &t.name, name).is_some());
        let base = if elem_unit.is_some() {
            ir::Expr::Elem {
                name: name.clone(),
                conv: Conv::Unit,
            }
        } else if scope.fields.get(name).is_some_and(|s| !s.optional) {
            ir::Expr::Field {
                name: name.clone(),
                conv: Conv::Unit,
            }
        } else {
            self.err(src, field.span, format!("unknown field `{name}` in is()"));
            return None;
        };
        let unit = match elem_unit {
            Some(t) => t.clone(),
            None => TypeRef {
                protocol: scope.proto.clone(),
                name: scope.unit.clone(),
            },
        };
        self.cases.push(PendingCase {
            unit,
            field: name.clone(),
            case: case.name.name.clone(),
            src: src.clone(),
            span: case.span,
        });
        Some((
            ir::Expr::IsCase {
                base: Box::new(base),
                case: case.name.name.clone(),
            },
            ExprTy::Bool,
        ))
    }

    /// `len(field)`: the length of an array or byte string field.
    fn lower_len(
        &mut self,
        src: &Source,
        scope: &Scope,
        args: &[ast::Expr],
    ) -> Option<(ir::Expr, ExprTy)> {
        let a = &args[0];
        let inner = match &a.kind {
            K::Path(p) if p.protocol.is_none() => match scope.fields.get(&p.name.name) {
                Some(sym)
                    if matches!(sym.conv, Conv::Seq | Conv::Bytes | Conv::Utf16)
                        && !sym.optional =>
                {
                    ir::Expr::Field {
                        name: p.name.name.clone(),
                        conv: sym.conv,
                    }
                }
                _ => {
                    self.err(src, a.span, "len() takes an array or byte string field");
                    return None;
                }
            },
            _ => {
                self.err(src, a.span, "len() takes a field");
                return None;
            }
        };
        Some((ir::Expr::Len(Box::new(inner)), ExprTy::Int))
    }

    /// `!a`, `-a`.
    fn lower_unary(
        &mut self,
        src: &Source,
        scope: &Scope,
        e: &ast::Expr,
        op: &ast::UnOp,
        inner: &ast::Expr,
    ) -> Option<(ir::Expr, ExprTy)> {
        let (ex, ty) = self.lower_expr(src, scope, inner)?;
        let want = if *op == ast::UnOp::Not {
            ExprTy::Bool
        } else {
            ExprTy::Int
        };
        if ty != want {
            self.err(
                src,
                e.span,
                format!(
                    "`{}` needs {}",
                    if want == ExprTy::Bool { "!" } else { "-" },
                    if want == ExprTy::Bool {
                        "true or false"
                    } else {
                        "an integer"
                    }
                ),
            );
            return None;
        }
        Some((ir::Expr::Unary(*op, Box::new(ex)), ty))
    }

    /// `a op b`, typed: logic on booleans, comparison of equals, arithmetic on integers.
    fn lower_binary(
        &mut self,
        src: &Source,
        scope: &Scope,
        e: &ast::Expr,
        op: &ast::BinOp,
        a: &ast::Expr,
        b: &ast::Expr,
    ) -> Option<(ir::Expr, ExprTy)> {
        let (ea, ta) = self.lower_expr(src, scope, a)?;
        let (eb, tb) = self.lower_expr(src, scope, b)?;
        use ast::BinOp::*;
        let result = match op {
            Or | And if ta == ExprTy::Bool && tb == ExprTy::Bool => ExprTy::Bool,
            Eq | Ne if ta == tb => ExprTy::Bool,
            Lt | Le | Gt | Ge if ta == ExprTy::Int && tb == ExprTy::Int => ExprTy::Bool,
            BitOr | BitXor | BitAnd | Shl | Shr | Add | Sub | Mul | Div | Rem
                if ta == ExprTy::Int && tb == ExprTy::Int =>
            {
                ExprTy::Int
            }
            _ => {
                self.err(src, e.span, "the operands do not fit this operator");
                return None;
            }
        };
        Some((
            ir::Expr::Binary(*op, Box::new(ea), Box::new(eb), ta),
            result,
        ))
    }
}

pub(in crate::check) fn expr_ty(
    conv: Conv,
    src: &Source,
    span: ast::Span,
    cx: &mut Checker<'_>,
) -> Option<ExprTy> {
    match conv {
        Conv::Int | Conv::Enum | Conv::Flags | Conv::Number => Some(ExprTy::Int),
        Conv::Bytes | Conv::Utf16 => Some(ExprTy::Bytes),
        Conv::Seq => {
            cx.err_hint(src, span, "an array is not a value", "use len(field)");
            None
        }
        Conv::Unit => {
            cx.err_hint(
                src,
                span,
                "a unit is not a value",
                "use one of its fields: `field.member`",
            );
            None
        }
    }
}

pub(in crate::check) fn uses_params(e: &ir::Expr) -> bool {
    match e {
        ir::Expr::Param(_)
        | ir::Expr::Remaining
        | ir::Expr::IsRequest
        | ir::Expr::NextIs(_)
        | ir::Expr::Ahead
        | ir::Expr::Contains(_)
        | ir::Expr::Answering => true,
        ir::Expr::StartsWith(a, b) | ir::Expr::ByteAt(a, b) => uses_params(a) || uses_params(b),
        ir::Expr::Raw(a) => uses_params(a),
        ir::Expr::Found { .. } => false,
        ir::Expr::Unary(_, a) | ir::Expr::Len(a) => uses_params(a),
        ir::Expr::IsCase { base, .. } => uses_params(base),
        ir::Expr::Member { base, .. } => uses_params(base),
        ir::Expr::Binary(_, a, b, _) => uses_params(a) || uses_params(b),
        _ => false,
    }
}

/// `a.b.c` written as nested member expressions, as names.
pub(in crate::check) fn dotted_names(e: &ast::Expr) -> Option<Vec<ast::Ident>> {
    match &e.kind {
        ast::ExprKind::Path(p) if p.protocol.is_none() => Some(vec![p.name.clone()]),
        ast::ExprKind::Member(base, name) => {
            let mut v = dotted_names(base)?;
            v.push(name.clone());
            Some(v)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::{errors, field, program};
    use crate::ir::{self, Expr};

    #[test]
    fn names_members_calls_and_operators_are_typed() {
        let p = program(&["protocol t;\nunit H {\n    n: u8;\n}\nunit E {\n    last: u8;\n}\nunit A(limit: u8) {\n    h: H;\n    d: bytes[h.n + limit];\n    es: E[] until last == 1;\n    x: u8 if len(d) > 2 && starts_with(d, b\"ab\") && !is_request();\n}\n"]);
        assert!(matches!(
            &field(&p, "A", "d").ty,
            ir::Ty::Bytes(ir::BytesSize::Expr(Expr::Binary(_, a, b, _)))
                if matches!(**a, Expr::Member { .. }) && matches!(**b, Expr::Param(_))
        ));
        assert!(matches!(
            &field(&p, "A", "es").ty,
            ir::Ty::Array { len: ir::ArrayLen::Until(Expr::Binary(_, a, _, _)), .. }
                if matches!(**a, Expr::Elem { .. })
        ));
        assert!(field(&p, "A", "x").cond.is_some());
    }

    #[test]
    fn type_errors() {
        let one = |body: &str| {
            errors(&[&format!(
                "protocol t;\nunit A {{\n    n: u8;\n    d: bytes[2];\n    {body}\n}}\n"
            )])
        };
        assert_eq!(
            one("x: u8 if n == d;"),
            ["the operands do not fit this operator"]
        );
        assert_eq!(one("x: u8 if -true == 1;"), ["`-` needs an integer"]);
        assert_eq!(
            one("x: u8 if len(n) == 1;"),
            ["len() takes an array or byte string field"]
        );
        assert_eq!(
            one("x: u8 if byte_at(d, 0) == 1 && contains(b\"x\");"),
            Vec::<String>::new()
        );
    }
}

//! Spec expressions as Rust: `i128` integers with checked arithmetic (a failure is a decode or
//! encode error, never a panic), booleans, byte strings; and switch patterns.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::{conv_value, ident, lit_bytes, local, Cx, Gen};
use crate::ir::{self, Conv, Expr, ExprTy, Pat};

impl Gen<'_> {
    /// An expression of the given type; when it can fail (checked arithmetic, a text number
    /// that is not one), failures become decode (or encode) errors through `?`.
    pub(super) fn expr_value(&self, e: &Expr, cx: Cx, _want: ExprTy) -> TokenStream {
        let rt = self.rt;
        if !fallible(e) {
            return self.expr(e, cx);
        }
        let opt = self.expr_opt(e, cx);
        match cx {
            Cx::Decode => quote!(r.arith(#opt)?),
            Cx::Encode => quote!(#rt::evaluated(#opt)?),
        }
    }

    /// A fallible expression as an `Option`: the checked operation itself at the top, inside
    /// a closure only when an operand can fail too (`?` inside).
    fn expr_opt(&self, e: &Expr, cx: Cx) -> TokenStream {
        use ir::BinOp::*;
        let rt = self.rt;
        let top = match e {
            Expr::Binary(op @ (Add | Sub | Mul | Div | Rem | Shl | Shr), a, b, _) => {
                let f = match op {
                    Add => quote!(add),
                    Sub => quote!(sub),
                    Mul => quote!(mul),
                    Div => quote!(div),
                    Rem => quote!(rem),
                    Shl => quote!(shl),
                    _ => quote!(shr),
                };
                let inner = fallible(a) || fallible(b);
                let (a, b) = (self.expr(a, cx), self.expr(b, cx));
                Some((quote!(#rt::ops::#f(#a, #b)), inner))
            }
            Expr::Unary(ir::UnOp::Neg, a) => {
                let inner = fallible(a);
                let a = self.expr(a, cx);
                Some((quote!(#rt::ops::neg(#a)), inner))
            }
            Expr::IsRequest => Some((quote!(r.is_request()), false)),
            // A text number's value.
            Expr::Field {
                name,
                conv: Conv::Number,
            } => {
                let base = self.field_base(name, cx);
                Some((quote!(#base.value()), false))
            }
            _ => None,
        };
        match top {
            Some((call, false)) => call,
            Some((call, true)) => quote!((|| #call)()),
            None => {
                let inner = self.expr(e, cx);
                quote!((|| Some(#inner))())
            }
        }
    }

    /// A switch selector: integers as `i128`, booleans, byte strings as `Bytes`.
    pub(super) fn expr_any(&self, e: &Expr, cx: Cx) -> TokenStream {
        let rt = self.rt;
        match e {
            Expr::Field {
                conv: Conv::Bytes | Conv::Utf16,
                ..
            }
            | Expr::Elem {
                conv: Conv::Bytes | Conv::Utf16,
                ..
            }
            | Expr::Member {
                conv: Conv::Bytes | Conv::Utf16,
                ..
            } => {
                let v = self.expr_value(e, cx, ExprTy::Bytes);
                quote!(#rt::Bytes::copy_from_slice(#v))
            }
            _ => self.expr_value(e, cx, ExprTy::Int),
        }
    }

    fn field_base(&self, name: &str, cx: Cx) -> TokenStream {
        match cx {
            Cx::Decode => {
                let l = local(name);
                quote!(#l)
            }
            Cx::Encode => {
                let f = ident(name);
                quote!(self.#f)
            }
        }
    }

    /// The expression inside an `Option` closure: `?` propagates arithmetic failures.
    fn expr(&self, e: &Expr, cx: Cx) -> TokenStream {
        let rt = self.rt;
        match e {
            Expr::Int(v) => {
                let l = Literal::i128_suffixed(*v);
                quote!(#l)
            }
            Expr::Bool(b) => quote!(#b),
            Expr::Bytes(b) | Expr::CiBytes(b) => {
                let l = lit_bytes(b);
                quote!(&#l[..])
            }
            Expr::Field { name, conv } => {
                let base = self.field_base(name, cx);
                conv_value(&base, *conv).unwrap_or(base)
            }
            Expr::Elem { name, conv } => {
                let f = ident(name);
                conv_value(&quote!(__e.#f), *conv).unwrap_or(quote!(__e.#f))
            }
            Expr::Member { base, name, conv } => {
                let b = self.expr(base, cx);
                let f = ident(name);
                conv_value(&quote!(#b.#f), *conv).unwrap_or(quote!(#b.#f))
            }
            Expr::Param(n) => {
                let p = format_ident!("p_{}", n);
                quote!(#p)
            }
            Expr::Remaining => quote!((r.remaining() as i128)),
            Expr::IsCase { base, case } => {
                let b = self.expr(base, cx);
                quote!((#b.case_name() == #case))
            }
            Expr::Found { root, steps } => {
                let base = self.field_base(root, cx);
                let walk = self.path_exists(steps, base);
                quote!((|| -> bool { #walk false })())
            }
            Expr::StartsWith(a, b) => {
                let a = self.expr(a, cx);
                let b = self.expr(b, cx);
                quote!(<[u8]>::starts_with(#a, #b))
            }
            Expr::Raw(a) => {
                let a = self.expr(a, cx);
                quote!(&#a.raw[..])
            }
            Expr::ByteAt(a, i) => {
                let a = self.expr(a, cx);
                let i = self.expr(i, cx);
                quote!(usize::try_from(#i).ok().and_then(|__i| <[u8]>::get(#a, __i)).map_or(-1i128, |__b| i128::from(*__b)))
            }
            Expr::Ahead => quote!(r.ahead()),
            Expr::NextIs(b) => {
                let l = lit_bytes(b);
                quote!(r.next_is(#l))
            }
            Expr::Answering => quote!(r.answering()),
            Expr::Recall {
                name,
                key,
                key_ty,
                int,
            } => {
                let k = self.expr(key, cx);
                let n = lit_bytes(name.as_bytes());
                let key_bytes = match key_ty {
                    ExprTy::Bytes => quote!(#k.to_vec()),
                    _ => quote!(#rt::ops::decimal(#k)),
                };
                if *int {
                    quote!(r.recall_int(#n, &#key_bytes))
                } else {
                    quote!(r.recall(#n, &#key_bytes))
                }
            }
            Expr::Contains(b) => {
                let l = lit_bytes(b);
                quote!(r.ahead_contains(#l))
            }
            Expr::IsRequest => quote!(r.is_request()?),
            Expr::Len(inner) => {
                let i = match &**inner {
                    Expr::Field { name, conv } => {
                        let base = self.field_base(name, cx);
                        if *conv == Conv::Utf16 {
                            quote!(#base.raw)
                        } else {
                            base
                        }
                    }
                    other => self.expr(other, cx),
                };
                quote!((#i.len() as i128))
            }
            Expr::Unary(op, a) => {
                let a = self.expr(a, cx);
                match op {
                    ir::UnOp::Neg => quote!(#rt::ops::neg(#a)?),
                    ir::UnOp::Not => quote!((!#a)),
                }
            }
            Expr::Binary(op, a, b, operand) => self.binary(*op, a, b, *operand, cx),
        }
    }

    fn binary(&self, op: ir::BinOp, a: &Expr, b: &Expr, operand: ExprTy, cx: Cx) -> TokenStream {
        use ir::BinOp::*;
        let rt = self.rt;
        let ci = matches!(a, Expr::CiBytes(_)) || matches!(b, Expr::CiBytes(_));
        let a = self.expr(a, cx);
        let b = self.expr(b, cx);
        match op {
            Add => quote!(#rt::ops::add(#a, #b)?),
            Sub => quote!(#rt::ops::sub(#a, #b)?),
            Mul => quote!(#rt::ops::mul(#a, #b)?),
            Div => quote!(#rt::ops::div(#a, #b)?),
            Rem => quote!(#rt::ops::rem(#a, #b)?),
            Shl => quote!(#rt::ops::shl(#a, #b)?),
            Shr => quote!(#rt::ops::shr(#a, #b)?),
            BitOr => quote!((#a | #b)),
            BitXor => quote!((#a ^ #b)),
            BitAnd => quote!((#a & #b)),
            And => quote!((#a && #b)),
            Or => quote!((#a || #b)),
            Eq | Ne if operand == ExprTy::Bytes => {
                let t = if ci {
                    quote!(<[u8]>::eq_ignore_ascii_case(#a, #b))
                } else {
                    quote!((#a == #b))
                };
                if op == Eq {
                    t
                } else {
                    quote!((!#t))
                }
            }
            Eq => quote!((#a == #b)),
            Ne => quote!((#a != #b)),
            Lt => quote!((#a < #b)),
            Le => quote!((#a <= #b)),
            Gt => quote!((#a > #b)),
            Ge => quote!((#a >= #b)),
        }
    }
}

/// Whether an expression can fail: checked arithmetic, a text number's value, the direction.
fn fallible(e: &Expr) -> bool {
    use ir::BinOp::*;
    match e {
        Expr::Field { conv, .. } | Expr::Elem { conv, .. } => *conv == Conv::Number,
        Expr::Member { base, conv, .. } => *conv == Conv::Number || fallible(base),
        Expr::IsRequest => true,
        Expr::Unary(ir::UnOp::Neg, _) => true,
        Expr::Binary(Add | Sub | Mul | Div | Rem | Shl | Shr, ..) => true,
        Expr::Binary(_, a, b, _) | Expr::StartsWith(a, b) | Expr::ByteAt(a, b) => {
            fallible(a) || fallible(b)
        }
        Expr::Unary(_, a) | Expr::Len(a) | Expr::Raw(a) => fallible(a),
        Expr::IsCase { base, .. } => fallible(base),
        Expr::Recall { key, .. } => fallible(key),
        _ => false,
    }
}

/// Whether the Rust of an expression uses the reader (its state, or `r.arith` for a check), so
/// that it cannot be an argument beside `r` in a call.
pub(super) fn needs_reader(e: &Expr) -> bool {
    match e {
        Expr::Remaining
        | Expr::IsRequest
        | Expr::NextIs(_)
        | Expr::Ahead
        | Expr::Contains(_)
        | Expr::Answering
        | Expr::Recall { .. }
        | Expr::Found { .. } => true,
        _ if fallible(e) => true,
        Expr::StartsWith(a, b) | Expr::ByteAt(a, b) | Expr::Binary(_, a, b, _) => {
            needs_reader(a) || needs_reader(b)
        }
        Expr::Raw(a) | Expr::Unary(_, a) | Expr::Len(a) => needs_reader(a),
        Expr::IsCase { base, .. } | Expr::Member { base, .. } => needs_reader(base),
        _ => false,
    }
}

/// Whether an expression needs what only the decoder has (parameters, the reader).
pub(super) fn uses_context(e: &Expr) -> bool {
    match e {
        Expr::Param(_)
        | Expr::Remaining
        | Expr::IsRequest
        | Expr::Elem { .. }
        | Expr::NextIs(_)
        | Expr::Ahead
        | Expr::Contains(_)
        | Expr::Answering => true,
        Expr::StartsWith(a, b) | Expr::ByteAt(a, b) => uses_context(a) || uses_context(b),
        Expr::Raw(a) => uses_context(a),
        Expr::Found { .. } => false,
        Expr::Unary(_, a) | Expr::Len(a) => uses_context(a),
        Expr::IsCase { base, .. } => uses_context(base),
        Expr::Member { base, .. } => uses_context(base),
        Expr::Binary(_, a, b, _) => uses_context(a) || uses_context(b),
        _ => false,
    }
}

/// Whether an expression reads a length, count or offset of the unit (recomputed on encode,
/// so its stored value may be stale).
pub(super) fn names_derived(e: &Expr, u: &ir::Unit) -> bool {
    match e {
        Expr::Field { name, .. } => u.fields().any(|f| f.name == *name && f.derived().is_some()),
        Expr::Unary(_, a) | Expr::Len(a) => names_derived(a, u),
        Expr::IsCase { base, .. } | Expr::Raw(base) => names_derived(base, u),
        Expr::StartsWith(a, b) | Expr::ByteAt(a, b) => names_derived(a, u) || names_derived(b, u),
        Expr::Member { base, .. } => names_derived(base, u),
        Expr::Binary(_, a, b, _) => names_derived(a, u) || names_derived(b, u),
        _ => false,
    }
}

pub(super) fn pat_test(p: &Pat, s: &proc_macro2::Ident) -> TokenStream {
    match p {
        Pat::Any => quote!(true),
        Pat::Int(v) => {
            let l = Literal::i128_suffixed(*v);
            quote!(#s == #l)
        }
        Pat::Bool(true) => quote!(#s),
        Pat::Bool(false) => quote!(!#s),
        Pat::Bytes(b) => {
            let l = lit_bytes(b);
            quote!(#s[..] == #l[..])
        }
        Pat::CiBytes(b) => {
            let l = lit_bytes(b);
            quote!(#s.eq_ignore_ascii_case(#l))
        }
    }
}

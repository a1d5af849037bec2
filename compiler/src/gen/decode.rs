//! Decoders: `decode_from` (and, for NDR units, `decode_scalars`/`decode_deferred`). Fields
//! read in order into locals (`f_name`), each through `r.field(&INFO, ..)` so that an error
//! names it; the runtime's `Reader` methods do the work (limits, arrays, checks).

use std::collections::HashSet;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::{
    conv_value, ident, int_rust, lit_bytes, local, num, order_tokens, Cx, Gen, Phase, Scope,
};
use crate::ir::{self, ArrayLen, BytesSize, Conv, ExprTy, Item, SizeUnit, Ty, UnitKind};

/// A decoded value: an expression of the value itself (it may use `?`), or of a `Result`.
pub(super) enum Dec {
    Val(TokenStream),
    Res(TokenStream),
    /// A function of the reader alone (`Unit::decode_from`), passed as it is where a
    /// closure of the reader is wanted.
    Call(TokenStream),
}

impl Dec {
    /// The value, with `?` on a `Result`.
    pub(super) fn val(self) -> TokenStream {
        match self {
            Dec::Val(v) => v,
            Dec::Res(r) => quote!(#r?),
            Dec::Call(f) => quote!(#f(r)?),
        }
    }

    /// A closure of the reader that returns a `Result` of the value.
    pub(super) fn closure(self) -> TokenStream {
        match self {
            Dec::Call(f) => f,
            other => {
                let res = other.res();
                quote!(|r| #res)
            }
        }
    }

    /// A `Result` of the value.
    pub(super) fn res(self) -> TokenStream {
        match self {
            Dec::Val(v) => quote!(Ok(#v)),
            Dec::Res(r) => r,
            Dec::Call(f) => quote!(#f(r)),
        }
    }

    fn map(self, f: impl FnOnce(TokenStream) -> TokenStream) -> Dec {
        Dec::Val(f(self.val()))
    }
}

impl Gen<'_> {
    fn unit_prologue(&self, u: &ir::Unit) -> (TokenStream, TokenStream) {
        let order = self.unit_order();
        let (line_open, line_close) = if u.kind == UnitKind::Line {
            let max = Literal::usize_unsuffixed(self.p.text.max_line as usize);
            let info = self.info_ident(u, "_eol");
            (
                quote! { let __line = r.field(&#info, |r| r.line(#max))?; },
                quote! { let f_eol = r.field(&#info, |r| r.end_line(__line))?; },
            )
        } else {
            (quote!(), quote!())
        };
        let (begin, end) = match super::scope(u) {
            Scope::Anchored => (
                quote!(let __unit = r.begin_unit(#order)?;),
                quote!(r.end_unit(__unit);),
            ),
            Scope::Plain => (
                quote!(let __unit = r.begin_plain(#order)?;),
                quote!(r.end_plain(__unit);),
            ),
            Scope::Bare => (quote!(), quote!()),
        };
        (
            quote! {
                #begin
                #line_open
            },
            quote! {
                #line_close
                #end
            },
        )
    }

    pub(super) fn decode_body(&self, u: &ir::Unit, phase: Phase) -> TokenStream {
        let (open, close) = self.unit_prologue(u);
        let mut stmts = Vec::new();
        let mut inits = Vec::new();
        // Limits that only a condition sets are `Option`s.
        let mut optional_limits = HashSet::new();
        let runs = super::run::split(&u.items, |items| self.run_len(u, items));
        for (k, &(i, n)) in runs.iter().enumerate() {
            if n > 1 {
                let (s, init) = self.decode_run(u, &u.items[i..i + n], k);
                stmts.push(s);
                inits.extend(init);
                continue;
            }
            match &u.items[i] {
                Item::Anchor(a) => stmts.push(quote!(r.push_anchor(#a);)),
                Item::Align { to, from, field } => {
                    let l = local(field);
                    let f = ident(field);
                    let info = self.info_ident(u, field);
                    let to = Literal::usize_unsuffixed(*to as usize);
                    stmts.push(quote!(let #l = r.field(&#info, |r| r.align(#to, #from))?;));
                    inits.push(quote!(#f: #l));
                }
                Item::Order { order, cond } => {
                    stmts.push(self.order_stmt(quote!(r), *order, cond.as_ref(), Cx::Decode))
                }
                Item::BeginLimit {
                    id,
                    length_field,
                    conv,
                    unit_bytes,
                    add,
                    since,
                    when,
                } => {
                    let lim = format_ident!("__lim{}", id);
                    let (add, unit_bytes) = (num(*add), num(*unit_bytes));
                    let l = local(length_field);
                    let v =
                        conv_value(&quote!(#l), *conv).unwrap_or_else(|| quote!(i128::from(#l)));
                    let info = self.info_ident(u, length_field);
                    let used = match since {
                        Some(first) => {
                            let p = format_ident!("__p_{}", first.trim_start_matches('_'));
                            quote!(r.pos() - #p)
                        }
                        None => quote!(0),
                    };
                    let open =
                        quote!(r.field(&#info, |r| r.limit_by(#v, #add, #unit_bytes, #used))?);
                    stmts.push(match when {
                        None => quote!(let #lim = #open;),
                        Some(c) => {
                            optional_limits.insert(*id);
                            let c = self.expr_value(c, Cx::Decode, ExprTy::Bool);
                            quote!(let #lim = if #c { Some(#open) } else { None };)
                        }
                    });
                }
                Item::Seek(name) => {
                    let Some(f) = u.fields().find(|f| f.name == *name) else {
                        continue;
                    };
                    let Some(loc) = &f.located else { continue };
                    let info = self.info_ident(u, &f.name);
                    let g = local(&loc.gap);
                    let gi = ident(&loc.gap);
                    inits.push(quote!(#gi: #g));
                    let o = local(&loc.offset_field);
                    let off = conv_value(&quote!(#o), loc.offset_conv)
                        .unwrap_or_else(|| quote!(i128::from(#o)));
                    let from = &loc.from;
                    let add = num(loc.add);
                    let rt = self.rt;
                    let seek = quote!(r.field(&#info, |r| r.seek_offset(#off, #from, #add))?);
                    stmts.push(match &f.cond {
                        None => quote!(let #g = #seek;),
                        Some(c) => {
                            let c = self.expr_value(c, Cx::Decode, ExprTy::Bool);
                            quote!(let #g = if #c { #seek } else { #rt::Bytes::new() };)
                        }
                    });
                }
                Item::Mark(first) => {
                    let p = format_ident!("__p_{}", first.trim_start_matches('_'));
                    stmts.push(quote!(let #p = r.pos();));
                }
                Item::BeginWithin { id, size } => {
                    let lim = format_ident!("__lim{}", id);
                    let n = self.expr_value(size, Cx::Decode, ExprTy::Int);
                    stmts.push(quote!(let #lim = r.limit_to(#n)?;));
                }
                Item::EndLimit { id } => {
                    let lim = format_ident!("__lim{}", id);
                    stmts.push(if optional_limits.contains(id) {
                        quote!(r.end_limit_if(#lim)?;)
                    } else {
                        quote!(r.end_limit(#lim)?;)
                    });
                }
                Item::Bits(g) => self.decode_bits(u, g, &mut stmts, &mut inits),
                Item::Field(f) => {
                    let (s, init) = self.decode_field(u, f, phase);
                    stmts.push(s);
                    inits.extend(init);
                }
            }
        }
        if u.kind == UnitKind::Line {
            inits.push(quote!(_eol: f_eol));
        }
        for f in u.fields().filter(|f| f.hint) {
            let h = format_ident!("_{}_exact", f.name.trim_start_matches('_'));
            inits.push(quote!(#h: false));
        }
        let positional = self.derived_checks(u, false, quote!(this));
        let values = if u.has_deferred {
            quote!()
        } else {
            self.derived_checks(u, true, quote!(this))
        };
        if positional.is_empty() && values.is_empty() {
            return quote! {
                #open
                #(#stmts)*
                #close
                Ok(Self { #(#inits,)* })
            };
        }
        // Only hints are set after the value is built.
        let binding = if u.fields().any(|f| f.hint) {
            quote!(let mut this)
        } else {
            quote!(let this)
        };
        quote! {
            #open
            #(#stmts)*
            #close
            #binding = Self { #(#inits,)* };
            #positional
            #values
            Ok(this)
        }
    }

    /// A bit-field group: read once, then split into its fields.
    fn decode_bits(
        &self,
        u: &ir::Unit,
        g: &ir::BitGroup,
        stmts: &mut Vec<TokenStream>,
        inits: &mut Vec<TokenStream>,
    ) {
        let rt = self.rt;
        let n = Literal::usize_unsuffixed(g.bytes);
        let first = self.info_ident(u, &g.fields[0].name);
        stmts.push(quote!(let __bits = r.field(&#first, |r| r.uint(#n))?;));
        let mut shift = (g.bytes * 8) as u32;
        for f in &g.fields {
            let Ty::Int { bits, signed, .. } = f.ty else {
                continue;
            };
            shift -= bits;
            let t = int_rust(bits, signed);
            let l = local(&f.name);
            let (sh, b) = (num(shift), num(bits));
            stmts.push(quote!(let #l = #rt::bits::<#t>(__bits, #sh, #b);));
            if let Some(v) = f.check {
                let info = self.info_ident(u, &f.name);
                let vl = Literal::i128_unsuffixed(v);
                stmts.push(quote!(r.expect(#l, #vl).map_err(|e| e.in_field(&#info))?;));
            }
            let fname = ident(&f.name);
            inits.push(quote!(#fname: #l));
        }
    }

    /// Checks that every length and count that did not size its target agrees with it, so
    /// that a decoded message always re-encodes to the bytes it came from. `values`: the
    /// checks that need the whole value (nested lengths, reached through pointees); otherwise
    /// the ones that use decode positions and element counts.
    pub(super) fn derived_checks(
        &self,
        u: &ir::Unit,
        values: bool,
        recv: TokenStream,
    ) -> TokenStream {
        let mut out = Vec::new();
        for f in u.fields() {
            let Some(role) = f.derived() else { continue };
            if !values && !f.hint && limit_implies(u, &f.name, role) {
                continue;
            }
            let Some(expect) = self.derived_expect(u, f, role, values, &recv) else {
                continue;
            };
            let fname = ident(&f.name);
            let info = self.info_ident(u, &f.name);
            if f.hint {
                let h = format_ident!("_{}_exact", f.name.trim_start_matches('_'));
                out.push(quote!(#recv.#h = #expect == Some(i128::from(#recv.#fname));));
                continue;
            }
            let what = match role {
                ir::Role::Length { first, last, .. } if first == last => {
                    format!("the size of `{first}`")
                }
                ir::Role::Length { first, last, .. } => {
                    format!("the size of `{first} .. {last}`")
                }
                ir::Role::ValueLength { text, .. } => format!("the size of `{text}`"),
                _ => String::new(),
            };
            out.push(quote!(r.check_size(&#info, #expect, i128::from(#recv.#fname), #what)?;));
        }
        quote!(#(#out)*)
    }

    /// What a derived field must hold for the value decoded (`Option<i128>`), for the checks
    /// of this kind (`values` or positional); `None` when it is not checked here.
    fn derived_expect(
        &self,
        u: &ir::Unit,
        f: &ir::Field,
        role: &ir::Role,
        values: bool,
        recv: &TokenStream,
    ) -> Option<TokenStream> {
        let rt = self.rt;
        Some(match role {
            ir::Role::ValueLength {
                path, unit, add, ..
            } if values => {
                let size = super::paths::value_path_size(path, *unit, recv);
                let ub = if *unit == SizeUnit::Elements {
                    1
                } else {
                    unit.bytes()
                };
                {
                    let (add, ub) = (num(*add), num(ub));
                    quote!(#rt::ops::length_of(#size, #add, #ub))
                }
            }
            ir::Role::Length {
                first,
                unit: SizeUnit::Elements,
                add,
                ..
            } if !values => {
                let fname = ident(first);
                let optional = u.fields().any(|t| t.name == *first && t.cond.is_some());
                let len = if optional {
                    quote!(#recv.#fname.as_ref().map_or(0, |v| v.len()))
                } else {
                    quote!(#recv.#fname.len())
                };
                {
                    let add = num(*add);
                    quote!(#rt::ops::length_of(#len, #add, 1))
                }
            }
            ir::Role::Length {
                first,
                last,
                unit,
                add,
            } if !values => {
                let s = format_ident!("__s_{}", first.trim_start_matches('_'));
                let e = format_ident!("__e_{}", last.trim_start_matches('_'));
                let ub = unit.bytes();
                let (add, ub) = (num(*add), num(ub));
                let computed = quote!(#rt::ops::length_of(#e - #s, #add, #ub));
                match super::optional_single(u, first, last) {
                    Some(t) => {
                        let tname = ident(t);
                        let fname = ident(&f.name);
                        quote!(if #recv.#tname.is_some() { #computed } else { Some(i128::from(#recv.#fname)) })
                    }
                    None => computed,
                }
            }
            _ => return None,
        })
    }

    pub(super) fn decode_field(
        &self,
        u: &ir::Unit,
        f: &ir::Field,
        phase: Phase,
    ) -> (TokenStream, Vec<TokenStream>) {
        let rt = self.rt;
        let info = self.info_ident(u, &f.name);
        let l = local(&f.name);
        let fname = ident(&f.name);
        let mut inits = Vec::new();
        let value = match &f.size_from {
            Some(sf) => {
                let root = local(&sf.root);
                let find = self.path_find(&sf.steps, quote!(#root));
                let read = quote!({
                    let __held: Option<Option<i128>> = (|| { #find None })();
                    r.bytes_held(__held)?
                });
                Dec::Val(match f.ty {
                    Ty::Utf16(_) => quote!(#rt::Utf16 { raw: #read }),
                    _ => read,
                })
            }
            None => self.decode_value(&f.ty, phase),
        };
        let value = if f.boxed {
            value.map(|v| quote!(Box::new(#v)))
        } else {
            value
        };
        let read = match f.check {
            Some(v) => {
                let vl = Literal::i128_unsuffixed(v);
                let res = value.res();
                quote!(r.field(&#info, |r| #res.and_then(|__v| r.expect(__v, #vl)))?)
            }
            None => {
                let f = value.closure();
                quote!(r.field(&#info, #f)?)
            }
        };
        let measured = u.measured.contains(&f.name);
        let (start, end) = if measured {
            let s_id = format_ident!("__s_{}", f.name.trim_start_matches('_'));
            let e_id = format_ident!("__e_{}", f.name.trim_start_matches('_'));
            (quote!(let #s_id = r.pos();), quote!(let #e_id = r.pos();))
        } else {
            (quote!(), quote!())
        };
        let stmt = match (&f.cond, &f.view) {
            (_, Some(src)) => self.decode_view(f, src, phase),
            (None, _) if f.stored() => quote!(#start let #l = #read; #end),
            (None, _) => quote!(#start #read; #end),
            (Some(c), None) => {
                let c = self.expr_value(c, Cx::Decode, ExprTy::Bool);
                quote! {
                    #start
                    let #l = if #c { Some(#read) } else { None };
                    #end
                }
            }
        };
        let stmt = match self.remember_stmt(f) {
            None => stmt,
            Some(remember) => quote!(#stmt #remember),
        };
        if f.stored() {
            inits.push(quote!(#fname: #l));
        }
        (stmt, inits)
    }

    /// What a field remembers (`@remember`, `@append`) once decoded into its local.
    pub(super) fn remember_stmt(&self, f: &ir::Field) -> Option<TokenStream> {
        let rt = self.rt;
        let l = local(&f.name);
        let (name, key, key_ty) = f.remember.as_ref()?;
        let n = lit_bytes(name.as_bytes());
        let k = self.expr_value(key, Cx::Decode, *key_ty);
        let const_key = match (key, key_ty) {
            (ir::Expr::Int(v), ExprTy::Int) => Some(lit_bytes(v.to_string().as_bytes())),
            _ => None,
        };
        let key_bytes = match (&const_key, key_ty) {
            // A constant key is its decimal text already.
            (Some(text), _) => quote!(#text),
            // Owned: the key may borrow the reader, which remembering changes.
            (None, ExprTy::Bytes) => quote!(&#k.to_vec()),
            (None, _) => quote!(&#rt::ops::decimal(#k)),
        };
        let value = match f.ty.conv() {
            Conv::Bytes => Some(quote!(&__x[..])),
            Conv::Utf16 => Some(quote!(&__x.raw[..])),
            _ => None,
        };
        let body = match (value, f.append) {
            // Under a constant key, noted and stored only if the memory is used afterwards.
            (None, false) if const_key.is_some() => quote! {
                r.remember_int_static(#n, #key_bytes, i128::from(*__x));
            },
            // A number is remembered in decimal, formatted in place.
            (None, false) => quote! {
                let __key: &[u8] = #key_bytes;
                r.remember_int(#n, __key, i128::from(*__x));
            },
            (value, append) => {
                let value = value.unwrap_or_else(|| quote!(&#rt::ops::decimal(i128::from(*__x))));
                let store = if append {
                    quote!(r.append_memory(#n, __key, __value);)
                } else {
                    quote!(r.remember(#n, __key, __value);)
                };
                quote! {
                    let __key: &[u8] = #key_bytes;
                    let __value: &[u8] = #value;
                    #store
                }
            }
        };
        Some(if f.optional() {
            quote!(if let Some(__x) = &#l { #body })
        } else {
            quote!({ let __x = &#l; #body })
        })
    }

    /// A field decoded by a reader of its own over gathered bytes, sharing the session memory
    /// and the byte order; `None` when they do not (yet) make a whole value.
    fn decode_view(&self, f: &ir::Field, src: &ir::Expr, phase: Phase) -> TokenStream {
        let rt = self.rt;
        let l = local(&f.name);
        let src = self.expr_value(src, Cx::Decode, ExprTy::Bytes);
        let ty = self.rust_type(&f.ty);
        let inner = self.decode_value(&f.ty, phase).val();
        let (stored, boxing) = if f.boxed {
            (quote!(Box<#ty>), quote!(.map(Box::new)))
        } else {
            (ty.clone(), quote!())
        };
        quote! {
            let #l: Option<#stored> = {
                let mut __sub = #rt::Reader::new(#rt::Bytes::copy_from_slice(#src));
                __sub.set_order(r.order());
                __sub.set_memory(r.take_memory());
                let __res = (|r: &mut #rt::Reader| -> Result<#ty, #rt::DecodeError> {
                    let __v: #ty = #inner;
                    if r.remaining() != 0 {
                        return Err(r.error(#rt::DecodeErrorKind::Trailing { count: r.remaining() }));
                    }
                    Ok(__v)
                })(&mut __sub);
                r.set_memory(__sub.take_memory());
                __res.ok()#boxing
            };
        }
    }

    /// Decodes a value of type `ty` at `r`.
    pub(super) fn decode_value(&self, ty: &Ty, phase: Phase) -> Dec {
        let rt = self.rt;
        match ty {
            Ty::Int {
                bits,
                signed,
                order,
            } => {
                let n = Literal::usize_unsuffixed((*bits / 8) as usize);
                let t = int_rust(*bits, *signed);
                Dec::Res(match order {
                    Some(o) => {
                        let o = order_tokens(rt, *o);
                        quote!(r.int_in::<#t>(#n, #o))
                    }
                    None => quote!(r.int::<#t>(#n)),
                })
            }
            Ty::Enum {
                target,
                bits,
                flags,
            } => {
                let n = Literal::usize_unsuffixed((*bits / 8) as usize);
                let path = self.type_path(target);
                Dec::Val(if *flags {
                    quote!(#path(r.int(#n)?))
                } else {
                    quote!(#path::from_raw(r.int(#n)?))
                })
            }
            Ty::Bytes(size) => self.decode_bytes(size),
            Ty::Literal(b) => {
                let b = lit_bytes(b);
                Dec::Res(quote!(r.literal(#b).map(|()| #rt::Bytes::new())))
            }
            Ty::CiLiteral(b) => {
                let b = lit_bytes(b);
                Dec::Res(quote!(r.ci_literal(#b)))
            }
            Ty::Utf16(size) => {
                let b = self.decode_bytes(size).val();
                Dec::Val(quote!(#rt::Utf16 { raw: #b }))
            }
            Ty::Utf16z => Dec::Val(quote!(#rt::Utf16 { raw: r.utf16z()? })),
            Ty::Spaces => Dec::Res(quote!(r.spaces())),
            Ty::OptionalSpaces => Dec::Val(quote!(r.optional_spaces())),
            Ty::Token => Dec::Res(quote!(r.token())),
            Ty::Number(None) => Dec::Call(quote!(<#rt::TextNumber as #rt::Leaf>::decode)),
            Ty::Number(Some(w)) => {
                let w = Literal::usize_unsuffixed(*w);
                Dec::Res(quote!(#rt::TextNumber::decode_width(r, #w)))
            }
            Ty::Leaf(n) => {
                let n = format_ident!("{}", n);
                Dec::Call(quote!(<#rt::#n as #rt::Leaf>::decode))
            }
            Ty::Unit {
                target,
                args,
                deferred,
            } => {
                let path = self.type_path(target);
                let f = if *deferred && phase == Phase::Scalars {
                    quote!(decode_scalars)
                } else {
                    quote!(decode_from)
                };
                if args.is_empty() {
                    return Dec::Call(quote!(#path::#f));
                }
                // Arguments are evaluated first (owned), so none borrows the reader in the call.
                let mut lets = Vec::new();
                let mut passed = Vec::new();
                for (i, (a, ty)) in args.iter().enumerate() {
                    let v = self.expr_value(a, Cx::Decode, *ty);
                    let id = format_ident!("__a{}", i);
                    match ty {
                        _ if !super::expr::needs_reader(a) => passed.push(v),
                        ExprTy::Bytes => {
                            lets.push(quote!(let #id = #rt::Bytes::copy_from_slice(#v);));
                            passed.push(quote!(&#id[..]));
                        }
                        _ => {
                            lets.push(quote!(let #id = #v;));
                            passed.push(quote!(#id));
                        }
                    }
                }
                if lets.is_empty() {
                    return Dec::Res(quote!(#path::#f(r #(, #passed)*)));
                }
                Dec::Res(quote!({ #(#lets)* #path::#f(r #(, #passed)*) }))
            }
            Ty::Ptr(inner) => {
                if phase == Phase::Scalars {
                    return Dec::Call(quote!(#rt::Pointer::decode_referent));
                }
                let pointee = self.decode_value(inner, Phase::Whole).closure();
                Dec::Res(quote!(#rt::Pointer::decode(r, #pointee)))
            }
            Ty::Array { elem, len } => self.decode_array(elem, len, phase),
            Ty::Switch(sw) => Dec::Val(self.decode_switch(sw, phase)),
        }
    }

    fn decode_array(&self, elem: &Ty, len: &ArrayLen, phase: Phase) -> Dec {
        let e = self.decode_value(elem, phase).closure();
        Dec::Res(match len {
            ArrayLen::Count(c) => {
                let c = self.expr_value(c, Cx::Decode, ExprTy::Int);
                quote!(r.count_expr(#c, #e))
            }
            ArrayLen::CountField { field, conv, add } => {
                let l = local(field);
                let v = conv_value(&quote!(#l), *conv).unwrap_or_else(|| quote!(i128::from(#l)));
                let add = num(*add);
                quote!(r.count_by(#v, #add, #e))
            }
            ArrayLen::ToEnd => {
                let min = Literal::usize_unsuffixed(super::wire::min_size(self.p, elem));
                quote!(r.to_end(#min, #e))
            }
            ArrayLen::Until(c) => {
                let c = self.expr_value(c, Cx::Decode, ExprTy::Bool);
                quote!(r.until(#e, |r, __e| Ok(#c)))
            }
        })
    }

    fn decode_bytes(&self, size: &BytesSize) -> Dec {
        match size {
            BytesSize::Rest => Dec::Val(quote!(r.rest())),
            BytesSize::Until(d) => {
                let d = lit_bytes(d);
                Dec::Res(quote!(r.bytes_until(#d)))
            }
            BytesSize::Expr(e) => {
                let e = self.expr_value(e, Cx::Decode, ExprTy::Int);
                Dec::Res(quote!(r.bytes_by(#e)))
            }
        }
    }

    fn decode_switch(&self, sw: &ir::Switch, phase: Phase) -> TokenStream {
        let name = format_ident!("{}", sw.name);
        let sels: Vec<proc_macro2::Ident> = (0..sw.on.len())
            .map(|i| format_ident!("__s{}", i))
            .collect();
        let evals = sw.on.iter().zip(&sels).map(|(e, s)| {
            let v = self.expr_any(e, Cx::Decode);
            quote!(let #s = #v;)
        });
        let mut chain = Vec::new();
        let mut default = None;
        for c in &sw.cases {
            let v = format_ident!("{}", c.name);
            let build = match &c.ty {
                None => quote!(#name::#v),
                Some(t) => {
                    let val = self.decode_value(t, phase).val();
                    let val = if c.boxed { quote!(Box::new(#val)) } else { val };
                    quote!(#name::#v(#val))
                }
            };
            if c.patterns.iter().any(Vec::is_empty) {
                default = Some(build);
                break;
            }
            let tests = c.patterns.iter().map(|alt| {
                let parts: Vec<TokenStream> = alt
                    .iter()
                    .zip(&sels)
                    .filter(|(p, _)| !matches!(p, ir::Pat::Any))
                    .map(|(p, s)| super::expr::pat_test(p, s))
                    .collect();
                if parts.is_empty() {
                    quote!(true)
                } else {
                    quote!(#(#parts)&&*)
                }
            });
            chain.push(quote!(if #(#tests)||* { #build }));
        }
        let fallback = default.unwrap_or_else(|| quote!(return Err(r.no_case(&[#(&#sels),*]))));
        quote!({
            #(#evals)*
            #(#chain else)* { #fallback }
        })
    }

    pub(super) fn deferred_decode(&self, u: &ir::Unit) -> TokenStream {
        let mut stmts = Vec::new();
        for f in u.fields() {
            let fname = ident(&f.name);
            let (place, bind) = if f.cond.is_some() {
                (quote!(__f), Some(quote!(&mut self.#fname)))
            } else {
                (quote!(self.#fname), None)
            };
            if let Some(s) = self.deferred_value_decode(&f.ty, place) {
                stmts.push(match bind {
                    Some(b) => quote!(if let Some(__f) = #b { #s }),
                    None => s,
                });
            }
        }
        let values = self.derived_checks(u, true, quote!(self));
        quote! {
            let __mark = r.enter()?;
            #(#stmts)*
            r.leave(__mark);
            #values
            Ok(())
        }
    }

    /// Statements that decode the deferred part of the value at `place` (a place of `T`).
    fn deferred_value_decode(&self, ty: &Ty, place: TokenStream) -> Option<TokenStream> {
        match ty {
            Ty::Ptr(inner) => {
                let v = self.decode_value(inner, Phase::Whole).val();
                Some(quote! {
                    if #place.referent != 0 {
                        #place.value = Some(#v);
                    }
                })
            }
            Ty::Unit { deferred: true, .. } => Some(quote!(#place.decode_deferred(r)?;)),
            Ty::Array { elem, .. } => {
                let inner = self.deferred_value_decode(elem, quote!(__e))?;
                Some(quote!(for __e in #place.iter_mut() { #inner }))
            }
            _ => None,
        }
    }
}

/// The length field `length` sizes a limit that holds exactly its target, `first` to `last`,
/// so that the limit's end check (every byte of it read) already proves the length agrees
/// with what it describes: the decoder needs no check of its own.
fn limit_implies(u: &ir::Unit, length: &str, role: &ir::Role) -> bool {
    let ir::Role::Length {
        first,
        last,
        unit,
        add,
    } = role
    else {
        return false;
    };
    if *unit == SizeUnit::Elements {
        return false;
    }
    let field_named = |i: Option<&Item>, name: &str| matches!(i, Some(Item::Field(f)) if f.name == name && f.cond.is_none());
    let Some(begin) = u.items.iter().position(|i| {
        matches!(i, Item::BeginLimit {
            length_field, conv: Conv::Int, unit_bytes, add: a, since: None, when: None, ..
        } if length_field == length && *unit_bytes == unit.bytes() && a == add)
    }) else {
        return false;
    };
    let Item::BeginLimit { id, .. } = &u.items[begin] else {
        return false;
    };
    let Some(end) = u
        .items
        .iter()
        .position(|i| matches!(i, Item::EndLimit { id: e } if e == id))
    else {
        return false;
    };
    end > begin
        && field_named(u.items.get(begin + 1), first)
        && field_named(u.items.get(end - 1), last)
}

//! Encoders: `encode_to` (and, for NDR units, `encode_scalars`/`encode_deferred`). Fields are
//! written in order; a length, count or offset gets a `Slot` that is filled once what it
//! describes is written. Checks and text forms are `Writer` methods of the runtime.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::{ident, lit_bytes, num, order_tokens, Cx, Gen, Phase, Place, Scope};
use crate::ir::{self, BytesSize, ExprTy, Item, Role, SizeUnit, Ty, UnitKind};

impl Gen<'_> {
    pub(super) fn encode_body(&self, u: &ir::Unit, phase: Phase) -> TokenStream {
        let order = self.unit_order();
        let mut stmts = Vec::new();
        let mut patches = Vec::new();
        for (gi, n) in super::run::split(&u.items, |items| self.encode_run_len(u, items)) {
            if n > 1 {
                stmts.push(self.encode_run(u, &u.items[gi..gi + n]));
                continue;
            }
            let item = &u.items[gi];
            match item {
                Item::Anchor(a) => stmts.push(quote!(w.push_anchor(#a);)),
                Item::Align { to, from, field } => {
                    let f = ident(field);
                    let to = Literal::usize_unsuffixed(*to as usize);
                    stmts.push(quote!(w.align(#to, #from, &self.#f);));
                }
                Item::Order { order, cond } => {
                    stmts.push(self.order_stmt(quote!(w), *order, cond.as_ref(), Cx::Encode))
                }
                Item::BeginLimit { .. }
                | Item::BeginWithin { .. }
                | Item::EndLimit { .. }
                | Item::Mark(_)
                | Item::Seek(_) => {}
                Item::Bits(g) => self.encode_bits(u, g, gi, &mut stmts, &mut patches),
                Item::Field(f) if f.view.is_some() => {}
                Item::Field(f) => {
                    let before = if gi > 0 { Some(&u.items[gi - 1]) } else { None };
                    self.encode_field(u, f, before, phase, &mut stmts, &mut patches);
                }
            }
        }
        let (line_start, eol) = if u.kind == UnitKind::Line {
            let term = lit_bytes(&self.p.text.terminator);
            let info = self.info_ident(u, "_eol");
            let max = Literal::usize_unsuffixed(self.p.text.max_line as usize);
            (
                quote!(let __line_start = w.pos();),
                quote!(w.end_line(__line_start, &self._eol, #term, #max).in_field(&#info)?;),
            )
        } else {
            (quote!(), quote!())
        };
        let (begin, end) = match super::scope(u) {
            Scope::Anchored => (
                quote!(let __unit = w.begin_unit(#order);),
                quote!(w.end_unit(__unit);),
            ),
            Scope::Plain => (
                quote!(let __unit = w.begin_plain(#order);),
                quote!(w.set_order(__unit);),
            ),
            Scope::Bare => (quote!(), quote!()),
        };
        quote! {
            #begin
            #line_start
            #(#stmts)*
            #(#patches)*
            #eol
            #end
            Ok(())
        }
    }

    /// A bit-field group: packed from its fields; with a derived field, packed at the end
    /// into room reserved in place.
    fn encode_bits(
        &self,
        u: &ir::Unit,
        g: &ir::BitGroup,
        gi: usize,
        stmts: &mut Vec<TokenStream>,
        patches: &mut Vec<TokenStream>,
    ) {
        let rt = self.rt;
        let n = Literal::usize_unsuffixed(g.bytes);
        let derived = g.fields.iter().any(|f| f.derived().is_some());
        let mut shift = (g.bytes * 8) as u32;
        let mut parts = Vec::new();
        for (i, f) in g.fields.iter().enumerate() {
            let Ty::Int { bits, signed, .. } = f.ty else {
                continue;
            };
            shift -= bits;
            let fname = ident(&f.name);
            let info = self.info_ident(u, &f.name);
            let value = if let Some(role) = f.derived() {
                let d = format_ident!("__d_{}", f.name.trim_start_matches('_'));
                let value = self.derived_value(u, f, role, bits);
                parts.push(quote!(let #d: u64 = #value;));
                quote!(#d)
            } else if signed {
                quote!(self.#fname as u64)
            } else {
                quote!(#rt::Int::to_wire(self.#fname))
            };
            let prev = if i == 0 { quote!(0) } else { quote!(__g) };
            let (bits, shift) = (num(bits), num(shift));
            parts
                .push(quote!(let __g = #rt::pack(#prev, #value, #bits, #shift).in_field(&#info)?;));
        }
        if derived {
            let at = format_ident!("__at_g{}", gi);
            stmts.push(quote!(let #at = w.slot(#n);));
            patches.push(quote!({ #(#parts)* w.fill(#at, __g); }));
        } else {
            stmts.push(quote!({ #(#parts)* w.uint(__g, #n); }));
        }
    }

    fn encode_field(
        &self,
        u: &ir::Unit,
        f: &ir::Field,
        before: Option<&Item>,
        phase: Phase,
        stmts: &mut Vec<TokenStream>,
        patches: &mut Vec<TokenStream>,
    ) {
        let rt = self.rt;
        let fname = ident(&f.name);
        let info = self.info_ident(u, &f.name);
        let tabs_too = matches!(before, Some(Item::Field(p)) if matches!(p.ty, Ty::OptionalSpaces));
        let after_space =
            tabs_too || matches!(before, Some(Item::Field(p)) if matches!(p.ty, Ty::Spaces));
        if after_space && matches!(f.ty, Ty::Bytes(_) | Ty::Token) {
            let value = if f.cond.is_some() {
                quote!(self.#fname.as_deref())
            } else {
                quote!(Some(&self.#fname[..]))
            };
            stmts.push(quote!(#rt::text_after_space(#value, #tabs_too).in_field(&#info)?;));
        }
        let measured = u.measured.contains(&f.name);
        let trimmed = f.name.trim_start_matches('_');
        if let Some(loc) = &f.located {
            let g = ident(&loc.gap);
            stmts.push(quote!(w.bytes(&self.#g);));
        }
        if measured {
            let s_id = format_ident!("__s_{}", trimmed);
            stmts.push(quote!(let #s_id = w.pos();));
        }
        if let (Some(role), Ty::Int { bits, order, .. }) = (f.derived(), &f.ty) {
            let n = Literal::usize_unsuffixed((*bits / 8) as usize);
            let at = format_ident!("__at_{}", trimmed);
            stmts.push(match order {
                Some(o) => {
                    let o = order_tokens(rt, *o);
                    quote!(let #at = w.slot_in(#n, #o);)
                }
                None => quote!(let #at = w.slot(#n);),
            });
            let value = self.derived_value(u, f, role, *bits);
            let value = if f.hint {
                let h = format_ident!("_{}_exact", trimmed);
                quote!(if self.#h { #value } else { #rt::Int::to_wire(self.#fname) })
            } else {
                value
            };
            patches.push(quote!(w.fill(#at, #value);));
        } else if f.derived().is_some() {
            // Derived text numbers are not generated (the checker refuses them).
        } else {
            let copy = self.sized_copy(u, f);
            let (place, bind) = match (&copy, f.cond.is_some()) {
                (Some(_), false) => (Place::At(quote!(__copy)), None),
                (Some(_), true) => (Place::ident("__f"), Some(quote!(&__copy))),
                (None, true) => (Place::ident("__f"), Some(quote!(&self.#fname))),
                (None, false) if f.stored() => (Place::At(quote!(self.#fname)), None),
                // Not stored: a literal, which needs no value.
                (None, false) => (Place::At(quote!(())), None),
            };
            let body = self.encode_value(u, f, &f.ty, &place, phase);
            let body = match bind {
                Some(b) => quote!(if let Some(__f) = #b { #body }),
                None => body,
            };
            stmts.push(match copy {
                Some(copy) => quote!({ #copy #body }),
                None => body,
            });
        }
        if measured {
            let e_id = format_ident!("__e_{}", trimmed);
            stmts.push(quote!(let #e_id = w.pos();));
        }
    }

    /// For a byte string sized by an expression of fields: its length must still be that size,
    /// or it would not decode back (a `bytes[8]` signature set to 9 bytes).
    fn size_check(
        &self,
        u: &ir::Unit,
        info: &proc_macro2::Ident,
        size: &BytesSize,
        len: TokenStream,
    ) -> TokenStream {
        let BytesSize::Expr(e) = size else {
            return quote!();
        };
        if super::expr::uses_context(e) || super::expr::names_derived(e, u) {
            return quote!();
        }
        let rt = self.rt;
        let want = self.expr_value(e, Cx::Encode, ExprTy::Int);
        quote!(#rt::check_len(#len, #want).in_field(&#info)?;)
    }

    /// Encoding a field that holds other fields' `@size`: a copy with the sizes set.
    fn sized_copy(&self, u: &ir::Unit, holder: &ir::Field) -> Option<TokenStream> {
        let rt = self.rt;
        let sized: Vec<&ir::Field> = u
            .fields()
            .filter(|t| {
                t.size_from
                    .as_ref()
                    .is_some_and(|sf| sf.root == holder.name)
            })
            .collect();
        if sized.is_empty() {
            return None;
        }
        let hname = ident(&holder.name);
        let sets = sized.iter().map(|t| {
            let sf = t.size_from.as_ref().expect("filtered");
            let tname = ident(&t.name);
            let info = self.info_ident(u, &t.name);
            let len = match (&t.ty, t.cond.is_some()) {
                (Ty::Utf16(_), false) => quote!(self.#tname.raw.len()),
                (Ty::Utf16(_), true) => quote!(self.#tname.as_ref().map_or(0, |v| v.raw.len())),
                (_, false) => quote!(self.#tname.len()),
                (_, true) => quote!(self.#tname.as_ref().map_or(0, |v| v.len())),
            };
            let set = self.path_set(&sf.steps, quote!(__copy), &info);
            let text = &sf.text;
            // An absent field leaves the size that was there (a response to HEAD keeps its
            // Content-Length).
            let present = if t.cond.is_some() {
                quote!(self.#tname.is_some())
            } else {
                quote!(true)
            };
            quote! {
                if #present {
                    let __size = #len as i128;
                    let __found: bool = (|| -> Result<bool, #rt::EncodeError> { #set Ok(false) })()?;
                    if !__found && __size != 0 {
                        return Err(#rt::invalid(format!("{} bytes but no `{}` to hold their size", __size, #text)).in_field(&#info));
                    }
                }
            }
        });
        Some(quote! {
            let mut __copy = self.#hname.clone();
            #(#sets)*
        })
    }

    /// The recomputed value of a length, count or offset field, as `u64` (with `?` on errors).
    pub(super) fn derived_value(
        &self,
        u: &ir::Unit,
        f: &ir::Field,
        role: &Role,
        bits: u32,
    ) -> TokenStream {
        let rt = self.rt;
        let info = self.info_ident(u, &f.name);
        let fname = ident(&f.name);
        let keep = quote!(#rt::Int::to_wire(self.#fname));
        let bits = num(bits);
        match role {
            Role::Length {
                first,
                last,
                unit,
                add,
            } => {
                let add = num(*add);
                if *unit == SizeUnit::Elements {
                    let tname = ident(first);
                    let target = u.fields().find(|t| t.name == *first);
                    let len = if target.is_some_and(|t| t.cond.is_some()) {
                        quote!(self.#tname.as_ref().map_or(0, |v| v.len()))
                    } else {
                        quote!(self.#tname.len())
                    };
                    return quote!(#rt::length_value(#len, #add, 1, #bits).in_field(&#info)?);
                }
                let s = format_ident!("__s_{}", first.trim_start_matches('_'));
                let e = format_ident!("__e_{}", last.trim_start_matches('_'));
                let ub = num(unit.bytes());
                let computed =
                    quote!(#rt::length_value(#e - #s, #add, #ub, #bits).in_field(&#info)?);
                match super::optional_single(u, first, last) {
                    // An absent target keeps the length as received (as an offset does).
                    Some(t) => {
                        let tname = ident(t);
                        quote!(if self.#tname.is_some() { #computed } else { #keep })
                    }
                    None => computed,
                }
            }
            Role::ValueLength {
                path, unit, add, ..
            } => {
                let size = super::paths::value_path_size(path, *unit, &quote!(self));
                let ub = num(if *unit == SizeUnit::Elements {
                    1
                } else {
                    unit.bytes()
                });
                let add = num(*add);
                quote!(#rt::length_value(#size, #add, #ub, #bits).in_field(&#info)?)
            }
            Role::Offset { target, from, add } => {
                let s = format_ident!("__s_{}", target.trim_start_matches('_'));
                let present = u
                    .fields()
                    .find(|t| t.name == *target)
                    .is_some_and(|t| t.cond.is_some());
                let tname = ident(target);
                let add = num(*add);
                let computed =
                    quote!(#rt::offset_value(#s, w.anchor(#from), #add, #bits).in_field(&#info)?);
                if present {
                    quote!(if self.#tname.is_some() { #computed } else { #keep })
                } else {
                    computed
                }
            }
            _ => quote!(0),
        }
    }

    /// Statements that encode the value at `v`.
    pub(super) fn encode_value(
        &self,
        u: &ir::Unit,
        f: &ir::Field,
        ty: &Ty,
        v: &Place,
        phase: Phase,
    ) -> TokenStream {
        let rt = self.rt;
        let info = self.info_ident(u, &f.name);
        let (val, r, m) = (v.copied(), v.by_ref(), v.recv());
        match ty {
            Ty::Int { bits, order, .. } => {
                let n = Literal::usize_unsuffixed((*bits / 8) as usize);
                match order {
                    Some(o) => {
                        let o = order_tokens(rt, *o);
                        quote!(w.int_in(#val, #n, #o);)
                    }
                    None => quote!(w.int(#val, #n);),
                }
            }
            Ty::Enum { bits, flags, .. } => {
                let n = Literal::usize_unsuffixed((*bits / 8) as usize);
                if *flags {
                    quote!(w.int(#m.0, #n);)
                } else {
                    quote!(w.int(#m.raw(), #n);)
                }
            }
            Ty::Bytes(BytesSize::Until(d)) => {
                let dl = lit_bytes(d);
                quote!(w.bytes_until(#r, #dl).in_field(&#info)?;)
            }
            Ty::Token => quote!(w.token(#r).in_field(&#info)?;),
            Ty::Bytes(size) => {
                let check = self.size_check(u, &info, size, quote!(#m.len()));
                quote!(#check w.bytes(#r);)
            }
            Ty::Literal(b) => {
                let b = lit_bytes(b);
                quote!(w.bytes(#b);)
            }
            Ty::CiLiteral(b) => {
                let b = lit_bytes(b);
                quote!(w.ci_literal(#r, #b);)
            }
            Ty::OptionalSpaces => quote!(w.optional_spaces(#r).in_field(&#info)?;),
            Ty::Spaces => quote!(w.spaces(#r).in_field(&#info)?;),
            Ty::Utf16(size) => {
                let check = self.size_check(u, &info, size, quote!(#m.raw.len()));
                quote!(#check w.bytes(&#m.raw);)
            }
            Ty::Utf16z => quote!(w.utf16z(&#m.raw).in_field(&#info)?;),
            Ty::Number(_) | Ty::Leaf(_) => {
                quote!(#rt::Leaf::encode(#r, w).in_field(&#info)?;)
            }
            Ty::Unit { deferred, .. } => {
                if *deferred && phase == Phase::Scalars {
                    quote!(#m.encode_scalars(w).in_field(&#info)?;)
                } else {
                    quote!(#m.encode_to(w).in_field(&#info)?;)
                }
            }
            Ty::Ptr(inner) => {
                let pointee = if phase == Phase::Scalars {
                    quote!()
                } else {
                    let e = self.encode_value(u, f, inner, &Place::ident("__p"), Phase::Whole);
                    quote!(if let Some(__p) = &#m.value { #e })
                };
                quote! {
                    w.referent(#r).in_field(&#info)?;
                    #pointee
                }
            }
            Ty::Array { elem, .. } => {
                let e = self.encode_value(u, f, elem, &Place::ident("__e"), phase);
                quote!(for __e in #r { #e })
            }
            Ty::Switch(sw) => {
                let name = format_ident!("{}", sw.name);
                let arms = sw.cases.iter().map(|c| {
                    let var = format_ident!("{}", c.name);
                    match &c.ty {
                        None => quote!(#name::#var => {}),
                        Some(t) => {
                            let e = self.encode_value(u, f, t, &Place::ident("__c"), phase);
                            let body = super::arm(e);
                            quote!(#name::#var(__c) => #body)
                        }
                    }
                });
                quote!(match #r { #(#arms)* })
            }
        }
    }

    pub(super) fn deferred_encode(&self, u: &ir::Unit) -> TokenStream {
        let mut stmts = Vec::new();
        for f in u.fields() {
            let fname = ident(&f.name);
            let (place, bind) = if f.cond.is_some() {
                (Place::ident("__f"), Some(quote!(&self.#fname)))
            } else {
                (Place::At(quote!(self.#fname)), None)
            };
            if let Some(s) = self.deferred_value_encode(u, f, &f.ty, &place) {
                stmts.push(match bind {
                    Some(b) => quote!(if let Some(__f) = #b { #s }),
                    None => s,
                });
            }
        }
        quote! {
            let __mark = w.enter();
            #(#stmts)*
            w.leave(__mark);
            Ok(())
        }
    }

    fn deferred_value_encode(
        &self,
        u: &ir::Unit,
        f: &ir::Field,
        ty: &Ty,
        place: &Place,
    ) -> Option<TokenStream> {
        let m = place.recv();
        match ty {
            Ty::Ptr(inner) => {
                let v = self.encode_value(u, f, inner, &Place::ident("__p"), Phase::Whole);
                Some(quote!(if let Some(__p) = &#m.value { #v }))
            }
            Ty::Unit { deferred: true, .. } => {
                let info = self.info_ident(u, &f.name);
                Some(quote!(#m.encode_deferred(w).in_field(&#info)?;))
            }
            Ty::Array { elem, .. } => {
                let inner = self.deferred_value_encode(u, f, elem, &Place::ident("__e"))?;
                let r = place.by_ref();
                Some(quote!(for __e in #r { #inner }))
            }
            _ => None,
        }
    }
}

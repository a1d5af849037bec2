//! Runs of fixed-size fields (an SMB header: a command, a status, flags, ids), decoded with
//! one bounds check: `r.run::<N>()` hands over the run's `N` bytes and each field is read from
//! them at its constant offset, in a byte order known when generating where the spec fixes it.
//! When fewer bytes remain, the runtime goes through the run's table of fields as if they were
//! read one by one, so errors are those of a field read alone. Encoders put a run of integers
//! together on the stack and write it with one call.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::{ident, int_rust, local, order_tokens, Gen};
use crate::ir::{self, BytesSize, Expr, Item, Ty};

/// The longest fixed-size bytes field a run takes in (a signature, a GUID).
const MAX_BYTES: i128 = 64;

/// A field of a run and where it lies in the run's bytes.
struct Member<'a> {
    field: &'a ir::Field,
    at: usize,
    size: usize,
}

impl Gen<'_> {
    /// How many of `items` (from the first) form a run decoded at once: consecutive plain
    /// fixed-size fields, at least two of them; 0 when they do not.
    pub(super) fn run_len(&self, u: &ir::Unit, items: &[Item]) -> usize {
        let n = items
            .iter()
            .take_while(|i| matches!(i, Item::Field(f) if run_size(u, f).is_some()))
            .count();
        if n >= 2 {
            n
        } else {
            0
        }
    }

    /// The statements decoding the run `items` (as found by [`Gen::run_len`]; the `k`th of
    /// its unit), and the struct initialisers of its fields. One path: the run's table of
    /// fields (a `static`) lets the runtime give the error of the field that runs short.
    pub(super) fn decode_run(
        &self,
        u: &ir::Unit,
        items: &[Item],
        k: usize,
    ) -> (TokenStream, Vec<TokenStream>) {
        let rt = self.rt;
        let mut members = Vec::new();
        let mut at = 0;
        for item in items {
            let Item::Field(f) = item else { continue };
            let Some(size) = run_size(u, f) else { continue };
            members.push(Member { field: f, at, size });
            at += size;
        }
        let (n, count) = (
            Literal::usize_unsuffixed(at),
            Literal::usize_unsuffixed(members.len()),
        );
        let order = self.run_order(u, quote!(r));
        let table = format_ident!("__RUN{}", k);
        let entries = members.iter().map(|m| self.run_entry(u, m));
        let reads = members.iter().map(|m| self.run_member(u, m));
        let inits = members
            .iter()
            .map(|m| {
                let (f, l) = (ident(&m.field.name), local(&m.field.name));
                quote!(#f: #l)
            })
            .collect();
        let stmt = quote! {
            static #table: [#rt::RunField; #count] = [#(#entries),*];
            let __o = #order;
            let (__at, __b) = r.run::<#n>(&#table, __o)?;
            #(#reads)*
        };
        (stmt, inits)
    }

    /// The run table's entry of a field: its size, and the constant it must hold.
    fn run_entry(&self, u: &ir::Unit, m: &Member<'_>) -> TokenStream {
        let rt = self.rt;
        let info = self.info_ident(u, &m.field.name);
        let size = Literal::usize_unsuffixed(m.size);
        match (&m.field.ty, m.field.check) {
            (Ty::Int { signed, order, .. }, Some(want)) => {
                let want = Literal::i128_unsuffixed(want);
                let order = match order {
                    Some(o) => {
                        let o = order_tokens(rt, *o);
                        quote!(Some(#o))
                    }
                    None => quote!(None),
                };
                quote!(#rt::RunField::checked(&#info, #size, #want, #signed, #order))
            }
            _ => quote!(#rt::RunField::new(&#info, #size)),
        }
    }

    /// The byte order of the unit's fields that name none: the protocol's, when the unit
    /// never changes it; otherwise whatever the reader or writer `rw` holds when the run
    /// starts.
    fn run_order(&self, u: &ir::Unit, rw: TokenStream) -> TokenStream {
        let changes = u.items.iter().any(|i| matches!(i, Item::Order { .. }));
        match self.p.order {
            Some(o) if !changes => order_tokens(self.rt, o),
            _ => quote!(#rw.order()),
        }
    }

    /// How many of `items` (from the first) form a run encoded at once: consecutive plain
    /// integer and enum fields that no later value patches, at least two; 0 when they do not.
    pub(super) fn encode_run_len(&self, u: &ir::Unit, items: &[Item]) -> usize {
        let n = items
            .iter()
            .take_while(|i| {
                matches!(i, Item::Field(f) if f.derived().is_none()
                    && matches!(f.ty, Ty::Int { .. } | Ty::Enum { .. })
                    && run_size(u, f).is_some())
            })
            .count();
        if n >= 2 {
            n
        } else {
            0
        }
    }

    /// The run `items` (as found by [`Gen::encode_run_len`]) put together on the stack and
    /// written with one call (one capacity check of the output).
    pub(super) fn encode_run(&self, u: &ir::Unit, items: &[Item]) -> TokenStream {
        let rt = self.rt;
        let order = self.run_order(u, quote!(w));
        let mut at = 0;
        let mut puts = Vec::new();
        for item in items {
            let Item::Field(f) = item else { continue };
            let Some(size) = run_size(u, f) else { continue };
            let fname = ident(&f.name);
            let (value, own) = match &f.ty {
                Ty::Int { order, .. } => (quote!(self.#fname), *order),
                Ty::Enum { flags: true, .. } => (quote!(self.#fname.0), None),
                _ => (quote!(self.#fname.raw()), None),
            };
            let o = own.map_or_else(|| quote!(__o), |o| order_tokens(rt, o));
            let (a, n) = (
                Literal::usize_unsuffixed(at),
                Literal::usize_unsuffixed(size),
            );
            puts.push(quote!(#rt::put_at(&mut __b, #a, #n, #o, #value);));
            at += size;
        }
        let n = Literal::usize_unsuffixed(at);
        quote!({
            let __o = #order;
            let mut __b = [0u8; #n];
            #(#puts)*
            w.bytes(&__b);
        })
    }

    /// One field read from the run's bytes `__b` (starting at `__at` in the input): its value,
    /// the constant it must hold, what it remembers.
    fn run_member(&self, u: &ir::Unit, m: &Member<'_>) -> TokenStream {
        let rt = self.rt;
        let f = m.field;
        let l = local(&f.name);
        let (at, size) = (
            Literal::usize_unsuffixed(m.at),
            Literal::usize_unsuffixed(m.size),
        );
        let int = |order: &Option<ir::ByteOrder>| {
            let o = order.map_or_else(|| quote!(__o), |o| order_tokens(rt, o));
            quote!(#rt::int_at(&__b, #at, #size, #o))
        };
        let end = Literal::usize_unsuffixed(m.at + m.size);
        let mut ty = quote!();
        let value = match &f.ty {
            Ty::Int {
                bits,
                signed,
                order,
            } => {
                let t = int_rust(*bits, *signed);
                ty = quote!(: #t);
                int(order)
            }
            Ty::Enum {
                target,
                flags: true,
                ..
            } => {
                let path = self.type_path(target);
                let v = int(&None);
                quote!(#path(#v))
            }
            Ty::Enum { target, .. } => {
                let path = self.type_path(target);
                let v = int(&None);
                quote!(#path::from_raw(#v))
            }
            _ => quote!(r.slice(__at + #at, __at + #end)),
        };
        let value = match f.check {
            Some(want) => {
                let info = self.info_ident(u, &f.name);
                let want = Literal::i128_unsuffixed(want);
                quote!(r.expect_at(#value, #want, __at + #end).map_err(|e| e.in_field(&#info))?)
            }
            None => value,
        };
        let remember = self.remember_stmt(f).unwrap_or_default();
        quote! { let #l #ty = #value; #remember }
    }
}

/// `items` in order as `(first, count)`: a run where `run_len` finds one (`count` > 1),
/// otherwise one item.
pub(super) fn split(items: &[Item], run_len: impl Fn(&[Item]) -> usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let n = run_len(&items[i..]).max(1);
        out.push((i, n));
        i += n;
    }
    out
}

/// The size of `f` when it can be part of a run: a stored integer, enum or fixed-size bytes
/// field, read unconditionally, not measured, moved or sized by another field.
fn run_size(u: &ir::Unit, f: &ir::Field) -> Option<usize> {
    let plain = f.cond.is_none()
        && f.view.is_none()
        && f.size_from.is_none()
        && f.located.is_none()
        && !f.boxed
        && f.stored()
        && !u.measured.contains(&f.name);
    if !plain {
        return None;
    }
    match &f.ty {
        Ty::Int { bits, .. } => Some((*bits / 8) as usize),
        Ty::Enum { bits, .. } if f.check.is_none() => Some((*bits / 8) as usize),
        Ty::Bytes(BytesSize::Expr(Expr::Int(n)))
            if f.check.is_none() && (0..=MAX_BYTES).contains(n) =>
        {
            Some(*n as usize)
        }
        _ => None,
    }
}

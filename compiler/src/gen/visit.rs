//! `visit_fields` and `visit_fields_mut`: every leaf field shown to a visitor with its path
//! and class, so that the runtime can list and rewrite role fields of any protocol.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{ident, Gen, Place};
use crate::ir::{self, Item, Ty, UnitKind};

impl Gen<'_> {
    fn class(&self, u: &ir::Unit, f: &ir::Field) -> TokenStream {
        let rt = self.rt;
        if f.layout {
            quote!(#rt::Class::Layout)
        } else if !f.roles.is_empty() {
            let r = self.role_ident(u, &f.name);
            quote!(#rt::Class::Role(&#r))
        } else {
            quote!(#rt::Class::Content)
        }
    }

    pub(super) fn visit_body(&self, u: &ir::Unit, mutable: bool) -> TokenStream {
        let rt = self.rt;
        let borrow = if mutable { quote!(&mut) } else { quote!(&) };
        let mut stmts = Vec::new();
        for item in &u.items {
            if let Item::Align { field, .. } = item {
                let f = ident(field);
                stmts.push(quote!(v.field(#field, #rt::Class::Layout, #borrow self.#f);));
                continue;
            }
            let group: &[ir::Field] = match item {
                Item::Field(f) => std::slice::from_ref(f),
                Item::Bits(g) => &g.fields,
                _ => continue,
            };
            for f in group {
                if let Some(loc) = &f.located {
                    let g = ident(&loc.gap);
                    let name = &loc.gap;
                    stmts.push(quote!(v.field(#name, #rt::Class::Layout, #borrow self.#g);));
                }
                // A view is decoded from gathered bytes and never encoded: rewriting it would
                // change nothing on the wire.
                if !f.stored() || (mutable && f.view.is_some()) {
                    continue;
                }
                let fname = ident(&f.name);
                let class = self.class(u, f);
                let name = f.name.as_str();
                stmts.push(if f.optional() {
                    let body = self.visit_value(&f.ty, &Place::ident("__f"), name, &class, mutable);
                    quote!(if let Some(__f) = #borrow self.#fname { #body })
                } else {
                    let place = Place::At(quote!(self.#fname));
                    self.visit_value(&f.ty, &place, name, &class, mutable)
                });
            }
        }
        if u.kind == UnitKind::Line {
            stmts.push(quote!(v.field("_eol", #rt::Class::Layout, #borrow self._eol);));
        }
        quote!(#(#stmts)*)
    }

    /// Visits the value at `place`.
    fn visit_value(
        &self,
        ty: &Ty,
        place: &Place,
        name: &str,
        class: &TokenStream,
        mutable: bool,
    ) -> TokenStream {
        let rt = self.rt;
        let r = place.borrowed(mutable);
        let m = place.recv();
        let unit_visit = if mutable {
            quote!(visit_fields_mut)
        } else {
            quote!(visit_fields)
        };
        match ty {
            Ty::Int { .. }
            | Ty::Enum { .. }
            | Ty::Bytes(_)
            | Ty::CiLiteral(_)
            | Ty::Utf16(_)
            | Ty::Utf16z
            | Ty::Spaces
            | Ty::OptionalSpaces
            | Ty::Token
            | Ty::Number(_)
            | Ty::Leaf(_) => quote!(v.field(#name, #class, #r);),
            Ty::Literal(_) => quote!(),
            Ty::Unit { .. } => quote!(#rt::visit_unit(v, #name, |v| #m.#unit_visit(v));),
            Ty::Ptr(inner) => {
                let inner_v = self.visit_value(
                    inner,
                    &Place::ident("__p"),
                    "value",
                    &quote!(#rt::Class::Content),
                    mutable,
                );
                let borrow = if mutable { quote!(&mut) } else { quote!(&) };
                quote! {
                    v.enter(#name);
                    v.field("referent", #class, #borrow #m.referent);
                    if let Some(__p) = #borrow #m.value { #inner_v }
                    v.leave();
                }
            }
            Ty::Array { elem, .. } => {
                // A unit element is a level of the path by its index; a leaf element is `item` in it.
                let e = match &**elem {
                    Ty::Unit { .. } => quote!(__e.#unit_visit(v);),
                    _ => self.visit_value(elem, &Place::ident("__e"), "item", class, mutable),
                };
                quote!(#rt::visit_elements(v, #name, #r, |v, __e| { #e });)
            }
            Ty::Switch(sw) => {
                let ename = format_ident!("{}", sw.name);
                let arms = sw.cases.iter().map(|c| {
                    let var = format_ident!("{}", c.name);
                    let cname = c.name.as_str();
                    match &c.ty {
                        None => quote!(#ename::#var => #rt::visit_unit(v, #cname, |_| {}),),
                        // A unit case is a level of the path; a leaf case is the leaf itself.
                        Some(t) => {
                            let inner =
                                self.visit_value(t, &Place::ident("__c"), cname, class, mutable);
                            let body = super::arm(inner);
                            quote!(#ename::#var(__c) => #body)
                        }
                    }
                });
                quote! {
                    v.enter(#name);
                    match #r { #(#arms)* }
                    v.leave();
                }
            }
        }
    }
}

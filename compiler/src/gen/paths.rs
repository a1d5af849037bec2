//! Paths into a value: through unit fields, optional fields, every array element, switch
//! cases and pointees, for `@size` (a length kept in a nested field) and `found()`.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::{ident, int_rust, Gen};
use crate::ir::{self, Conv, SizeUnit};

impl Gen<'_> {
    /// Statements that walk a path from `base` (the root's place, or a reference `__o` to
    /// what the steps so far reached, `&mut` when `mutable`) through unit fields, optional
    /// fields, every array element and switch cases, and run `at_end` on what the path
    /// reaches: the place, and the last step (a leaf, or a case that carries nothing).
    fn path_walk(
        &self,
        steps: &[ir::PathStep],
        base: TokenStream,
        mutable: bool,
        at_end: &dyn Fn(&TokenStream, Option<&ir::PathStep>) -> TokenStream,
    ) -> TokenStream {
        let Some((step, rest)) = steps.split_first() else {
            return at_end(&base, None);
        };
        let (r, iter) = if mutable {
            (quote!(&mut), quote!(iter_mut))
        } else {
            (quote!(&), quote!(iter))
        };
        match step {
            ir::PathStep::Field { name, optional } => {
                let f = ident(name);
                let inner = self.path_walk(rest, quote!(__o), mutable, at_end);
                if *optional {
                    quote!(if let Some(__o) = #r #base.#f { #inner })
                } else {
                    quote!({ let __o = #r #base.#f; #inner })
                }
            }
            ir::PathStep::Elements => {
                let inner = self.path_walk(rest, quote!(__o), mutable, at_end);
                quote!(for __o in #base.#iter() { #inner })
            }
            ir::PathStep::Case { switch, case } => {
                if rest.is_empty() {
                    let end = at_end(&base, Some(step));
                    return quote!(if #base.case_name() == #case { #end });
                }
                let sw = self.type_path(switch);
                let c = format_ident!("{}", case);
                let inner = self.path_walk(rest, quote!(__o), mutable, at_end);
                // The root is a place: match a reference to it, not the value.
                let base = if base.to_string() == "__o" {
                    base
                } else {
                    quote!(#r #base)
                };
                quote!(if let #sw::#c(__o) = #base { #inner })
            }
            ir::PathStep::Leaf { .. } => at_end(&base, Some(step)),
        }
    }

    /// Statements that `return` the number at the end of a `@size` path from `base`:
    /// `Some(None)` when the field is there but its text holds no number that fits (an
    /// error, not an absent size).
    pub(super) fn path_find(&self, steps: &[ir::PathStep], base: TokenStream) -> TokenStream {
        self.path_walk(steps, base, false, &|place, last| match last {
            Some(ir::PathStep::Leaf {
                conv: Conv::Number, ..
            }) => quote!(return Some(#place.value());),
            _ => quote!(return Some(Some(i128::from(*#place)));),
        })
    }

    /// Statements that `return true` when a `found()` path reaches its end from `base`.
    pub(super) fn path_exists(&self, steps: &[ir::PathStep], base: TokenStream) -> TokenStream {
        self.path_walk(
            steps,
            base,
            false,
            &|place, _| quote!(let _ = #place; return true;),
        )
    }

    /// Statements that set the number at the end of a `@size` path from `base` (a mutable
    /// reference) to `__size` and `return Ok(true)`; a text number is re-rendered only when its
    /// value changes, so an unchanged message stays exact.
    pub(super) fn path_set(
        &self,
        steps: &[ir::PathStep],
        base: TokenStream,
        info: &proc_macro2::Ident,
    ) -> TokenStream {
        let rt = self.rt;
        self.path_walk(steps, base, true, &|place, last| match last {
            Some(ir::PathStep::Leaf {
                conv: Conv::Number, ..
            }) => quote! {
                if #place.value() != Some(__size) {
                    *#place = #rt::TextNumber::from_value(__size);
                }
                return Ok(true);
            },
            Some(ir::PathStep::Leaf { bits, .. }) => {
                let t = int_rust(*bits, false);
                let b = Literal::u32_unsuffixed(*bits);
                quote! {
                    *#place = #rt::fit(__size, #b).in_field(&#info)? as #t;
                    return Ok(true);
                }
            }
            _ => quote!(),
        })
    }
}

/// The size of the value at the end of a nested path, as a `usize` expression.
pub(super) fn value_path_size(
    path: &[ir::Step],
    unit: SizeUnit,
    recv: &TokenStream,
) -> TokenStream {
    let mut chain = quote!(Some(&#recv));
    let mut size = quote!(0usize);
    for step in path {
        let f = if step.field.is_empty() {
            format_ident!("value")
        } else {
            ident(&step.field)
        };
        match step.kind {
            ir::StepKind::Plain => chain = quote!(#chain.map(|__x| &__x.#f)),
            ir::StepKind::Optional => chain = quote!(#chain.and_then(|__x| __x.#f.as_ref())),
            ir::StepKind::Pointer if step.field.is_empty() => {
                chain = quote!(#chain.and_then(|__x| __x.value.as_ref()))
            }
            ir::StepKind::Pointer => chain = quote!(#chain.and_then(|__x| __x.#f.value.as_ref())),
            ir::StepKind::Bytes | ir::StepKind::Seq => {
                size = quote!(#chain.map_or(0, |__x| __x.len()))
            }
            ir::StepKind::Utf16 if unit == SizeUnit::Elements => {
                size = quote!(#chain.map_or(0, |__x| __x.raw.len() / 2))
            }
            ir::StepKind::Utf16 => size = quote!(#chain.map_or(0, |__x| __x.raw.len())),
        }
    }
    size
}

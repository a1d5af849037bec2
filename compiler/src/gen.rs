//! Rust code generation from the IR, with `quote`. One module of code per protocol; the
//! output is parsed with `syn` and formatted with `prettyplease` by the caller.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::ir::{
    self, ArrayLen, ByteOrder, BytesSize, Conv, Expr, ExprTy, Item, Pat, Role, SizeUnit, Ty,
    TypeRef, UnitKind,
};

/// Generates the code of one protocol. `rt` is the path of the runtime's codec module.
pub fn protocol(p: &ir::Protocol, rt: &TokenStream) -> TokenStream {
    let g = Gen { p, rt };
    let consts = p.consts.iter().map(|c| {
        let name = format_ident!("{}", c.name);
        let docs = docs(&c.docs);
        let v = Literal::i128_suffixed(c.value);
        quote! { #docs pub const #name: i128 = #v; }
    });
    let enums = p.enums.iter().map(|e| g.enum_def(e));
    let units = p.units.iter().map(|u| g.unit(u));
    let framings = p.framings.iter().map(|f| {
        let ty = format_ident!("{}", f);
        let codec = format_ident!("{}Codec", f);
        let doc = format!(" Frames a byte stream into [`{f}`] messages (`tokio_util::codec`).");
        quote! {
            #[doc = #doc]
            pub type #codec = #rt::FrameCodec<#ty>;
        }
    });
    quote! {
        #[allow(unused_imports)]
        use #rt::{Message as _, FieldValue as _};
        #(#consts)*
        #(#enums)*
        #(#units)*
        #(#framings)*
    }
}

fn docs(lines: &[String]) -> TokenStream {
    let lines = lines.iter().map(|l| format!(" {l}"));
    quote! { #(#[doc = #lines])* }
}

fn lit_bytes(b: &[u8]) -> Literal {
    Literal::byte_string(b)
}

fn ident(name: &str) -> proc_macro2::Ident {
    if syn::parse_str::<syn::Ident>(name).is_ok() {
        format_ident!("{}", name)
    } else {
        format_ident!("r#{}", name)
    }
}

fn local(name: &str) -> proc_macro2::Ident {
    format_ident!("f_{}", name.trim_start_matches('_'))
}

fn order_tokens(rt: &TokenStream, o: ByteOrder) -> TokenStream {
    match o {
        ByteOrder::Big => quote!(#rt::ByteOrder::Big),
        ByteOrder::Little => quote!(#rt::ByteOrder::Little),
    }
}

fn int_rust(bits: u32, signed: bool) -> proc_macro2::Ident {
    let w: u32 = match bits {
        0..=8 => 8,
        9..=16 => 16,
        17..=32 => 32,
        _ => 64,
    };
    format_ident!("{}{}", if signed { "i" } else { "u" }, w)
}

/// Expressions are generated for one of two places.
#[derive(Clone, Copy, PartialEq)]
enum Cx {
    /// Fields are the locals decoded so far.
    Decode,
    /// Fields are `self.name`.
    Encode,
}

/// Decoding happens in one pass, or (NDR) as scalars then deferred pointees.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Whole,
    Scalars,
}

struct Gen<'a> {
    p: &'a ir::Protocol,
    rt: &'a TokenStream,
}

impl Gen<'_> {
    fn type_path(&self, t: &TypeRef) -> TokenStream {
        let name = format_ident!("{}", t.name);
        if t.protocol == self.p.name {
            quote!(#name)
        } else {
            let proto = ident(&t.protocol);
            quote!(super::#proto::#name)
        }
    }

    fn rust_type(&self, ty: &Ty) -> TokenStream {
        let rt = self.rt;
        match ty {
            Ty::Int { bits, signed, .. } => {
                let t = int_rust(*bits, *signed);
                quote!(#t)
            }
            Ty::Enum { target, .. } => self.type_path(target),
            Ty::Bytes(_)
            | Ty::CiLiteral(_)
            | Ty::Spaces
            | Ty::OptionalSpaces
            | Ty::Token
            | Ty::Literal(_) => {
                quote!(#rt::Bytes)
            }
            Ty::Utf16(_) | Ty::Utf16z => quote!(#rt::Utf16),
            Ty::Number(_) => quote!(#rt::TextNumber),
            Ty::Leaf(n) => {
                let n = format_ident!("{}", n);
                quote!(#rt::#n)
            }
            Ty::Unit { target, .. } => self.type_path(target),
            Ty::Ptr(inner) => {
                let i = self.rust_type(inner);
                quote!(#rt::Pointer<#i>)
            }
            Ty::Array { elem, .. } => {
                let e = self.rust_type(elem);
                quote!(Vec<#e>)
            }
            Ty::Switch(sw) => {
                let n = format_ident!("{}", sw.name);
                quote!(#n)
            }
        }
    }

    fn field_type(&self, f: &ir::Field) -> TokenStream {
        let mut t = self.rust_type(&f.ty);
        if f.boxed {
            t = quote!(Box<#t>);
        }
        if f.optional() {
            t = quote!(Option<#t>);
        }
        t
    }

    // ------------------------------------------------------------ enums

    fn enum_def(&self, e: &ir::Enum) -> TokenStream {
        let rt = self.rt;
        let name = format_ident!("{}", e.name);
        let repr = int_rust(e.bits, false);
        let docs = docs(&e.docs);
        if e.is_flags {
            let consts = e.variants.iter().map(|v| {
                let c = format_ident!("{}", v.name.to_uppercase());
                let d = docs_of(&v.docs);
                let val = Literal::u64_unsuffixed(v.value as u64);
                quote! { #d pub const #c: #repr = #val; }
            });
            return quote! {
                #docs
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
                pub struct #name(pub #repr);
                impl #name {
                    #(#consts)*
                    /// True when every bit of `mask` is set.
                    pub fn contains(self, mask: #repr) -> bool { self.0 & mask == mask }
                }
                impl #rt::FieldValue for #name {
                    fn value(&self) -> #rt::Value { #rt::Value::Uint(u64::from(self.0)) }
                    fn set(&mut self, v: #rt::Value) -> Result<(), #rt::SetError> { self.0.set(v) }
                }
            };
        }
        let variants = e.variants.iter().map(|v| {
            let n = format_ident!("{}", v.name);
            let d = docs_of(&v.docs);
            quote! { #d #n }
        });
        let from = e.variants.iter().map(|v| {
            let n = format_ident!("{}", v.name);
            let val = Literal::u64_unsuffixed(v.value as u64);
            quote! { #val => Self::#n }
        });
        let to = e.variants.iter().map(|v| {
            let n = format_ident!("{}", v.name);
            let val = Literal::u64_unsuffixed(v.value as u64);
            quote! { Self::#n => #val }
        });
        quote! {
            #docs
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum #name {
                #(#variants,)*
                /// A value the spec does not name, kept as received.
                Unknown(#repr),
            }
            impl #name {
                #[allow(unreachable_patterns)]
                pub const fn from_raw(v: #repr) -> Self {
                    match v { #(#from,)* other => Self::Unknown(other) }
                }
                pub const fn raw(self) -> #repr {
                    match self { #(#to,)* Self::Unknown(v) => v }
                }
            }
            impl Default for #name {
                fn default() -> Self { Self::from_raw(0) }
            }
            impl #rt::FieldValue for #name {
                fn value(&self) -> #rt::Value { #rt::Value::Uint(u64::from(self.raw())) }
                fn set(&mut self, v: #rt::Value) -> Result<(), #rt::SetError> {
                    let mut raw = self.raw();
                    raw.set(v)?;
                    *self = Self::from_raw(raw);
                    Ok(())
                }
            }
        }
    }

    // ------------------------------------------------------------ units

    fn info_ident(&self, unit: &ir::Unit, field: &str) -> proc_macro2::Ident {
        format_ident!(
            "__F_{}_{}",
            unit.name.to_uppercase(),
            field.trim_start_matches('_').to_uppercase()
        )
    }

    fn role_ident(&self, unit: &ir::Unit, field: &str) -> proc_macro2::Ident {
        format_ident!(
            "__R_{}_{}",
            unit.name.to_uppercase(),
            field.trim_start_matches('_').to_uppercase()
        )
    }

    fn unit(&self, u: &ir::Unit) -> TokenStream {
        let rt = self.rt;
        let name = format_ident!("{}", u.name);
        let mut doc_lines = u.docs.clone();
        if doc_lines.is_empty() {
            doc_lines.push(format!("`{}.{}` ({}).", self.p.name, u.name, u.location));
        }
        let unit_docs = docs(&doc_lines);
        // Struct fields.
        let mut fields = Vec::new();
        let mut statics = Vec::new();
        let mut switch_defs = Vec::new();
        for item in &u.items {
            match item {
                Item::Align { field, .. } => {
                    let f = ident(field);
                    fields
                        .push(quote! { #[doc = " Padding, kept as received."] pub #f: #rt::Bytes });
                    statics.push(self.info_static(u, field, &u.location));
                }
                Item::Field(_) | Item::Bits(_) => {}
                _ => continue,
            }
            let group: &[ir::Field] = match item {
                Item::Field(f) => std::slice::from_ref(f),
                Item::Bits(g) => &g.fields,
                _ => &[],
            };
            for f in group {
                statics.push(self.info_static(u, &f.name, &f.location));
                if let Some(role) = f.roles.first() {
                    statics.push(self.role_static(u, &f.name, role));
                }
                if let Some(l) = &f.located {
                    let g = ident(&l.gap);
                    fields.push(quote! { #[doc = " Bytes skipped to reach the next field's offset, kept as received."] pub #g: #rt::Bytes });
                }
                collect_switches(&f.ty, &mut switch_defs);
                if !f.stored() {
                    continue;
                }
                if f.hint {
                    let h = format_ident!("_{}_exact", f.name.trim_start_matches('_'));
                    fields.push(quote! { #[doc = " Whether the hint before agreed with what it describes when decoded (then the encoder recomputes it)."] pub #h: bool });
                }
                let fname = ident(&f.name);
                let ty = self.field_type(f);
                let mut d = f.docs.clone();
                if f.layout && d.is_empty() {
                    d.push("Layout, kept as received.".into());
                }
                if let Some(v) = f.default {
                    d.push(format!("Normally {v}."));
                }
                if let Some(r) = f.roles.first() {
                    d.push(format!("Role: {}.", r.describe()));
                }
                let d = docs(&d);
                fields.push(quote! { #d pub #fname: #ty });
            }
        }
        if u.kind == UnitKind::Line {
            fields.push(quote! { #[doc = " The line terminator as received (empty: the protocol's)."] pub _eol: #rt::Bytes });
            statics.push(self.info_static(u, "_eol", &u.location));
        }
        let switches = switch_defs.iter().map(|sw| self.switch_enum(sw));
        let params: Vec<TokenStream> = u
            .params
            .iter()
            .map(|(n, t)| {
                let p = format_ident!("p_{}", n);
                match t {
                    ExprTy::Bool => quote!(#p: bool),
                    ExprTy::Bytes => quote!(#p: &[u8]),
                    ExprTy::Int => quote!(#p: i128),
                }
            })
            .collect();
        let param_names: Vec<proc_macro2::Ident> = u
            .params
            .iter()
            .map(|(n, _)| format_ident!("p_{}", n))
            .collect();
        let decode_body = self.decode_body(u, Phase::Whole);
        let encode_body = self.encode_body(u, Phase::Whole);
        let visit = self.visit_body(u, false);
        let visit_mut = self.visit_body(u, true);
        let decode_fns = if u.has_deferred {
            let scalars = self.decode_body(u, Phase::Scalars);
            let deferred = self.deferred_decode(u);
            let enc_scalars = self.encode_body(u, Phase::Scalars);
            let enc_deferred = self.deferred_encode(u);
            quote! {
                /// Decodes the unit and then the pointees it defers.
                pub fn decode_from(__r: &mut #rt::Reader #(, #params)*) -> Result<Self, #rt::DecodeError> {
                    let mut __s = Self::decode_scalars(__r #(, #param_names)*)?;
                    __s.decode_deferred(__r)?;
                    Ok(__s)
                }
                /// Decodes the scalars only; pointers keep their referent ids and no value.
                pub fn decode_scalars(__r: &mut #rt::Reader #(, #params)*) -> Result<Self, #rt::DecodeError> { #scalars }
                /// Decodes the deferred pointees, in the order of their pointers.
                pub fn decode_deferred(&mut self, __r: &mut #rt::Reader) -> Result<(), #rt::DecodeError> { #deferred }
                pub fn encode_to(&self, __w: &mut #rt::Writer) -> Result<(), #rt::EncodeError> {
                    self.encode_scalars(__w)?;
                    self.encode_deferred(__w)
                }
                pub fn encode_scalars(&self, __w: &mut #rt::Writer) -> Result<(), #rt::EncodeError> { #enc_scalars }
                pub fn encode_deferred(&self, __w: &mut #rt::Writer) -> Result<(), #rt::EncodeError> { #enc_deferred }
            }
        } else {
            quote! {
                /// Decodes the unit at the reader's position.
                pub fn decode_from(__r: &mut #rt::Reader #(, #params)*) -> Result<Self, #rt::DecodeError> { #decode_body }
                /// Encodes the unit, recomputing its lengths, counts and offsets.
                pub fn encode_to(&self, __w: &mut #rt::Writer) -> Result<(), #rt::EncodeError> { #encode_body }
            }
        };
        let message = if u.params.is_empty() {
            let full = format!("{}.{}", self.p.name, u.name);
            quote! {
                impl #rt::Message for #name {
                    const NAME: &'static str = #full;
                    fn decode_from_reader(r: &mut #rt::Reader) -> Result<Self, #rt::DecodeError> { Self::decode_from(r) }
                    fn encode_to_writer(&self, w: &mut #rt::Writer) -> Result<(), #rt::EncodeError> { self.encode_to(w) }
                    fn visit(&self, v: &mut dyn #rt::Visitor) { self.visit_fields(v) }
                    fn visit_mut(&mut self, v: &mut dyn #rt::VisitorMut) { self.visit_fields_mut(v) }
                }
            }
        } else {
            quote!()
        };
        quote! {
            #(#statics)*
            #unit_docs
            #[derive(Debug, Clone, PartialEq)]
            pub struct #name { #(#fields,)* }
            impl #name {
                #decode_fns
                /// Shows every leaf field to `__v`.
                #[allow(unused_variables)]
                pub fn visit_fields(&self, __v: &mut dyn #rt::Visitor) { #visit }
                /// Lets `__v` rewrite leaf fields in place.
                #[allow(unused_variables)]
                pub fn visit_fields_mut(&mut self, __v: &mut dyn #rt::VisitorMut) { #visit_mut }
            }
            #message
            #(#switches)*
        }
    }

    fn info_static(&self, u: &ir::Unit, field: &str, location: &str) -> TokenStream {
        let rt = self.rt;
        let id = self.info_ident(u, field);
        let proto = &self.p.name;
        let unit = &u.name;
        let has_role = u.fields().any(|f| f.name == field && !f.roles.is_empty());
        let role = if has_role {
            let r = self.role_ident(u, field);
            quote!(Some(&#r))
        } else {
            quote!(None)
        };
        quote! {
            #[doc(hidden)]
            static #id: #rt::FieldInfo = #rt::FieldInfo { protocol: #proto, unit: #unit, field: #field, location: #location, role: #role };
        }
    }

    fn role_static(&self, u: &ir::Unit, field: &str, role: &Role) -> TokenStream {
        let rt = self.rt;
        let id = self.role_ident(u, field);
        let value: TokenStream = role
            .runtime()
            .rust_expr(&rt.to_string())
            .parse()
            .expect("a role's Rust expression parses");
        quote! {
            #[doc(hidden)]
            static #id: #rt::Role = #value;
        }
    }

    fn switch_enum(&self, sw: &ir::Switch) -> TokenStream {
        let name = format_ident!("{}", sw.name);
        let variants = sw.cases.iter().map(|c| {
            let v = format_ident!("{}", c.name);
            match &c.ty {
                None => quote!(#v),
                Some(t) => {
                    let mut ty = self.rust_type(t);
                    if c.boxed {
                        ty = quote!(Box<#ty>);
                    }
                    quote!(#v(#ty))
                }
            }
        });
        let doc = format!(" The cases of `{}`.", sw.name);
        let names = sw.cases.iter().map(|c| {
            let v = format_ident!("{}", c.name);
            let n = &c.name;
            match &c.ty {
                None => quote!(Self::#v => #n),
                Some(_) => quote!(Self::#v(_) => #n),
            }
        });
        quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, PartialEq)]
            pub enum #name { #(#variants,)* }
            impl #name {
                /// The name of the case this value holds (`is(field, Case)` in specs).
                pub fn case_name(&self) -> &'static str {
                    match self { #(#names,)* }
                }
            }
        }
    }

    // ------------------------------------------------------------ decode

    fn unit_prologue(&self, u: &ir::Unit) -> (TokenStream, TokenStream) {
        let rt = self.rt;
        let set_order = match self.p.order {
            Some(o) => {
                let o = order_tokens(rt, o);
                quote!(__r.set_order(#o);)
            }
            None => quote!(),
        };
        let (line_open, line_close) = if u.kind == UnitKind::Line {
            let max = Literal::usize_unsuffixed(self.p.text.max_line as usize);
            let info = self.info_ident(u, "_eol");
            (
                quote! { let __line = __r.line(#max).map_err(|e| e.in_field(&#info))?; },
                quote! { let f_eol = __r.end_line(__line).map_err(|e| e.in_field(&#info))?; },
            )
        } else {
            (quote!(), quote!())
        };
        (
            quote! {
                let __mark = __r.enter()?;
                let __outer_order = __r.order();
                #set_order
                #line_open
            },
            quote! {
                #line_close
                __r.set_order(__outer_order);
                __r.leave(__mark);
            },
        )
    }

    fn decode_body(&self, u: &ir::Unit, phase: Phase) -> TokenStream {
        let rt = self.rt;
        let (open, close) = self.unit_prologue(u);
        let mut stmts = Vec::new();
        let mut inits = Vec::new();
        for item in &u.items {
            match item {
                Item::Anchor(a) => stmts.push(quote!(__r.push_anchor(#a);)),
                Item::Align { to, from, field } => {
                    let l = local(field);
                    let f = ident(field);
                    let info = self.info_ident(u, field);
                    let to = Literal::usize_unsuffixed(*to as usize);
                    stmts.push(quote!(let #l = __r.field(&#info, |__r| __r.align(#to, #from))?;));
                    inits.push(quote!(#f: #l));
                }
                Item::Order { order, cond } => {
                    let o = order_tokens(rt, *order);
                    match cond {
                        None => stmts.push(quote!(__r.set_order(#o);)),
                        Some((c, other)) => {
                            let other = order_tokens(rt, *other);
                            let c = self.expr_value(c, Cx::Decode, ExprTy::Bool);
                            stmts.push(quote! {
                                let __c = #c;
                                __r.set_order(if __c { #o } else { #other });
                            });
                        }
                    }
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
                    let l = local(length_field);
                    let v =
                        conv_value(&quote!(#l), *conv).unwrap_or_else(|| quote!(i128::from(#l)));
                    let info = self.info_ident(u, length_field);
                    let used = match since {
                        Some(first) => {
                            let p = format_ident!("__p_{}", first.trim_start_matches('_'));
                            quote!(__r.pos() - #p)
                        }
                        None => quote!(0usize),
                    };
                    let open = quote! {
                        __r.field(&#info, |__r| {
                            let __n = (|| #rt::ops::size(#v, #add, #unit_bytes)?.checked_sub(#used))().ok_or_else(|| __r.arithmetic())?;
                            __r.limit(__n)
                        })?
                    };
                    stmts.push(match when {
                        None => quote!(let #lim = Some(#open);),
                        Some(c) => {
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
                    let add = loc.add;
                    let seek = quote! {
                        __r.field(&#info, |__r| {
                            let __target = (|| #rt::ops::usize(#rt::ops::sub(#rt::ops::add(#off, __r.anchor(#from) as i128)?, i128::from(#add))?))()
                                .ok_or_else(|| __r.arithmetic())?;
                            __r.seek_to(__target)
                        })?
                    };
                    stmts.push(match &f.cond {
                        None => quote!(let #g = #seek;),
                        Some(c) => {
                            let c = self.expr_value(c, Cx::Decode, ExprTy::Bool);
                            quote! {
                                let __c = #c;
                                let #g = if __c { #seek } else { #rt::Bytes::new() };
                            }
                        }
                    });
                }
                Item::Mark(first) => {
                    let p = format_ident!("__p_{}", first.trim_start_matches('_'));
                    stmts.push(quote!(let #p = __r.pos();));
                }
                Item::BeginWithin { id, size } => {
                    let lim = format_ident!("__lim{}", id);
                    let n = self.expr_value(size, Cx::Decode, ExprTy::Int);
                    stmts.push(quote! {
                        let #lim = {
                            let __n = usize::try_from(#n).map_err(|_| __r.arithmetic())?;
                            Some(__r.limit(__n)?)
                        };
                    });
                }
                Item::EndLimit { id } => {
                    let lim = format_ident!("__lim{}", id);
                    stmts.push(quote! {
                        if let Some(__l) = #lim {
                            __r.end_limit(__l)?;
                        }
                    });
                }
                Item::Bits(g) => {
                    let n = Literal::usize_unsuffixed(g.bytes);
                    let first = self.info_ident(u, &g.fields[0].name);
                    stmts.push(quote!(let __bits = __r.field(&#first, |__r| __r.uint(#n))?;));
                    let mut shift = (g.bytes * 8) as u32;
                    for f in &g.fields {
                        let Ty::Int { bits, signed, .. } = f.ty else {
                            continue;
                        };
                        shift -= bits;
                        let mask = Literal::u64_unsuffixed(if bits == 64 {
                            u64::MAX
                        } else {
                            (1u64 << bits) - 1
                        });
                        let sh = Literal::u32_unsuffixed(shift);
                        let t = int_rust(bits, signed);
                        let l = local(&f.name);
                        stmts.push(quote!(let #l = ((__bits >> #sh) & #mask) as #t;));
                        if let Some(v) = f.check {
                            let info = self.info_ident(u, &f.name);
                            let vl = Literal::i128_unsuffixed(v);
                            stmts.push(quote! {
                                if i128::from(#l) != #vl {
                                    return Err(__r.error(#rt::DecodeErrorKind::Mismatch { expected: format!("{}", #vl), found: format!("{}", #l) }).in_field(&#info));
                                }
                            });
                        }
                        let fname = ident(&f.name);
                        inits.push(quote!(#fname: #l));
                    }
                }
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
        let hint_inits: Vec<TokenStream> = u
            .fields()
            .filter(|f| f.hint)
            .map(|f| {
                let h = format_ident!("_{}_exact", f.name.trim_start_matches('_'));
                quote!(#h: false)
            })
            .collect();
        let positional = self.derived_checks(u, false, quote!(__this));
        let values = if u.has_deferred {
            quote!()
        } else {
            self.derived_checks(u, true, quote!(__this))
        };
        quote! {
            #open
            #(#stmts)*
            #close
            #[allow(unused_mut)]
            let mut __this = Self { #(#inits,)* #(#hint_inits,)* };
            #positional
            #values
            Ok(__this)
        }
    }

    /// Checks that every length and count that did not size its target on decode agrees with
    /// it, so that a decoded message always re-encodes to the bytes it came from. `values`:
    /// the checks that need the whole value (nested lengths, reached through pointees);
    /// otherwise the ones that use decode positions and element counts.
    fn derived_checks(&self, u: &ir::Unit, values: bool, recv: TokenStream) -> TokenStream {
        let rt = self.rt;
        let mut out = Vec::new();
        for f in u.fields() {
            let Some(role) = f.derived() else { continue };
            let expect = match role {
                Role::ValueLength {
                    path, unit, add, ..
                } if values => {
                    let size = value_path_size(path, *unit, &recv);
                    let ub = if *unit == SizeUnit::Elements {
                        1
                    } else {
                        unit.bytes()
                    };
                    quote!(#rt::ops::length_of(#size, #add, #ub))
                }
                Role::Length {
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
                    quote!(#rt::ops::length_of(#len, #add, 1))
                }
                Role::Length {
                    first,
                    last,
                    unit,
                    add,
                } if !values => {
                    let s = format_ident!("__s_{}", first.trim_start_matches('_'));
                    let e = format_ident!("__e_{}", last.trim_start_matches('_'));
                    let ub = unit.bytes();
                    match optional_single(u, first, last) {
                        Some(t) => {
                            let tname = ident(t);
                            let fname = ident(&f.name);
                            quote!(if #recv.#tname.is_some() { #rt::ops::length_of(#e - #s, #add, #ub) } else { Some(i128::from(#recv.#fname)) })
                        }
                        None => quote!(#rt::ops::length_of(#e - #s, #add, #ub)),
                    }
                }
                _ => continue,
            };
            let fname = ident(&f.name);
            let info = self.info_ident(u, &f.name);
            let what = match role {
                Role::Length { first, last, .. } if first == last => {
                    format!("the size of `{first}`")
                }
                Role::Length { first, last, .. } => format!("the size of `{first} .. {last}`"),
                Role::ValueLength { text, .. } => format!("the size of `{text}`"),
                _ => String::new(),
            };
            if f.hint {
                let h = format_ident!("_{}_exact", f.name.trim_start_matches('_'));
                out.push(quote! {
                    let __want: Option<i128> = #expect;
                    #recv.#h = __want == Some(i128::from(#recv.#fname));
                });
                continue;
            }
            out.push(quote! {
                let __want: Option<i128> = #expect;
                if __want != Some(i128::from(#recv.#fname)) {
                    return Err(__r
                        .error(#rt::DecodeErrorKind::Mismatch {
                            expected: format!("{} ({})", __want.map_or_else(|| "a whole number of units".to_string(), |v| v.to_string()), #what),
                            found: #recv.#fname.to_string(),
                        })
                        .in_field(&#info));
                }
            });
        }
        quote!(#(#out)*)
    }

    fn decode_field(
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
                let find = self.path_find(&sf.steps, quote!((&#root)));
                let read = quote!({
                    let __held: Option<i128> = (|| { #find None })();
                    let __n = #rt::ops::usize(__held.unwrap_or(0)).ok_or_else(|| __r.arithmetic())?;
                    __r.bytes(__n)?
                });
                match f.ty {
                    Ty::Utf16(_) => quote!(#rt::Utf16 { raw: #read }),
                    _ => read,
                }
            }
            None => self.decode_value(&f.ty, phase),
        };
        let value = if f.boxed {
            quote!(Box::new(#value))
        } else {
            value
        };
        let check = f.check.map(|v| {
            let vl = Literal::i128_unsuffixed(v);
            quote! {
                if i128::from(__v) != #vl {
                    return Err(__r.error(#rt::DecodeErrorKind::Mismatch { expected: format!("{}", #vl), found: format!("{}", __v) }));
                }
            }
        });
        let ty = self.rust_type(&f.ty);
        let ty = if f.boxed { quote!(Box<#ty>) } else { ty };
        let read = quote! {
            __r.field(&#info, |__r| {
                let __v: #ty = #value;
                #check
                Ok(__v)
            })?
        };
        let s_id = format_ident!("__s_{}", f.name.trim_start_matches('_'));
        let e_id = format_ident!("__e_{}", f.name.trim_start_matches('_'));
        let measured = u.measured.contains(&f.name);
        let (start, end) = if measured {
            (
                quote!(let #s_id = __r.pos();),
                quote!(let #e_id = __r.pos();),
            )
        } else {
            (quote!(), quote!())
        };
        let stmt = match (&f.cond, &f.view) {
            (_, Some(src)) => {
                // Decoded by a reader of its own over the gathered bytes, sharing the session
                // memory and the byte order; `None` when they do not (yet) make a whole value.
                let src = self.expr_value(src, Cx::Decode, ExprTy::Bytes);
                let ty = self.rust_type(&f.ty);
                let inner = self.decode_value(&f.ty, phase);
                let (stored, boxing) = if f.boxed {
                    (quote!(Box<#ty>), quote!(.map(Box::new)))
                } else {
                    (ty.clone(), quote!())
                };
                quote! {
                    let #l: Option<#stored> = {
                        let __src = #rt::Bytes::copy_from_slice(#src);
                        let mut __sub = #rt::Reader::new(__src);
                        __sub.set_order(__r.order());
                        __sub.set_memory(__r.take_memory());
                        let __res = (|__r: &mut #rt::Reader| -> Result<#ty, #rt::DecodeError> {
                            let __v: #ty = #inner;
                            if __r.remaining() != 0 {
                                return Err(__r.error(#rt::DecodeErrorKind::Trailing { count: __r.remaining() }));
                            }
                            Ok(__v)
                        })(&mut __sub);
                        __r.set_memory(__sub.take_memory());
                        __res.ok()#boxing
                    };
                }
            }
            (None, _) if f.stored() => quote!(#start let #l = #read; #end),
            (None, _) => quote!(#start #read; #end),
            (Some(c), None) => {
                let c = self.expr_value(c, Cx::Decode, ExprTy::Bool);
                quote! {
                    let __c = #c;
                    #start
                    let #l = if __c { Some(#read) } else { None };
                    #end
                }
            }
        };
        let stmt = match &f.remember {
            None => stmt,
            Some((name, key, key_ty)) => {
                let n = lit_bytes(name.as_bytes());
                let k = self.expr_value(key, Cx::Decode, *key_ty);
                let key_bytes = match key_ty {
                    ExprTy::Bytes => quote!(#k.to_vec()),
                    _ => quote!(#rt::ops::decimal(#k)),
                };
                let value = match f.ty.conv() {
                    Conv::Bytes => quote!(&__x[..]),
                    Conv::Utf16 => quote!(&__x.raw[..]),
                    _ => quote!(#rt::ops::decimal(i128::from(*__x))),
                };
                let bind = if f.optional() {
                    quote!(if let Some(__x) = &#l)
                } else {
                    quote!(if let __x = &#l)
                };
                let store = if f.append {
                    quote!(__r.append_memory(#n, &__key, &__value);)
                } else {
                    quote!(__r.remember(#n, &__key, &__value);)
                };
                quote! {
                    #stmt
                    #[allow(irrefutable_let_patterns)]
                    #bind {
                        let __key = #key_bytes;
                        let __value = #value;
                        #store
                    }
                }
            }
        };
        if f.stored() {
            inits.push(quote!(#fname: #l));
        }
        (stmt, inits)
    }

    /// An expression (using `__r` and `?`) that decodes a value of type `ty`.
    fn decode_value(&self, ty: &Ty, phase: Phase) -> TokenStream {
        let rt = self.rt;
        match ty {
            Ty::Int {
                bits,
                signed,
                order,
            } => {
                let n = Literal::usize_unsuffixed((*bits / 8) as usize);
                let t = int_rust(*bits, *signed);
                let u = int_rust(*bits, false);
                let read = match order {
                    Some(o) => {
                        let o = order_tokens(rt, *o);
                        quote!(__r.uint_in(#n, #o)?)
                    }
                    None => quote!(__r.uint(#n)?),
                };
                if *signed {
                    quote!(#read as #u as #t)
                } else {
                    quote!(#read as #t)
                }
            }
            Ty::Enum {
                target,
                bits,
                flags,
            } => {
                let n = Literal::usize_unsuffixed((*bits / 8) as usize);
                let t = int_rust(*bits, false);
                let path = self.type_path(target);
                if *flags {
                    quote!(#path(__r.uint(#n)? as #t))
                } else {
                    quote!(#path::from_raw(__r.uint(#n)? as #t))
                }
            }
            Ty::Bytes(size) => self.decode_bytes(size),
            Ty::Literal(b) => {
                let b = lit_bytes(b);
                quote!({ __r.literal(#b)?; #rt::Bytes::new() })
            }
            Ty::CiLiteral(b) => {
                let b = lit_bytes(b);
                quote!(__r.ci_literal(#b)?)
            }
            Ty::Utf16(size) => {
                let b = self.decode_bytes(size);
                quote!(#rt::Utf16 { raw: #b })
            }
            Ty::Utf16z => quote!(#rt::Utf16 { raw: __r.utf16z()? }),
            Ty::Spaces => quote!(__r.spaces()?),
            Ty::OptionalSpaces => quote!(__r.optional_spaces()),
            Ty::Token => quote!(__r.token()?),
            Ty::Number(None) => quote!(<#rt::TextNumber as #rt::Leaf>::decode(__r)?),
            Ty::Number(Some(w)) => {
                let w = Literal::usize_unsuffixed(*w);
                quote!(#rt::TextNumber::decode_width(__r, #w)?)
            }
            Ty::Leaf(n) => {
                let n = format_ident!("{}", n);
                quote!(<#rt::#n as #rt::Leaf>::decode(__r)?)
            }
            Ty::Unit {
                target,
                args,
                deferred,
            } => {
                let path = self.type_path(target);
                // Arguments are evaluated first (owned), so none borrows the reader in the call.
                let mut lets = Vec::new();
                let mut passed = Vec::new();
                for (i, (a, ty)) in args.iter().enumerate() {
                    let v = self.expr_value(a, Cx::Decode, *ty);
                    let id = format_ident!("__a{}", i);
                    match ty {
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
                let f = if *deferred && phase == Phase::Scalars {
                    quote!(decode_scalars)
                } else {
                    quote!(decode_from)
                };
                quote!({ #(#lets)* #path::#f(__r #(, #passed)*)? })
            }
            Ty::Ptr(inner) => {
                if phase == Phase::Scalars {
                    quote!(#rt::Pointer { referent: __r.uint(4)? as u32, value: None })
                } else {
                    let v = self.decode_value(inner, Phase::Whole);
                    quote!({
                        let __referent = __r.uint(4)? as u32;
                        let __value = if __referent != 0 { Some(#v) } else { None };
                        #rt::Pointer { referent: __referent, value: __value }
                    })
                }
            }
            Ty::Array { elem, len } => {
                let e = self.decode_value(elem, phase);
                let et = self.rust_type(elem);
                let guard = quote! {
                    if __r.pos() == __before {
                        return Err(__r.invalid("an array element used no bytes"));
                    }
                };
                match len {
                    ArrayLen::Count(c) => {
                        let c = self.expr_value(c, Cx::Decode, ExprTy::Int);
                        quote!({
                            let __n = #rt::ops::usize(#c).ok_or_else(|| __r.arithmetic())?;
                            let mut __v: Vec<#et> = Vec::with_capacity(__n.min(__r.remaining()));
                            for _ in 0..__n {
                                let __before = __r.pos();
                                __v.push(#e);
                                #guard
                            }
                            __v
                        })
                    }
                    ArrayLen::CountField { field, conv, add } => {
                        let l = local(field);
                        let v = conv_value(&quote!(#l), *conv)
                            .unwrap_or_else(|| quote!(i128::from(#l)));
                        quote!({
                            let __n = (|| #rt::ops::size(#v, #add, 1))().ok_or_else(|| __r.arithmetic())?;
                            let mut __v: Vec<#et> = Vec::with_capacity(__n.min(__r.remaining()));
                            for _ in 0..__n {
                                let __before = __r.pos();
                                __v.push(#e);
                                #guard
                            }
                            __v
                        })
                    }
                    ArrayLen::ToEnd => quote!({
                        let mut __v: Vec<#et> = Vec::new();
                        while __r.remaining() > 0 {
                            let __before = __r.pos();
                            __v.push(#e);
                            #guard
                        }
                        __v
                    }),
                    ArrayLen::Until(c) => {
                        let c = self.expr_value(c, Cx::Decode, ExprTy::Bool);
                        quote!({
                            let mut __v: Vec<#et> = Vec::new();
                            loop {
                                let __before = __r.pos();
                                let __e: #et = #e;
                                #guard
                                let __stop = #c;
                                __v.push(__e);
                                if __stop { break; }
                            }
                            __v
                        })
                    }
                }
            }
            Ty::Switch(sw) => self.decode_switch(sw, phase),
        }
    }

    fn decode_bytes(&self, size: &BytesSize) -> TokenStream {
        let rt = self.rt;
        match size {
            BytesSize::Rest => quote!(__r.rest()),
            BytesSize::Until(d) => {
                let d = lit_bytes(d);
                quote!(__r.bytes_until(#d)?)
            }
            BytesSize::Expr(e) => {
                let e = self.expr_value(e, Cx::Decode, ExprTy::Int);
                quote!({
                    let __n = #rt::ops::usize(#e).ok_or_else(|| __r.arithmetic())?;
                    __r.bytes(__n)?
                })
            }
        }
    }

    fn decode_switch(&self, sw: &ir::Switch, phase: Phase) -> TokenStream {
        let rt = self.rt;
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
                    let val = self.decode_value(t, phase);
                    let val = if c.boxed { quote!(Box::new(#val)) } else { val };
                    quote!(#name::#v(#val))
                }
            };
            if c.patterns.iter().any(Vec::is_empty) {
                default = Some(build);
                break;
            }
            let tests = c.patterns.iter().map(|alt| {
                let parts = alt.iter().zip(&sels).map(|(p, s)| pat_test(p, s));
                quote!((#(#parts)&&*))
            });
            chain.push(quote!(if #(#tests)||* { #build }));
        }
        let fallback = default.unwrap_or_else(|| {
            let shows = sels.iter().map(|s| quote!(format!("{:?}", #s)));
            quote! {
                return Err(__r.error(#rt::DecodeErrorKind::NoCase { value: [#(#shows),*].join(", ") }))
            }
        });
        quote!({
            #(#evals)*
            #(#chain else)* { #fallback }
        })
    }

    fn deferred_decode(&self, u: &ir::Unit) -> TokenStream {
        let mut stmts = Vec::new();
        for f in u.fields() {
            if let Some(s) = self.deferred_value_decode(&f.ty, quote!(__f)) {
                let fname = ident(&f.name);
                stmts.push(if f.cond.is_some() {
                    quote!(if let Some(__f) = &mut self.#fname { #s })
                } else {
                    quote!({ let __f = &mut self.#fname; #s })
                });
            }
        }
        let rt = self.rt;
        let _ = rt;
        let values = self.derived_checks(u, true, quote!(self));
        quote! {
            let __mark = __r.enter()?;
            #(#stmts)*
            __r.leave(__mark);
            #values
            Ok(())
        }
    }

    /// Statements that decode the deferred part of the value at `place` (`&mut T`).
    fn deferred_value_decode(&self, ty: &Ty, place: TokenStream) -> Option<TokenStream> {
        match ty {
            Ty::Ptr(inner) => {
                let v = self.decode_value(inner, Phase::Whole);
                Some(quote! {
                    if #place.referent != 0 {
                        #place.value = Some(#v);
                    }
                })
            }
            Ty::Unit { deferred: true, .. } => Some(quote!(#place.decode_deferred(__r)?;)),
            Ty::Array { elem, .. } => {
                let inner = self.deferred_value_decode(elem, quote!(__e))?;
                Some(quote!(for __e in #place.iter_mut() { #inner }))
            }
            _ => None,
        }
    }

    fn deferred_encode(&self, u: &ir::Unit) -> TokenStream {
        let mut stmts = Vec::new();
        for f in u.fields() {
            if let Some(s) = self.deferred_value_encode(u, f, &f.ty, quote!(__f)) {
                let fname = ident(&f.name);
                stmts.push(if f.cond.is_some() {
                    quote!(if let Some(__f) = &self.#fname { #s })
                } else {
                    quote!({ let __f = &self.#fname; #s })
                });
            }
        }
        quote! {
            let __mark = __w.enter();
            #(#stmts)*
            __w.leave(__mark);
            Ok(())
        }
    }

    fn deferred_value_encode(
        &self,
        u: &ir::Unit,
        f: &ir::Field,
        ty: &Ty,
        place: TokenStream,
    ) -> Option<TokenStream> {
        match ty {
            Ty::Ptr(inner) => {
                let v = self.encode_value(u, f, inner, quote!(__p), Phase::Whole);
                Some(quote! {
                    if let Some(__p) = &#place.value { #v }
                })
            }
            Ty::Unit { deferred: true, .. } => {
                let info = self.info_ident(u, &f.name);
                Some(quote!(#place.encode_deferred(__w).map_err(|e| e.in_field(&#info))?;))
            }
            Ty::Array { elem, .. } => {
                let inner = self.deferred_value_encode(u, f, elem, quote!(__e))?;
                Some(quote!(for __e in #place.iter() { #inner }))
            }
            _ => None,
        }
    }

    // ------------------------------------------------------------ encode

    fn encode_body(&self, u: &ir::Unit, phase: Phase) -> TokenStream {
        let rt = self.rt;
        let set_order = match self.p.order {
            Some(o) => {
                let o = order_tokens(rt, o);
                quote!(__w.set_order(#o);)
            }
            None => quote!(),
        };
        let mut stmts = Vec::new();
        let mut patches = Vec::new();
        for (gi, item) in u.items.iter().enumerate() {
            match item {
                Item::Anchor(a) => stmts.push(quote!(__w.push_anchor(#a);)),
                Item::Align { to, from, field } => {
                    let f = ident(field);
                    let to = Literal::usize_unsuffixed(*to as usize);
                    stmts.push(quote!(__w.align(#to, #from, &self.#f);));
                }
                Item::Order { order, cond } => {
                    let o = order_tokens(rt, *order);
                    match cond {
                        None => stmts.push(quote!(__w.set_order(#o);)),
                        Some((c, other)) => {
                            let other = order_tokens(rt, *other);
                            let c = self.expr_value(c, Cx::Encode, ExprTy::Bool);
                            stmts.push(quote! {
                                let __c = #c;
                                __w.set_order(if __c { #o } else { #other });
                            });
                        }
                    }
                }
                Item::BeginLimit { .. }
                | Item::BeginWithin { .. }
                | Item::EndLimit { .. }
                | Item::Mark(_)
                | Item::Seek(_) => {}
                Item::Bits(g) => {
                    let n = Literal::usize_unsuffixed(g.bytes);
                    let compose = |derived: bool| {
                        let mut shift = (g.bytes * 8) as u32;
                        let parts: Vec<TokenStream> = g
                            .fields
                            .iter()
                            .map(|f| {
                                let Ty::Int { bits, .. } = f.ty else { return quote!() };
                                shift -= bits;
                                let sh = Literal::u32_unsuffixed(shift);
                                let mask = Literal::u64_unsuffixed(if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 });
                                let fname = ident(&f.name);
                                let info = self.info_ident(u, &f.name);
                                let bits_l = Literal::u32_unsuffixed(bits);
                                let value = if derived && f.derived().is_some() {
                                    let d = format_ident!("__d_{}", f.name.trim_start_matches('_'));
                                    quote!(#d)
                                } else {
                                    quote!(self.#fname as u64)
                                };
                                quote! {
                                    let __x: u64 = #value;
                                    if __x > #mask {
                                        return Err(#rt::EncodeError::new(#rt::EncodeErrorKind::Invalid { reason: format!("{} does not fit in {} bits", __x, #bits_l) }).in_field(&#info));
                                    }
                                    __g |= __x << #sh;
                                }
                            })
                            .collect();
                        quote! {
                            let mut __g: u64 = 0;
                            #(#parts)*
                        }
                    };
                    let plain = compose(false);
                    if g.fields.iter().any(|f| f.derived().is_some()) {
                        let at = format_ident!("__at_g{}", gi);
                        let ord = format_ident!("__o_g{}", gi);
                        stmts.push(quote! {
                            let #ord = __w.order();
                            let #at = __w.reserve(#n);
                        });
                        let mut computes = Vec::new();
                        for f in &g.fields {
                            if let Some(role) = f.derived() {
                                let d = format_ident!("__d_{}", f.name.trim_start_matches('_'));
                                let Ty::Int { bits, .. } = f.ty else { continue };
                                let value = self.derived_value(u, f, role, bits);
                                computes.push(quote!(let #d: u64 = #value;));
                            }
                        }
                        let with_derived = compose(true);
                        patches.push(quote! {
                            {
                                #(#computes)*
                                #with_derived
                                __w.patch(#at, __g, #n, #ord);
                            }
                        });
                    } else {
                        stmts.push(quote! {
                            {
                                #plain
                                __w.uint(__g, #n);
                            }
                        });
                    }
                }
                Item::Field(f) if f.view.is_some() => {}
                Item::Field(f) => {
                    // Text that follows whitespace must not start with whitespace: the decoder
                    // would take it as part of the spaces before it.
                    let before = if gi > 0 { Some(&u.items[gi - 1]) } else { None };
                    let tabs_too = matches!(before, Some(Item::Field(p)) if matches!(p.ty, Ty::OptionalSpaces));
                    let after_space = tabs_too
                        || matches!(before, Some(Item::Field(p)) if matches!(p.ty, Ty::Spaces));
                    if after_space && matches!(f.ty, Ty::Bytes(_) | Ty::Token) {
                        let fname = ident(&f.name);
                        let info = self.info_ident(u, &f.name);
                        let refuse = invalid(
                            rt,
                            &info,
                            "text after whitespace cannot start with a space or a tab",
                        );
                        let value = if f.cond.is_some() {
                            quote!(self.#fname.as_ref())
                        } else {
                            quote!(Some(&self.#fname))
                        };
                        stmts.push(quote! {
                                                        if #value.and_then(|__v| __v.first()).is_some_and(|__b| *__b == b' ' || (#tabs_too && *__b == b'\t')) { #refuse }
                        });
                    }
                    let measured = u.measured.contains(&f.name);
                    let s_id = format_ident!("__s_{}", f.name.trim_start_matches('_'));
                    let e_id = format_ident!("__e_{}", f.name.trim_start_matches('_'));
                    if let Some(loc) = &f.located {
                        let g = ident(&loc.gap);
                        stmts.push(quote!(__w.bytes(&self.#g);));
                    }
                    if measured {
                        stmts.push(quote!(let #s_id = __w.pos();));
                    }
                    if let (Some(role), Ty::Int { bits, .. }) = (f.derived(), &f.ty) {
                        let n = Literal::usize_unsuffixed((*bits / 8) as usize);
                        let at = format_ident!("__at_{}", f.name.trim_start_matches('_'));
                        let ord = format_ident!("__o_{}", f.name.trim_start_matches('_'));
                        let order = match &f.ty {
                            Ty::Int { order: Some(o), .. } => order_tokens(rt, *o),
                            _ => quote!(__w.order()),
                        };
                        stmts.push(quote! {
                            let #ord = #order;
                            let #at = __w.reserve(#n);
                        });
                        let value = self.derived_value(u, f, role, *bits);
                        let value = if f.hint {
                            let h = format_ident!("_{}_exact", f.name.trim_start_matches('_'));
                            let fname = ident(&f.name);
                            quote!(if self.#h { #value } else { self.#fname as u64 })
                        } else {
                            value
                        };
                        patches.push(quote! {
                            {
                                let __x: u64 = #value;
                                __w.patch(#at, __x, #n, #ord);
                            }
                        });
                    } else if f.derived().is_some() {
                        // Derived text numbers are not generated (the checker refuses them).
                    } else {
                        let fname = ident(&f.name);
                        let body = self.encode_value(u, f, &f.ty, quote!(__f), phase);
                        let copy = self.sized_copy(u, f);
                        stmts.push(match (copy, f.cond.is_some()) {
                            (Some(copy), false) => quote!({ #copy let __f = &__copy; #body }),
                            (Some(copy), true) => {
                                quote!({ #copy if let Some(__f) = &__copy { #body } })
                            }
                            (None, true) => quote!(if let Some(__f) = &self.#fname { #body }),
                            (None, false) if f.stored() => {
                                quote!({ let __f = &self.#fname; #body })
                            }
                            (None, false) => quote!({ #body }),
                        });
                    }
                    if measured {
                        stmts.push(quote!(let #e_id = __w.pos();));
                    }
                }
            }
        }
        let (line_start, eol) = if u.kind == UnitKind::Line {
            let term = lit_bytes(&self.p.text.terminator);
            let info = self.info_ident(u, "_eol");
            let refuse = invalid(rt, &info, "a line cannot contain a line break, end in CR before a bare LF, or pass the maximum length");
            let max = Literal::usize_unsuffixed(self.p.text.max_line as usize);
            (
                quote!(let __line_start = __w.pos();),
                quote! {
                    let __content = __w.since(__line_start);
                    if __content.contains(&b'\n') || __content.len() > #max
                        || (__content.last() == Some(&b'\r') && self._eol[..] == b"\n"[..]) { #refuse }
                    if self._eol.is_empty() { __w.bytes(#term); } else { __w.bytes(&self._eol); }
                },
            )
        } else {
            (quote!(), quote!())
        };
        quote! {
            let __mark = __w.enter();
            let __outer_order = __w.order();
            #set_order
            #line_start
            #(#stmts)*
            #(#patches)*
            #eol
            __w.set_order(__outer_order);
            __w.leave(__mark);
            Ok(())
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
        if expr_uses_context(e) || expr_names_derived(e, u) {
            return quote!();
        }
        let want = self.expr_value(e, Cx::Encode, ExprTy::Int);
        let refuse = invalid(
            self.rt,
            info,
            "the value does not have the size its spec gives",
        );
        quote! {
            if i128::try_from(#len).ok() != Some(#want) { #refuse }
        }
    }

    /// Statements that walk a path from `base` (a reference, `&mut` when `mutable`) through unit
    /// fields, optional fields, every array element and switch cases, and run `at_end` on what
    /// the path reaches: the place, and the last step (a leaf, or a case that carries nothing).
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
                quote!(if let #sw::#c(__o) = #base { #inner })
            }
            ir::PathStep::Leaf { .. } => at_end(&base, Some(step)),
        }
    }

    /// Statements that `return` the number at the end of a `@size` path from `base`.
    fn path_find(&self, steps: &[ir::PathStep], base: TokenStream) -> TokenStream {
        self.path_walk(steps, base, false, &|place, last| match last {
            Some(ir::PathStep::Leaf {
                conv: Conv::Number, ..
            }) => quote!(return #place.value();),
            _ => quote!(return Some(i128::from(*#place));),
        })
    }

    /// Statements that `return true` when a `found()` path reaches its end from `base`.
    fn path_exists(&self, steps: &[ir::PathStep], base: TokenStream) -> TokenStream {
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
    fn path_set(
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
                    *#place = #rt::fit(__size, #b).map_err(|e| e.in_field(&#info))? as #t;
                    return Ok(true);
                }
            }
            _ => quote!(),
        })
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
            let set = self.path_set(&sf.steps, quote!((&mut __copy)), &info);
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
                    return Err(#rt::EncodeError::new(#rt::EncodeErrorKind::Invalid {
                        reason: format!("{} bytes but no `{}` to hold their size", __size, #text),
                    }).in_field(&#info));
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
    fn derived_value(&self, u: &ir::Unit, f: &ir::Field, role: &Role, bits: u32) -> TokenStream {
        let rt = self.rt;
        let info = self.info_ident(u, &f.name);
        let fit = quote!(.and_then(|__v| #rt::fit(__v, #bits)).map_err(|e| e.in_field(&#info))?);
        match role {
            Role::Length {
                first,
                last,
                unit,
                add,
            } => {
                if *unit == SizeUnit::Elements {
                    let fname = ident(first);
                    let target = u.fields().find(|t| t.name == *first);
                    let len = if target.is_some_and(|t| t.cond.is_some()) {
                        quote!(self.#fname.as_ref().map_or(0, |v| v.len()))
                    } else {
                        quote!(self.#fname.len())
                    };
                    quote!((#rt::ops::length_of(#len, #add, 1)
                        .ok_or_else(|| #rt::EncodeError::new(#rt::EncodeErrorKind::OutOfRange { value: i128::MAX, bits: #bits })))
                        #fit)
                } else {
                    let s = format_ident!("__s_{}", first.trim_start_matches('_'));
                    let e = format_ident!("__e_{}", last.trim_start_matches('_'));
                    let ub = unit.bytes();
                    let ubl = Literal::usize_unsuffixed(ub as usize);
                    let computed = quote!((#rt::ops::length_of(#e - #s, #add, #ub)
                        .ok_or_else(|| #rt::EncodeError::new(#rt::EncodeErrorKind::NotMultiple { size: #e - #s, unit: #ubl })))
                        #fit);
                    match optional_single(u, first, last) {
                        // An absent target keeps the length as received (as an offset does).
                        Some(t) => {
                            let fname = ident(&f.name);
                            let tname = ident(t);
                            quote!(if self.#tname.is_some() { #computed } else { self.#fname as u64 })
                        }
                        None => computed,
                    }
                }
            }
            Role::ValueLength {
                path, unit, add, ..
            } => {
                let size = value_path_size(path, *unit, &quote!(self));
                let ub = if *unit == SizeUnit::Elements {
                    1
                } else {
                    unit.bytes()
                };
                let ubl = Literal::usize_unsuffixed(ub as usize);
                quote!({
                    let __size: usize = #size;
                    (#rt::ops::length_of(__size, #add, #ub)
                        .ok_or_else(|| #rt::EncodeError::new(#rt::EncodeErrorKind::NotMultiple { size: __size, unit: #ubl })))
                        #fit
                })
            }
            Role::Offset { target, from, add } => {
                let s = format_ident!("__s_{}", target.trim_start_matches('_'));
                let present = u
                    .fields()
                    .find(|t| t.name == *target)
                    .is_some_and(|t| t.cond.is_some());
                let fname = ident(&f.name);
                let tname = ident(target);
                let computed = quote!((#rt::ops::add(#s as i128 - __w.anchor(#from) as i128, i128::from(#add))
                    .ok_or_else(|| #rt::EncodeError::new(#rt::EncodeErrorKind::OutOfRange { value: i128::MAX, bits: #bits })))
                    #fit);
                if present {
                    quote!(if self.#tname.is_some() { #computed } else { self.#fname as u64 })
                } else {
                    computed
                }
            }
            _ => quote!(0),
        }
    }

    /// Statements that encode the value at `v` (a `&T`).
    fn encode_value(
        &self,
        u: &ir::Unit,
        f: &ir::Field,
        ty: &Ty,
        v: TokenStream,
        phase: Phase,
    ) -> TokenStream {
        let rt = self.rt;
        let info = self.info_ident(u, &f.name);
        match ty {
            Ty::Int { bits, order, .. } => {
                let n = Literal::usize_unsuffixed((*bits / 8) as usize);
                let ut = int_rust(*bits, false);
                match order {
                    Some(o) => {
                        let o = order_tokens(rt, *o);
                        quote!(__w.uint_in(*#v as #ut as u64, #n, #o);)
                    }
                    None => quote!(__w.uint(*#v as #ut as u64, #n);),
                }
            }
            Ty::Enum { bits, flags, .. } => {
                let n = Literal::usize_unsuffixed((*bits / 8) as usize);
                if *flags {
                    quote!(__w.uint(u64::from(#v.0), #n);)
                } else {
                    quote!(__w.uint(u64::from(#v.raw()), #n);)
                }
            }
            Ty::Bytes(BytesSize::Until(d)) => {
                let dl = lit_bytes(d);
                let refuse = invalid(rt, &info, "the value contains its own terminator");
                quote! {
                    if #v.windows(#dl.len()).any(|__x| __x == #dl) { #refuse }
                    __w.bytes(#v);
                    __w.bytes(#dl);
                }
            }
            Ty::Token => {
                let refuse = invalid(
                    rt,
                    &info,
                    "a token must be one or more bytes without spaces",
                );
                quote! {
                    if #v.is_empty() || #v.contains(&b' ') { #refuse }
                    __w.bytes(#v);
                }
            }
            Ty::Bytes(size) => {
                let check = self.size_check(u, &info, size, quote!(#v.len()));
                quote!(#check __w.bytes(#v);)
            }
            Ty::Literal(b) => {
                let b = lit_bytes(b);
                quote!(__w.bytes(#b);)
            }
            Ty::CiLiteral(b) => {
                let b = lit_bytes(b);
                quote!(if #v.is_empty() { __w.bytes(#b); } else { __w.bytes(#v); })
            }
            Ty::OptionalSpaces => {
                let refuse = invalid(rt, &info, "optional whitespace must be spaces or tabs");
                quote! {
                    if #v.iter().any(|__b| *__b != b' ' && *__b != b'\t') { #refuse }
                    __w.bytes(#v);
                }
            }
            Ty::Spaces => {
                let refuse = invalid(rt, &info, "spaces must be spaces");
                quote! {
                    if #v.iter().any(|__b| *__b != b' ') { #refuse }
                    if #v.is_empty() { __w.bytes(b" "); } else { __w.bytes(#v); }
                }
            }
            Ty::Utf16(size) => {
                let check = self.size_check(u, &info, size, quote!(#v.raw.len()));
                quote!(#check __w.bytes(&#v.raw);)
            }
            Ty::Utf16z => {
                let refuse = invalid(rt, &info, "the string contains a NUL, its terminator");
                quote! {
                    if #v.raw.len() % 2 != 0 || #v.raw.chunks_exact(2).any(|__c| __c == [0, 0]) { #refuse }
                    __w.bytes(&#v.raw);
                    __w.bytes(&[0, 0]);
                }
            }
            Ty::Number(_) | Ty::Leaf(_) => {
                quote!(#rt::Leaf::encode(#v, __w).map_err(|e| e.in_field(&#info))?;)
            }
            Ty::Unit { deferred, .. } => {
                if *deferred && phase == Phase::Scalars {
                    quote!(#v.encode_scalars(__w).map_err(|e| e.in_field(&#info))?;)
                } else {
                    quote!(#v.encode_to(__w).map_err(|e| e.in_field(&#info))?;)
                }
            }
            Ty::Ptr(inner) => {
                let pointee = if phase == Phase::Scalars {
                    quote!()
                } else {
                    let e = self.encode_value(u, f, inner, quote!(__p), Phase::Whole);
                    quote!(if let Some(__p) = &#v.value { #e })
                };
                let refuse = invalid(
                    rt,
                    &info,
                    "a null referent must have no pointee, and a pointee needs a referent",
                );
                quote! {
                    if (#v.referent == 0) != #v.value.is_none() { #refuse }
                    __w.uint(u64::from(#v.referent), 4);
                    #pointee
                }
            }
            Ty::Array { elem, .. } => {
                let e = self.encode_value(u, f, elem, quote!(__e), phase);
                quote!(for __e in #v.iter() { #e })
            }
            Ty::Switch(sw) => {
                let name = format_ident!("{}", sw.name);
                let arms = sw.cases.iter().map(|c| {
                    let var = format_ident!("{}", c.name);
                    match &c.ty {
                        None => quote!(#name::#var => {}),
                        Some(t) => {
                            let e = self.encode_value(u, f, t, quote!(__c), phase);
                            quote!(#name::#var(__c) => { #e })
                        }
                    }
                });
                quote!(match #v { #(#arms)* })
            }
        }
    }

    // ------------------------------------------------------------ visit

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

    fn visit_body(&self, u: &ir::Unit, mutable: bool) -> TokenStream {
        let rt = self.rt;
        let mut stmts = Vec::new();
        for item in &u.items {
            if let Item::Align { field, .. } = item {
                let f = ident(field);
                let r = if mutable {
                    quote!(&mut self.#f)
                } else {
                    quote!(&self.#f)
                };
                stmts.push(quote!(__v.field(#field, #rt::Class::Layout, #r);));
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
                    let r = if mutable {
                        quote!(&mut self.#g)
                    } else {
                        quote!(&self.#g)
                    };
                    stmts.push(quote!(__v.field(#name, #rt::Class::Layout, #r);));
                }
                // A view is decoded from gathered bytes and never encoded: rewriting it would
                // change nothing on the wire.
                if !f.stored() || (mutable && f.view.is_some()) {
                    continue;
                }
                let fname = ident(&f.name);
                let class = self.class(u, f);
                let name = f.name.as_str();
                let body = self.visit_value(&f.ty, quote!(__f), name, &class, mutable);
                let r = if mutable {
                    quote!(&mut self.#fname)
                } else {
                    quote!(&self.#fname)
                };
                stmts.push(if f.optional() {
                    quote!(if let Some(__f) = #r { #body })
                } else {
                    quote!({ let __f = #r; #body })
                });
            }
        }
        if u.kind == UnitKind::Line {
            let r = if mutable {
                quote!(&mut self._eol)
            } else {
                quote!(&self._eol)
            };
            stmts.push(quote!(__v.field("_eol", #rt::Class::Layout, #r);));
        }
        quote!(#(#stmts)*)
    }

    /// Visits the value at `v` (`&T` or `&mut T`).
    fn visit_value(
        &self,
        ty: &Ty,
        v: TokenStream,
        name: &str,
        class: &TokenStream,
        mutable: bool,
    ) -> TokenStream {
        let rt = self.rt;
        let (iter, unit_visit) = if mutable {
            (quote!(iter_mut), quote!(visit_fields_mut))
        } else {
            (quote!(iter), quote!(visit_fields))
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
            | Ty::Leaf(_) => quote!(__v.field(#name, #class, #v);),
            Ty::Literal(_) => quote!(),
            Ty::Unit { .. } => quote! {
                __v.enter(#name);
                #v.#unit_visit(__v);
                __v.leave();
            },
            Ty::Ptr(inner) => {
                let inner_v = self.visit_value(
                    inner,
                    quote!(__p),
                    "value",
                    &quote!(#rt::Class::Content),
                    mutable,
                );
                let (r, val) = if mutable {
                    (quote!(&mut #v.referent), quote!(&mut #v.value))
                } else {
                    (quote!(&#v.referent), quote!(&#v.value))
                };
                quote! {
                    __v.enter(#name);
                    __v.field("referent", #class, #r);
                    if let Some(__p) = #val { #inner_v }
                    __v.leave();
                }
            }
            Ty::Array { elem, .. } => {
                // A unit element is a level of the path by its index; a leaf element is `item` in it.
                let e = match &**elem {
                    Ty::Unit { .. } => quote!(__e.#unit_visit(__v);),
                    _ => self.visit_value(elem, quote!(__e), "item", class, mutable),
                };
                quote! {
                    __v.enter(#name);
                    for (__i, __e) in #v.#iter().enumerate() {
                        __v.enter(&__i.to_string());
                        #e
                        __v.leave();
                    }
                    __v.leave();
                }
            }
            Ty::Switch(sw) => {
                let ename = format_ident!("{}", sw.name);
                let arms = sw.cases.iter().map(|c| {
                    let var = format_ident!("{}", c.name);
                    let cname = c.name.as_str();
                    match &c.ty {
                        None => quote!(#ename::#var => { __v.enter(#cname); __v.leave(); }),
                        // A unit case is a level of the path; a leaf case is the leaf itself.
                        Some(t) => {
                            let inner = self.visit_value(t, quote!(__c), cname, class, mutable);
                            quote!(#ename::#var(__c) => { #inner })
                        }
                    }
                });
                quote! {
                    __v.enter(#name);
                    match #v { #(#arms)* }
                    __v.leave();
                }
            }
        }
    }

    // ------------------------------------------------------------ expressions

    /// An expression of the given type, evaluated with checked arithmetic; failures become
    /// decode (or encode) errors.
    fn expr_value(&self, e: &Expr, cx: Cx, _want: ExprTy) -> TokenStream {
        let rt = self.rt;
        let inner = self.expr(e, cx);
        match cx {
            Cx::Decode => quote!((|| Some(#inner))().ok_or_else(|| __r.arithmetic())?),
            Cx::Encode => {
                quote!((|| Some(#inner))().ok_or_else(|| #rt::EncodeError::new(#rt::EncodeErrorKind::Invalid { reason: "expression overflowed".into() }))?)
            }
        }
    }

    /// A switch selector: integers as `i128`, booleans, byte strings as `Bytes`.
    fn expr_any(&self, e: &Expr, cx: Cx) -> TokenStream {
        let inner = self.expr(e, cx);
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
                quote!(#rt::Bytes::copy_from_slice((|| Some(#inner))().ok_or_else(|| __r.arithmetic())?))
            }
            _ => self.expr_value(e, cx, ExprTy::Int),
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
                let base = match cx {
                    Cx::Decode => {
                        let l = local(name);
                        quote!(#l)
                    }
                    Cx::Encode => {
                        let f = ident(name);
                        quote!(self.#f)
                    }
                };
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
            Expr::Remaining => quote!((__r.remaining() as i128)),
            Expr::IsCase { base, case } => {
                let b = self.expr(base, cx);
                quote!((#b.case_name() == #case))
            }
            Expr::Found { root, steps } => {
                let base = match cx {
                    Cx::Decode => {
                        let l = local(root);
                        quote!((&#l))
                    }
                    Cx::Encode => {
                        let f = ident(root);
                        quote!((&self.#f))
                    }
                };
                let walk = self.path_exists(steps, base);
                quote!((|| -> bool { #walk false })())
            }
            Expr::StartsWith(a, b) => {
                let a = self.expr(a, cx);
                let b = self.expr(b, cx);
                quote!(<[u8]>::starts_with(&#a[..], &#b[..]))
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
            Expr::Ahead => quote!(__r.ahead()),
            Expr::NextIs(b) => {
                let l = lit_bytes(b);
                quote!(__r.next_is(#l))
            }
            Expr::Answering => quote!(__r.answering()),
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
                    quote!(__r.recall_int(#n, &#key_bytes))
                } else {
                    quote!(__r.recall(#n, &#key_bytes))
                }
            }
            Expr::Contains(b) => {
                let l = lit_bytes(b);
                quote!(__r.ahead_contains(#l))
            }
            Expr::IsRequest => quote!(__r.is_request()?),
            Expr::Len(inner) => {
                let i = match &**inner {
                    Expr::Field { name, conv } => {
                        let base = match cx {
                            Cx::Decode => {
                                let l = local(name);
                                quote!(#l)
                            }
                            Cx::Encode => {
                                let f = ident(name);
                                quote!(self.#f)
                            }
                        };
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
            Expr::Binary(op, a, b, operand) => {
                let ci = matches!(**a, Expr::CiBytes(_)) || matches!(**b, Expr::CiBytes(_));
                let a = self.expr(a, cx);
                let b = self.expr(b, cx);
                use ir::BinOp::*;
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
                    Eq | Ne if *operand == ExprTy::Bytes => {
                        let t = if ci {
                            quote!(<[u8]>::eq_ignore_ascii_case(&#a[..], &#b[..]))
                        } else {
                            quote!((&#a[..] == &#b[..]))
                        };
                        if *op == Eq {
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
    }
}

/// `i128` (or bytes) value of a stored field; `None` for plain integers (use `i128::from`).
fn conv_value(base: &TokenStream, conv: Conv) -> Option<TokenStream> {
    Some(match conv {
        Conv::Int => quote!(i128::from(#base)),
        Conv::Enum => quote!(i128::from(#base.raw())),
        Conv::Flags => quote!(i128::from(#base.0)),
        Conv::Number => quote!(#base.value()?),
        Conv::Bytes => quote!(&#base[..]),
        Conv::Utf16 => quote!(&#base.raw[..]),
        Conv::Seq | Conv::Unit => return None,
    })
}

/// The size of the value at the end of a nested path, as a `usize` expression.
fn value_path_size(path: &[ir::Step], unit: SizeUnit, recv: &TokenStream) -> TokenStream {
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

/// The target of a length that describes one optional field: absent, the length keeps its value.
fn optional_single<'a>(u: &ir::Unit, first: &'a str, last: &str) -> Option<&'a str> {
    (first == last && u.fields().any(|t| t.name == first && t.cond.is_some())).then_some(first)
}

/// Whether an expression needs what only the decoder has (parameters, the reader).
fn expr_uses_context(e: &Expr) -> bool {
    match e {
        Expr::Param(_)
        | Expr::Remaining
        | Expr::IsRequest
        | Expr::Elem { .. }
        | Expr::NextIs(_)
        | Expr::Ahead
        | Expr::Contains(_)
        | Expr::Answering => true,
        Expr::StartsWith(a, b) | Expr::ByteAt(a, b) => expr_uses_context(a) || expr_uses_context(b),
        Expr::Raw(a) => expr_uses_context(a),
        Expr::Found { .. } => false,
        Expr::Unary(_, a) | Expr::Len(a) => expr_uses_context(a),
        Expr::IsCase { base, .. } => expr_uses_context(base),
        Expr::Member { base, .. } => expr_uses_context(base),
        Expr::Binary(_, a, b, _) => expr_uses_context(a) || expr_uses_context(b),
        _ => false,
    }
}

/// Whether an expression reads a length, count or offset of the unit (recomputed on encode,
/// so its stored value may be stale).
fn expr_names_derived(e: &Expr, u: &ir::Unit) -> bool {
    match e {
        Expr::Field { name, .. } => u.fields().any(|f| f.name == *name && f.derived().is_some()),
        Expr::Unary(_, a) | Expr::Len(a) => expr_names_derived(a, u),
        Expr::IsCase { base, .. } | Expr::Raw(base) => expr_names_derived(base, u),
        Expr::StartsWith(a, b) | Expr::ByteAt(a, b) => {
            expr_names_derived(a, u) || expr_names_derived(b, u)
        }
        Expr::Member { base, .. } => expr_names_derived(base, u),
        Expr::Binary(_, a, b, _) => expr_names_derived(a, u) || expr_names_derived(b, u),
        _ => false,
    }
}

fn invalid(rt: &TokenStream, info: &proc_macro2::Ident, reason: &str) -> TokenStream {
    quote! {
        return Err(#rt::EncodeError::new(#rt::EncodeErrorKind::Invalid { reason: #reason.into() }).in_field(&#info));
    }
}

fn pat_test(p: &Pat, s: &proc_macro2::Ident) -> TokenStream {
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
            quote!(&#s[..] == &#l[..])
        }
        Pat::CiBytes(b) => {
            let l = lit_bytes(b);
            quote!(#s.eq_ignore_ascii_case(#l))
        }
    }
}

fn docs_of(lines: &[String]) -> TokenStream {
    docs(lines)
}

fn collect_switches<'a>(ty: &'a Ty, out: &mut Vec<&'a ir::Switch>) {
    match ty {
        Ty::Switch(sw) => {
            out.push(sw);
            for c in &sw.cases {
                if let Some(t) = &c.ty {
                    collect_switches(t, out);
                }
            }
        }
        Ty::Array { elem, .. } => collect_switches(elem, out),
        Ty::Ptr(inner) => collect_switches(inner, out),
        _ => {}
    }
}

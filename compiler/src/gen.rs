//! Rust code generation from the IR, with `quote`. One module of code per protocol; the
//! output is parsed with `syn` and formatted with `prettyplease` by the caller.
//!
//! The code reads like a hand-written codec (after `prost-build`): the runtime's codec module
//! is `rt`, and what every field would repeat (limits, arrays, checks, slots for lengths, visit
//! levels) is a runtime method. Decoders are in `decode`, encoders in `encode`, visitors in
//! `visit`, expressions in `expr`, `@size` paths in `paths`.

mod decode;
mod encode;
mod expr;
mod paths;
mod run;
mod visit;
mod wire;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::ir::{self, ByteOrder, Conv, ExprTy, Item, Role, Ty, TypeRef, UnitKind};

/// Generates the code of one protocol. `runtime` is the path of the runtime's codec module,
/// which the code names `rt`.
pub fn protocol(p: &ir::Protocol, runtime: &TokenStream) -> TokenStream {
    let rt = &quote!(rt);
    let g = Gen { p, rt };
    let consts = p.consts.iter().map(|c| {
        let name = format_ident!("{}", c.name);
        let docs = docs(&c.docs);
        let v = Literal::i128_suffixed(c.value);
        quote! { #docs pub const #name: i128 = #v; }
    });
    let enums = p.enums.iter().map(|e| g.enum_def(e));
    let units = p.units.iter().map(|u| g.unit(u));
    let framings = p.framings.iter().map(|ir::Framing { unit: f, .. }| {
        let ty = format_ident!("{}", f);
        let codec = format_ident!("{}Codec", f);
        let doc = format!(" Frames a byte stream into [`{f}`] messages (`tokio_util::codec`).");
        quote! {
            #[doc = #doc]
            pub type #codec = #rt::FrameCodec<#ty>;
        }
    });
    let (proto, file) = (&p.name, format!("{}:", p.file));
    quote! {
        #[allow(unused_imports)]
        use #runtime::{self as rt, FieldValue as _, InField as _, Message as _};
        /// The static facts of a field of this protocol: unit, field, `line:col`, role.
        #[allow(unused_macros)]
        macro_rules! field_info {
            ($unit:literal, $field:literal, $at:literal $(, $role:ident)?) => {
                rt::FieldInfo {
                    protocol: #proto,
                    unit: $unit,
                    field: $field,
                    location: concat!(#file, $at),
                    role: field_info!(@role $($role)?),
                }
            };
            (@role) => { None };
            (@role $role:ident) => { Some(&$role) };
        }
        /// A unit without parameters is a message: `rt::Message` by its inherent functions.
        #[allow(unused_macros)]
        macro_rules! message {
            ($unit:ident, $name:literal) => {
                impl rt::Message for $unit {
                    const NAME: &'static str = $name;
                    fn decode_from_reader(r: &mut rt::Reader) -> Result<Self, rt::DecodeError> {
                        Self::decode_from(r)
                    }
                    fn encode_to_writer(&self, w: &mut rt::Writer) -> Result<(), rt::EncodeError> {
                        self.encode_to(w)
                    }
                    fn visit(&self, v: &mut dyn rt::Visitor) {
                        self.visit_fields(v)
                    }
                    fn visit_mut(&mut self, v: &mut dyn rt::VisitorMut) {
                        self.visit_fields_mut(v)
                    }
                }
            };
        }
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

/// A match arm's body: a lone statement as the arm's expression (`X(c) => f(c),`), more
/// as a block.
fn arm(body: TokenStream) -> TokenStream {
    if let Ok(block) = syn::parse2::<syn::Block>(quote!({ #body })) {
        if let [syn::Stmt::Expr(e, Some(_))] = block.stmts.as_slice() {
            return quote!(#e,);
        }
    }
    quote!({ #body })
}

/// An integer literal without a suffix (the type comes from where it is used).
fn num(v: impl Into<i128>) -> Literal {
    Literal::i128_unsuffixed(v.into())
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

/// How a unit begins and ends in the reader or writer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// It pushes anchors, so its end must drop them.
    Anchored,
    /// One level deeper, in its own byte order (most units).
    Plain,
    /// Nothing: a leaf (see [`is_leaf`]) nests nothing, so it adds no depth worth counting,
    /// and none of its fields reads the byte order around it (SMB's dialects).
    Bare,
}

fn scope(u: &ir::Unit) -> Scope {
    if u.items.iter().any(|i| matches!(i, ir::Item::Anchor(_))) {
        Scope::Anchored
    } else if is_leaf(u) && u.fields().all(|f| !reads_order(&f.ty)) {
        Scope::Bare
    } else {
        Scope::Plain
    }
}

/// A field of this type reads or writes in the byte order around it (conservatively: any
/// type but single bytes, integers of their own order, byte strings and literals).
fn reads_order(ty: &Ty) -> bool {
    match ty {
        Ty::Int { bits, order, .. } => *bits > 8 && order.is_none(),
        Ty::Enum { bits, .. } => *bits > 8,
        Ty::Bytes(_) | Ty::Literal(_) | Ty::CiLiteral(_) => false,
        _ => true,
    }
}

/// A unit of a few plain fields (no units, arrays, switches or pointers inside it, nothing
/// conditional or remembered), decoded and encoded where it is used (array elements, such as
/// SMB's dialects): a call per element would cost more than the element.
fn is_leaf(u: &ir::Unit) -> bool {
    const MAX_FIELDS: usize = 4;
    u.kind != ir::UnitKind::Line
        && u.items.len() <= MAX_FIELDS
        && u.items.iter().all(|i| match i {
            ir::Item::Field(f) => {
                f.cond.is_none()
                    && f.view.is_none()
                    && f.remember.is_none()
                    && f.size_from.is_none()
                    && f.located.is_none()
                    && !matches!(
                        f.ty,
                        Ty::Unit { .. } | Ty::Array { .. } | Ty::Switch(_) | Ty::Ptr(_)
                    )
            }
            _ => false,
        })
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

/// Where a value is: a place (`self.name`), or a reference bound to it (`__f`).
#[derive(Clone)]
enum Place {
    At(TokenStream),
    Ref(TokenStream),
}

impl Place {
    fn ident(name: &str) -> Place {
        let i = format_ident!("{}", name);
        Place::Ref(quote!(#i))
    }

    /// The value, for `Copy` types.
    fn copied(&self) -> TokenStream {
        match self {
            Place::At(p) => p.clone(),
            Place::Ref(r) => quote!(*#r),
        }
    }

    /// A reference to the value.
    fn by_ref(&self) -> TokenStream {
        match self {
            Place::At(p) => quote!(&#p),
            Place::Ref(r) => r.clone(),
        }
    }

    /// A reference to the value, `&mut` when `mutable`.
    fn borrowed(&self, mutable: bool) -> TokenStream {
        match self {
            Place::At(p) if mutable => quote!(&mut #p),
            Place::At(p) => quote!(&#p),
            Place::Ref(r) => r.clone(),
        }
    }

    /// The value as the receiver of a method call or a field access.
    fn recv(&self) -> TokenStream {
        match self {
            Place::At(p) | Place::Ref(p) => p.clone(),
        }
    }
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
                #[inline]
                pub const fn from_raw(v: #repr) -> Self {
                    match v { #(#from,)* other => Self::Unknown(other) }
                }
                #[inline]
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
                pub fn decode_from(r: &mut #rt::Reader #(, #params)*) -> Result<Self, #rt::DecodeError> {
                    let mut __s = Self::decode_scalars(r #(, #param_names)*)?;
                    __s.decode_deferred(r)?;
                    Ok(__s)
                }
                /// Decodes the scalars only; pointers keep their referent ids and no value.
                pub fn decode_scalars(r: &mut #rt::Reader #(, #params)*) -> Result<Self, #rt::DecodeError> { #scalars }
                /// Decodes the deferred pointees, in the order of their pointers.
                pub fn decode_deferred(&mut self, r: &mut #rt::Reader) -> Result<(), #rt::DecodeError> { #deferred }
                pub fn encode_to(&self, w: &mut #rt::Writer) -> Result<(), #rt::EncodeError> {
                    self.encode_scalars(w)?;
                    self.encode_deferred(w)
                }
                pub fn encode_scalars(&self, w: &mut #rt::Writer) -> Result<(), #rt::EncodeError> { #enc_scalars }
                pub fn encode_deferred(&self, w: &mut #rt::Writer) -> Result<(), #rt::EncodeError> { #enc_deferred }
            }
        } else {
            let (inline_decode, inline) = if is_leaf(u) {
                (quote!(#[inline(always)]), quote!(#[inline]))
            } else {
                (quote!(), quote!())
            };
            quote! {
                /// Decodes the unit at the reader's position.
                #inline_decode
                pub fn decode_from(r: &mut #rt::Reader #(, #params)*) -> Result<Self, #rt::DecodeError> { #decode_body }
                /// Encodes the unit, recomputing its lengths, counts and offsets.
                #inline
                pub fn encode_to(&self, w: &mut #rt::Writer) -> Result<(), #rt::EncodeError> { #encode_body }
            }
        };
        let message = if u.params.is_empty() {
            let full = format!("{}.{}", self.p.name, u.name);
            quote!(message!(#name, #full);)
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
                /// Shows every leaf field to `v`.
                pub fn visit_fields(&self, v: &mut dyn #rt::Visitor) { #visit }
                /// Lets `v` rewrite leaf fields in place.
                pub fn visit_fields_mut(&mut self, v: &mut dyn #rt::VisitorMut) { #visit_mut }
            }
            #message
            #(#switches)*
        }
    }

    /// The byte order a unit of this protocol declares (`Option<ByteOrder>`).
    fn unit_order(&self) -> TokenStream {
        match self.p.order {
            Some(o) => {
                let o = order_tokens(self.rt, o);
                quote!(Some(#o))
            }
            None => quote!(None),
        }
    }

    /// Sets the byte order of `rw` (the reader or the writer), perhaps by a condition.
    fn order_stmt(
        &self,
        rw: TokenStream,
        order: ByteOrder,
        cond: Option<&(ir::Expr, ByteOrder)>,
        cx: Cx,
    ) -> TokenStream {
        let o = order_tokens(self.rt, order);
        match cond {
            None => quote!(#rw.set_order(#o);),
            Some((c, other)) => {
                let other = order_tokens(self.rt, *other);
                let c = self.expr_value(c, cx, ExprTy::Bool);
                quote!(#rw.set_order(if #c { #o } else { #other });)
            }
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
        let prefix = format!("{}:", self.p.file);
        match location.strip_prefix(&prefix) {
            Some(at) if has_role => {
                let r = self.role_ident(u, field);
                quote!(static #id: #rt::FieldInfo = field_info!(#unit, #field, #at, #r);)
            }
            Some(at) => quote!(static #id: #rt::FieldInfo = field_info!(#unit, #field, #at);),
            None => quote! {
                static #id: #rt::FieldInfo = #rt::FieldInfo { protocol: #proto, unit: #unit, field: #field, location: #location, role: #role };
            },
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

/// The target of a length that describes one optional field: absent, the length keeps its value.
fn optional_single<'a>(u: &ir::Unit, first: &'a str, last: &str) -> Option<&'a str> {
    (first == last && u.fields().any(|t| t.name == first && t.cond.is_some())).then_some(first)
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

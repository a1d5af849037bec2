//! Semantic analysis: from parsed files to the checked [`ir::Program`].
//!
//! Resolves type names across imports, ties every role to the field it governs (a length
//! becomes a decode limit around its target and a patch on encode), packs bit fields into whole
//! bytes, makes layout explicit, and reports every problem with its span.

use std::collections::{HashMap, HashSet};

use protodsl_grammar::ast::{self, ItemKind, StmtKind, TypeKind};
use protodsl_grammar::{Diagnostic, Diagnostics, Source};

use crate::ir::{self, Conv, ExprTy, Ty, TypeRef};
use crate::load::Loaded;

/// Checks loaded files (imports first) and lowers them to the IR.
pub fn check(files: &[Loaded]) -> Result<ir::Program, Diagnostics> {
    let mut cx = Checker {
        files,
        protos: HashMap::new(),
        diags: Diagnostics::default(),
        sizes: Vec::new(),
        cases: Vec::new(),
    };
    for (i, f) in files.iter().enumerate() {
        cx.collect(i, f);
    }
    let mut protocols: Vec<ir::Protocol> = files.iter().map(|f| cx.lower_protocol(f)).collect();
    if cx.diags.is_empty() {
        cx.resolve_sizes(&mut protocols);
        cx.resolve_cases(&protocols);
    }
    if cx.diags.is_empty() {
        finish(&mut protocols);
    }
    if cx.diags.is_empty() {
        Ok(ir::Program { protocols })
    } else {
        Err(cx.diags)
    }
}

struct ProtoSyms<'a> {
    file: &'a Loaded,
    imports: HashSet<String>,
    units: HashMap<String, &'a ast::UnitDef>,
    enums: HashMap<String, &'a ast::EnumDef>,
    consts: HashMap<String, &'a ast::Expr>,
    order: Option<ast::ByteOrder>,
    text: ir::TextConfig,
}

struct Checker<'a> {
    files: &'a [Loaded],
    protos: HashMap<String, ProtoSyms<'a>>,
    diags: Diagnostics,
    /// `@size(path)` roles, resolved once every unit is lowered.
    sizes: Vec<PendingSize>,
    /// `is(field, Case)` in expressions, checked once every unit is lowered.
    cases: Vec<PendingCase>,
}

struct PendingCase {
    unit: TypeRef,
    field: String,
    case: String,
    src: Source,
    span: ast::Span,
}

struct PendingSize {
    protocol: String,
    unit: String,
    field: String,
    root: (String, TypeRef),
    segments: Vec<ast::Ident>,
    src: Source,
    span: ast::Span,
}

/// File name used in runtime locations: the file name only, so generated code does not
/// depend on where the checkout lives.
fn short_location(src: &Source, offset: usize) -> String {
    let (line, col) = src.line_col(offset);
    let name = src.path.file_name().map_or_else(
        || src.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!("{name}:{line}:{col}")
}

const BUILTIN_TYPES: &[&str] = &[
    "bytes",
    "utf16",
    "utf16z",
    "cstring",
    "sp",
    "ows",
    "token",
    "number",
    "host_port",
    "dotted_quad",
    "dot_stuffed",
    "chunked",
    "enhanced_status",
    "dated_text",
];

/// Built-in leaf types the runtime provides: DSL name, runtime type, and what they are (for the
/// message when one is given a size).
const LEAVES: &[(&str, &str, &str)] = &[
    ("host_port", "HostPort", "host_port"),
    ("dotted_quad", "Ipv4Text", "dotted_quad"),
    (
        "dot_stuffed",
        "DotStuffed",
        "dot_stuffed (it ends at a line holding a single `.`)",
    ),
    ("enhanced_status", "EnhancedStatus", "enhanced_status"),
    (
        "dated_text",
        "DatedText",
        "dated_text (it takes the rest of the line)",
    ),
    ("chunked", "Chunked", "chunked (it ends at its last chunk)"),
];

/// `u8`, `u17`, `i32`, `u16le`, `u32be`.
fn int_type(name: &str) -> Option<(u32, bool, Option<ast::ByteOrder>)> {
    let (signed, rest) = match name.as_bytes().first()? {
        b'u' => (false, &name[1..]),
        b'i' => (true, &name[1..]),
        _ => return None,
    };
    let (digits, order) = if let Some(d) = rest.strip_suffix("le") {
        (d, Some(ast::ByteOrder::Little))
    } else if let Some(d) = rest.strip_suffix("be") {
        (d, Some(ast::ByteOrder::Big))
    } else {
        (rest, None)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    let bits: u32 = digits.parse().ok()?;
    Some((bits, signed, order))
}

fn camel(s: &str) -> String {
    s.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
        })
        .collect()
}

impl<'a> Checker<'a> {
    fn err(&mut self, src: &Source, span: ast::Span, msg: impl Into<String>) {
        self.diags.push(Diagnostic::new(src, span, msg));
    }

    fn err_hint(
        &mut self,
        src: &Source,
        span: ast::Span,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::new(src, span, msg).with_hint(hint));
    }

    fn collect(&mut self, _i: usize, f: &'a Loaded) {
        let src = &f.source;
        let mut syms = ProtoSyms {
            file: f,
            imports: HashSet::new(),
            units: HashMap::new(),
            enums: HashMap::new(),
            consts: HashMap::new(),
            order: Some(ast::ByteOrder::Big),
            text: ir::TextConfig {
                terminator: b"\r\n".to_vec(),
                max_line: 4096,
            },
        };
        let mut names: HashMap<&str, ast::Span> = HashMap::new();
        let mut dup = |cx: &mut Self, name: &'a ast::Ident| {
            if let Some(first) = names.insert(&name.name, name.span) {
                let (l, c) = src.line_col(first.start);
                cx.err_hint(
                    src,
                    name.span,
                    format!("`{}` is defined twice", name.name),
                    format!("first defined at line {l}, column {c}"),
                );
                false
            } else if BUILTIN_TYPES.contains(&name.name.as_str()) || int_type(&name.name).is_some()
            {
                cx.err(
                    src,
                    name.span,
                    format!("`{}` is a built-in type and cannot be redefined", name.name),
                );
                false
            } else {
                true
            }
        };
        for item in &f.ast.items {
            match &item.kind {
                ItemKind::Import(n) => {
                    syms.imports.insert(n.name.clone());
                }
                ItemKind::DefaultOrder(o) => syms.order = *o,
                ItemKind::Text { terminator, max } => {
                    syms.text = ir::TextConfig {
                        terminator: terminator.clone(),
                        max_line: *max,
                    }
                }
                ItemKind::Const { name, value } => {
                    if dup(self, name) {
                        syms.consts.insert(name.name.clone(), value);
                    }
                }
                ItemKind::Enum(e) => {
                    if dup(self, &e.name) {
                        syms.enums.insert(e.name.name.clone(), e);
                    }
                }
                ItemKind::Unit(u) => {
                    if dup(self, &u.name) {
                        syms.units.insert(u.name.name.clone(), u);
                    }
                }
                ItemKind::Framing(_) => {}
            }
        }
        self.protos.insert(f.ast.protocol.name.clone(), syms);
    }

    fn lower_protocol(&mut self, f: &'a Loaded) -> ir::Protocol {
        let pname = f.ast.protocol.name.clone();
        let src = f.source.clone();
        let mut out = ir::Protocol {
            name: pname.clone(),
            file: src
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            docs: f.ast.docs.clone(),
            order: self.protos[&pname].order,
            text: self.protos[&pname].text.clone(),
            consts: Vec::new(),
            enums: Vec::new(),
            units: Vec::new(),
            framings: Vec::new(),
        };
        for item in &f.ast.items {
            match &item.kind {
                ItemKind::Const { name, value } => {
                    let scope = Scope::constants(&pname);
                    if let Some(v) = self.const_eval(&src, &scope, value, &mut Vec::new()) {
                        out.consts.push(ir::Const {
                            name: name.name.clone(),
                            docs: item.docs.clone(),
                            value: v,
                        });
                    }
                }
                ItemKind::Enum(e) => {
                    if let Some(en) = self.lower_enum(&src, item, e) {
                        out.enums.push(en);
                    }
                }
                ItemKind::Unit(u) => {
                    let mut ucx = UnitCx::new(&pname, &src, &u.name.name);
                    let unit = self.lower_unit(
                        &mut ucx,
                        &u.name.name,
                        &item.docs,
                        &u.params,
                        u.kind.as_ref(),
                        &u.body,
                        item.span,
                    );
                    out.units.extend(ucx.extra);
                    out.units.extend(unit);
                }
                ItemKind::Framing(path) => {
                    if let Some(TypeRef { protocol, name }) = self.resolve_unit(&src, &pname, path)
                    {
                        if protocol != pname {
                            self.err(
                                &src,
                                path.span,
                                "a framing must name a unit of this protocol",
                            );
                        } else if !self.protos[&pname].units[&name].params.is_empty() {
                            self.err(
                                &src,
                                path.span,
                                format!("`{name}` has parameters, so it cannot frame a stream"),
                            );
                        } else {
                            out.framings.push(name);
                        }
                    }
                }
                ItemKind::Import(_) | ItemKind::DefaultOrder(_) | ItemKind::Text { .. } => {}
            }
        }
        out
    }

    fn lower_enum(&mut self, src: &Source, item: &ast::Item, e: &ast::EnumDef) -> Option<ir::Enum> {
        let bits = match int_type(&e.repr.name) {
            Some((b @ (8 | 16 | 32 | 64), false, None)) => b,
            _ => {
                self.err_hint(
                    src,
                    e.repr.span,
                    format!("`{}` cannot hold an enum", e.repr.name),
                    "use u8, u16, u32 or u64",
                );
                return None;
            }
        };
        let mut seen = HashMap::new();
        let mut variants = Vec::new();
        for v in &e.variants {
            if seen.insert(v.name.name.clone(), ()).is_some() {
                self.err(
                    src,
                    v.name.span,
                    format!("variant `{}` is defined twice", v.name.name),
                );
            }
            if v.value < 0 || (bits < 64 && v.value >= 1i128 << bits) || v.value > u64::MAX as i128
            {
                self.err(
                    src,
                    v.span,
                    format!("{} does not fit in {}", v.value, e.repr.name),
                );
            }
            variants.push(ir::Variant {
                name: v.name.name.clone(),
                docs: v.docs.clone(),
                value: v.value,
            });
        }
        Some(ir::Enum {
            name: e.name.name.clone(),
            docs: item.docs.clone(),
            bits,
            is_flags: e.is_flags,
            variants,
        })
    }

    fn resolve_unit(&mut self, src: &Source, proto: &str, path: &ast::Path) -> Option<TypeRef> {
        let target_proto = self.target_protocol(src, proto, path)?;
        if self.protos[&target_proto]
            .units
            .contains_key(&path.name.name)
        {
            Some(TypeRef {
                protocol: target_proto,
                name: path.name.name.clone(),
            })
        } else {
            self.err(src, path.name.span, format!("unknown unit `{path}`"));
            None
        }
    }

    fn target_protocol(&mut self, src: &Source, proto: &str, path: &ast::Path) -> Option<String> {
        match &path.protocol {
            None => Some(proto.to_string()),
            Some(p) if p.name == proto => Some(proto.to_string()),
            Some(p)
                if self.protos[proto].imports.contains(&p.name)
                    && self.protos.contains_key(&p.name) =>
            {
                Some(p.name.clone())
            }
            Some(p) => {
                self.err_hint(
                    src,
                    p.span,
                    format!("unknown protocol `{}`", p.name),
                    format!("add `import {};`", p.name),
                );
                None
            }
        }
    }

    // ---------------------------------------------------------------- units

    #[allow(clippy::too_many_arguments)]
    fn lower_unit(
        &mut self,
        ucx: &mut UnitCx,
        name: &str,
        docs: &[String],
        params: &[ast::Param],
        kind: Option<&ast::Ident>,
        body: &[ast::Stmt],
        span: ast::Span,
    ) -> Option<ir::Unit> {
        let src = ucx.src.clone();
        let kind = match kind.map(|k| k.name.as_str()) {
            None => ir::UnitKind::Plain,
            Some("line") => ir::UnitKind::Line,
            Some("deferred") => ir::UnitKind::Deferred,
            Some(other) => {
                let k = kind.expect("some");
                self.err_hint(
                    &src,
                    k.span,
                    format!("unknown unit kind `{other}`"),
                    "the kinds are `line` and `deferred`",
                );
                ir::UnitKind::Plain
            }
        };
        let mut uparams = Vec::new();
        for p in params {
            let ty = match p.ty.name.as_str() {
                "bool" => ExprTy::Bool,
                "bytes" => ExprTy::Bytes,
                n if int_type(n).is_some() => ExprTy::Int,
                _ => {
                    self.err_hint(
                        &src,
                        p.ty.span,
                        format!("unknown parameter type `{}`", p.ty.name),
                        "parameters are integers (u8..u64), bool or bytes",
                    );
                    ExprTy::Int
                }
            };
            uparams.push((p.name.name.clone(), ty));
        }
        let mut u = UnitBody::new(&ucx.proto, name, uparams.clone());
        let before = self.diags.len();
        self.collect_fields(ucx, &mut u, body);
        for stmt in body {
            self.lower_stmt(ucx, &mut u, stmt);
        }
        self.flush_bits(&src, &mut u);
        if self.diags.len() > before {
            return None;
        }
        let measured = u.measured.iter().cloned().collect();
        Some(ir::Unit {
            name: name.to_string(),
            docs: docs.to_vec(),
            params: uparams,
            kind,
            items: u.items,
            has_deferred: false,
            measured,
            location: short_location(&src, span.start),
        })
    }

    /// First pass over a unit: field names (duplicates), and what each role says about its
    /// target, so that a target can be sized when it is reached.
    fn collect_fields(&mut self, ucx: &UnitCx, u: &mut UnitBody, body: &[ast::Stmt]) {
        let src = ucx.src.clone();
        let mut order = Vec::new();
        for stmt in body {
            if let StmtKind::Field(f) = &stmt.kind {
                if let Some(n) = &f.name {
                    if let Some(first) = u.names.get(&n.name) {
                        let (l, c) = src.line_col(first.start);
                        self.err_hint(
                            &src,
                            n.span,
                            format!("field `{}` is defined twice", n.name),
                            format!("first defined at line {l}, column {c}"),
                        );
                    } else {
                        u.names.insert(n.name.clone(), n.span);
                        order.push(n.name.clone());
                    }
                }
            }
        }
        let index = |name: &str| order.iter().position(|n| n == name);
        for stmt in body {
            let StmtKind::Field(f) = &stmt.kind else {
                continue;
            };
            let Some(fname) = &f.name else {
                if let Some(r) = f.roles.first() {
                    self.err(&src, r.span, "a field with a role needs a name");
                }
                continue;
            };
            for role in &f.roles {
                match role.name.name.as_str() {
                    "length" | "count" => {
                        let Some(of) = role_arg(role, "of", 0) else {
                            if role.name.name == "length" && role.args.is_empty() {
                                continue; // a size held for a `@size` elsewhere
                            }
                            self.err_hint(&src, role.span, format!("@{} needs a target", role.name.name), "write `of = field`, or `@length` alone on a number that a `@size` path reaches");
                            continue;
                        };
                        let is_hint = role.args.iter().any(|a| {
                            a.key.is_none() && matches!(&a.value, ast::RoleValue::Dotted(p) if p.len() == 1 && p[0].name == "hint")
                        });
                        if is_hint {
                            u.hints.insert(fname.name.clone());
                        }
                        let (first, last) = match &of.value {
                            ast::RoleValue::Dotted(p) if p.len() > 1 => {
                                u.nested_lengths.push((
                                    fname.name.clone(),
                                    r_index(role),
                                    p.clone(),
                                ));
                                continue;
                            }
                            ast::RoleValue::Dotted(p) if p.len() == 1 => {
                                (p[0].clone(), p[0].clone())
                            }
                            ast::RoleValue::Range(a, b) if a.len() == 1 && b.len() == 1 => {
                                (a[0].clone(), b[0].clone())
                            }
                            _ => {
                                self.err_hint(
                                    &src,
                                    of.span,
                                    "the target of a length must be a field of this unit",
                                    "write `of = field` or `of = first .. last`",
                                );
                                continue;
                            }
                        };
                        let mut ok = true;
                        let ends: &[&ast::Ident] = if first.name == last.name {
                            &[&first]
                        } else {
                            &[&first, &last]
                        };
                        for t in ends {
                            if index(&t.name).is_none() {
                                self.err_hint(
                                    &src,
                                    t.span,
                                    format!("unknown field `{}` in @{}", t.name, role.name.name),
                                    format!("the fields of this unit are: {}", order.join(", ")),
                                );
                                ok = false;
                            }
                        }
                        if !ok {
                            continue;
                        }
                        if index(&first.name) > index(&last.name) {
                            self.err(
                                &src,
                                of.span,
                                format!("`{}` comes after `{}`", first.name, last.name),
                            );
                            continue;
                        }
                        let unit = if role.name.name == "count" {
                            ir::SizeUnit::Elements
                        } else {
                            match role_arg(role, "unit", usize::MAX).map(|a| &a.value) {
                                None => ir::SizeUnit::Bytes,
                                Some(ast::RoleValue::Dotted(p)) if p.len() == 1 => {
                                    match p[0].name.as_str() {
                                        "bytes" => ir::SizeUnit::Bytes,
                                        "elements" => ir::SizeUnit::Elements,
                                        "words" => ir::SizeUnit::Words,
                                        other => {
                                            self.err_hint(
                                                &src,
                                                p[0].span,
                                                format!("unknown length unit `{other}`"),
                                                "the units are bytes, elements and words",
                                            );
                                            continue;
                                        }
                                    }
                                }
                                Some(_) => {
                                    self.err(
                                        &src,
                                        role.span,
                                        "the unit of a length is bytes, elements or words",
                                    );
                                    continue;
                                }
                            }
                        };
                        if unit == ir::SizeUnit::Elements && first.name != last.name {
                            self.err(&src, of.span, "a count takes one field, not a range");
                            continue;
                        }
                        let add = self.role_int(&src, role, "add").unwrap_or(0);
                        let hint = role.args.iter().any(|a| {
                            a.key.is_none() && matches!(&a.value, ast::RoleValue::Dotted(p) if p.len() == 1 && p[0].name == "hint")
                        });
                        if hint {
                            u.hints.insert(fname.name.clone());
                        }
                        let counted = u
                            .sized_by
                            .get(&first.name)
                            .is_some_and(|v| v.iter().any(|s| s.unit == ir::SizeUnit::Elements));
                        let governs = !hint
                            && index(&fname.name) < index(&first.name)
                            && !(counted
                                || (unit == ir::SizeUnit::Elements
                                    && u.sized_by.contains_key(&first.name)));
                        let inclusive = !hint
                            && index(&fname.name) > index(&first.name)
                            && index(&fname.name) < index(&last.name);
                        let info = SizedBy {
                            length_field: fname.name.clone(),
                            last: last.name.clone(),
                            unit,
                            add,
                            last_index: index(&last.name).unwrap_or(0),
                        };
                        if governs {
                            let v = u.sized_by.entry(first.name.clone()).or_default();
                            v.push(info.clone());
                            v.sort_by_key(|s| std::cmp::Reverse(s.last_index));
                        }
                        if inclusive && unit != ir::SizeUnit::Elements {
                            u.marks.insert(first.name.clone());
                            u.inclusive
                                .insert(fname.name.clone(), (first.name.clone(), info.clone()));
                        }
                        u.lengths.push((fname.name.clone(), first.clone(), info));
                    }
                    "offset" => {
                        let target = match role_arg(role, "of", 0).map(|a| &a.value) {
                            Some(ast::RoleValue::Dotted(p)) if p.len() == 1 => p[0].clone(),
                            _ => {
                                self.err_hint(
                                    &src,
                                    role.span,
                                    "@offset needs a target field of this unit",
                                    "write `@offset(of = field, from = anchor)`",
                                );
                                continue;
                            }
                        };
                        if index(&target.name).is_none() {
                            self.err_hint(
                                &src,
                                target.span,
                                format!("unknown field `{}` in @offset", target.name),
                                format!("the fields of this unit are: {}", order.join(", ")),
                            );
                            continue;
                        }
                        if index(&target.name) <= index(&fname.name) {
                            self.err(
                                &src,
                                target.span,
                                format!(
                                    "`{}` must come after the offset that locates it",
                                    target.name
                                ),
                            );
                            continue;
                        }
                        let from = match role_arg(role, "from", 1).map(|a| &a.value) {
                            Some(ast::RoleValue::Dotted(p)) if p.len() == 1 => p[0].name.clone(),
                            None => String::new(),
                            Some(_) => {
                                self.err(&src, role.span, "`from` names an anchor");
                                continue;
                            }
                        };
                        let add = self.role_int(&src, role, "add").unwrap_or(0);
                        if u.located
                            .insert(target.name.clone(), (fname.name.clone(), from, add))
                            .is_some()
                        {
                            self.err(
                                &src,
                                target.span,
                                format!("`{}` is located by two offsets", target.name),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// `@remember(name, key)`: the key is a field decoded before, or a parameter.
    fn lower_remember(
        &mut self,
        src: &Source,
        ucx: &UnitCx,
        u: &UnitBody,
        r: &ast::Role,
    ) -> Option<(String, ir::Expr, ExprTy)> {
        let (name, key) = match r.args.as_slice() {
            [ast::RoleArg {
                key: None,
                value: ast::RoleValue::Dotted(n),
                ..
            }, ast::RoleArg {
                key: None,
                value: ast::RoleValue::Dotted(k),
                span: kspan,
            }] if n.len() == 1 && k.len() == 1 => (
                n[0].name.clone(),
                ast::Expr {
                    kind: ast::ExprKind::Path(ast::Path {
                        protocol: None,
                        name: k[0].clone(),
                        span: *kspan,
                    }),
                    span: *kspan,
                },
            ),
            [ast::RoleArg {
                key: None,
                value: ast::RoleValue::Dotted(n),
                ..
            }, ast::RoleArg {
                key: None,
                value: ast::RoleValue::Expr(k),
                ..
            }] if n.len() == 1 => (n[0].name.clone(), k.clone()),
            [ast::RoleArg {
                key: None,
                value: ast::RoleValue::Dotted(n),
                ..
            }, ast::RoleArg {
                key: None,
                value: ast::RoleValue::Int(k),
                span: kspan,
            }] if n.len() == 1 => (
                n[0].name.clone(),
                ast::Expr {
                    kind: ast::ExprKind::Int(*k),
                    span: *kspan,
                },
            ),
            _ => {
                self.err_hint(
                    src,
                    r.span,
                    "@remember takes a name and a key",
                    "write `@remember(interface, context_id)`",
                );
                return None;
            }
        };
        let scope = Scope::unit(&ucx.proto, u, true);
        let (e, ty) = self.lower_expr(src, &scope, &key)?;
        if ty == ExprTy::Bool {
            self.err(src, key.span, "a memory key is a number or bytes");
            return None;
        }
        Some((name, e, ty))
    }

    /// `@size(root.a.b)`: checks the root (an earlier unit field) now, the rest once every unit
    /// is lowered.
    fn pending_size(&mut self, ucx: &UnitCx, u: &UnitBody, field: &str, r: &ast::Role) {
        let src = ucx.src.clone();
        let segments = match r.args.as_slice() {
            [ast::RoleArg {
                key: None,
                value: ast::RoleValue::Dotted(p),
                ..
            }] if p.len() >= 2 => p.clone(),
            _ => {
                self.err_hint(
                    &src,
                    r.span,
                    "@size takes a path to the field that holds the size",
                    "write `@size(head.content_length)`",
                );
                return;
            }
        };
        let root = &segments[0];
        let Some(sym) = u.scope.get(&root.name) else {
            let msg = if u.names.contains_key(&root.name) {
                format!(
                    "`{}` must come before `{field}` to hold its size",
                    root.name
                )
            } else {
                format!("unknown field `{}` in @size", root.name)
            };
            self.err(&src, root.span, msg);
            return;
        };
        let Some(unit) = sym.unit.clone() else {
            self.err(
                &src,
                root.span,
                format!(
                    "`{}` is not a unit, so it cannot lead to the size",
                    root.name
                ),
            );
            return;
        };
        self.sizes.push(PendingSize {
            protocol: ucx.proto.clone(),
            unit: ucx.unit.clone(),
            field: field.to_string(),
            root: (root.name.clone(), unit),
            segments: segments[1..].to_vec(),
            src,
            span: r.span,
        });
    }

    /// Checks every `is(field, Case)`: the field is a switch with that case.
    fn resolve_cases(&mut self, protocols: &[ir::Protocol]) {
        for c in std::mem::take(&mut self.cases) {
            let unit = protocols
                .iter()
                .find(|p| p.name == c.unit.protocol)
                .and_then(|p| p.units.iter().find(|u| u.name == c.unit.name));
            let field = unit.and_then(|u| u.fields().find(|f| f.name == c.field));
            match field.map(|f| &f.ty) {
                Some(Ty::Switch(sw)) if sw.cases.iter().any(|k| k.name == c.case) => {}
                Some(Ty::Switch(sw)) => {
                    let names: Vec<&str> = sw.cases.iter().map(|k| k.name.as_str()).collect();
                    self.err(
                        &c.src,
                        c.span,
                        format!(
                            "switch `{}` has no case `{}` (its cases: {})",
                            c.field,
                            c.case,
                            names.join(", ")
                        ),
                    );
                }
                _ => self.err(&c.src, c.span, format!("`{}` is not a switch", c.field)),
            }
        }
    }

    /// Resolves every `@size(path)` through units, arrays and switch cases to a number.
    fn resolve_sizes(&mut self, protocols: &mut [ir::Protocol]) {
        for p in std::mem::take(&mut self.sizes) {
            let mut steps = Vec::new();
            let mut unit = p.root.1.clone();
            let mut i = 0;
            let mut failed = None;
            'walk: while i < p.segments.len() {
                let seg = &p.segments[i];
                let Some(u) = protocols
                    .iter()
                    .find(|q| q.name == unit.protocol)
                    .and_then(|q| q.units.iter().find(|u| u.name == unit.name))
                else {
                    failed = Some((seg.span, format!("unit `{}` is not known", unit.name)));
                    break;
                };
                let Some(f) = u.fields().find(|f| f.name == seg.name) else {
                    failed = Some((
                        seg.span,
                        format!("unit `{}` has no field `{}`", unit.name, seg.name),
                    ));
                    break;
                };
                steps.push(ir::PathStep::Field {
                    name: f.name.clone(),
                    optional: f.cond.is_some(),
                });
                i += 1;
                let mut ty = &f.ty;
                loop {
                    match ty {
                        Ty::Array { elem, .. } => {
                            steps.push(ir::PathStep::Elements);
                            ty = elem;
                        }
                        Ty::Switch(sw) => {
                            let Some(case_seg) = p.segments.get(i) else {
                                failed = Some((
                                    seg.span,
                                    format!(
                                        "`{}` is a switch: name one of its cases next",
                                        seg.name
                                    ),
                                ));
                                break 'walk;
                            };
                            let Some(case) = sw.cases.iter().find(|c| c.name == case_seg.name)
                            else {
                                let names: Vec<&str> =
                                    sw.cases.iter().map(|c| c.name.as_str()).collect();
                                failed = Some((
                                    case_seg.span,
                                    format!(
                                        "switch `{}` has no case `{}` (its cases: {})",
                                        sw.name,
                                        case_seg.name,
                                        names.join(", ")
                                    ),
                                ));
                                break 'walk;
                            };
                            steps.push(ir::PathStep::Case {
                                switch: TypeRef {
                                    protocol: unit.protocol.clone(),
                                    name: sw.name.clone(),
                                },
                                case: case.name.clone(),
                            });
                            i += 1;
                            match &case.ty {
                                Some(t) => ty = t,
                                None => {
                                    failed = Some((
                                        case_seg.span,
                                        format!("case `{}` carries nothing", case_seg.name),
                                    ));
                                    break 'walk;
                                }
                            }
                        }
                        Ty::Unit { target, .. } => {
                            unit = target.clone();
                            continue 'walk;
                        }
                        Ty::Number(_) if i == p.segments.len() => {
                            steps.push(ir::PathStep::Leaf {
                                conv: Conv::Number,
                                bits: 0,
                            });
                            break 'walk;
                        }
                        Ty::Int {
                            bits,
                            signed: false,
                            ..
                        } if i == p.segments.len() => {
                            steps.push(ir::PathStep::Leaf {
                                conv: Conv::Int,
                                bits: *bits,
                            });
                            break 'walk;
                        }
                        _ => {
                            failed = Some((seg.span, format!("`{}` cannot hold a size: the path must end at a number or an unsigned integer", seg.name)));
                            break 'walk;
                        }
                    }
                }
            }
            if failed.is_none() && !matches!(steps.last(), Some(ir::PathStep::Leaf { .. })) {
                failed = Some((
                    p.span,
                    "the path must end at a number or an unsigned integer".to_string(),
                ));
            }
            if let Some((span, msg)) = failed {
                self.err(&p.src, span, msg);
                continue;
            }
            let text = std::iter::once(p.root.0.clone())
                .chain(p.segments.iter().map(|s| s.name.clone()))
                .collect::<Vec<_>>()
                .join(".");
            let unit = protocols
                .iter_mut()
                .find(|q| q.name == p.protocol)
                .and_then(|q| q.units.iter_mut().find(|u| u.name == p.unit));
            let Some(unit) = unit else { continue };
            for_each_field_mut(&mut unit.items, &mut |f| {
                if f.name == p.field {
                    f.size_from = Some(ir::SizeFrom {
                        root: p.root.0.clone(),
                        steps: steps.clone(),
                        text: text.clone(),
                    });
                }
            });
            let target = unit
                .fields()
                .find(|f| f.name == p.field)
                .map(|f| f.ty.clone());
            if !matches!(
                target,
                Some(Ty::Bytes(ir::BytesSize::Rest)) | Some(Ty::Utf16(ir::BytesSize::Rest))
            ) {
                self.err_hint(&p.src, p.span, format!("@size sizes `{}`, which must be `bytes` or `utf16` without a size of its own", p.field), "drop `[...]` or `until`");
            }
        }
    }

    fn role_int(&mut self, src: &Source, role: &ast::Role, key: &str) -> Option<i64> {
        match role_arg(role, key, usize::MAX).map(|a| (&a.value, a.span)) {
            None => None,
            Some((ast::RoleValue::Int(v), span)) => match i64::try_from(*v) {
                Ok(v) => Some(v),
                Err(_) => {
                    self.err(src, span, "value out of range");
                    None
                }
            },
            Some((_, span)) => {
                self.err(src, span, format!("`{key}` takes an integer"));
                None
            }
        }
    }

    fn lower_stmt(&mut self, ucx: &mut UnitCx, u: &mut UnitBody, stmt: &ast::Stmt) {
        let src = ucx.src.clone();
        match &stmt.kind {
            StmtKind::Anchor(a) => {
                self.flush_bits(&src, u);
                u.items.push(ir::Item::Anchor(a.name.clone()));
                u.anchors.insert(a.name.clone());
            }
            StmtKind::Align { to, from } => {
                self.flush_bits(&src, u);
                if *to == 0 || !to.is_power_of_two() || *to > 64 {
                    self.err(
                        &src,
                        stmt.span,
                        format!("cannot align to {to}: use a power of two up to 64"),
                    );
                }
                if let Some(a) = from {
                    if !self.anchor_known(&a.name) {
                        self.err_hint(
                            &src,
                            a.span,
                            format!("unknown anchor `{}`", a.name),
                            "declare it with `anchor NAME;` in this unit or one that contains it",
                        );
                    }
                }
                let field = format!("_pad{}", u.pads);
                u.pads += 1;
                u.items.push(ir::Item::Align {
                    to: *to,
                    from: from.as_ref().map_or_else(String::new, |f| f.name.clone()),
                    field,
                });
            }
            StmtKind::ByteOrder { order, condition } => {
                self.flush_bits(&src, u);
                let cond = condition.as_ref().and_then(|(e, other)| {
                    let scope = Scope::unit(&ucx.proto, u, false);
                    let (ex, ty) = self.lower_expr(&src, &scope, e)?;
                    if ty != ExprTy::Bool {
                        self.err(&src, e.span, "a byte order condition must be true or false");
                        return None;
                    }
                    if uses_params(&ex) {
                        self.err(&src, e.span, "a byte order condition can use only fields (the encoder has no parameters)");
                        return None;
                    }
                    Some((ex, *other))
                });
                u.items.push(ir::Item::Order {
                    order: *order,
                    cond,
                });
            }
            StmtKind::Field(f) => self.lower_field(ucx, u, f, &stmt.docs),
        }
    }

    fn flush_bits(&mut self, src: &Source, u: &mut UnitBody) {
        if u.bits.is_empty() {
            return;
        }
        let total: u32 = u.bits.iter().map(|(f, _)| f.bits()).sum();
        let (first_span, _) = (u.bits[0].1, ());
        if !total.is_multiple_of(8) {
            let widths: Vec<String> = u
                .bits
                .iter()
                .map(|(f, _)| format!("u{}", f.bits()))
                .collect();
            self.err_hint(
                src,
                first_span,
                format!(
                    "bit fields {} fill {total} bits, which is not a whole number of bytes",
                    widths.join(" + ")
                ),
                format!(
                    "pad the group to {} bits with a reserved field such as `_: u{};`",
                    total.div_ceil(8) * 8,
                    total.div_ceil(8) * 8 - total
                ),
            );
        } else if total > 64 {
            self.err(
                src,
                first_span,
                format!(
                    "bit fields fill {total} bits; a group of packed fields may take at most 64"
                ),
            );
        } else {
            let fields = std::mem::take(&mut u.bits)
                .into_iter()
                .map(|(f, _)| f.field)
                .collect();
            u.items.push(ir::Item::Bits(ir::BitGroup {
                bytes: (total / 8) as usize,
                fields,
            }));
        }
        u.bits.clear();
        self.emit_inclusive_limits(u);
    }

    /// Opens the limit of a length that counts from an earlier field, once the length field
    /// itself has been read.
    fn emit_inclusive_limits(&mut self, u: &mut UnitBody) {
        for (first, sb) in std::mem::take(&mut u.pending_inclusive) {
            open_limit(u, &sb, Some(first), None);
        }
    }

    /// Resolves a path below a unit from the declarations: unit fields, arrays (any element),
    /// switch cases by name. The path may end anywhere.
    fn ast_path(
        &mut self,
        src: &Source,
        start: &TypeRef,
        names: &[ast::Ident],
    ) -> Option<Vec<ir::PathStep>> {
        let mut steps = Vec::new();
        let mut unit = start.clone();
        let mut i = 0;
        while i < names.len() {
            let seg = &names[i];
            let def = self
                .protos
                .get(&unit.protocol)
                .and_then(|p| p.units.get(&unit.name))
                .copied();
            let field = def.and_then(|d| {
                d.body.iter().find_map(|s| match &s.kind {
                    StmtKind::Field(f) if f.name.as_ref().is_some_and(|n| n.name == seg.name) => {
                        Some(f)
                    }
                    _ => None,
                })
            });
            let Some(field) = field else {
                self.err(
                    src,
                    seg.span,
                    format!("unit `{}` has no field `{}`", unit.name, seg.name),
                );
                return None;
            };
            steps.push(ir::PathStep::Field {
                name: seg.name.clone(),
                optional: field.condition.is_some(),
            });
            i += 1;
            let mut te = &field.ty;
            let mut owner = format!("{}{}", unit.name, camel(&seg.name));
            loop {
                match &te.kind {
                    TypeKind::Sized {
                        base: ast::BaseType::Named { path, .. },
                        size,
                        ..
                    } => {
                        if size.is_some() {
                            steps.push(ir::PathStep::Elements);
                        }
                        let proto = path
                            .protocol
                            .as_ref()
                            .map_or(unit.protocol.clone(), |p| p.name.clone());
                        if self
                            .protos
                            .get(&proto)
                            .is_some_and(|p| p.units.contains_key(&path.name.name))
                        {
                            unit = TypeRef {
                                protocol: proto,
                                name: path.name.name.clone(),
                            };
                        } else if i < names.len() {
                            self.err(
                                src,
                                names[i].span,
                                format!(
                                    "`{}` is not a unit, so the path cannot go on",
                                    names[i - 1].name
                                ),
                            );
                            return None;
                        }
                        break;
                    }
                    TypeKind::Inline { .. } => {
                        unit = TypeRef {
                            protocol: unit.protocol.clone(),
                            name: owner.clone(),
                        };
                        break;
                    }
                    TypeKind::Switch(sw) => {
                        let Some(case_seg) = names.get(i) else {
                            return Some(steps);
                        };
                        let found = sw
                            .cases
                            .iter()
                            .enumerate()
                            .find(|(ci, c)| case_name(c, *ci) == case_seg.name);
                        let Some((_, case)) = found else {
                            let names: Vec<String> = sw
                                .cases
                                .iter()
                                .enumerate()
                                .map(|(ci, c)| case_name(c, ci))
                                .collect();
                            self.err(
                                src,
                                case_seg.span,
                                format!(
                                    "switch `{}` has no case `{}` (its cases: {})",
                                    seg.name,
                                    case_seg.name,
                                    names.join(", ")
                                ),
                            );
                            return None;
                        };
                        steps.push(ir::PathStep::Case {
                            switch: TypeRef {
                                protocol: unit.protocol.clone(),
                                name: owner.clone(),
                            },
                            case: case_seg.name.clone(),
                        });
                        i += 1;
                        match &case.ty {
                            Some(t) => {
                                owner = format!("{}{}", owner, case_seg.name);
                                te = t;
                            }
                            None => break,
                        }
                    }
                    _ => break,
                }
            }
        }
        Some(steps)
    }

    /// Resolves `a.b.c` from unit `unit` to the steps that reach a sized value.
    fn value_path(
        &mut self,
        src: &Source,
        proto: &str,
        unit: &str,
        path: &[ast::Ident],
        unit_kind: ir::SizeUnit,
    ) -> Option<Vec<ir::Step>> {
        let mut steps = Vec::new();
        let mut cur = (proto.to_string(), unit.to_string());
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let def = self
                .protos
                .get(&cur.0)
                .and_then(|s| s.units.get(&cur.1))
                .copied();
            let field = def.and_then(|d| {
                d.body.iter().find_map(|s| match &s.kind {
                    StmtKind::Field(f) if f.name.as_ref().is_some_and(|n| n.name == seg.name) => {
                        Some(f)
                    }
                    _ => None,
                })
            });
            let Some(field) = field else {
                self.err(
                    src,
                    seg.span,
                    format!("unit `{}` has no field `{}`", cur.1, seg.name),
                );
                return None;
            };
            let optional = field.condition.is_some();
            let mut te = &field.ty;
            let mut through_ptr = false;
            if let TypeKind::Sized {
                base: ast::BaseType::Ptr(inner),
                ..
            } = &te.kind
            {
                through_ptr = true;
                te = inner;
            }
            let conv = self.ast_conv(&cur.0, te);
            if optional {
                steps.push(ir::Step {
                    field: seg.name.clone(),
                    kind: ir::StepKind::Optional,
                });
            }
            if through_ptr {
                let f = if optional {
                    String::new()
                } else {
                    seg.name.clone()
                };
                steps.push(ir::Step {
                    field: f,
                    kind: ir::StepKind::Pointer,
                });
            } else if !optional {
                steps.push(ir::Step {
                    field: seg.name.clone(),
                    kind: ir::StepKind::Plain,
                });
            }
            if last {
                let end = match (conv, unit_kind) {
                    (Conv::Bytes, ir::SizeUnit::Bytes | ir::SizeUnit::Words) => ir::StepKind::Bytes,
                    (Conv::Utf16, ir::SizeUnit::Bytes | ir::SizeUnit::Words) => ir::StepKind::Utf16,
                    (Conv::Utf16, ir::SizeUnit::Elements) => ir::StepKind::Utf16,
                    (Conv::Seq, ir::SizeUnit::Elements) => ir::StepKind::Seq,
                    _ => {
                        self.err_hint(src, seg.span, format!("`{}` cannot be sized through a nested path", seg.name), "a nested length describes a byte string, a UTF-16 string or (as a count) an array");
                        return None;
                    }
                };
                steps.push(ir::Step {
                    field: String::new(),
                    kind: end,
                });
                return Some(steps);
            }
            match &te.kind {
                TypeKind::Sized {
                    base: ast::BaseType::Named { path: p, .. },
                    size: None,
                    ..
                } => {
                    let target_proto = p
                        .protocol
                        .as_ref()
                        .map_or(cur.0.clone(), |q| q.name.clone());
                    cur = (target_proto, p.name.name.clone());
                }
                _ => {
                    self.err(
                        src,
                        seg.span,
                        format!("`{}` is not a unit, so the path cannot go on", seg.name),
                    );
                    return None;
                }
            }
        }
        None
    }

    fn lower_field(&mut self, ucx: &mut UnitCx, u: &mut UnitBody, f: &ast::Field, docs: &[String]) {
        let src = ucx.src.clone();
        let location = short_location(&src, f.name_span.start);
        let (name, layout) = match &f.name {
            Some(n) => (n.name.clone(), false),
            None => {
                u.reserved += 1;
                (format!("_reserved{}", u.reserved - 1), true)
            }
        };
        // Roles.
        let mut roles = Vec::new();
        let mut remember = None;
        let mut append = false;
        for r in &f.roles {
            if r.name.name == "size" {
                self.pending_size(ucx, u, &name, r);
                continue;
            }
            if r.name.name == "remember" || r.name.name == "append" {
                remember = self.lower_remember(&src, ucx, u, r);
                append = r.name.name == "append";
                continue;
            }
            if let Some(role) = self.lower_role(&src, u, &name, r) {
                roles.push(role);
            }
        }
        let cond = f.condition.as_ref().and_then(|c| {
            let scope = Scope::unit(&ucx.proto, u, true);
            let (e, ty) = self.lower_expr(&src, &scope, c)?;
            if ty != ExprTy::Bool {
                self.err(&src, c.span, "a condition must be true or false");
                return None;
            }
            Some(e)
        });
        // A length that governs this field opens a limit before it.
        let governing = u.sized_by.get(&name).cloned().unwrap_or_default();
        let located = u.located.get(&name).cloned();
        if located.is_some() {
            self.flush_bits(&src, u);
            u.items.push(ir::Item::Seek(name.clone()));
        }
        let limit_id: Option<usize> = None;
        for sb in governing
            .iter()
            .filter(|g| g.unit != ir::SizeUnit::Elements)
        {
            self.flush_bits(&src, u);
            // A limit around this field alone is opened only when the field is present.
            let when = cond.clone().filter(|_| sb.last == name);
            open_limit(u, sb, None, when);
        }
        let _ = limit_id;
        if u.marks.contains(&name) {
            self.flush_bits(&src, u);
            u.items.push(ir::Item::Mark(name.clone()));
        }
        let view = f.from.as_ref().and_then(|w| {
            let scope = Scope::unit(&ucx.proto, u, true);
            let (e, ty) = self.lower_expr(&src, &scope, w)?;
            if ty != ExprTy::Bytes {
                self.err(&src, w.span, "`from` takes bytes (what `recall` gives)");
                return None;
            }
            if f.condition.is_some() || f.within.is_some() {
                self.err(
                    &src,
                    w.span,
                    "a field decoded `from` bytes cannot also be conditional or `within` a size",
                );
                return None;
            }
            Some(e)
        });
        let within = f.within.as_ref().and_then(|w| {
            let scope = Scope::unit(&ucx.proto, u, true);
            let (e, ty) = self.lower_expr(&src, &scope, w)?;
            if ty != ExprTy::Int {
                self.err(&src, w.span, "`within` takes a number of bytes");
                return None;
            }
            Some(e)
        });
        let count = governing
            .iter()
            .find(|g| g.unit == ir::SizeUnit::Elements)
            .map(|g| {
                let conv = u.scope.get(&g.length_field).map_or(Conv::Int, |s| s.conv);
                ir::ArrayLen::CountField {
                    field: g.length_field.clone(),
                    conv,
                    add: g.add,
                }
            });
        let ty = self.lower_type(ucx, u, &name, &f.ty, count);
        let Some(ty) = ty else { return };
        // Lengths must describe something whose size can vary.
        for (len_field, target, info) in u.lengths.clone() {
            if target.name != name {
                continue;
            }
            let _ = len_field;
            match (&ty, info.unit) {
                (Ty::Array { .. }, ir::SizeUnit::Elements) => {}
                (_, ir::SizeUnit::Elements) => self.err_hint(
                    &src,
                    target.span,
                    format!("`{name}` is not an array, so it has no count"),
                    "use @length for a size in bytes or words",
                ),
                (Ty::Int { .. } | Ty::Enum { .. } | Ty::Literal(_) | Ty::CiLiteral(_), _) if info.last == name => self.err_hint(
                    &src,
                    target.span,
                    format!("`{name}` has a fixed size, so no length can describe it"),
                    "a length describes bytes, strings, units, arrays or a range of fields (`of = first .. last`)",
                ),
                _ => {}
            }
            if info.unit != ir::SizeUnit::Elements {
                u.measured.insert(info.last.clone());
                u.measured.insert(target.name.clone());
            }
        }
        // A constant: checked on decode when named, a default when reserved.
        let mut check = None;
        let mut default = None;
        if let Some(v) = &f.value {
            let scope = Scope::constants(&ucx.proto);
            if let Some(val) = self.const_eval(&src, &scope, v, &mut Vec::new()) {
                match &ty {
                    Ty::Int { bits, signed, .. } => {
                        let (lo, hi) = if *signed {
                            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
                        } else {
                            (0, (1i128 << bits) - 1)
                        };
                        if val < lo || val > hi {
                            self.err(&src, v.span, format!("{val} does not fit in {bits} bits"));
                        }
                        if f.name.is_some() {
                            check = Some(val);
                        } else {
                            default = Some(val);
                        }
                    }
                    _ => self.err(&src, v.span, "only integer fields take a constant; write the literal as the type (`magic: b\"\\xffSMB\";`)"),
                }
            }
        }
        let is_int = matches!(ty, Ty::Int { .. });
        let bits = if let Ty::Int { bits, .. } = ty {
            bits
        } else {
            0
        };
        let located = located.map(|(offset_field, from, add)| {
            u.measured.insert(name.clone());
            ir::Located {
                offset_conv: u.scope.get(&offset_field).map_or(Conv::Int, |s| s.conv),
                offset_field,
                from,
                add,
                gap: format!("_gap_{name}"),
            }
        });
        if let Some(l) = &located {
            if !l.from.is_empty() && !self.anchor_known(&l.from) {
                self.err(&src, f.name_span, format!("unknown anchor `{}`", l.from));
            }
        }
        if roles.iter().any(ir::Role::is_derived) {
            if !is_int {
                self.err_hint(
                    &src,
                    f.ty.span,
                    format!("`{name}` holds a length, count or offset, so it must be an integer"),
                    "declare it as u8..u64 (text lengths are not supported yet)",
                );
                return;
            }
            if f.condition.is_some() {
                self.err(
                    &src,
                    f.name_span,
                    "a length, count or offset cannot be conditional",
                );
                return;
            }
        }
        if is_int && (bits > 64 || bits == 0) {
            self.err(
                &src,
                f.ty.span,
                format!("integer width {bits} is out of range (1 to 64 bits)"),
            );
            return;
        }
        let field = ir::Field {
            name: name.clone(),
            docs: docs.to_vec(),
            location,
            layout: layout || matches!(ty, Ty::CiLiteral(_)),
            roles,
            ty: ty.clone(),
            check,
            default,
            cond,
            located,
            boxed: false,
            size_from: None,
            hint: u.hints.contains(&name),
            remember,
            append,
            view,
        };
        let conv = conv_of(&ty);
        if is_int && (bits % 8 != 0 || !u.bits.is_empty()) {
            if field.cond.is_some() {
                self.err(&src, f.name_span, "a bit field cannot be conditional");
            }
            if within.is_some() {
                self.err(
                    &src,
                    f.name_span,
                    "a bit field cannot be decoded `within` a size",
                );
            }
            u.bits.push((BitField { field }, f.name_span));
            let total: u32 = u.bits.iter().map(|(b, _)| b.bits()).sum();
            if total.is_multiple_of(8) {
                self.flush_bits(&src, u);
            }
        } else {
            self.flush_bits(&src, u);
            match within {
                Some(size) => {
                    let id = u.counter();
                    u.items.push(ir::Item::BeginWithin { id, size });
                    u.items.push(ir::Item::Field(field));
                    u.items.push(ir::Item::EndLimit { id });
                }
                None => u.items.push(ir::Item::Field(field)),
            }
        }
        if let Some((first, sb)) = u.inclusive.get(&name).cloned() {
            u.pending_inclusive.push((first, sb));
        }
        if u.bits.is_empty() {
            self.emit_inclusive_limits(u);
        }
        if !layout {
            u.scope.insert(
                name.clone(),
                FieldSym {
                    conv,
                    optional: f.condition.is_some(),
                    unit: match &ty {
                        Ty::Unit { target, .. } => Some(target.clone()),
                        _ => None,
                    },
                },
            );
        }
        // Close limits that end with this field.
        while let Some((last, id)) = u.open_limits.last().cloned() {
            if last != name {
                break;
            }
            self.flush_bits(&src, u);
            u.items.push(ir::Item::EndLimit { id });
            u.open_limits.pop();
        }
    }

    fn anchor_known(&self, name: &str) -> bool {
        self.files.iter().any(|f| {
            f.ast.items.iter().any(|i| match &i.kind {
                ItemKind::Unit(u) => body_has_anchor(&u.body, name),
                _ => false,
            })
        })
    }

    fn lower_role(
        &mut self,
        src: &Source,
        u: &UnitBody,
        field: &str,
        r: &ast::Role,
    ) -> Option<ir::Role> {
        let name = r.name.name.as_str();
        let role = match name {
            "length" if r.args.is_empty() => ir::Role::Held,
            "length" | "count"
                if u.nested_lengths
                    .iter()
                    .any(|(l, i, _)| l == field && *i == r.span.start) =>
            {
                let (_, _, path) = u
                    .nested_lengths
                    .iter()
                    .find(|(l, i, _)| l == field && *i == r.span.start)?;
                let unit = if name == "count" {
                    ir::SizeUnit::Elements
                } else {
                    match role_arg(r, "unit", usize::MAX).map(|a| &a.value) {
                        Some(ast::RoleValue::Dotted(p)) if p.len() == 1 && p[0].name == "words" => {
                            ir::SizeUnit::Words
                        }
                        Some(ast::RoleValue::Dotted(p))
                            if p.len() == 1 && p[0].name == "elements" =>
                        {
                            ir::SizeUnit::Elements
                        }
                        _ => ir::SizeUnit::Bytes,
                    }
                };
                let add = self.role_int(src, r, "add").unwrap_or(0);
                let steps = self.value_path(src, &u.unit_proto, &u.unit_name, path, unit)?;
                ir::Role::ValueLength {
                    path: steps,
                    text: path
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join("."),
                    unit,
                    add,
                }
            }
            "length" | "count" => {
                let (_, target, info) = u.lengths.iter().find(|(l, t, _)| {
                    l == field && r.span.start <= t.span.start && t.span.end <= r.span.end
                })?;
                ir::Role::Length {
                    first: target.name.clone(),
                    last: info.last.clone(),
                    unit: info.unit,
                    add: info.add,
                }
            }
            "offset" => {
                let (target, (_, from, add)) =
                    u.located.iter().find(|(_, (o, _, _))| o == field)?;
                ir::Role::Offset {
                    target: target.clone(),
                    from: from.clone(),
                    add: *add,
                }
            }
            "cookie" => {
                let ns = match role_arg(r, "namespace", 0).map(|a| &a.value) {
                    Some(ast::RoleValue::Dotted(p)) => p
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join("."),
                    Some(ast::RoleValue::Str(s)) => s.clone(),
                    _ => {
                        self.err_hint(
                            src,
                            r.span,
                            "@cookie needs a namespace",
                            "write `@cookie(smb.mid, issuer = client)`",
                        );
                        return None;
                    }
                };
                let client = match role_arg(r, "issuer", usize::MAX).map(|a| &a.value) {
                    Some(ast::RoleValue::Dotted(p)) if p.len() == 1 && p[0].name == "client" => {
                        true
                    }
                    Some(ast::RoleValue::Dotted(p)) if p.len() == 1 && p[0].name == "server" => {
                        false
                    }
                    _ => {
                        self.err_hint(
                            src,
                            r.span,
                            "@cookie needs an issuer",
                            "write `issuer = client` or `issuer = server`",
                        );
                        return None;
                    }
                };
                ir::Role::Cookie {
                    namespace: ns,
                    client,
                }
            }
            "choice" | "index" => {
                let list = match r.args.first().map(|a| &a.value) {
                    Some(ast::RoleValue::Dotted(p)) if p.len() == 1 => p[0].name.clone(),
                    _ => {
                        self.err_hint(
                            src,
                            r.span,
                            format!("@{name} needs the name of the option list"),
                            "write `@choice(dialects)` on each option and `@index(dialects)` on the answer",
                        );
                        return None;
                    }
                };
                if name == "choice" {
                    ir::Role::Choice(list)
                } else {
                    ir::Role::Index(list)
                }
            }
            "artifact" => {
                let key = match role_arg(r, "key", 0).map(|a| &a.value) {
                    Some(ast::RoleValue::Dotted(p)) => p
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join("."),
                    _ => {
                        self.err_hint(
                            src,
                            r.span,
                            "@artifact needs the cookie namespace that names the file",
                            "write `@artifact(key = smb.fid, offset = offset)`",
                        );
                        return None;
                    }
                };
                let offset = match role_arg(r, "offset", 1).map(|a| (&a.value, a.span)) {
                    None => None,
                    Some((ast::RoleValue::Dotted(p), _)) if p.len() == 1 => Some(p[0].name.clone()),
                    Some((_, span)) => {
                        self.err(src, span, "@artifact's offset is the name of a field");
                        return None;
                    }
                };
                ir::Role::Artifact { key, offset }
            }
            "timestamp" => {
                let format = match r.args.first().map(|a| &a.value) {
                    Some(ast::RoleValue::Dotted(p)) if p.len() == 1 => p[0].name.clone(),
                    Some(ast::RoleValue::Str(s)) => s.clone(),
                    None => "raw".to_string(),
                    Some(_) => {
                        self.err(src, r.span, "@timestamp takes a format name");
                        return None;
                    }
                };
                ir::Role::Timestamp(format)
            }
            "address" | "port" | "hostname" | "nonce" | "volatile" | "signature" => {
                if let Some(a) = r.args.first() {
                    self.err(src, a.span, format!("@{name} takes no arguments"));
                    return None;
                }
                match name {
                    "address" => ir::Role::Address,
                    "port" => ir::Role::Port,
                    "hostname" => ir::Role::Hostname,
                    "nonce" => ir::Role::Nonce,
                    "volatile" => ir::Role::Volatile,
                    _ => ir::Role::Signature,
                }
            }
            other => {
                self.err_hint(
                    src,
                    r.name.span,
                    format!("unknown role `@{other}`"),
                    "the roles are @length, @count, @offset, @cookie, @address, @port, @hostname, @timestamp, @nonce, @volatile, @signature, @artifact, @choice, @index",
                );
                return None;
            }
        };
        Some(role)
    }

    // ---------------------------------------------------------------- types

    fn lower_type(
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

    fn lower_base(
        &mut self,
        ucx: &mut UnitCx,
        u: &mut UnitBody,
        field: &str,
        base: &ast::BaseType,
        span: ast::Span,
        size: Option<ir::BytesSize>,
    ) -> Option<Ty> {
        let src = ucx.src.clone();
        let no_size = |cx: &mut Self, what: &str| {
            if size.is_some() {
                cx.err(&src, span, format!("{what} takes no size"));
            }
        };
        match base {
            ast::BaseType::Literal(b) => {
                no_size(self, "a literal");
                Some(Ty::Literal(b.clone()))
            }
            ast::BaseType::CiLiteral(b) => {
                no_size(self, "a literal");
                Some(Ty::CiLiteral(b.clone()))
            }
            ast::BaseType::Ptr(inner) => {
                no_size(self, "a pointer");
                let t = self.lower_type(ucx, u, field, inner, None)?;
                if matches!(t, Ty::Ptr(_) | Ty::Literal(_) | Ty::CiLiteral(_)) {
                    self.err(&src, inner.span, "a pointer must point to data");
                    return None;
                }
                Some(Ty::Ptr(Box::new(t)))
            }
            ast::BaseType::Named { path, args } => {
                let n = path.name.name.as_str();
                if path.protocol.is_none() {
                    if let Some((bits, signed, order)) = int_type(n) {
                        no_size(self, "an integer");
                        if signed && bits % 8 != 0 {
                            self.err(&src, path.span, "signed integers must be whole bytes");
                        }
                        if order.is_some() && bits % 8 != 0 {
                            self.err(
                                &src,
                                path.span,
                                "bit fields take the byte order of their group",
                            );
                        }
                        if !args.is_empty() {
                            self.err(&src, path.span, "an integer takes no arguments");
                        }
                        return Some(Ty::Int {
                            bits,
                            signed,
                            order,
                        });
                    }
                    let sized = size.clone().unwrap_or(ir::BytesSize::Rest);
                    let builtin = match n {
                        "bytes" => Some(Ty::Bytes(sized)),
                        "utf16" => Some(Ty::Utf16(sized)),
                        "cstring" => {
                            no_size(self, "a cstring (it ends at NUL)");
                            Some(Ty::Bytes(ir::BytesSize::Until(vec![0])))
                        }
                        "utf16z" => {
                            no_size(self, "a utf16z (it ends at a NUL code unit)");
                            Some(Ty::Utf16z)
                        }
                        "sp" => {
                            no_size(self, "sp");
                            Some(Ty::Spaces)
                        }
                        "token" => {
                            no_size(self, "token");
                            Some(Ty::Token)
                        }
                        "ows" => {
                            no_size(self, "ows");
                            Some(Ty::OptionalSpaces)
                        }
                        "number" => match size {
                            None => Some(Ty::Number(None)),
                            Some(ir::BytesSize::Expr(ir::Expr::Int(w)))
                                if (1..=40).contains(&w) =>
                            {
                                Some(Ty::Number(Some(w as usize)))
                            }
                            Some(_) => {
                                self.err(&src, span, "a number's width must be a constant from 1 to 40 (`number[3]`)");
                                return None;
                            }
                        },
                        _ => LEAVES
                            .iter()
                            .find(|(dsl, ..)| *dsl == n)
                            .map(|(_, rust, what)| {
                                no_size(self, what);
                                Ty::Leaf(rust)
                            }),
                    };
                    if let Some(t) = builtin {
                        if !args.is_empty() {
                            self.err(&src, path.span, format!("`{n}` takes no arguments"));
                        }
                        return Some(t);
                    }
                }
                let proto = self.target_protocol(&src, &ucx.proto, path)?;
                let syms = &self.protos[&proto];
                if let Some(e) = syms.enums.get(n).copied() {
                    no_size(self, "an enum");
                    let bits = int_type(&e.repr.name).map_or(8, |(b, _, _)| b);
                    return Some(Ty::Enum {
                        target: TypeRef {
                            protocol: proto,
                            name: n.to_string(),
                        },
                        bits,
                        flags: e.is_flags,
                    });
                }
                if let Some(unit) = self.protos[&proto].units.get(n).copied() {
                    if size.is_some() {
                        self.err_hint(&src, span, format!("a unit is sized by a @length, not `[...]` (`{n}[n]` would be an array)"), "declare a length field with `@length(of = ...)`");
                        return None;
                    }
                    if unit.params.len() != args.len() {
                        self.err(
                            &src,
                            path.span,
                            format!(
                                "`{n}` takes {} argument(s), {} given",
                                unit.params.len(),
                                args.len()
                            ),
                        );
                        return None;
                    }
                    let scope = Scope::unit(&ucx.proto, u, true);
                    let mut out = Vec::new();
                    for (a, p) in args.iter().zip(&unit.params) {
                        let (ex, ty) = self.lower_expr(&src, &scope, a)?;
                        let want = match p.ty.name.as_str() {
                            "bool" => ExprTy::Bool,
                            "bytes" => ExprTy::Bytes,
                            _ => ExprTy::Int,
                        };
                        if ty != want {
                            self.err(
                                &src,
                                a.span,
                                format!(
                                    "argument `{}` of `{n}` must be {}",
                                    p.name.name,
                                    match want {
                                        ExprTy::Bool => "true or false",
                                        ExprTy::Bytes => "a byte string",
                                        ExprTy::Int => "an integer",
                                    }
                                ),
                            );
                            return None;
                        }
                        out.push((ex, want));
                    }
                    return Some(Ty::Unit {
                        target: TypeRef {
                            protocol: proto,
                            name: n.to_string(),
                        },
                        args: out,
                        deferred: false,
                    });
                }
                self.err_hint(
                    &src,
                    path.span,
                    format!("unknown type `{path}`"),
                    "built-in types are u1..u64, i8..i64 (optionally ...le/...be), bytes, utf16, utf16z, cstring, sp, ows, token, number, host_port, dotted_quad, dot_stuffed, chunked, enhanced_status, dated_text",
                );
                None
            }
        }
    }

    fn lower_inline(
        &mut self,
        ucx: &mut UnitCx,
        name: &str,
        kind: Option<&ast::Ident>,
        body: &[ast::Stmt],
        span: ast::Span,
    ) -> Option<TypeRef> {
        let mut inner = UnitCx::new(&ucx.proto, &ucx.src, name);
        let unit = self.lower_unit(&mut inner, name, &[], &[], kind, body, span)?;
        ucx.extra.extend(inner.extra);
        ucx.extra.push(unit);
        Some(TypeRef {
            protocol: ucx.proto.clone(),
            name: name.to_string(),
        })
    }

    fn lower_switch(
        &mut self,
        ucx: &mut UnitCx,
        u: &mut UnitBody,
        field: &str,
        sw: &ast::Switch,
    ) -> Option<ir::Switch> {
        let src = ucx.src.clone();
        let enum_name = format!("{}{}", ucx.unit, camel(field));
        let scope = Scope::unit(&ucx.proto, u, true);
        let mut on = Vec::new();
        let mut tys = Vec::new();
        for e in &sw.on {
            let (ex, ty) = self.lower_expr(&src, &scope, e)?;
            on.push(ex);
            tys.push(ty);
        }
        let mut cases = Vec::new();
        let mut names: HashMap<String, ast::Span> = HashMap::new();
        let mut seen_default = false;
        for (ci, case) in sw.cases.iter().enumerate() {
            if seen_default {
                self.err(
                    &src,
                    case.span,
                    "this case can never match: a `_` case comes before it",
                );
            }
            let mut patterns = Vec::new();
            for p in &case.patterns {
                if p.elems.is_empty() {
                    seen_default = true;
                    patterns.push(Vec::new());
                    continue;
                }
                if p.elems.len() != on.len() {
                    self.err(
                        &src,
                        p.span,
                        format!(
                            "this pattern has {} element(s) but the switch has {}",
                            p.elems.len(),
                            on.len()
                        ),
                    );
                    continue;
                }
                let mut pats = Vec::new();
                for (el, ty) in p.elems.iter().zip(&tys) {
                    pats.push(self.lower_pattern(&src, &ucx.proto, el, *ty, p.span)?);
                }
                patterns.push(pats);
            }
            let name = case_name(case, ci);
            if let Some(first) = names.insert(name.clone(), case.span) {
                let (l, c) = src.line_col(first.start);
                self.err_hint(&src, case.span, format!("two cases are named `{name}`"), format!("name this case (`pattern -> Name: Type;`); the other is at line {l}, column {c}, or join the patterns with `|`"));
            }
            let ty = match &case.ty {
                None => None,
                Some(te) => {
                    let case_field = format!("{field}_{name}");
                    let t = match &te.kind {
                        TypeKind::Inline { kind, body } => {
                            let iname = format!("{enum_name}{name}");
                            let target =
                                self.lower_inline(ucx, &iname, kind.as_ref(), body, te.span)?;
                            Ty::Unit {
                                target,
                                args: Vec::new(),
                                deferred: false,
                            }
                        }
                        _ => self.lower_type(ucx, u, &case_field, te, None)?,
                    };
                    if matches!(t, Ty::Literal(_)) {
                        self.err(&src, te.span, "a literal case carries nothing: write `()`");
                    }
                    Some(t)
                }
            };
            cases.push(ir::Case {
                name,
                boxed: false,
                patterns,
                ty,
            });
        }
        if cases.is_empty() {
            self.err(
                &src,
                sw.on.first().map_or_else(ast::Span::default, |e| e.span),
                "a switch needs at least one case",
            );
            return None;
        }
        Some(ir::Switch {
            name: enum_name,
            on,
            cases,
        })
    }

    fn lower_pattern(
        &mut self,
        src: &Source,
        proto: &str,
        el: &ast::PatternElem,
        ty: ExprTy,
        span: ast::Span,
    ) -> Option<ir::Pat> {
        let pat = match (el, ty) {
            (ast::PatternElem::Wildcard, _) => ir::Pat::Any,
            (ast::PatternElem::Int(v), ExprTy::Int) => ir::Pat::Int(*v),
            (ast::PatternElem::Bool(b), ExprTy::Bool) => ir::Pat::Bool(*b),
            (ast::PatternElem::Bytes(b), ExprTy::Bytes) => ir::Pat::Bytes(b.clone()),
            (ast::PatternElem::CiBytes(b), ExprTy::Bytes) => ir::Pat::CiBytes(b.clone()),
            (ast::PatternElem::Path(p), ExprTy::Int) => {
                let scope = Scope::constants(proto);
                let e = ast::Expr {
                    kind: ast::ExprKind::Path(p.clone()),
                    span: p.span,
                };
                ir::Pat::Int(self.const_eval(src, &scope, &e, &mut Vec::new())?)
            }
            _ => {
                self.err(
                    src,
                    span,
                    format!(
                        "this pattern does not fit a switch on {}",
                        match ty {
                            ExprTy::Int => "an integer",
                            ExprTy::Bool => "true/false",
                            ExprTy::Bytes => "bytes",
                        }
                    ),
                );
                return None;
            }
        };
        Some(pat)
    }

    // ---------------------------------------------------------------- expressions

    fn lower_expr(
        &mut self,
        src: &Source,
        scope: &Scope,
        e: &ast::Expr,
    ) -> Option<(ir::Expr, ExprTy)> {
        use ast::ExprKind as K;
        Some(match &e.kind {
            K::Int(v) => (ir::Expr::Int(*v), ExprTy::Int),
            K::Bool(b) => (ir::Expr::Bool(*b), ExprTy::Bool),
            K::Bytes(b) => (ir::Expr::Bytes(b.clone()), ExprTy::Bytes),
            K::CiBytes(b) => (ir::Expr::CiBytes(b.clone()), ExprTy::Bytes),
            K::Path(p) if p.protocol.is_none() => {
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
                            format!(
                                "`{n}` is optional (declared with `if`), so it cannot be used here"
                            ),
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
                match self.const_eval(src, &Scope::constants(&scope.proto), e, &mut Vec::new()) {
                    Some(v) => (ir::Expr::Int(v), ExprTy::Int),
                    None => return None,
                }
            }
            K::Path(_) => (
                ir::Expr::Int(self.const_eval(
                    src,
                    &Scope::constants(&scope.proto),
                    e,
                    &mut Vec::new(),
                )?),
                ExprTy::Int,
            ),
            K::Member(base, name) => {
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
                            self.err(src, base.span, format!("`{n}` is optional (declared with `if`), so it cannot be used here"));
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
                    ir::Expr::Field { name, .. } => {
                        scope.fields[name].unit.clone().expect("checked")
                    }
                    _ => unreachable!(),
                };
                let Some(conv) = self.unit_field_conv(&unit.protocol, &unit.name, &name.name)
                else {
                    self.err(
                        src,
                        name.span,
                        format!("unit `{}` has no field `{}`", unit.name, name.name),
                    );
                    return None;
                };
                let ty = expr_ty(conv, src, e.span, self)?;
                (
                    ir::Expr::Member {
                        base: Box::new(b),
                        name: name.name.clone(),
                        conv,
                    },
                    ty,
                )
            }
            K::Call(f, args) => match (f.name.as_str(), args.len()) {
                ("remaining", 0) => (ir::Expr::Remaining, ExprTy::Int),
                ("answering", 0) => (ir::Expr::Answering, ExprTy::Bytes),
                ("recall" | "recall_int", 2) => {
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
                    (
                        ir::Expr::Recall {
                            name: n.name.name.clone(),
                            key: Box::new(key),
                            key_ty,
                            int,
                        },
                        if int { ExprTy::Int } else { ExprTy::Bytes },
                    )
                }
                ("found", 1) => {
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
                    let Some(unit) = scope.fields.get(&root.name).and_then(|s| s.unit.clone())
                    else {
                        self.err(
                            src,
                            root.span,
                            format!("`{}` is not a unit field decoded before this", root.name),
                        );
                        return None;
                    };
                    let steps = self.ast_path(src, &unit, &names[1..])?;
                    (
                        ir::Expr::Found {
                            root: root.name.clone(),
                            steps,
                        },
                        ExprTy::Bool,
                    )
                }
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
                ("raw", 1) => {
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
                    (ir::Expr::Raw(Box::new(base)), ExprTy::Bytes)
                }
                ("is", 2) => {
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
                    (
                        ir::Expr::IsCase {
                            base: Box::new(base),
                            case: case.name.name.clone(),
                        },
                        ExprTy::Bool,
                    )
                }
                ("is_request", 0) => (ir::Expr::IsRequest, ExprTy::Bool),
                ("len", 1) => {
                    let a = &args[0];
                    let inner = match &a.kind {
                        K::Path(p) if p.protocol.is_none() => {
                            match scope.fields.get(&p.name.name) {
                                Some(sym)
                                    if matches!(
                                        sym.conv,
                                        Conv::Seq | Conv::Bytes | Conv::Utf16
                                    ) && !sym.optional =>
                                {
                                    ir::Expr::Field {
                                        name: p.name.name.clone(),
                                        conv: sym.conv,
                                    }
                                }
                                _ => {
                                    self.err(
                                        src,
                                        a.span,
                                        "len() takes an array or byte string field",
                                    );
                                    return None;
                                }
                            }
                        }
                        _ => {
                            self.err(src, a.span, "len() takes a field");
                            return None;
                        }
                    };
                    (ir::Expr::Len(Box::new(inner)), ExprTy::Int)
                }
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
            K::Unary(op, inner) => {
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
                (ir::Expr::Unary(*op, Box::new(ex)), ty)
            }
            K::Binary(op, a, b) => {
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
                (
                    ir::Expr::Binary(*op, Box::new(ea), Box::new(eb), ta),
                    result,
                )
            }
        })
    }

    /// The value conversion of a field of some unit, from its declaration.
    fn unit_field_conv(&self, proto: &str, unit: &str, field: &str) -> Option<Conv> {
        let syms = self.protos.get(proto)?;
        let u = syms.units.get(unit)?;
        u.body.iter().find_map(|s| match &s.kind {
            StmtKind::Field(f) if f.name.as_ref().is_some_and(|n| n.name == field) => {
                Some(self.ast_conv(proto, &f.ty))
            }
            _ => None,
        })
    }

    fn ast_conv(&self, proto: &str, te: &ast::TypeExpr) -> Conv {
        match &te.kind {
            TypeKind::Switch(_) => Conv::Unit,
            TypeKind::Inline { .. } => Conv::Unit,
            TypeKind::Sized { base, size, .. } => {
                if size.is_some() && !is_byte_string(base) {
                    return Conv::Seq;
                }
                match base {
                    ast::BaseType::Named { path, .. } => {
                        let n = path.name.name.as_str();
                        if int_type(n).is_some() {
                            return Conv::Int;
                        }
                        match n {
                            "bytes" | "cstring" | "sp" | "ows" | "token" => return Conv::Bytes,
                            "utf16" | "utf16z" => return Conv::Utf16,
                            "number" => return Conv::Number,
                            _ => {}
                        }
                        let p = path.protocol.as_ref().map_or(proto, |p| p.name.as_str());
                        match self.protos.get(p).and_then(|s| s.enums.get(n)) {
                            Some(e) if e.is_flags => Conv::Flags,
                            Some(_) => Conv::Enum,
                            None => Conv::Unit,
                        }
                    }
                    ast::BaseType::CiLiteral(_) | ast::BaseType::Literal(_) => Conv::Bytes,
                    ast::BaseType::Ptr(_) => Conv::Unit,
                }
            }
        }
    }

    /// Evaluates a constant expression: literals, constants, enum variants.
    fn const_eval(
        &mut self,
        src: &Source,
        scope: &Scope,
        e: &ast::Expr,
        stack: &mut Vec<String>,
    ) -> Option<i128> {
        use ast::ExprKind as K;
        match &e.kind {
            K::Int(v) => Some(*v),
            K::Bool(b) => Some(i128::from(*b)),
            K::Path(p) => {
                // `Enum::Variant`, `proto::CONST`, `CONST`.
                let (proto, name) = match &p.protocol {
                    Some(q) if self.protos[&scope.proto].enums.contains_key(&q.name) => {
                        let en = self.protos[&scope.proto].enums[&q.name];
                        return match en.variants.iter().find(|v| v.name.name == p.name.name) {
                            Some(v) => Some(v.value),
                            None => {
                                self.err(
                                    src,
                                    p.name.span,
                                    format!("enum `{}` has no variant `{}`", q.name, p.name.name),
                                );
                                None
                            }
                        };
                    }
                    Some(_) => (
                        self.target_protocol(src, &scope.proto, p)?,
                        p.name.name.clone(),
                    ),
                    None => (scope.proto.clone(), p.name.name.clone()),
                };
                let key = format!("{proto}::{name}");
                if stack.contains(&key) {
                    self.err(
                        src,
                        e.span,
                        format!("constant `{name}` is defined in terms of itself"),
                    );
                    return None;
                }
                let Some(def) = self.protos[&proto].consts.get(&name).copied() else {
                    self.err(src, e.span, format!("unknown name `{p}`"));
                    return None;
                };
                stack.push(key);
                let def_src = self.protos[&proto].file.source.clone();
                let v = self.const_eval(&def_src, &Scope::constants(&proto), def, stack);
                stack.pop();
                v
            }
            K::Unary(ast::UnOp::Neg, a) => self.const_eval(src, scope, a, stack)?.checked_neg(),
            K::Unary(ast::UnOp::Not, a) => {
                Some(i128::from(self.const_eval(src, scope, a, stack)? == 0))
            }
            K::Binary(op, a, b) => {
                let x = self.const_eval(src, scope, a, stack)?;
                let y = self.const_eval(src, scope, b, stack)?;
                use ast::BinOp::*;
                let v = match op {
                    Add => x.checked_add(y),
                    Sub => x.checked_sub(y),
                    Mul => x.checked_mul(y),
                    Div => x.checked_div(y),
                    Rem => x.checked_rem(y),
                    Shl => u32::try_from(y).ok().and_then(|y| x.checked_shl(y)),
                    Shr => u32::try_from(y).ok().and_then(|y| x.checked_shr(y)),
                    BitOr => Some(x | y),
                    BitAnd => Some(x & y),
                    BitXor => Some(x ^ y),
                    Eq => Some(i128::from(x == y)),
                    Ne => Some(i128::from(x != y)),
                    Lt => Some(i128::from(x < y)),
                    Le => Some(i128::from(x <= y)),
                    Gt => Some(i128::from(x > y)),
                    Ge => Some(i128::from(x >= y)),
                    And => Some(i128::from(x != 0 && y != 0)),
                    Or => Some(i128::from(x != 0 || y != 0)),
                };
                if v.is_none() {
                    self.err(src, e.span, "constant arithmetic overflows");
                }
                v
            }
            _ => {
                self.err(src, e.span, "expected a constant integer");
                None
            }
        }
    }
}

fn expr_ty(conv: Conv, src: &Source, span: ast::Span, cx: &mut Checker<'_>) -> Option<ExprTy> {
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

fn conv_of(ty: &Ty) -> Conv {
    match ty {
        Ty::Int { .. } => Conv::Int,
        Ty::Enum { flags: true, .. } => Conv::Flags,
        Ty::Enum { .. } => Conv::Enum,
        Ty::Number(_) => Conv::Number,
        Ty::Bytes(_)
        | Ty::CiLiteral(_)
        | Ty::Spaces
        | Ty::OptionalSpaces
        | Ty::Token
        | Ty::Literal(_) => Conv::Bytes,
        Ty::Utf16(_) | Ty::Utf16z => Conv::Utf16,
        Ty::Array { .. } => Conv::Seq,
        Ty::Unit { .. } | Ty::Ptr(_) | Ty::Switch(_) | Ty::Leaf(_) => Conv::Unit,
    }
}

fn is_byte_string(base: &ast::BaseType) -> bool {
    matches!(base, ast::BaseType::Named { path, .. } if path.protocol.is_none() && matches!(path.name.name.as_str(), "bytes" | "utf16" | "number"))
}

fn body_has_anchor(body: &[ast::Stmt], name: &str) -> bool {
    body.iter().any(|s| match &s.kind {
        StmtKind::Anchor(a) => a.name == name,
        StmtKind::Field(f) => type_has_anchor(&f.ty, name),
        _ => false,
    })
}

fn type_has_anchor(te: &ast::TypeExpr, name: &str) -> bool {
    match &te.kind {
        TypeKind::Inline { body, .. } => body_has_anchor(body, name),
        TypeKind::Switch(sw) => sw
            .cases
            .iter()
            .any(|c| c.ty.as_ref().is_some_and(|t| type_has_anchor(t, name))),
        TypeKind::Sized { .. } => false,
    }
}

fn uses_params(e: &ir::Expr) -> bool {
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

/// Opens the decode limit a length puts around its target (`since`: a length that counts from
/// an earlier field, opened right after the length itself).
fn open_limit(u: &mut UnitBody, sb: &SizedBy, since: Option<String>, when: Option<ir::Expr>) {
    let id = u.counter();
    let conv = u.scope.get(&sb.length_field).map_or(Conv::Int, |s| s.conv);
    u.items.push(ir::Item::BeginLimit {
        id,
        length_field: sb.length_field.clone(),
        conv,
        unit_bytes: sb.unit.bytes(),
        add: sb.add,
        since,
        when,
    });
    u.open_limits.push((sb.last.clone(), id));
}

/// The name of a switch case: as written (`-> Name: Type`), else its unit type's name, else its
/// single enum-variant pattern's name, `Other` for the catch-all, `CaseN` otherwise.
fn case_name(case: &ast::SwitchCase, index: usize) -> String {
    if let Some(n) = &case.name {
        return n.name.clone();
    }
    if let Some(ast::TypeExpr {
        kind:
            TypeKind::Sized {
                base: ast::BaseType::Named { path, .. },
                size: None,
                ..
            },
        ..
    }) = &case.ty
    {
        if path
            .name
            .name
            .chars()
            .next()
            .is_some_and(char::is_uppercase)
        {
            return path.name.name.clone();
        }
    }
    match case.patterns.first().and_then(|p| p.elems.first()) {
        Some(ast::PatternElem::Path(p)) if p.protocol.is_some() && case.patterns.len() == 1 => {
            p.name.name.clone()
        }
        _ if case.patterns.iter().all(|p| p.elems.is_empty()) => "Other".to_string(),
        _ => format!("Case{index}"),
    }
}

/// `a.b.c` written as nested member expressions, as names.
fn dotted_names(e: &ast::Expr) -> Option<Vec<ast::Ident>> {
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

fn r_index(role: &ast::Role) -> usize {
    role.span.start
}

fn role_arg<'r>(role: &'r ast::Role, key: &str, position: usize) -> Option<&'r ast::RoleArg> {
    role.args
        .iter()
        .find(|a| a.key.as_ref().is_some_and(|k| k.name == key))
        .or_else(|| role.args.get(position).filter(|a| a.key.is_none()))
}

/// Per-unit lowering state that outlives one unit body (inline units created on the way).
struct UnitCx {
    proto: String,
    src: Source,
    unit: String,
    extra: Vec<ir::Unit>,
}

impl UnitCx {
    fn new(proto: &str, src: &Source, unit: &str) -> Self {
        UnitCx {
            proto: proto.to_string(),
            src: src.clone(),
            unit: unit.to_string(),
            extra: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct SizedBy {
    length_field: String,
    last: String,
    unit: ir::SizeUnit,
    add: i64,
    last_index: usize,
}

#[derive(Debug, Clone)]
struct FieldSym {
    conv: Conv,
    optional: bool,
    unit: Option<TypeRef>,
}

struct BitField {
    field: ir::Field,
}

impl BitField {
    fn bits(&self) -> u32 {
        match self.field.ty {
            Ty::Int { bits, .. } => bits,
            _ => 0,
        }
    }
}

struct UnitBody {
    /// Length fields declared as hints.
    hints: HashSet<String>,
    unit_proto: String,
    unit_name: String,
    params: Vec<(String, ExprTy)>,
    nested_lengths: Vec<(String, usize, Vec<ast::Ident>)>,
    marks: HashSet<String>,
    inclusive: HashMap<String, (String, SizedBy)>,
    pending_inclusive: Vec<(String, SizedBy)>,
    items: Vec<ir::Item>,
    names: HashMap<String, ast::Span>,
    scope: HashMap<String, FieldSym>,
    sized_by: HashMap<String, Vec<SizedBy>>,
    lengths: Vec<(String, ast::Ident, SizedBy)>,
    located: HashMap<String, (String, String, i64)>,
    measured: std::collections::BTreeSet<String>,
    anchors: HashSet<String>,
    open_limits: Vec<(String, usize)>,
    bits: Vec<(BitField, ast::Span)>,
    next: usize,
    pads: usize,
    reserved: usize,
}

impl UnitBody {
    fn new(proto: &str, name: &str, params: Vec<(String, ExprTy)>) -> Self {
        UnitBody {
            hints: HashSet::new(),
            unit_proto: proto.to_string(),
            unit_name: name.to_string(),
            params,
            nested_lengths: Vec::new(),
            marks: HashSet::new(),
            inclusive: HashMap::new(),
            pending_inclusive: Vec::new(),
            items: Vec::new(),
            names: HashMap::new(),
            scope: HashMap::new(),
            sized_by: HashMap::new(),
            lengths: Vec::new(),
            located: HashMap::new(),
            measured: Default::default(),
            anchors: HashSet::new(),
            open_limits: Vec::new(),
            bits: Vec::new(),
            next: 0,
            pads: 0,
            reserved: 0,
        }
    }

    fn counter(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }
}

/// What names an expression can see.
struct Scope {
    proto: String,
    unit: String,
    fields: HashMap<String, FieldSym>,
    all_fields: HashSet<String>,
    params: Vec<(String, ExprTy)>,
    element: Option<TypeRef>,
}

impl Scope {
    fn constants(proto: &str) -> Self {
        Scope {
            proto: proto.to_string(),
            unit: String::new(),
            fields: HashMap::new(),
            all_fields: HashSet::new(),
            params: Vec::new(),
            element: None,
        }
    }

    fn unit(proto: &str, u: &UnitBody, with_params: bool) -> Self {
        Scope {
            proto: proto.to_string(),
            unit: u.unit_name.clone(),
            fields: u.scope.clone(),
            all_fields: u.names.keys().cloned().collect(),
            params: if with_params {
                u.params.clone()
            } else {
                Vec::new()
            },
            element: None,
        }
    }

    fn element(proto: &str, u: &UnitBody, elem: TypeRef) -> Self {
        let mut s = Scope::unit(proto, u, true);
        s.element = Some(elem);
        s
    }
}

// ---------------------------------------------------------------- whole-program passes

/// Switches with at least this many cases store their unit cases boxed.
const WIDE_SWITCH: usize = 8;

/// Marks fields that must be boxed (a unit containing itself, the cases of a wide switch) and
/// the units whose pointees are deferred.
fn finish(protocols: &mut [ir::Protocol]) {
    let key = |p: &str, n: &str| format!("{p}::{n}");
    // By-value containment edges.
    let mut edges: HashMap<String, Vec<String>> = HashMap::new();
    for p in protocols.iter() {
        for u in &p.units {
            let mut out = Vec::new();
            for f in u.fields() {
                by_value_units(&f.ty, &mut out);
            }
            edges.insert(
                key(&p.name, &u.name),
                out.into_iter().map(|t| key(&t.protocol, &t.name)).collect(),
            );
        }
    }
    let reaches = |from: &str, to: &str| -> bool {
        let mut stack = vec![from.to_string()];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n.clone()) {
                stack.extend(edges.get(&n).cloned().unwrap_or_default());
            }
        }
        false
    };
    for p in protocols.iter_mut() {
        let pname = p.name.clone();
        for u in &mut p.units {
            let me = key(&pname, &u.name);
            for_each_field_mut(&mut u.items, &mut |f| match &mut f.ty {
                Ty::Unit { target, .. } if reaches(&key(&target.protocol, &target.name), &me) => {
                    f.boxed = true
                }
                Ty::Switch(sw) => {
                    // A wide dispatch (an RPC interface's operations, SMB's commands) is as
                    // large as its largest case; boxing keeps each value a pointer, so that
                    // decoding does not move kilobytes per message.
                    let wide = sw.cases.len() >= WIDE_SWITCH;
                    for c in &mut sw.cases {
                        if let Some(Ty::Unit { target, .. }) = &c.ty {
                            if wide || reaches(&key(&target.protocol, &target.name), &me) {
                                c.boxed = true;
                            }
                        }
                    }
                }
                _ => {}
            });
        }
    }
    // Deferred pointees: a fixpoint over deferring units.
    let mut deferred: HashSet<String> = HashSet::new();
    loop {
        let mut changed = false;
        for p in protocols.iter() {
            for u in &p.units {
                let k = key(&p.name, &u.name);
                if u.kind != ir::UnitKind::Deferred || deferred.contains(&k) {
                    continue;
                }
                if u.fields().any(|f| {
                    has_pointer_or(&f.ty, &|t| deferred.contains(&key(&t.protocol, &t.name)))
                }) {
                    deferred.insert(k);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for p in protocols.iter_mut() {
        let pname = p.name.clone();
        for u in &mut p.units {
            let in_deferring = u.kind == ir::UnitKind::Deferred;
            u.has_deferred = deferred.contains(&key(&pname, &u.name));
            for_each_field_mut(&mut u.items, &mut |f| {
                mark_deferred(&mut f.ty, in_deferring, &|t: &TypeRef| {
                    deferred.contains(&key(&t.protocol, &t.name))
                })
            });
        }
    }
}

fn mark_deferred(ty: &mut Ty, in_deferring: bool, is_def: &dyn Fn(&TypeRef) -> bool) {
    match ty {
        Ty::Unit {
            target, deferred, ..
        } => *deferred = in_deferring && is_def(target),
        Ty::Array { elem, .. } => mark_deferred(elem, in_deferring, is_def),
        Ty::Ptr(inner) => mark_deferred(inner, false, is_def),
        Ty::Switch(sw) => {
            for c in &mut sw.cases {
                if let Some(t) = &mut c.ty {
                    mark_deferred(t, false, is_def);
                }
            }
        }
        _ => {}
    }
}

fn has_pointer_or(ty: &Ty, unit_pred: &dyn Fn(&TypeRef) -> bool) -> bool {
    match ty {
        Ty::Ptr(_) => true,
        Ty::Unit { target, .. } => unit_pred(target),
        Ty::Array { elem, .. } => has_pointer_or(elem, unit_pred),
        _ => false,
    }
}

fn by_value_units(ty: &Ty, out: &mut Vec<TypeRef>) {
    match ty {
        Ty::Unit { target, .. } => out.push(target.clone()),
        Ty::Switch(sw) => {
            for c in &sw.cases {
                if let Some(t) = &c.ty {
                    by_value_units(t, out);
                }
            }
        }
        _ => {}
    }
}

fn for_each_field_mut(items: &mut [ir::Item], f: &mut dyn FnMut(&mut ir::Field)) {
    for item in items {
        match item {
            ir::Item::Field(fl) => f(fl),
            ir::Item::Bits(g) => g.fields.iter_mut().for_each(&mut *f),
            _ => {}
        }
    }
}

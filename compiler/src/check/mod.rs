//! Semantic analysis: from parsed files to the checked [`ir::Program`].
//!
//! Resolves type names across imports, ties every role to the field it governs (a length
//! becomes a decode limit around its target and a patch on encode), packs bit fields into whole
//! bytes, makes layout explicit, and reports every problem with its span.

use std::collections::HashMap;

use protodsl_grammar::ast::{self};
use protodsl_grammar::{Diagnostic, Diagnostics, Source};

use crate::ir::{self, TypeRef};
use crate::load::Loaded;
use graph::finish;
use symbols::ProtoSyms;

mod facts;
mod graph;
mod layout;
mod lower;
mod paths;
mod resolve;
mod roles;
mod size;
mod state;
mod symbols;
#[cfg(test)]
pub(crate) mod testing;
mod validate;

/// Checks loaded files (imports first) and lowers them to the IR.
pub fn check(files: &[Loaded]) -> Result<ir::Program, Diagnostics> {
    let mut cx = Checker::new(files);
    for f in files {
        cx.collect(f);
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
    /// The field the path starts from, and its unit.
    root: String,
    root_unit: TypeRef,
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
    fn new(files: &'a [Loaded]) -> Self {
        Checker {
            files,
            protos: HashMap::new(),
            diags: Diagnostics::default(),
            sizes: Vec::new(),
            cases: Vec::new(),
        }
    }

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
}

fn is_byte_string(base: &ast::BaseType) -> bool {
    matches!(base, ast::BaseType::Named { path, .. } if path.protocol.is_none() && matches!(path.name.name.as_str(), "bytes" | "utf16" | "number"))
}

//! Test support for the passes: specs parsed from inline text, checked whole or pass by pass.

use protodsl_grammar::{parse, Source};

use crate::ir;
use crate::load::Loaded;

/// Parses each text (imports first) as `NAME.proto-dsl`, NAME its protocol.
pub(super) fn loaded(texts: &[&str]) -> Vec<Loaded> {
    texts
        .iter()
        .map(|t| {
            let name = t
                .split_whitespace()
                .nth(1)
                .unwrap_or("t")
                .trim_end_matches(';');
            let source = Source::new(format!("{name}.proto-dsl"), t.to_string());
            let ast = parse(&source).unwrap_or_else(|d| panic!("{d}"));
            Loaded { source, ast }
        })
        .collect()
}

/// The checked program of `texts`, which must be valid.
pub(crate) fn program(texts: &[&str]) -> ir::Program {
    super::check(&loaded(texts)).unwrap_or_else(|d| panic!("{d}"))
}

/// The messages `texts` give, in order.
pub(super) fn errors(texts: &[&str]) -> Vec<String> {
    match super::check(&loaded(texts)) {
        Ok(_) => Vec::new(),
        Err(d) => d.0.into_iter().map(|d| d.message).collect(),
    }
}

/// Unit `name` of the last protocol.
pub(super) fn unit<'p>(p: &'p ir::Program, name: &str) -> &'p ir::Unit {
    let proto = p.protocols.last().expect("a protocol");
    proto
        .units
        .iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("no unit {name}"))
}

/// The field `name` of unit `unit` of the last protocol.
pub(crate) fn field<'p>(p: &'p ir::Program, unit_name: &str, name: &str) -> &'p ir::Field {
    unit(p, unit_name)
        .fields()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no field {name}"))
}

//! The state of lowering one unit: what is known about its fields so far, and the scope an
//! expression sees.

use std::collections::{HashMap, HashSet};

use protodsl_grammar::ast::{self};
use protodsl_grammar::Source;

use super::layout::BitField;
use crate::ir::{self, Conv, ExprTy, TypeRef};

/// Per-unit lowering state that outlives one unit body (inline units created on the way).
pub(super) struct UnitCx {
    pub(super) proto: String,
    pub(super) src: Source,
    pub(super) unit: String,
    pub(super) extra: Vec<ir::Unit>,
}

impl UnitCx {
    pub(super) fn new(proto: &str, src: &Source, unit: &str) -> Self {
        UnitCx {
            proto: proto.to_string(),
            src: src.clone(),
            unit: unit.to_string(),
            extra: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct SizedBy {
    pub(super) length_field: String,
    pub(super) last: String,
    pub(super) unit: ir::SizeUnit,
    pub(super) add: i64,
    pub(super) last_index: usize,
}

#[derive(Debug, Clone)]
pub(super) struct FieldSym {
    pub(super) conv: Conv,
    pub(super) optional: bool,
    pub(super) unit: Option<TypeRef>,
}

pub(super) struct UnitBody {
    /// Length fields declared as hints.
    pub(super) hints: HashSet<String>,
    pub(super) unit_proto: String,
    pub(super) unit_name: String,
    pub(super) params: Vec<(String, ExprTy)>,
    pub(super) nested_lengths: Vec<(String, usize, Vec<ast::Ident>)>,
    pub(super) marks: HashSet<String>,
    pub(super) inclusive: HashMap<String, (String, SizedBy)>,
    pub(super) pending_inclusive: Vec<(String, SizedBy)>,
    pub(super) items: Vec<ir::Item>,
    pub(super) names: HashMap<String, ast::Span>,
    pub(super) scope: HashMap<String, FieldSym>,
    pub(super) sized_by: HashMap<String, Vec<SizedBy>>,
    pub(super) lengths: Vec<(String, ast::Ident, SizedBy)>,
    pub(super) located: HashMap<String, (String, String, i64)>,
    pub(super) measured: std::collections::BTreeSet<String>,
    pub(super) anchors: HashSet<String>,
    pub(super) open_limits: Vec<(String, usize)>,
    pub(super) bits: Vec<(BitField, ast::Span)>,
    pub(super) next: usize,
    pub(super) pads: usize,
    pub(super) reserved: usize,
}

impl UnitBody {
    pub(super) fn new(proto: &str, name: &str, params: Vec<(String, ExprTy)>) -> Self {
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

    pub(super) fn counter(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }
}

/// What names an expression can see.
pub(super) struct Scope {
    pub(super) proto: String,
    pub(super) unit: String,
    pub(super) fields: HashMap<String, FieldSym>,
    pub(super) all_fields: HashSet<String>,
    pub(super) params: Vec<(String, ExprTy)>,
    pub(super) element: Option<TypeRef>,
}

impl Scope {
    pub(super) fn constants(proto: &str) -> Self {
        Scope {
            proto: proto.to_string(),
            unit: String::new(),
            fields: HashMap::new(),
            all_fields: HashSet::new(),
            params: Vec::new(),
            element: None,
        }
    }

    pub(super) fn unit(proto: &str, u: &UnitBody, with_params: bool) -> Self {
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

    pub(super) fn element(proto: &str, u: &UnitBody, elem: TypeRef) -> Self {
        let mut s = Scope::unit(proto, u, true);
        s.element = Some(elem);
        s
    }
}

//! The state of lowering one unit: what is known about its fields so far, and the scope an
//! expression sees.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use protodsl_grammar::ast::{self};
use protodsl_grammar::Source;

use super::layout::BitField;
use super::roles::FieldRoles;
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

/// A length that governs a field: a decode limit around it (bytes, words) or its element
/// count.
#[derive(Debug, Clone)]
pub(super) struct SizedBy {
    pub(super) length_field: String,
    /// The last field the length spans (the target itself, unless a range).
    pub(super) last: String,
    pub(super) unit: ir::SizeUnit,
    pub(super) add: i64,
    pub(super) last_index: usize,
}

/// A field decoded so far, as expressions see it.
#[derive(Debug, Clone)]
pub(super) struct FieldSym {
    pub(super) conv: Conv,
    pub(super) optional: bool,
    pub(super) unit: Option<TypeRef>,
}

/// Where an `@offset` puts its target.
#[derive(Debug, Clone)]
pub(super) struct Locator {
    pub(super) offset_field: String,
    pub(super) from: String,
    pub(super) add: i64,
}

/// A length that counts from an earlier field (`len: u16 @length(of = head .. body)` with the
/// length between them): its limit opens right after the length field.
#[derive(Debug, Clone)]
pub(super) struct Inclusive {
    pub(super) first: String,
    pub(super) sized: SizedBy,
}

/// A decode limit opened and not yet closed: it closes after field `last`.
#[derive(Debug, Clone)]
pub(super) struct OpenLimit {
    pub(super) last: String,
    pub(super) id: usize,
}

/// The names of a unit: every field declared, and the ones decoded so far.
#[derive(Default)]
pub(super) struct FieldNames {
    /// Every named field, with where it is declared.
    pub(super) declared: HashMap<String, ast::Span>,
    /// The fields lowered so far, which expressions may use.
    pub(super) decoded: HashMap<String, FieldSym>,
}

/// What the roles of a unit say about its fields, known before the fields are lowered.
#[derive(Default)]
pub(super) struct RoleFacts {
    /// The parsed roles of each field statement, in order.
    pub(super) per_field: VecDeque<FieldRoles>,
    /// Length fields declared as hints.
    pub(super) hints: HashSet<String>,
    /// The lengths that govern each field, longest span first.
    pub(super) sized_by: HashMap<String, Vec<SizedBy>>,
    /// Every length, by its target: checked against the target's type when it is lowered.
    pub(super) lengths: Vec<(ast::Ident, SizedBy)>,
    /// The fields an `@offset` locates.
    pub(super) located: HashMap<String, Locator>,
    /// Fields whose start is marked, for lengths that count from them.
    pub(super) marks: HashSet<String>,
    /// Lengths that count from an earlier field, by the length field.
    pub(super) inclusive: HashMap<String, Inclusive>,
}

/// The items of a unit as they are laid out.
#[derive(Default)]
pub(super) struct Layout {
    pub(super) items: Vec<ir::Item>,
    /// Bit fields waiting to fill whole bytes.
    pub(super) bits: Vec<BitField>,
    pub(super) open_limits: Vec<OpenLimit>,
    /// Limits of inclusive lengths, opened once their length field is read.
    pub(super) pending_inclusive: Vec<Inclusive>,
    /// Fields whose size or position a length or offset measures.
    pub(super) measured: BTreeSet<String>,
    next_limit: usize,
    pub(super) pads: usize,
    pub(super) reserved: usize,
}

impl Layout {
    /// A fresh limit id.
    pub(super) fn limit_id(&mut self) -> usize {
        self.next_limit += 1;
        self.next_limit - 1
    }
}

/// The state of lowering one unit body.
pub(super) struct UnitBody {
    pub(super) unit_proto: String,
    pub(super) unit_name: String,
    pub(super) params: Vec<(String, ExprTy)>,
    pub(super) names: FieldNames,
    pub(super) facts: RoleFacts,
    pub(super) layout: Layout,
}

impl UnitBody {
    pub(super) fn new(proto: &str, name: &str, params: Vec<(String, ExprTy)>) -> Self {
        UnitBody {
            unit_proto: proto.to_string(),
            unit_name: name.to_string(),
            params,
            names: FieldNames::default(),
            facts: RoleFacts::default(),
            layout: Layout::default(),
        }
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
            fields: u.names.decoded.clone(),
            all_fields: u.names.declared.keys().cloned().collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expression_sees_decoded_fields_and_parameters_when_allowed() {
        let mut u = UnitBody::new("t", "A", vec![("n".into(), ExprTy::Int)]);
        u.names.declared.insert("x".into(), ast::Span::default());
        u.names.declared.insert("y".into(), ast::Span::default());
        let sym = FieldSym {
            conv: Conv::Int,
            optional: false,
            unit: None,
        };
        u.names.decoded.insert("x".into(), sym);
        let s = Scope::unit("t", &u, true);
        assert!(s.fields.contains_key("x") && !s.fields.contains_key("y"));
        assert!(s.all_fields.contains("y"));
        assert_eq!(s.params.len(), 1);
        assert!(Scope::unit("t", &u, false).params.is_empty());
        assert_eq!((u.layout.limit_id(), u.layout.limit_id()), (0, 1));
    }
}

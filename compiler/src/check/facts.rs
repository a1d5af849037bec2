//! What a unit's roles say about its fields, gathered before the fields are lowered: which
//! lengths govern which field (a decode limit around it, or its element count), which fields
//! an offset locates, and every field's parsed roles.

use protodsl_grammar::ast::{self, StmtKind};
use protodsl_grammar::Source;

use super::roles::{self, LengthSpec, LengthTarget, OffsetSpec, RoleSpec};
use super::state::{Inclusive, Locator, SizedBy, UnitBody};
use super::Checker;
use crate::ir::SizeUnit;

/// The named fields of a unit, in order.
struct Order(Vec<String>);

impl Order {
    fn index(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|n| n == name)
    }
}

impl Checker<'_> {
    /// First pass over a unit: field names (duplicates), every role parsed, and what each
    /// length and offset says about its target, so that a target can be sized when it is
    /// reached.
    pub(super) fn collect_fields(&mut self, src: &Source, u: &mut UnitBody, body: &[ast::Stmt]) {
        let order = self.declare_fields(src, u, body);
        for stmt in body {
            let StmtKind::Field(f) = &stmt.kind else {
                continue;
            };
            let Some(fname) = &f.name else {
                if let Some(r) = f.roles.first() {
                    self.err(src, r.span, "a field with a role needs a name");
                }
                u.facts.per_field.push_back(Vec::new());
                continue;
            };
            let mut specs = Vec::new();
            for role in &f.roles {
                let parsed = roles::parse(src, role);
                if !roles::is_layout_role(role) {
                    // Reported when the field itself is lowered.
                    specs.push(parsed);
                    continue;
                }
                let ok = match &parsed {
                    Err(d) => {
                        self.diags.push(d.clone());
                        false
                    }
                    Ok(RoleSpec::Length(l)) => self.length_facts(src, u, &order, &fname.name, l),
                    Ok(RoleSpec::Offset(o)) => self.offset_facts(src, u, &order, &fname.name, o),
                    Ok(_) => true,
                };
                if ok {
                    specs.push(parsed);
                }
            }
            u.facts.per_field.push_back(specs);
        }
    }

    /// Records every named field, reporting duplicates.
    fn declare_fields(&mut self, src: &Source, u: &mut UnitBody, body: &[ast::Stmt]) -> Order {
        let mut order = Vec::new();
        for stmt in body {
            let StmtKind::Field(ast::Field { name: Some(n), .. }) = &stmt.kind else {
                continue;
            };
            if let Some(first) = u.names.declared.get(&n.name) {
                let (l, c) = src.line_col(first.start);
                self.err_hint(
                    src,
                    n.span,
                    format!("field `{}` is defined twice", n.name),
                    format!("first defined at line {l}, column {c}"),
                );
            } else {
                u.names.declared.insert(n.name.clone(), n.span);
                order.push(n.name.clone());
            }
        }
        Order(order)
    }

    /// Checks that the fields a length names exist in order.
    fn known_in_order(
        &mut self,
        src: &Source,
        order: &Order,
        role: &str,
        ends: &[&ast::Ident],
    ) -> bool {
        let mut ok = true;
        for t in ends {
            if order.index(&t.name).is_none() {
                self.err_hint(
                    src,
                    t.span,
                    format!("unknown field `{}` in @{role}", t.name),
                    format!("the fields of this unit are: {}", order.0.join(", ")),
                );
                ok = false;
            }
        }
        ok
    }

    /// What a length says about its target: a limit around it (or its count) when the length
    /// comes first, a limit that opens after the length when it sits inside its range.
    fn length_facts(
        &mut self,
        src: &Source,
        u: &mut UnitBody,
        order: &Order,
        field: &str,
        l: &LengthSpec,
    ) -> bool {
        if l.hint {
            u.facts.hints.insert(field.to_string());
        }
        let LengthTarget::Fields { first, last } = &l.target else {
            return true; // a nested length is resolved when its field is lowered
        };
        let ends: &[&ast::Ident] = if first.name == last.name {
            &[first]
        } else {
            &[first, last]
        };
        if !self.known_in_order(src, order, &l.role, ends) {
            return false;
        }
        if order.index(&first.name) > order.index(&last.name) {
            self.err(
                src,
                l.of_span,
                format!("`{}` comes after `{}`", first.name, last.name),
            );
            return false;
        }
        let (me, start, end) = (
            order.index(field),
            order.index(&first.name),
            order.index(&last.name),
        );
        let counted = u
            .facts
            .sized_by
            .get(&first.name)
            .is_some_and(|v| v.iter().any(|s| s.unit == SizeUnit::Elements));
        let governs = !l.hint
            && me < start
            && !(counted
                || (l.unit == SizeUnit::Elements && u.facts.sized_by.contains_key(&first.name)));
        let inclusive = !l.hint && me > start && me < end;
        let info = SizedBy {
            length_field: field.to_string(),
            last: last.name.clone(),
            unit: l.unit,
            add: l.add,
            last_index: end.unwrap_or(0),
        };
        if governs {
            let v = u.facts.sized_by.entry(first.name.clone()).or_default();
            v.push(info.clone());
            v.sort_by_key(|s| std::cmp::Reverse(s.last_index));
        }
        if inclusive && l.unit != SizeUnit::Elements {
            u.facts.marks.insert(first.name.clone());
            u.facts.inclusive.insert(
                field.to_string(),
                Inclusive {
                    first: first.name.clone(),
                    sized: info.clone(),
                },
            );
        }
        u.facts.lengths.push((first.clone(), info));
        true
    }

    /// What an offset says about its target: it comes later, located by this field.
    fn offset_facts(
        &mut self,
        src: &Source,
        u: &mut UnitBody,
        order: &Order,
        field: &str,
        o: &OffsetSpec,
    ) -> bool {
        let target = &o.target;
        if !self.known_in_order(src, order, "offset", &[target]) {
            return false;
        }
        if order.index(&target.name) <= order.index(field) {
            self.err(
                src,
                target.span,
                format!(
                    "`{}` must come after the offset that locates it",
                    target.name
                ),
            );
            return false;
        }
        let locator = Locator {
            offset_field: field.to_string(),
            from: o.from.clone(),
            add: o.add,
        };
        if u.facts
            .located
            .insert(target.name.clone(), locator)
            .is_some()
        {
            self.err(
                src,
                target.span,
                format!("`{}` is located by two offsets", target.name),
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use protodsl_grammar::ast::ItemKind;

    use super::super::testing::loaded;
    use super::*;

    /// The facts gathered from the first unit of `spec`, and the messages given.
    fn facts(spec: &str) -> (UnitBody, Vec<String>) {
        let files = loaded(&[spec]);
        let mut cx = Checker::new(&files);
        let ItemKind::Unit(unit) = &files[0].ast.items[0].kind else {
            panic!("a unit first")
        };
        let mut u = UnitBody::new("t", "A", Vec::new());
        cx.collect_fields(&files[0].source, &mut u, &unit.body);
        let msgs = cx.diags.0.into_iter().map(|d| d.message).collect();
        (u, msgs)
    }

    #[test]
    fn a_length_before_its_target_governs_it() {
        let (u, e) = facts("protocol t;\nunit A {\n    n: u16 @length(of = a .. b, add = 2);\n    a: u8;\n    b: bytes;\n}\n");
        assert!(e.is_empty(), "{e:?}");
        let g = &u.facts.sized_by["a"][0];
        assert_eq!(
            (g.length_field.as_str(), g.last.as_str(), g.add),
            ("n", "b", 2)
        );
        assert_eq!(u.facts.lengths.len(), 1);
        assert_eq!(u.facts.per_field.len(), 3, "one entry per field statement");
    }

    #[test]
    fn a_length_inside_its_range_counts_from_the_first_field() {
        let (u, e) = facts("protocol t;\nunit A {\n    head: u8;\n    n: u16 @length(of = head .. body);\n    body: bytes;\n}\n");
        assert!(e.is_empty(), "{e:?}");
        assert!(u.facts.sized_by.is_empty());
        assert!(u.facts.marks.contains("head"));
        assert_eq!(u.facts.inclusive["n"].first, "head");
    }

    #[test]
    fn hints_do_not_govern_and_offsets_locate() {
        let (u, e) = facts("protocol t;\nunit A {\n    n: u16 @length(hint, of = d);\n    o: u16 @offset(of = d, from = start, add = 4);\n    d: bytes;\n}\n");
        assert!(e.is_empty(), "{e:?}");
        assert!(u.facts.hints.contains("n") && u.facts.sized_by.is_empty());
        let l = &u.facts.located["d"];
        assert_eq!(
            (l.offset_field.as_str(), l.from.as_str(), l.add),
            ("o", "start", 4)
        );
    }

    #[test]
    fn other_roles_wait_for_their_field() {
        let (u, e) =
            facts("protocol t;\nunit A {\n    x: u8 @colour;\n    n: u8 @length(of = nope);\n}\n");
        assert_eq!(
            e,
            ["unknown field `nope` in @length"],
            "the unknown role is reported later"
        );
        assert!(u.facts.per_field[0][0].is_err());
        assert!(
            u.facts.per_field[1].is_empty(),
            "a failed length is dropped"
        );
    }
}

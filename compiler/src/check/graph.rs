//! The whole-program containment graph: which fields must be boxed (a unit that contains
//! itself, the large cases of a wide switch, a layer's only large message) and which units
//! defer their pointees (NDR).

use std::collections::{HashMap, HashSet};

use super::size::Sizes;
use crate::ir::{self, Ty, TypeRef};

/// Switches with at least this many cases store their large unit cases boxed.
pub(super) const WIDE_SWITCH: usize = 8;
/// A wide switch's unit case estimated larger than this many bytes is boxed; smaller ones are
/// stored inline (a box is an allocation per message).
pub(super) const LARGE_CASE: usize = 128;

/// Marks fields that must be boxed (a unit containing itself, the cases of a wide switch, a
/// layer's only large message) and the units whose pointees are deferred.
pub(super) fn finish(protocols: &mut [ir::Protocol]) {
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
    let mut sizes = Sizes::new(protocols);
    let large: HashSet<String> = protocols
        .iter()
        .flat_map(|p| p.units.iter().map(move |u| (p, u)))
        .filter(|(p, u)| {
            sizes.unit(&TypeRef {
                protocol: p.name.clone(),
                name: u.name.clone(),
            }) > LARGE_CASE
        })
        .map(|(p, u)| key(&p.name, &u.name))
        .collect();
    drop(sizes);
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
    // A layer's only large message beside small alternatives (judged by the same estimates).
    let lopsided = lopsided_cases(protocols, &large);
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
                    // large as its largest case; boxing its large cases keeps each value
                    // small, so that decoding does not move kilobytes per message.
                    let wide = sw.cases.len() >= WIDE_SWITCH;
                    for c in &mut sw.cases {
                        if let Some(Ty::Unit { target, .. }) = &c.ty {
                            let k = key(&target.protocol, &target.name);
                            let layer = lopsided.contains(&(k.clone(), me.clone()));
                            if (wide && large.contains(&k)) || layer || reaches(&k, &me) {
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

/// The (case unit, switch's unit) pairs where a narrow switch between messages (units
/// without parameters: one layer carrying the next) has one large message case beside small
/// alternatives, such as SMB1 in the SMB envelope beside raw bytes. Stored inline, that
/// message would be moved whole through each enclosing layer's value and `Result` on every
/// decode; boxed, a pointer is. A switch whose large case itself holds such a boxed
/// switch is left alone: that case is small already.
fn lopsided_cases(
    protocols: &[ir::Protocol],
    large: &HashSet<String>,
) -> HashSet<(String, String)> {
    let messages: HashSet<String> = protocols
        .iter()
        .flat_map(|p| p.units.iter().map(move |u| (p, u)))
        .filter(|(_, u)| u.params.is_empty())
        .map(|(p, u)| format!("{}::{}", p.name, u.name))
        .collect();
    let mut found = HashSet::new();
    for p in protocols {
        for u in p.units.iter().filter(|u| u.params.is_empty()) {
            let me = format!("{}::{}", p.name, u.name);
            for f in u.fields() {
                let Ty::Switch(sw) = &f.ty else { continue };
                if sw.cases.len() >= WIDE_SWITCH {
                    continue;
                }
                let large_cases: Vec<Option<String>> = sw
                    .cases
                    .iter()
                    .map(|c| match &c.ty {
                        Some(Ty::Unit { target, .. }) => {
                            Some(format!("{}::{}", target.protocol, target.name))
                        }
                        _ => None,
                    })
                    .filter(|k| k.as_ref().is_some_and(|k| large.contains(k)))
                    .collect();
                if let [Some(only)] = &large_cases[..] {
                    if messages.contains(only) {
                        found.insert((only.clone(), me.clone()));
                    }
                }
            }
        }
    }
    let holders: HashSet<String> = found.iter().map(|(_, me)| me.clone()).collect();
    found.retain(|(k, _)| !holders.contains(k));
    found
}

pub(super) fn mark_deferred(ty: &mut Ty, in_deferring: bool, is_def: &dyn Fn(&TypeRef) -> bool) {
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

pub(super) fn has_pointer_or(ty: &Ty, unit_pred: &dyn Fn(&TypeRef) -> bool) -> bool {
    match ty {
        Ty::Ptr(_) => true,
        Ty::Unit { target, .. } => unit_pred(target),
        Ty::Array { elem, .. } => has_pointer_or(elem, unit_pred),
        _ => false,
    }
}

pub(super) fn by_value_units(ty: &Ty, out: &mut Vec<TypeRef>) {
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

pub(super) fn for_each_field_mut(items: &mut [ir::Item], f: &mut dyn FnMut(&mut ir::Field)) {
    for item in items {
        match item {
            ir::Item::Field(fl) => f(fl),
            ir::Item::Bits(g) => g.fields.iter_mut().for_each(&mut *f),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{field, program, unit};
    use crate::ir::Ty;

    #[test]
    fn a_unit_that_contains_itself_is_boxed() {
        let p = program(&["protocol t;\nunit Node {\n    k: u8;\n    next: switch (k) {\n        0 -> End: ();\n        _ -> More: Node;\n    };\n}\nunit Pair {\n    a: u8;\n}\nunit Top {\n    p: Pair;\n}\n"]);
        let Ty::Switch(sw) = &field(&p, "Node", "next").ty else {
            panic!("a switch")
        };
        assert!(sw.cases[1].boxed, "Node reaches itself");
        assert!(!field(&p, "Top", "p").boxed, "Pair does not reach Top");
    }

    #[test]
    fn wide_switches_box_their_large_units() {
        let cases: String = (0..8)
            .map(|i| {
                format!(
                    "        {i} -> C{i}: {};\n",
                    if i % 2 == 0 { "Pair" } else { "Big" }
                )
            })
            .collect();
        let spec = format!("protocol t;\nunit Pair {{\n    a: u8;\n}}\nunit Big {{\n    a: bytes[1];\n    b: bytes[1];\n    c: bytes[1];\n    d: bytes[1];\n    e: bytes[1];\n}}\nunit Top {{\n    k: u8;\n    s: switch (k) {{\n{cases}    }};\n}}\n");
        let p = program(&[&spec]);
        let Ty::Switch(sw) = &field(&p, "Top", "s").ty else {
            panic!("a switch")
        };
        assert!(sw
            .cases
            .iter()
            .all(|c| c.boxed == c.name.ends_with(['1', '3', '5', '7'])));
    }

    #[test]
    fn a_layers_only_large_message_is_boxed_once() {
        let big = "unit Big {\n    a: bytes[1];\n    b: bytes[1];\n    c: bytes[1];\n    d: bytes[1];\n    e: bytes[1];\n}\n";
        let layer = |name: &str, inner: &str| {
            format!("unit {name} {{\n    s: switch (next_is(b\"x\")) {{\n        true -> M: {inner};\n        _ -> O: bytes;\n    }};\n}}\n")
        };
        let spec = format!(
            "protocol t;\n{big}unit Param(k: u8) {{\n    b: Big;\n}}\n{}{}unit Top {{\n    k: u8;\n    s: switch (k) {{\n        0 -> P: Param(k);\n        _ -> O: bytes;\n    }};\n}}\n",
            layer("Inner", "Big"),
            layer("Outer", "Inner"),
        );
        let p = program(&[&spec]);
        let boxed = |unit: &str| {
            let Ty::Switch(sw) = &field(&p, unit, "s").ty else {
                panic!("a switch")
            };
            sw.cases[0].boxed
        };
        assert!(boxed("Inner"), "the large message beside bytes");
        assert!(!boxed("Outer"), "Inner is small once its case is boxed");
        assert!(
            !boxed("Top"),
            "a unit with parameters is part of its message"
        );
    }

    #[test]
    fn deferring_units_defer_their_pointees() {
        let p = program(&["protocol t;\nunit S: deferred {\n    p: ptr<u32>;\n}\nunit Outer: deferred {\n    s: S;\n}\nunit Plain {\n    s: S;\n}\n"]);
        assert!(unit(&p, "S").has_deferred && unit(&p, "Outer").has_deferred);
        assert!(matches!(
            field(&p, "Outer", "s").ty,
            Ty::Unit { deferred: true, .. }
        ));
        assert!(matches!(
            field(&p, "Plain", "s").ty,
            Ty::Unit {
                deferred: false,
                ..
            }
        ));
    }
}

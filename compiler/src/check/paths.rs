//! Paths through units: `found(a.b.c)`, nested lengths, and the `@size(...)` and `is(...)`
//! references resolved once every unit is lowered.

use protodsl_grammar::ast::{self, TypeKind};
use protodsl_grammar::Source;

use super::graph::for_each_field_mut;
use super::lower::case_name;
use super::{camel, Checker, PendingSize};
use crate::ir::{self, Conv, Ty, TypeRef};

impl Checker<'_> {
    /// Resolves a path below a unit from the declarations: unit fields, arrays (any element),
    /// switch cases by name. The path may end anywhere.
    pub(super) fn ast_path(
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
            let field = self.declared_field(&unit.protocol, &unit.name, &seg.name);
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
    pub(super) fn value_path(
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
            let field = self.declared_field(&cur.0, &cur.1, &seg.name);
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

    /// Checks every `is(field, Case)`: the field is a switch with that case.
    pub(super) fn resolve_cases(&mut self, protocols: &[ir::Protocol]) {
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
    pub(super) fn resolve_sizes(&mut self, protocols: &mut [ir::Protocol]) {
        for p in std::mem::take(&mut self.sizes) {
            match size_steps(protocols, &p) {
                Ok(steps) => self.apply_size(protocols, &p, steps),
                Err((span, msg)) => self.err(&p.src, span, msg),
            }
        }
    }

    /// Sets the `size_from` of the field a `@size` sizes, which must be a byte string that has
    /// no size of its own.
    fn apply_size(
        &mut self,
        protocols: &mut [ir::Protocol],
        p: &PendingSize,
        steps: Vec<ir::PathStep>,
    ) {
        let text = std::iter::once(p.root.clone())
            .chain(p.segments.iter().map(|s| s.name.clone()))
            .collect::<Vec<_>>()
            .join(".");
        let unit = protocols
            .iter_mut()
            .find(|q| q.name == p.protocol)
            .and_then(|q| q.units.iter_mut().find(|u| u.name == p.unit));
        let Some(unit) = unit else { return };
        for_each_field_mut(&mut unit.items, &mut |f| {
            if f.name == p.field {
                f.size_from = Some(ir::SizeFrom {
                    root: p.root.clone(),
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
            self.err_hint(
                &p.src,
                p.span,
                format!(
                    "@size sizes `{}`, which must be `bytes` or `utf16` without a size of its own",
                    p.field
                ),
                "drop `[...]` or `until`",
            );
        }
    }
}

/// The steps of a `@size` path, from its root unit to the number at its end.
fn size_steps(
    protocols: &[ir::Protocol],
    p: &PendingSize,
) -> Result<Vec<ir::PathStep>, (ast::Span, String)> {
    let mut steps = Vec::new();
    let mut unit = p.root_unit.clone();
    let mut i = 0;
    'walk: while i < p.segments.len() {
        let seg = &p.segments[i];
        let Some(u) = protocols
            .iter()
            .find(|q| q.name == unit.protocol)
            .and_then(|q| q.units.iter().find(|u| u.name == unit.name))
        else {
            return Err((seg.span, format!("unit `{}` is not known", unit.name)));
        };
        let Some(f) = u.fields().find(|f| f.name == seg.name) else {
            return Err((
                seg.span,
                format!("unit `{}` has no field `{}`", unit.name, seg.name),
            ));
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
                        return Err((
                            seg.span,
                            format!("`{}` is a switch: name one of its cases next", seg.name),
                        ));
                    };
                    let Some(case) = sw.cases.iter().find(|c| c.name == case_seg.name) else {
                        let names: Vec<&str> = sw.cases.iter().map(|c| c.name.as_str()).collect();
                        return Err((
                            case_seg.span,
                            format!(
                                "switch `{}` has no case `{}` (its cases: {})",
                                sw.name,
                                case_seg.name,
                                names.join(", ")
                            ),
                        ));
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
                            return Err((
                                case_seg.span,
                                format!("case `{}` carries nothing", case_seg.name),
                            ));
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
                    return Err((seg.span, format!("`{}` cannot hold a size: the path must end at a number or an unsigned integer", seg.name)));
                }
            }
        }
    }
    if !matches!(steps.last(), Some(ir::PathStep::Leaf { .. })) {
        return Err((
            p.span,
            "the path must end at a number or an unsigned integer".to_string(),
        ));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{field, program};
    use crate::ir::{self, PathStep};

    const HEAD: &str = "protocol t;\nunit H {\n    k: u8;\n    s: switch (k) {\n        1 -> Len: unit {\n            n: u8 @length;\n        };\n        _ -> Other: ();\n    };\n}\nunit M {\n    h: H;\n    data: bytes @size(h.s.Len.n);\n    x: u8 if found(h.s.Len);\n}\n";

    #[test]
    fn a_size_path_walks_units_and_cases() {
        let p = program(&[HEAD]);
        let size = field(&p, "M", "data").size_from.as_ref().expect("a size");
        assert_eq!((size.root.as_str(), size.text.as_str()), ("h", "h.s.Len.n"));
        let kinds: Vec<String> = size
            .steps
            .iter()
            .map(|s| match s {
                PathStep::Field { name, .. } => format!("field {name}"),
                PathStep::Case { case, .. } => format!("case {case}"),
                PathStep::Elements => "elements".into(),
                PathStep::Leaf { bits, .. } => format!("leaf u{bits}"),
            })
            .collect();
        assert_eq!(kinds, ["field s", "case Len", "field n", "leaf u8"]);
    }

    #[test]
    fn found_resolves_through_cases() {
        let p = program(&[HEAD]);
        let Some(ir::Expr::Found { root, steps }) = &field(&p, "M", "x").cond else {
            panic!("found()")
        };
        assert_eq!(root, "h");
        assert_eq!(steps.len(), 2);
    }
}

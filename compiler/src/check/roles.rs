//! Roles: what a field's `@role(...)` annotations say, and the facts they give about other
//! fields (a length's target, an offset's target) before the unit is lowered.

use protodsl_grammar::ast::{self, StmtKind};
use protodsl_grammar::Source;

use super::state::{Scope, SizedBy, UnitBody, UnitCx};
use super::{Checker, PendingSize};
use crate::ir::{self, ExprTy};

impl Checker<'_> {
    /// First pass over a unit: field names (duplicates), and what each role says about its
    /// target, so that a target can be sized when it is reached.
    pub(super) fn collect_fields(&mut self, ucx: &UnitCx, u: &mut UnitBody, body: &[ast::Stmt]) {
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
    pub(super) fn lower_remember(
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
    pub(super) fn pending_size(&mut self, ucx: &UnitCx, u: &UnitBody, field: &str, r: &ast::Role) {
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

    pub(super) fn role_int(&mut self, src: &Source, role: &ast::Role, key: &str) -> Option<i64> {
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

    pub(super) fn lower_role(
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
}

pub(super) fn r_index(role: &ast::Role) -> usize {
    role.span.start
}

pub(super) fn role_arg<'r>(
    role: &'r ast::Role,
    key: &str,
    position: usize,
) -> Option<&'r ast::RoleArg> {
    role.args
        .iter()
        .find(|a| a.key.as_ref().is_some_and(|k| k.name == key))
        .or_else(|| role.args.get(position).filter(|a| a.key.is_none()))
}

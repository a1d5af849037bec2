//! Roles parsed once: each `@role(...)` annotation becomes a typed [`RoleSpec`] (its arguments
//! checked) before its unit is lowered. What a spec says about other fields (a length's target,
//! an offset's target) is gathered by `facts.rs`; lowering turns specs into `ir::Role`s.

use protodsl_grammar::ast::{self, RoleValue};
use protodsl_grammar::{Diagnostic, Source};

use crate::ir::{self, Issuer, RuntimeRole, SizeUnit};

/// A role as written, with its arguments checked.
#[derive(Debug, Clone)]
pub(super) enum RoleSpec {
    /// `@length(of = ...)` or `@count(of = ...)`.
    Length(LengthSpec),
    /// `@length` alone: a size held for a `@size` elsewhere.
    Held,
    /// `@offset(of = field, from = anchor, add = n)`.
    Offset(OffsetSpec),
    /// `@size(root.a.b)`: the path to the number that holds this field's size.
    Size {
        segments: Vec<ast::Ident>,
        span: ast::Span,
    },
    /// `@remember(name, key)` or `@append(name, key)`.
    Remember {
        name: String,
        key: ast::Expr,
        append: bool,
    },
    /// A role the encoder does not compute (cookie, address, ...).
    Plain(RuntimeRole),
}

#[derive(Debug, Clone)]
pub(super) struct LengthSpec {
    pub(super) target: LengthTarget,
    pub(super) unit: SizeUnit,
    pub(super) add: i64,
    /// `@length(hint, of = x)`: a length the sender may get wrong.
    pub(super) hint: bool,
    /// `length` or `count`, as written.
    pub(super) role: String,
    /// Where the target is written.
    pub(super) of_span: ast::Span,
}

#[derive(Debug, Clone)]
pub(super) enum LengthTarget {
    /// `of = field` (first == last) or `of = first .. last`.
    Fields { first: ast::Ident, last: ast::Ident },
    /// `of = a.b.c`: a value reached through nested fields.
    Nested(Vec<ast::Ident>),
}

#[derive(Debug, Clone)]
pub(super) struct OffsetSpec {
    pub(super) target: ast::Ident,
    /// The anchor the offset counts from (empty: the start of the message).
    pub(super) from: String,
    pub(super) add: i64,
}

/// The roles of one field statement, parsed.
pub(super) type FieldRoles = Vec<Result<RoleSpec, Diagnostic>>;

/// Whether a role places or sizes other fields, so that its problems are reported when the
/// unit's layout is gathered rather than when its own field is lowered.
pub(super) fn is_layout_role(r: &ast::Role) -> bool {
    matches!(r.name.name.as_str(), "length" | "count" | "offset")
}

/// Parses one role annotation.
pub(super) fn parse(src: &Source, r: &ast::Role) -> Result<RoleSpec, Diagnostic> {
    let err = |span, msg: String| Diagnostic::new(src, span, msg);
    let hint = |span, msg: &str, hint: &str| Diagnostic::new(src, span, msg).with_hint(hint);
    let name = r.name.name.as_str();
    match name {
        "length" | "count" => parse_length(src, r),
        "offset" => {
            let target = match role_arg(r, "of", 0).map(|a| &a.value) {
                Some(RoleValue::Dotted(p)) if p.len() == 1 => p[0].clone(),
                _ => {
                    return Err(hint(
                        r.span,
                        "@offset needs a target field of this unit",
                        "write `@offset(of = field, from = anchor)`",
                    ))
                }
            };
            let from = match role_arg(r, "from", 1).map(|a| &a.value) {
                Some(RoleValue::Dotted(p)) if p.len() == 1 => p[0].name.clone(),
                None => String::new(),
                Some(_) => return Err(err(r.span, "`from` names an anchor".into())),
            };
            let add = role_int(src, r, "add")?.unwrap_or(0);
            Ok(RoleSpec::Offset(OffsetSpec { target, from, add }))
        }
        "size" => match r.args.as_slice() {
            [ast::RoleArg {
                key: None,
                value: RoleValue::Dotted(p),
                ..
            }] if p.len() >= 2 => Ok(RoleSpec::Size {
                segments: p.clone(),
                span: r.span,
            }),
            _ => Err(hint(
                r.span,
                "@size takes a path to the field that holds the size",
                "write `@size(head.content_length)`",
            )),
        },
        "remember" | "append" => parse_remember(src, r),
        _ => parse_plain(src, r).map(RoleSpec::Plain),
    }
}

fn parse_length(src: &Source, r: &ast::Role) -> Result<RoleSpec, Diagnostic> {
    let name = r.name.name.as_str();
    let Some(of) = role_arg(r, "of", 0) else {
        if name == "length" && r.args.is_empty() {
            return Ok(RoleSpec::Held);
        }
        return Err(
            Diagnostic::new(src, r.span, format!("@{name} needs a target")).with_hint(
                "write `of = field`, or `@length` alone on a number that a `@size` path reaches",
            ),
        );
    };
    let hint = r.args.iter().any(|a| {
        a.key.is_none()
            && matches!(&a.value, RoleValue::Dotted(p) if p.len() == 1 && p[0].name == "hint")
    });
    let target = match &of.value {
        RoleValue::Dotted(p) if p.len() > 1 => LengthTarget::Nested(p.clone()),
        RoleValue::Dotted(p) if p.len() == 1 => LengthTarget::Fields {
            first: p[0].clone(),
            last: p[0].clone(),
        },
        RoleValue::Range(a, b) if a.len() == 1 && b.len() == 1 => LengthTarget::Fields {
            first: a[0].clone(),
            last: b[0].clone(),
        },
        _ => {
            return Err(Diagnostic::new(
                src,
                of.span,
                "the target of a length must be a field of this unit",
            )
            .with_hint("write `of = field` or `of = first .. last`"))
        }
    };
    let unit = if name == "count" {
        SizeUnit::Elements
    } else {
        match role_arg(r, "unit", usize::MAX).map(|a| &a.value) {
            None => SizeUnit::Bytes,
            Some(RoleValue::Dotted(p)) if p.len() == 1 => SizeUnit::from_name(&p[0].name)
                .ok_or_else(|| {
                    Diagnostic::new(
                        src,
                        p[0].span,
                        format!("unknown length unit `{}`", p[0].name),
                    )
                    .with_hint("the units are bytes, elements and words")
                })?,
            Some(_) => {
                return Err(Diagnostic::new(
                    src,
                    r.span,
                    "the unit of a length is bytes, elements or words",
                ))
            }
        }
    };
    if let LengthTarget::Fields { first, last } = &target {
        if unit == SizeUnit::Elements && first.name != last.name {
            return Err(Diagnostic::new(
                src,
                of.span,
                "a count takes one field, not a range",
            ));
        }
    }
    let add = role_int(src, r, "add")?.unwrap_or(0);
    Ok(RoleSpec::Length(LengthSpec {
        target,
        unit,
        add,
        hint,
        role: name.to_string(),
        of_span: of.span,
    }))
}

/// `@remember(name, key)`: the key is a field name, an expression or an integer.
fn parse_remember(src: &Source, r: &ast::Role) -> Result<RoleSpec, Diagnostic> {
    let key = match r.args.as_slice() {
        [ast::RoleArg {
            key: None,
            value: RoleValue::Dotted(n),
            ..
        }, ast::RoleArg {
            key: None,
            value,
            span,
        }] if n.len() == 1 => match value {
            RoleValue::Dotted(k) if k.len() == 1 => Some((
                n,
                ast::ExprKind::Path(ast::Path {
                    protocol: None,
                    name: k[0].clone(),
                    span: *span,
                }),
                *span,
            )),
            RoleValue::Expr(k) => Some((n, k.kind.clone(), k.span)),
            RoleValue::Int(k) => Some((n, ast::ExprKind::Int(*k), *span)),
            _ => None,
        },
        _ => None,
    };
    let Some((n, kind, span)) = key else {
        return Err(
            Diagnostic::new(src, r.span, "@remember takes a name and a key")
                .with_hint("write `@remember(interface, context_id)`"),
        );
    };
    Ok(RoleSpec::Remember {
        name: n[0].name.clone(),
        key: ast::Expr { kind, span },
        append: r.name.name == "append",
    })
}

/// The roles the runtime sees as written.
fn parse_plain(src: &Source, r: &ast::Role) -> Result<RuntimeRole, Diagnostic> {
    let name = r.name.name.as_str();
    let dotted = |v: Option<&RoleValue>| match v {
        Some(RoleValue::Dotted(p)) => Some(
            p.iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join("."),
        ),
        _ => None,
    };
    let single = |v: Option<&RoleValue>| match v {
        Some(RoleValue::Dotted(p)) if p.len() == 1 => Some(p[0].name.clone()),
        _ => None,
    };
    let hinted = |msg: String, hint: &str| Diagnostic::new(src, r.span, msg).with_hint(hint);
    Ok(match name {
        "cookie" => {
            let namespace = match role_arg(r, "namespace", 0).map(|a| &a.value) {
                Some(RoleValue::Str(s)) => s.clone(),
                v => dotted(v).ok_or_else(|| {
                    hinted(
                        "@cookie needs a namespace".into(),
                        "write `@cookie(smb.mid, issuer = client)`",
                    )
                })?,
            };
            let issuer = single(role_arg(r, "issuer", usize::MAX).map(|a| &a.value))
                .and_then(|i| Issuer::from_name(&i))
                .ok_or_else(|| {
                    hinted(
                        "@cookie needs an issuer".into(),
                        "write `issuer = client` or `issuer = server`",
                    )
                })?;
            RuntimeRole::Cookie { namespace, issuer }
        }
        "choice" | "index" => {
            let list = single(r.args.first().map(|a| &a.value)).ok_or_else(|| {
                hinted(
                    format!("@{name} needs the name of the option list"),
                    "write `@choice(dialects)` on each option and `@index(dialects)` on the answer",
                )
            })?;
            if name == "choice" {
                RuntimeRole::Choice { list }
            } else {
                RuntimeRole::Index { list }
            }
        }
        "artifact" => {
            let key = dotted(role_arg(r, "key", 0).map(|a| &a.value)).ok_or_else(|| {
                hinted(
                    "@artifact needs the cookie namespace that names the file".into(),
                    "write `@artifact(key = smb.fid, offset = offset)`",
                )
            })?;
            let offset = match role_arg(r, "offset", 1) {
                None => String::new(),
                Some(a) => single(Some(&a.value)).ok_or_else(|| {
                    Diagnostic::new(src, a.span, "@artifact's offset is the name of a field")
                })?,
            };
            RuntimeRole::Artifact { key, offset }
        }
        "timestamp" => {
            let format = match r.args.first().map(|a| &a.value) {
                Some(RoleValue::Str(s)) => s.clone(),
                None => "raw".to_string(),
                v => single(v).ok_or_else(|| {
                    Diagnostic::new(src, r.span, "@timestamp takes a format name")
                })?,
            };
            RuntimeRole::Timestamp { format }
        }
        _ => match RuntimeRole::plain(name) {
            Some(role) => {
                if let Some(a) = r.args.first() {
                    return Err(Diagnostic::new(
                        src,
                        a.span,
                        format!("@{name} takes no arguments"),
                    ));
                }
                role
            }
            None => {
                let names: Vec<String> = honeyfarm_roles::DSL_NAMES
                    .iter()
                    .map(|n| format!("@{n}"))
                    .collect();
                return Err(
                    Diagnostic::new(src, r.name.span, format!("unknown role `@{name}`"))
                        .with_hint(format!("the roles are {}", names.join(", "))),
                );
            }
        },
    })
}

/// An integer argument (`add = -4`).
fn role_int(src: &Source, role: &ast::Role, key: &str) -> Result<Option<i64>, Diagnostic> {
    match role_arg(role, key, usize::MAX).map(|a| (&a.value, a.span)) {
        None => Ok(None),
        Some((RoleValue::Int(v), span)) => i64::try_from(*v)
            .map(Some)
            .map_err(|_| Diagnostic::new(src, span, "value out of range")),
        Some((_, span)) => Err(Diagnostic::new(
            src,
            span,
            format!("`{key}` takes an integer"),
        )),
    }
}

/// The argument named `key`, else the unnamed one at `position`.
fn role_arg<'r>(role: &'r ast::Role, key: &str, position: usize) -> Option<&'r ast::RoleArg> {
    role.args
        .iter()
        .find(|a| a.key.as_ref().is_some_and(|k| k.name == key))
        .or_else(|| role.args.get(position).filter(|a| a.key.is_none()))
}

/// The IR role of a parsed spec whose targets need nothing more than the spec itself.
pub(super) fn simple_role(spec: &RoleSpec) -> Option<ir::Role> {
    Some(match spec {
        RoleSpec::Held => ir::Role::Held,
        RoleSpec::Offset(o) => ir::Role::Offset {
            target: o.target.name.clone(),
            from: o.from.clone(),
            add: o.add,
        },
        RoleSpec::Length(LengthSpec {
            target: LengthTarget::Fields { first, last },
            unit,
            add,
            ..
        }) => ir::Role::Length {
            first: first.name.clone(),
            last: last.name.clone(),
            unit: *unit,
            add: *add,
        },
        RoleSpec::Plain(r) => ir::Role::Plain(r.clone()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The roles of the first field of a one-unit spec.
    fn roles(field: &str) -> Vec<Result<RoleSpec, String>> {
        let text = format!("protocol t;\nunit A {{\n    {field}\n}}\n");
        let src = Source::new("t.proto-dsl", text);
        let file = protodsl_grammar::parse(&src).expect("parses");
        let ast::ItemKind::Unit(u) = &file.items[0].kind else {
            panic!("a unit")
        };
        let ast::StmtKind::Field(f) = &u.body[0].kind else {
            panic!("a field")
        };
        f.roles
            .iter()
            .map(|r| parse(&src, r).map_err(|d| d.message))
            .collect()
    }

    fn one(field: &str) -> Result<RoleSpec, String> {
        roles(field).remove(0)
    }

    #[test]
    fn lengths_ranges_counts_and_nested_paths() {
        let Ok(RoleSpec::Length(l)) = one("n: u16 @length(of = a .. b, unit = words, add = -2);")
        else {
            panic!("a length")
        };
        assert!(
            matches!(&l.target, LengthTarget::Fields { first, last } if first.name == "a" && last.name == "b")
        );
        assert_eq!((l.unit, l.add, l.hint), (SizeUnit::Words, -2, false));
        let Ok(RoleSpec::Length(c)) = one("n: u16 @count(hint, of = items);") else {
            panic!("a count")
        };
        assert_eq!((c.unit, c.hint), (SizeUnit::Elements, true));
        let Ok(RoleSpec::Length(n)) = one("n: u32 @length(of = name.value.data);") else {
            panic!("a nested length")
        };
        assert!(matches!(&n.target, LengthTarget::Nested(p) if p.len() == 3));
        assert!(matches!(one("n: u16 @length;"), Ok(RoleSpec::Held)));
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(one("n: u16 @count;").unwrap_err(), "@count needs a target");
        assert_eq!(
            one("n: u16 @length(of = x, unit = bits);").unwrap_err(),
            "unknown length unit `bits`"
        );
        assert_eq!(
            one("n: u16 @count(of = a .. b);").unwrap_err(),
            "a count takes one field, not a range"
        );
        assert_eq!(
            one("n: u16 @length(of = x, add = y);").unwrap_err(),
            "`add` takes an integer"
        );
    }

    #[test]
    fn plain_roles() {
        let Ok(RoleSpec::Plain(c)) = one("mid: u16 @cookie(smb.mid, issuer = server);") else {
            panic!("a cookie")
        };
        assert_eq!(c.to_string(), "cookie(smb.mid, server)");
        assert!(matches!(
            one("a: u16 @timestamp;"),
            Ok(RoleSpec::Plain(RuntimeRole::Timestamp { format })) if format == "raw"
        ));
        assert!(matches!(
            one("a: u16 @port;"),
            Ok(RoleSpec::Plain(RuntimeRole::Port))
        ));
        assert_eq!(
            one("a: u16 @port(x);").unwrap_err(),
            "@port takes no arguments"
        );
        assert_eq!(
            one("a: u16 @colour;").unwrap_err(),
            "unknown role `@colour`"
        );
        assert_eq!(
            one("a: u16 @cookie(x);").unwrap_err(),
            "@cookie needs an issuer"
        );
    }

    #[test]
    fn every_role_of_a_field_parses_once_in_order() {
        let got = roles("fid: u16 @cookie(smb.fid, issuer = server) @remember(pipe, 0);");
        assert!(matches!(
            got[0],
            Ok(RoleSpec::Plain(RuntimeRole::Cookie { .. }))
        ));
        assert!(
            matches!(&got[1], Ok(RoleSpec::Remember { name, append: false, .. }) if name == "pipe")
        );
        assert!(matches!(
            one("d: bytes @size(head.length);"),
            Ok(RoleSpec::Size { segments, .. }) if segments.len() == 2
        ));
        assert!(matches!(
            one("o: u16 @offset(of = data, from = smb, add = 4);"),
            Ok(RoleSpec::Offset(OffsetSpec { from, add: 4, .. })) if from == "smb"
        ));
    }
}

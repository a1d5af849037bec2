//! Lowering a field's parsed roles into IR roles, its `@remember` and its `@size`.

use protodsl_grammar::ast;

use crate::check::roles::{self, LengthSpec, LengthTarget, RoleSpec};
use crate::check::state::{Scope, UnitBody, UnitCx};
use crate::check::{Checker, PendingSize};
use crate::ir::{self, ExprTy};

/// A field's roles, lowered.
#[derive(Default)]
pub(in crate::check) struct LoweredRoles {
    pub(in crate::check) roles: Vec<ir::Role>,
    pub(in crate::check) remember: Option<(String, ir::Expr, ExprTy)>,
    pub(in crate::check) append: bool,
}

impl Checker<'_> {
    /// Lowers the roles parsed for field `name` (reporting the problems found when parsing).
    pub(in crate::check) fn lower_field_roles(
        &mut self,
        ucx: &UnitCx,
        u: &UnitBody,
        name: &str,
        specs: roles::FieldRoles,
    ) -> LoweredRoles {
        let mut out = LoweredRoles::default();
        for spec in specs {
            match spec {
                Err(d) => self.diags.push(d),
                Ok(RoleSpec::Size { segments, span }) => {
                    self.pending_size(ucx, u, name, &segments, span)
                }
                Ok(RoleSpec::Remember { name, key, append }) => {
                    out.remember = self.lower_remember(ucx, u, name, &key);
                    out.append = append;
                }
                Ok(RoleSpec::Length(LengthSpec {
                    target: LengthTarget::Nested(path),
                    unit,
                    add,
                    ..
                })) => {
                    let steps = self.value_path(&ucx.src, &u.unit_proto, &u.unit_name, &path, unit);
                    if let Some(steps) = steps {
                        out.roles.push(ir::Role::ValueLength {
                            path: steps,
                            text: path
                                .iter()
                                .map(|i| i.name.as_str())
                                .collect::<Vec<_>>()
                                .join("."),
                            unit,
                            add,
                        });
                    }
                }
                Ok(spec) => out.roles.extend(roles::simple_role(&spec)),
            }
        }
        out
    }

    /// `@remember(name, key)`: the key is a field decoded before, or a parameter.
    fn lower_remember(
        &mut self,
        ucx: &UnitCx,
        u: &UnitBody,
        name: String,
        key: &ast::Expr,
    ) -> Option<(String, ir::Expr, ExprTy)> {
        let scope = Scope::unit(&ucx.proto, u, true);
        let (e, ty) = self.lower_expr(&ucx.src, &scope, key)?;
        if ty == ExprTy::Bool {
            self.err(&ucx.src, key.span, "a memory key is a number or bytes");
            return None;
        }
        Some((name, e, ty))
    }

    /// `@size(root.a.b)`: checks the root (an earlier unit field) now, the rest once every unit
    /// is lowered.
    fn pending_size(
        &mut self,
        ucx: &UnitCx,
        u: &UnitBody,
        field: &str,
        segments: &[ast::Ident],
        span: ast::Span,
    ) {
        let src = &ucx.src;
        let root = &segments[0];
        let Some(sym) = u.names.decoded.get(&root.name) else {
            let msg = if u.names.declared.contains_key(&root.name) {
                format!(
                    "`{}` must come before `{field}` to hold its size",
                    root.name
                )
            } else {
                format!("unknown field `{}` in @size", root.name)
            };
            self.err(src, root.span, msg);
            return;
        };
        let Some(unit) = sym.unit.clone() else {
            self.err(
                src,
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
            root: root.name.clone(),
            root_unit: unit,
            segments: segments[1..].to_vec(),
            src: src.clone(),
            span,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::{field, program};
    use crate::ir::{self, ExprTy, Role, RuntimeRole};

    #[test]
    fn every_kind_of_role_lowers() {
        let p = program(&["protocol t;\nunit V {\n    data: bytes;\n}\nunit A {\n    n: u32 @length(of = v.data, unit = words);\n    o: u16 @offset(of = v);\n    mid: u16 @cookie(smb.mid, issuer = client) @remember(m, 0);\n    v: V;\n}\n"]);
        let roles = |f: &str| field(&p, "A", f).roles.clone();
        assert!(
            matches!(&roles("n")[0], Role::ValueLength { text, unit: ir::SizeUnit::Words, .. } if text == "v.data")
        );
        assert!(matches!(&roles("o")[0], Role::Offset { target, .. } if target == "v"));
        assert!(matches!(
            &roles("mid")[0],
            Role::Plain(RuntimeRole::Cookie { .. })
        ));
        let mid = field(&p, "A", "mid");
        assert!(matches!(&mid.remember, Some((name, _, ExprTy::Int)) if name == "m"));
        assert!(!mid.append);
        assert_eq!(
            roles("n")[0].runtime().to_string(),
            "length(of=v.data)",
            "the runtime sees a nested length as a length"
        );
    }
}

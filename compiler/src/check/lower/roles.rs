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
            root: (root.name.clone(), unit),
            segments: segments[1..].to_vec(),
            src: src.clone(),
            span,
        });
    }
}

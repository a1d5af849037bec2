//! Name resolution: units, protocols, constants and anchors across imports, and the value
//! conversion of a declared field.

use protodsl_grammar::ast::{self, ItemKind, StmtKind, TypeKind};
use protodsl_grammar::Source;

use super::state::Scope;
use super::{int_type, is_byte_string, Checker};
use crate::ir::{Conv, TypeRef};

impl<'a> Checker<'a> {
    pub(super) fn resolve_unit(
        &mut self,
        src: &Source,
        proto: &str,
        path: &ast::Path,
    ) -> Option<TypeRef> {
        let target_proto = self.target_protocol(src, proto, path)?;
        if self.protos[&target_proto]
            .units
            .contains_key(&path.name.name)
        {
            Some(TypeRef {
                protocol: target_proto,
                name: path.name.name.clone(),
            })
        } else {
            self.err(src, path.name.span, format!("unknown unit `{path}`"));
            None
        }
    }

    pub(super) fn target_protocol(
        &mut self,
        src: &Source,
        proto: &str,
        path: &ast::Path,
    ) -> Option<String> {
        match &path.protocol {
            None => Some(proto.to_string()),
            Some(p) if p.name == proto => Some(proto.to_string()),
            Some(p)
                if self.protos[proto].imports.contains(&p.name)
                    && self.protos.contains_key(&p.name) =>
            {
                Some(p.name.clone())
            }
            Some(p) => {
                self.err_hint(
                    src,
                    p.span,
                    format!("unknown protocol `{}`", p.name),
                    format!("add `import {};`", p.name),
                );
                None
            }
        }
    }

    /// The declaration of field `field` of unit `unit` in protocol `proto`.
    pub(super) fn declared_field(
        &self,
        proto: &str,
        unit: &str,
        field: &str,
    ) -> Option<&'a ast::Field> {
        let u = self.protos.get(proto)?.units.get(unit)?;
        u.body.iter().find_map(|s| match &s.kind {
            StmtKind::Field(f) if f.name.as_ref().is_some_and(|n| n.name == field) => Some(f),
            _ => None,
        })
    }

    /// The value conversion of a field of some unit, from its declaration.
    pub(super) fn unit_field_conv(&self, proto: &str, unit: &str, field: &str) -> Option<Conv> {
        let f = self.declared_field(proto, unit, field)?;
        Some(self.ast_conv(proto, &f.ty))
    }

    pub(super) fn ast_conv(&self, proto: &str, te: &ast::TypeExpr) -> Conv {
        match &te.kind {
            TypeKind::Switch(_) => Conv::Unit,
            TypeKind::Inline { .. } => Conv::Unit,
            TypeKind::Sized { base, size, .. } => {
                if size.is_some() && !is_byte_string(base) {
                    return Conv::Seq;
                }
                match base {
                    ast::BaseType::Named { path, .. } => {
                        let n = path.name.name.as_str();
                        if int_type(n).is_some() {
                            return Conv::Int;
                        }
                        match n {
                            "bytes" | "cstring" | "sp" | "ows" | "token" => return Conv::Bytes,
                            "utf16" | "utf16z" => return Conv::Utf16,
                            "number" => return Conv::Number,
                            _ => {}
                        }
                        let p = path.protocol.as_ref().map_or(proto, |p| p.name.as_str());
                        match self.protos.get(p).and_then(|s| s.enums.get(n)) {
                            Some(e) if e.is_flags => Conv::Flags,
                            Some(_) => Conv::Enum,
                            None => Conv::Unit,
                        }
                    }
                    ast::BaseType::CiLiteral(_) | ast::BaseType::Literal(_) => Conv::Bytes,
                    ast::BaseType::Ptr(_) => Conv::Unit,
                }
            }
        }
    }

    /// Evaluates a constant expression: literals, constants, enum variants.
    pub(super) fn const_eval(
        &mut self,
        src: &Source,
        scope: &Scope,
        e: &ast::Expr,
        stack: &mut Vec<String>,
    ) -> Option<i128> {
        use ast::ExprKind as K;
        match &e.kind {
            K::Int(v) => Some(*v),
            K::Bool(b) => Some(i128::from(*b)),
            K::Path(p) => {
                // `Enum::Variant`, `proto::CONST`, `CONST`.
                let (proto, name) = match &p.protocol {
                    Some(q) if self.protos[&scope.proto].enums.contains_key(&q.name) => {
                        let en = self.protos[&scope.proto].enums[&q.name];
                        return match en.variants.iter().find(|v| v.name.name == p.name.name) {
                            Some(v) => Some(v.value),
                            None => {
                                self.err(
                                    src,
                                    p.name.span,
                                    format!("enum `{}` has no variant `{}`", q.name, p.name.name),
                                );
                                None
                            }
                        };
                    }
                    Some(_) => (
                        self.target_protocol(src, &scope.proto, p)?,
                        p.name.name.clone(),
                    ),
                    None => (scope.proto.clone(), p.name.name.clone()),
                };
                let key = format!("{proto}::{name}");
                if stack.contains(&key) {
                    self.err(
                        src,
                        e.span,
                        format!("constant `{name}` is defined in terms of itself"),
                    );
                    return None;
                }
                let Some(def) = self.protos[&proto].consts.get(&name).copied() else {
                    self.err(src, e.span, format!("unknown name `{p}`"));
                    return None;
                };
                stack.push(key);
                let def_src = self.protos[&proto].file.source.clone();
                let v = self.const_eval(&def_src, &Scope::constants(&proto), def, stack);
                stack.pop();
                v
            }
            K::Unary(ast::UnOp::Neg, a) => self.const_eval(src, scope, a, stack)?.checked_neg(),
            K::Unary(ast::UnOp::Not, a) => {
                Some(i128::from(self.const_eval(src, scope, a, stack)? == 0))
            }
            K::Binary(op, a, b) => {
                let x = self.const_eval(src, scope, a, stack)?;
                let y = self.const_eval(src, scope, b, stack)?;
                use ast::BinOp::*;
                let v = match op {
                    Add => x.checked_add(y),
                    Sub => x.checked_sub(y),
                    Mul => x.checked_mul(y),
                    Div => x.checked_div(y),
                    Rem => x.checked_rem(y),
                    Shl => u32::try_from(y).ok().and_then(|y| x.checked_shl(y)),
                    Shr => u32::try_from(y).ok().and_then(|y| x.checked_shr(y)),
                    BitOr => Some(x | y),
                    BitAnd => Some(x & y),
                    BitXor => Some(x ^ y),
                    Eq => Some(i128::from(x == y)),
                    Ne => Some(i128::from(x != y)),
                    Lt => Some(i128::from(x < y)),
                    Le => Some(i128::from(x <= y)),
                    Gt => Some(i128::from(x > y)),
                    Ge => Some(i128::from(x >= y)),
                    And => Some(i128::from(x != 0 && y != 0)),
                    Or => Some(i128::from(x != 0 || y != 0)),
                };
                if v.is_none() {
                    self.err(src, e.span, "constant arithmetic overflows");
                }
                v
            }
            _ => {
                self.err(src, e.span, "expected a constant integer");
                None
            }
        }
    }

    pub(super) fn anchor_known(&self, name: &str) -> bool {
        self.files.iter().any(|f| {
            f.ast.items.iter().any(|i| match &i.kind {
                ItemKind::Unit(u) => body_has_anchor(&u.body, name),
                _ => false,
            })
        })
    }
}

pub(super) fn body_has_anchor(body: &[ast::Stmt], name: &str) -> bool {
    body.iter().any(|s| match &s.kind {
        StmtKind::Anchor(a) => a.name == name,
        StmtKind::Field(f) => type_has_anchor(&f.ty, name),
        _ => false,
    })
}

pub(super) fn type_has_anchor(te: &ast::TypeExpr, name: &str) -> bool {
    match &te.kind {
        TypeKind::Inline { body, .. } => body_has_anchor(body, name),
        TypeKind::Switch(sw) => sw
            .cases
            .iter()
            .any(|c| c.ty.as_ref().is_some_and(|t| type_has_anchor(t, name))),
        TypeKind::Sized { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{errors, program};

    #[test]
    fn constants_resolve_across_imports_and_enums() {
        let p = program(&[
            "protocol base;\nconst BASE = 16;\nunit U {\n    x: u8;\n}\n",
            "protocol t;\nimport base;\nenum K: u8 {\n    A = 2,\n}\nconst X = base::BASE * K::A + Y;\nconst Y = 1 << 2;\nunit M {\n    x: u8;\n}\n",
        ]);
        let t = &p.protocols[1];
        let x = t.consts.iter().find(|c| c.name == "X").expect("X");
        assert_eq!(x.value, 36);
    }

    #[test]
    fn a_protocol_must_be_imported_to_be_named() {
        let e = errors(&[
            "protocol base;\nunit U {\n    x: u8;\n}\n",
            "protocol t;\nunit M {\n    u: base::U;\n}\n",
        ]);
        assert_eq!(e, ["unknown protocol `base`"]);
    }

    #[test]
    fn anchors_are_known_in_any_unit() {
        let p = program(&[
            "protocol t;\nunit H {\n    anchor start;\n    x: u8;\n}\nunit M {\n    o: u8 @offset(of = d, from = start);\n    d: bytes;\n}\n",
        ]);
        assert_eq!(p.protocols[0].units.len(), 2);
    }
}

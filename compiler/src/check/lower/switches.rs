//! Lowering switches: their cases, patterns and case names.

use std::collections::HashMap;

use protodsl_grammar::ast::{self, TypeKind};
use protodsl_grammar::Source;

use crate::check::state::{Scope, UnitBody, UnitCx};
use crate::check::{camel, Checker};
use crate::ir::{self, ExprTy, Ty};

impl Checker<'_> {
    pub(in crate::check) fn lower_switch(
        &mut self,
        ucx: &mut UnitCx,
        u: &mut UnitBody,
        field: &str,
        sw: &ast::Switch,
    ) -> Option<ir::Switch> {
        let src = ucx.src.clone();
        let enum_name = format!("{}{}", ucx.unit, camel(field));
        let scope = Scope::unit(&ucx.proto, u, true);
        let mut on = Vec::new();
        let mut tys = Vec::new();
        for e in &sw.on {
            let (ex, ty) = self.lower_expr(&src, &scope, e)?;
            on.push(ex);
            tys.push(ty);
        }
        let mut cases = Vec::new();
        let mut names: HashMap<String, ast::Span> = HashMap::new();
        let mut seen_default = false;
        for (ci, case) in sw.cases.iter().enumerate() {
            if seen_default {
                self.err(
                    &src,
                    case.span,
                    "this case can never match: a `_` case comes before it",
                );
            }
            let mut patterns = Vec::new();
            for p in &case.patterns {
                if p.elems.is_empty() {
                    seen_default = true;
                    patterns.push(Vec::new());
                    continue;
                }
                if p.elems.len() != on.len() {
                    self.err(
                        &src,
                        p.span,
                        format!(
                            "this pattern has {} element(s) but the switch has {}",
                            p.elems.len(),
                            on.len()
                        ),
                    );
                    continue;
                }
                let mut pats = Vec::new();
                for (el, ty) in p.elems.iter().zip(&tys) {
                    pats.push(self.lower_pattern(&src, &ucx.proto, el, *ty, p.span)?);
                }
                patterns.push(pats);
            }
            let name = case_name(case, ci);
            if let Some(first) = names.insert(name.clone(), case.span) {
                let (l, c) = src.line_col(first.start);
                self.err_hint(&src, case.span, format!("two cases are named `{name}`"), format!("name this case (`pattern -> Name: Type;`); the other is at line {l}, column {c}, or join the patterns with `|`"));
            }
            let ty = match &case.ty {
                None => None,
                Some(te) => {
                    let case_field = format!("{field}_{name}");
                    let t = match &te.kind {
                        TypeKind::Inline { kind, body } => {
                            let iname = format!("{enum_name}{name}");
                            let target =
                                self.lower_inline(ucx, &iname, kind.as_ref(), body, te.span)?;
                            Ty::Unit {
                                target,
                                args: Vec::new(),
                                deferred: false,
                            }
                        }
                        _ => self.lower_type(ucx, u, &case_field, te, None)?,
                    };
                    if matches!(t, Ty::Literal(_)) {
                        self.err(&src, te.span, "a literal case carries nothing: write `()`");
                    }
                    Some(t)
                }
            };
            cases.push(ir::Case {
                name,
                boxed: false,
                patterns,
                ty,
            });
        }
        if cases.is_empty() {
            self.err(
                &src,
                sw.on.first().map_or_else(ast::Span::default, |e| e.span),
                "a switch needs at least one case",
            );
            return None;
        }
        Some(ir::Switch {
            name: enum_name,
            on,
            cases,
        })
    }

    pub(in crate::check) fn lower_pattern(
        &mut self,
        src: &Source,
        proto: &str,
        el: &ast::PatternElem,
        ty: ExprTy,
        span: ast::Span,
    ) -> Option<ir::Pat> {
        let pat = match (el, ty) {
            (ast::PatternElem::Wildcard, _) => ir::Pat::Any,
            (ast::PatternElem::Int(v), ExprTy::Int) => ir::Pat::Int(*v),
            (ast::PatternElem::Bool(b), ExprTy::Bool) => ir::Pat::Bool(*b),
            (ast::PatternElem::Bytes(b), ExprTy::Bytes) => ir::Pat::Bytes(b.clone()),
            (ast::PatternElem::CiBytes(b), ExprTy::Bytes) => ir::Pat::CiBytes(b.clone()),
            (ast::PatternElem::Path(p), ExprTy::Int) => {
                let scope = Scope::constants(proto);
                let e = ast::Expr {
                    kind: ast::ExprKind::Path(p.clone()),
                    span: p.span,
                };
                ir::Pat::Int(self.const_eval(src, &scope, &e, &mut Vec::new())?)
            }
            _ => {
                self.err(
                    src,
                    span,
                    format!(
                        "this pattern does not fit a switch on {}",
                        match ty {
                            ExprTy::Int => "an integer",
                            ExprTy::Bool => "true/false",
                            ExprTy::Bytes => "bytes",
                        }
                    ),
                );
                return None;
            }
        };
        Some(pat)
    }
}

/// The name of a switch case: as written (`-> Name: Type`), else its unit type's name, else its
/// single enum-variant pattern's name, `Other` for the catch-all, `CaseN` otherwise.
pub(in crate::check) fn case_name(case: &ast::SwitchCase, index: usize) -> String {
    if let Some(n) = &case.name {
        return n.name.clone();
    }
    if let Some(ast::TypeExpr {
        kind:
            TypeKind::Sized {
                base: ast::BaseType::Named { path, .. },
                size: None,
                ..
            },
        ..
    }) = &case.ty
    {
        if path
            .name
            .name
            .chars()
            .next()
            .is_some_and(char::is_uppercase)
        {
            return path.name.name.clone();
        }
    }
    match case.patterns.first().and_then(|p| p.elems.first()) {
        Some(ast::PatternElem::Path(p)) if p.protocol.is_some() && case.patterns.len() == 1 => {
            p.name.name.clone()
        }
        _ if case.patterns.iter().all(|p| p.elems.is_empty()) => "Other".to_string(),
        _ => format!("Case{index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::{field, program};
    use crate::ir::{Pat, Ty};

    #[test]
    fn case_names_and_patterns() {
        let p = program(&["protocol t;\nenum K: u8 {\n    Ping = 1,\n    Pong = 2,\n}\nunit Body {\n    x: u8;\n}\nunit A {\n    k: u8;\n    s: switch (k) {\n        K::Ping -> ();\n        2 | 3 -> Body;\n        4 -> Named: u8;\n        5 -> u16;\n        _ -> ();\n    };\n}\n"]);
        let Ty::Switch(sw) = &field(&p, "A", "s").ty else {
            panic!("a switch")
        };
        let names: Vec<&str> = sw.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Ping", "Body", "Named", "Case3", "Other"]);
        assert_eq!(sw.name, "AS");
        assert!(
            matches!(sw.cases[0].patterns[0][0], Pat::Int(1)),
            "a variant is its value"
        );
        assert_eq!(sw.cases[1].patterns.len(), 2);
        assert!(sw.cases[4].patterns[0].is_empty(), "the catch-all");
    }
}

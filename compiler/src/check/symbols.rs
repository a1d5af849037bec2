//! Scope building: the names each protocol declares (units, enums, constants), its imports,
//! byte order and text settings, with duplicates and redefined built-ins reported.

use std::collections::{HashMap, HashSet};

use protodsl_grammar::ast::{self, ItemKind};

use super::{int_type, Checker, BUILTIN_TYPES};
use crate::ir::{self};
use crate::load::Loaded;

impl<'a> Checker<'a> {
    pub(super) fn collect(&mut self, f: &'a Loaded) {
        let src = &f.source;
        let mut syms = ProtoSyms {
            file: f,
            imports: HashSet::new(),
            units: HashMap::new(),
            enums: HashMap::new(),
            consts: HashMap::new(),
            order: Some(ast::ByteOrder::Big),
            text: ir::TextConfig {
                terminator: b"\r\n".to_vec(),
                max_line: 4096,
            },
        };
        let mut names: HashMap<&str, ast::Span> = HashMap::new();
        let mut dup = |cx: &mut Self, name: &'a ast::Ident| {
            if let Some(first) = names.insert(&name.name, name.span) {
                let (l, c) = src.line_col(first.start);
                cx.err_hint(
                    src,
                    name.span,
                    format!("`{}` is defined twice", name.name),
                    format!("first defined at line {l}, column {c}"),
                );
                false
            } else if BUILTIN_TYPES.contains(&name.name.as_str()) || int_type(&name.name).is_some()
            {
                cx.err(
                    src,
                    name.span,
                    format!("`{}` is a built-in type and cannot be redefined", name.name),
                );
                false
            } else {
                true
            }
        };
        for item in &f.ast.items {
            match &item.kind {
                ItemKind::Import(n) => {
                    syms.imports.insert(n.name.clone());
                }
                ItemKind::DefaultOrder(o) => syms.order = *o,
                ItemKind::Text { terminator, max } => {
                    syms.text = ir::TextConfig {
                        terminator: terminator.clone(),
                        max_line: *max,
                    }
                }
                ItemKind::Const { name, value } => {
                    if dup(self, name) {
                        syms.consts.insert(name.name.clone(), value);
                    }
                }
                ItemKind::Enum(e) => {
                    if dup(self, &e.name) {
                        syms.enums.insert(e.name.name.clone(), e);
                    }
                }
                ItemKind::Unit(u) => {
                    if dup(self, &u.name) {
                        syms.units.insert(u.name.name.clone(), u);
                    }
                }
                ItemKind::Framing(_) => {}
            }
        }
        self.protos.insert(f.ast.protocol.name.clone(), syms);
    }
}

pub(super) struct ProtoSyms<'a> {
    pub(super) file: &'a Loaded,
    pub(super) imports: HashSet<String>,
    pub(super) units: HashMap<String, &'a ast::UnitDef>,
    pub(super) enums: HashMap<String, &'a ast::EnumDef>,
    pub(super) consts: HashMap<String, &'a ast::Expr>,
    pub(super) order: Option<ast::ByteOrder>,
    pub(super) text: ir::TextConfig,
}

#[cfg(test)]
mod tests {
    use super::super::testing::loaded;
    use super::*;

    #[test]
    fn declarations_imports_order_and_text_settings() {
        let files = loaded(&[
            "protocol base;\nunit Body {\n    x: u8;\n}\n",
            "protocol t;\nimport base;\nbyte_order inherit;\ntext line \"\\n\" max 80;\nconst N = 3;\nenum K: u8 {\n    A = 1,\n}\nunit M {\n    b: base::Body;\n}\n",
        ]);
        let mut cx = Checker::new(&files);
        for f in &files {
            cx.collect(f);
        }
        assert!(cx.diags.is_empty());
        let t = &cx.protos["t"];
        assert!(t.imports.contains("base"));
        assert!(
            t.units.contains_key("M") && t.enums.contains_key("K") && t.consts.contains_key("N")
        );
        assert_eq!(t.order, None, "inherit");
        assert_eq!(
            (t.text.terminator.as_slice(), t.text.max_line),
            (&b"\n"[..], 80)
        );
        assert_eq!(
            cx.protos["base"].order,
            Some(ast::ByteOrder::Big),
            "the default"
        );
    }

    #[test]
    fn duplicates_and_built_ins_are_refused() {
        let files = loaded(&[
            "protocol t;\nconst A = 1;\nunit A {\n    x: u8;\n}\nunit u16 {\n    x: u8;\n}\n",
        ]);
        let mut cx = Checker::new(&files);
        cx.collect(&files[0]);
        let msgs: Vec<_> = cx.diags.0.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "`A` is defined twice",
                "`u16` is a built-in type and cannot be redefined"
            ]
        );
        assert!(cx.protos["t"].consts.contains_key("A") && !cx.protos["t"].units.contains_key("A"));
    }
}

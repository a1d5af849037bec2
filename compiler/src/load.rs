//! Reads spec files and everything they import, in dependency order.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use protodsl_grammar::ast::{self, ItemKind};
use protodsl_grammar::{parse, Diagnostic, Diagnostics, Source};

/// One parsed file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub source: Source,
    pub ast: ast::File,
}

impl Loaded {
    pub fn imports(&self) -> impl Iterator<Item = &ast::Ident> {
        self.ast.items.iter().filter_map(|i| match &i.kind {
            ItemKind::Import(name) => Some(name),
            _ => None,
        })
    }
}

/// Every file read, imports before importers.
#[derive(Debug, Default)]
pub struct Loader {
    include_dirs: Vec<PathBuf>,
    files: Vec<Loaded>,
    by_path: HashMap<PathBuf, usize>,
    /// Files that did not parse: reported once, however many files import them.
    failed: HashSet<PathBuf>,
    diags: Diagnostics,
}

impl Loader {
    pub fn new(include_dirs: &[PathBuf]) -> Self {
        Loader {
            include_dirs: include_dirs.to_vec(),
            ..Loader::default()
        }
    }

    /// Loads `roots` and their imports.
    pub fn load(mut self, roots: &[PathBuf]) -> Result<Vec<Loaded>, Diagnostics> {
        for root in roots {
            let text = match std::fs::read_to_string(root) {
                Ok(t) => t,
                Err(e) => {
                    let src = Source::new(root.clone(), "");
                    self.diags.push(Diagnostic::new(
                        &src,
                        ast::Span::default(),
                        format!("cannot read {}: {e}", root.display()),
                    ));
                    continue;
                }
            };
            self.visit(root.clone(), text, &mut Vec::new());
        }
        self.check_unique_protocols();
        if self.diags.is_empty() {
            Ok(self.files)
        } else {
            Err(self.diags)
        }
    }

    fn visit(
        &mut self,
        path: PathBuf,
        text: String,
        stack: &mut Vec<(PathBuf, String)>,
    ) -> Option<usize> {
        let key = canonical(&path);
        if let Some(&i) = self.by_path.get(&key) {
            return Some(i);
        }
        if self.failed.contains(&key) {
            return None;
        }
        let source = Source::new(path.clone(), text);
        let file = match parse(&source) {
            Ok(f) => f,
            Err(d) => {
                self.diags.push(d);
                self.failed.insert(key);
                return None;
            }
        };
        stack.push((key.clone(), file.protocol.name.clone()));
        let loaded = Loaded { source, ast: file };
        for import in loaded.imports().cloned().collect::<Vec<_>>() {
            self.visit_import(&loaded, &import, stack);
        }
        stack.pop();
        self.files.push(loaded);
        let i = self.files.len() - 1;
        self.by_path.insert(key, i);
        Some(i)
    }

    fn visit_import(
        &mut self,
        from: &Loaded,
        import: &ast::Ident,
        stack: &mut Vec<(PathBuf, String)>,
    ) {
        let file_name = format!("{}.proto-dsl", import.name);
        let dir = from
            .source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let candidates: Vec<PathBuf> = std::iter::once(dir)
            .chain(self.include_dirs.iter().cloned())
            .map(|d| d.join(&file_name))
            .collect();
        let Some(found) = candidates.iter().find(|c| c.is_file()) else {
            let searched: Vec<String> =
                candidates.iter().map(|c| c.display().to_string()).collect();
            self.diags.push(
                Diagnostic::new(
                    &from.source,
                    import.span,
                    format!("cannot find protocol `{}` to import", import.name),
                )
                .with_hint(format!("looked for {}", searched.join(", "))),
            );
            return;
        };
        let key = canonical(found);
        if let Some(pos) = stack.iter().position(|(p, _)| *p == key) {
            let mut cycle: Vec<&str> = stack[pos..].iter().map(|(_, n)| n.as_str()).collect();
            cycle.push(&import.name);
            self.diags.push(
                Diagnostic::new(
                    &from.source,
                    import.span,
                    format!("import cycle: {}", cycle.join(" -> ")),
                )
                .with_hint("move the shared units into a protocol both can import"),
            );
            return;
        }
        match std::fs::read_to_string(found) {
            Ok(text) => {
                if let Some(i) = self.visit(found.clone(), text, stack) {
                    let declared = &self.files[i].ast.protocol.name;
                    if *declared != import.name {
                        self.diags.push(Diagnostic::new(
                            &from.source,
                            import.span,
                            format!(
                                "{} declares protocol `{declared}`, not `{}`",
                                found.display(),
                                import.name
                            ),
                        ));
                    }
                }
            }
            Err(e) => self.diags.push(Diagnostic::new(
                &from.source,
                import.span,
                format!("cannot read {}: {e}", found.display()),
            )),
        }
    }

    fn check_unique_protocols(&mut self) {
        let mut seen: HashMap<&str, &Loaded> = HashMap::new();
        let mut dups = Vec::new();
        for f in &self.files {
            if let Some(first) = seen.insert(&f.ast.protocol.name, f) {
                dups.push(
                    Diagnostic::new(
                        &f.source,
                        f.ast.protocol.span,
                        format!("protocol `{}` is declared twice", f.ast.protocol.name),
                    )
                    .with_hint(format!("first declared in {}", first.source.path.display())),
                );
            }
        }
        for d in dups {
            self.diags.push(d);
        }
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

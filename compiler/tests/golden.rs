//! Golden diagnostics: every `tests/diagnostics/*.proto-dsl` is a bad spec, and the `.stderr`
//! beside it the diagnostics it gives, as `protodslc check` prints them (paths relative to
//! `tests/diagnostics`). Specs they import live in `tests/diagnostics/imports`.
//!
//! `UPDATE_GOLDEN=1 cargo test -p protodsl-compiler --test golden` rewrites the `.stderr`
//! files; review the diff before committing it.

use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diagnostics")
}

/// The bad specs, sorted.
fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/diagnostics exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "proto-dsl"))
        .collect();
    v.sort();
    v
}

/// The rendered diagnostics of `spec`, with the directory left out of paths.
fn render(spec: &Path) -> String {
    let imports = dir().join("imports");
    let diags = match protodsl_compiler::check_files(&[spec.to_path_buf()], &[imports]) {
        Ok(_) => return "(no diagnostics: the spec is valid)\n".to_string(),
        Err(d) => d,
    };
    let canonical = std::fs::canonicalize(dir()).expect("the directory exists");
    diags
        .to_string()
        .replace(&format!("{}/", canonical.display()), "")
        .replace(&format!("{}/", dir().display()), "")
        + "\n"
}

#[test]
fn every_bad_spec_gives_its_golden_diagnostics() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failed = Vec::new();
    for spec in cases() {
        let got = render(&spec);
        let golden = spec.with_extension("stderr");
        if update {
            std::fs::write(&golden, &got).expect("writing a golden file");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failed.push(format!(
                "--- {}\n{want}+++ got\n{got}",
                golden.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} golden file(s) differ (UPDATE_GOLDEN=1 rewrites them):\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Every `.stderr` has its spec: a renamed or deleted case leaves no stale golden file.
#[test]
fn no_golden_file_without_its_spec() {
    for e in std::fs::read_dir(dir()).expect("tests/diagnostics exists") {
        let p = e.expect("a directory entry").path();
        if p.extension().is_some_and(|x| x == "stderr") {
            assert!(
                p.with_extension("proto-dsl").is_file(),
                "{} has no spec",
                p.display()
            );
        }
    }
}

/// Text in the checker's and loader's sources that is not a diagnostic.
const NOT_DIAGNOSTICS: &[&str] = &[
    // Checking stops before paths are resolved when a unit fails, so every unit is known.
    "unit `{}` is not known",
    // Parts of messages assembled elsewhere.
    "true or false",
    "a byte string",
    "an integer",
    "true/false",
];

/// Every message and hint the checker and the loader can give appears in some golden file
/// (test code, in `#[cfg(test)]` modules and `testing.rs`, aside):
/// the text of each string literal up to its first `{` placeholder, or its longest literal run.
#[test]
fn every_diagnostic_has_a_golden_file() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("load.rs")];
    let mut stack = vec![src.join("check")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("src/check exists") {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("testing.rs") {
                files.push(p);
            }
        }
    }
    let goldens: String = cases()
        .iter()
        .map(|c| std::fs::read_to_string(c.with_extension("stderr")).unwrap_or_default())
        .collect();
    let mut missing = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("a source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for lit in message_literals(code) {
            if NOT_DIAGNOSTICS.contains(&lit.as_str()) {
                continue;
            }
            let probe = lit
                .split(['{', '}'])
                .max_by_key(|s| s.len())
                .unwrap_or_default();
            if !goldens.contains(probe) {
                missing.push(format!(
                    "{}: {lit}",
                    f.file_name().unwrap_or_default().to_string_lossy()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "diagnostics no golden file shows (add a spec to tests/diagnostics):\n{}",
        missing.join("\n")
    );
}

/// String literals that read as sentences (a space, a lower-case start or a placeholder), with
/// `\"` and `\\` unescaped.
fn message_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        // Skip comments and char literals such as '"'.
        if c == '/' && code[i..].starts_with("//") {
            for (_, c) in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        if c == '\'' && code[i..].len() >= 3 && &code[i + 2..i + 3] == "'" {
            chars.next();
            chars.next();
            continue;
        }
        if c != '"' {
            continue;
        }
        let mut lit = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => lit.push('\n'),
                    Some((_, c)) => lit.push(c),
                    None => break,
                },
                '"' => break,
                c => lit.push(c),
            }
        }
        let sentence = lit.contains(' ') && lit.len() > 6;
        if sentence && !lit.starts_with(['(', ':', '_']) {
            out.push(lit);
        }
    }
    out
}

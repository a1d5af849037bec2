//! The generated Rust of every example spec (`protocols/specs/examples/`), compared with the
//! files checked in under `tests/golden/`. A change shows as a line diff; to accept it,
//! regenerate them all:
//!
//! `UPDATE_GOLDEN=1 cargo test -p protodsl-compiler --test generated`

use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocols/specs/examples");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "proto-dsl"))
        .collect();
    specs.sort();
    specs
}

#[test]
fn generated_code_of_the_examples_matches_the_golden_files() {
    let program = protodsl_compiler::check_files(&examples(), &[]).unwrap();
    let generated = protodsl_compiler::generate(&program, "::honeyfarm_runtime::codec").unwrap();
    assert!(generated.len() >= 6, "every example spec generates a file");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (name, code) in &generated {
        let path = dir.join(format!("{name}.rs"));
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old == *code {
            continue;
        }
        if update {
            std::fs::write(&path, code).unwrap();
        } else {
            stale.push(format!("--- {}\n{}", path.display(), diff(&old, code)));
        }
    }
    assert!(
        stale.is_empty(),
        "generated code changed (UPDATE_GOLDEN=1 to accept):\n{}",
        stale.join("\n")
    );
}

/// The lines that differ, `-` old and `+` new, with two lines of context, from a longest
/// common subsequence of the lines (the files are a few thousand lines).
fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (kind, line number in the new file, text), kind ' ' same, '-' removed, '+' added.
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', j + 1, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', j + 1, a[i]));
            i += 1;
        } else {
            ops.push(('+', j + 1, b[j]));
            j += 1;
        }
    }
    let near_change = |k: usize| {
        ops[k.saturating_sub(2)..(k + 3).min(ops.len())]
            .iter()
            .any(|o| o.0 != ' ')
    };
    let mut out = String::new();
    let mut shown = 0;
    let mut gap = false;
    for (k, (kind, line, text)) in ops.iter().enumerate() {
        if !near_change(k) {
            gap = true;
            continue;
        }
        if gap {
            out.push_str(&format!("@@ line {line} @@\n"));
            gap = false;
        }
        out.push_str(&format!("{kind} {text}\n"));
        shown += 1;
        if shown >= 200 {
            out.push_str("... (more changes)\n");
            break;
        }
    }
    out
}

#[test]
fn the_diff_shows_what_changed_with_context() {
    let d = diff("a\nb\nc\nd\ne\nf\ng\n", "a\nb\nc\nX\ne\nf\ng\n");
    assert_eq!(d, "@@ line 2 @@\n  b\n  c\n- d\n+ X\n  e\n  f\n");
}

//! Compiles the protocol specs into Rust codecs (see `protodsl_compiler::Builder`): `specs/`
//! into the library, and with the `examples` feature (the crate's own tests and benches) the
//! example specs of `specs/examples/` beside them, outside the registry.

use std::path::PathBuf;

fn specs(dir: &str) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "proto-dsl"))
        .collect();
    found.sort();
    println!("cargo:rerun-if-changed={dir}");
    found
}

fn compile(builder: protodsl_compiler::Builder, specs: &[PathBuf]) {
    if let Err(e) = builder.compile(specs) {
        // The diagnostics, rustc-style, then a failed build.
        eprintln!("{e}");
        panic!("protocol specs do not compile");
    }
}

fn main() {
    compile(
        protodsl_compiler::Builder::new().include_file("protocols.rs"),
        &specs("specs"),
    );
    if std::env::var_os("CARGO_FEATURE_EXAMPLES").is_some() {
        compile(
            protodsl_compiler::Builder::new()
                .include_file("examples.rs")
                .registry(None),
            &specs("specs/examples"),
        );
    }
}

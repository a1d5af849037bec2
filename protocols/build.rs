//! Compiles the protocol specs into Rust codecs (see `protodsl_compiler::Builder`).

fn main() {
    let mut specs: Vec<std::path::PathBuf> = Vec::new();
    for dir in ["specs", "specs/examples"] {
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "proto-dsl"))
            .collect();
        found.sort();
        specs.extend(found);
        println!("cargo:rerun-if-changed={dir}");
    }
    if let Err(e) = protodsl_compiler::Builder::new()
        .include_file("protocols.rs")
        .compile(&specs)
    {
        // The diagnostics, rustc-style, then a failed build.
        eprintln!("{e}");
        panic!("protocol specs do not compile");
    }
}

//! `protodslc`: check specs, show their IR, or print the Rust code they compile to.
//!
//! ```text
//! protodslc check [-I DIR]... FILE...   exit 0 when every spec is valid, 1 otherwise
//! protodslc expand [-I DIR]... FILE     print the generated Rust
//! protodslc ir [-I DIR]... FILE         print the checked intermediate form
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: protodslc (check|expand|ir) [-I DIR]... FILE...";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(cmd) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut includes = Vec::new();
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-I" => match args.next() {
                Some(d) => includes.push(PathBuf::from(d)),
                None => {
                    eprintln!("-I needs a directory\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => files.push(PathBuf::from(a)),
        }
    }
    if files.is_empty() || (cmd != "check" && files.len() != 1) {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let program = match protodsl_compiler::check_files(&files, &includes) {
        Ok(p) => p,
        Err(diags) => {
            eprintln!("{diags}");
            let n = diags.len();
            eprintln!("\nerror: {n} error{} found", if n == 1 { "" } else { "s" });
            return ExitCode::from(1);
        }
    };
    match cmd.as_str() {
        "check" => {
            let names: Vec<&str> = program.protocols.iter().map(|p| p.name.as_str()).collect();
            println!("ok: {}", names.join(", "));
            ExitCode::SUCCESS
        }
        "ir" => {
            println!("{program:#?}");
            ExitCode::SUCCESS
        }
        "expand" => match protodsl_compiler::generate(&program, "::honeyfarm_runtime::codec") {
            Ok(files) => {
                for (name, code) in files {
                    println!("// ===== protocol {name} =====");
                    println!("{code}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        other => {
            eprintln!("unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

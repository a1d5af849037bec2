//! Every kind of spec error gives a rustc-style diagnostic: `path:line:col: error: message`,
//! the source line, a caret under the span, and a hint where one helps.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory with spec files in it.
struct Specs {
    dir: PathBuf,
}

impl Specs {
    fn new(name: &str, files: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("protodsl-diag-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        Specs { dir }
    }

    /// The rendered diagnostics for `root`, with the scratch directory left out of paths.
    fn errors(&self, root: &str) -> String {
        let err = protodsl_compiler::check_files(&[self.dir.join(root)], &[])
            .expect_err("the spec is invalid");
        err.to_string()
            .replace(&format!("{}/", self.dir.display()), "")
    }
}

impl Drop for Specs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn one(name: &str, spec: &str) -> String {
    Specs::new(name, &[("bad.proto-dsl", spec)]).errors("bad.proto-dsl")
}

#[test]
fn syntax_error_points_at_the_unexpected_token() {
    let got = one(
        "syntax",
        "protocol bad;\nunit A {\n    a: u8\n    b: u16;\n}\n",
    );
    assert_eq!(
        got,
        "bad.proto-dsl:4:5: error: expected `(`, `=`, `[`, `from`, `if`, `until`, `within` or a role (`@length(...)`), found `b:`\n\
         \x20 |\n\
         4 |     b: u16;\n\
         \x20 |     ^\n\
         \x20 = hint: is a `;` missing at the end of the previous line?"
    );
}

#[test]
fn unknown_type() {
    let got = one("type", "protocol bad;\nunit A {\n    b: Nope;\n}\n");
    assert_eq!(
        got,
        "bad.proto-dsl:3:8: error: unknown type `Nope`\n\
         \x20 |\n\
         3 |     b: Nope;\n\
         \x20 |        ^^^^\n\
         \x20 = hint: built-in types are u1..u64, i8..i64 (optionally ...le/...be), bytes, utf16, utf16z, cstring, sp, ows, token, number, host_port, dotted_quad, dot_stuffed, chunked, enhanced_status, dated_text"
    );
}

#[test]
fn unknown_field_in_a_role() {
    let got = one(
        "role",
        "protocol bad;\nunit A {\n    len: u16 @length(of = nope);\n    payload: bytes;\n}\n",
    );
    assert_eq!(
        got,
        "bad.proto-dsl:3:27: error: unknown field `nope` in @length\n\
         \x20 |\n\
         3 |     len: u16 @length(of = nope);\n\
         \x20 |                           ^^^^\n\
         \x20 = hint: the fields of this unit are: len, payload"
    );
}

#[test]
fn a_length_whose_target_cannot_be_sized() {
    let got = one(
        "unsized",
        "protocol bad;\nunit A {\n    len: u8 @length(of = flag);\n    flag: u32;\n}\n",
    );
    assert_eq!(
        got,
        "bad.proto-dsl:3:26: error: `flag` has a fixed size, so no length can describe it\n\
         \x20 |\n\
         3 |     len: u8 @length(of = flag);\n\
         \x20 |                          ^^^^\n\
         \x20 = hint: a length describes bytes, strings, units, arrays or a range of fields (`of = first .. last`)"
    );
    let got = one(
        "uncounted",
        "protocol bad;\nunit A {\n    n: u8 @count(of = data);\n    data: bytes;\n}\n",
    );
    assert!(
        got.starts_with("bad.proto-dsl:3:23: error: `data` is not an array, so it has no count\n"),
        "{got}"
    );
}

#[test]
fn duplicate_names() {
    let got = one(
        "dup",
        "protocol bad;\nunit A {\n    x: u8;\n    x: u16;\n}\nunit A {\n    y: u8;\n}\n",
    );
    assert_eq!(
        got,
        "bad.proto-dsl:6:6: error: `A` is defined twice\n\
         \x20 |\n\
         6 | unit A {\n\
         \x20 |      ^\n\
         \x20 = hint: first defined at line 2, column 6\n\
         \n\
         bad.proto-dsl:4:5: error: field `x` is defined twice\n\
         \x20 |\n\
         4 |     x: u16;\n\
         \x20 |     ^\n\
         \x20 = hint: first defined at line 3, column 5"
    );
}

#[test]
fn width_overflow_of_a_bit_field_in_a_byte_aligned_slot() {
    let got = one(
        "width",
        "protocol bad;\nunit Session {\n    kind: u8;\n    length: u17;\n    payload: bytes;\n}\n",
    );
    assert_eq!(
        got,
        "bad.proto-dsl:4:5: error: bit fields u17 fill 17 bits, which is not a whole number of bytes\n\
         \x20 |\n\
         4 |     length: u17;\n\
         \x20 |     ^^^^^^\n\
         \x20 = hint: pad the group to 24 bits with a reserved field such as `_: u7;`"
    );
    let got = one("wide", "protocol bad;\nunit A {\n    x: u65;\n}\n");
    assert!(
        got.starts_with(
            "bad.proto-dsl:3:8: error: integer width 65 is out of range (1 to 64 bits)\n"
        ),
        "{got}"
    );
}

#[test]
fn import_cycle() {
    let specs = Specs::new(
        "cycle",
        &[
            ("cycle_a.proto-dsl", "protocol cycle_a;\nimport cycle_b;\n"),
            ("cycle_b.proto-dsl", "protocol cycle_b;\nimport cycle_a;\n"),
        ],
    );
    assert_eq!(
        specs.errors("cycle_a.proto-dsl"),
        "cycle_b.proto-dsl:2:8: error: import cycle: cycle_a -> cycle_b -> cycle_a\n\
         \x20 |\n\
         2 | import cycle_a;\n\
         \x20 |        ^^^^^^^\n\
         \x20 = hint: move the shared units into a protocol both can import"
    );
}

#[test]
fn missing_import() {
    let specs = Specs::new(
        "missing",
        &[("bad.proto-dsl", "protocol bad;\nimport ndr;\n")],
    );
    let got = specs.errors("bad.proto-dsl");
    let expected_hint = format!("looked for {}", specs.dir.join("ndr.proto-dsl").display())
        .replace(&format!("{}/", specs.dir.display()), "");
    assert_eq!(
        got,
        format!(
            "bad.proto-dsl:2:8: error: cannot find protocol `ndr` to import\n\
             \x20 |\n\
             2 | import ndr;\n\
             \x20 |        ^^^\n\
             \x20 = hint: {expected_hint}"
        )
    );
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    let deep = format!(
        "protocol bad;\nconst X = {}1{};\n",
        "(".repeat(200),
        ")".repeat(200)
    );
    let got = one("deep", &deep);
    assert!(
        got.starts_with("bad.proto-dsl:2:75: error: nesting deeper than 64 levels\n"),
        "{got}"
    );
}

#[test]
fn several_semantic_errors_are_reported_together() {
    let got = one(
        "many",
        "protocol bad;\nunit A {\n    a: Missing;\n    b: u8 @nonsense;\n    c: bytes[zz];\n}\n",
    );
    assert!(
        got.contains("bad.proto-dsl:3:8: error: unknown type `Missing`"),
        "{got}"
    );
    assert!(
        got.contains("bad.proto-dsl:4:12: error: unknown role `@nonsense`"),
        "{got}"
    );
    assert!(
        got.contains("bad.proto-dsl:5:14: error: unknown name `zz`"),
        "{got}"
    );
}

fn protodslc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_protodslc"))
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../protocols/specs/examples")
        .join(name)
}

#[test]
fn protodslc_check_exit_codes_and_output() {
    let ok = protodslc()
        .arg("check")
        .arg(example("ex_frame.proto-dsl"))
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "ok: ex_msg, ex_frame\n"
    );

    let specs = Specs::new(
        "cli",
        &[(
            "bad.proto-dsl",
            "protocol bad;\nunit A {\n    b: Nope;\n}\n",
        )],
    );
    let bad = protodslc()
        .arg("check")
        .arg(specs.dir.join("bad.proto-dsl"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("bad.proto-dsl:3:8: error: unknown type `Nope`\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    b: Nope;\n  |        ^^^^\n"),
        "{stderr}"
    );
    assert!(stderr.ends_with("error: 1 error found\n"), "{stderr}");
}

#[test]
fn protodslc_expand_and_ir() {
    let out = protodslc()
        .arg("expand")
        .arg(example("ex_text.proto-dsl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let code = String::from_utf8_lossy(&out.stdout);
    assert!(code.contains("pub struct Command {"), "{code}");
    assert!(code.contains("use ::honeyfarm_runtime::codec::{"), "{code}");
    assert!(
        code.contains("pub type CommandCodec = rt::FrameCodec<Command>;"),
        "{code}"
    );
    syn::parse_file(
        code.split("// ===== protocol ex_text =====")
            .nth(1)
            .unwrap(),
    )
    .expect("expand prints valid Rust");

    let out = protodslc()
        .arg("ir")
        .arg(example("ex_frame.proto-dsl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let ir = String::from_utf8_lossy(&out.stdout);
    assert!(ir.contains("BeginLimit"), "{ir}");
    assert!(
        ir.contains("bytes: 3"),
        "the 7 + 17 bit group takes three bytes: {ir}"
    );
}

#[test]
fn unknown_anchor() {
    let got = one(
        "anchor",
        "protocol bad;\nunit A {\n    x: u8;\n    align 4 from nowhere;\n}\n",
    );
    assert!(
        got.starts_with("bad.proto-dsl:4:18: error: unknown anchor `nowhere`\n"),
        "{got}"
    );
}

#[test]
fn within_takes_a_number() {
    let e = one(
        "within",
        "protocol p;\nunit M {\n    n: u8;\n    body: bytes within n == 1;\n}\n",
    );
    assert_eq!(
        e,
        "bad.proto-dsl:4:24: error: `within` takes a number of bytes\n  |\n4 |     body: bytes within n == 1;\n  |                        ^^^^^^"
    );
}

#[test]
fn a_broken_import_is_reported_once() {
    let specs = Specs::new(
        "broken-import",
        &[
            (
                "shared.proto-dsl",
                "protocol shared;\nunit S {\n    a: u8\n}\n",
            ),
            ("one.proto-dsl", "protocol one;\nimport shared;\n"),
            ("two.proto-dsl", "protocol two;\nimport shared;\n"),
        ],
    );
    let err = protodsl_compiler::check_files(
        &[
            specs.dir.join("one.proto-dsl"),
            specs.dir.join("two.proto-dsl"),
        ],
        &[],
    )
    .expect_err("shared does not parse");
    let text = err.to_string();
    assert_eq!(
        text.matches("shared.proto-dsl:4:1: error").count(),
        1,
        "{text}"
    );
}

#[test]
fn a_view_is_decoded_from_bytes() {
    let e = one(
        "view",
        "protocol p;\nunit M {\n    n: u8;\n    whole: M from n + 1;\n}\n",
    );
    assert_eq!(
        e,
        "bad.proto-dsl:4:19: error: `from` takes bytes (what `recall` gives)\n  |\n4 |     whole: M from n + 1;\n  |                   ^^^^^"
    );
}

#[test]
fn farm_roles_need_their_arguments() {
    let e = one(
        "choice",
        "protocol p;\nunit M {\n    name: bytes @choice;\n}\n",
    );
    assert_eq!(
        e,
        "bad.proto-dsl:3:17: error: @choice needs the name of the option list\n  |\n3 |     name: bytes @choice;\n  |                 ^^^^^^^\n  = hint: write `@choice(dialects)` on each option and `@index(dialects)` on the answer"
    );
    let e = one(
        "artifact",
        "protocol p;\nunit M {\n    fid: u16;\n    data: bytes @artifact(offset = fid);\n}\n",
    );
    assert_eq!(
        e,
        "bad.proto-dsl:4:17: error: @artifact needs the cookie namespace that names the file\n  |\n4 |     data: bytes @artifact(offset = fid);\n  |                 ^^^^^^^^^^^^^^^^^^^^^^^\n  = hint: write `@artifact(key = smb.fid, offset = offset)`"
    );
}

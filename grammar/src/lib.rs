//! The `.proto-dsl` language: its pest grammar, a spanned syntax tree, the parser and
//! rustc-style diagnostics. Name resolution and checks live in `protodsl-compiler`.

pub mod ast;
pub mod diag;
mod parse;

pub use diag::{Diagnostic, Diagnostics, Source};
pub use parse::{parse, MAX_NESTING};

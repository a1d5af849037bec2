//! The honeyfarm's protocol specs, compiled into Rust codecs at build time.
//!
//! Every `.proto-dsl` file under `specs/` becomes a module named after its protocol, and each
//! of its messages an entry of [`REGISTRY`]. With the `examples` feature (this crate's tests
//! and benches), the `ex_*` modules come from `specs/examples/` too: small specs that exercise
//! every construct of the language and are tested for exact round trips; they are not in the
//! registry.

pub mod services;

include!(concat!(env!("OUT_DIR"), "/protocols.rs"));

#[cfg(feature = "examples")]
include!(concat!(env!("OUT_DIR"), "/examples.rs"));

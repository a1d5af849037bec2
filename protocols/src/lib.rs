//! The honeyfarm's protocol specs, compiled into Rust codecs at build time.
//!
//! Every `.proto-dsl` file under `specs/` becomes a module named after its protocol. The
//! `ex_*` modules come from `specs/examples/`: small specs that exercise every construct of the
//! language and are tested for exact round trips.

pub mod services;

include!(concat!(env!("OUT_DIR"), "/protocols.rs"));

//! Protocol-independent machinery of the honeyfarm.
//!
//! [`codec`]: the support that code generated from `.proto-dsl` specs depends on.
//! [`capture`]: recorded traffic (pcap, pcapng) as reassembled TCP streams.
//! [`replay`]: scripts (recorded dialogs) and matching against them; [`rewrite`]: cookie maps
//! and role-field rewriting; [`farm`]: listeners, honeypots, sessions and the event store.
//! The runtime never names a protocol.

pub mod capture;
pub mod codec;
pub mod emulate;
pub mod farm;
pub mod replay;
pub mod rewrite;

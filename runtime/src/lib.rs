//! Protocol-independent machinery of the honeyfarm.
//!
//! [`codec`]: the support that code generated from `.proto-dsl` specs depends on.
//! [`capture`]: recorded traffic (pcap, pcapng) as reassembled TCP streams.
//! The runtime never names a protocol.

pub mod capture;
pub mod codec;

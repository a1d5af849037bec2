//! The farm: listeners that take attackers' connections, sessions that answer them from
//! scripts and hand them to real honeypots when they deviate, the honeypot manager, and the
//! event store.

mod artifacts;
mod events;
mod honeypot;
mod session;

pub use artifacts::Files;
pub use events::{
    stored_messages, DecodeError, Difference, Differences, EventStore, MessageEvent, Outcome,
    ReadError, Source, StoreError, StoreOptions, StoredMessage, INTERRUPTED, SCHEMA_VERSION,
};
pub use honeypot::{Backend, Honeypot, HoneypotError, Lease, Pool, ProcessBackend, ProcessConfig};
pub use session::{serve_connection, SessionConfig};

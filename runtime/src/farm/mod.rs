//! The farm: listeners that take attackers' connections, sessions that answer them from
//! scripts and hand them to real honeypots when they deviate, the honeypot manager, and the
//! event store.

mod artifacts;
mod events;
mod honeypot;
mod intake;
mod session;
mod throttle;

pub use artifacts::Files;
pub use events::{
    stored_messages, DecodeError, Difference, Differences, EventStore, MessageEvent, Outcome,
    ReadError, Source, StoreError, StoreOptions, StoredMessage, INTERRUPTED, SCHEMA_VERSION,
};
pub use honeypot::{
    Backend, Honeypot, HoneypotError, Lease, Pool, PoolStats, ProcessBackend, ProcessConfig,
    LEASE_WAIT,
};
pub use intake::{
    accept_loop, listen, raise_fd_limit, Intake, IntakeCounts, Limits, Permit, Refusal,
};
pub use session::{
    serve_connection, Deadlines, End, Patience, Peer, SessionConfig, SessionError, Side,
    UNDECODABLE,
};
pub use throttle::Throttle;

//! The farm: listeners that take attackers' connections, sessions that answer them from
//! scripts and hand them to real honeypots when they deviate, the honeypot manager, and the
//! event store.

mod artifacts;
mod command;
mod containment;
mod events;
mod filter;
mod honeypot;
mod intake;
mod kernel;
mod metrics;
mod scope;
mod session;
mod throttle;

pub use artifacts::Files;
pub use command::CommandError;
pub use containment::{Action, Policy, PolicyError, Proto, Rule, Site, VmLink, REFLECT_PORT};
pub use events::{
    stored_messages, ContainmentRecord, DecodeError, Difference, Differences, EventStore,
    LeaseRecord, MessageEvent, Outcome, ReadError, Source, StoreError, StoreOptions, StoredMessage,
    INTERRUPTED, SCHEMA_VERSION,
};
pub use filter::{
    FilterConfig, FilterConfigError, FilterDecision, FilterStats, Probe, ScanFilter, Tally,
    TallyRow, ENTRY_BYTES, MAX_N, MAX_TALLIED,
};
pub use honeypot::{
    answers_smb, counters as nft_counters, guest_command, kvm_usable, negotiate_answered,
    reflect_to, remove_netns, Accel, Backend, Boot, Honeypot, HoneypotError, Lease, Netns,
    NetnsBackend, NetnsConfig, NetnsError, Pool, PoolCounts, PoolStats, ProcessBackend,
    ProcessConfig, QemuBackend, QemuConfig, QemuError, Qmp, QmpError, Reflected, Reflector, Route,
    Veth, GUEST as VM_GUEST, LEASE_WAIT,
};
pub use intake::{
    accept_in_scope, accept_loop, listen, listen_transparent, raise_fd_limit, then, Intake,
    IntakeCounts, Limits, Permit, Refusal, Then,
};
pub use kernel::{
    nft, Divert, Installed, KernelError, Ports, SetCounts, SetSpec, SetWriter, TableSpec,
    MAX_PENDING,
};
pub use metrics::{bind as bind_metrics, sample, serve as serve_metrics, Metrics, MetricsError};
pub use scope::{says_local, Prefix, PrefixError, RouteError, Scope};
pub use session::{
    serve_connection, Deadlines, End, Patience, Peer, SessionConfig, SessionError, Side,
    Unframeable, UNDECODABLE,
};
pub use throttle::Throttle;

//! The honeypot manager: backends that start and stop real servers, and a pool that keeps a
//! few warm and leases one per telescope address (a worm's follow-up connections to the same
//! address reach the same honeypot).

pub mod link;
mod pool;
mod process;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;

pub use link::{Netns, NetnsError, Veth};
pub use pool::{Lease, Pool, PoolCounts, PoolStats, LEASE_WAIT};
pub use process::{ProcessBackend, ProcessConfig};

#[cfg(test)]
pub(crate) use pool::tests;

#[derive(Debug, thiserror::Error)]
pub enum HoneypotError {
    #[error("honeypot {addr}: cannot prepare {dir}: {source}")]
    Prepare {
        addr: SocketAddr,
        dir: String,
        source: std::io::Error,
    },
    #[error("honeypot {addr}: `{command}` failed: {reason}")]
    Command {
        addr: SocketAddr,
        command: String,
        reason: String,
    },
    #[error("honeypot {addr}: {why}{log}")]
    NotReady {
        addr: SocketAddr,
        why: String,
        log: String,
    },
    #[error("the honeypot pool is exhausted: all {addresses} addresses in use ({leased} leased, {starting} starting, {stopping} stopping) after waiting {waited_ms} ms")]
    Exhausted {
        addresses: usize,
        leased: usize,
        starting: usize,
        stopping: usize,
        waited_ms: u128,
    },
    #[error("the farm is shutting down")]
    Closed,
}

/// A running honeypot.
#[derive(Debug)]
pub struct Honeypot {
    pub addr: SocketAddr,
    /// Its private directory (configuration, state, files the attacker wrote).
    pub dir: PathBuf,
    /// Its process group's leader; none for a server the backend runs itself (a test double).
    child: Option<Child>,
}

impl Honeypot {
    /// A honeypot that is not a process of its own (an in-process server).
    pub fn in_process(addr: SocketAddr, dir: PathBuf) -> Self {
        Honeypot {
            addr,
            dir,
            child: None,
        }
    }
}

/// Starts and stops honeypots of one kind.
pub trait Backend: Send + Sync {
    /// Starts a honeypot on `addr` and returns once it accepts connections.
    fn start(&self, addr: SocketAddr) -> Result<Honeypot, HoneypotError>;
    /// Stops it and removes what it left.
    fn stop(&self, honeypot: Honeypot);
}

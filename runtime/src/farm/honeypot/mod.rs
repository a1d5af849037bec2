//! The honeypot manager: backends that start and stop real servers, and a pool that keeps a
//! few warm and leases one per telescope address (a worm's follow-up connections to the same
//! address reach the same honeypot).

pub mod link;
mod netns;
mod pool;
mod process;
mod qemu;
mod qmp;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;

pub use link::{remove as remove_netns, Netns, NetnsError, Veth};
pub use netns::{counters, reflect_to, NetnsBackend, NetnsConfig, Reflected, Reflector};
pub use pool::{Lease, Pool, PoolCounts, PoolStats, LEASE_WAIT};
pub use process::{ProcessBackend, ProcessConfig};
pub use qemu::{
    answers_smb, guest_command, kvm_usable, negotiate_answered, Accel, Boot, QemuBackend,
    QemuConfig, QemuError, GUEST,
};
pub use qmp::{Qmp, QmpError};

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
    #[error("honeypot VM {addr}: {source}")]
    Vm { addr: SocketAddr, source: QemuError },
    #[error("honeypot {addr}: cannot connect: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("honeypot {addr}: {source}")]
    Netns {
        addr: SocketAddr,
        source: NetnsError,
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
    /// The way for one connection of `attacker` to `telescope` into the honeypot at
    /// `honeypot`, leased to `telescope`. By default a plain socket to the honeypot's address,
    /// where it hears itself; the `netns` backend gives the honeypot the telescope address and
    /// makes the connection come from the attacker's (blocking).
    fn route(
        &self,
        honeypot: SocketAddr,
        telescope: IpAddr,
        attacker: SocketAddr,
    ) -> Result<Route, HoneypotError> {
        let _ = (telescope, attacker);
        let s = if honeypot.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        s.map(|socket| Route {
            socket,
            connect: honeypot,
            heard_as: honeypot.ip(),
        })
        .map_err(|e| HoneypotError::Connect {
            addr: honeypot,
            reason: e.to_string(),
        })
    }
}

/// How a connection reaches a leased honeypot.
#[derive(Debug)]
pub struct Route {
    /// Unconnected (bound where the backend needs it).
    pub socket: tokio::net::TcpSocket,
    /// Where to connect it.
    pub connect: SocketAddr,
    /// The address the honeypot hears itself called by (what the attacker's names of the
    /// telescope address are rewritten to).
    pub heard_as: IpAddr,
}

/// Removes a stopped honeypot's directory, or with `keep` moves it to `work_dir/done/` under a
/// name of its own (for forensics).
fn retire_dir(work_dir: &Path, dir: &Path, keep: bool) {
    if keep {
        let done = work_dir.join("done");
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = format!(
            "{}-{stamp}",
            dir.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
        if std::fs::create_dir_all(&done).is_ok() && std::fs::rename(dir, done.join(name)).is_ok() {
            return;
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

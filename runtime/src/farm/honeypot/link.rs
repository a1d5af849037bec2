//! Network namespaces, veth pairs and nftables rulesets, made with `ip` and `nft` and removed
//! when dropped (also when a test fails): what a contained honeypot (and a VM's tap) lives in.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(transparent)]
    Command(#[from] crate::farm::command::CommandError),
    #[error("entering network namespace {name}: {source}")]
    Enter {
        name: String,
        source: std::io::Error,
    },
}

/// Runs `prog args` and returns its standard output; a failure says its standard error.
pub fn run(prog: &str, args: &[&str], input: Option<&str>) -> Result<String, NetnsError> {
    Ok(crate::farm::command::run(prog, args, input)?)
}

/// A named network namespace (`ip netns`), deleted with everything running in it when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Makes namespace `name` (a stale one of that name is removed first) with its loopback up.
    pub fn create(name: &str) -> Result<Netns, NetnsError> {
        remove(name);
        run("ip", &["netns", "add", name], None)?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `prog` inside the namespace (`ip netns exec`, which also gives it a
    /// mount namespace of its own with the namespace's /sys).
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Runs `prog args` inside the namespace; returns its standard output.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Result<String, NetnsError> {
        let mut all = vec!["netns", "exec", &self.name, prog];
        all.extend_from_slice(args);
        run("ip", &all, None)
    }

    /// `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<String, NetnsError> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all, None)
    }

    /// Loads an nftables script (`nft -f -`) inside the namespace: atomically, all or nothing.
    pub fn nft(&self, script: &str) -> Result<(), NetnsError> {
        run(
            "ip",
            &["netns", "exec", &self.name, "nft", "-f", "-"],
            Some(script),
        )
        .map(drop)
    }

    /// Runs `f` on a thread inside the namespace: sockets it makes stay in the namespace
    /// (listeners for what the namespace's rules redirect, test clients and servers).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        let enter = |source| NetnsError::Enter {
            name: self.name.clone(),
            source,
        };
        let file = std::fs::File::open(format!("/run/netns/{}", self.name)).map_err(enter)?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread alone, with a valid namespace descriptor; the
                // thread ends with the closure.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(enter(std::io::Error::last_os_error()));
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(enter(std::io::Error::other("the thread panicked"))))
        })
    }

    /// Kills every process in the namespace (SIGKILL).
    pub fn kill_all(&self) {
        kill_all(&self.name);
    }
}

fn kill_all(name: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", name], None) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: a plain kill(2) of a pid the kernel listed in this namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Removes namespace `name` and kills what runs in it, if it exists.
pub fn remove(name: &str) {
    if std::path::Path::new(&format!("/run/netns/{name}")).exists() {
        kill_all(name);
        let _ = run("ip", &["netns", "del", name], None);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

/// A veth pair between this namespace (`host`) and a [`Netns`] (`inner`), each end with its
/// /32 address and a route to the other's; the inner end also routes everything else to the
/// host end. Deleted when dropped (and with the namespace).
#[derive(Debug)]
pub struct Veth {
    host: String,
}

impl Veth {
    pub fn create(
        host: &str,
        ns: &Netns,
        inner: &str,
        host_addr: Ipv4Addr,
        inner_addr: Ipv4Addr,
    ) -> Result<Veth, NetnsError> {
        let _ = run("ip", &["link", "del", host], None);
        run(
            "ip",
            &[
                "link", "add", host, "type", "veth", "peer", "name", inner, "netns", &ns.name,
            ],
            None,
        )?;
        let veth = Veth {
            host: host.to_string(),
        };
        let (h, i) = (format!("{host_addr}/32"), format!("{inner_addr}/32"));
        let (hs, is) = (host_addr.to_string(), inner_addr.to_string());
        run("ip", &["addr", "add", &h, "dev", host], None)?;
        run("ip", &["link", "set", host, "up"], None)?;
        run(
            "ip",
            &["route", "replace", &is, "dev", host, "src", &hs],
            None,
        )?;
        ns.ip(&["addr", "add", &i, "dev", inner])?;
        ns.ip(&["link", "set", inner, "up"])?;
        ns.ip(&["route", "add", &hs, "dev", inner, "src", &is])?;
        ns.ip(&["route", "add", "default", "via", &hs, "dev", inner])?;
        Ok(veth)
    }

    /// The host end's name.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.host], None);
    }
}

//! The honeypot manager: backends that start and stop real servers, and a pool that keeps a
//! few warm and leases one per telescope address (a worm's follow-up connections to the same
//! address reach the same honeypot).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    #[error("no honeypot address left (the pool's addresses are all in use)")]
    NoAddress,
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

/// The `process` backend: a real server per honeypot, started from a command template.
/// `{address}`, `{port}` and `{dir}` in the command and the ready file are replaced by the
/// honeypot's address, port and private directory.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    pub command: Vec<String>,
    /// A file (template) whose existence says the honeypot is ready, beside accepting
    /// connections: a server that warms itself up after it listens writes it when done.
    pub ready_file: Option<String>,
    /// Where private directories are made.
    pub work_dir: PathBuf,
    /// Keep a stopped honeypot's directory (moved to `work_dir/done/`) instead of removing it.
    pub keep: bool,
    pub ready_timeout: Duration,
}

pub struct ProcessBackend {
    config: ProcessConfig,
}

impl ProcessBackend {
    pub fn new(config: ProcessConfig) -> Self {
        ProcessBackend { config }
    }
}

fn fill(template: &str, addr: SocketAddr, dir: &Path) -> String {
    template
        .replace("{address}", &addr.ip().to_string())
        .replace("{port}", &addr.port().to_string())
        .replace("{dir}", &dir.display().to_string())
}

impl Backend for ProcessBackend {
    fn start(&self, addr: SocketAddr) -> Result<Honeypot, HoneypotError> {
        let c = &self.config;
        let dir = c
            .work_dir
            .join(format!("honeypot-{}-{}", addr.ip(), addr.port()));
        let prep = |source| HoneypotError::Prepare {
            addr,
            dir: dir.display().to_string(),
            source,
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(prep)?;
        let argv: Vec<String> = c.command.iter().map(|a| fill(a, addr, &dir)).collect();
        let Some((prog, args)) = argv.split_first() else {
            return Err(HoneypotError::Command {
                addr,
                command: String::new(),
                reason: "the command is empty".into(),
            });
        };
        let log = std::fs::File::create(dir.join("honeypot.log")).map_err(prep)?;
        let log2 = log.try_clone().map_err(prep)?;
        // The honeypot runs in its own directory: a relative program path is the farm's.
        let prog = match Path::new(prog) {
            p if p.is_relative() && p.components().count() > 1 => std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf()),
            p => p.to_path_buf(),
        };
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .current_dir(&dir);
        // Its own process group: stopping it stops whatever it started.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| HoneypotError::Command {
            addr,
            command: argv.join(" "),
            reason: e.to_string(),
        })?;
        let ready_file = c
            .ready_file
            .as_ref()
            .map(|f| PathBuf::from(fill(f, addr, &dir)));
        let began = Instant::now();
        let deadline = began + c.ready_timeout;
        loop {
            // An exited command is not ready, whatever else answers on its address.
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            let warm = ready_file.as_ref().is_none_or(|f| f.exists());
            if !exited
                && warm
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                tracing::info!(
                    "honeypot {addr} ready after {} ms",
                    began.elapsed().as_millis()
                );
                return Ok(Honeypot {
                    addr,
                    dir,
                    child: Some(child),
                });
            }
            if exited || Instant::now() >= deadline {
                let log = std::fs::read_to_string(dir.join("honeypot.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let hp = Honeypot {
                    addr,
                    dir,
                    child: Some(child),
                };
                self.stop(hp);
                tracing::warn!("honeypot {addr} did not start (exited: {exited})");
                return Err(HoneypotError::NotReady {
                    addr,
                    why: if exited {
                        "exited before accepting connections".to_string()
                    } else {
                        format!(
                            "not accepting connections after {} s",
                            c.ready_timeout.as_secs()
                        )
                    },
                    log: if tail.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (its log ends: {})",
                            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                        )
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&self, mut honeypot: Honeypot) {
        tracing::debug!("stopping honeypot {}", honeypot.addr);
        let Some(child) = &mut honeypot.child else {
            return;
        };
        let pgid = child.id() as i32;
        // SIGTERM to the group, then SIGKILL for what is left.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = child.wait();
        if self.config.keep {
            let done = self.config.work_dir.join("done");
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let name = format!(
                "{}-{stamp}",
                honeypot
                    .dir
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            );
            if std::fs::create_dir_all(&done).is_ok()
                && std::fs::rename(&honeypot.dir, done.join(name)).is_ok()
            {
                return;
            }
        }
        let _ = std::fs::remove_dir_all(&honeypot.dir);
    }
}

/// Warm honeypots and leases, per telescope address.
pub struct Pool {
    backend: Arc<dyn Backend>,
    /// Set by [`Pool::shutdown`]: nothing starts any more.
    closed: std::sync::atomic::AtomicBool,
    addresses: Vec<SocketAddr>,
    size: usize,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    warm: Vec<Honeypot>,
    /// Leased honeypots by telescope address, with how many sessions hold each.
    leased: HashMap<IpAddr, (Honeypot, usize)>,
    /// Addresses being started or stopped.
    busy: Vec<SocketAddr>,
    /// How many are being started.
    starting: usize,
}

/// A session's hold on a honeypot; give it back with [`Pool::release`].
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub telescope: IpAddr,
    pub honeypot: SocketAddr,
}

impl Pool {
    /// `addresses`: where honeypots may run (one each); `size`: how many to keep warm.
    pub fn new(backend: Arc<dyn Backend>, addresses: Vec<SocketAddr>, size: usize) -> Arc<Pool> {
        Arc::new(Pool {
            backend,
            closed: std::sync::atomic::AtomicBool::new(false),
            addresses,
            size,
            state: Mutex::new(PoolState::default()),
        })
    }

    fn free_address(&self, st: &PoolState) -> Option<SocketAddr> {
        self.addresses.iter().copied().find(|a| {
            !st.warm.iter().any(|h| h.addr == *a)
                && !st.leased.values().any(|(h, _)| h.addr == *a)
                && !st.busy.contains(a)
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts a honeypot on a free address and hands it to `place` under the pool's lock, in
    /// the same step that frees its address: shutdown never sees it nowhere.
    fn start_one<R>(
        &self,
        place: impl FnOnce(&mut PoolState, Honeypot) -> R,
    ) -> Result<R, HoneypotError> {
        if self.is_closed() {
            return Err(HoneypotError::Closed);
        }
        let addr = {
            let mut st = self.state.lock().expect("pool lock");
            let a = self.free_address(&st).ok_or(HoneypotError::NoAddress)?;
            st.busy.push(a);
            st.starting += 1;
            a
        };
        // Shut down while it started: it is not wanted any more.
        let r = match self.backend.start(addr) {
            Ok(h) if self.is_closed() => {
                self.backend.stop(h);
                Err(HoneypotError::Closed)
            }
            r => r,
        };
        let mut st = self.state.lock().expect("pool lock");
        st.busy.retain(|a| *a != addr);
        st.starting -= 1;
        r.map(|h| place(&mut st, h))
    }

    /// Starts honeypots until `size` are warm (blocking; run it off the async threads).
    pub fn fill(&self) -> Result<(), HoneypotError> {
        loop {
            let need = {
                let st = self.state.lock().expect("pool lock");
                st.warm.len() + st.starting < self.size
            };
            if !need {
                return Ok(());
            }
            self.start_one(|st, h| st.warm.push(h))?;
        }
    }

    /// The honeypot of this telescope address: the one already leased for it, a warm one, or
    /// a new one (blocking).
    pub fn lease(&self, telescope: IpAddr) -> Result<Lease, HoneypotError> {
        {
            let mut st = self.state.lock().expect("pool lock");
            if let Some((h, n)) = st.leased.get_mut(&telescope) {
                *n += 1;
                return Ok(Lease {
                    telescope,
                    honeypot: h.addr,
                });
            }
            if let Some(h) = st.warm.pop() {
                let addr = h.addr;
                st.leased.insert(telescope, (h, 1));
                return Ok(Lease {
                    telescope,
                    honeypot: addr,
                });
            }
        }
        self.start_one(|st, h| match st.leased.get_mut(&telescope) {
            // Another session for this address got one first: keep theirs, this one goes warm.
            Some((theirs, n)) => {
                *n += 1;
                let honeypot = theirs.addr;
                st.warm.push(h);
                Lease {
                    telescope,
                    honeypot,
                }
            }
            None => {
                let honeypot = h.addr;
                st.leased.insert(telescope, (h, 1));
                Lease {
                    telescope,
                    honeypot,
                }
            }
        })
    }

    /// Gives a lease back; the last one for a telescope address stops its honeypot (it is
    /// dirty now) (blocking).
    pub fn release(&self, lease: Lease) {
        let done = {
            let mut st = self.state.lock().expect("pool lock");
            match st.leased.get_mut(&lease.telescope) {
                Some((_, n)) if *n > 1 => {
                    *n -= 1;
                    None
                }
                Some(_) => st.leased.remove(&lease.telescope).map(|(h, _)| {
                    // Its address stays taken until it has stopped.
                    st.busy.push(h.addr);
                    h
                }),
                None => None,
            }
        };
        if let Some(h) = done {
            let addr = h.addr;
            self.backend.stop(h);
            self.state
                .lock()
                .expect("pool lock")
                .busy
                .retain(|a| *a != addr);
        }
    }

    /// Stops every honeypot and starts no more; waits (up to a minute) for those being started
    /// or stopped elsewhere, and stops what they leave.
    pub fn shutdown(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (all, idle) = {
                let mut st = self.state.lock().expect("pool lock");
                let mut v: Vec<Honeypot> = st.warm.drain(..).collect();
                v.extend(st.leased.drain().map(|(_, (h, _))| h));
                (v, st.busy.is_empty())
            };
            let stopped = !all.is_empty();
            for h in all {
                self.backend.stop(h);
            }
            if (idle && !stopped) || Instant::now() >= deadline {
                return;
            }
            if !stopped {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

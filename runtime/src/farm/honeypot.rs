//! The honeypot manager: backends that start and stop real servers, and a pool that keeps a
//! few warm and leases one per telescope address (a worm's follow-up connections to the same
//! address reach the same honeypot).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::events::{EventStore, LeaseRecord};

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
    /// How long a lease outlives its last session: a worm's follow-up connection to the same
    /// address within it reaches the same honeypot. Zero stops the honeypot at once.
    linger: Duration,
    /// Where ended leases are recorded.
    events: Option<EventStore>,
    state: Mutex<PoolState>,
}

/// One telescope address's honeypot.
struct Leased {
    honeypot: Honeypot,
    /// Sessions holding it.
    holders: usize,
    /// Sessions it served.
    sessions: u64,
    /// Unix time the lease started.
    started: f64,
    /// When its last session ended, while none holds it.
    idle_since: Option<Instant>,
}

#[derive(Default)]
struct PoolState {
    warm: Vec<Honeypot>,
    /// Leased honeypots by telescope address: one honeypot per address at a time.
    leased: HashMap<IpAddr, Leased>,
    /// Addresses being started or stopped.
    busy: Vec<SocketAddr>,
    /// How many are being started.
    starting: usize,
    leases_started: u64,
    leases_ended: u64,
}

/// A session's hold on a honeypot; give it back with [`Pool::release`].
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub telescope: IpAddr,
    pub honeypot: SocketAddr,
}

/// The pool's honeypots by state, and its leases so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Warm and free.
    pub warm: usize,
    pub starting: usize,
    /// Leased and held by a session.
    pub in_use: usize,
    /// Leased, no session now, within the linger time.
    pub lingering: usize,
    pub leases_started: u64,
    pub leases_ended: u64,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Pool {
    /// `addresses`: where honeypots may run (one each); `size`: how many to keep warm.
    pub fn new(backend: Arc<dyn Backend>, addresses: Vec<SocketAddr>, size: usize) -> Arc<Pool> {
        Self::with_leases(backend, addresses, size, Duration::ZERO, None)
    }

    /// A pool whose leases outlive their last session by `linger` and are recorded in
    /// `events` when they end.
    pub fn with_leases(
        backend: Arc<dyn Backend>,
        addresses: Vec<SocketAddr>,
        size: usize,
        linger: Duration,
        events: Option<EventStore>,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            backend,
            closed: std::sync::atomic::AtomicBool::new(false),
            addresses,
            size,
            linger,
            events,
            state: Mutex::new(PoolState::default()),
        })
    }

    /// Honeypots by state and leases so far.
    pub fn counts(&self) -> PoolCounts {
        let st = self.state.lock().expect("pool lock");
        let in_use = st.leased.values().filter(|l| l.holders > 0).count();
        PoolCounts {
            warm: st.warm.len(),
            starting: st.starting,
            in_use,
            lingering: st.leased.len() - in_use,
            leases_started: st.leases_started,
            leases_ended: st.leases_ended,
        }
    }

    /// Takes a lease out of the table: its address stays busy until its honeypot has
    /// stopped; the lease is recorded.
    fn end_lease(&self, st: &mut PoolState, telescope: IpAddr) -> Option<Honeypot> {
        let l = st.leased.remove(&telescope)?;
        st.busy.push(l.honeypot.addr);
        st.leases_ended += 1;
        if let Some(e) = &self.events {
            e.lease(&LeaseRecord {
                telescope,
                honeypot: l.honeypot.addr,
                started: l.started,
                ended: unix_now(),
                sessions: l.sessions,
            });
        }
        Some(l.honeypot)
    }

    /// Stops the honeypots of ended leases and frees their addresses.
    fn stop_all(&self, ended: Vec<Honeypot>) {
        for h in ended {
            let addr = h.addr;
            self.backend.stop(h);
            self.state
                .lock()
                .expect("pool lock")
                .busy
                .retain(|a| *a != addr);
        }
    }

    /// Ends the leases idle longer than the linger time and stops their honeypots
    /// (blocking); returns how many ended. The farm calls it every second (and refills the
    /// pool after); not [`Pool::lease`], whose caller is waiting for a handoff.
    pub fn expire(&self) -> usize {
        let ended: Vec<Honeypot> = {
            let mut st = self.state.lock().expect("pool lock");
            let old: Vec<IpAddr> = st
                .leased
                .iter()
                .filter(|(_, l)| l.idle_since.is_some_and(|t| t.elapsed() >= self.linger))
                .map(|(t, _)| *t)
                .collect();
            old.into_iter()
                .filter_map(|t| self.end_lease(&mut st, t))
                .collect()
        };
        let n = ended.len();
        self.stop_all(ended);
        n
    }

    fn free_address(&self, st: &PoolState) -> Option<SocketAddr> {
        self.addresses.iter().copied().find(|a| {
            !st.warm.iter().any(|h| h.addr == *a)
                && !st.leased.values().any(|l| l.honeypot.addr == *a)
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

    /// Takes the lease of `telescope` for one more session, if there is one.
    fn hold(st: &mut PoolState, telescope: IpAddr) -> Option<Lease> {
        let l = st.leased.get_mut(&telescope)?;
        l.holders += 1;
        l.sessions += 1;
        l.idle_since = None;
        Some(Lease {
            telescope,
            honeypot: l.honeypot.addr,
        })
    }

    /// Leases `h` to `telescope` for one session.
    fn start_lease(st: &mut PoolState, telescope: IpAddr, honeypot: Honeypot) -> Lease {
        let lease = Lease {
            telescope,
            honeypot: honeypot.addr,
        };
        st.leases_started += 1;
        st.leased.insert(
            telescope,
            Leased {
                honeypot,
                holders: 1,
                sessions: 1,
                started: unix_now(),
                idle_since: None,
            },
        );
        lease
    }

    /// The honeypot of this telescope address: the one already leased for it (held or
    /// lingering), a warm one, or a new one (blocking).
    pub fn lease(&self, telescope: IpAddr) -> Result<Lease, HoneypotError> {
        {
            let mut st = self.state.lock().expect("pool lock");
            if let Some(l) = Self::hold(&mut st, telescope) {
                return Ok(l);
            }
            if let Some(h) = st.warm.pop() {
                return Ok(Self::start_lease(&mut st, telescope, h));
            }
        }
        self.start_one(|st, h| match Self::hold(st, telescope) {
            // Another session for this address got one first: keep theirs, this one goes warm.
            Some(theirs) => {
                st.warm.push(h);
                theirs
            }
            None => Self::start_lease(st, telescope, h),
        })
    }

    /// Gives a lease back. When the last session of a telescope address gives it back, the
    /// lease lingers (see [`Pool::with_leases`]) and then ends, stopping its honeypot (it is
    /// dirty now) (blocking).
    pub fn release(&self, lease: Lease) {
        let ended = {
            let mut st = self.state.lock().expect("pool lock");
            match st.leased.get_mut(&lease.telescope) {
                Some(l) if l.holders > 1 => {
                    l.holders -= 1;
                    None
                }
                Some(l) if !self.linger.is_zero() => {
                    l.holders = 0;
                    l.idle_since = Some(Instant::now());
                    None
                }
                Some(_) => self.end_lease(&mut st, lease.telescope),
                None => None,
            }
        };
        self.stop_all(ended.into_iter().collect());
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
                let leased: Vec<IpAddr> = st.leased.keys().copied().collect();
                for t in leased {
                    if let Some(h) = self.end_lease(&mut st, t) {
                        // Stopped right here, not by stop_all: its address is freed below.
                        st.busy.retain(|a| *a != h.addr);
                        v.push(h);
                    }
                }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Honeypots that are only addresses; counts starts and stops.
    #[derive(Default)]
    pub(crate) struct Fake {
        pub started: AtomicUsize,
        pub stopped: AtomicUsize,
    }

    impl Backend for Fake {
        fn start(&self, addr: SocketAddr) -> Result<Honeypot, HoneypotError> {
            self.started.fetch_add(1, Ordering::SeqCst);
            Ok(Honeypot::in_process(addr, std::env::temp_dir()))
        }
        fn stop(&self, _honeypot: Honeypot) {
            self.stopped.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn addrs(n: u8) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| SocketAddr::from(([127, 0, 9, i], 445)))
            .collect()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, last])
    }

    #[test]
    fn one_honeypot_per_telescope_address_at_a_time() {
        let fake = Arc::new(Fake::default());
        let pool = Pool::new(fake.clone(), addrs(3), 0);
        let a1 = pool.lease(ip(1)).unwrap();
        let a2 = pool.lease(ip(1)).unwrap();
        let b = pool.lease(ip(2)).unwrap();
        assert_eq!(a1.honeypot, a2.honeypot);
        assert_ne!(a1.honeypot, b.honeypot);
        assert_eq!(pool.counts().in_use, 2);
        pool.release(a1);
        assert_eq!(fake.stopped.load(Ordering::SeqCst), 0, "a2 still holds it");
        pool.release(a2);
        // No linger: the last release ends the lease and stops the honeypot.
        assert_eq!(fake.stopped.load(Ordering::SeqCst), 1);
        pool.release(b);
        let c = pool.counts();
        assert_eq!((c.leases_started, c.leases_ended, c.in_use), (2, 2, 0));
    }

    #[test]
    fn a_lingering_lease_keeps_its_honeypot_then_expires_and_is_recorded() {
        let path =
            std::env::temp_dir().join(format!("honeyfarm-leases-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let events = EventStore::open(&path).unwrap();
        let fake = Arc::new(Fake::default());
        let linger = Duration::from_millis(300);
        let pool = Pool::with_leases(fake.clone(), addrs(2), 0, linger, Some(events.clone()));
        let first = pool.lease(ip(7)).unwrap();
        pool.release(first);
        assert_eq!(pool.counts().lingering, 1);
        // The worm's second session, within the linger time: the same honeypot.
        let again = pool.lease(ip(7)).unwrap();
        assert_eq!(again.honeypot, first.honeypot);
        assert_eq!(fake.started.load(Ordering::SeqCst), 1);
        pool.release(again);
        std::thread::sleep(linger + Duration::from_millis(50));
        pool.expire();
        assert_eq!(fake.stopped.load(Ordering::SeqCst), 1);
        let c = pool.counts();
        assert_eq!((c.lingering, c.leases_started, c.leases_ended), (0, 1, 1));
        // After it: a fresh honeypot (the dirty one is gone).
        let later = pool.lease(ip(7)).unwrap();
        assert_eq!(fake.started.load(Ordering::SeqCst), 2);
        pool.release(later);
        pool.shutdown();
        events.close();
        let db = rusqlite::Connection::open(&path).unwrap();
        let rows: Vec<(String, String, i64, f64)> = db
            .prepare("SELECT telescope, honeypot, sessions, ended - started FROM leases ORDER BY started")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].0, "198.18.0.7");
        assert_eq!(rows[0].1, first.honeypot.to_string());
        assert_eq!(rows[0].2, 2);
        assert!(rows[0].3 >= 0.3, "{rows:?}");
        let _ = std::fs::remove_file(&path);
    }
}

//! The honeypot manager: backends that start and stop real servers, and a pool that keeps a
//! few warm and leases one per telescope address (a worm's follow-up connections to the same
//! address reach the same honeypot).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
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
///
/// The pool keeps `size` honeypots warm and starts a replacement in the background as soon as
/// one is leased; a lease takes a warm one at once, starts its own on a free address when none
/// is warm, and otherwise waits (up to [`Pool::with_wait`]'s bound) for one that is starting
/// or for an address a stopping honeypot frees. Only then is the pool exhausted, an error that
/// says what held every address, counted in [`PoolStats`].
pub struct Pool {
    backend: Arc<dyn Backend>,
    /// Set by [`Pool::shutdown`]: nothing starts any more.
    closed: std::sync::atomic::AtomicBool,
    addresses: Vec<SocketAddr>,
    size: usize,
    /// How long a lease waits for a honeypot when none is warm and no address is free.
    wait: Duration,
    state: Mutex<PoolState>,
    /// Signalled when a honeypot turns warm or an address turns free.
    changed: Condvar,
    stats: Mutex<PoolStats>,
}

/// What the pool's leases met, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Leases granted.
    pub leases: u64,
    /// Of those, how many had to wait for a honeypot being started or stopped.
    pub waited: u64,
    /// Leases refused: no honeypot could be had within the wait.
    pub exhausted: u64,
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

/// How long a lease waits for a honeypot by default: a Samba honeypot starts in 2-4 s.
pub const LEASE_WAIT: Duration = Duration::from_secs(20);

impl Pool {
    /// `addresses`: where honeypots may run (one each); `size`: how many to keep warm.
    pub fn new(backend: Arc<dyn Backend>, addresses: Vec<SocketAddr>, size: usize) -> Arc<Pool> {
        Self::with_wait(backend, addresses, size, LEASE_WAIT)
    }

    /// [`Pool::new`] whose leases wait at most `wait` for a honeypot.
    pub fn with_wait(
        backend: Arc<dyn Backend>,
        addresses: Vec<SocketAddr>,
        size: usize,
        wait: Duration,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            backend,
            closed: std::sync::atomic::AtomicBool::new(false),
            addresses,
            size,
            wait,
            state: Mutex::new(PoolState::default()),
            changed: Condvar::new(),
            stats: Mutex::new(PoolStats::default()),
        })
    }

    /// How many honeypots are warm now.
    pub fn warm(&self) -> usize {
        self.state.lock().expect("pool lock").warm.len()
    }

    /// What the leases met so far.
    pub fn stats(&self) -> PoolStats {
        *self.stats.lock().expect("pool stats lock")
    }

    fn count(&self, f: impl FnOnce(&mut PoolStats)) {
        f(&mut self.stats.lock().expect("pool stats lock"));
    }

    fn free_address(&self, st: &PoolState) -> Option<SocketAddr> {
        self.addresses.iter().copied().find(|a| {
            !st.warm.iter().any(|h| h.addr == *a)
                && !st.leased.values().any(|(h, _)| h.addr == *a)
                && !st.busy.contains(a)
        })
    }

    /// Takes a free address for a honeypot about to start (under the pool's lock).
    fn reserve(&self, st: &mut PoolState) -> Option<SocketAddr> {
        let a = self.free_address(st)?;
        st.busy.push(a);
        st.starting += 1;
        Some(a)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts a honeypot on a reserved address and hands it to `place` under the pool's lock,
    /// in the same step that frees its address: shutdown never sees it nowhere.
    fn start_one<R>(
        &self,
        addr: SocketAddr,
        place: impl FnOnce(&mut PoolState, Honeypot) -> R,
    ) -> Result<R, HoneypotError> {
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
        let r = r.map(|h| place(&mut st, h));
        self.changed.notify_all();
        r
    }

    /// Starts honeypots until `size` are warm or starting (blocking; run it off the async
    /// threads); stops early, without error, when no address is free.
    pub fn fill(&self) -> Result<(), HoneypotError> {
        loop {
            if self.is_closed() {
                return Err(HoneypotError::Closed);
            }
            let addr = {
                let mut st = self.state.lock().expect("pool lock");
                if st.warm.len() + st.starting >= self.size {
                    return Ok(());
                }
                match self.reserve(&mut st) {
                    Some(a) => a,
                    // Every address holds a honeypot: a release refills.
                    None => return Ok(()),
                }
            };
            self.start_one(addr, |st, h| st.warm.push(h))?;
        }
    }

    /// Fills the pool on a thread of its own.
    fn refill(self: &Arc<Self>) {
        let pool = self.clone();
        std::thread::spawn(move || match pool.fill() {
            Ok(()) | Err(HoneypotError::Closed) => {}
            Err(e) => tracing::warn!("refilling the honeypot pool: {e}"),
        });
    }

    /// The honeypot of this telescope address: the one already leased for it, a warm one (a
    /// replacement starts in the background), a new one on a free address, or, when every
    /// address is taken, the first that turns warm or free within the wait (blocking).
    pub fn lease(self: &Arc<Self>, telescope: IpAddr) -> Result<Lease, HoneypotError> {
        let began = Instant::now();
        let deadline = began + self.wait;
        let mut waited = false;
        let mut st = self.state.lock().expect("pool lock");
        loop {
            if self.is_closed() {
                return Err(HoneypotError::Closed);
            }
            let lease = |honeypot| Lease {
                telescope,
                honeypot,
            };
            if let Some((h, n)) = st.leased.get_mut(&telescope) {
                *n += 1;
                let l = lease(h.addr);
                drop(st);
                self.count(|c| {
                    c.leases += 1;
                    c.waited += u64::from(waited);
                });
                return Ok(l);
            }
            if let Some(h) = st.warm.pop() {
                let l = lease(h.addr);
                st.leased.insert(telescope, (h, 1));
                drop(st);
                self.count(|c| {
                    c.leases += 1;
                    c.waited += u64::from(waited);
                });
                self.refill();
                return Ok(l);
            }
            if let Some(addr) = self.reserve(&mut st) {
                drop(st);
                let l = self.start_one(addr, |st, h| Self::place(st, telescope, h))?;
                self.count(|c| {
                    c.leases += 1;
                    c.waited += u64::from(waited);
                });
                return Ok(l);
            }
            let now = Instant::now();
            if now >= deadline {
                let e = HoneypotError::Exhausted {
                    addresses: self.addresses.len(),
                    leased: st.leased.len(),
                    starting: st.starting,
                    stopping: st.busy.len() - st.starting,
                    waited_ms: began.elapsed().as_millis(),
                };
                drop(st);
                self.count(|c| c.exhausted += 1);
                return Err(e);
            }
            waited = true;
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .expect("pool lock")
                .0;
        }
    }

    /// Places a honeypot started for a lease of `telescope`.
    fn place(st: &mut PoolState, telescope: IpAddr, h: Honeypot) -> Lease {
        match st.leased.get_mut(&telescope) {
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
        }
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
            // Its address is free at once for a waiting lease or a refill.
            self.changed.notify_all();
        }
    }

    /// Stops every honeypot and starts no more; waits (up to a minute) for those being started
    /// or stopped elsewhere, and stops what they leave.
    pub fn shutdown(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        // Waiting leases end now (under the lock: none is between its check and its wait).
        drop(self.state.lock().expect("pool lock"));
        self.changed.notify_all();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Honeypots that take a while to start and to stop, like Samba's (scaled down).
    struct Slow {
        start: Duration,
        stop: Duration,
    }

    impl Backend for Slow {
        fn start(&self, addr: SocketAddr) -> Result<Honeypot, HoneypotError> {
            std::thread::sleep(self.start);
            Ok(Honeypot::in_process(addr, std::env::temp_dir()))
        }
        fn stop(&self, _honeypot: Honeypot) {
            std::thread::sleep(self.stop);
        }
    }

    fn pool(addresses: u8, size: usize, wait: Duration) -> Arc<Pool> {
        let addrs = (0..addresses)
            .map(|i| SocketAddr::from(([127, 0, 0, 100 + i], 4455)))
            .collect();
        let slow = Slow {
            start: Duration::from_millis(300),
            stop: Duration::from_millis(300),
        };
        Pool::with_wait(Arc::new(slow), addrs, size, wait)
    }

    fn telescope(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    /// Gives a lease back the way a session does: stop, then refill, off the caller's thread.
    fn release_later(pool: &Arc<Pool>, lease: Lease) -> std::thread::JoinHandle<()> {
        let pool = pool.clone();
        std::thread::spawn(move || {
            pool.release(lease);
            pool.fill().expect("refills");
        })
    }

    #[test]
    fn a_lease_takes_a_warm_honeypot_at_once_and_a_replacement_starts() {
        let p = pool(3, 2, Duration::from_secs(5));
        p.fill().unwrap();
        assert_eq!(p.warm(), 2);
        let t = Instant::now();
        let l = p.lease(telescope(1)).unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        // The replacement is started in the background.
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.warm() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(p.warm(), 2);
        // The same telescope address gets the same honeypot.
        assert_eq!(p.lease(telescope(1)).unwrap().honeypot, l.honeypot);
        p.shutdown();
    }

    #[test]
    fn one_session_after_another_never_runs_the_pool_dry() {
        // Three addresses, two warm: every honeypot a session used is stopped and replaced
        // while the next sessions arrive (the pool of the default configuration).
        let p = pool(3, 2, Duration::from_secs(5));
        p.fill().unwrap();
        let mut done = Vec::new();
        for _ in 0..8 {
            let l = p.lease(telescope(1)).expect("a honeypot");
            std::thread::sleep(Duration::from_millis(50));
            done.push(release_later(&p, l));
            std::thread::sleep(Duration::from_millis(100));
        }
        for d in done {
            d.join().unwrap();
        }
        let st = p.stats();
        assert_eq!(st.leases, 8, "{st:?}");
        assert_eq!(st.exhausted, 0, "{st:?}");
        p.shutdown();
    }

    #[test]
    fn a_lease_waits_for_an_address_a_release_frees() {
        let p = pool(1, 0, Duration::from_secs(5));
        let held = p.lease(telescope(1)).unwrap();
        let r = release_later(&p, held);
        let l = p.lease(telescope(2)).expect("the freed address");
        assert_eq!(l.honeypot, held.honeypot);
        r.join().unwrap();
        let st = p.stats();
        assert_eq!((st.leases, st.waited, st.exhausted), (2, 1, 0), "{st:?}");
        p.shutdown();
    }

    #[test]
    fn exhaustion_is_a_counted_error_that_says_what_holds_the_addresses() {
        let p = pool(1, 0, Duration::from_millis(200));
        let _held = p.lease(telescope(1)).unwrap();
        let e = p.lease(telescope(2)).unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(e, HoneypotError::Exhausted { leased: 1, .. }),
            "{text}"
        );
        assert!(text.contains("all 1 addresses in use (1 leased"), "{text}");
        assert_eq!(p.stats().exhausted, 1);
        p.shutdown();
    }

    #[test]
    fn shutdown_ends_a_waiting_lease() {
        let p = pool(1, 0, Duration::from_secs(30));
        let _held = p.lease(telescope(1)).unwrap();
        let q = p.clone();
        let waiting = std::thread::spawn(move || q.lease(telescope(2)));
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        p.shutdown();
        assert!(matches!(
            waiting.join().unwrap(),
            Err(HoneypotError::Closed)
        ));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

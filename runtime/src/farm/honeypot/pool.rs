//! The pool: warm honeypots and leases per telescope address, whatever the backend.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::super::events::{EventStore, LeaseRecord};
use super::{Backend, Honeypot, HoneypotError, Route};

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
    /// How long a lease outlives its last session: a worm's follow-up connection to the same
    /// address within it reaches the same honeypot. Zero stops the honeypot at once.
    linger: Duration,
    /// Where ended leases are recorded.
    events: Option<EventStore>,
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

/// How long a lease waits for a honeypot by default: a Samba honeypot starts in 2-4 s.
pub const LEASE_WAIT: Duration = Duration::from_secs(20);

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
            wait: LEASE_WAIT,
            state: Mutex::new(PoolState::default()),
            changed: Condvar::new(),
            stats: Mutex::new(PoolStats::default()),
        })
    }

    /// This pool with leases that wait at most `wait` for a honeypot (before any is used).
    pub fn with_wait(self: Arc<Self>, wait: Duration) -> Arc<Pool> {
        match Arc::try_unwrap(self) {
            Ok(mut p) => {
                p.wait = wait;
                Arc::new(p)
            }
            Err(shared) => shared,
        }
    }

    /// What the leases met so far.
    pub fn stats(&self) -> PoolStats {
        *self.stats.lock().expect("pool stats lock")
    }

    fn count(&self, f: impl FnOnce(&mut PoolStats)) {
        f(&mut self.stats.lock().expect("pool stats lock"));
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
            // Its address is free at once for a waiting lease or a refill.
            self.changed.notify_all();
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

    /// Takes a free address for a honeypot about to start (under the pool's lock).
    fn reserve(&self, st: &mut PoolState) -> Option<SocketAddr> {
        let a = self.free_address(st)?;
        st.busy.push(a);
        st.starting += 1;
        Some(a)
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

    /// Fills the pool on a thread of its own.
    fn refill(self: &Arc<Self>) {
        let pool = self.clone();
        std::thread::spawn(move || match pool.fill() {
            Ok(()) | Err(HoneypotError::Closed) => {}
            Err(e) => tracing::warn!("refilling the honeypot pool: {e}"),
        });
    }

    /// The honeypot of this telescope address: the one already leased for it (held or
    /// lingering), a warm one (a replacement starts in the background), a new one on a free
    /// address, or, when every address is taken, the first that turns warm or free within the
    /// wait (blocking).
    pub fn lease(self: &Arc<Self>, telescope: IpAddr) -> Result<Lease, HoneypotError> {
        let began = Instant::now();
        let deadline = began + self.wait;
        let mut waited = false;
        let granted = |pool: &Pool, waited: bool| {
            pool.count(|c| {
                c.leases += 1;
                c.waited += u64::from(waited);
            })
        };
        let mut st = self.state.lock().expect("pool lock");
        loop {
            if self.is_closed() {
                return Err(HoneypotError::Closed);
            }
            if let Some(l) = Self::hold(&mut st, telescope) {
                drop(st);
                granted(self, waited);
                return Ok(l);
            }
            if let Some(h) = st.warm.pop() {
                let l = Self::start_lease(&mut st, telescope, h);
                drop(st);
                granted(self, waited);
                self.refill();
                return Ok(l);
            }
            if let Some(addr) = self.reserve(&mut st) {
                drop(st);
                let l = self.start_one(addr, |st, h| match Self::hold(st, telescope) {
                    // Another session for this address got one first: keep theirs, this one
                    // goes warm.
                    Some(theirs) => {
                        st.warm.push(h);
                        theirs
                    }
                    None => Self::start_lease(st, telescope, h),
                })?;
                granted(self, waited);
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

    /// The way for one connection of `attacker` into `lease`'s honeypot (blocking: the
    /// `netns` backend configures the honeypot's namespace).
    pub fn route(&self, lease: &Lease, attacker: SocketAddr) -> Result<Route, HoneypotError> {
        self.backend
            .route(lease.honeypot, lease.telescope, attacker)
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
        // Waiting leases end now (under the lock: none is between its check and its wait).
        drop(self.state.lock().expect("pool lock"));
        self.changed.notify_all();
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

#[cfg(test)]
mod lease_tests {
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
        Pool::new(Arc::new(slow), addrs, size).with_wait(wait)
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
        assert_eq!(p.counts().warm, 2);
        let t = Instant::now();
        let l = p.lease(telescope(1)).unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        // The replacement is started in the background.
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.counts().warm < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(p.counts().warm, 2);
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

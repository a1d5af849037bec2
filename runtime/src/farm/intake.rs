//! The intake: listeners with a backlog sized for bursts, an accept loop that backs off when
//! the process runs out of descriptors instead of spinning, and caps on concurrent connections
//! (over all listeners, and per source address) decided before any work is done for a
//! connection. What it refused and what failed is counted and summarised once per interval, in
//! the log and in the event store's `intake` table.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

use super::events::{now, EventStore, Outcome};
use super::filter::{FilterDecision, Probe, ScanFilter, Tally};
use super::kernel::SetWriter;
use super::metrics::Metrics;
use super::scope::Scope;
use super::throttle::Throttle;

/// What the farm takes in at most.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once, over all listeners.
    pub max_connections: usize,
    /// Connections served at once from one source address.
    pub max_per_source: usize,
    /// How often refusals, accept errors and outcomes are summarised.
    pub report_interval: Duration,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` were being served.
    Global,
    /// `max_per_source` were being served for its source address.
    Source,
}

/// Connections being served: the total and per source. A source is present only while it has
/// a connection, so the table never holds more than `max_connections` entries.
#[derive(Debug, Default)]
struct Admitted {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Counters of one report interval.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused_global: AtomicU64,
    refused_source: AtomicU64,
    accept_errors: AtomicU64,
    /// Connections to a local address outside the listener's prefixes (reset).
    outside: AtomicU64,
    peak_open: AtomicU64,
    /// Ended connections by outcome name (whatever outcomes the sessions have).
    ended: Mutex<BTreeMap<&'static str, u64>>,
    /// The scan filter's decisions by source.
    filter: Mutex<Tally>,
}

/// What one report interval saw; a row of the event store's `intake` table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntakeCounts {
    /// The interval, in seconds since the Unix epoch.
    pub since: f64,
    pub until: f64,
    pub accepted: u64,
    pub refused_global: u64,
    pub refused_source: u64,
    pub accept_errors: u64,
    /// Connections to a local address outside every configured prefix of their port (reset;
    /// log and metrics only).
    pub outside: u64,
    /// The most connections served at once during the interval.
    pub peak_open: u64,
    /// Connections being served at its end (log only).
    pub open: u64,
    /// Connections ended, by outcome name (log only: the `connections` table has each).
    pub ended: BTreeMap<&'static str, u64>,
    /// The scan filter's decisions by source (the store's `filter` table).
    pub filter: Tally,
}

impl IntakeCounts {
    /// Nothing happened: no line, no row.
    fn is_quiet(&self) -> bool {
        self.accepted
            + self.refused_global
            + self.refused_source
            + self.accept_errors
            + self.outside
            == 0
            && self.ended.is_empty()
            && self.filter.is_empty()
    }

    fn is_trouble(&self) -> bool {
        self.refused_global + self.refused_source + self.accept_errors + self.outside > 0
    }

    fn summary(&self) -> String {
        let ended: u64 = self.ended.values().sum();
        let mut s = format!(
            "last {:.1} s: {} accepted, {ended} ended",
            self.until - self.since,
            self.accepted
        );
        if ended > 0 {
            let by: Vec<String> = self
                .ended
                .iter()
                .map(|(name, n)| format!("{n} {name}"))
                .collect();
            s.push_str(&format!(" ({})", by.join(", ")));
        }
        s.push_str(&format!(", {} open (peak {})", self.open, self.peak_open));
        if self.refused_global + self.refused_source > 0 {
            s.push_str(&format!(
                "; refused {} over max_connections, {} over max_per_source",
                self.refused_global, self.refused_source
            ));
        }
        if self.accept_errors > 0 {
            s.push_str(&format!("; {} accept errors", self.accept_errors));
        }
        if self.outside > 0 {
            s.push_str(&format!(
                "; {} to addresses outside the configured prefixes (reset)",
                self.outside
            ));
        }
        if !self.filter.is_empty() {
            let (rows, [admitted, follow_ups, filtered]) = self.filter.rows();
            s.push_str(&format!(
                "; filter: {admitted} admitted, {follow_ups} follow-ups, {filtered} filtered, \
                 from {} sources",
                rows.len()
            ));
        }
        s
    }
}

/// Admission and accounting for every listener of a farm.
#[derive(Debug)]
pub struct Intake {
    limits: Limits,
    admitted: Mutex<Admitted>,
    counters: Counters,
    /// Where the current report interval started.
    since: Mutex<f64>,
    /// Accept errors' own log lines (besides the summary).
    errors_log: Mutex<Throttle>,
    /// The scan filter, consulted after the caps (see [`Intake::attach`]).
    filter: OnceLock<Arc<ScanFilter>>,
    metrics: OnceLock<Arc<Metrics>>,
    /// The kernel sets, where privileged: filtered sources and admitted pairs go there.
    kernel: OnceLock<Arc<SetWriter>>,
}

/// A connection's place under the caps; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    intake: Arc<Intake>,
    source: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.intake.release(self.source);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded state stays consistent across a panic elsewhere: every update is one step.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Intake {
    pub fn new(limits: Limits) -> Arc<Intake> {
        let errors_log = Mutex::new(Throttle::new(limits.report_interval));
        Arc::new(Intake {
            limits,
            admitted: Mutex::default(),
            counters: Counters::default(),
            since: Mutex::new(now()),
            errors_log,
            filter: OnceLock::new(),
            metrics: OnceLock::new(),
            kernel: OnceLock::new(),
        })
    }

    /// Puts the scan filter behind the caps and counts into `metrics` (refusals, filter
    /// decisions, outcomes). The first attached stays.
    pub fn attach(&self, filter: Arc<ScanFilter>, metrics: Arc<Metrics>) {
        let _ = self.filter.set(filter);
        let _ = self.metrics.set(metrics);
    }

    /// Sends the filter's admitted pairs and filtered sources to the kernel sets (the first
    /// attached stays).
    pub fn attach_kernel(&self, writer: Arc<SetWriter>) {
        let _ = self.kernel.set(writer);
    }

    /// The scan filter's decision on a connection the caps admitted (counted); without a
    /// filter, every connection is admitted.
    pub fn screen(&self, source: IpAddr, telescope: SocketAddr) -> FilterDecision {
        let Some(filter) = self.filter.get() else {
            return FilterDecision::Admit;
        };
        let probe = Probe {
            source,
            telescope,
            now: now() as u64,
        };
        let d = match self.metrics.get() {
            Some(m) => m.gate(filter, &probe),
            None => filter.decide(&probe),
        };
        lock(&self.counters.filter).add(source, d);
        if let Some(k) = self.kernel.get() {
            match d {
                FilterDecision::Admit => k.admitted(source, telescope),
                FilterDecision::Filtered(_) => k.filtered(source),
                FilterDecision::FollowUp => {}
            }
        }
        d
    }

    /// Takes a place for a connection from `source`, or says which cap refuses it (counted).
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Permit, Refusal> {
        let c = &self.counters;
        let mut a = lock(&self.admitted);
        if a.total >= self.limits.max_connections {
            c.refused_global.fetch_add(1, Ordering::Relaxed);
            self.count_outcome("refused_global");
            return Err(Refusal::Global);
        }
        let n = a.by_source.get(&source).copied().unwrap_or(0);
        if n >= self.limits.max_per_source {
            c.refused_source.fetch_add(1, Ordering::Relaxed);
            self.count_outcome("refused_source");
            return Err(Refusal::Source);
        }
        a.by_source.insert(source, n + 1);
        a.total += 1;
        c.accepted.fetch_add(1, Ordering::Relaxed);
        c.peak_open.fetch_max(a.total as u64, Ordering::Relaxed);
        Ok(Permit {
            intake: self.clone(),
            source,
        })
    }

    fn release(&self, source: IpAddr) {
        let mut a = lock(&self.admitted);
        a.total = a.total.saturating_sub(1);
        match a.by_source.get_mut(&source) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                a.by_source.remove(&source);
            }
        }
    }

    /// Connections being served, and how many source addresses they come from.
    pub fn open(&self) -> (usize, usize) {
        let a = lock(&self.admitted);
        (a.total, a.by_source.len())
    }

    /// Counts how a served connection ended.
    pub fn ended(&self, outcome: &Outcome) {
        *lock(&self.counters.ended)
            .entry(outcome.name())
            .or_insert(0) += 1;
        self.count_outcome(outcome.name());
    }

    /// Counts an admitted connection closed unserved: a diverted port without a service.
    pub fn no_service(&self) {
        *lock(&self.counters.ended).entry("no_service").or_insert(0) += 1;
        self.count_outcome("no_service");
    }

    /// Counts a connection to a local address outside the listener's prefixes.
    fn outside(&self) {
        self.counters.outside.fetch_add(1, Ordering::Relaxed);
        self.count_outcome("outside");
    }

    fn count_outcome(&self, name: &str) {
        if let Some(m) = self.metrics.get() {
            m.outcome(name);
        }
    }

    /// Counts an accept error and logs it, at most once per report interval.
    fn accept_error(&self, listener: SocketAddr, e: &io::Error, pause: Option<Duration>) {
        self.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(held) = lock(&self.errors_log).allow() {
            let pause = pause.map_or_else(String::new, |p| format!("; pausing accepts {p:?}"));
            let held = if held > 0 {
                format!(" ({held} more since the last line)")
            } else {
                String::new()
            };
            tracing::warn!("accept on {listener}: {e}{pause}{held}");
        }
    }

    /// The counters since the last report, reset.
    fn take(&self) -> IntakeCounts {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.swap(0, Ordering::Relaxed);
        let open = lock(&self.admitted).total as u64;
        let until = now();
        let since = std::mem::replace(&mut *lock(&self.since), until);
        IntakeCounts {
            since,
            until,
            accepted: get(&c.accepted),
            refused_global: get(&c.refused_global),
            refused_source: get(&c.refused_source),
            accept_errors: get(&c.accept_errors),
            outside: get(&c.outside),
            // The next interval's peak starts from what is open now.
            peak_open: c.peak_open.swap(open, Ordering::Relaxed).max(open),
            open,
            ended: std::mem::take(&mut *lock(&c.ended)),
            filter: std::mem::take(&mut *lock(&c.filter)),
        }
    }

    /// Summarises the interval that ends now: one log line and one store row, unless nothing
    /// happened.
    pub fn report(&self, events: &EventStore) -> IntakeCounts {
        let c = self.take();
        if !c.is_quiet() {
            if c.is_trouble() {
                tracing::warn!("{}", c.summary());
            } else {
                tracing::info!("{}", c.summary());
            }
            events.intake(&c);
        }
        c
    }

    /// Reports every interval until `stop` turns true (the last interval is the caller's, once
    /// its sessions have ended).
    pub async fn report_every_interval(
        self: Arc<Self>,
        events: EventStore,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.limits.report_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.report(&events);
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// A listener on `addr` whose kernel queue holds `backlog` connections (capped by
/// `net.core.somaxconn`): a burst waits there rather than being refused by the kernel.
/// An IPv6 listener takes IPv6 only, so `[::]:PORT` and `0.0.0.0:PORT` can both be bound.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    socket(addr, false)?.listen(backlog)
}

/// [`listen`] for a TPROXY diversion: a transparent socket (`IP_TRANSPARENT`, which needs
/// `CAP_NET_ADMIN`) accepts the connections the nftables `tproxy` rule sends it, whatever
/// their destination; each accepted socket's local address is the one the attacker reached.
pub fn listen_transparent(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    socket(addr, true)?.listen(backlog)
}

fn socket(addr: SocketAddr, transparent: bool) -> io::Result<TcpSocket> {
    let s = if addr.is_ipv4() {
        let s = TcpSocket::new_v4()?;
        if transparent {
            set_flag(&s, libc::IPPROTO_IP, libc::IP_TRANSPARENT)?;
        }
        s
    } else {
        let s = TcpSocket::new_v6()?;
        set_flag(&s, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)?;
        if transparent {
            set_flag(&s, libc::IPPROTO_IPV6, libc::IPV6_TRANSPARENT)?;
        }
        s
    };
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    Ok(s)
}

/// Sets an integer socket option to 1.
fn set_flag(s: &TcpSocket, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads the int it is given, which lives for the call, on a socket
    // this function borrows.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The pause after accept errors: 1 ms doubling to 1 s, reset by a successful accept.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MOST: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The pause before the next accept, if `e` is one to pause for: running out of
    /// descriptors or memory (and anything unknown) is; an error of one connection (aborted
    /// before it was accepted, refused by a firewall rule) is not.
    fn after(&mut self, e: &io::Error) -> Option<Duration> {
        let per_connection = matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
        ) || matches!(e.raw_os_error(), Some(libc::EPROTO | libc::EPERM));
        if per_connection {
            return None;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(Self::MOST);
        Some(pause)
    }
}

pin_project_lite::pin_project! {
    /// `future`, then `then` on its output, as one future of the two's size. An async block
    /// that awaits a future it captured holds that future twice (the capture, then the value
    /// awaited) for as long as it runs: for a connection's session, that is every idle
    /// connection's memory.
    #[must_use = "futures do nothing unless polled"]
    pub struct Then<F, C> {
        #[pin]
        future: F,
        then: Option<C>,
    }
}

/// [`Then`]: `future`, then `then` on its output.
pub fn then<F: Future, C: FnOnce(F::Output) -> T, T>(future: F, then: C) -> Then<F, C> {
    Then {
        future,
        then: Some(then),
    }
}

impl<F: Future, C: FnOnce(F::Output) -> T, T> Future for Then<F, C> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.project();
        let out = ready!(this.future.poll(cx));
        let then = this.then.take().expect("a Then polled after it completed");
        Poll::Ready(then(out))
    }
}

/// Accepts connections on `listener` until `stop` turns true, then waits for its sessions to
/// end. Each connection the caps and then the scan filter admit is served by `serve` in a task
/// of its own, holding its permit until `serve` returns; the others are reset (SO_LINGER 0) at
/// once and counted.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    intake: Arc<Intake>,
    stop: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let serve = move |sock, attacker, _telescope| serve(sock, attacker);
    accept_in_scope(listener, Scope::default(), intake, stop, serve).await
}

/// [`accept_loop`] for a listener that watches `scope`: a connection whose telescope (local)
/// address is outside it is reset at once and counted, before the caps and the filter.
/// `serve` is given the connection's socket, its attacker (remote) and telescope (local)
/// addresses; the future it returns is the connection's task, with its permit beside it (one
/// allocation per connection).
pub async fn accept_in_scope<F, Fut>(
    listener: TcpListener,
    scope: Scope,
    intake: Arc<Intake>,
    mut stop: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    // Each session's task holds a sender: once the loop drops its own, `ended` closes when
    // the last session has. (A JoinSet would cost an entry per connection and wake this loop
    // at every session's end.)
    let (alive, mut ended) = tokio::sync::mpsc::channel::<()>(1);
    let mut backoff = Backoff::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((sock, peer)) => {
                backoff.reset();
                let telescope = sock.local_addr().unwrap_or(local);
                let inside = scope.contains(telescope);
                if !inside {
                    intake.outside();
                }
                let admitted = (inside)
                    .then(|| intake.admit(peer.ip()).ok())
                    .flatten()
                    .filter(|_| intake.screen(peer.ip(), telescope).answered());
                match admitted {
                    Some(permit) => {
                        let alive = alive.clone();
                        tokio::spawn(then(serve(sock, peer, telescope), move |()| {
                            drop((permit, alive))
                        }));
                    }
                    // Refused or filtered: reset rather than closed, unread: no FIN
                    // handshake, no TIME_WAIT here.
                    None => {
                        let _ = sock.set_zero_linger();
                    }
                }
            }
            Err(e) => {
                let pause = backoff.after(&e);
                intake.accept_error(local, &e, pause);
                if let Some(p) = pause {
                    tokio::select! {
                        _ = tokio::time::sleep(p) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
            }
        }
    }
    drop(alive);
    let _ = ended.recv().await;
}

/// Raises the soft limit on open files toward `want` (never past the hard limit); returns the
/// soft limit in force. A farm holds about two descriptors per connection (the attacker's, and
/// a honeypot's once bridged).
pub fn raise_fd_limit(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let target = (want as libc::rlim_t).min(lim.rlim_max);
    if target > lim.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = target;
    }
    // rlim_t is u64 on 64-bit Linux, not on every target.
    #[allow(clippy::unnecessary_cast)]
    Ok(lim.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intake(max: usize, per_source: usize) -> Arc<Intake> {
        Intake::new(Limits {
            max_connections: max,
            max_per_source: per_source,
            report_interval: Duration::from_secs(10),
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn caps_refuse_and_count_and_places_come_back() {
        let i = intake(3, 2);
        let a1 = i.admit(ip(1)).unwrap();
        let _a2 = i.admit(ip(1)).unwrap();
        assert_eq!(i.admit(ip(1)).unwrap_err(), Refusal::Source);
        let _b1 = i.admit(ip(2)).unwrap();
        assert_eq!(i.admit(ip(3)).unwrap_err(), Refusal::Global);
        assert_eq!(i.open(), (3, 2));
        drop(a1);
        let _c1 = i.admit(ip(3)).unwrap();
        let c = i.take();
        assert_eq!(
            (
                c.accepted,
                c.refused_source,
                c.refused_global,
                c.peak_open,
                c.open
            ),
            (4, 1, 1, 3, 3)
        );
        assert!(c.is_trouble());
        assert_eq!(i.take().accepted, 0, "counters restart each interval");
    }

    #[test]
    fn the_source_table_holds_only_sources_with_connections() {
        let i = intake(100, 100);
        let permits: Vec<Permit> = (0..50u8)
            .flat_map(|n| [i.admit(ip(n)).unwrap(), i.admit(ip(n)).unwrap()])
            .collect();
        assert_eq!(i.open(), (100, 50));
        // At the global cap no new source gets an entry.
        assert_eq!(i.admit(ip(200)).unwrap_err(), Refusal::Global);
        assert_eq!(i.open(), (100, 50));
        drop(permits);
        assert_eq!(i.open(), (0, 0));
    }

    #[test]
    fn outcomes_are_counted_by_name() {
        let i = intake(1, 1);
        i.ended(&Outcome::Scripted);
        i.ended(&Outcome::Bridged { deviated_at: 3 });
        i.ended(&Outcome::Error);
        i.ended(&Outcome::Error);
        let c = i.take();
        assert_eq!(
            c.ended,
            BTreeMap::from([("bridged", 1), ("error", 2), ("scripted", 1)])
        );
        assert!(!c.is_quiet() && !c.is_trouble());
        assert!(
            c.summary()
                .contains("0 accepted, 4 ended (1 bridged, 2 error, 1 scripted), 0 open"),
            "{}",
            c.summary()
        );
    }

    #[test]
    fn backoff_doubles_to_a_second_and_skips_per_connection_errors() {
        let mut b = Backoff::new();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<Duration> = (0..12).filter_map(|_| b.after(&emfile)).collect();
        assert_eq!(pauses[0], Duration::from_millis(1));
        assert_eq!(pauses[1], Duration::from_millis(2));
        assert_eq!(pauses[11], Duration::from_secs(1));
        assert_eq!(
            b.after(&io::Error::from_raw_os_error(libc::ECONNABORTED)),
            None
        );
        b.reset();
        assert_eq!(b.after(&emfile), Some(Duration::from_millis(1)));
    }

    #[test]
    fn raising_the_fd_limit_never_lowers_it() {
        let now = raise_fd_limit(0).unwrap();
        assert!(now > 0);
        assert_eq!(raise_fd_limit(1).unwrap(), now);
        // Up to the hard limit at most: asking for more is not an error.
        assert!(raise_fd_limit(u64::MAX).unwrap() >= now);
    }

    #[tokio::test]
    async fn a_connection_outside_the_scope_is_reset_and_counted() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = listen(SocketAddr::from(([0, 0, 0, 0], 0)), 16).unwrap();
        let port = l.local_addr().unwrap().port();
        let i = intake(8, 8);
        let (stop_tx, stop) = watch::channel(false);
        let scope = Scope::new(vec!["127.0.0.8".parse().unwrap()]);
        let served = Arc::new(AtomicU64::new(0));
        let count = served.clone();
        let task = tokio::spawn(accept_in_scope(
            l,
            scope,
            i.clone(),
            stop,
            move |mut s, _, _| {
                count.fetch_add(1, Ordering::Relaxed);
                async move {
                    let _ = s.write_all(b"hi").await;
                }
            },
        ));
        let read = |last: u8| async move {
            let mut c = TcpStream::connect(SocketAddr::from(([127, 0, 0, last], port)))
                .await
                .unwrap();
            let mut buf = [0u8; 2];
            c.read(&mut buf).await.map(|n| buf[..n].to_vec())
        };
        assert_eq!(read(8).await.unwrap(), b"hi");
        let outside = read(9).await;
        assert!(
            matches!(&outside, Err(e) if e.kind() == io::ErrorKind::ConnectionReset)
                || matches!(&outside, Ok(b) if b.is_empty()),
            "{outside:?}"
        );
        let _ = stop_tx.send(true);
        task.await.unwrap();
        assert_eq!(served.load(Ordering::Relaxed), 1);
        let c = i.take();
        assert_eq!((c.accepted, c.outside), (1, 1));
    }
}

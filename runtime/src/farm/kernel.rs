//! The farm's kernel side, where it has the privilege (`CAP_NET_ADMIN` and the `nft` and `ip`
//! commands): one nftables table it owns, holding
//!
//! - the *kernel set* of filtered sources: once the scan filter filters a source, its SYNs to
//!   the watched prefixes are dropped before the handshake, for the filter's window (the
//!   set's timeout), except to the (address, port) pairs admitted for it, which stay
//!   follow-ups (a second set, of admitted pairs);
//! - the *TPROXY diversion*: every port (or the listed ports) of a prefix sent to one
//!   transparent socket, with the policy route that delivers the marked packets locally.
//!
//! The table is created at start (replacing a stale one a crash left) and removed at a clean
//! exit. Elements are added by a [`SetWriter`] in one `nft` transaction per flush interval,
//! not a process per source.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::command::{self, CommandError};
use super::scope::Prefix;

/// Elements a [`SetWriter`] holds between flushes at most; more are dropped (counted).
pub const MAX_PENDING: usize = 16_384;

/// Why the kernel side could not be set up or written.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// `nft` or `ip` missing, or failed (what it said).
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("nftables table name `{0}`: letters, digits and `_` only")]
    TableName(String),
}

/// The ports a TPROXY diversion takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    All,
    List(Vec<u16>),
}

/// One TPROXY diversion: connections to `prefix` (on `ports`) go to the transparent socket
/// listening on `to` (of the prefix's family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divert {
    pub prefix: Prefix,
    pub ports: Ports,
    pub to: SocketAddr,
}

/// The kernel set's settings: what the scan filter's are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    /// The prefixes whose SYNs from filtered sources are dropped.
    pub prefixes: Vec<Prefix>,
    /// The filter's source granularity.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// The filter's window: the elements' timeout.
    pub window: Duration,
    /// The most elements each set holds (the filter's capacity; admitted pairs `n` times it).
    pub capacity: usize,
    /// Admitted pairs per source at most (the filter's N).
    pub n: usize,
}

/// What the farm's table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The table's name (in the `inet` family).
    pub name: String,
    pub set: Option<SetSpec>,
    pub diverts: Vec<Divert>,
    /// The mark of diverted packets, and the routing table that delivers them locally.
    pub fwmark: u32,
    pub route_table: u32,
}

/// Runs `program args`, with `stdin` written to it; its output on failure as the error.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), KernelError> {
    Ok(command::run(program, args, stdin).map(drop)?)
}

/// Applies an nftables script in one transaction (`nft -f -`).
pub fn nft(script: &str) -> Result<(), KernelError> {
    run("nft", &["-f", "-"], Some(script))
}

fn family(p: &Prefix) -> &'static str {
    if p.first().is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

/// The source mask of a family, as nftables writes it.
fn source_mask(v6: bool, len: u8) -> IpAddr {
    if v6 {
        let m = u128::MAX << (128 - u32::from(len));
        IpAddr::from(m.to_be_bytes())
    } else {
        IpAddr::from((u32::MAX << (32 - u32::from(len))).to_be_bytes())
    }
}

impl TableSpec {
    /// Checks the name: it is written into nftables scripts.
    pub fn check(&self) -> Result<(), KernelError> {
        let ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(())
        } else {
            Err(KernelError::TableName(self.name.clone()))
        }
    }

    /// The script that creates the table afresh, replacing any table of its name.
    pub fn script(&self) -> String {
        let t = &self.name;
        let mut s = format!("table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n");
        if let Some(set) = &self.set {
            write_set_rules(&mut s, set);
        }
        if !self.diverts.is_empty() {
            let _ = writeln!(
                s,
                "  chain divert {{\n    type filter hook prerouting priority mangle; policy accept;"
            );
            for d in &self.diverts {
                let f = family(&d.prefix);
                let ports = match &d.ports {
                    Ports::All => String::new(),
                    Ports::List(l) => {
                        let l: Vec<String> = l.iter().map(u16::to_string).collect();
                        format!(" tcp dport {{ {} }}", l.join(", "))
                    }
                };
                let to = match d.to {
                    SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
                    SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
                };
                let _ = writeln!(
                    s,
                    "    {f} daddr {} meta l4proto tcp{ports} tproxy {f} to {to} meta mark set {:#x} accept",
                    d.prefix, self.fwmark
                );
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n");
        s
    }

    /// Creates the table (and the policy route, with diversions), replacing stale ones.
    pub fn install(&self) -> Result<Installed, KernelError> {
        self.check()?;
        nft(&self.script())?;
        let installed = Installed {
            spec: self.clone(),
            removed: false,
        };
        if !self.diverts.is_empty() {
            installed.route(true)?;
        }
        Ok(installed)
    }
}

/// The kernel set's sets and rules: admitted pairs pass, filtered sources' SYNs are dropped.
fn write_set_rules(s: &mut String, set: &SetSpec) {
    let timeout = set.window.as_secs().max(1);
    for (v, addr) in [("4", "ipv4_addr"), ("6", "ipv6_addr")] {
        let _ = writeln!(
            s,
            "  set filtered{v} {{ type {addr}; flags timeout; timeout {timeout}s; size {}; }}\n  \
             set admitted{v} {{ type {addr} . {addr} . inet_service; flags timeout; timeout {timeout}s; size {}; }}",
            set.capacity.max(1),
            (set.capacity * set.n.max(1)).max(1),
        );
    }
    s.push_str("  chain intake {\n    type filter hook prerouting priority raw; policy accept;\n");
    for p in &set.prefixes {
        let (f, v6) = (family(p), !p.first().is_ipv4());
        let v = if v6 { "6" } else { "4" };
        let mask = source_mask(v6, if v6 { set.ipv6_prefix } else { set.ipv4_prefix });
        let _ = writeln!(
            s,
            "    {f} daddr {p} tcp flags & (syn | ack) == syn {f} saddr & {mask} . {f} daddr . tcp dport @admitted{v} accept\n    \
             {f} daddr {p} tcp flags & (syn | ack) == syn {f} saddr & {mask} @filtered{v} counter drop"
        );
    }
    s.push_str("  }\n");
}

/// The installed table (and policy route); [`Installed::remove`] at a clean exit, or on drop.
#[derive(Debug)]
pub struct Installed {
    spec: TableSpec,
    removed: bool,
}

impl Installed {
    /// Adds (or removes) the policy route of diverted packets: `ip rule add fwmark M lookup
    /// T` and `ip route add local default dev lo table T`, per family diverted. Adding first
    /// removes stale ones.
    fn route(&self, add: bool) -> Result<(), KernelError> {
        let mark = format!("{:#x}", self.spec.fwmark);
        let table = self.spec.route_table.to_string();
        let families: HashSet<&str> = self
            .spec
            .diverts
            .iter()
            .map(|d| {
                if d.prefix.first().is_ipv4() {
                    "-4"
                } else {
                    "-6"
                }
            })
            .collect();
        for f in families {
            // Whatever a crashed run left (or this one added), until none is left.
            for _ in 0..16 {
                if run(
                    "ip",
                    &[f, "rule", "del", "fwmark", &mark, "lookup", &table],
                    None,
                )
                .is_err()
                {
                    break;
                }
            }
            let _ = run("ip", &[f, "route", "flush", "table", &table], None);
            if add {
                run(
                    "ip",
                    &[f, "rule", "add", "fwmark", &mark, "lookup", &table],
                    None,
                )?;
                let local = ["route", "add", "local", "default", "dev", "lo", "table"];
                let mut args = vec![f];
                args.extend(local);
                args.push(&table);
                run("ip", &args, None)?;
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Removes the table and the policy route.
    pub fn remove(&mut self) -> Result<(), KernelError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        if !self.spec.diverts.is_empty() {
            self.route(false)?;
        }
        nft(&format!("delete table inet {}\n", self.spec.name))
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!("removing nftables table {}: {e}", self.spec.name);
        }
    }
}

/// Which set an element goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Element {
    /// A filtered source (its prefix, as the filter counts sources).
    Filtered(IpAddr),
    /// A (source prefix, telescope address, port) admitted: its follow-ups pass.
    Admitted(IpAddr, SocketAddr),
}

impl Element {
    fn set(&self) -> &'static str {
        match self {
            Element::Filtered(a) if a.is_ipv4() => "filtered4",
            Element::Filtered(_) => "filtered6",
            Element::Admitted(a, _) if a.is_ipv4() => "admitted4",
            Element::Admitted(..) => "admitted6",
        }
    }

    /// The element as nftables writes it, or `None` when its families differ (an IPv4
    /// source on an IPv6 address: not one the sets hold).
    fn text(&self) -> Option<String> {
        match *self {
            Element::Filtered(a) => Some(a.to_string()),
            Element::Admitted(s, t) if s.is_ipv4() == t.is_ipv4() => {
                Some(format!("{s} . {} . {}", t.ip(), t.port()))
            }
            Element::Admitted(..) => None,
        }
    }
}

/// Counts of a [`SetWriter`], by outcome.
#[derive(Debug, Default)]
pub struct SetCounts {
    /// Elements written (per set kind: filtered sources, admitted pairs).
    pub filtered_added: AtomicU64,
    pub admitted_added: AtomicU64,
    /// Elements whose transaction failed.
    pub failed: AtomicU64,
    /// Elements dropped because [`MAX_PENDING`] were waiting.
    pub dropped: AtomicU64,
}

/// Runs one batch script; `nft -f -` in the farm, a recorder in tests.
pub type Apply = Box<dyn Fn(&str) -> Result<(), KernelError> + Send + Sync>;

/// Collects elements for the kernel sets and writes them in one `nft` transaction per flush.
pub struct SetWriter {
    table: String,
    timeout: Duration,
    v4_mask: u32,
    v6_mask: u128,
    pending: Mutex<Vec<Element>>,
    seen: Mutex<HashSet<Element>>,
    pub counts: SetCounts,
    apply: Apply,
}

impl std::fmt::Debug for SetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetWriter")
            .field("table", &self.table)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SetWriter {
    /// A writer for the table `spec` describes, applying batches with `apply`.
    pub fn new(table: &str, set: &SetSpec, apply: Apply) -> Arc<SetWriter> {
        Arc::new(SetWriter {
            table: table.to_string(),
            timeout: set.window.max(Duration::from_secs(1)),
            v4_mask: u32::MAX << (32 - u32::from(set.ipv4_prefix.clamp(1, 32))),
            v6_mask: u128::MAX << (128 - u32::from(set.ipv6_prefix.clamp(1, 64))),
            pending: Mutex::default(),
            seen: Mutex::default(),
            counts: SetCounts::default(),
            apply,
        })
    }

    /// A writer that runs `nft`.
    pub fn nft(table: &str, set: &SetSpec) -> Arc<SetWriter> {
        Self::new(table, set, Box::new(nft))
    }

    /// The source's prefix, as the filter counts sources.
    fn source(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & self.v4_mask).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & self.v6_mask).into()),
        }
    }

    fn push(&self, e: Element) {
        let mut p = lock(&self.pending);
        if p.len() >= MAX_PENDING {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            p.push(e);
        }
    }

    /// Queues a filtered source.
    pub fn filtered(&self, source: IpAddr) {
        self.push(Element::Filtered(self.source(source)));
    }

    /// Queues an admitted (source, telescope address and port).
    pub fn admitted(&self, source: IpAddr, telescope: SocketAddr) {
        let t = SocketAddr::new(telescope.ip().to_canonical(), telescope.port());
        self.push(Element::Admitted(self.source(source), t));
    }

    /// The batch script of `elements` (each once, in order), and how many of each kind.
    fn batch(&self, elements: &[Element]) -> (String, u64, u64) {
        let mut by_set: Vec<(&str, Vec<String>)> = Vec::new();
        let (mut filtered, mut admitted) = (0, 0);
        let mut once = HashSet::new();
        for e in elements.iter().filter(|e| once.insert(**e)) {
            let Some(text) = e.text() else { continue };
            match e {
                Element::Filtered(_) => filtered += 1,
                Element::Admitted(..) => admitted += 1,
            }
            let item = format!("{text} timeout {}s", self.timeout.as_secs());
            match by_set.iter_mut().find(|(s, _)| *s == e.set()) {
                Some((_, v)) => v.push(item),
                None => by_set.push((e.set(), vec![item])),
            }
        }
        let mut s = String::new();
        for (set, items) in by_set {
            let _ = writeln!(
                s,
                "add element inet {} {set} {{ {} }}",
                self.table,
                items.join(", ")
            );
        }
        (s, filtered, admitted)
    }

    /// Writes what was queued since the last flush, in one transaction; returns how many
    /// elements it wrote. The elements of a failed transaction are counted and lost.
    pub fn flush(&self) -> Result<u64, KernelError> {
        let elements = std::mem::take(&mut *lock(&self.pending));
        // Within one window, an element written once need not be written again (the set
        // has it); the memory of what was written is cleared each window.
        let fresh: Vec<Element> = {
            let seen = lock(&self.seen);
            elements.into_iter().filter(|e| !seen.contains(e)).collect()
        };
        let (script, filtered, admitted) = self.batch(&fresh);
        if script.is_empty() {
            return Ok(0);
        }
        match (self.apply)(&script) {
            Ok(()) => {
                let c = &self.counts;
                c.filtered_added.fetch_add(filtered, Ordering::Relaxed);
                c.admitted_added.fetch_add(admitted, Ordering::Relaxed);
                let mut seen = lock(&self.seen);
                if seen.len() + fresh.len() > MAX_PENDING {
                    seen.clear();
                }
                seen.extend(fresh);
                Ok(filtered + admitted)
            }
            Err(e) => {
                self.counts
                    .failed
                    .fetch_add(filtered + admitted, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Forgets what was written: after a window the kernel has dropped it too.
    fn forget(&self) {
        lock(&self.seen).clear();
    }

    /// Flushes every `interval` until `stop` turns true (then once more); failures are
    /// logged at most once per `report` interval.
    pub async fn flush_every(
        self: Arc<Self>,
        interval: Duration,
        report: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut log = super::throttle::Throttle::new(report);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut window = tokio::time::interval(self.timeout);
        window.tick().await;
        loop {
            let last = tokio::select! {
                _ = tick.tick() => false,
                _ = window.tick() => { self.forget(); continue; }
                _ = stop.wait_for(|s| *s) => true,
            };
            let w = self.clone();
            let r = tokio::task::spawn_blocking(move || w.flush()).await;
            if let Ok(Err(e)) = r {
                if let Some(held) = log.allow() {
                    tracing::warn!("writing the nftables kernel set: {e} ({held} more failures)");
                }
            }
            if last {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    fn set() -> SetSpec {
        SetSpec {
            prefixes: vec![
                "198.18.0.0/24".parse().unwrap(),
                "2001:db8::/64".parse().unwrap(),
            ],
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            window: Duration::from_secs(60),
            capacity: 1000,
            n: 4,
        }
    }

    fn spec() -> TableSpec {
        TableSpec {
            name: "hfp_unit".into(),
            set: Some(set()),
            diverts: vec![Divert {
                prefix: "198.18.0.0/24".parse().unwrap(),
                ports: Ports::All,
                to: "127.0.0.1:40000".parse().unwrap(),
            }],
            fwmark: 0x4846,
            route_table: 4846,
        }
    }

    #[test]
    fn the_table_replaces_a_stale_one_and_holds_sets_rules_and_diversions() {
        let s = spec().script();
        assert!(
            s.starts_with("table inet hfp_unit\ndelete table inet hfp_unit\n"),
            "{s}"
        );
        for want in [
            "set filtered4 { type ipv4_addr; flags timeout; timeout 60s; size 1000; }",
            "set admitted6 { type ipv6_addr . ipv6_addr . inet_service; flags timeout; timeout 60s; size 4000; }",
            "ip daddr 198.18.0.0/24 tcp flags & (syn | ack) == syn ip saddr & 255.255.255.0 . ip daddr . tcp dport @admitted4 accept",
            "ip daddr 198.18.0.0/24 tcp flags & (syn | ack) == syn ip saddr & 255.255.255.0 @filtered4 counter drop",
            "ip6 daddr 2001:db8::/64 tcp flags & (syn | ack) == syn ip6 saddr & ffff:ffff:ffff:ffff:: @filtered6 counter drop",
            "ip daddr 198.18.0.0/24 meta l4proto tcp tproxy ip to 127.0.0.1:40000 meta mark set 0x4846 accept",
        ] {
            assert!(s.contains(want), "{want}\nnot in\n{s}");
        }
        let mut listed = spec();
        listed.diverts[0].ports = Ports::List(vec![21, 80]);
        assert!(listed
            .script()
            .contains("meta l4proto tcp tcp dport { 21, 80 } tproxy"));
        let mut bad = spec();
        bad.name = "x; flush ruleset".into();
        assert!(matches!(bad.check(), Err(KernelError::TableName(_))));
    }

    /// A writer whose batches are recorded; `fail` makes them fail.
    fn recorder(fail: bool) -> (Arc<SetWriter>, Arc<Mutex<Vec<String>>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let b = batches.clone();
        let w = SetWriter::new(
            "hfp_unit",
            &set(),
            Box::new(move |s: &str| {
                b.lock().unwrap().push(s.to_string());
                if fail {
                    Err(CommandError::Failed {
                        command: "nft".into(),
                        status: std::process::ExitStatus::from_raw(1 << 8),
                        said: "Operation not permitted".into(),
                    }
                    .into())
                } else {
                    Ok(())
                }
            }),
        );
        (w, batches)
    }

    #[test]
    fn a_flush_is_one_transaction_of_each_element_once_by_source_prefix() {
        let (w, batches) = recorder(false);
        for last in [1, 2, 200] {
            w.filtered(IpAddr::from([203, 0, 113, last]));
        }
        w.filtered("2001:db8:1:2::9".parse().unwrap());
        w.admitted(
            IpAddr::from([203, 0, 113, 7]),
            "198.18.0.1:445".parse().unwrap(),
        );
        // Families that differ have no set: left out.
        w.admitted(
            IpAddr::from([203, 0, 113, 7]),
            "[2001:db8::1]:445".parse().unwrap(),
        );
        assert_eq!(w.flush().unwrap(), 3);
        assert_eq!(
            batches.lock().unwrap().as_slice(),
            [
                "add element inet hfp_unit filtered4 { 203.0.113.0 timeout 60s }\n\
                 add element inet hfp_unit filtered6 { 2001:db8:1:2:: timeout 60s }\n\
                 add element inet hfp_unit admitted4 { 203.0.113.0 . 198.18.0.1 . 445 timeout 60s }\n"
            ]
        );
        // Nothing queued, or only what was written this window: no transaction.
        assert_eq!(w.flush().unwrap(), 0);
        w.filtered(IpAddr::from([203, 0, 113, 50]));
        assert_eq!(w.flush().unwrap(), 0);
        assert_eq!(batches.lock().unwrap().len(), 1);
        // After a window, written again.
        w.forget();
        w.filtered(IpAddr::from([203, 0, 113, 50]));
        assert_eq!(w.flush().unwrap(), 1);
        assert_eq!(w.counts.filtered_added.load(Ordering::Relaxed), 3);
        assert_eq!(w.counts.admitted_added.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn failures_and_overflow_are_counted() {
        let (w, _) = recorder(true);
        w.filtered(IpAddr::from([203, 0, 113, 1]));
        w.filtered(IpAddr::from([203, 0, 114, 1]));
        assert!(w.flush().is_err());
        assert_eq!(w.counts.failed.load(Ordering::Relaxed), 2);
        for i in 0..(MAX_PENDING as u32 + 5) {
            w.filtered(IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(w.counts.dropped.load(Ordering::Relaxed), 5);
    }

    /// The rendered table and a batch pass `nft --check` (parsed by nftables, nothing
    /// applied), where nft can run.
    #[test]
    fn nftables_accepts_the_scripts() {
        let (w, batches) = recorder(false);
        w.filtered(IpAddr::from([203, 0, 113, 1]));
        w.admitted(
            IpAddr::from([203, 0, 113, 1]),
            "198.18.0.1:445".parse().unwrap(),
        );
        w.flush().unwrap();
        let script = format!("{}{}", spec().script(), batches.lock().unwrap()[0]);
        match run("nft", &["--check", "-f", "-"], Some(&script)) {
            Ok(()) => {}
            Err(KernelError::Command(e)) if e.is_not_found() => {
                eprintln!("nft not installed: not checked")
            }
            Err(KernelError::Command(CommandError::Failed { said, .. }))
                if said.contains("Operation not permitted") =>
            {
                eprintln!("nft needs CAP_NET_ADMIN: not checked")
            }
            Err(e) => panic!("{e}\n{script}"),
        }
    }
}

//! The `netns` backend: each honeypot in a network namespace of its own, behind the
//! containment policy's nftables ruleset (loaded before the honeypot starts).
//!
//! Layout per honeypot (pool address `L:port`, a link address): namespace `{prefix}-L`, a veth
//! whose inner end `eth0` holds `L/32` and whose host end (`{prefix}` + L in hex) holds the
//! farm's address `F/32` (the same on every veth), routes both ways, the namespace's default
//! route via `F`. The honeypot (the process backend's command under `ip netns exec`, with
//! `{address}` = `0.0.0.0`: it serves every address of its namespace) is ready once it answers
//! on `L:port` from the farm.
//!
//! A lease gives it the telescope address `T`: `T/32` on its loopback and a DNAT `L:port` ->
//! `T:port`, so it hears its own address. Each farm connection is bound to `F:P` and the
//! namespace's `peers` map SNATs source port `P` to the attacker's address `A` (an element
//! that expires after two minutes; conntrack keeps the established connection's NAT), so it
//! sees the attacker's real address, and its answers go back over the veth, un-NATed by
//! conntrack. The farm's host needs no routes, no forwarding and no rules of its own.
//!
//! The `qemu` backend is this one with a VM in place of the process ([`NetnsBackend::with_vms`],
//! `qemu.rs`): the same namespace, veth, containment, reflection and `peers` SNAT, the guest
//! behind a tap (the namespace forwards, and DNATs `L:port` to the guest's fixed address).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::super::containment::{Policy, Site, VmLink};
use super::super::events::{ContainmentRecord, EventStore};
use super::link::{Netns, NetnsError, Veth};
use super::qemu::{self, QemuBackend};
use super::{Backend, Honeypot, HoneypotError, ProcessBackend, ProcessConfig, Route};

/// The `netns` backend's configuration.
#[derive(Clone)]
pub struct NetnsConfig {
    /// The honeypot's command, ready file, directories and timeouts, as for `process` (a
    /// process honeypot's only: [`NetnsBackend::with_vms`] has its VMs' own).
    pub process: ProcessConfig,
    /// Names of namespaces, host veth ends and nftables tables start with it (at most 6
    /// characters: an interface name has 15).
    pub prefix: String,
    /// The farm's address on every veth.
    pub farm: Ipv4Addr,
    pub policy: Policy,
    /// Where containment decisions are recorded.
    pub events: Option<EventStore>,
}

/// A connection a honeypot made that its policy reflects, accepted by the farm's listener in
/// its namespace.
#[derive(Debug)]
pub struct Reflected {
    pub stream: TcpStream,
    /// The honeypot that made it.
    pub honeypot: SocketAddr,
    /// Its identity: the telescope address it serves (its link address before a lease).
    pub from: IpAddr,
    /// Where it connected to (the original destination, from conntrack).
    pub to: SocketAddr,
}

/// What the farm does with a reflected connection (hand it to another honeypot).
pub type Reflector = Arc<dyn Fn(Reflected) + Send + Sync>;

/// A running honeypot's namespace and link.
struct Slot {
    ns: Netns,
    _veth: Veth,
    telescope: Option<IpAddr>,
    /// The farm's listener for reflected connections (shut down at stop).
    reflect: Option<Arc<TcpListener>>,
    /// Rule counters at the last reading: `(packets, bytes)` by rule comment.
    counted: HashMap<String, (u64, u64)>,
}

/// What runs in each honeypot's namespace.
enum Inside {
    Processes(ProcessBackend),
    Vms(QemuBackend),
}

pub struct NetnsBackend {
    config: NetnsConfig,
    inside: Inside,
    slots: Mutex<HashMap<SocketAddr, Slot>>,
    reflector: OnceLock<Reflector>,
    /// Itself, for the reflect threads it starts.
    this: Weak<NetnsBackend>,
}

/// How long a `peers` element (a connection's attacker address) stays: the connection must
/// start within it.
const PEER_TIMEOUT: &str = "120s";

fn v4(addr: SocketAddr) -> Result<Ipv4Addr, HoneypotError> {
    match addr.ip() {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(HoneypotError::Connect {
            addr,
            reason: "the netns backend has IPv4 link addresses only".into(),
        }),
    }
}

impl NetnsBackend {
    /// Process honeypots (`config.process`), each in its namespace.
    pub fn new(config: NetnsConfig) -> Arc<NetnsBackend> {
        let inside = Inside::Processes(ProcessBackend::new(config.process.clone()));
        Self::with(config, inside)
    }

    /// VM honeypots (the `qemu` backend), each in its namespace.
    pub fn with_vms(config: NetnsConfig, vms: QemuBackend) -> Arc<NetnsBackend> {
        Self::with(config, Inside::Vms(vms))
    }

    fn with(config: NetnsConfig, inside: Inside) -> Arc<NetnsBackend> {
        Arc::new_cyclic(|this| NetnsBackend {
            inside,
            config,
            slots: Mutex::new(HashMap::new()),
            reflector: OnceLock::new(),
            this: this.clone(),
        })
    }

    /// Sets what reflected connections are given to (once; before the first honeypot).
    pub fn set_reflector(&self, r: Reflector) {
        let _ = self.reflector.set(r);
    }

    /// The namespace name of the honeypot on link address `link`.
    pub fn namespace(&self, link: Ipv4Addr) -> String {
        format!("{}-{link}", self.config.prefix)
    }

    fn site(&self, link: Ipv4Addr, port: u16) -> Site<'_> {
        Site {
            table: &self.config.prefix,
            farm: self.config.farm,
            link,
            port,
            vm: matches!(self.inside, Inside::Vms(_)).then_some(VmLink {
                tap: qemu::TAP,
                guest: qemu::GUEST,
                guest_port: qemu::GUEST_SMB_PORT,
            }),
        }
    }

    /// Makes the namespace, its veth and containment, and the reflect listener.
    fn prepare(&self, addr: SocketAddr, link: Ipv4Addr) -> Result<Slot, NetnsError> {
        let ns = Netns::create(&self.namespace(link))?;
        // IPv4 only (no IPv6 chatter to contain), and telescope addresses of 127.0.0.0/8 (a
        // farm on loopback) reachable over the veth; a VM's namespace forwards (between the
        // veth and the guest's tap, through the ruleset).
        let forward = match self.inside {
            Inside::Vms(_) => "net.ipv4.ip_forward=1",
            Inside::Processes(_) => "net.ipv4.ip_forward=0",
        };
        ns.exec(
            "sysctl",
            &[
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
                "net.ipv4.conf.all.route_localnet=1",
                "net.ipv4.conf.default.route_localnet=1",
                forward,
            ],
        )?;
        let host = format!("{}{:08x}", self.config.prefix, u32::from(link));
        let veth = Veth::create(&host, &ns, "eth0", self.config.farm, link)?;
        ns.nft(&self.config.policy.ruleset(&self.site(link, addr.port())))?;
        let mut slot = Slot {
            ns,
            _veth: veth,
            telescope: None,
            reflect: None,
            counted: HashMap::new(),
        };
        if self.config.policy.reflects() {
            let port = self.config.policy.reflect_port;
            let l = slot
                .ns
                .enter(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))?
                .map_err(|e| NetnsError::Enter {
                    name: slot.ns.name().to_string(),
                    source: e,
                })?;
            slot.reflect = Some(Arc::new(l));
        }
        Ok(slot)
    }

    /// Accepts reflected connections of the honeypot at `addr` until its listener is shut.
    fn reflect_loop(&self, addr: SocketAddr, listener: Arc<TcpListener>) {
        let me = self.this.clone();
        std::thread::spawn(move || {
            while let Ok((stream, _)) = listener.accept() {
                let Some(me) = me.upgrade() else { return };
                let Some(to) = original_destination(&stream) else {
                    continue;
                };
                let from = me.identity(addr);
                tracing::info!("honeypot {addr} ({from}) connects to {to}: reflected");
                me.record(addr, "reflect", "reflect", 1, 0, &format!("{from} -> {to}"));
                if let Some(r) = me.reflector.get() {
                    r(Reflected {
                        stream,
                        honeypot: addr,
                        from,
                        to,
                    });
                }
            }
        });
    }

    /// The address the honeypot at `addr` goes by: its telescope address, once leased.
    fn identity(&self, addr: SocketAddr) -> IpAddr {
        let slots = self.slots.lock().expect("slots lock");
        slots
            .get(&addr)
            .and_then(|s| s.telescope)
            .unwrap_or(addr.ip())
    }

    fn record(
        &self,
        addr: SocketAddr,
        rule: &str,
        decision: &str,
        packets: u64,
        bytes: u64,
        detail: &str,
    ) {
        let telescope = self
            .slots
            .lock()
            .expect("slots lock")
            .get(&addr)
            .and_then(|s| s.telescope);
        if let Some(e) = &self.config.events {
            e.containment(&ContainmentRecord {
                time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
                honeypot: addr,
                telescope,
                rule: rule.to_string(),
                decision: decision.to_string(),
                packets,
                bytes,
                detail: detail.to_string(),
            });
        }
    }

    /// Reads every honeypot's rule counters and records what each rule decided since the last
    /// reading (the farm calls it every report interval; a stopping honeypot's last counts are
    /// recorded at its stop). Returns the decisions recorded.
    pub fn record_counters(&self) -> usize {
        let addrs: Vec<SocketAddr> = self
            .slots
            .lock()
            .expect("slots lock")
            .keys()
            .copied()
            .collect();
        addrs.into_iter().map(|a| self.record_slot(a)).sum()
    }

    fn record_slot(&self, addr: SocketAddr) -> usize {
        let (name, last) = {
            let slots = self.slots.lock().expect("slots lock");
            let Some(s) = slots.get(&addr) else { return 0 };
            (s.ns.name().to_string(), s.counted.clone())
        };
        let table = self.config.prefix.clone();
        let Ok(json) = super::link::run(
            "ip",
            &[
                "netns", "exec", &name, "nft", "-j", "list", "table", "inet", &table,
            ],
            None,
        ) else {
            return 0;
        };
        let now = counters(&json);
        let mut n = 0;
        for (comment, (p, b)) in &now {
            let (p0, b0) = last.get(comment).copied().unwrap_or((0, 0));
            if *p > p0 {
                let (rule, decision) = comment.split_once(' ').unwrap_or(("", comment));
                self.record(addr, rule, decision, p - p0, b.saturating_sub(b0), "");
                n += 1;
            }
        }
        if let Some(s) = self.slots.lock().expect("slots lock").get_mut(&addr) {
            s.counted = now;
        }
        n
    }
}

/// `(packets, bytes)` of every counted rule with a comment in `nft -j` output.
pub fn counters(json: &str) -> HashMap<String, (u64, u64)> {
    let mut out = HashMap::new();
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return out;
    };
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    for item in items {
        let rule = &item["rule"];
        let Some(comment) = rule["comment"].as_str() else {
            continue;
        };
        let exprs = rule["expr"].as_array().cloned().unwrap_or_default();
        if let Some(c) = exprs.iter().find_map(|e| e.get("counter")) {
            let p = c["packets"].as_u64().unwrap_or(0);
            let b = c["bytes"].as_u64().unwrap_or(0);
            let e = out.entry(comment.to_string()).or_insert((0, 0));
            e.0 += p;
            e.1 += b;
        }
    }
    out
}

/// The destination a redirected connection was made to (`SO_ORIGINAL_DST`).
fn original_destination(s: &TcpStream) -> Option<SocketAddr> {
    // SAFETY: getsockopt into a sockaddr_in of the size given, on a live socket.
    unsafe {
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let r = libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&mut a as *mut libc::sockaddr_in).cast(),
            &mut len,
        );
        (r == 0).then(|| {
            SocketAddr::from((
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            ))
        })
    }
}

impl NetnsBackend {
    /// Starts what runs inside the prepared namespace of `slot`.
    fn launch(&self, addr: SocketAddr, slot: Slot) -> Result<Honeypot, HoneypotError> {
        let listener = slot.reflect.clone();
        let started = match &self.inside {
            Inside::Processes(p) => {
                let wrap = ["ip", "netns", "exec", slot.ns.name()].map(String::from);
                self.slots.lock().expect("slots lock").insert(addr, slot);
                p.launch(addr, &wrap, "0.0.0.0")
            }
            Inside::Vms(v) => match v.start_in(addr, &slot.ns) {
                Ok(h) => {
                    self.slots.lock().expect("slots lock").insert(addr, slot);
                    Ok(h)
                }
                Err(source) => Err(HoneypotError::Vm { addr, source }),
            },
        };
        match started {
            Ok(h) => {
                if let Some(l) = listener {
                    self.reflect_loop(addr, l);
                }
                Ok(h)
            }
            Err(e) => {
                self.slots.lock().expect("slots lock").remove(&addr);
                Err(e)
            }
        }
    }

    /// The QEMU process of a VM honeypot (for its memory figures).
    pub fn vm_pid(honeypot: &Honeypot) -> Option<u32> {
        QemuBackend::pid(honeypot)
    }
}

impl Backend for NetnsBackend {
    fn start(&self, addr: SocketAddr) -> Result<Honeypot, HoneypotError> {
        let link = v4(addr)?;
        let began = std::time::Instant::now();
        let slot = self
            .prepare(addr, link)
            .map_err(|source| HoneypotError::Netns { addr, source })?;
        tracing::debug!(
            "honeypot {addr}: namespace, veth and containment in {} ms",
            began.elapsed().as_millis()
        );
        self.launch(addr, slot)
    }

    fn stop(&self, honeypot: Honeypot) {
        let addr = honeypot.addr;
        self.record_slot(addr);
        match &self.inside {
            Inside::Processes(p) => p.halt(honeypot),
            Inside::Vms(v) => v.stop(honeypot),
        }
        if let Some(s) = self.slots.lock().expect("slots lock").remove(&addr) {
            if let Some(l) = &s.reflect {
                // SAFETY: shutdown(2) of a listener this slot owns: its accept returns.
                unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
            }
            // Dropped: everything in the namespace killed, the namespace and veth deleted.
        }
    }

    fn route(
        &self,
        honeypot: SocketAddr,
        telescope: IpAddr,
        attacker: SocketAddr,
    ) -> Result<Route, HoneypotError> {
        let link = v4(honeypot)?;
        let fail = |reason: String| HoneypotError::Connect {
            addr: honeypot,
            reason,
        };
        let (IpAddr::V4(t), IpAddr::V4(a)) = (telescope, attacker.ip()) else {
            return Err(fail(
                "the netns backend serves IPv4 telescope addresses".into(),
            ));
        };
        let sock = tokio::net::TcpSocket::new_v4().map_err(|e| fail(e.to_string()))?;
        sock.bind(SocketAddr::from((self.config.farm, 0)))
            .map_err(|e| fail(e.to_string()))?;
        let port = sock.local_addr().map_err(|e| fail(e.to_string()))?.port();
        let table = &self.config.prefix;
        let vm = matches!(self.inside, Inside::Vms(_));
        // A guest cannot answer a loopback address (its own): it sees the farm's instead.
        let mut script = if vm && a.is_loopback() {
            String::new()
        } else {
            format!("add element inet {table} peers {{ {port} timeout {PEER_TIMEOUT} : {a} }}\n")
        };
        let mut slots = self.slots.lock().expect("slots lock");
        let slot = slots
            .get_mut(&honeypot)
            .ok_or_else(|| fail("not running".into()))?;
        // A guest keeps its own address, DNATed to from the start: nothing changes at a lease.
        if slot.telescope != Some(telescope) && !vm {
            let p = honeypot.port();
            slot.ns
                .ip(&["addr", "replace", &format!("{t}/32"), "dev", "lo"])
                .map_err(|source| HoneypotError::Netns {
                    addr: honeypot,
                    source,
                })?;
            script = format!(
                "flush chain inet {table} prerouting\n\
                 add rule inet {table} prerouting ip daddr {link} tcp dport {p} dnat ip to {t}\n{script}"
            );
        }
        if !script.is_empty() {
            slot.ns
                .nft(&script)
                .map_err(|source| HoneypotError::Netns {
                    addr: honeypot,
                    source,
                })?;
        }
        slot.telescope = Some(telescope);
        Ok(Route {
            socket: sock,
            connect: honeypot,
            heard_as: telescope,
        })
    }
}

/// The farm's [`Reflector`]: each reflected connection gets a honeypot leased for its
/// destination address (which it then holds, so the worm's next hop meets a honeypot that is
/// who it meant to reach), connected from the reflecting honeypot's address, and the bytes
/// bridged both ways on `runtime`; the lease ends with the connection. Recorded as a
/// containment decision `reflected` naming the honeypot.
pub fn reflect_to(
    pool: Arc<super::Pool>,
    runtime: tokio::runtime::Handle,
    events: Option<EventStore>,
) -> Reflector {
    Arc::new(move |r: Reflected| {
        let (pool, events) = (pool.clone(), events.clone());
        runtime.spawn(async move {
            let p = pool.clone();
            let (to, from) = (r.to, SocketAddr::new(r.from, 0));
            let leased = tokio::task::spawn_blocking(move || {
                let lease = p.lease(to.ip())?;
                match p.route(&lease, from) {
                    Ok(route) => Ok((lease, route)),
                    Err(e) => {
                        p.release(lease);
                        Err(e)
                    }
                }
            })
            .await;
            let (lease, route) = match leased {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => return tracing::warn!("reflecting {} -> {to}: {e}", r.from),
                Err(e) => return tracing::warn!("reflecting {} -> {to}: {e}", r.from),
            };
            if let Some(e) = &events {
                e.containment(&ContainmentRecord {
                    time: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                    honeypot: r.honeypot,
                    telescope: Some(r.from),
                    rule: "reflect".into(),
                    decision: "reflected".into(),
                    packets: 0,
                    bytes: 0,
                    detail: format!("{} -> {to} reached honeypot {}", r.from, lease.honeypot),
                });
            }
            let bridged = async {
                let mut theirs = route.socket.connect(route.connect).await?;
                r.stream.set_nonblocking(true)?;
                let mut ours = tokio::net::TcpStream::from_std(r.stream)?;
                tokio::io::copy_bidirectional(&mut ours, &mut theirs).await
            }
            .await;
            if let Err(e) = bridged {
                tracing::debug!("reflected {} -> {to}: {e}", r.from);
            }
            let _ = tokio::task::spawn_blocking(move || pool.release(lease)).await;
        });
    })
}

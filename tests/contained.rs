//! Contained honeypots (issue 12): the `netns` backend's namespaces under a containment policy.
//! Each test makes its honeypot namespaces through the backend and an "outside" namespace of
//! its own (a packet counter on its only link, addresses of 198.51.100.0/24 routed to it from
//! the honeypot's namespace, never a real address), and removes them all, also on failure.
//! The `qemu` backend's VMs are in such namespaces too, the guest behind a tap: its probes are
//! run inside the guest (its command channel), with the same outside. Root only; run under the
//! shared lock (`flock /tmp/honeyfarm-peer-tests.lock`).

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::dirs::Cleanup;

use honeyfarm_runtime::farm::{
    guest_command, negotiate_answered, nft_counters, reflect_to, remove_netns, Backend, Boot,
    EventStore, Honeypot, Netns, NetnsBackend, NetnsConfig, Policy, Pool, ProcessConfig,
};

/// The prefix of everything these tests create.
const PREFIX: &str = "hfn";

/// Sends one packet (or opens connections) from inside a namespace: `tcp HOST PORT [N]`
/// (N connections at once; prints how many connected), `udp HOST PORT`, `icmp HOST`.
const SEND: &str = r#"
import socket, sys, struct, select, time
proto, host = sys.argv[1], sys.argv[2]
if proto == "tcp":
    port, n = int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 1
    socks = []
    for _ in range(n):
        s = socket.socket(); s.setblocking(False)
        try: s.connect_ex((host, port))
        except OSError: pass
        socks.append(s)
    time.sleep(0.5)
    ok = 0
    for s in socks:
        _, w, _ = select.select([], [s], [], 0)
        if w and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0: ok += 1
    print(ok)
elif proto == "udp":
    try: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (host, int(sys.argv[3]))); print("sent")
    except OSError as e: print(e)
else:
    body = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"hfnn"
    c = sum(struct.unpack("!%dH" % (len(body) // 2), body))
    c = (c >> 16) + (c & 0xffff); c = ~(c + (c >> 16)) & 0xffff
    body = body[:2] + struct.pack("!H", c) + body[4:]
    try: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).sendto(body, (host, 0)); print("sent")
    except OSError as e: print(e)
"#;

/// Runs the sender inside namespace `ns`; returns what it printed.
fn send(ns: &str, args: &[&str]) -> String {
    let script = std::env::temp_dir().join(format!("hfn-send-{}.py", std::process::id()));
    std::fs::write(&script, SEND).unwrap();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "python3"])
        .arg(&script)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// The outside: a namespace linked to honeypot namespace `hp` (which routes 198.51.100.0/24
/// to it), counting every IPv4 packet that arrives.
fn outside(hp: &str, tag: &str) -> Netns {
    // Named with the honeypot namespace's prefix.
    let prefix = hp.split('-').next().unwrap_or(PREFIX);
    let out = Netns::create(&format!("{prefix}-out-{tag}")).unwrap();
    let o = out.name();
    let ip = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    ip(&[
        "-n", hp, "link", "add", "hfno", "type", "veth", "peer", "name", "hfni", "netns", o,
    ]);
    ip(&["-n", hp, "addr", "add", "10.232.0.1/30", "dev", "hfno"]);
    ip(&["-n", hp, "link", "set", "hfno", "up"]);
    ip(&[
        "-n",
        hp,
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "10.232.0.2",
    ]);
    out.ip(&["addr", "add", "10.232.0.2/30", "dev", "hfni"])
        .unwrap();
    out.ip(&["link", "set", "hfni", "up"]).unwrap();
    out.ip(&["route", "add", "local", "198.51.100.0/24", "dev", "lo"])
        .unwrap();
    out.nft(
        "table inet hfnc {\n chain pre {\n  type filter hook prerouting priority -300; policy accept;\n  iifname \"hfni\" meta nfproto ipv4 counter comment \"seen\"\n }\n}\n",
    )
    .unwrap();
    out
}

/// Packets that reached the outside.
fn seen(out: &Netns) -> u64 {
    let json = out
        .exec("nft", &["-j", "list", "table", "inet", "hfnc"])
        .unwrap();
    nft_counters(&json).get("seen").map_or(0, |c| c.0)
}

fn policy(text: &str) -> Policy {
    Policy::parse(text, "test policy").unwrap()
}

/// A netns backend of tiny honeypots (a Python HTTP server) or of Samba ones.
fn backend(
    dir: &Path,
    policy: Policy,
    samba: bool,
    events: Option<EventStore>,
) -> Arc<NetnsBackend> {
    let command = if samba {
        common::samba_honeypot_command()
    } else {
        [
            "python3",
            "-m",
            "http.server",
            "--bind",
            "{address}",
            "{port}",
        ]
        .map(String::from)
        .to_vec()
    };
    NetnsBackend::new(NetnsConfig {
        process: ProcessConfig {
            command,
            ready_file: samba.then(|| "{dir}/ready".to_string()),
            work_dir: dir.to_path_buf(),
            keep: false,
            ready_timeout: Duration::from_secs(60),
        },
        prefix: PREFIX.into(),
        farm: [10, 231, 255, 254].into(),
        policy,
        events,
    })
}

/// A test's directory and what it leaves: honeypots stopped, namespaces removed.
struct Lab {
    dir: PathBuf,
    /// Stops what runs in `dir` once the honeypots are stopped.
    _cleanup: Cleanup,
    backend: Arc<NetnsBackend>,
    honeypots: Vec<Honeypot>,
    /// A pool's honeypots, shut down with it.
    pool: Option<Arc<Pool>>,
    /// Namespaces removed whatever happened (a honeypot a failed test left).
    links: Vec<[u8; 4]>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in self.honeypots.drain(..) {
            self.backend.stop(h);
        }
        if let Some(p) = self.pool.take() {
            p.shutdown();
        }
        for l in &self.links {
            remove_netns(&self.backend.namespace((*l).into()));
            let host = format!("{PREFIX}{:08x}", u32::from_be_bytes(*l));
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &host])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn lab(name: &str, policy: Policy, samba: bool) -> (Lab, PathBuf) {
    let (dir, cleanup) = common::dirs::test_dir(&format!("hfn-{name}"));
    let db = dir.join("events.sqlite");
    let events = EventStore::open(&db).unwrap();
    let b = backend(&dir, policy, samba, Some(events));
    (
        Lab {
            dir,
            _cleanup: cleanup,
            backend: b,
            honeypots: Vec::new(),
            pool: None,
            links: Vec::new(),
        },
        db,
    )
}

/// `(rule, decision, packets)` rows of the containment table.
fn decisions(db: &Path) -> Vec<(String, String, i64, String)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut q = c
        .prepare("SELECT rule, decision, SUM(packets), GROUP_CONCAT(detail) FROM containment GROUP BY rule, decision ORDER BY rule, decision")
        .unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Waits until the event store has `what` (the writer is asynchronous).
fn wait_for(
    db: &Path,
    what: impl Fn(&[(String, String, i64, String)]) -> bool,
) -> Vec<(String, String, i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = decisions(db);
        if what(&d) || Instant::now() > deadline {
            return d;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn under_drop_no_tcp_udp_or_icmp_packet_gets_out() {
    let (mut lab, db) = lab(
        "drop",
        policy(
            "sinks = [\"198.51.100.7\"]\n\
             [[rule]]\nto = \"198.51.100.7\"\nproto = \"udp\"\nport = 53\naction = \"allow\"\n\
             [[rule]]\nproto = \"icmp\"\naction = \"drop\"\nlog = true\n",
        ),
        false,
    );
    lab.links.push([10, 231, 1, 2]);
    let h = lab
        .backend
        .start("10.231.1.2:445".parse().unwrap())
        .unwrap();
    lab.honeypots.push(h);
    let hp = lab.backend.namespace([10, 231, 1, 2].into());
    let out = outside(&hp, "drop");
    let tcp = send(&hp, &["tcp", "198.51.100.9", "80"]);
    let udp = send(&hp, &["udp", "198.51.100.9", "53"]);
    let icmp = send(&hp, &["icmp", "198.51.100.9"]);
    let tcp_sink = send(&hp, &["tcp", "198.51.100.7", "445"]);
    assert_eq!(tcp, "0", "no TCP connection");
    assert_eq!(tcp_sink, "0", "the sink only on the allowed port");
    assert!(udp.contains("Operation not permitted"), "{udp}");
    eprintln!("inside: tcp {tcp}, udp {udp}, icmp {icmp}, tcp to the sink {tcp_sink}");
    assert_eq!(seen(&out), 0, "packets reached the outside under drop");
    // The link works: what the policy allows does arrive.
    assert_eq!(send(&hp, &["udp", "198.51.100.7", "53"]), "sent");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(seen(&out), 1, "the allowed datagram arrived");
    // Every decision recorded: the drops by rule and by default, the allow.
    let recorded = lab.backend.record_counters();
    let listing = std::process::Command::new("ip")
        .args(["netns", "exec", &hp, "nft", "list", "table", "inet", PREFIX])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(recorded >= 3, "{recorded} recorded\n{listing}");
    let d = wait_for(&db, |d| d.len() >= 3);
    let count = |rule: &str, decision: &str| {
        d.iter()
            .find(|r| r.0 == rule && r.1 == decision)
            .map_or(0, |r| r.2)
    };
    assert_eq!(count("0", "allow"), 1, "{d:?}");
    assert_eq!(count("1", "drop"), 1, "{d:?}");
    // One SYN each to two destinations, one datagram (no retransmission within half a second).
    assert_eq!(count("default", "drop"), 3, "{d:?}");
}

#[test]
fn rate_limit_lets_its_connections_per_second_through_and_drops_the_rest() {
    let (mut lab, db) = lab(
        "rate",
        policy(
            "[[rule]]\nto = \"198.51.100.8\"\nproto = \"tcp\"\nport = 80\naction = \"rate-limit\"\nconnections_per_sec = 5\n",
        ),
        false,
    );
    lab.links.push([10, 231, 1, 6]);
    let h = lab
        .backend
        .start("10.231.1.6:445".parse().unwrap())
        .unwrap();
    lab.honeypots.push(h);
    let hp = lab.backend.namespace([10, 231, 1, 6].into());
    let out = outside(&hp, "rate");
    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = out
        .enter(|| TcpListener::bind("198.51.100.8:80"))
        .unwrap()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let a = accepted.clone();
    let server = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut held = Vec::new();
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((s, _)) => {
                    a.fetch_add(1, Ordering::SeqCst);
                    held.push(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    let tried = 20;
    let connected: usize = send(&hp, &["tcp", "198.51.100.8", "80", &tried.to_string()])
        .parse()
        .unwrap();
    server.join().unwrap();
    let accepted = accepted.load(Ordering::SeqCst);
    eprintln!(
        "rate-limit 5/s, burst 5: {connected} of {tried} connected, {accepted} accepted outside"
    );
    assert_eq!(connected, accepted);
    // The burst, and what the limit refilled during the half second the connects took.
    assert!((5..=8).contains(&connected), "{connected}");
    lab.backend.record_counters();
    let d = wait_for(&db, |d| d.iter().any(|r| r.1 == "rate-drop"));
    let count = |decision: &str| d.iter().find(|r| r.1 == decision).map_or(0, |r| r.2);
    assert_eq!(count("rate") as usize, connected, "{d:?}");
    assert_eq!(count("rate-drop") as usize, tried - connected, "{d:?}");
}

#[test]
fn a_reflected_smb_connection_reaches_another_honeypot_and_is_recorded() {
    let (mut lab, db) = lab(
        "reflect",
        policy("[[rule]]\nproto = \"tcp\"\nport = 445\naction = \"reflect\"\n"),
        true,
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_test_writer()
        .try_init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let events = EventStore::open(&db).unwrap();
    let addrs: Vec<SocketAddr> = ["10.231.1.10:445", "10.231.1.11:445"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let pool = Pool::new(lab.backend.clone(), addrs, 0);
    lab.pool = Some(pool.clone());
    lab.links = vec![[10, 231, 1, 10], [10, 231, 1, 11]];
    lab.backend
        .set_reflector(reflect_to(pool.clone(), rt.handle().clone(), Some(events)));
    // A honeypot leased to a telescope address, as an attacker's session has it.
    let telescope: IpAddr = "198.18.5.1".parse().unwrap();
    let a = pool.lease(telescope).unwrap();
    drop(
        pool.route(&a, "203.0.113.5:40000".parse().unwrap())
            .unwrap(),
    );
    let hp = lab.backend.namespace(match a.honeypot.ip() {
        IpAddr::V4(v) => v,
        IpAddr::V6(_) => unreachable!(),
    });
    let out = outside(&hp, "reflect");
    // The worm in it lists the shares of its next victim.
    let listing = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &hp,
            "smbclient",
            "-N",
            "-L",
            "198.51.100.9",
            "-p",
            "445",
        ])
        .args([
            "--option=client min protocol=NT1",
            "--option=client max protocol=NT1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listing.stdout).into_owned()
        + &String::from_utf8_lossy(&listing.stderr);
    assert_reflected(&db, &out, &text, "10.231.1.1");
    pool.release(a);
    drop(lab);
    drop(rt);
}

/// The worm's share listing `text` (of 198.51.100.9, from the honeypot leased to 198.18.5.1)
/// came from another honeypot (`reached`, an address prefix), nothing reached the outside, and
/// both the reflection and its handover are recorded.
fn assert_reflected(db: &Path, out: &Netns, text: &str, reached: &str) {
    assert!(
        text.contains("public") && text.contains("ADMIN$"),
        "{text}\n{:?}",
        decisions(db)
    );
    assert_eq!(seen(out), 0, "the reflected connection left the namespace");
    let d = wait_for(db, |d| d.iter().any(|r| r.1 == "reflected"));
    let row = |decision: &str| d.iter().find(|r| r.1 == decision).cloned();
    let reflect = row("reflect").unwrap_or_else(|| panic!("{d:?}"));
    assert!(
        reflect.3.contains("198.18.5.1 -> 198.51.100.9:445"),
        "{d:?}"
    );
    let handed = row("reflected").unwrap_or_else(|| panic!("{d:?}"));
    assert!(
        handed.3.contains(&format!("reached honeypot {reached}")),
        "{d:?}"
    );
}

/// Removes a farm's honeypot namespaces and its directory, whatever happened (what runs there:
/// the directory's [`Cleanup`]).
struct FarmLeftovers {
    dir: PathBuf,
    links: Vec<[u8; 4]>,
}

impl Drop for FarmLeftovers {
    fn drop(&mut self) {
        for l in &self.links {
            remove_netns(&format!("{PREFIX}-{}", std::net::Ipv4Addr::from(*l)));
            let host = format!("{PREFIX}{:08x}", u32::from_be_bytes(*l));
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &host])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn kill_9_of_the_farm_leaves_containment_closed() {
    let (dir, _cleanup) = common::dirs::test_dir("hfn-kill");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    let _left = FarmLeftovers {
        dir: dir.clone(),
        links: vec![[10, 231, 1, 20]],
    };
    let config = dir.join("farm.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[events]
path = "{d}/events.sqlite"
[scripts]
dirs = ["{d}/scripts"]
[[listen]]
address = "127.0.0.79:4479"
service = "smb"
[honeypots]
services = ["smb"]
backend = "netns"
netns_prefix = "{PREFIX}"
command = ["python3", "-m", "http.server", "--bind", "{{address}}", "{{port}}"]
addresses = ["10.231.1.20:445"]
pool = 1
work_dir = "{d}/honeypots"
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    let log = dir.join("farm.log");
    let mut farm = std::process::Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .args(["run", "--config"])
        .arg(&config)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("honeypot pool warm")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    farm.kill().unwrap();
    farm.wait().unwrap();
    let hp = format!("{PREFIX}-10.231.1.20");
    let out = outside(&hp, "kill");
    let tcp = send(&hp, &["tcp", "198.51.100.9", "445"]);
    let udp = send(&hp, &["udp", "198.51.100.9", "137"]);
    let icmp = send(&hp, &["icmp", "198.51.100.9"]);
    eprintln!("after kill -9 of the farm: tcp {tcp}, udp {udp}, icmp {icmp}");
    assert_eq!(tcp, "0");
    assert_eq!(seen(&out), 0, "packets got out after the farm died");
}

/// A line the guest's shell runs (the VM whose directory is `dir`); its output, after
/// asserting it ended (any status).
fn in_guest(dir: &Path, command: &str) -> String {
    let (status, out) = guest_command(dir, command, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("`{command}` in the guest: {e}"));
    format!("{out}(exit {status})")
}

#[test]
fn a_vm_honeypot_is_contained_and_its_smbd_sees_the_attacker() {
    let (dir, _cleanup) = common::dirs::test_dir("hfq-contained");
    let db = dir.join("events.sqlite");
    let events = EventStore::open(&db).unwrap();
    let Some((backend, work)) = common::vm::backend(
        "hfq-contained-vm",
        Boot::Restore,
        policy(
            "sinks = [\"198.51.100.7\"]\n\
             [[rule]]\nto = \"198.51.100.7\"\nproto = \"udp\"\nport = 53\naction = \"allow\"\n\
             [[rule]]\nproto = \"icmp\"\naction = \"drop\"\n",
        ),
        Some(events),
    ) else {
        return;
    };
    let addr: SocketAddr = "10.233.2.2:445".parse().unwrap();
    let _gone = common::vm::Links(common::vm::PREFIX, vec![addr], work);
    let h = backend.start(addr).expect("a restored VM");
    let hp = backend.namespace([10, 233, 2, 2].into());
    let out = outside(&hp, "vm");
    // Probes from inside the guest: TCP (bash's /dev/tcp), UDP, ICMP (ping).
    let tcp = in_guest(
        &h.dir,
        "timeout 2 bash -c 'echo > /dev/tcp/198.51.100.9/80' && echo connected",
    );
    let tcp_sink = in_guest(
        &h.dir,
        "timeout 2 bash -c 'echo > /dev/tcp/198.51.100.7/445' && echo connected",
    );
    let udp = in_guest(
        &h.dir,
        "bash -c 'echo x > /dev/udp/198.51.100.9/53' && echo sent",
    );
    let icmp = in_guest(&h.dir, "ping -n -c 2 -W 1 198.51.100.9");
    eprintln!("in the guest: tcp {tcp:?}, to the sink {tcp_sink:?}, udp {udp:?}, icmp {icmp:?}");
    assert!(!tcp.contains("connected") && !tcp_sink.contains("connected"));
    assert!(udp.contains("sent"), "the guest sent its datagram: {udp}");
    assert!(icmp.contains("100% packet loss"), "{icmp}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        seen(&out),
        0,
        "packets from the guest reached the outside under drop"
    );
    // The path works: what the policy allows does arrive.
    let allowed = in_guest(
        &h.dir,
        "bash -c 'echo x > /dev/udp/198.51.100.7/53' && echo sent",
    );
    assert!(allowed.contains("sent"), "{allowed}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(seen(&out), 1, "the allowed datagram arrived");
    backend.record_counters();
    let d = wait_for(&db, |d| d.iter().any(|r| r.1 == "allow"));
    let count = |rule: &str, decision: &str| {
        d.iter()
            .find(|r| r.0 == rule && r.1 == decision)
            .map_or(0, |r| r.2)
    };
    assert_eq!(count("0", "allow"), 1, "{d:?}");
    assert_eq!(count("1", "drop"), 2, "the two pings: {d:?}");
    assert!(count("default", "drop") >= 3, "{d:?}");

    // An attacker's connection through the farm's route: the guest's smbd sees its address.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let attacker: SocketAddr = "203.0.113.5:40000".parse().unwrap();
    let route = backend
        .route(addr, "198.18.5.1".parse().unwrap(), attacker)
        .unwrap();
    assert_eq!(route.heard_as.to_string(), "198.18.5.1");
    let s = rt.block_on(route.socket.connect(route.connect)).unwrap();
    let mut s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    assert!(
        negotiate_answered(&mut s, Duration::from_secs(20)),
        "the guest's smbd answers"
    );
    let peers = in_guest(&h.dir, "ss -Htnp state established '( sport = :445 )'");
    eprintln!("the guest's smbd's connections: {peers}");
    assert!(
        peers.contains("203.0.113.5:") && peers.contains("smbd"),
        "{peers}"
    );
    drop(s);
    backend.stop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_vm_honeypots_reflected_smb_connection_reaches_another_vm() {
    let (dir, _cleanup) = common::dirs::test_dir("hfq-reflect");
    let db = dir.join("events.sqlite");
    let Some((backend, work)) = common::vm::backend(
        "hfq-reflect-vm",
        Boot::Restore,
        policy("[[rule]]\nproto = \"tcp\"\nport = 445\naction = \"reflect\"\n"),
        Some(EventStore::open(&db).unwrap()),
    ) else {
        return;
    };
    let addrs: Vec<SocketAddr> = ["10.233.3.2:445", "10.233.3.3:445"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let _gone = common::vm::Links(common::vm::PREFIX, addrs.clone(), work.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pool = Pool::new(backend.clone(), addrs, 0);
    backend.set_reflector(reflect_to(
        pool.clone(),
        rt.handle().clone(),
        Some(EventStore::open(&db).unwrap()),
    ));
    struct Shut(Arc<Pool>);
    impl Drop for Shut {
        fn drop(&mut self) {
            self.0.shutdown();
        }
    }
    let _shut = Shut(pool.clone());
    let a = pool.lease("198.18.5.1".parse().unwrap()).unwrap();
    drop(
        pool.route(&a, "203.0.113.5:40000".parse().unwrap())
            .unwrap(),
    );
    let hp = backend.namespace([10, 233, 3, 2].into());
    let out = outside(&hp, "vmreflect");
    // The worm in the guest lists the shares of its next victim: another VM answers.
    let text = in_guest(
        &work.join("vm-10.233.3.2-445"),
        "smbclient -N -L 198.51.100.9 --option='client min protocol=NT1' --option='client max protocol=NT1'",
    );
    assert_reflected(&db, &out, &text, "10.233.3.3");
    pool.release(a);
    drop(_shut);
    let _ = std::fs::remove_dir_all(&dir);
}

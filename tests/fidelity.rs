//! The fidelity matrix (issue 10): real SMB clients and scanners against the farm in its
//! default configuration (the shipped scripts and Samba honeypots; only its addresses, ports and
//! paths adapted) and, for comparison, against a standalone `scripts/samba-honeypot.sh` of the
//! same identity. Both listen on ports 445 and 139 in a network namespace of their own
//! (`tests/fidelity/netns.sh`); the clients run from another (`tests/fidelity/tools.sh`). Each
//! row's outputs must be the same once run-dependent values are masked (see [`mask`]), every
//! SMB connection must end `scripted` or `bridged`, and no reply byte (a capture on the servers'
//! interface) and no output may name the farm, its honeypots, its work directory or an
//! internal address. Prints the matrix.
//!
//! Needs root and `ip netns`; without them it says why and counts itself skipped. Run it under
//! the shared lock: `flock /tmp/honeyfarm-peer-tests.lock cargo test --test fidelity`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

/// The farm's telescope address and the standalone honeypot's, in the `hfm-srv` namespace.
const FARM: &str = "192.0.2.2";
const DIRECT: &str = "192.0.2.3";
const SRV: &str = "hfm-srv";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Why this machine cannot run the matrix, if it cannot.
fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces need CAP_NET_ADMIN)".into());
    }
    for (what, check) in [
        ("ip netns", "ip netns list"),
        ("rpcclient", "command -v rpcclient"),
        ("nmap", "command -v nmap"),
        ("tcpdump", "command -v tcpdump"),
        ("smbd", "command -v smbd"),
        ("impacket", "python3 -c 'import impacket'"),
    ] {
        let ok = Command::new("sh")
            .args(["-c", check])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Some(format!("no {what} (scripts/setup.sh installs it)"));
        }
    }
    None
}

/// The two namespaces while they exist: removed on drop, also when an assertion failed.
struct Network;

impl Network {
    fn up() -> Network {
        netns_script("up");
        Network
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        netns_script("down");
    }
}

fn netns_script(action: &str) {
    common::output_ok(
        Command::new("bash")
            .arg(root().join("tests/fidelity/netns.sh"))
            .arg(action),
        &format!("netns.sh {action}"),
    );
}

/// A process run in `hfm-srv` (in a process group of its own), stopped on drop: SIGTERM to
/// the group, then SIGKILL after 20 s.
struct Server(Child);

impl Server {
    fn start(args: &[&str], log: &Path) -> Server {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", SRV])
            .args(args)
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Server(cmd.spawn().expect("starts"))
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
    }

    /// Stops it; whether it exited on its own terms (status 0 or the SIGTERM).
    fn stop(&mut self) -> bool {
        if let Ok(Some(st)) = self.0.try_wait() {
            return st.success();
        }
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.0.try_wait() {
                return st.success() || st.code().is_none();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.signal("-KILL");
        let _ = self.0.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `file` contains `text`.
fn wait_for(file: &Path, text: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = std::fs::read_to_string(file).unwrap_or_default();
        if now.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no `{text}` in {}:\n{now}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replaces the one occurrence of `from` in `text` (the shipped configuration must still
/// have it: the test adapts that file, not a copy of its own).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "config/honeyfarm.toml: `{from}`"
    );
    text.replace(from, to)
}

/// The shipped configuration, adapted in addresses, ports and paths only: the farm on the
/// telescope address's ports 445 and 139, its events and honeypot directories under `dir`.
fn farm_config(dir: &Path, shipped: &str) -> PathBuf {
    let text = replace_once(
        shipped,
        "path = \"honeyfarm-events.sqlite\"",
        &format!("path = \"{}/events.sqlite\"", dir.display()),
    );
    let text = replace_once(
        &text,
        "[[listen]]\naddress = \"127.0.0.77:4450\"\nservice = \"smb\"\n",
        &format!(
            "[[listen]]\naddress = \"{FARM}:445\"\nservice = \"smb\"\n\n\
             [[listen]]\naddress = \"{FARM}:139\"\nservice = \"smb\"\n"
        ),
    );
    let text = replace_once(
        &text,
        "work_dir = \"/tmp/honeyfarm-honeypots\"",
        &format!("work_dir = \"{}/honeypots\"", dir.display()),
    );
    let path = dir.join("farm.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The honeypot addresses of the shipped configuration (`addresses = ["A:P", ...]`).
fn honeypot_addresses(shipped: &str) -> Vec<String> {
    let line = shipped
        .lines()
        .find(|l| l.starts_with("addresses = ["))
        .expect("config/honeyfarm.toml lists honeypot addresses");
    Regex::new(r"(\d+\.\d+\.\d+\.\d+):\d+")
        .unwrap()
        .captures_iter(line)
        .map(|c| c[1].to_string())
        .collect()
}

/// Runs one phase of `tools.sh` against `target`, its outputs under `out`.
fn tools(target: &str, out: &Path, phase: &str) {
    common::output_ok(
        Command::new("bash")
            .arg(root().join("tests/fidelity/tools.sh"))
            .arg(target)
            .arg(out)
            .arg(phase),
        &format!("tools.sh {target} {phase}"),
    );
}

/// One row's result on one side: the masked output and how long it took.
struct Run {
    name: String,
    text: String,
    ms: u64,
}

/// The rows `tools.sh` wrote under `out`, by file stem.
fn runs(out: &Path, target: &str) -> BTreeMap<String, Run> {
    let mut all = BTreeMap::new();
    for e in std::fs::read_dir(out).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "out") {
            continue;
        }
        let row = std::fs::read_to_string(path.with_extension("row")).unwrap();
        let (name, ms) = row.trim_end().split_once('\t').unwrap();
        let raw = std::fs::read_to_string(&path).unwrap();
        all.insert(
            path.file_stem().unwrap().to_string_lossy().into_owned(),
            Run {
                name: name.to_string(),
                text: mask(&raw, target),
                ms: ms.parse().unwrap(),
            },
        );
    }
    all
}

/// An output with what differs from run to run, and server to server by construction,
/// replaced by a placeholder. Each mask and why:
/// - the address the tool was pointed at (`<target>`): the tool prints its own argument; an
///   address the server itself names (a honeypot's, 127.x) stays visible;
/// - dates and times of day (`<time>`): samrdump's PasswordLastSet, rpcclient's queryuser
///   times (each honeypot's accounts are made when it starts), smb-os-discovery's system
///   time, file times in a listing, nmap's start time. Only the digits of date and time to
///   the second: a fraction or time zone after them stays, so a server's precision shows;
/// - rpcclient's `Sequence No` (Samba's domain modification count is its start time);
/// - nmap's own measurements: latency, RTT figures, send rates, elapsed time;
/// - in nmap's --version-trace, its bookkeeping (timestamps, event and IOD numbers, read
///   timeouts it adapts to the RTT); what the server did to each probe (the `Callback`
///   lines: data and its length, EOF, reset, timeout) stays, in order per port.
fn mask(text: &str, target: &str) -> String {
    let text = text.replace(target, "<target>");
    let subs = [
        (r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?", "<time>"),
        (
            r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d",
            "<time>",
        ),
        (
            r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}",
            "<time>",
        ),
        (r"(?m)^Sequence No:\s*\d+", "Sequence No:\t<time>"),
        (r"Host is up \([0-9.]+s latency\)", "Host is up (<latency>)"),
        (r"scanned in [0-9.]+ seconds", "scanned in <duration>"),
        (r"for \d+s\n", "for <duration>\n"),
        (
            r"(?m)^Final times for host: .*$",
            "Final times for host: <rtt>",
        ),
        (
            r"(?m)^Overall sending rates: .*$",
            "Overall sending rates: <rates>",
        ),
        (r"NSOCK INFO \[[0-9.]+s\] ", "NSOCK INFO "),
        (r" for EID \d+", ""),
    ];
    let mut text = text;
    for (re, to) in subs {
        text = Regex::new(re).unwrap().replace_all(&text, to).into_owned();
    }
    // nmap's trace: keep the server's part (callbacks, probes, matches), each port's in order.
    let port = Regex::new(r"<target>:(\d+)").unwrap();
    let mut rest = Vec::new();
    let mut per_port: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("NSOCK") && !line.contains("Callback:") {
            continue;
        }
        let traced = line.starts_with("NSOCK") || line.starts_with("Service scan");
        match port.captures(line) {
            Some(c) if traced => per_port.entry(c[1].to_string()).or_default().push(line),
            _ => rest.push(line),
        }
    }
    for lines in per_port.values() {
        rest.extend(lines);
    }
    rest.join("\n")
}

/// The lines of `a` that `b` lacks, each with its side, in order (a short diff).
fn differences(direct: &str, farm: &str) -> Vec<String> {
    let lacking = |a: &str, b: &str, side: &str| -> Vec<String> {
        let mut left: Vec<&str> = b.lines().collect();
        a.lines()
            .filter(|l| match left.iter().position(|x| x == l) {
                Some(i) => {
                    left.remove(i);
                    false
                }
                None => true,
            })
            .map(|l| format!("{side} {l}"))
            .collect()
    };
    let mut d = lacking(direct, farm, "direct:");
    d.extend(lacking(farm, direct, "farm:  "));
    d
}

/// Where a needle occurs in `hay`, case-insensitively, as ASCII or UTF-16LE text.
fn find_text(hay: &[u8], needle: &str) -> Option<usize> {
    let lower: Vec<u8> = hay.iter().map(u8::to_ascii_lowercase).collect();
    let ascii = needle.to_ascii_lowercase().into_bytes();
    let utf16: Vec<u8> = ascii.iter().flat_map(|&b| [b, 0]).collect();
    [ascii, utf16]
        .iter()
        .find_map(|n| lower.windows(n.len()).position(|w| w == n.as_slice()))
}

/// The tells found in `hay`: each needle found, with some context.
fn tells(hay: &[u8], needles: &[String], raw_addresses: &[[u8; 4]]) -> Vec<String> {
    let context = |at: usize| {
        let s = at.saturating_sub(16);
        String::from_utf8_lossy(&hay[s..(at + 48).min(hay.len())]).into_owned()
    };
    let mut found: Vec<String> = needles
        .iter()
        .filter_map(|n| find_text(hay, n).map(|at| format!("`{n}`: …{}…", context(at))))
        .collect();
    for a in raw_addresses {
        if let Some(at) = hay.windows(4).position(|w| w == a) {
            found.push(format!("address bytes {a:?} at {at}"));
        }
    }
    found
}

/// Every server-to-client byte of the capture, per server address.
fn replies(pcap: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut by_server: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for st in honeyfarm_runtime::capture::tcp_streams(pcap).unwrap() {
        by_server
            .entry(st.server.ip().to_string())
            .or_default()
            .extend_from_slice(&st.to_client.data);
    }
    by_server
}

/// `(id, outcome, detail)` of every connection in the farm's store, once all have ended.
fn connections(db: &Path) -> Vec<(i64, String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = rusqlite::Connection::open(db).unwrap();
        let rows: Vec<(i64, Option<String>, String)> = c
            .prepare("SELECT id, outcome, COALESCE(detail, '') FROM connections ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if rows.iter().all(|r| r.1.is_some()) || Instant::now() > deadline {
            return rows
                .into_iter()
                .map(|(id, o, d)| (id, o.unwrap_or_else(|| "(open)".into()), d))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Input that is not SMB at all (nmap -sV's probes): the farm ends it as Samba does, and the
/// store records why under the outcome `not_protocol`.
fn not_smb(detail: &str) -> bool {
    [
        "closed before sending anything",
        "closed in the middle of a message",
        "attacker message 0: a message of at least",
        "attacker message 0 does not decode",
    ]
    .iter()
    .any(|p| detail.starts_with(p))
}

/// Prints the matrix, one row per client run: the same on both sides, or what differs.
fn compare(
    direct_runs: &BTreeMap<String, Run>,
    farm_runs: &BTreeMap<String, Run>,
    failures: &mut Vec<String>,
) {
    println!("\nfidelity matrix: the farm (default configuration) against a standalone honeypot");
    println!(
        "{:<46} {:<9} {:>9} {:>9}",
        "row", "outcome", "direct ms", "farm ms"
    );
    for (stem, d) in direct_runs {
        let Some(f) = farm_runs.get(stem) else {
            failures.push(format!("{}: no output through the farm", d.name));
            continue;
        };
        let diff = differences(&d.text, &f.text);
        let outcome = if diff.is_empty() { "same" } else { "DIFFERS" };
        println!("{:<46} {outcome:<9} {:>9} {:>9}", d.name, d.ms, f.ms);
        for l in &diff {
            println!("    {l}");
        }
        if !diff.is_empty() {
            failures.push(format!("{}: outputs differ", d.name));
        }
    }
}

/// The store: every connection of the SMB clients (the first `smb_connections`) `scripted`
/// or `bridged`; the probes' connections those or ended as not SMB. Prints the counts.
fn check_store(
    store: &[(i64, String, String)],
    smb_connections: usize,
    failures: &mut Vec<String>,
) {
    let mut counts: BTreeMap<(bool, String), usize> = BTreeMap::new();
    for (n, (id, outcome, detail)) in store.iter().enumerate() {
        let smb = n < smb_connections;
        let ok = match outcome.as_str() {
            "scripted" | "bridged" => true,
            "not_protocol" => !smb && not_smb(detail),
            _ => false,
        };
        if !ok {
            failures.push(format!("connection {id}: {outcome}: {detail}"));
        }
        let kind = outcome.clone();
        *counts.entry((smb, kind)).or_default() += 1;
    }
    println!("farm store, {} connections:", store.len());
    for ((smb, kind), n) in &counts {
        let phase = if *smb {
            "SMB clients"
        } else {
            "nmap -sV and its probes"
        };
        println!("    {phase}: {n} {kind}");
    }
}

/// Tells in every reply byte (the capture) and every output of each side: the words
/// honeyfarm and honeypot and the work directory `work` (as a path and as Windows shows it)
/// on both; on the farm's also its honeypots' `internal` addresses (as text and as bytes) and
/// the standalone honeypot's.
fn check_tells(
    pcap: &Path,
    work: &str,
    internal: &[String],
    runs: [(&str, &BTreeMap<String, Run>); 2],
    failures: &mut Vec<String>,
) {
    let mut direct_needles: Vec<String> = ["honeyfarm", "honeypot", work].map(String::from).into();
    direct_needles.push(format!("C:{work}").replace('/', "\\"));
    let mut needles = direct_needles.clone();
    needles.extend(internal.iter().cloned());
    needles.push(DIRECT.to_string());
    let raw: Vec<[u8; 4]> = internal
        .iter()
        .map(|a| a.parse::<std::net::Ipv4Addr>().unwrap().octets())
        .collect();
    let bytes = replies(pcap);
    for (server, outputs) in runs {
        let (needles, raw) = if server == FARM {
            (&needles, raw.as_slice())
        } else {
            (&direct_needles, &[][..])
        };
        let sent = bytes.get(server).map_or(&[][..], Vec::as_slice);
        println!("replies from {server}: {} bytes captured", sent.len());
        if sent.is_empty() {
            failures.push(format!("no reply from {server} captured"));
        }
        for t in tells(sent, needles, raw) {
            failures.push(format!("a reply from {server} shows {t}"));
        }
        for run in outputs.values() {
            for t in tells(run.text.as_bytes(), needles, &[]) {
                failures.push(format!("{} through {server} shows {t}", run.name));
            }
        }
    }
}

#[test]
fn fidelity_matrix() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let (dir, _cleanup) = common::dirs::test_dir("hfm-fidelity");
    let shipped = std::fs::read_to_string(root().join("config/honeyfarm.toml")).unwrap();
    let _net = Network::up();

    let pcap = dir.join("replies.pcap");
    let cap_log = dir.join("tcpdump.log");
    let pcap_arg = pcap.display().to_string();
    let mut capture = Server::start(
        &[
            "tcpdump", "-i", "hfm-srv0", "-n", "-U", "-s", "0", "-w", &pcap_arg, "tcp",
        ],
        &cap_log,
    );
    wait_for(&cap_log, "listening on", 30);

    let direct_dir = dir.join("direct").display().to_string();
    let script = root()
        .join("scripts/samba-honeypot.sh")
        .display()
        .to_string();
    let mut direct = Server::start(
        &["bash", &script, &direct_dir, DIRECT, "445,139"],
        &dir.join("direct.log"),
    );
    let config = farm_config(&dir, &shipped).display().to_string();
    let farm_log = dir.join("farm.log");
    let mut farm = Server::start(
        &[env!("CARGO_BIN_EXE_honeyfarm"), "run", "--config", &config],
        &farm_log,
    );
    let ready = Path::new(&direct_dir).join("ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "the standalone honeypot is not ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(&farm_log, "honeypot pool warm", 90);

    // The SMB clients, then the input that is not SMB: the store's connections are told
    // apart by phase.
    let (out_direct, out_farm) = (dir.join("out-direct"), dir.join("out-farm"));
    tools(DIRECT, &out_direct, "smb");
    tools(FARM, &out_farm, "smb");
    let db = dir.join("events.sqlite");
    let smb_connections = connections(&db).len();
    tools(DIRECT, &out_direct, "probes");
    tools(FARM, &out_farm, "probes");
    let store = connections(&db);
    let farm_stopped = farm.stop();
    direct.stop();
    std::thread::sleep(Duration::from_millis(500));
    capture.stop();

    let mut failures = Vec::new();
    let (direct_runs, farm_runs) = (runs(&out_direct, DIRECT), runs(&out_farm, FARM));
    compare(&direct_runs, &farm_runs, &mut failures);
    check_store(&store, smb_connections, &mut failures);
    if !farm_stopped {
        failures.push("the farm did not stop cleanly".into());
    }
    let work = dir.display().to_string();
    let internal = honeypot_addresses(&shipped);
    let runs = [(FARM, &farm_runs), (DIRECT, &direct_runs)];
    check_tells(&pcap, &work, &internal, runs, &mut failures);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n(outputs under {})",
        failures.len(),
        failures.join("\n"),
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

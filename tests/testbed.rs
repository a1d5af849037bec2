//! The farm for a whole prefix, in the network testbed (`scripts/testbed.sh`): real scanners
//! in the `hf-scan` namespace against `honeyfarm run` in `hf-farm`, which listens on
//! 198.18.0.0/24 ports 445 and 139 ("AnyIP"), with the scan filter at N = 4 and metrics on.
//! Needs root and `ip netns`; without them it says why and counts itself skipped. Run it
//! under the shared lock: `flock /tmp/honeyfarm-peer-tests.lock cargo test --test testbed`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dirs::Cleanup;

const SCAN: &str = "hf-scan";
const FARM: &str = "hf-farm";
const PREFIX: &str = "198.18.0.0/24";
const METRICS: &str = "127.0.0.1:9464";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn testbed(action: &str) {
    common::output_ok(
        Command::new("bash")
            .arg(root().join("scripts/testbed.sh"))
            .arg(action),
        &format!("testbed.sh {action}"),
    );
}

/// One testbed at a time: the tests of this file take turns.
static BED: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The testbed while it is up: `down` on drop, also when an assertion failed.
struct Testbed(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl Testbed {
    fn up() -> Testbed {
        let turn = BED.lock().unwrap_or_else(|p| p.into_inner());
        testbed("up");
        Testbed(turn)
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        testbed("down");
    }
}

/// Why this machine cannot run the testbed, if it cannot.
fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces need CAP_NET_ADMIN)".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`ip netns list` fails: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Some(format!("no `ip` command: {e}")),
    }
}

/// `ip netns exec NS ARGS...`: its output (stdout and stderr) and whether it succeeded.
fn netns(ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn available(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The scanner's connections to the prefix leave from `source` (rpcclient cannot bind one).
fn use_source(source: &str) {
    let (ok, out) = netns(
        SCAN,
        &[
            "ip",
            "route",
            "change",
            PREFIX,
            "via",
            "192.0.2.2",
            "dev",
            "hf-scan0",
            "src",
            source,
        ],
    );
    assert!(ok, "{out}");
}

/// rpcclient (SMB1, port 445) from the scanner host to `addr`.
fn rpcclient(addr: &str) -> String {
    let mut args = vec!["rpcclient", "-U%", "-N", "-p", "445"];
    args.extend(common::SMB1_CLIENT);
    args.extend([addr, "-c", "enumdomusers"]);
    netns(SCAN, &args).1
}

/// Connects from `source` to `addr`:445 and reads for a second: `reset` (the RST may already
/// fail the connect) or `eof` when the farm closed it at once, `open` when it waited for the
/// client (an SMB server does), `dropped` when the SYN got no answer for 2 s.
fn probe(source: &str, addr: &str) -> String {
    probe_port(source, addr, 445)
}

fn probe_port(source: &str, addr: &str, port: u16) -> String {
    let py = format!(
        "import socket\n\
         s = socket.socket()\n\
         s.bind(('{source}', 0))\n\
         s.settimeout(2)\n\
         try:\n    s.connect(('{addr}', {port}))\n\
         except socket.timeout:\n    print('dropped'); raise SystemExit\n\
         except ConnectionResetError:\n    print('reset'); raise SystemExit\n\
         s.settimeout(1)\n\
         try:\n    print('eof' if s.recv(1) == b'' else 'data')\n\
         except ConnectionResetError:\n    print('reset')\n\
         except socket.timeout:\n    print('open')\n"
    );
    let (ok, out) = netns(SCAN, &["python3", "-c", &py]);
    assert!(ok, "probe {source} -> {addr}: {out}");
    out.trim().to_string()
}

/// The farm in `hf-farm`, stopped (SIGTERM, then waited for) on drop.
struct Farm(Child);

impl Farm {
    fn start(dir: &Path, config: &Path) -> (Farm, PathBuf) {
        Self::start_under(dir, config, &[])
    }

    /// The farm run by `wrapper` (a command and its arguments, before the farm's).
    fn start_under(dir: &Path, config: &Path, wrapper: &[&str]) -> (Farm, PathBuf) {
        let log = dir.join("farm.log");
        let child = Command::new("ip")
            .args(["netns", "exec", FARM])
            .args(wrapper)
            .args([env!("CARGO_BIN_EXE_honeyfarm"), "run"])
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let farm = Farm(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("stop with Ctrl-C") {
                break;
            }
            assert!(Instant::now() < deadline, "the farm did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
        (farm, log)
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        // `ip netns exec` execs the farm: the child is the farm itself.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config(dir: &Path) -> PathBuf {
    let listen = format!(
        "[[listen]]\nprefix = \"{PREFIX}\"\nports = [445, 139]\nservice = \"smb\"\n\
         [filter]\nenabled = true\nn = 4\n"
    );
    config_with(dir, "farm.toml", &listen)
}

/// A farm configuration with `listen` (the `[[listen]]` and `[filter]` sections, and any
/// other) for the testbed's prefix; the script of the default configuration, metrics on.
fn config_with(dir: &Path, name: &str, listen: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::copy(
        root().join("protocols/scripts/samba-enumdomusers.json"),
        dir.join("scripts/samba-enumdomusers.json"),
    )
    .unwrap();
    let text = format!(
        r#"
[events]
path = "{dir}/events.sqlite"
[scripts]
dirs = ["{dir}/scripts"]
[session]
idle_timeout_secs = 20
reply_timeout_secs = 20
[limits]
report_interval_secs = 1
[metrics]
listen = "{METRICS}"
{listen}
"#,
        dir = dir.display()
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The farm's metrics, read from inside its namespace: name{labels} -> value.
fn metrics() -> HashMap<String, f64> {
    let (ok, text) = netns(
        FARM,
        &[
            "curl",
            "-s",
            "--max-time",
            "5",
            &format!("http://{METRICS}/metrics"),
        ],
    );
    assert!(ok, "curl: {text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Waits until the store has `n` ended connections.
fn wait_ended(db: &Path, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done: i64 = rusqlite::Connection::open(db)
            .and_then(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM connections WHERE outcome IS NOT NULL",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0);
        if done >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{done} of {n} connections ended");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The testbed up and a fresh directory for one test, or `None` (said why) where the
/// machine cannot run it or lacks `tool`.
fn bed(name: &str, tool: &str) -> Option<(PathBuf, Cleanup, Testbed)> {
    if let Some(why) = unavailable() {
        eprintln!("testbed: skipped 1 test: {why}");
        return None;
    }
    if !available(tool) {
        eprintln!("testbed: skipped 1 test: no {tool}");
        return None;
    }
    let (dir, cleanup) = test_dir(name);
    Some((dir, cleanup, Testbed::up()))
}

/// `nmap -sS` of `ports` on `targets` from 203.0.113.19: its grepable output.
fn nmap_syn(ports: &str, targets: &str) -> String {
    let (ok, out) = netns(
        SCAN,
        &[
            "nmap",
            "-sS",
            "-p",
            ports,
            "-n",
            "--max-retries",
            "1",
            "--host-timeout",
            "30s",
            "-S",
            "203.0.113.19",
            "-e",
            "hf-scan0",
            "-oG",
            "-",
            targets,
        ],
    );
    assert!(ok, "{out}");
    out
}

/// A fresh directory for one test, and the guard that stops what it leaves running there.
fn test_dir(name: &str) -> (PathBuf, Cleanup) {
    common::dirs::test_dir(&format!("honeyfarm-{name}"))
}

#[test]
fn the_farm_answers_a_whole_prefix_to_real_scanners() {
    if let Some(why) = unavailable() {
        eprintln!("testbed: skipped 1 test: {why}");
        return;
    }
    let (dir, _cleanup) = test_dir("testbed");
    let _bed = Testbed::up();
    let cfg = config(&dir);
    // A prefix not routed to the farm's host: refused at start, naming the fix.
    let unrouted = dir.join("unrouted.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&unrouted, text.replace(PREFIX, "198.18.1.0/24")).unwrap();
    let bin = env!("CARGO_BIN_EXE_honeyfarm");
    let (ok, out) = netns(FARM, &[bin, "run", "--config", unrouted.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("run `ip route add local 198.18.1.0/24 dev lo`"),
        "{out}"
    );
    let (mut farm, log) = Farm::start(&dir, &cfg);
    let db = dir.join("events.sqlite");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // nmap -sS sees both ports open on every address (half-open: the farm accepts nothing).
    let started = Instant::now();
    let nmap = nmap_syn("445,139", PREFIX);
    let open_hosts = nmap
        .lines()
        .filter(|l| l.contains("445/open/tcp") && l.contains("139/open/tcp"))
        .count();
    eprintln!(
        "nmap -sS over {PREFIX}: {open_hosts} hosts with 445 and 139 open in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(open_hosts, 256, "{nmap}");
    // masscan and zmap too: half-open scans, which the filter never sees.
    real_scanners(&dir);

    // rpcclient to two telescope addresses from one source: served from the script.
    use_source("203.0.113.10");
    let a = rpcclient("198.18.0.1");
    let b = rpcclient("198.18.0.2");
    for out in [&a, &b] {
        assert!(out.contains("user:["), "{out}\n{}", log_text());
    }
    wait_ended(&db, 2);
    let c = rusqlite::Connection::open(&db).unwrap();
    let served: Vec<(String, String)> = c
        .prepare("SELECT telescope, outcome FROM connections ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        served,
        [
            ("198.18.0.1:445".to_string(), "scripted".to_string()),
            ("198.18.0.2:445".to_string(), "scripted".to_string())
        ]
    );

    // N = 4: a source's four new addresses are answered, the fifth reset at once.
    let s1 = "203.0.113.11";
    for last in 11..=14 {
        assert_eq!(probe(s1, &format!("198.18.0.{last}")), "open");
    }
    let fifth = probe(s1, "198.18.0.15");
    assert!(fifth == "reset" || fifth == "eof", "fifth probe: {fifth}");
    // Its follow-up to an admitted address is still served, from the script.
    use_source(s1);
    let again = rpcclient("198.18.0.11");
    assert!(again.contains("user:["), "{again}\n{}", log_text());
    // A second source is unaffected, also at the address the first one was refused.
    assert_eq!(probe("203.0.113.12", "198.18.0.15"), "open");
    use_source("203.0.113.10");

    // The metrics and the store agree: 2 + 4 + 1 admitted, 1 follow-up, 1 filtered (the
    // filtered connection has no row in `connections`: the filter table counts it).
    wait_ended(&db, 8);
    std::thread::sleep(Duration::from_millis(1500));
    let m = metrics();
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    let decisions = [
        get("honeyfarm_filter_decisions_total{decision=\"admit\"}"),
        get("honeyfarm_filter_decisions_total{decision=\"follow_up\"}"),
        get("honeyfarm_filter_decisions_total{decision=\"filtered\"}"),
    ];
    assert_eq!(decisions, [7.0, 1.0, 1.0], "{m:?}");
    assert_eq!(
        get("honeyfarm_connections_total{outcome=\"filtered\"}"),
        1.0
    );
    farm.stop();
    let c = rusqlite::Connection::open(&db).unwrap();
    let by_source: HashMap<String, (i64, i64, i64)> = c
        .prepare(
            "SELECT source, SUM(admitted), SUM(follow_ups), SUM(filtered) FROM filter GROUP BY source",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(by_source["203.0.113.10"], (2, 0, 0), "{by_source:?}");
    assert_eq!(by_source[s1], (4, 1, 1), "{by_source:?}");
    assert_eq!(by_source["203.0.113.12"], (1, 0, 0), "{by_source:?}");
    let totals = by_source.values().fold([0.0; 3], |t, v| {
        [t[0] + v.0 as f64, t[1] + v.1 as f64, t[2] + v.2 as f64]
    });
    assert_eq!(totals, decisions);
    let scripted: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM connections WHERE outcome = 'scripted' AND telescope = '198.18.0.11:445'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(scripted, 1, "the follow-up was served from the script");
}

/// masscan and zmap at 1000 packets/s over the /24, their SYNs captured in `hf-farm` and fed to
/// `honeyfarm filter-gain`: the gain table of a real scanner run (the farm's listeners answer
/// the SYNs). A scanner that cannot run here is reported and skipped.
fn real_scanners(dir: &Path) {
    let mac = |ns: &str, dev: &str| {
        let (_, out) = netns(ns, &["cat", &format!("/sys/class/net/{dev}/address")]);
        out.trim().to_string()
    };
    let farm_mac = mac(FARM, "hf-farm0");
    let scanners: [(&str, Vec<String>); 2] = [
        (
            "masscan",
            [
                "masscan",
                PREFIX,
                "-p445,139",
                "--rate",
                "1000",
                "--wait",
                "1",
                "-e",
                "hf-scan0",
                "--source-ip",
                "203.0.113.18",
                "--router-mac",
                &farm_mac,
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "zmap",
            [
                "zmap",
                "-p",
                "445",
                "--rate",
                "1000",
                "-i",
                "hf-scan0",
                "-S",
                "203.0.113.17",
                "--gateway-mac",
                &farm_mac,
                "--cooldown-time",
                "1",
                "-q",
                "-o",
                "-",
                // zmap's default blacklist excludes reserved ranges such as 198.18.0.0/15.
                "-b",
                "/dev/null",
                PREFIX,
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    for (name, args) in scanners {
        if !available(name) {
            eprintln!("{name}: not installed (scripts/setup.sh installs it); skipped");
            continue;
        }
        let pcap = dir.join(format!("{name}.pcap"));
        let mut capture = Command::new("ip")
            .args([
                "netns", "exec", FARM, "tcpdump", "-Z", "root", "-i", "hf-farm0", "-w",
            ])
            .arg(&pcap)
            .args(["-U", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump runs");
        std::thread::sleep(Duration::from_secs(1));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let (ok, out) = netns(SCAN, &args);
        let _ = Command::new("kill")
            .args(["-INT", &capture.id().to_string()])
            .status();
        let _ = capture.wait();
        if !ok {
            eprintln!("{name}: could not run in the namespace; skipped:\n{out}");
            continue;
        }
        let found = out.lines().filter(|l| l.contains("198.18.0.")).count();
        eprintln!(
            "{name}: {found} open ports/hosts reported in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        // masscan's count varies (its user-space stack misses some SYN-ACKs on veth).
        assert!(found > 0, "{name} found nothing:\n{out}");
        let table = common::honeyfarm_ok(&["filter-gain", "--trace", pcap.to_str().unwrap()]);
        eprintln!("{name} gain table (a real scanner run, one source):\n{table}");
        assert!(table.lines().count() >= 12, "{table}");
    }
}

/// The farm's nftables table in the testbed (`[kernel] table`).
const TABLE: &str = "hfp_farm";

/// `nft ARGS...` in the farm's namespace: its output, and whether it succeeded.
fn nft(args: &[&str]) -> (bool, String) {
    let mut all = vec!["nft"];
    all.extend(args);
    netns(FARM, &all)
}

/// Waits up to `secs` for `what` to hold.
fn eventually(secs: u64, what: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if what() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The privileged modes: every port of the prefix through TPROXY to one transparent socket,
/// each served as its port's service; filtered sources in the kernel set, whose SYNs are then
/// dropped before the handshake (but not to their admitted pairs) until the entry expires;
/// the table replaces a stale one at start and is removed at exit, with the policy route.
#[test]
fn tproxy_and_the_kernel_set() {
    let Some((dir, _cleanup, _bed)) = bed("testbed-kernel", "nft") else {
        return;
    };
    const WINDOW: u64 = 5;
    let cfg = config_with(
        &dir,
        "farm.toml",
        &format!(
            "[[listen]]\nmode = \"tproxy\"\nprefix = \"{PREFIX}\"\nports = \"all\"\n\
             [filter]\nn = 2\nwindow_secs = {WINDOW}\nkernel_set = true\n\
             [kernel]\ntable = \"{TABLE}\"\n"
        ),
    );
    // A stale table of the farm's name (a crashed run's) is replaced.
    let (ok, out) = netns(
        FARM,
        &[
            "nft",
            &format!("add table inet {TABLE}; add set inet {TABLE} stale {{ type ipv4_addr; }}"),
        ],
    );
    assert!(ok, "{out}");
    let (mut farm, log) = Farm::start(&dir, &cfg);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let (ok, table) = nft(&["list", "table", "inet", TABLE]);
    assert!(ok, "{table}");
    assert!(!table.contains("stale"), "{table}");
    assert!(
        table.contains("set filtered4") && table.contains("tproxy ip to 127.0.0.1:"),
        "{table}"
    );
    let (_, rules) = netns(FARM, &["ip", "rule", "list"]);
    assert!(rules.contains("fwmark 0x4846 lookup 4846"), "{rules}");

    // nmap -sS sees every port it scans open, those no [[listen]] names included.
    let ports = "21,22,80,139,445,3389";
    let nmap = nmap_syn(ports, "198.18.0.1-4");
    let all_open = nmap
        .lines()
        .filter(|l| {
            ports
                .split(',')
                .all(|p| l.contains(&format!("{p}/open/tcp")))
        })
        .count();
    assert_eq!(all_open, 4, "{nmap}");

    // Each port is its own service: 445 served from the script, at the address reached.
    let s = "203.0.113.13";
    use_source(s);
    let out = rpcclient("198.18.0.30");
    assert!(out.contains("user:["), "{out}\n{}", log_text());
    // A port without a service: accepted (the kernel made the handshake) and closed.
    assert_eq!(probe_port(s, "198.18.0.30", 22), "eof");
    // N = 2: the third pair is reset, and the source goes to the kernel set...
    assert_eq!(probe(s, "198.18.0.31"), "reset");
    let in_set = || {
        let (_, set) = nft(&["list", "set", "inet", TABLE, "filtered4"]);
        set.contains(s)
    };
    assert!(
        eventually(5, in_set),
        "{}",
        nft(&["list", "table", "inet", TABLE]).1
    );
    // ... so its next SYN to a new pair gets no answer at all, counted by the rule.
    assert_eq!(probe(s, "198.18.0.32"), "dropped");
    let (_, chain) = nft(&["list", "chain", "inet", TABLE, "intake"]);
    assert!(!chain.contains("counter packets 0 "), "{chain}");
    // Its follow-up to an admitted pair still reaches the farm and is served.
    let again = rpcclient("198.18.0.30");
    let follow_up_at = Instant::now();
    assert!(again.contains("user:["), "{again}\n{}", log_text());
    // Another source is unaffected.
    assert_eq!(probe("203.0.113.14", "198.18.0.32"), "open");
    use_source("203.0.113.10");
    let m = metrics();
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        get("honeyfarm_kernel_set_elements_total{set=\"filtered\",result=\"added\"}"),
        1.0,
        "{m:?}"
    );
    // .13's two pairs and .14's one.
    assert_eq!(
        get("honeyfarm_kernel_set_elements_total{set=\"admitted\",result=\"added\"}"),
        3.0,
        "{m:?}"
    );
    assert_eq!(
        get("honeyfarm_kernel_set_elements_total{result=\"failed\"}"),
        0.0
    );
    assert_eq!(
        get("honeyfarm_connections_total{outcome=\"no_service\"}"),
        1.0,
        "{m:?}"
    );

    // The entry expires with the window; once the filter has forgotten the source too, it
    // is answered afresh.
    assert!(
        eventually(WINDOW + 3, || !in_set()),
        "the set entry did not expire"
    );
    let forgotten = follow_up_at + Duration::from_secs(WINDOW + 1);
    std::thread::sleep(forgotten.saturating_duration_since(Instant::now()));
    assert_eq!(probe(s, "198.18.0.33"), "open");

    farm.stop();
    let (_, tables) = nft(&["list", "tables"]);
    assert!(!tables.contains(TABLE), "{tables}\n{}", log_text());
    let (_, rules) = netns(FARM, &["ip", "rule", "list"]);
    assert!(!rules.contains("0x4846"), "{rules}");
}

/// Without CAP_NET_ADMIN, `kernel_set` says so at start and the farm filters in user space.
#[test]
fn the_kernel_set_without_the_privilege() {
    let Some((dir, _cleanup, _bed)) = bed("testbed-unprivileged", "setpriv") else {
        return;
    };
    let cfg = config_with(
        &dir,
        "farm.toml",
        &format!(
            "[[listen]]\nprefix = \"{PREFIX}\"\nports = [445]\nservice = \"smb\"\n\
             [filter]\nn = 1\nkernel_set = true\n[kernel]\ntable = \"{TABLE}\"\n"
        ),
    );
    // Root without CAP_NET_ADMIN (out of the bounding set: gone after exec).
    let (mut farm, log) =
        Farm::start_under(&dir, &cfg, &["setpriv", "--bounding-set=-net_admin", "--"]);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text().contains("filtering in user space alone"),
        "{}",
        text()
    );
    let s = "203.0.113.15";
    assert_eq!(probe(s, "198.18.0.50"), "open");
    assert_eq!(probe(s, "198.18.0.51"), "reset");
    assert_eq!(
        probe(s, "198.18.0.52"),
        "reset",
        "still the user-space filter"
    );
    farm.stop();
    let (_, tables) = nft(&["list", "tables"]);
    assert!(!tables.contains(TABLE), "{tables}");
}

/// `nmap -sV --version-light` from the scanner host: what it names on 445 and 139, per
/// address (`port -> service/version`, from its grepable output).
fn nmap_versions(source: &str, targets: &[&str]) -> Vec<HashMap<String, String>> {
    let mut args = vec![
        "nmap",
        "-sV",
        "--version-light",
        "-p",
        "445,139",
        "-n",
        "--max-retries",
        "1",
        "--host-timeout",
        "60s",
        "-S",
        source,
        "-e",
        "hf-scan0",
        "-oG",
        "-",
    ];
    args.extend(targets);
    let (ok, out) = netns(SCAN, &args);
    assert!(ok, "{out}");
    eprintln!("nmap -sV {}:\n{out}", targets.join(" "));
    out.lines()
        .filter_map(|l| l.split_once("Ports: "))
        .map(|(_, ports)| {
            ports
                .split(", ")
                .filter_map(|p| {
                    // 445/open/tcp//netbios-ssn//Samba smbd 3.X - 4.X (workgroup: FARMNET)/
                    let f: Vec<&str> = p.split('/').collect();
                    (f.len() >= 7).then(|| (f[0].to_string(), format!("{} {}", f[4], f[6])))
                })
                .collect()
        })
        .collect()
}

/// Samba in a process group, stopped with everything it started on drop.
struct Honeypot(Child);

impl Drop for Honeypot {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// nmap -sV names the farm as it names the real honeypot: Samba, answered directly on 445
/// and 139 of the farm host, and then the farm on two addresses of the prefix, whose
/// deviating sessions (nmap's probes are not in the script) are bridged to that honeypot.
///
/// Each bridged session uses up its honeypot (the pool starts a fresh one after it), and nmap
/// sends its SMB probe to 445 of both addresses and, about five seconds later, to 139 of both:
/// the pool holds a warm honeypot for each of those four sessions. With two, the 139 probes
/// waited for the restarted ones; a Samba start slowed by a loaded machine past nmap's 5 s
/// read timeout (a start delayed by 8 s shows it every time) left 139 named `netbios-ssn?`.
#[test]
fn nmap_names_the_farm_as_it_names_samba() {
    let Some((dir, _cleanup, _bed)) = bed("testbed-version", "smbd") else {
        return;
    };
    let script = root().join("scripts/samba-honeypot.sh");
    let start = |name: &str, addr: &str, port: u16| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", FARM, "bash"])
            .arg(&script)
            .arg(dir.join(name))
            .args([addr, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let h = Honeypot(cmd.spawn().unwrap());
        let ready = dir.join(name).join("ready");
        assert!(eventually(60, || ready.exists()), "{name} did not start");
        h
    };
    // The real honeypot, named directly (on the farm host's own address).
    let reference = {
        let _a = start("ref445", "192.0.2.2", 445);
        let _b = start("ref139", "192.0.2.2", 139);
        nmap_versions("203.0.113.16", &["192.0.2.2"])
    };
    assert_eq!(reference.len(), 1, "{reference:?}");
    let reference = &reference[0];
    assert!(reference["445"].contains("Samba smbd"), "{reference:?}");
    // The farm, with that honeypot behind it.
    let command = format!(
        r#"["{}", "{{dir}}", "{{address}}", "{{port}}"]"#,
        script.display()
    );
    let cfg = config_with(
        &dir,
        "farm.toml",
        &format!(
            "[[listen]]\nprefix = \"{PREFIX}\"\nports = [445, 139]\nservice = \"smb\"\n\
             [filter]\nn = 4\n\
             [honeypots]\nservices = [\"smb\"]\nbackend = \"process\"\ncommand = {command}\n\
             addresses = [\"127.0.0.5:4455\", \"127.0.0.6:4455\", \"127.0.0.7:4455\", \
             \"127.0.0.8:4455\"]\npool = 4\n\
             work_dir = \"{}/honeypots\"\nready_file = \"{{dir}}/ready\"\nready_timeout_secs = 60\n",
            dir.display()
        ),
    );
    let (mut farm, log) = Farm::start(&dir, &cfg);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    // The pool starts its honeypots one after another: four Samba starts on a loaded machine.
    assert!(
        eventually(120, || text().contains("honeypot pool warm")),
        "{}",
        text()
    );
    let started = Instant::now();
    let farm_names = nmap_versions("203.0.113.16", &["198.18.0.60", "198.18.0.61"]);
    eprintln!(
        "nmap -sV of the farm: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(farm_names.len(), 2, "{farm_names:?}\n{}", text());
    for names in &farm_names {
        assert_eq!(names, reference, "{}", text());
    }
    farm.stop();
    // nmap's probes are not in the script: the honeypot answered them, through the farm.
    let c = rusqlite::Connection::open(dir.join("events.sqlite")).unwrap();
    let bridged: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM connections WHERE outcome = 'bridged'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(bridged >= 4, "{bridged} bridged\n{}", text());
}

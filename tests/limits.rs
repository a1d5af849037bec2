//! The farm's intake against a real `honeyfarm run` on loopback (issue 9, items 1 and 2):
//! connections past the global and the per-source cap are reset at once and counted, another
//! source is still served, and with the process's descriptors exhausted the accept loop backs
//! off quietly (few log lines, little CPU) and serves a scripted session once the flood ends.
//! Run under the shared lock: `flock /tmp/honeyfarm-peer-tests.lock cargo test --test limits`.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{read_frame, script_messages};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The script the default configuration ships (enumdomusers, 15 client messages).
fn shipped_script() -> PathBuf {
    root().join("protocols/scripts/samba-enumdomusers.json")
}

/// A farm process with no honeypots, its log and store in a directory of its own; killed (by
/// its pid) if a test fails before stopping it.
struct Farm {
    child: Child,
    /// Stops what the farm left; declared after `child`, so dropped after it is killed.
    _cleanup: common::dirs::Cleanup,
    log: PathBuf,
    db: PathBuf,
}

impl Farm {
    /// Starts `honeyfarm run` on `listen` with these `[limits]` lines, under an open-file limit
    /// of `nofile` if given; returns once it is listening.
    fn start(name: &str, listen: &str, limits: &str, nofile: Option<u32>) -> Farm {
        let (dir, cleanup) = common::dirs::test_dir(&format!("honeyfarm-limits-{name}"));
        std::fs::create_dir_all(dir.join("scripts")).unwrap();
        std::fs::copy(shipped_script(), dir.join("scripts/enumdomusers.json")).unwrap();
        let config = dir.join("farm.toml");
        std::fs::write(
            &config,
            format!(
                "[events]\npath = \"{d}/events.sqlite\"\n[scripts]\ndirs = [\"{d}/scripts\"]\n\
                 [[listen]]\naddress = \"{listen}\"\nservice = \"smb\"\n[limits]\n{limits}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let log = dir.join("farm.log");
        let bin = env!("CARGO_BIN_EXE_honeyfarm");
        let mut cmd = match nofile {
            // prlimit sets the limit on itself and execs the farm: the pid is the farm's.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the farm starts");
        let farm = Farm {
            child,
            _cleanup: cleanup,
            log,
            db: dir.join("events.sqlite"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !farm.log().contains("stop with Ctrl-C") {
            assert!(
                Instant::now() < deadline,
                "the farm did not start:\n{}",
                farm.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        farm
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then its exit status.
    fn stop(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(Instant::now() < deadline, "did not stop within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls a query of the event store until `done` accepts its answer (or 30 s pass).
    fn wait_store<T: std::fmt::Debug + rusqlite::types::FromSql>(
        &self,
        query: &str,
        done: impl Fn(&T) -> bool,
        what: &str,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = rusqlite::Connection::open(&self.db)
                .and_then(|c| c.query_row(query, [], |r| r.get::<_, T>(0)));
            if let Ok(v) = &got {
                if done(v) {
                    return got.unwrap();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {got:?}\nfarm log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for `n` connections in the store (each admitted connection's row is written when
    /// its session starts).
    fn wait_connections(&self, n: i64) {
        self.wait_store::<i64>(
            "SELECT COUNT(*) FROM connections",
            |c| *c == n,
            &format!("waiting for {n} connections"),
        );
    }

    /// Totals of the `intake` table: `(accepted, refused_global, refused_source, accept_errors)`.
    fn intake(&self) -> (i64, i64, i64, i64) {
        rusqlite::Connection::open(&self.db)
            .unwrap()
            .query_row(
                "SELECT COALESCE(SUM(accepted), 0), COALESCE(SUM(refused_global), 0), \
                 COALESCE(SUM(refused_source), 0), COALESCE(SUM(accept_errors), 0) FROM intake",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
    }

    fn events(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
            .args(["events", "--db"])
            .arg(&self.db)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Connects from `source` (any loopback address) to `to`.
fn try_connect(source: IpAddr, to: &str) -> std::io::Result<TcpStream> {
    let to: SocketAddr = to.parse().unwrap();
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(source, 0).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

fn connect_from(source: IpAddr, to: &str) -> TcpStream {
    try_connect(source, to).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Asserts the farm resets a connection from `source` at once: the connection fails with
/// ECONNRESET (already while connecting, or at its first read) within 2 s.
fn assert_reset(source: IpAddr, to: &str) {
    let t = Instant::now();
    let r = try_connect(source, to).and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.read(&mut [0u8; 16])
    });
    assert!(
        matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "expected a reset, got {r:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "reset after {:?}",
        t.elapsed()
    );
}

/// Plays the shipped script's client side from `source`, checks that every reply is a whole
/// NetBIOS message of the recorded reply's length, and waits for the farm to record the
/// connection as scripted.
fn scripted_session(farm: &Farm, source: IpAddr, to: &str) {
    let client = script_messages(&shipped_script(), "client");
    let server = script_messages(&shipped_script(), "server");
    assert_eq!(client.len(), 15);
    let mut s = connect_from(source, to);
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let me = s.local_addr().unwrap();
    for (i, (request, recorded)) in client.iter().zip(&server).enumerate() {
        s.write_all(request).unwrap();
        let body = read_frame(&mut s);
        assert_eq!(body.len() + 4, recorded.len(), "reply {i}");
        assert_eq!(&body[..4], b"\xffSMB", "reply {i}");
    }
    drop(s);
    farm.wait_store::<String>(
        &format!("SELECT COALESCE(outcome, 'open') FROM connections WHERE attacker = '{me}'"),
        |o| o != "open",
        "the scripted session's outcome",
    );
    let outcome: String = rusqlite::Connection::open(&farm.db)
        .unwrap()
        .query_row(
            &format!("SELECT outcome FROM connections WHERE attacker = '{me}'"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(outcome, "scripted", "farm log:\n{}", farm.log());
}

/// Waits until the store's intake totals satisfy `done` (a report interval is 1 s here).
fn wait_intake(farm: &Farm, done: impl Fn((i64, i64, i64, i64)) -> bool) -> (i64, i64, i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let t = farm.intake();
        if done(t) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "intake totals {t:?}\nfarm log:\n{}",
            farm.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn past_the_global_cap_connections_are_reset_at_once_and_counted() {
    let listen = "127.0.0.90:4490";
    let farm = Farm::start(
        "global",
        listen,
        "max_connections = 5\nmax_per_source = 100\nreport_interval_secs = 1",
        None,
    );
    let client = ip("127.0.0.1");
    let mut held: Vec<TcpStream> = (0..5).map(|_| connect_from(client, listen)).collect();
    farm.wait_connections(5);
    for _ in 0..10 {
        assert_reset(client, listen);
    }
    // Refused connections never reach a session: no row, and no log line of their own.
    let totals = wait_intake(&farm, |t| t.1 == 10);
    assert_eq!(totals, (5, 10, 0, 0));
    farm.wait_connections(5);
    let log = farm.log();
    assert!(log.contains("over max_connections"), "{log}");
    assert!(log.lines().count() < 30, "{log}");
    assert!(
        farm.events().contains("5 accepted, 10 refused over max_connections, 0 refused over max_per_source, 0 accept errors, at most 5 at once"),
        "{}",
        farm.events()
    );
    // A place that frees up is taken again.
    held.pop();
    farm.wait_store::<i64>(
        "SELECT COUNT(*) FROM connections WHERE outcome IS NOT NULL",
        |n| *n == 1,
        "the dropped connection's outcome",
    );
    scripted_session(&farm, client, listen);
    drop(held);
    assert!(farm.stop().success());
}

#[test]
fn past_the_per_source_cap_one_source_is_reset_and_another_is_served() {
    let listen = "127.0.0.91:4491";
    let farm = Farm::start(
        "source",
        listen,
        "max_connections = 100\nmax_per_source = 3\nreport_interval_secs = 1",
        None,
    );
    let flooder = ip("127.0.0.93");
    let _held: Vec<TcpStream> = (0..3).map(|_| connect_from(flooder, listen)).collect();
    farm.wait_connections(3);
    for _ in 0..4 {
        assert_reset(flooder, listen);
    }
    scripted_session(&farm, ip("127.0.0.94"), listen);
    let totals = wait_intake(&farm, |t| t.2 == 4 && t.0 == 4);
    assert_eq!(totals, (4, 0, 4, 0));
    assert!(
        farm.log()
            .contains("0 over max_connections, 4 over max_per_source"),
        "{}",
        farm.log()
    );
    assert!(farm.stop().success());
}

/// `(utime + stime)` of a process, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn with_descriptors_exhausted_accepts_back_off_quietly_and_the_farm_recovers() {
    let listen = "127.0.0.92:4492";
    let farm = Farm::start(
        "fds",
        listen,
        "max_connections = 4096\nmax_per_source = 4096\nreport_interval_secs = 1",
        Some(48),
    );
    let client = ip("127.0.0.1");
    // Far more connections than the farm has descriptors: the kernel queues the rest.
    let flood: Vec<TcpStream> = (0..200).map(|_| connect_from(client, listen)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !farm.log().contains("accept on") {
        assert!(
            Instant::now() < deadline,
            "no accept error:\n{}",
            farm.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let hz = clock_ticks_per_second();
    let before = cpu_ticks(farm.pid());
    let window = Duration::from_secs(4);
    std::thread::sleep(window);
    let used = (cpu_ticks(farm.pid()) - before) as f64 / hz as f64 / window.as_secs_f64();
    eprintln!("farm CPU during the flood: {:.3} of a core", used);
    assert!(
        used < 0.2,
        "the farm used {used:.2} of a core\n{}",
        farm.log()
    );
    drop(flood);
    // The queue drains (the clients are gone) and a fresh session is served from the script.
    scripted_session(&farm, client, listen);
    let log = farm.log();
    assert!(log.contains("Too many open files"), "{log}");
    assert!(log.contains("accept errors"), "{log}");
    let lines = log.lines().count();
    eprintln!("farm log: {lines} lines, {} bytes", log.len());
    assert!(lines < 60, "{lines} log lines:\n{log}");
    assert!(farm.stop().success());
}

/// One scrape of the farm's metrics endpoint.
fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn the_scan_filter_resets_a_sources_next_address_and_the_metrics_and_store_agree() {
    let (a, b) = ("127.0.0.111:4496", "127.0.0.112:4496");
    let metrics = "127.0.0.111:9464";
    let farm = Farm::start(
        "filter",
        a,
        &format!(
            "report_interval_secs = 1\n[filter]\nn = 1\n[metrics]\nlisten = \"{metrics}\"\n\
             [[listen]]\naddress = \"{b}\"\nservice = \"smb\""
        ),
        None,
    );
    let scanner = ip("127.0.0.113");
    scripted_session(&farm, scanner, a);
    // Its second telescope address: past n = 1.
    assert_reset(scanner, b);
    // Its follow-up to the admitted address, and another source, are served.
    scripted_session(&farm, scanner, a);
    scripted_session(&farm, ip("127.0.0.114"), b);
    let want = [
        ("honeyfarm_filter_decisions_total{decision=\"admit\"}", 2.0),
        (
            "honeyfarm_filter_decisions_total{decision=\"follow_up\"}",
            1.0,
        ),
        (
            "honeyfarm_filter_decisions_total{decision=\"filtered\"}",
            1.0,
        ),
        ("honeyfarm_connections_total{outcome=\"filtered\"}", 1.0),
        ("honeyfarm_connections_total{outcome=\"scripted\"}", 3.0),
        ("honeyfarm_filter_sources_tracked", 2.0),
    ];
    // An outcome is counted just after the store has it: allow the scrape a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = scrape(metrics);
        let got: Vec<Option<f64>> = want
            .iter()
            .map(|(s, _)| honeyfarm_runtime::farm::sample(&text, s))
            .collect();
        if got.iter().zip(&want).all(|(g, w)| *g == Some(w.1)) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (series, v) in want {
        assert_eq!(
            honeyfarm_runtime::farm::sample(&text, series),
            Some(v),
            "{series} in\n{text}"
        );
    }
    // The store has a row for each answered connection, none for the filtered one, and the
    // decisions per source and interval.
    farm.wait_connections(3);
    let db = farm.db.clone();
    assert!(farm.stop().success());
    let per_source: Vec<(String, i64, i64, i64)> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare(
            "SELECT source, SUM(admitted), SUM(follow_ups), SUM(filtered) FROM filter \
             GROUP BY source ORDER BY source",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        per_source,
        [
            ("127.0.0.113".to_string(), 1, 1, 1),
            ("127.0.0.114".to_string(), 1, 0, 0)
        ]
    );
}

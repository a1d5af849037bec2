//! The farm under load, floods and bad input (issue 9, item 7), through `honeyfarm bench`
//! with small counts. Every case starts its own farm on a free loopback port and asserts that
//! the farm stays alive, serves a fresh scripted session and never panics; slowloris
//! connections are ended by the message deadline, a full fd table neither spins nor floods the
//! log; trickled large messages are refused from their header and hold no memory.
//!
//! Run under the shared lock: `flock /tmp/honeyfarm-peer-tests.lock cargo test --test load`.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("protocols/scripts/samba-enumdomusers.json")
}

/// `honeyfarm bench ARGS --script SCRIPT`: its standard output, once it succeeded.
fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .arg("bench")
        .args(args)
        .arg("--script")
        .arg(script())
        .output()
        .expect("honeyfarm runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs one flood case and checks what every case must leave: a live farm that served a
/// fresh scripted session and never panicked. Returns the case's figures.
fn flood(case: &str, args: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let mut all = vec!["flood", case, "--json"];
    all.extend_from_slice(args);
    let out = bench(&all);
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON report");
    eprintln!("{case}: {report}");
    assert_eq!(report["alive"], true, "{report}");
    assert_eq!(report["fresh_session"], true, "{report}");
    assert_eq!(report["panics"], 0, "{report}");
    report["figures"].as_object().expect("figures").clone()
}

fn figure(f: &serde_json::Map<String, serde_json::Value>, name: &str) -> f64 {
    f.get(name).and_then(|v| v.as_f64()).unwrap_or(0.0)
}

#[test]
fn the_bench_measures_the_farm_against_the_baseline() {
    let out = bench(&["--concurrency", "1,4", "--seconds", "1", "--rounds", "1"]);
    for c in [1, 4] {
        assert!(
            out.contains(&format!("concurrency {c}: farm/baseline ")),
            "{out}"
        );
    }
    // Both servers complete sessions, and no session fails: every reply arrived with the
    // recorded length, SMB command and status.
    for server in ["farm", "baseline"] {
        let rows: Vec<&str> = out
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{server} ")))
            .collect();
        assert_eq!(rows.len(), 2, "{out}");
        for row in rows {
            let cols: Vec<&str> = row.split_whitespace().collect();
            assert!(cols[1].parse::<u64>().unwrap() > 0, "{row}");
            assert_eq!(cols[2], "0", "{row}");
        }
    }
    assert!(!out.contains("failures:"), "{out}");
    assert!(out.contains("bytes per scripted session"), "{out}");
}

#[test]
fn idle_connections_are_held_and_the_farm_serves_afterwards() {
    let out = bench(&["idle", "--connections", "300", "--settle", "0.5"]);
    assert!(out.contains("300 connections held (0 failed"), "{out}");
    assert!(out.contains("bytes per idle connection"), "{out}");
    assert!(out.contains("a fresh scripted session served"), "{out}");
}

#[test]
fn connect_and_close() {
    let f = flood("connect-close", &["--connect-close", "2000"]);
    assert_eq!(figure(&f, "connected and closed"), 2000.0, "{f:?}");
}

#[test]
fn random_bytes_are_closed() {
    let f = flood("random", &["--random", "1000"]);
    // Whatever it makes of them, the farm ends every such connection once the sender stops.
    assert_eq!(figure(&f, "still open"), 0.0, "{f:?}");
    assert_eq!(figure(&f, "connect failed"), 0.0, "{f:?}");
}

#[test]
fn mutated_client_messages() {
    let f = flood("mutated", &["--mutated", "300", "--concurrency", "16"]);
    // The script's messages before the mutated one were always answered.
    assert_eq!(figure(&f, "the script's prefix failed"), 0.0, "{f:?}");
    assert_eq!(figure(&f, "still open"), 0.0, "{f:?}");
}

#[test]
fn slowloris() {
    let f = flood(
        "slowloris",
        &[
            "--slowloris",
            "50",
            "--idle-timeout",
            "2",
            "--slowloris-interval",
            "1",
        ],
    );
    assert_eq!(figure(&f, "connect_failed"), 0.0, "{f:?}");
    // One byte a second keeps under the idle timeout; the message deadline (set to it) ends
    // every one of them within the hold.
    eprintln!(
        "slowloris: {} of 50 survived {} s with a {} s idle timeout and message deadline",
        figure(&f, "survived"),
        figure(&f, "held_s"),
        figure(&f, "idle_timeout_s")
    );
    assert_eq!(figure(&f, "survived"), 0.0, "{f:?}");
}

#[test]
fn trickled_large_messages() {
    let f = flood("trickle", &["--trickle", "20"]);
    assert_eq!(figure(&f, "connect_failed"), 0.0, "{f:?}");
    // The NetBIOS framing's limit (0x20003 bytes with the header) refuses them from the header:
    // nothing is gathered (the first message is then waited out, as Samba does with a probe
    // that is not SMB, until the idle timeout or the message deadline).
    eprintln!(
        "trickle: 20 unfinished 1 MiB messages, farm RSS {} MB -> {} MB ({} KB each), {} closed by the farm",
        figure(&f, "rss_before_mb"),
        figure(&f, "rss_held_mb"),
        figure(&f, "rss_per_connection_kb"),
        figure(&f, "closed_by_farm")
    );
    assert!(figure(&f, "rss_per_connection_kb") < 128.0, "{f:?}");
}

#[test]
fn fd_exhaustion() {
    let f = flood(
        "fd-exhaustion",
        &[
            "--fd-limit",
            "128",
            "--fd-connections",
            "200",
            "--fd-seconds",
            "3",
        ],
    );
    // One log line per interval at most, and an accept loop that backs off instead of spinning.
    eprintln!(
        "fd exhaustion: {} bytes of stderr and {}% CPU in {} s, fresh session while full: {}",
        figure(&f, "stderr_bytes_held"),
        figure(&f, "cpu_percent_held"),
        figure(&f, "held_s"),
        figure(&f, "fresh_session_while_held")
    );
    assert!(figure(&f, "stderr_bytes_held") < 16384.0, "{f:?}");
    assert!(figure(&f, "cpu_percent_held") < 50.0, "{f:?}");
}

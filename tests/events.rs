//! The event store (issue 9, items 3 and 4): messages off the script kept whole after the
//! compact prefix, the bounded queue's drops counted, old stores migrated, and `kill -9` under
//! load. Sizes and costs: `tests/events_bench.rs`.

mod store;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::OptionalExtension;

use honeyfarm_runtime::farm::{
    stored_messages, EventStore, MessageEvent, Outcome, Source, StoreOptions, INTERRUPTED,
};
use store::{replay, replay_events, script, session, temp};

#[test]
fn messages_off_the_script_are_rows_after_the_compact_prefix() {
    let dir = temp("deviate");
    let db = dir.join("events.sqlite");
    let s = script();
    let recorded = session(&s, 77);
    let store = EventStore::open(&db).unwrap();
    let id = store.connection(
        "198.51.100.1:1".parse().unwrap(),
        "192.0.2.7:445".parse().unwrap(),
        "smb",
    );
    store.script(id, &s);
    let mut sent = recorded[..6].to_vec();
    // The attacker's next message deviates, is relayed, and the honeypot answers.
    sent.push(MessageEvent {
        followed: false,
        ..recorded[6].clone()
    });
    sent.push(MessageEvent {
        source: Source::Relayed,
        followed: false,
        ..recorded[7].clone()
    });
    for m in &sent {
        store.message(MessageEvent {
            connection: id,
            ..m.clone()
        });
    }
    store.end(id, Outcome::Bridged { deviated_at: 3 }, "deviated");
    store.close();
    let c = rusqlite::Connection::open(&db).unwrap();
    let got = stored_messages(&c, id).unwrap();
    let rows: i64 = c
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
    assert_eq!(got.len(), sent.len());
    for (g, m) in got.iter().zip(&sent) {
        assert_eq!(
            (&g.kind, &g.roles, g.length, g.source.as_str()),
            (&m.kind, &m.roles, m.length, m.source.name())
        );
        assert_eq!(g.time.is_some(), !m.followed);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_queue_drops_messages_and_counts_them() {
    let dir = temp("queue");
    let db = dir.join("events.sqlite");
    let s = script();
    let recorded = session(&s, 5);
    let store = EventStore::open_with(
        &db,
        StoreOptions {
            queue: 8,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    let ids: Vec<i64> = (0..200).map(|i| replay(&store, &s, &recorded, i)).collect();
    // Never waits on the writer.
    assert!(started.elapsed() < Duration::from_secs(5));
    let dropped = store.dropped();
    store.close();
    assert!(dropped > 0);
    let c = rusqlite::Connection::open(&db).unwrap();
    let counted: i64 = c
        .query_row(
            "SELECT COALESCE(SUM(count), 0) FROM dropped_events",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counted as u64, dropped);
    let rows: i64 = c
        .query_row("SELECT COUNT(*) FROM connections", [], |r| r.get(0))
        .unwrap();
    eprintln!(
        "queue of 8: {} sessions, {dropped} events dropped, {rows} connection rows",
        ids.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_version_1_store_is_migrated_and_another_refused() {
    let dir = temp("migrate");
    let db = dir.join("v1.sqlite");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE connections (id INTEGER PRIMARY KEY, started REAL NOT NULL, ended REAL, attacker TEXT NOT NULL, telescope TEXT NOT NULL, service TEXT NOT NULL, script TEXT, outcome TEXT, deviated_at INTEGER, honeypot TEXT, first_reply_ms REAL, handoff_ms REAL, detail TEXT);
             CREATE TABLE messages (id INTEGER PRIMARY KEY, connection INTEGER NOT NULL REFERENCES connections(id), time REAL NOT NULL, direction TEXT NOT NULL, kind TEXT NOT NULL, length INTEGER NOT NULL, source TEXT NOT NULL, roles TEXT NOT NULL);
             CREATE TABLE artifacts (sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, first_seen REAL NOT NULL, content BLOB NOT NULL);
             CREATE TABLE artifact_sightings (artifact TEXT NOT NULL REFERENCES artifacts(sha256), connection INTEGER NOT NULL REFERENCES connections(id), name TEXT NOT NULL);
             INSERT INTO connections VALUES (1, 1.0, 2.0, 'a', 't', 'smb', 's', 'scripted', NULL, NULL, 1.0, NULL, '');
             INSERT INTO messages VALUES (1, 1, 1.5, 'to_server', 'Smb1.Empty', 39, 'attacker', 'x@cookie=1');
             INSERT INTO connections VALUES (2, 3.0, NULL, 'a', 't', 'smb', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = EventStore::open(&db).unwrap();
    let id = replay(&store, &script(), &session(&script(), 9), 0);
    store.close();
    assert_eq!(id, 3);
    let c = rusqlite::Connection::open(&db).unwrap();
    assert_eq!(stored_messages(&c, 1).unwrap()[0].roles, ["x@cookie=1"]);
    assert_eq!(stored_messages(&c, 3).unwrap().len(), 30);
    let (outcome, detail): (String, String) = c
        .query_row(
            "SELECT outcome, detail FROM connections WHERE id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(outcome, INTERRUPTED);
    assert!(detail.contains("restart"), "{detail}");
    c.pragma_update(None, "user_version", 7).unwrap();
    drop(c);
    let e = EventStore::open(&db)
        .err()
        .expect("version 7 is refused")
        .to_string();
    assert!(e.contains("schema version 7"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child of [`kill_9_loses_no_session_older_than_the_flush_interval`]: scripted sessions
/// through the store at a steady rate until killed, printing `ended ID T` once `end` returned
/// and `taken ID T` once the store's writer has taken the session's last event off its queue
/// (T: unix time in ns). The queue never makes a session wait: the writer, ahead of the
/// sessions in priority, keeps it short, and `taken` shows how far behind it ran.
#[test]
#[ignore = "run by kill_9_loses_no_session_older_than_the_flush_interval"]
fn store_under_kill_child() {
    let Ok(db) = std::env::var("HONEYFARM_KILL_CHILD_DB") else {
        return;
    };
    let s = script();
    let recorded: Vec<_> = (0..8).map(|k| session(&s, 100 + k)).collect();
    let store = EventStore::open(Path::new(&db)).unwrap();
    // Events queued so far, and each session not yet taken with the count its end brought.
    let mut sent = 0usize;
    let mut untaken = VecDeque::new();
    let taken = |sent: usize, untaken: &mut VecDeque<(i64, usize)>| {
        let writer_took = sent - store.queued();
        while untaken
            .front()
            .is_some_and(|&(_, upto)| upto <= writer_took)
        {
            let (id, _) = untaken.pop_front().unwrap();
            println!("taken {id} {}", unix_ns());
        }
    };
    let start = Instant::now();
    // 500 sessions/s (15,500 events/s), what the farm serves today at its best (issue 9), from
    // a debug build on shared cores; bounded to 30 s.
    for i in 0..15_000u32 {
        let due = Duration::from_millis(2 * u64::from(i));
        while let Some(wait) = due.checked_sub(start.elapsed()) {
            taken(sent, &mut untaken);
            std::thread::sleep(wait.min(Duration::from_micros(500)));
        }
        let messages = &recorded[i as usize % recorded.len()];
        let id = replay(&store, &s, messages, i);
        sent += replay_events(messages);
        untaken.push_back((id, sent));
        println!("ended {id} {}", unix_ns());
    }
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A `kill -9` of a process writing 500 sessions/s: what the store has is every session up to
/// some point (a prefix: batches are committed whole and in order), missing none that ended
/// more than 50 ms (five flush intervals) before the kill; the restart marks the open rows
/// interrupted. How many of the lost sessions were still queued for the writer is printed.
#[test]
fn kill_9_loses_no_session_older_than_the_flush_interval() {
    let exe = std::env::current_exe().unwrap();
    for run in 0..5u64 {
        let dir = temp(&format!("kill{run}"));
        let db = dir.join("events.sqlite");
        let mut child = Command::new(&exe)
            .args([
                "store_under_kill_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HONEYFARM_KILL_CHILD_DB", &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // libtest may print `test name ... ` before the first line.
            for l in out.lines().map_while(Result::ok) {
                let mut w = l.rsplit(' ');
                let (Some(t), Some(id), Some(what)) = (w.next(), w.next(), w.next()) else {
                    continue;
                };
                if let (Ok(id), Ok(t)) = (id.parse::<i64>(), t.parse::<u128>()) {
                    let _ = tx.send((what == "taken", id, t));
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the child writes sessions");
        std::thread::sleep(Duration::from_millis(300 + 100 * run));
        let killed = unix_ns();
        // SIGKILL.
        child.kill().unwrap();
        child.wait().unwrap();
        let (mut ended, mut taken) = (Vec::new(), HashMap::new());
        for (was_taken, id, t) in std::iter::once(first).chain(rx.iter()) {
            if was_taken {
                taken.insert(id, t);
            } else {
                ended.push((id, t));
            }
        }
        let journal = dir.join("events.sqlite-journal").exists();
        let wal = dir.join("events.sqlite-wal").exists();
        let c = rusqlite::Connection::open(&db).unwrap();
        // No row, or no outcome yet.
        let outcome = |id: i64| -> Option<String> {
            c.query_row("SELECT outcome FROM connections WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .unwrap()
            .flatten()
        };
        let (lacking, stored): (Vec<_>, Vec<_>) = ended
            .iter()
            .copied()
            .partition(|(id, _)| outcome(*id).is_none());
        let last_stored = stored.iter().map(|(id, _)| *id).max().unwrap_or(0);
        let ms_before_kill = |t: u128| killed.saturating_sub(t) as f64 / 1e6;
        let old_lacking: Vec<_> = lacking
            .iter()
            .map(|(id, t)| (id, ms_before_kill(*t)))
            .filter(|(_, ms)| *ms > 50.0)
            .collect();
        let open: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM connections WHERE outcome IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        drop(c);
        // The farm restarts.
        EventStore::open(&db).unwrap().close();
        let c = rusqlite::Connection::open(&db).unwrap();
        let (interrupted, nulls): (i64, i64) = c
            .query_row(
                "SELECT SUM(outcome = ?1), SUM(outcome IS NULL) FROM connections",
                [INTERRUPTED],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        eprintln!(
            "kill -9 run {run}: {} sessions ended, {} of them without an outcome (the oldest ended {:.1} ms before the kill; {} still queued for the writer), {} ended more than 50 ms before; {open} rows open -> {interrupted} interrupted after the restart; -journal {journal}, -wal {wal}",
            ended.len(),
            lacking.len(),
            lacking.iter().map(|(_, t)| ms_before_kill(*t)).fold(f64::NAN, f64::max),
            ended.iter().filter(|(id, _)| !taken.contains_key(id)).count(),
            old_lacking.len(),
        );
        assert!(
            ended.len() > 100,
            "the child ended only {} sessions",
            ended.len()
        );
        assert!(
            lacking.iter().all(|(id, _)| *id > last_stored),
            "not a prefix: {lacking:?} lacking, {last_stored} stored"
        );
        assert!(old_lacking.is_empty(), "{old_lacking:?}");
        assert!(!journal);
        assert_eq!(nulls, 0);
        assert_eq!(interrupted, open);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn honeyfarm_events_shows_a_scripted_session_with_its_own_values() {
    let dir = temp("cli");
    let db = dir.join("events.sqlite");
    let s = script();
    let recorded = session(&s, 0x0101);
    let store = EventStore::open(&db).unwrap();
    let id = replay(&store, &s, &recorded, 1);
    store.close();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
            .arg("events")
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = run(&[]);
    assert!(
        list.starts_with(&format!(
            "{id} 198.51.100.1:40001 -> 192.0.2.7:445 smb scripted"
        )),
        "{list}"
    );
    let one = run(&["--connection", &id.to_string()]);
    assert!(
        one.starts_with("script \"samba-enumdomusers.pcap stream 0\" sha256 "),
        "{one}"
    );
    // Every message, with the attacker's PIDs (the script's XOR 0x0101), not the script's.
    let arrows = one
        .lines()
        .filter(|l| l.starts_with("->") || l.starts_with("<-"))
        .count();
    assert_eq!(arrows, s.messages.len());
    for m in &recorded {
        for r in &m.roles {
            assert!(
                one.contains(&format!("     {r}\n")),
                "{r} missing from\n{one}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

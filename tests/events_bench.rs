//! What the event store costs per scripted session (issue 9, item 3 and 4): bytes of store and
//! CPU time of the writer thread, compact against a row per message (the layout before), in one
//! run. Alone in its binary, so that the one `event-store` thread is this bench's.

mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use honeyfarm_runtime::farm::{
    stored_messages, EventStore, MessageEvent, StoreOptions, StoredMessage,
};
use honeyfarm_runtime::replay::Script;
use store::{replay, script, session, size, temp};

/// Store bytes and writer time per scripted session, compact against one row per message.
fn measure(
    dir: &Path,
    compact: bool,
    recorded: &[Vec<MessageEvent>],
    s: &Arc<Script>,
) -> (f64, f64) {
    let db = dir.join(format!("store-{compact}.sqlite"));
    let options = StoreOptions {
        queue: 1 << 21,
        compact,
        ..StoreOptions::default()
    };
    // A first round creates the tables and stores the script: growth is measured after it.
    let store = EventStore::open_with(&db, options.clone()).unwrap();
    replay(&store, s, &recorded[0], 0);
    store.close();
    let before = size(&db);
    let n = 2_000u32;
    let store = EventStore::open_with(&db, options).unwrap();
    for i in 0..n {
        replay(&store, s, &recorded[i as usize % recorded.len()], i);
    }
    // The writer is done when its CPU time stops growing.
    let mut cpu = writer_cpu();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = writer_cpu();
        if now == cpu {
            break;
        }
        cpu = now;
    }
    store.close();
    assert_eq!(store.dropped(), 0);
    let grown = size(&db) - before;
    (
        grown as f64 / f64::from(n),
        cpu.as_secs_f64() * 1e6 / f64::from(n),
    )
}

/// Time the `event-store` thread spent on a CPU (`schedstat`, in nanoseconds).
fn writer_cpu() -> Duration {
    let mut ns = 0;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "event-store" {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split(' ')
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

#[test]
fn a_scripted_session_takes_at_most_2_kb_and_reads_back_whole() {
    let dir = temp("size");
    let s = script();
    let recorded: Vec<_> = (0..16).map(|k| session(&s, 4000 + k)).collect();
    assert_eq!(recorded[0].len(), s.messages.len());
    let (rows, rows_us) = measure(&dir, false, &recorded, &s);
    let (compact, compact_us) = measure(&dir, true, &recorded, &s);
    eprintln!(
        "store per scripted session ({} messages): a row per message {rows:.0} bytes, {rows_us:.1} us of writer CPU; compact {compact:.0} bytes ({:.3}x), {compact_us:.1} us ({:.3}x)",
        s.messages.len(),
        compact / rows,
        compact_us / rows_us
    );
    assert!(compact <= 2048.0, "{compact} bytes per session");

    // What was sent is what is read back, whichever way it was stored.
    let db = dir.join("store-true.sqlite");
    let c = rusqlite::Connection::open(&db).unwrap();
    let want = |k: usize| -> Vec<StoredMessage> {
        recorded[k]
            .iter()
            .map(|m| StoredMessage {
                to_server: m.to_server,
                source: m.source.name().to_string(),
                kind: m.kind.clone(),
                length: m.length,
                roles: m.roles.clone(),
                time: None,
            })
            .collect()
    };
    // Connection 2 is the first of the measured round: session 0.
    assert_eq!(stored_messages(&c, 2).unwrap(), want(0));
    assert_eq!(stored_messages(&c, 9).unwrap(), want(7));
    let rows: i64 = c
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

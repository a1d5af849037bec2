//! The writer thread: takes events from the bounded queue and writes them in transactions, one
//! committed at least every flush interval; keeps each connection's script-following messages
//! in memory as [`Differences`] until the connection ends or leaves its script.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::replay::{Script, Side};

use super::super::intake::IntakeCounts;
use super::super::throttle::Throttle;
use super::compact::Differences;
use super::farm_tables::{self, ContainmentRecord, LeaseRecord};
use super::{now, Column, Counters, FollowedEvent, MessageEvent, Outcome};

pub(super) enum Write {
    Start {
        id: i64,
        attacker: String,
        telescope: String,
        service: String,
        time: f64,
    },
    Script {
        id: i64,
        script: Arc<Script>,
    },
    Message(MessageEvent, f64),
    Followed(FollowedEvent, f64),
    /// One column of a connection, set once it is known.
    Set {
        id: i64,
        column: Column,
        value: rusqlite::types::Value,
    },
    End {
        id: i64,
        outcome: Outcome,
        detail: String,
        time: f64,
    },
    Artifact {
        connection: i64,
        name: String,
        content: Vec<u8>,
        time: f64,
    },
    /// A report interval of the intake.
    Intake(IntakeCounts),
    /// A honeypot lease that ended.
    Lease(LeaseRecord),
    /// A containment decision of a honeypot's namespace.
    Containment(ContainmentRecord),
    Close,
}

/// A script as the writer compares messages with it, stored once per store.
struct Stored {
    id: i64,
    /// The address of the `Arc<Script>` it was made from.
    key: usize,
    source: String,
    /// `(to_server, kind, length, role fields)` of each message.
    messages: Vec<(bool, String, usize, Vec<String>)>,
}

/// A connection still running.
#[derive(Default)]
struct Open {
    script: Option<Arc<Stored>>,
    /// Messages that followed the script so far.
    followed: usize,
    /// What differed in them, in [`Differences::encode`]'s form, appended to message by
    /// message: a few bytes, where the decoded list took a few hundred for as long as the
    /// connection stayed open. Its room is what it holds (see [`Open::append`]).
    differences: Vec<u8>,
    /// Since a message left the script (or with compaction off), messages are rows.
    rows: bool,
}

pub(super) struct Writer {
    db: Connection,
    /// Checkpoints the WAL on its own connection, off the writer's path (dropping it stops it).
    checkpointer: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
    counters: Arc<Counters>,
    flush: Duration,
    compact: bool,
    /// By the address of the `Arc<Script>` (kept alive here, so the address stays its own).
    scripts: HashMap<usize, (Arc<Script>, Arc<Stored>)>,
    open: HashMap<i64, Open>,
    /// Events dropped since the last warning, which one line per interval reports.
    overflow: (Throttle, u64),
    /// Store errors (a store that cannot open its files fails for every write): one line per
    /// interval.
    errors: Throttle,
    /// Where a message's differences are encoded before they join a connection's.
    scratch: Vec<u8>,
}

impl Open {
    /// Appends what `encode` writes to the differences, growing them by that alone: grown
    /// as a vector grows (doubling), up to half the blob stayed unused for as long as the
    /// connection stayed open. `scratch` is the writer's, reused from message to message.
    fn append(&mut self, scratch: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) {
        scratch.clear();
        encode(scratch);
        self.differences.reserve_exact(scratch.len());
        self.differences.extend_from_slice(scratch);
    }
}

impl Writer {
    pub(super) fn new(
        db: Connection,
        checkpointer: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
        counters: Arc<Counters>,
        flush: Duration,
        compact: bool,
    ) -> Self {
        Writer {
            db,
            checkpointer,
            counters,
            flush,
            compact,
            scripts: HashMap::new(),
            open: HashMap::new(),
            overflow: (Throttle::new(Duration::from_secs(10)), 0),
            errors: Throttle::new(Duration::from_secs(10)),
            scratch: Vec::new(),
        }
    }

    /// Runs until [`Write::Close`] or until every handle is gone: each batch starts at the first
    /// event that arrives and is committed `flush` later (at once on close). In between the
    /// writer sleeps and then takes what arrived at once, rather than waking for every event.
    pub(super) fn run(mut self, rx: Receiver<Write>) {
        run_ahead();
        let mut closing = false;
        // An event that arrived after the last batch's deadline starts the next batch.
        let mut carried = None;
        while !closing {
            let first = match carried.take() {
                Some(w) => w,
                None => match rx.recv() {
                    Ok(w) => w,
                    Err(_) => break,
                },
            };
            let deadline = Instant::now() + self.flush;
            // Without a transaction the batch's statements commit one by one: slower, but
            // nothing is lost.
            if let Err(e) = self.db.execute_batch("BEGIN") {
                self.failed(&e);
            }
            let mut next = Some(first);
            loop {
                while let Some(w) = next.take() {
                    self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                    if matches!(w, Write::Close) {
                        closing = true;
                        break;
                    }
                    if let Err(e) = self.apply(w) {
                        self.failed(&e);
                    }
                    match rx.try_recv() {
                        Ok(w) if Instant::now() >= deadline => carried = Some(w),
                        Ok(w) => next = Some(w),
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Disconnected) => closing = true,
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if closing || carried.is_some() || left.is_zero() {
                    break;
                }
                std::thread::sleep(left);
                match rx.try_recv() {
                    Ok(w) => next = Some(w),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => closing = true,
                }
            }
            if let Err(e) = self.dropped() {
                self.failed(&e);
            }
            self.commit();
        }
        if let Some((stop, handle)) = self.checkpointer.take() {
            drop(stop);
            let _ = handle.join();
        }
        // Everything in the main file: the -wal file is left empty.
        if let Err(e) = self.db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            self.failed(&e);
        }
    }

    /// Commits the batch. A commit that fails is rolled back, so that the next batch starts
    /// a transaction of its own instead of piling into one that never commits.
    fn commit(&mut self) {
        if self.db.is_autocommit() {
            return;
        }
        if let Err(e) = self.db.execute_batch("COMMIT") {
            self.failed(&e);
            if !self.db.is_autocommit() {
                if let Err(e) = self.db.execute_batch("ROLLBACK") {
                    self.failed(&e);
                }
            }
        }
    }

    /// Logs a store error, at most one line per interval.
    fn failed(&mut self, e: &rusqlite::Error) {
        if let Some(held) = self.errors.allow() {
            if held > 0 {
                tracing::error!("event store: {e} ({held} more since the last line)");
            } else {
                tracing::error!("event store: {e}");
            }
        }
    }

    /// Writes the count of events dropped since the last batch as a row.
    fn dropped(&mut self) -> rusqlite::Result<()> {
        let n = self.counters.dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.overflow.1 += n;
            if self.overflow.0.allow().is_some() {
                tracing::warn!(
                    "event store: the queue was full; {} events dropped (counted in dropped_events)",
                    std::mem::take(&mut self.overflow.1)
                );
            }
            self.db.execute(
                "INSERT INTO dropped_events (time, count) VALUES (?1, ?2)",
                params![now(), n as i64],
            )?;
        }
        Ok(())
    }

    fn apply(&mut self, w: Write) -> rusqlite::Result<()> {
        match w {
            Write::Close => {}
            Write::Start {
                id,
                attacker,
                telescope,
                service,
                time,
            } => {
                self.open.insert(
                    id,
                    Open {
                        rows: !self.compact,
                        ..Open::default()
                    },
                );
                self.db
                    .prepare_cached("INSERT INTO connections (id, started, attacker, telescope, service) VALUES (?1, ?2, ?3, ?4, ?5)")?
                    .execute(params![id, time, attacker, telescope, service])?;
            }
            Write::Script { id, script } => {
                // Written with the connection's end, or when it leaves the script.
                let stored = self.stored(script)?;
                if let Some(o) = self.open.get_mut(&id) {
                    o.script = Some(stored);
                }
            }
            Write::Message(m, time) => self.message(m, time)?,
            Write::Followed(f, time) => self.followed_message(f, time)?,
            Write::Set { id, column, value } => {
                self.db
                    .prepare_cached(column.update())?
                    .execute(params![id, value])?;
            }
            Write::End {
                id,
                outcome,
                detail,
                time,
            } => {
                let o = self.open.remove(&id).unwrap_or_default();
                let script = o.script.as_ref().filter(|_| !o.rows);
                // COALESCE: what a connection that left its script wrote then stays.
                self.db
                    .prepare_cached(
                        "UPDATE connections SET ended = ?2, outcome = ?3, deviated_at = ?4, detail = ?5, \
                         script = COALESCE(?6, script), script_id = COALESCE(?7, script_id), \
                         followed = COALESCE(?8, followed), differences = COALESCE(?9, differences) \
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        id,
                        time,
                        outcome.name(),
                        outcome.deviated_at(),
                        detail,
                        script.map(|s| &s.source),
                        script.map(|s| s.id),
                        script.map(|_| o.followed as i64),
                        script.map(|_| &o.differences),
                    ])?;
            }
            Write::Intake(c) => {
                self.db
                    .prepare_cached("INSERT INTO intake (since, until, accepted, refused_global, refused_source, accept_errors, peak_open) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
                    .execute(params![
                        c.since,
                        c.until,
                        c.accepted as i64,
                        c.refused_global as i64,
                        c.refused_source as i64,
                        c.accept_errors as i64,
                        c.peak_open as i64
                    ])?;
                farm_tables::insert_filter(&self.db, &c)?;
            }
            Write::Lease(r) => farm_tables::insert_lease(&self.db, &r)?,
            Write::Containment(r) => farm_tables::insert_containment(&self.db, &r)?,
            Write::Artifact {
                connection,
                name,
                content,
                time,
            } => {
                let sha = hex(&Sha256::digest(&content));
                self.db
                    .prepare_cached("INSERT OR IGNORE INTO artifacts (sha256, size, first_seen, content) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![sha, content.len() as i64, time, content])?;
                self.db
                    .prepare_cached("INSERT INTO artifact_sightings (artifact, connection, name) VALUES (?1, ?2, ?3)")?
                    .execute(params![sha, connection, name])?;
            }
        }
        Ok(())
    }

    /// A message that followed the script at the next index is kept as its differences; any
    /// other (and every later one) becomes a row.
    fn message(&mut self, m: MessageEvent, time: f64) -> rusqlite::Result<()> {
        let Some(o) = self.open.get_mut(&m.connection) else {
            return insert_row(&self.db, &m, time);
        };
        if !o.rows && m.followed {
            let at = o.followed;
            if let Some((to_server, kind, length, roles)) =
                o.script.as_ref().and_then(|s| s.messages.get(at))
            {
                if *to_server == m.to_server && *kind == m.kind {
                    let mut d = Differences::default();
                    d.record(at, (m.length, &m.roles), (*length, roles));
                    o.append(&mut self.scratch, |out| d.encode_into(out));
                    o.followed += 1;
                    return Ok(());
                }
            }
        }
        if !o.rows {
            o.rows = true;
            let id = m.connection;
            let o = self.open.get(&id).expect("looked up above");
            self.followed(id, o)?;
        }
        insert_row(&self.db, &m, time)
    }

    /// A message the session compared with the script itself: its differences are kept as
    /// they are when it is the next message of the connection's script; otherwise it is made
    /// whole and taken as [`Writer::message`] takes any.
    fn followed_message(&mut self, f: FollowedEvent, time: f64) -> rusqlite::Result<()> {
        if let Some(o) = self.open.get_mut(&f.connection) {
            let next = o.script.as_ref().and_then(|s| s.messages.get(o.followed));
            let key = Arc::as_ptr(&f.script) as usize;
            let same_script = o.script.as_ref().is_some_and(|s| s.key == key);
            let to_server = f
                .script
                .messages
                .get(f.index)
                .map(|m| m.side == Side::Client);
            if !o.rows && same_script && o.followed == f.index && next.map(|m| m.0) == to_server {
                o.append(&mut self.scratch, |out| {
                    for d in &f.differences {
                        d.encode_into(f.index, out);
                    }
                });
                o.followed += 1;
                return Ok(());
            }
        }
        match f.message() {
            Some(m) => self.message(m, time),
            None => Ok(()),
        }
    }

    /// Writes the script a connection followed, how far and what differed.
    fn followed(&self, id: i64, o: &Open) -> rusqlite::Result<()> {
        let Some(s) = &o.script else { return Ok(()) };
        self.db
            .prepare_cached("UPDATE connections SET script = ?2, script_id = ?3, followed = ?4, differences = ?5 WHERE id = ?1")?
            .execute(params![id, s.source, s.id, o.followed as i64, o.differences])?;
        Ok(())
    }

    /// The script's row (inserted the first time this store sees its content).
    fn stored(&mut self, script: Arc<Script>) -> rusqlite::Result<Arc<Stored>> {
        let key = Arc::as_ptr(&script) as usize;
        if let Some((_, s)) = self.scripts.get(&key) {
            return Ok(s.clone());
        }
        let content = script.to_json();
        let sha = hex(&Sha256::digest(content.as_bytes()));
        self.db
            .prepare_cached(
                "INSERT OR IGNORE INTO scripts (sha256, source, content) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![sha, script.source, content])?;
        let id: i64 = self
            .db
            .prepare_cached("SELECT id FROM scripts WHERE sha256 = ?1")?
            .query_row([&sha], |r| r.get(0))
            .optional()?
            .unwrap_or_default();
        let stored = Arc::new(Stored {
            id,
            key,
            source: script.source.clone(),
            messages: script
                .messages
                .iter()
                .map(|m| {
                    (
                        m.side == Side::Client,
                        m.kind.clone(),
                        m.bytes.len(),
                        m.fields.iter().map(ToString::to_string).collect(),
                    )
                })
                .collect(),
        });
        self.scripts.insert(key, (script, stored.clone()));
        Ok(stored)
    }
}

fn insert_row(db: &Connection, m: &MessageEvent, time: f64) -> rusqlite::Result<()> {
    db.prepare_cached("INSERT INTO messages (connection, time, direction, kind, length, source, roles) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
        .execute(params![
            m.connection,
            time,
            if m.to_server { "to_server" } else { "to_client" },
            m.kind,
            m.length as i64,
            m.source.name(),
            m.roles.join("\n")
        ])?;
    Ok(())
}

/// The writer's nice value where the process may raise a thread's priority (root or
/// `CAP_SYS_NICE`).
const WRITER_NICE: libc::c_int = -5;

/// Puts the calling thread (the writer) ahead of the sessions and of other processes: on a
/// machine kept busy, a writer at the common priority falls behind the sessions, and what
/// waits in its in-memory queue is what a `kill -9` loses. Its own work is bounded by the
/// sessions it records, so it cannot starve them. Without the privilege it keeps the
/// process's priority, which is logged.
fn run_ahead() {
    // SAFETY: gettid and setpriority take no pointers; PRIO_PROCESS with a thread id sets
    // that thread's nice value alone (Linux).
    let set = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, WRITER_NICE)
    };
    if set != 0 {
        tracing::info!(
            "event store: the writer keeps the process's priority ({}); on a busy machine a kill -9 may lose more than the flush interval",
            std::io::Error::last_os_error()
        );
    }
}

/// Copies the WAL into the main file every second on a connection of its own, so that the
/// writer never waits for a checkpoint's `fsync` (`wal_autocheckpoint` is off on its
/// connection); stops when `stop`'s sender is dropped.
pub(super) fn checkpoint_loop(db: Connection, stop: Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(Duration::from_secs(1)) {
        if let Err(e) = db.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!("event store: checkpoint: {e}");
        }
    }
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::compact::Difference;
    use super::*;

    /// Starts and ends connection `id` on the writer's queue.
    fn session(tx: &std::sync::mpsc::Sender<Write>, id: i64) {
        let start = Write::Start {
            id,
            attacker: "203.0.113.5:4000".into(),
            telescope: "192.0.2.1:445".into(),
            service: "smb".into(),
            time: 1.0,
        };
        tx.send(start).unwrap();
        let end = Write::End {
            id,
            outcome: Outcome::Scripted,
            detail: String::new(),
            time: 2.0,
        };
        tx.send(end).unwrap();
    }

    /// A transaction the writer finds open (as a COMMIT that failed leaves it) is committed
    /// with the batch: it neither swallows later batches nor loses the batch's events.
    #[test]
    fn a_batch_that_cannot_begin_its_transaction_is_still_committed() {
        let dir = std::env::temp_dir().join(format!("hf-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.db");
        let db = super::super::schema::open(&path, 0.0).unwrap();
        db.execute_batch("BEGIN").unwrap();
        let counters = Arc::new(Counters::default());
        let (tx, rx) = std::sync::mpsc::channel();
        counters.queued.fetch_add(5, Ordering::Relaxed);
        session(&tx, 1);
        session(&tx, 2);
        tx.send(Write::Close).unwrap();
        Writer::new(db, None, counters, Duration::from_millis(1), true).run(rx);
        let reader = Connection::open(&path).unwrap();
        let ended: i64 = reader
            .query_row(
                "SELECT COUNT(*) FROM connections WHERE outcome IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ended, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A connection's differences hold what was appended, in order, and no room beyond it
    /// (they stay for as long as the connection is open).
    #[test]
    fn appended_differences_take_no_more_room_than_they_need() {
        let mut open = Open {
            script: None,
            followed: 0,
            differences: Vec::new(),
            rows: false,
        };
        let mut scratch = Vec::new();
        let mut all = Differences::default();
        for i in 0..20 {
            let d = Difference::Value(i % 3, format!("v{i}"));
            open.append(&mut scratch, |out| d.encode_into(i, out));
            all.0.push((i, d));
            assert_eq!(open.differences.capacity(), open.differences.len());
        }
        assert_eq!(Differences::decode(&open.differences), Ok(all));
    }
}

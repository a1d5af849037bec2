//! The event store: connections, messages and captured artifacts in SQLite. Writes go to one
//! thread through a channel, so sessions never wait on the disk; [`EventStore::close`] flushes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use super::intake::IntakeCounts;
use super::throttle::Throttle;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS connections (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    ended REAL,
    attacker TEXT NOT NULL,
    telescope TEXT NOT NULL,
    service TEXT NOT NULL,
    script TEXT,
    outcome TEXT,
    deviated_at INTEGER,
    honeypot TEXT,
    first_reply_ms REAL,
    handoff_ms REAL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    connection INTEGER NOT NULL REFERENCES connections(id),
    time REAL NOT NULL,
    direction TEXT NOT NULL,
    kind TEXT NOT NULL,
    length INTEGER NOT NULL,
    source TEXT NOT NULL,
    roles TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS artifacts (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    content BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS artifact_sightings (
    artifact TEXT NOT NULL REFERENCES artifacts(sha256),
    connection INTEGER NOT NULL REFERENCES connections(id),
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS intake (
    since REAL NOT NULL,
    until REAL NOT NULL,
    accepted INTEGER NOT NULL,
    refused_global INTEGER NOT NULL,
    refused_source INTEGER NOT NULL,
    accept_errors INTEGER NOT NULL,
    peak_open INTEGER NOT NULL
);
";

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from a script to the end.
    Scripted,
    /// Deviated from the script at attacker message `deviated_at`, then relayed to a honeypot.
    Bridged { deviated_at: usize },
    /// The honeypot could not take over (did not start, or answered the replayed prefix
    /// differently from the script).
    HandoffFailed { deviated_at: usize },
    /// Undecodable input or a broken connection.
    Error,
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Scripted => "scripted",
            Outcome::Bridged { .. } => "bridged",
            Outcome::HandoffFailed { .. } => "handoff_failed",
            Outcome::Error => "error",
        }
    }

    fn deviated_at(&self) -> Option<i64> {
        match self {
            Outcome::Bridged { deviated_at } | Outcome::HandoffFailed { deviated_at } => {
                Some(*deviated_at as i64)
            }
            _ => None,
        }
    }
}

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Sent by the attacker.
    Attacker,
    /// Served from a script.
    Script,
    /// Replayed to a honeypot during a handoff (and its answers).
    Replayed,
    /// Relayed between attacker and honeypot.
    Relayed,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Attacker => "attacker",
            Source::Script => "script",
            Source::Replayed => "replayed",
            Source::Relayed => "relayed",
        }
    }
}

/// One message as the store keeps it.
#[derive(Debug, Clone)]
pub struct MessageEvent {
    pub connection: i64,
    pub to_server: bool,
    pub kind: String,
    pub length: usize,
    pub source: Source,
    /// `path@role=value` of each role field.
    pub roles: Vec<String>,
}

enum Write {
    Start {
        id: i64,
        attacker: SocketAddr,
        telescope: SocketAddr,
        service: String,
        time: f64,
    },
    Message(MessageEvent, f64),
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
    Lease(LeaseRecord),
    /// A report interval of the intake.
    Intake(IntakeCounts),
    Close,
}

/// A honeypot's lease to one telescope address, recorded when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRecord {
    pub telescope: std::net::IpAddr,
    pub honeypot: SocketAddr,
    /// Unix times.
    pub started: f64,
    pub ended: f64,
    /// Sessions it served.
    pub sessions: u64,
}

/// The `leases` table, and how a lease goes in: kept together so they move as one.
const LEASES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    started REAL NOT NULL,
    ended REAL NOT NULL,
    telescope TEXT NOT NULL,
    honeypot TEXT NOT NULL,
    sessions INTEGER NOT NULL
);
";

/// The `filter` table: the scan filter's decisions per source and report interval (no
/// `source` for the sources past the tally's bound), and how they go in.
const FILTER_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS filter (
    since REAL NOT NULL,
    until REAL NOT NULL,
    source TEXT,
    admitted INTEGER NOT NULL,
    follow_ups INTEGER NOT NULL,
    filtered INTEGER NOT NULL
);
";

fn insert_filter(db: &Connection, c: &IntakeCounts) -> rusqlite::Result<()> {
    let mut st = db.prepare_cached(
        "INSERT INTO filter (since, until, source, admitted, follow_ups, filtered) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for r in c.filter.rows().0 {
        st.execute(params![
            c.since,
            c.until,
            r.source.map(|s| s.to_string()),
            r.admitted as i64,
            r.follow_ups as i64,
            r.filtered as i64
        ])?;
    }
    Ok(())
}

fn insert_lease(db: &Connection, r: &LeaseRecord) -> rusqlite::Result<()> {
    db.execute(
        "INSERT INTO leases (started, ended, telescope, honeypot, sessions) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![r.started, r.ended, r.telescope.to_string(), r.honeypot.to_string(), r.sessions as i64],
    )?;
    Ok(())
}

/// The layout of the tables; a store of another version is refused, not altered.
const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("event store {path} has schema version {found}; this build writes version {SCHEMA_VERSION}: use another file")]
    Version { path: String, found: i64 },
}

/// The columns of a connection set after it starts.
#[derive(Debug, Clone, Copy)]
enum Column {
    Script,
    FirstReplyMs,
    HandoffMs,
    Honeypot,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Script => "script",
            Column::FirstReplyMs => "first_reply_ms",
            Column::HandoffMs => "handoff_ms",
            Column::Honeypot => "honeypot",
        }
    }
}

/// A handle to the store; clones share the writer thread.
#[derive(Clone)]
pub struct EventStore {
    tx: mpsc::Sender<Write>,
    next_id: Arc<AtomicI64>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

pub(super) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl EventStore {
    /// Opens (creating if needed) the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<EventStore, StoreError> {
        let fail = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let db = Connection::open(path).map_err(fail)?;
        let version: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(fail)?;
        let tables: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(fail)?;
        if tables > 0 && version != SCHEMA_VERSION {
            return Err(StoreError::Version {
                path: path.display().to_string(),
                found: version,
            });
        }
        db.execute_batch(SCHEMA).map_err(fail)?;
        db.execute_batch(LEASES_SCHEMA).map_err(fail)?;
        db.execute_batch(FILTER_SCHEMA).map_err(fail)?;
        db.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(fail)?;
        let last: i64 = db
            .query_row("SELECT COALESCE(MAX(id), 0) FROM connections", [], |r| {
                r.get(0)
            })
            .map_err(fail)?;
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("event-store".into())
            .spawn(move || write_loop(db, rx))
            .expect("a thread starts");
        Ok(EventStore {
            tx,
            next_id: Arc::new(AtomicI64::new(last + 1)),
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    fn set(&self, id: i64, column: Column, value: rusqlite::types::Value) {
        self.send(Write::Set { id, column, value });
    }

    fn send(&self, w: Write) {
        // The writer only stops at close(); after that, events are dropped on purpose.
        let _ = self.tx.send(w);
    }

    /// Records a new connection; returns its id.
    pub fn connection(&self, attacker: SocketAddr, telescope: SocketAddr, service: &str) -> i64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(Write::Start {
            id,
            attacker,
            telescope,
            service: service.to_string(),
            time: now(),
        });
        id
    }

    pub fn message(&self, m: MessageEvent) {
        self.send(Write::Message(m, now()));
    }

    pub fn script(&self, connection: i64, script: &str) {
        self.set(connection, Column::Script, script.to_string().into());
    }

    pub fn first_reply(&self, connection: i64, millis: f64) {
        self.set(connection, Column::FirstReplyMs, millis.into());
    }

    /// Time from the deviation to the honeypot's first answer relayed to the attacker.
    pub fn handoff(&self, connection: i64, millis: f64) {
        self.set(connection, Column::HandoffMs, millis.into());
    }

    pub fn honeypot(&self, connection: i64, honeypot: &str) {
        self.set(connection, Column::Honeypot, honeypot.to_string().into());
    }

    pub fn end(&self, connection: i64, outcome: Outcome, detail: &str) {
        self.send(Write::End {
            id: connection,
            outcome,
            detail: detail.to_string(),
            time: now(),
        });
    }

    /// Stores bytes an attacker wrote (once per content, by SHA-256) and where they were seen.
    pub fn artifact(&self, connection: i64, name: &str, content: Vec<u8>) {
        self.send(Write::Artifact {
            connection,
            name: name.to_string(),
            content,
            time: now(),
        });
    }

    /// Records a lease that ended.
    pub fn lease(&self, record: &LeaseRecord) {
        self.send(Write::Lease(record.clone()));
    }

    /// Records what the intake admitted, refused and failed to accept during one interval.
    pub fn intake(&self, counts: &IntakeCounts) {
        self.send(Write::Intake(counts.clone()));
    }

    /// Writes everything sent so far and stops the writer; later events are dropped.
    pub fn close(&self) {
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            self.send(Write::Close);
            let _ = h.join();
        }
    }
}

fn write_loop(mut db: Connection, rx: mpsc::Receiver<Write>) {
    // A store that fails (no descriptor left to open its journal) fails for every write.
    let mut errors = Throttle::new(Duration::from_secs(10));
    let mut failed = |e: rusqlite::Error| {
        if let Some(held) = errors.allow() {
            if held > 0 {
                tracing::error!("event store: {e} ({held} more since the last line)");
            } else {
                tracing::error!("event store: {e}");
            }
        }
    };
    let mut open = true;
    while open {
        let Ok(first) = rx.recv() else { return };
        // Everything queued goes in one transaction.
        let Ok(tx) = db.transaction() else { return };
        let mut next = Some(first);
        while let Some(w) = next {
            if matches!(w, Write::Close) {
                open = false;
                break;
            }
            if let Err(e) = apply(&tx, w) {
                failed(e);
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = tx.commit() {
            failed(e);
        }
    }
}

fn apply(db: &Connection, w: Write) -> rusqlite::Result<()> {
    match w {
        Write::Close => {}
        Write::Lease(r) => insert_lease(db, &r)?,
        Write::Start {
            id,
            attacker,
            telescope,
            service,
            time,
        } => {
            db.execute(
                "INSERT INTO connections (id, started, attacker, telescope, service) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, time, attacker.to_string(), telescope.to_string(), service],
            )?;
        }
        Write::Message(m, time) => {
            db.execute(
                "INSERT INTO messages (connection, time, direction, kind, length, source, roles) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    m.connection,
                    time,
                    if m.to_server { "to_server" } else { "to_client" },
                    m.kind,
                    m.length as i64,
                    m.source.name(),
                    m.roles.join("\n")
                ],
            )?;
        }
        Write::Set { id, column, value } => {
            db.execute(
                &format!(
                    "UPDATE connections SET {} = ?2 WHERE id = ?1",
                    column.name()
                ),
                params![id, value],
            )?;
        }
        Write::End {
            id,
            outcome,
            detail,
            time,
        } => {
            db.execute(
                "UPDATE connections SET ended = ?2, outcome = ?3, deviated_at = ?4, detail = ?5 WHERE id = ?1",
                params![id, time, outcome.name(), outcome.deviated_at(), detail],
            )?;
        }
        Write::Artifact {
            connection,
            name,
            content,
            time,
        } => {
            let sha = Sha256::digest(&content)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            db.execute(
                "INSERT OR IGNORE INTO artifacts (sha256, size, first_seen, content) VALUES (?1, ?2, ?3, ?4)",
                params![sha, content.len() as i64, time, content],
            )?;
            db.execute(
                "INSERT INTO artifact_sightings (artifact, connection, name) VALUES (?1, ?2, ?3)",
                params![sha, connection, name],
            )?;
        }
        Write::Intake(c) => {
            db.execute(
                "INSERT INTO intake (since, until, accepted, refused_global, refused_source, accept_errors, peak_open) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    c.since,
                    c.until,
                    c.accepted as i64,
                    c.refused_global as i64,
                    c.refused_source as i64,
                    c.accept_errors as i64,
                    c.peak_open as i64
                ],
            )?;
            insert_filter(db, &c)?;
        }
    }
    Ok(())
}

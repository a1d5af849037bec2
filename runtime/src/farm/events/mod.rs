//! The event store: connections, messages and captured artifacts in SQLite. Sessions hand
//! events to one writer thread through a bounded queue, so they never wait on the disk; a full
//! queue drops events and counts them (`dropped_events`), never blocks. A batch is committed at
//! least every flush interval, so a `kill -9` loses at most that much of what the writer has
//! taken, and what is still queued: the writer runs ahead of the sessions in priority where
//! the process may raise it (root or `CAP_SYS_NICE`), so that the queue stays short on a busy
//! machine. A
//! connection that follows a script is stored as the script (once per store), how far it
//! followed it and the values that differed; messages off the script are rows.
//! [`EventStore::close`] flushes.

mod compact;
mod farm_tables;
mod read;
mod schema;
mod writer;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::replay::Script;

pub use compact::{DecodeError, Difference, Differences};
pub use farm_tables::{ContainmentRecord, LeaseRecord};
pub use read::{stored_messages, ReadError, StoredMessage};
pub use schema::{INTERRUPTED, SCHEMA_VERSION};

use writer::{Write, Writer};

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
    /// No first message of the protocol ever came: nothing, a fragment, or something else
    /// (nmap -sV's NULL, HTTP, DNS or RTSP probes on the SMB port); ended the way the real
    /// server ends it, no script or honeypot involved.
    NotProtocol,
    /// Answered by the emulator from a personality to the end.
    Emulated,
    /// Undecodable input or a broken connection.
    Error,
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Scripted => "scripted",
            Outcome::Bridged { .. } => "bridged",
            Outcome::HandoffFailed { .. } => "handoff_failed",
            Outcome::NotProtocol => "not_protocol",
            Outcome::Emulated => "emulated",
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
    pub fn name(self) -> &'static str {
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
    /// It followed the connection's script ([`EventStore::script`]) at its next message: an
    /// attacker message the script accepted, or a reply served from it. The store then keeps
    /// only what differs from the script's message; anything else is kept whole.
    pub followed: bool,
}

/// A message that followed its connection's script, as [`EventStore::followed`] takes it.
#[derive(Debug, Clone)]
pub struct FollowedEvent {
    pub connection: i64,
    pub script: Arc<Script>,
    /// The script's message it followed.
    pub index: usize,
    pub source: Source,
    pub differences: Vec<Difference>,
}

impl FollowedEvent {
    /// The message as a [`MessageEvent`]: the script's, with the differences put back.
    fn message(self) -> Option<MessageEvent> {
        let m = self.script.messages.get(self.index)?;
        let mut length = m.bytes.len();
        let mut roles = m.fields.iter().map(ToString::to_string).collect();
        let i = self.index;
        Differences(self.differences.into_iter().map(|d| (i, d)).collect()).apply(
            i,
            &mut length,
            &mut roles,
        );
        Some(MessageEvent {
            connection: self.connection,
            to_server: m.side == crate::replay::Side::Client,
            kind: m.kind.clone(),
            length,
            source: self.source,
            roles,
            followed: true,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("event store {path} has schema version {found}; this build writes version {SCHEMA_VERSION} (and migrates version 1): use another file")]
    Version { path: String, found: i64 },
    #[error("event store {path}: SQLite keeps journal mode `{mode}`, not WAL")]
    Journal { path: String, mode: String },
    #[error("event store {path}: starting the writer thread: {source}")]
    Thread {
        path: String,
        source: std::io::Error,
    },
}

/// How the store queues and writes.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Events the queue holds; messages are dropped once it is three quarters full, so that
    /// connection starts, ends and artifacts still fit.
    pub queue: usize,
    /// A batch is committed this long after its first event (at most 50 ms is the contract).
    pub flush: Duration,
    /// Messages that follow the script kept as differences (off: every message a row, as
    /// schema version 1 did; for comparison).
    pub compact: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            queue: 65_536,
            flush: Duration::from_millis(10),
            compact: true,
        }
    }
}

/// The columns of a connection set after it starts.
#[derive(Debug, Clone, Copy)]
enum Column {
    FirstReplyMs,
    HandoffMs,
    Honeypot,
}

impl Column {
    /// The statement that sets it (`?1` the connection, `?2` the value): a constant, so
    /// that the writer's statement cache finds it without building its text per event.
    fn update(self) -> &'static str {
        match self {
            Column::FirstReplyMs => "UPDATE connections SET first_reply_ms = ?2 WHERE id = ?1",
            Column::HandoffMs => "UPDATE connections SET handoff_ms = ?2 WHERE id = ?1",
            Column::Honeypot => "UPDATE connections SET honeypot = ?2 WHERE id = ?1",
        }
    }
}

/// What the handles and the writer count together.
#[derive(Debug, Default)]
struct Counters {
    /// Events in the queue.
    queued: AtomicUsize,
    /// Dropped since the writer last wrote the count.
    dropped: AtomicU64,
    /// Dropped since the store opened.
    dropped_total: AtomicU64,
}

/// A handle to the store; clones share the writer thread.
#[derive(Clone)]
pub struct EventStore {
    /// Unbounded as a channel (it allocates blocks as it fills and frees them as the writer
    /// drains them, so an idle farm holds none): `counters.queued` bounds it to `capacity`.
    tx: Sender<Write>,
    capacity: usize,
    counters: Arc<Counters>,
    next_id: Arc<AtomicI64>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

pub(in crate::farm) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl EventStore {
    /// Opens (creating if needed) the SQLite file at `path` with the default options.
    pub fn open(path: &Path) -> Result<EventStore, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens the store; connections an earlier run left without an outcome are marked
    /// [`INTERRUPTED`].
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<EventStore, StoreError> {
        let db = schema::open(path, now())?;
        let fail = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        db.execute_batch(farm_tables::SCHEMA).map_err(fail)?;
        let last: i64 = db
            .query_row("SELECT COALESCE(MAX(id), 0) FROM connections", [], |r| {
                r.get(0)
            })
            .map_err(fail)?;
        db.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(fail)?;
        let thread = |source| StoreError::Thread {
            path: path.display().to_string(),
            source,
        };
        let cp = rusqlite::Connection::open(path).map_err(fail)?;
        let (stop, stopped) = mpsc::channel();
        let checkpointer = std::thread::Builder::new()
            .name("event-store-checkpoint".into())
            .spawn(move || writer::checkpoint_loop(cp, stopped))
            .map_err(thread)?;
        let capacity = options.queue.max(4);
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let w = Writer::new(
            db,
            Some((stop, checkpointer)),
            counters.clone(),
            options.flush,
            options.compact,
        );
        let writer = std::thread::Builder::new()
            .name("event-store".into())
            .spawn(move || w.run(rx))
            .map_err(thread)?;
        Ok(EventStore {
            tx,
            capacity,
            counters,
            next_id: Arc::new(AtomicI64::new(last + 1)),
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    /// Events dropped because the queue was full, since the store opened.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped_total.load(Ordering::Relaxed)
    }

    fn set(&self, id: i64, column: Column, value: rusqlite::types::Value) {
        self.send(Write::Set { id, column, value }, true);
    }

    /// Queues an event without waiting; `essential` ones (all but messages) may use the last
    /// quarter of the queue. After close(), events are dropped on purpose, uncounted.
    fn send(&self, w: Write, essential: bool) {
        let limit = if essential {
            self.capacity
        } else {
            self.capacity - self.capacity / 4
        };
        let c = &self.counters;
        // The count is taken before the send, so senders racing for the last places never
        // put more than `limit` in the queue.
        if c.queued.fetch_add(1, Ordering::Relaxed) >= limit {
            c.queued.fetch_sub(1, Ordering::Relaxed);
            c.dropped.fetch_add(1, Ordering::Relaxed);
            c.dropped_total.fetch_add(1, Ordering::Relaxed);
        } else if self.tx.send(w).is_err() {
            // Closed: the writer is gone.
            c.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Records a new connection; returns its id.
    pub fn connection(&self, attacker: SocketAddr, telescope: SocketAddr, service: &str) -> i64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(
            Write::Start {
                id,
                attacker: attacker.to_string(),
                telescope: telescope.to_string(),
                service: service.to_string(),
                time: now(),
            },
            true,
        );
        id
    }

    pub fn message(&self, m: MessageEvent) {
        self.send(Write::Message(m, now()), false);
    }

    /// A message that followed `script` (the connection's, see [`EventStore::script`]) at its
    /// message `index`, given as what differed from it: the writer keeps it as such, or makes
    /// it a row as [`EventStore::message`] would have (the script's message with the
    /// differences put back) when the connection's messages are rows.
    pub fn followed(&self, m: FollowedEvent) {
        self.send(Write::Followed(m, now()), false);
    }

    /// The script the connection follows, before the first message that follows it.
    pub fn script(&self, connection: i64, script: &Arc<Script>) {
        self.send(
            Write::Script {
                id: connection,
                script: script.clone(),
            },
            true,
        );
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
        self.send(
            Write::End {
                id: connection,
                outcome,
                detail: detail.to_string(),
                time: now(),
            },
            true,
        );
    }

    /// Stores bytes an attacker wrote (once per content, by SHA-256) and where they were seen.
    pub fn artifact(&self, connection: i64, name: &str, content: Vec<u8>) {
        self.send(
            Write::Artifact {
                connection,
                name: name.to_string(),
                content,
                time: now(),
            },
            true,
        );
    }

    /// Records what the intake admitted, refused and failed to accept during one interval.
    pub fn intake(&self, counts: &super::intake::IntakeCounts) {
        self.send(Write::Intake(counts.clone()), true);
    }

    /// Records a honeypot lease that ended.
    pub fn lease(&self, record: &LeaseRecord) {
        self.send(Write::Lease(record.clone()), true);
    }

    /// Records a containment decision.
    pub fn containment(&self, record: &ContainmentRecord) {
        self.send(Write::Containment(record.clone()), true);
    }

    /// Events waiting in the queue for the writer (the metrics' `event_queue_depth`).
    pub fn queued(&self) -> usize {
        self.counters.queued.load(Ordering::Relaxed)
    }

    /// Writes everything queued so far, checkpoints the WAL into the main file and stops the
    /// writer; later events are dropped.
    pub fn close(&self) {
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            self.counters.queued.fetch_add(1, Ordering::Relaxed);
            if self.tx.send(Write::Close).is_err() {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            }
            let _ = h.join();
        }
    }
}

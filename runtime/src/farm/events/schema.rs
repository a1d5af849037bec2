//! The store's tables, its durability settings, and what opening it does: create or migrate
//! the tables, and mark the connections a previous run left without an outcome.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// The layout of the tables. Version 1 (every message a row) is migrated in place; any other
/// version is refused, not altered.
pub const SCHEMA_VERSION: i64 = 2;

/// The outcome a connection gets when the farm stopped (crashed, killed) before it ended.
pub const INTERRUPTED: &str = "interrupted";

const TABLES: &str = "
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

/// What version 2 adds: the scripts followed (once each), how far each connection followed
/// its script and what differed, and the count of events the queue had to drop.
const VERSION_2: &str = "
CREATE TABLE scripts (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    content TEXT NOT NULL
);
ALTER TABLE connections ADD COLUMN script_id INTEGER REFERENCES scripts(id);
ALTER TABLE connections ADD COLUMN followed INTEGER;
ALTER TABLE connections ADD COLUMN differences BLOB;
CREATE TABLE dropped_events (
    time REAL NOT NULL,
    count INTEGER NOT NULL
);
";

/// Opens the store for writing: WAL with `synchronous=NORMAL` (a committed transaction survives
/// the farm being killed; a power loss or OS crash may lose the last ones, never corrupt the
/// file), the tables created or migrated, and unfinished connections marked `interrupted`.
pub fn open(path: &Path, now: f64) -> Result<Connection, StoreError> {
    let fail = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    let mut db = Connection::open(path).map_err(fail)?;
    let mode: String = db
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Journal {
            path: path.display().to_string(),
            mode,
        });
    }
    db.pragma_update(None, "synchronous", "NORMAL")
        .map_err(fail)?;
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
    let tx = db.transaction().map_err(fail)?;
    match (tables, version) {
        (0, _) | (_, 1) => {
            tx.execute_batch(TABLES).map_err(fail)?;
            tx.execute_batch(VERSION_2).map_err(fail)?;
            if tables > 0 {
                tracing::info!(
                    "event store {}: migrated from schema version 1 to {SCHEMA_VERSION}",
                    path.display()
                );
            }
        }
        (_, SCHEMA_VERSION) => {}
        (_, found) => {
            return Err(StoreError::Version {
                path: path.display().to_string(),
                found,
            })
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(fail)?;
    let marked = tx
        .execute(
            "UPDATE connections SET outcome = ?1, detail = ?2 WHERE outcome IS NULL",
            rusqlite::params![
                INTERRUPTED,
                format!(
                    "no outcome when the farm stopped; marked at its restart (unix time {now:.3})"
                )
            ],
        )
        .map_err(fail)?;
    tx.commit().map_err(fail)?;
    if marked > 0 {
        tracing::warn!(
            "event store {}: {marked} connections of an earlier run had no outcome: marked {INTERRUPTED}",
            path.display()
        );
    }
    Ok(db)
}

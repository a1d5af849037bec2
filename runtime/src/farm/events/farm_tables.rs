//! The tables of the farm's own bookkeeping beside connections: honeypot leases, and the scan
//! filter's decisions per source and interval. Each table's schema and insert are together.

use rusqlite::{params, Connection};

use super::super::intake::IntakeCounts;

/// A honeypot's lease to one telescope address, recorded when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRecord {
    pub telescope: std::net::IpAddr,
    pub honeypot: std::net::SocketAddr,
    /// Unix times.
    pub started: f64,
    pub ended: f64,
    /// Sessions it served.
    pub sessions: u64,
}

/// A containment decision: what one rule of a honeypot's namespace counted since the last
/// reading (`packets`, `bytes`), or one reflected connection (`detail` says where it went).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainmentRecord {
    /// Unix time.
    pub time: f64,
    /// The honeypot (its link address).
    pub honeypot: std::net::SocketAddr,
    /// The telescope address it served, if leased.
    pub telescope: Option<std::net::IpAddr>,
    /// The policy rule's index (`default`, `in-default` for the default drops).
    pub rule: String,
    /// `drop`, `allow`, `reflect`, `rate`, `rate-drop`, ...
    pub decision: String,
    pub packets: u64,
    pub bytes: u64,
    pub detail: String,
}

pub(super) fn insert_containment(db: &Connection, r: &ContainmentRecord) -> rusqlite::Result<()> {
    db.prepare_cached(
        "INSERT INTO containment (time, honeypot, telescope, rule, decision, packets, bytes, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        r.time,
        r.honeypot.to_string(),
        r.telescope.map(|t| t.to_string()),
        r.rule,
        r.decision,
        r.packets as i64,
        r.bytes as i64,
        r.detail
    ])?;
    Ok(())
}

/// Created at open, whatever the schema version (new tables only: nothing to migrate).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    started REAL NOT NULL,
    ended REAL NOT NULL,
    telescope TEXT NOT NULL,
    honeypot TEXT NOT NULL,
    sessions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS containment (
    time REAL NOT NULL,
    honeypot TEXT NOT NULL,
    telescope TEXT,
    rule TEXT NOT NULL,
    decision TEXT NOT NULL,
    packets INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS filter (
    since REAL NOT NULL,
    until REAL NOT NULL,
    source TEXT,
    admitted INTEGER NOT NULL,
    follow_ups INTEGER NOT NULL,
    filtered INTEGER NOT NULL
);
";

pub(super) fn insert_lease(db: &Connection, r: &LeaseRecord) -> rusqlite::Result<()> {
    db.prepare_cached(
        "INSERT INTO leases (started, ended, telescope, honeypot, sessions) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        r.started,
        r.ended,
        r.telescope.to_string(),
        r.honeypot.to_string(),
        r.sessions as i64
    ])?;
    Ok(())
}

/// The interval's filter decisions, a row per source (no `source` for those past the tally's
/// bound).
pub(super) fn insert_filter(db: &Connection, c: &IntakeCounts) -> rusqlite::Result<()> {
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

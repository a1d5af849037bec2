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

/// Created at open, whatever the schema version (new tables only: nothing to migrate).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    started REAL NOT NULL,
    ended REAL NOT NULL,
    telescope TEXT NOT NULL,
    honeypot TEXT NOT NULL,
    sessions INTEGER NOT NULL
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

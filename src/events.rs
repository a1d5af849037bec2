//! `honeyfarm events`: what the event store holds, for people (the store itself is SQLite, for
//! anything else).

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

/// Prints the connections (a line each), or one connection's messages.
pub fn show(db: &Path, connection: Option<i64>, out: &mut dyn std::io::Write) -> Result<()> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the event store {}", db.display()))?;
    match connection {
        None => {
            let mut q = c.prepare(
                "SELECT id, attacker, telescope, service, COALESCE(outcome, 'open'), deviated_at, \
                 honeypot, first_reply_ms, handoff_ms, COALESCE(script, ''), COALESCE(detail, '') \
                 FROM connections ORDER BY id",
            )?;
            let rows = q.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<f64>>(7)?,
                    r.get::<_, Option<f64>>(8)?,
                    r.get::<_, String>(9)?,
                    r.get::<_, String>(10)?,
                ))
            })?;
            for row in rows {
                let (
                    id,
                    attacker,
                    telescope,
                    service,
                    outcome,
                    at,
                    hp,
                    first,
                    handoff,
                    script,
                    detail,
                ) = row?;
                write!(out, "{id} {attacker} -> {telescope} {service} {outcome}")?;
                if let Some(k) = at {
                    write!(out, " deviated_at={k}")?;
                }
                if let Some(h) = hp {
                    write!(out, " honeypot={h}")?;
                }
                if let Some(ms) = first {
                    write!(out, " first_reply={ms:.1}ms")?;
                }
                if let Some(ms) = handoff {
                    write!(out, " handoff={ms:.1}ms")?;
                }
                if !script.is_empty() {
                    write!(out, " script=\"{script}\"")?;
                }
                if !detail.is_empty() {
                    write!(out, ": {detail}")?;
                }
                writeln!(out)?;
            }
            let mut q = c.prepare(
                "SELECT a.sha256, a.size, s.connection, s.name FROM artifact_sightings s \
                 JOIN artifacts a ON a.sha256 = s.artifact ORDER BY s.connection",
            )?;
            let rows = q.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            for row in rows {
                let (sha, size, conn, name) = row?;
                writeln!(
                    out,
                    "artifact {sha} {size} bytes, connection {conn} ({name})"
                )?;
            }
            intake(&c, out)?;
        }
        Some(id) => {
            let mut q = c.prepare(
                "SELECT direction, source, kind, length FROM messages WHERE connection = ?1 ORDER BY id",
            )?;
            let rows = q.query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (dir, source, kind, len) = row?;
                let arrow = if dir == "to_server" { "->" } else { "<-" };
                writeln!(out, "{arrow} {source:<9} [{kind}] {len} bytes")?;
            }
        }
    }
    Ok(())
}

/// The intake's totals (refused connections, accept errors), if the store has its table (a
/// store written before it existed has not).
fn intake(c: &Connection, out: &mut dyn std::io::Write) -> Result<()> {
    let present: i64 = c.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'intake'",
        [],
        |r| r.get(0),
    )?;
    if present == 0 {
        return Ok(());
    }
    let (intervals, accepted, global, source, errors, peak): (i64, i64, i64, i64, i64, i64) = c
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(accepted), 0), COALESCE(SUM(refused_global), 0), \
             COALESCE(SUM(refused_source), 0), COALESCE(SUM(accept_errors), 0), \
             COALESCE(MAX(peak_open), 0) FROM intake",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )?;
    if intervals > 0 {
        writeln!(
            out,
            "intake: {accepted} accepted, {global} refused over max_connections, {source} refused \
             over max_per_source, {errors} accept errors, at most {peak} at once \
             ({intervals} report intervals)"
        )?;
    }
    Ok(())
}

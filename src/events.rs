//! `honeyfarm events`: what the event store holds, for people (the store itself is SQLite, for
//! anything else).

use std::path::Path;

use anyhow::{bail, Context, Result};
use honeyfarm_runtime::farm::{stored_messages, SCHEMA_VERSION};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// Prints the connections (a line each), or one connection's messages with their role fields
/// (those that followed a script rebuilt from it, with the values that differed put back).
pub fn show(db: &Path, connection: Option<i64>, out: &mut dyn std::io::Write) -> Result<()> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the event store {}", db.display()))?;
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != SCHEMA_VERSION {
        bail!(
            "the event store {} has schema version {version}; this build reads version {SCHEMA_VERSION} (`honeyfarm run` migrates version 1)",
            db.display()
        );
    }
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
            let script: Option<(String, String)> = c
                .query_row(
                    "SELECT s.source, s.sha256 FROM connections c JOIN scripts s ON s.id = c.script_id \
                     WHERE c.id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((source, sha)) = script {
                writeln!(out, "script \"{source}\" sha256 {sha}")?;
            }
            for m in stored_messages(&c, id)? {
                let arrow = if m.to_server { "->" } else { "<-" };
                writeln!(
                    out,
                    "{arrow} {:<9} [{}] {} bytes",
                    m.source, m.kind, m.length
                )?;
                for r in &m.roles {
                    writeln!(out, "     {r}")?;
                }
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

//! `honeyfarm script import` and `honeyfarm script show`: scripts made from one recorded TCP
//! dialog, and what they hold.

use std::path::Path;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use honeyfarm_runtime::capture::{tcp_streams, Direction};
use honeyfarm_runtime::replay::{Conversation, Script, Side};

use crate::services::{services_by_port, types};

/// Builds a script from stream `stream` of a capture (if `None`, the first whole stream to a
/// known service with data both ways) and writes it to `out`.
pub fn import(
    pcap: &Path,
    stream: Option<usize>,
    ports: &[(u16, String)],
    out: &Path,
) -> Result<Script> {
    let streams = tcp_streams(pcap)?;
    let by_port = services_by_port(ports);
    let chosen = match stream {
        Some(n) => streams
            .iter()
            .find(|s| s.id == n)
            .with_context(|| format!("{}: no TCP stream {n}", pcap.display()))?,
        None => streams
            .iter()
            .find(|s| {
                by_port.contains_key(&s.server.port())
                    && s.from_start
                    && !s.to_server.data.is_empty()
                    && !s.to_client.data.is_empty()
            })
            .with_context(|| {
                format!(
                    "{}: no whole dialog (from its SYNs, with data both ways) to a known service port (add --port PORT=SERVICE)",
                    pcap.display()
                )
            })?,
    };
    let Some(service) = by_port.get(&chosen.server.port()).copied() else {
        bail!(
            "stream {} goes to port {}, which carries no known service (add --port {}=SERVICE)",
            chosen.id,
            chosen.server.port(),
            chosen.server.port()
        );
    };
    if !chosen.from_start {
        bail!(
            "stream {}: the capture does not start with the connection (no SYN both ways); a script needs the whole dialog",
            chosen.id
        );
    }
    let codecs = service.codecs()?;
    // Cut each direction into messages (the client's first: replies recall what requests
    // remembered), then put them in the order they were sent.
    let mut conv = Conversation::new();
    let mut timed: Vec<(f64, Side, Bytes)> = Vec::new();
    for (dir, side) in [
        (Direction::ToServer, Side::Client),
        (Direction::ToClient, Side::Server),
    ] {
        let entry = codecs.entry(side);
        let half = chosen.half(dir);
        if let Some(hole) = half.next_hole(0) {
            if hole < half.data.len() {
                bail!(
                    "stream {}: the capture misses bytes of the {} direction at byte {hole}; a script needs the whole dialog",
                    chosen.id,
                    if side == Side::Client { "client" } else { "server" }
                );
            }
        }
        let data = Bytes::copy_from_slice(&half.data);
        let mut at = 0;
        while at < data.len() {
            let d = conv
                .decode(entry, data.slice(at..), side == Side::Client)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "stream {}: {} message at stream byte {at} does not decode: {e}",
                        chosen.id,
                        entry.name
                    )
                })?;
            let used = d.bytes.len().max(1);
            timed.push((half.time_at(at), side, d.bytes));
            at += used;
        }
    }
    timed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let source = format!(
        "{} stream {}",
        pcap.file_name().map_or_else(
            || pcap.display().to_string(),
            |n| n.to_string_lossy().into()
        ),
        chosen.id
    );
    let script = Script::new(
        codecs,
        chosen.client,
        chosen.server,
        &source,
        timed.into_iter().map(|(_, side, b)| (side, b)).collect(),
    )?;
    script.save(out)?;
    Ok(script)
}

/// Prints a script: a line per message with its kind and role fields; `hex` adds the bytes.
pub fn show(path: &Path, hex: bool, out: &mut dyn std::io::Write) -> Result<()> {
    let s = Script::load(path, &types)?;
    writeln!(
        out,
        "script {}: service {}, {} messages, recorded {} -> {} ({})",
        path.display(),
        s.service.name,
        s.messages.len(),
        s.client,
        s.server,
        s.source
    )?;
    for (i, m) in s.messages.iter().enumerate() {
        let arrow = if m.side == Side::Client { "->" } else { "<-" };
        write!(out, "{i:3} {arrow} [{}] {} bytes", m.kind, m.bytes.len())?;
        for f in &m.fields {
            write!(out, " {f}")?;
        }
        writeln!(out)?;
        if hex {
            for (n, chunk) in m.bytes.chunks(16).enumerate() {
                let h: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
                writeln!(out, "      {:04x}  {}", n * 16, h.join(" "))?;
            }
        }
    }
    Ok(())
}

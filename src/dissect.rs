//! `honeyfarm dissect`: every TCP stream of a capture, decoded message by message with the
//! codecs compiled from the specs, each message re-encoded and compared with its bytes.
//!
//! Which codecs read a stream is decided by the server's port (`--port 2121=ftp` adds more);
//! FTP data connections are tied to the control connection whose PORT, EPRT, PASV or EPSV
//! announced them. A message that does not decode is an error: the decoder starts again after
//! the next line end (or the next hole in the capture), so one bad line does not hide the rest.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::Result;
use bytes::{Bytes, BytesMut};
use honeyfarm_runtime::capture::{tcp_streams, Direction, Stream};
use honeyfarm_runtime::codec::{Description, Entry, Role, RoleField, Value};
use honeyfarm_runtime::replay::Conversation;

use crate::services::{entry, foreign_kinds, services_by_port, Service};
use serde_json::json;

/// Options of one run.
#[derive(Debug, Default)]
pub struct Options {
    pub json: bool,
    pub roles: bool,
    /// `port=service` overrides and additions.
    pub ports: Vec<(u16, String)>,
}

/// What a run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub messages: usize,
    pub decoded: usize,
    pub roundtrip_exact: usize,
    pub errors: usize,
    /// Messages of another protocol version, by kind (see [`honeyfarm_protocols::services::Foreign`]):
    /// recognised, kept as bytes, not errors.
    pub foreign: BTreeMap<&'static str, usize>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            messages: 0,
            decoded: 0,
            roundtrip_exact: 0,
            errors: 0,
            foreign: foreign_kinds().into_iter().map(|k| (k, 0)).collect(),
        }
    }
}

impl Summary {
    /// The JSON summary: the counts, and one per foreign kind.
    fn json(&self) -> serde_json::Value {
        let mut m = json!({"messages": self.messages, "decoded": self.decoded, "roundtrip_exact": self.roundtrip_exact, "errors": self.errors});
        for (kind, n) in &self.foreign {
            m[*kind] = json!(n);
        }
        m
    }

    pub fn line(&self) -> String {
        format!(
            "dissect: messages={} decoded={} roundtrip_exact={} errors={}",
            self.messages, self.decoded, self.roundtrip_exact, self.errors
        )
    }
}

/// Dissects a capture, printing a line (or JSON object) per message and the summary last.
pub fn run(path: &Path, opts: &Options, out: &mut dyn std::io::Write) -> Result<Summary> {
    let streams = tcp_streams(path)?;
    let by_port = services_by_port(&opts.ports);
    let mut summary = Summary::default();
    // Data connections announced by FTP control connections: endpoint -> control stream id.
    let mut announced: HashMap<SocketAddr, usize> = HashMap::new();
    for stream in &streams {
        let data_of = announced
            .get(&stream.server)
            .or_else(|| announced.get(&stream.client))
            .copied();
        if let Some(control) = data_of {
            let bytes = stream.to_server.data.len() + stream.to_client.data.len();
            if opts.json {
                writeln!(
                    out,
                    "{}",
                    json!({"stream": stream.id, "ftp_data_of": control, "client": stream.client.to_string(), "server": stream.server.to_string(), "bytes": bytes})
                )?;
            } else {
                writeln!(
                    out,
                    "stream {} {} -> {}: ftp-data of stream {control}, {bytes} bytes",
                    stream.id, stream.client, stream.server
                )?;
            }
            continue;
        }
        let Some(service) = by_port.get(&stream.server.port()).copied() else {
            continue;
        };
        let mut lines: Vec<Found> = Vec::new();
        // What messages remember for later ones (`@remember`): the stream's session memory.
        let mut conv = Conversation::new();
        for dir in [Direction::ToServer, Direction::ToClient] {
            let name = if dir == Direction::ToServer {
                service.client
            } else {
                service.server
            };
            // A server message answers the last client message sent before it.
            let client_kinds: Vec<(f64, Bytes)> = lines
                .iter()
                .map(|l| (l.time, Bytes::from(l.kind.clone())))
                .collect();
            let answering = |t: f64| -> Bytes {
                client_kinds
                    .iter()
                    .rev()
                    .find(|(ct, _)| *ct <= t)
                    .map(|(_, k)| k.clone())
                    .unwrap_or_default()
            };
            let half = Half {
                stream,
                dir,
                entry: entry(name)?,
                service,
            };
            let found = dissect_half(half, opts, &mut summary, &answering, &mut conv);
            if service.data_connections {
                for m in &found {
                    for endpoint in m.announces(stream, dir) {
                        announced.insert(endpoint, stream.id);
                    }
                }
            }
            lines.extend(found);
        }
        lines.sort_by(|a, b| a.time.total_cmp(&b.time));
        for l in lines {
            writeln!(out, "{}", if opts.json { l.json } else { l.text })?;
        }
    }
    if opts.json {
        writeln!(out, "{}", json!({"summary": summary.json()}))?;
    } else {
        writeln!(out, "{}", summary.line())?;
    }
    Ok(summary)
}

/// One message (or error) found in a stream, ready to print.
struct Found {
    time: f64,
    /// What the message is (its first content field), for the messages that answer it.
    kind: String,
    text: String,
    json: String,
    roles: Vec<RoleField>,
}

impl Found {
    /// Endpoints a message announces for a data connection: an address with a port, or a lone
    /// port on the announcing side's address.
    fn announces(&self, stream: &Stream, dir: Direction) -> Vec<SocketAddr> {
        let own_ip = if dir == Direction::ToServer {
            stream.client.ip()
        } else {
            stream.server.ip()
        };
        let mut out = Vec::new();
        let mut ip: Option<IpAddr> = None;
        let mut port: Option<u16> = None;
        for f in &self.roles {
            match (f.role, &f.value) {
                (Role::Address, Value::Socket(s)) => out.push(*s),
                (Role::Address, Value::Ip(a)) => ip = Some(*a),
                (Role::Address, Value::Bytes(b)) => {
                    ip = std::str::from_utf8(b).ok().and_then(|t| t.parse().ok())
                }
                (Role::Port, Value::Uint(p)) => port = u16::try_from(*p).ok(),
                _ => {}
            }
        }
        if let Some(p) = port {
            out.push(SocketAddr::new(ip.unwrap_or(own_ip), p));
        }
        out
    }
}

/// One direction of a stream, with the service and message type that read it.
struct Half<'a> {
    stream: &'a Stream,
    dir: Direction,
    entry: &'static Entry,
    service: &'static Service,
}

fn dissect_half(
    half: Half<'_>,
    opts: &Options,
    summary: &mut Summary,
    answering: &dyn Fn(f64) -> Bytes,
    conv: &mut Conversation,
) -> Vec<Found> {
    let Half {
        stream,
        dir,
        entry,
        service,
    } = half;
    let half = stream.half(dir);
    let data = Bytes::copy_from_slice(&half.data);
    let mut found = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let end = half.next_hole(at).unwrap_or(data.len());
        let time = half.time_at(at);
        let to_server = dir == Direction::ToServer;
        if !to_server {
            conv.set_answering(answering(time));
        }
        summary.messages += 1;
        let head = format!("stream {} {} {:.6}", stream.id, dir.arrow(), time);
        match conv.decode_traced(entry, data.slice(at..end), to_server) {
            Ok(d) => {
                let (msg, used, spans) = (d.msg, d.bytes.len(), d.spans);
                summary.decoded += 1;
                let mut re = BytesMut::new();
                let exact = match msg.encode(&mut re) {
                    Ok(()) => re[..] == data[at..at + used],
                    Err(_) => false,
                };
                if exact {
                    summary.roundtrip_exact += 1;
                }
                let fields = Description::of(msg.as_ref());
                let kind = match service.foreign_kind(&fields.cases) {
                    Some(kind) => {
                        *summary.foreign.entry(kind).or_default() += 1;
                        kind.to_string()
                    }
                    None => fields.kind(service.text),
                };
                let mut text = format!(
                    "{head} {} [{kind}] {used} bytes{}",
                    entry.name,
                    if exact { "" } else { " NOT-EXACT" }
                );
                for f in &fields.roles {
                    let _ = write!(text, " {f}");
                }
                if opts.roles {
                    for s in &spans {
                        let _ = write!(
                            text,
                            " {}.{}[{}..{}]",
                            s.field.unit,
                            s.field.field,
                            at + s.start,
                            at + s.end
                        );
                    }
                }
                let json = json!({
                    "stream": stream.id,
                    "direction": if dir == Direction::ToServer { "to_server" } else { "to_client" },
                    "time": time,
                    "offset": at,
                    "length": used,
                    "message": entry.name,
                    "kind": kind,
                    "roundtrip_exact": exact,
                    "roles": fields.roles.iter().map(|f| json!({"path": f.path, "role": f.role.name(), "value": f.value.to_string()})).collect::<Vec<_>>(),
                    "spans": spans.iter().map(|s| json!({"field": format!("{}.{}", s.field.unit, s.field.field), "role": s.field.role.map(|r| r.to_string()), "start": at + s.start, "end": at + s.end})).collect::<Vec<_>>(),
                })
                .to_string();
                found.push(Found {
                    time,
                    kind,
                    text,
                    json,
                    roles: fields.roles,
                });
                at += used.max(1);
            }
            Err(e) => {
                summary.errors += 1;
                // Text: start again after the next line end, or at the next hole. A message cut
                // off by the end of what was captured, or any error in a binary stream (whose
                // framing is lost), ends this direction up to the next hole.
                let resume = if e.is_incomplete() || !service.text {
                    end
                } else {
                    data[at..end]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(end, |i| at + i + 1)
                };
                let text = format!(
                    "{head} {} error at stream byte {}: {e}",
                    entry.name,
                    at + e.offset
                );
                let json = json!({
                    "stream": stream.id,
                    "direction": if dir == Direction::ToServer { "to_server" } else { "to_client" },
                    "time": time,
                    "offset": at,
                    "message": entry.name,
                    "error": e.to_string(),
                    "error_offset": at + e.offset,
                    "field": e.field_path(),
                    "incomplete": e.is_incomplete(),
                })
                .to_string();
                found.push(Found {
                    time,
                    kind: String::new(),
                    text,
                    json,
                    roles: Vec::new(),
                });
                at = resume;
            }
        }
    }
    found
}

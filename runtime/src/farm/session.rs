//! One attacker connection: answered from a script while the attacker follows it; on the
//! first deviation handed to a honeypot (the attacker's messages so far replayed to it, its
//! cookies learnt from its replies) and bridged, every message translated both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::codec::{AnyMessage, Description, MatchKey, Role, RoleField, RoleFields};
use crate::replay::{
    pair_cookies, Audience, Candidate, Conversation, Decoded, Deviation, FrameError, Library,
    ServiceCodecs,
};
use crate::rewrite::{Rewrite, ValueMap, Way};

use super::artifacts::Files;
use super::events::{EventStore, MessageEvent, Outcome, Source};
use super::honeypot::{HoneypotError, Lease, Pool};

/// What every session of one listener shares.
pub struct SessionConfig {
    pub service: ServiceCodecs,
    pub library: Arc<Library>,
    /// Honeypots for deviating attackers; without, a deviation ends the connection.
    pub pool: Option<Arc<Pool>>,
    pub events: EventStore,
    /// How long a honeypot may take to answer one replayed message.
    pub reply_timeout: Duration,
    /// How long an attacker may stay silent.
    pub idle_timeout: Duration,
    /// The largest message accepted (bytes buffered before it decodes).
    pub max_message: usize,
    /// The largest file kept as an artifact.
    pub max_artifact: usize,
    /// `(the scripts' host name, the honeypots' host name)` pairs: the honeypot hears its own
    /// names, the attacker keeps hearing the scripts'.
    pub names: Vec<(String, String)>,
}

/// A reply the attacker got, as the handoff compares it with the honeypot's.
struct Sent {
    key: MatchKey,
    fields: Vec<RoleField>,
    kind: String,
}

/// An attacker message answered from the script, and the answers.
struct Exchange {
    /// The attacker's bytes and the decoder state before them (none for a banner).
    request: Option<(Bytes, Conversation)>,
    replies: Vec<Sent>,
}

struct Session {
    cfg: Arc<SessionConfig>,
    id: i64,
    attacker: SocketAddr,
    telescope: SocketAddr,
    started: Instant,
    replied: bool,
    /// What the attacker wrote to files.
    files: Files,
    /// When the attacker deviated, until the honeypot's first answer reaches it.
    deviated: Option<Instant>,
}

#[derive(Debug)]
enum End {
    Closed,
    Failed(String),
}

impl Session {
    /// Records a message (`followed`: it followed the script, see [`MessageEvent::followed`]);
    /// returns its kind and role fields.
    fn event(
        &self,
        d: &dyn AnyMessage,
        bytes: usize,
        to_server: bool,
        source: Source,
        followed: bool,
    ) -> (String, Vec<RoleField>) {
        let desc = Description::of(d);
        let kind = desc.kind(self.cfg.service.text);
        self.cfg.events.message(MessageEvent {
            connection: self.id,
            to_server,
            kind: kind.clone(),
            length: bytes,
            source,
            roles: desc.roles.iter().map(ToString::to_string).collect(),
            followed,
        });
        (kind, desc.roles)
    }

    fn first_reply(&mut self) {
        if !self.replied {
            self.replied = true;
            self.cfg
                .events
                .first_reply(self.id, self.started.elapsed().as_secs_f64() * 1000.0);
        }
    }
}

/// Serves one attacker connection to its end (or until `shutdown` turns true), recording it in
/// the event store; returns the connection's id, outcome and detail.
pub async fn serve_connection(
    cfg: Arc<SessionConfig>,
    mut sock: TcpStream,
    attacker: SocketAddr,
    telescope: SocketAddr,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> (i64, Outcome, String) {
    let id = cfg
        .events
        .connection(attacker, telescope, &cfg.service.name);
    let mut s = Session {
        cfg: cfg.clone(),
        id,
        attacker,
        telescope,
        started: Instant::now(),
        replied: false,
        files: Files::new(cfg.max_artifact),
        deviated: None,
    };
    let (outcome, detail) = tokio::select! {
        r = scripted(&mut s, &mut sock) => r,
        _ = shutdown.wait_for(|stop| *stop) => (Outcome::Error, "the farm shut down".to_string()),
    };
    let _ = sock.shutdown().await;
    let dropped = s.files.dropped;
    for (name, content) in std::mem::take(&mut s.files).into_files() {
        cfg.events.artifact(id, &name, content);
    }
    let detail = if dropped > 0 {
        format!("{detail} ({dropped} bytes written beyond the artifact limit not kept)")
    } else {
        detail
    };
    cfg.events.end(id, outcome.clone(), &detail);
    (id, outcome, detail)
}

/// Reads more of the attacker's bytes; `Ok(false)` at the end of the stream.
async fn read_more(
    sock: &mut TcpStream,
    buf: &mut BytesMut,
    idle: Duration,
    max: usize,
) -> Result<bool, String> {
    if buf.len() > max {
        return Err(format!("a message longer than {max} bytes"));
    }
    match tokio::time::timeout(idle, sock.read_buf(buf)).await {
        Err(_) => Err(format!("silent for {} s", idle.as_secs())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(0)) => Ok(false),
        Ok(Ok(_)) => Ok(true),
    }
}

/// The scripted phase, and the handoff when the attacker deviates.
async fn scripted(s: &mut Session, sock: &mut TcpStream) -> (Outcome, String) {
    let cfg = s.cfg.clone();
    let svc = &cfg.service;
    let audience = Audience {
        telescope: s.telescope.ip(),
        attacker: s.attacker.ip(),
    };
    let mut conv = Conversation::new();
    let mut buf = BytesMut::new();
    let mut history: Vec<Exchange> = Vec::new();
    let mut cand: Option<Candidate> = None;
    let mut count = 0usize;

    // Services where the server speaks first: the first script's banner.
    if let Some(script) = cfg.library.server_first(&svc.name).into_iter().next() {
        let mut c = Candidate::new(script);
        cfg.events.script(s.id, &c.script);
        match c.serve(audience) {
            Ok(step) => match send(s, sock, &mut conv, step.replies).await {
                Ok(replies) => history.push(Exchange {
                    request: None,
                    replies,
                }),
                Err(e) => return (Outcome::Error, e),
            },
            Err(d) => return (Outcome::Error, d.to_string()),
        }
        cand = Some(c);
    }

    loop {
        let before = conv.clone();
        let d = match conv.next_message(svc.client, &mut buf, true, cfg.max_message) {
            Ok(Some(d)) => d,
            Ok(None) => match read_more(sock, &mut buf, cfg.idle_timeout, cfg.max_message).await {
                Ok(true) => continue,
                Ok(false) if buf.is_empty() && count > 0 => {
                    return (Outcome::Scripted, String::new());
                }
                Ok(false) if buf.is_empty() => {
                    return (Outcome::Error, "closed before sending anything".into());
                }
                Ok(false) => {
                    return (
                        Outcome::Error,
                        format!("closed in the middle of a message ({} bytes)", buf.len()),
                    );
                }
                Err(e) => return (Outcome::Error, e),
            },
            Err(e @ FrameError::Decode(_)) => {
                return (
                    Outcome::Error,
                    format!("attacker message {count} does not decode: {e}"),
                )
            }
            Err(e) => return (Outcome::Error, format!("attacker message {count}: {e}")),
        };
        s.files.collect(d.msg.as_ref());
        let followed = match cand.as_mut() {
            Some(c) => c.accept(d.msg.as_ref()).map(|()| c),
            None => {
                let first = MatchKey::of_any(d.msg.as_ref());
                let mut found = None;
                for script in cfg.library.candidates(&svc.name, &first) {
                    let mut c = Candidate::new(script);
                    if c.accept(d.msg.as_ref()).is_ok() {
                        found = Some(c);
                        break;
                    }
                }
                match found {
                    Some(c) => {
                        cfg.events.script(s.id, &c.script);
                        Ok(cand.insert(c))
                    }
                    None => Err(Deviation(format!(
                        "no {} script starts with this message",
                        svc.name
                    ))),
                }
            }
        };
        let step = followed.and_then(|c| c.serve(audience));
        // Recorded once the script accepted it or not: the store keeps only what differs.
        s.event(
            d.msg.as_ref(),
            d.bytes.len(),
            true,
            Source::Attacker,
            step.is_ok(),
        );
        match step {
            Ok(step) => {
                let replies = match send(s, sock, &mut conv, step.replies).await {
                    Ok(r) => r,
                    Err(e) => return (Outcome::Error, e),
                };
                history.push(Exchange {
                    request: Some((d.bytes.clone(), before)),
                    replies,
                });
            }
            Err(deviation) => {
                return handoff(s, sock, buf, conv, history, d, count, deviation).await;
            }
        }
        count += 1;
    }
}

/// Sends script replies to the attacker; returns what the handoff needs to know of them.
async fn send(
    s: &mut Session,
    sock: &mut TcpStream,
    conv: &mut Conversation,
    replies: Vec<Bytes>,
) -> Result<Vec<Sent>, String> {
    let mut sent = Vec::with_capacity(replies.len());
    for r in replies {
        // Decoded on the attacker's side too: later requests may recall what it remembers.
        let d = conv
            .decode(s.cfg.service.server, r.clone(), false)
            .map_err(|e| format!("a rewritten reply does not decode: {e}"))?;
        sock.write_all(&r).await.map_err(|e| e.to_string())?;
        s.first_reply();
        let (kind, fields) = s.event(d.msg.as_ref(), r.len(), false, Source::Script, true);
        sent.push(Sent {
            key: MatchKey::of_any(d.msg.as_ref()),
            fields,
            kind,
        });
    }
    Ok(sent)
}

/// Rewrites a decoded message for the other side and encodes it.
fn translate(
    msg: &mut dyn AnyMessage,
    map: &ValueMap,
    way: Way,
    (from, to): (std::net::IpAddr, std::net::IpAddr),
    names: &[(String, String)],
) -> Result<Bytes, String> {
    let mut rw = Rewrite::new();
    rw.cookies = Some((map, way));
    rw.addresses = vec![(from, to)];
    rw.names = names.to_vec();
    msg.visit_mut(&mut rw);
    if let Some((field, e)) = rw.errors.first() {
        return Err(format!("cannot rewrite {field}: {e}"));
    }
    let mut out = BytesMut::new();
    msg.encode(&mut out).map_err(|e| e.to_string())?;
    Ok(out.freeze())
}

/// Lends the session a honeypot for as long as it lives.
struct Held {
    pool: Arc<Pool>,
    lease: Option<Lease>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            let pool = self.pool.clone();
            // Stopping a honeypot waits for its processes; refilling starts new ones.
            std::thread::spawn(move || {
                pool.release(lease);
                match pool.fill() {
                    Ok(()) | Err(HoneypotError::Closed) => {}
                    Err(e) => eprintln!("honeyfarm: refilling the honeypot pool: {e}"),
                }
            });
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn handoff(
    s: &mut Session,
    sock: &mut TcpStream,
    mut abuf: BytesMut,
    mut conv_a: Conversation,
    history: Vec<Exchange>,
    deviating: Decoded,
    at: usize,
    deviation: Deviation,
) -> (Outcome, String) {
    s.deviated = Some(Instant::now());
    let cfg = s.cfg.clone();
    let svc = &cfg.service;
    let failed = |detail: String| (Outcome::HandoffFailed { deviated_at: at }, detail);
    let Some(pool) = cfg.pool.clone() else {
        return failed(format!(
            "{deviation}; no honeypots are configured for {}",
            svc.name
        ));
    };
    let telescope = s.telescope.ip();
    let p = pool.clone();
    let lease = match tokio::task::spawn_blocking(move || p.lease(telescope)).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return failed(format!("{deviation}; {e}")),
        Err(e) => return failed(format!("{deviation}; the lease task failed: {e}")),
    };
    let _held = Held {
        pool,
        lease: Some(lease),
    };
    cfg.events.honeypot(s.id, &lease.honeypot.to_string());
    let mut hp =
        match tokio::time::timeout(cfg.reply_timeout, TcpStream::connect(lease.honeypot)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return failed(format!("{deviation}; honeypot {}: {e}", lease.honeypot)),
            Err(_) => {
                return failed(format!(
                    "{deviation}; honeypot {}: connect timed out",
                    lease.honeypot
                ))
            }
        };
    let hp_ip = lease.honeypot.ip();
    let mut map = ValueMap::new();
    let mut conv_h = Conversation::new();
    let mut hbuf = BytesMut::new();

    // Bring the honeypot up to speed: the attacker's messages so far, in the honeypot's values.
    for (n, ex) in history.iter().enumerate() {
        if let Some((bytes, before)) = &ex.request {
            let mut c = before.clone();
            let mut d = match c.decode(svc.client, bytes.clone(), true) {
                Ok(d) => d,
                Err(e) => return failed(format!("{deviation}; replaying message {n}: {e}")),
            };
            let out = match translate(
                d.msg.as_mut(),
                &map,
                Way::Forward,
                (telescope, hp_ip),
                &cfg.names,
            ) {
                Ok(o) => o,
                Err(e) => return failed(format!("{deviation}; replaying message {n}: {e}")),
            };
            if let Err(e) = conv_h.decode(svc.client, out.clone(), true) {
                return failed(format!(
                    "{deviation}; replayed message {n} does not decode: {e}"
                ));
            }
            if let Err(e) = hp.write_all(&out).await {
                return failed(format!("{deviation}; honeypot: {e}"));
            }
            s.event(d.msg.as_ref(), out.len(), true, Source::Replayed, false);
        }
        for sent in &ex.replies {
            let reply = loop {
                match conv_h.next_message(svc.server, &mut hbuf, false, cfg.max_message) {
                    Ok(Some(r)) => break r,
                    Ok(None) => {}
                    Err(e) => {
                        return failed(format!("{deviation}; honeypot reply does not decode: {e}"))
                    }
                }
                match read_more(&mut hp, &mut hbuf, cfg.reply_timeout, cfg.max_message).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return failed(format!(
                            "{deviation}; the honeypot closed the connection during the replay"
                        ))
                    }
                    Err(e) => return failed(format!("{deviation}; honeypot: {e}")),
                }
            };
            let (_, theirs) = s.event(
                reply.msg.as_ref(),
                reply.bytes.len(),
                false,
                Source::Replayed,
                false,
            );
            let key = MatchKey::of_any(reply.msg.as_ref());
            if let Some((path, got, want)) = key.first_difference(&sent.key) {
                return failed(format!(
                    "{deviation}; the honeypot answered {} differently: {path} is {got}, the attacker got {want}",
                    sent.kind
                ));
            }
            if let Err(e) = pair_cookies(&mut map, &sent.fields, &theirs) {
                return failed(format!("{deviation}; the honeypot's {}: {e}", sent.kind));
            }
        }
    }

    // The deviating message, then everything after, both ways.
    let mut d = deviating;
    match translate(
        d.msg.as_mut(),
        &map,
        Way::Forward,
        (telescope, hp_ip),
        &cfg.names,
    ) {
        Ok(out) => {
            let _ = conv_h.decode(svc.client, out.clone(), true);
            if let Err(e) = hp.write_all(&out).await {
                return failed(format!("{deviation}; honeypot: {e}"));
            }
            s.event(d.msg.as_ref(), out.len(), true, Source::Relayed, false);
        }
        Err(e) => return failed(format!("{deviation}; {e}")),
    }
    let bridged = Outcome::Bridged { deviated_at: at };
    match bridge(
        s,
        sock,
        &mut hp,
        &mut abuf,
        &mut hbuf,
        &mut conv_a,
        &mut conv_h,
        &mut map,
        hp_ip,
    )
    .await
    {
        End::Closed => (bridged, deviation.to_string()),
        End::Failed(e) => (bridged, format!("{deviation}; bridge ended: {e}")),
    }
}

/// Relays both ways until either side closes.
#[allow(clippy::too_many_arguments)]
async fn bridge(
    s: &mut Session,
    sock: &mut TcpStream,
    hp: &mut TcpStream,
    abuf: &mut BytesMut,
    hbuf: &mut BytesMut,
    conv_a: &mut Conversation,
    conv_h: &mut Conversation,
    map: &mut ValueMap,
    hp_ip: std::net::IpAddr,
) -> End {
    let cfg = s.cfg.clone();
    let svc = &cfg.service;
    let telescope = s.telescope.ip();
    let back_names: Vec<(String, String)> = cfg
        .names
        .iter()
        .map(|(script, honeypot)| (honeypot.clone(), script.clone()))
        .collect();
    loop {
        // Whole messages first: the attacker's may already be buffered.
        loop {
            match conv_a.next_message(svc.client, abuf, true, cfg.max_message) {
                Ok(Some(mut d)) => {
                    s.files.collect(d.msg.as_ref());
                    let out = match translate(
                        d.msg.as_mut(),
                        map,
                        Way::Forward,
                        (telescope, hp_ip),
                        &cfg.names,
                    ) {
                        Ok(o) => o,
                        Err(e) => return End::Failed(e),
                    };
                    let _ = conv_h.decode(svc.client, out.clone(), true);
                    if let Err(e) = hp.write_all(&out).await {
                        return End::Failed(format!("honeypot: {e}"));
                    }
                    s.event(d.msg.as_ref(), out.len(), true, Source::Relayed, false);
                }
                Ok(None) => break,
                Err(e) => return End::Failed(format!("attacker message does not decode: {e}")),
            }
        }
        loop {
            match conv_h.next_message(svc.server, hbuf, false, cfg.max_message) {
                Ok(Some(mut d)) => {
                    // Cookies the honeypot issues now stand for themselves on the attacker's
                    // side, or for a fresh value where the attacker already knows theirs.
                    for f in RoleFields::of_any(d.msg.as_ref()) {
                        if let Role::Cookie { namespace, .. } = f.role {
                            map.bind_new(namespace, f.value);
                        }
                    }
                    let out = match translate(
                        d.msg.as_mut(),
                        map,
                        Way::Backward,
                        (hp_ip, telescope),
                        &back_names,
                    ) {
                        Ok(o) => o,
                        Err(e) => return End::Failed(e),
                    };
                    let _ = conv_a.decode(svc.server, out.clone(), false);
                    if let Err(e) = sock.write_all(&out).await {
                        return End::Failed(format!("attacker: {e}"));
                    }
                    s.first_reply();
                    if let Some(t) = s.deviated.take() {
                        cfg.events.handoff(s.id, t.elapsed().as_secs_f64() * 1000.0);
                    }
                    s.event(d.msg.as_ref(), out.len(), false, Source::Relayed, false);
                }
                Ok(None) => break,
                Err(e) => return End::Failed(format!("honeypot message does not decode: {e}")),
            }
        }
        if abuf.len() > cfg.max_message || hbuf.len() > cfg.max_message {
            return End::Failed(format!("a message longer than {} bytes", cfg.max_message));
        }
        tokio::select! {
            r = tokio::time::timeout(cfg.idle_timeout, sock.read_buf(abuf)) => match r {
                Ok(Ok(0)) => return End::Closed,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return End::Failed(format!("attacker: {e}")),
                Err(_) => return End::Failed(format!("attacker silent for {} s", cfg.idle_timeout.as_secs())),
            },
            r = hp.read_buf(hbuf) => match r {
                Ok(0) => return End::Closed,
                Ok(_) => {}
                Err(e) => return End::Failed(format!("honeypot: {e}")),
            },
        }
    }
}

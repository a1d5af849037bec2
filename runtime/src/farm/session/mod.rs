//! One attacker connection, as a state type (after rustls's state machine): answered from a
//! script while the attacker follows it ([`scripted`]); on the first deviation handed to a
//! honeypot, the attacker's messages so far replayed to it and its cookies learnt from its
//! replies ([`handoff`]); then bridged, every message relayed both ways ([`bridge`]). Each step
//! takes its state and returns the next; [`End`] says how it finished.

mod bridge;
mod error;
mod handoff;
mod peer;
mod refusal;
mod relay;
mod scripted;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::codec::{AnyMessage, Description, RoleField};
use crate::replay::{Library, ServiceCodecs};

use super::artifacts::Files;
use super::events::{EventStore, MessageEvent, Outcome, Source};
use super::honeypot::Pool;
use super::metrics::Metrics;

pub use error::{End, SessionError, Side};
pub use peer::{Patience, Peer};

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
    /// Deadlines besides the idle timeout.
    pub deadlines: Deadlines,
    /// Where handoff latencies are counted, besides the event store.
    pub metrics: Option<Arc<Metrics>>,
}

/// How long an attacker may take, besides staying silent (`None`: no limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadlines {
    /// From the first byte of a message to its last: a trickle of bytes that never makes a
    /// message does not hold the connection forever.
    pub message: Option<Duration>,
    /// From the connection to its end.
    pub session: Option<Duration>,
}

/// A session's context, whatever its state: who it is with, and what it records.
pub struct Session {
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
    /// Messages that did not decode where they were sent.
    undecodable: usize,
}

/// Where a session is.
enum State {
    Scripted(scripted::Scripted),
    HandingOff(handoff::HandingOff),
    /// Boxed: two peers.
    Bridged(Box<bridge::Bridged>),
    Finished(End),
}

impl Session {
    /// Records a message (`followed`: it followed the script, so the store keeps only what
    /// differs from it, see [`MessageEvent::followed`]); returns its kind and role fields.
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

    /// Counts and records a message that does not decode where it went (or came from).
    fn undecodable(
        &mut self,
        to_server: bool,
        length: usize,
        source: Source,
        error: &dyn std::fmt::Display,
    ) {
        self.undecodable += 1;
        self.cfg.events.message(MessageEvent {
            connection: self.id,
            to_server,
            kind: UNDECODABLE.to_string(),
            length,
            source,
            roles: vec![error.to_string()],
            followed: false,
        });
    }

    /// Records a failed read as an undecodable message, if that is what it was.
    fn read_failed(&mut self, e: &SessionError, source: Source) {
        if let SessionError::Undecodable { side, .. } | SessionError::Frame { side, .. } = e {
            self.undecodable(*side == Side::Attacker, 0, source, e);
        }
    }

    fn first_reply(&mut self) {
        if !self.replied {
            self.replied = true;
            self.cfg
                .events
                .first_reply(self.id, self.started.elapsed().as_secs_f64() * 1000.0);
        }
    }

    /// The honeypot's first answer reached the attacker.
    fn handed_over(&mut self) {
        if let Some(t) = self.deviated.take() {
            let took = t.elapsed();
            self.cfg
                .events
                .handoff(self.id, took.as_secs_f64() * 1000.0);
            if let Some(m) = &self.cfg.metrics {
                m.handoff(took);
            }
        }
    }
}

/// The `kind` of a message event for a message that did not decode (its `roles`: the error).
pub const UNDECODABLE: &str = "undecodable";

/// Runs a session's steps from `state` to its end.
async fn run(s: &mut Session, mut state: State) -> End {
    loop {
        state = match state {
            State::Scripted(x) => x.step(s).await,
            // The rare states' futures boxed: every session's task holds the largest of these
            // inline, an idle scripted one included.
            State::HandingOff(x) => Box::pin(x.step(s)).await,
            State::Bridged(x) => Box::pin(x.step(s)).await,
            State::Finished(end) => return end,
        }
    }
}

/// Serves one attacker connection to its end (or until `shutdown` turns true), recording it in
/// the event store; returns the connection's id, outcome and detail.
pub async fn serve_connection(
    cfg: Arc<SessionConfig>,
    sock: TcpStream,
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
        undecodable: 0,
    };
    let peer = Peer::new(
        Side::Attacker,
        sock,
        &cfg.service,
        cfg.max_message,
        Patience {
            idle: Some(cfg.idle_timeout),
            message: cfg.deadlines.message,
        },
    );
    let state = State::Scripted(scripted::Scripted::new(peer));
    let lifetime = async {
        match cfg.deadlines.session {
            Some(d) => tokio::time::timeout(d, run(&mut s, state))
                .await
                .unwrap_or(End::Failed(SessionError::TooLong(d.as_millis()))),
            None => run(&mut s, state).await,
        }
    };
    let end = tokio::select! {
        end = lifetime => end,
        _ = shutdown.wait_for(|stop| *stop) => End::Shutdown,
    };
    let (outcome, mut detail) = (end.outcome(), end.detail());
    let dropped = s.files.dropped;
    for (name, content) in std::mem::take(&mut s.files).into_files() {
        cfg.events.artifact(id, &name, content);
    }
    if dropped > 0 {
        detail = format!("{detail} ({dropped} bytes written beyond the artifact limit not kept)");
    }
    if s.undecodable > 0 {
        detail = format!(
            "{detail} ({} messages did not decode where they went)",
            s.undecodable
        );
    }
    cfg.events.end(id, outcome.clone(), &detail);
    (id, outcome, detail)
}

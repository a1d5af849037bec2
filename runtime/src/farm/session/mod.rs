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

use error::Deviated;
pub use error::{End, SessionError, Side};
pub use peer::{Patience, Peer};
pub use refusal::Unframeable;

/// What every session of one listener shares.
pub struct SessionConfig {
    pub service: ServiceCodecs,
    /// How the service's real server ends a message the farm cannot frame.
    pub unframeable: Unframeable,
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
    /// Where the session went once it deviated (boxed: most never do).
    reached: Option<Box<Deviated>>,
}

/// Where a session is. Each state is boxed: the loop in [`run`] holds the state it was given
/// while that state's step runs, so an inline state would be held twice in every session's
/// future (its step holds it too), idle ones included.
enum State {
    Scripted(Box<scripted::Scripted>),
    HandingOff(Box<handoff::HandingOff>),
    /// Two peers.
    Bridged(Box<bridge::Bridged>),
    /// Boxed too: [`run`] holds its argument and its loop variable, each as large as a state.
    Finished(Box<End>),
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

    /// The session deviated at attacker message `at` and is handing off, or `bridged`.
    fn reach(&mut self, at: usize, deviation: &crate::replay::Deviation, bridged: bool) {
        self.reached = Some(Box::new(Deviated {
            at,
            deviation: deviation.clone(),
            bridged,
        }));
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
            State::HandingOff(x) => {
                s.reach(x.at, &x.deviation, false);
                Box::pin((*x).step(s)).await
            }
            State::Bridged(x) => {
                s.reach(x.at, &x.deviation, true);
                Box::pin(x.step(s)).await
            }
            State::Finished(end) => return *end,
        }
    }
}

/// Serves one attacker connection to its end (or until `shutdown` turns true), recording it in
/// the event store (its row when called); the future returns the connection's id, outcome and
/// detail. Not an `async fn`: its arguments, moved into the session, would keep their own
/// slots in the future for as long as the connection lives.
pub fn serve_connection(
    cfg: Arc<SessionConfig>,
    sock: TcpStream,
    attacker: SocketAddr,
    telescope: SocketAddr,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = (i64, Outcome, String)> + Send {
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
        reached: None,
    };
    // Built in one expression: a `Peer` or `Scripted` local would keep its own slot in this
    // future for as long as the connection lives.
    let state = State::Scripted(Box::new(scripted::Scripted::new(Peer::new(
        Side::Attacker,
        sock,
        &cfg.service,
        cfg.max_message,
        Patience {
            idle: Some(cfg.idle_timeout),
            message: cfg.deadlines.message,
        },
    ))));
    async move {
        let too_long = async {
            match cfg.deadlines.session {
                Some(d) => {
                    tokio::time::sleep(d).await;
                    d
                }
                None => std::future::pending().await,
            }
        };
        let end = tokio::select! {
            // In this order: a session that ends as its deadline passes has ended.
            biased;
            end = run(&mut s, state) => end,
            // Cut off wherever it is: it ends as that state ends on an error.
            d = too_long => End::cut(s.reached.take(), SessionError::TooLong(d.as_millis())),
            _ = shutdown.wait_for(|stop| *stop) => End::Shutdown,
        };
        let (outcome, mut detail) = (end.outcome(), end.detail());
        let dropped = s.files.dropped;
        for (name, content) in std::mem::take(&mut s.files).into_files() {
            cfg.events.artifact(id, &name, content);
        }
        if dropped > 0 {
            detail =
                format!("{detail} ({dropped} bytes written beyond the artifact limit not kept)");
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
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::mem::size_of;

    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn returns<A, B, F: Future>(_: fn(A, B) -> F) -> usize {
        size_of::<F>()
    }

    fn returns5<A, B, C, D, E, F: Future>(_: fn(A, B, C, D, E) -> F) -> usize {
        size_of::<F>()
    }

    /// What an idle connection's task holds inline (`--nocapture` prints it): the session
    /// future is allocated once per connection, so its size is part of every idle
    /// connection's memory, whatever state it is in.
    #[test]
    fn an_idle_session_future_stays_small() {
        let connection = returns5(
            serve_connection as fn(Arc<SessionConfig>, TcpStream, SocketAddr, SocketAddr, _) -> _,
        );
        let scripted = returns(scripted::Scripted::step as fn(Box<_>, &'static mut Session) -> _);
        let handoff = returns(handoff::HandingOff::step as fn(_, &'static mut Session) -> _);
        let bridged = returns(bridge::Bridged::step as fn(_, &'static mut Session) -> _);
        let rows = [
            ("serve_connection future", connection),
            ("Session", size_of::<Session>()),
            ("State", size_of::<State>()),
            ("Scripted", size_of::<scripted::Scripted>()),
            ("Scripted::step future", scripted),
            ("HandingOff::step future (boxed)", handoff),
            ("Bridged::step future (boxed)", bridged),
            ("Peer", size_of::<Peer>()),
            ("FrameBuf", size_of::<crate::codec::FrameBuf>()),
            ("Conversation", size_of::<crate::replay::Conversation>()),
            ("Candidates", size_of::<crate::replay::Candidates>()),
            ("tokio Sleep", size_of::<tokio::time::Sleep>()),
            ("TcpStream", size_of::<TcpStream>()),
        ];
        for (what, bytes) in rows {
            println!("{what:34} {bytes:6} bytes");
        }
        assert!(
            connection <= 1152,
            "the session future is {connection} bytes"
        );
    }
}

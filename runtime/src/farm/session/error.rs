//! What ends a session early, and how its end becomes an outcome and a detail.

use std::net::SocketAddr;

use crate::codec::{DecodeError, FrameError};
use crate::replay::Deviation;
use crate::rewrite::RewriteError;

use super::super::events::Outcome;
use super::super::honeypot::HoneypotError;

/// The two ends of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Attacker,
    Honeypot,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Attacker => "attacker",
            Side::Honeypot => "honeypot",
        })
    }
}

/// Why a session (or one of its phases) cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("closed before sending anything")]
    NothingSent,
    #[error("closed in the middle of a message ({0} bytes)")]
    ClosedMidMessage(usize),
    #[error("the {0} closed the connection")]
    Closed(Side),
    #[error("{side} silent for {secs} s")]
    Silent { side: Side, secs: u64 },
    #[error("{side} read nothing of a reply for {secs} s")]
    NotReading { side: Side, secs: u64 },
    #[error("{side} took more than {ms} ms to send message {at}")]
    SlowMessage { side: Side, at: usize, ms: u128 },
    #[error("the session lasted more than {0} ms")]
    TooLong(u128),
    #[error("{side}: {source}")]
    Io { side: Side, source: std::io::Error },
    #[error("{side} message {at} does not decode: {source}")]
    Undecodable {
        side: Side,
        at: usize,
        source: DecodeError,
    },
    #[error("{side} message {at}: {source}")]
    Frame {
        side: Side,
        at: usize,
        source: FrameError,
    },
    #[error("a rewritten reply does not decode: {0}")]
    ReplyUndecodable(DecodeError),
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
    #[error(transparent)]
    Script(#[from] Deviation),
    #[error("no honeypots are configured for {0}")]
    NoHoneypots(String),
    #[error(transparent)]
    Lease(#[from] HoneypotError),
    #[error("the lease task failed: {0}")]
    LeaseTask(String),
    #[error("honeypot {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("honeypot {0}: connect timed out")]
    ConnectTimeout(SocketAddr),
    #[error("replaying message {at}: {source}")]
    Replay {
        at: usize,
        source: Box<SessionError>,
    },
    #[error("the honeypot answered {kind} differently: {path} is {got}, the attacker got {want}")]
    Differs {
        kind: String,
        path: String,
        got: String,
        want: String,
    },
    #[error("the honeypot's {kind}: {reason}")]
    Cookies { kind: String, reason: String },
}

/// How a session ended: the outcome and the detail derive from it.
#[derive(Debug)]
pub enum End {
    /// The attacker followed a script to its end.
    Scripted,
    /// Ended before any deviation.
    Failed(SessionError),
    /// No first message of the protocol came (nothing, a fragment or something else); ended
    /// as the real server ends it.
    NotProtocol(SessionError),
    /// Deviated at attacker message `at`; no honeypot took over.
    HandoffFailed {
        at: usize,
        deviation: Deviation,
        error: SessionError,
    },
    /// Deviated at attacker message `at` and bridged until a side closed (`error: None`) or
    /// the bridge broke.
    Bridged {
        at: usize,
        deviation: Deviation,
        error: Option<SessionError>,
    },
    /// The farm shut down.
    Shutdown,
}

/// How far past its script a session got: kept for an end that comes from outside its states
/// (the session deadline), which must still say where the session was.
#[derive(Debug)]
pub struct Deviated {
    /// The deviating message's index among the attacker's.
    pub at: usize,
    pub deviation: Deviation,
    /// A honeypot took over: the session is bridged, not handing off.
    pub bridged: bool,
}

impl End {
    /// The end of a session cut off by `error` (its deadline), as its state ends on an error
    /// of its own: before any deviation a failure, while handing off a failed handoff, bridged
    /// a bridge that broke (its outcome still `bridged`).
    pub fn cut(reached: Option<Box<Deviated>>, error: SessionError) -> End {
        match reached.map(|r| *r) {
            None => End::Failed(error),
            Some(Deviated {
                at,
                deviation,
                bridged: false,
            }) => End::HandoffFailed {
                at,
                deviation,
                error,
            },
            Some(Deviated {
                at,
                deviation,
                bridged: true,
            }) => End::Bridged {
                at,
                deviation,
                error: Some(error),
            },
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            End::Scripted => Outcome::Scripted,
            End::NotProtocol(_) => Outcome::NotProtocol,
            End::Failed(_) | End::Shutdown => Outcome::Error,
            End::HandoffFailed { at, .. } => Outcome::HandoffFailed { deviated_at: *at },
            End::Bridged { at, .. } => Outcome::Bridged { deviated_at: *at },
        }
    }

    pub fn detail(&self) -> String {
        match self {
            End::Scripted => String::new(),
            End::Failed(e) | End::NotProtocol(e) => e.to_string(),
            End::Shutdown => "the farm shut down".into(),
            End::HandoffFailed {
                deviation, error, ..
            } => format!("{deviation}; {error}"),
            End::Bridged {
                deviation,
                error: None,
                ..
            } => deviation.to_string(),
            End::Bridged {
                deviation,
                error: Some(e),
                ..
            } => format!("{deviation}; bridge ended: {e}"),
        }
    }
}

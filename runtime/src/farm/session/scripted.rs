//! The scripted phase: the attacker's messages matched against the scripts, answered with
//! their replies rewritten for this attacker; what was sent is kept for a handoff.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{AnyMessage, MatchKey, RoleFields};
use crate::replay::{Audience, Candidates, Deviation, Script, Step, Walked};

use super::super::events::{Differences, FollowedEvent, Source};
use super::error::{End, SessionError};
use super::handoff::HandingOff;
use super::peer::Peer;
use super::refusal::refuse;
use super::{Session, State};

/// An attacker message answered from the script, and the answers, kept as their bytes (exact
/// copies: an idle session holds neither receive buffers nor decoded messages); the rare
/// handoff decodes them again.
pub struct Exchange {
    /// The attacker's message (none for a banner).
    pub request: Option<Bytes>,
    pub replies: Vec<Bytes>,
}

pub struct Scripted {
    attacker: Peer,
    /// What was exchanged so far, for a handoff (empty without honeypots).
    history: Vec<Exchange>,
    /// Every script the dialog still fits; the first answers.
    cands: Candidates,
    /// The script recorded as the connection's (the first to answer).
    recorded: Option<Arc<Script>>,
    /// Another script answers now: the messages from here on are not the recorded script's
    /// and are stored whole.
    switched: bool,
}

/// Where the scripted phase led.
enum Next {
    /// The attacker closed after following a script.
    Done,
    Deviated {
        msg: Box<dyn AnyMessage>,
        at: usize,
        deviation: Deviation,
    },
}

impl Scripted {
    pub fn new(attacker: Peer) -> Self {
        Scripted {
            attacker,
            history: Vec::new(),
            cands: Candidates::default(),
            recorded: None,
            switched: false,
        }
    }

    pub async fn step(mut self: Box<Self>, s: &mut Session) -> State {
        match self.run(s).await {
            Ok(Next::Deviated { msg, at, deviation }) => State::HandingOff(Box::new(HandingOff {
                attacker: self.attacker,
                history: self.history,
                deviating: msg,
                at,
                deviation,
            })),
            Ok(Next::Done) => {
                self.attacker.shutdown().await;
                State::Finished(Box::new(End::Scripted))
            }
            Err(e) => {
                s.read_failed(&e, Source::Attacker);
                // A first message that is not the protocol at all (nmap -sV's GetRequest,
                // HTTPOptions, RTSP probes on the SMB port) ends as the service's real server
                // ends it (`SessionConfig::unframeable`): Samba keeps waiting for the rest of
                // what it took for a message until the client gives up, up to the idle
                // timeout, or drops some session messages at once.
                let not_protocol = matches!(
                    e,
                    SessionError::Frame { at: 0, .. } | SessionError::Undecodable { at: 0, .. }
                );
                let reset = not_protocol && refuse(&mut self.attacker, &e, s.cfg.unframeable).await;
                if !reset {
                    self.attacker.shutdown().await;
                }
                // Nothing, a fragment or something else: never a first message of the protocol.
                let never_spoke = not_protocol
                    || matches!(
                        e,
                        SessionError::NothingSent | SessionError::ClosedMidMessage(_)
                    ) && self.attacker.messages_read() == 0;
                State::Finished(Box::new(if never_spoke {
                    End::NotProtocol(e)
                } else {
                    End::Failed(e)
                }))
            }
        }
    }

    async fn run(&mut self, s: &mut Session) -> Result<Next, SessionError> {
        let cfg = s.cfg.clone();
        let svc = &cfg.service;
        let audience = Audience {
            telescope: s.telescope.ip(),
            attacker: s.attacker.ip(),
        };
        // Services where the server speaks first: the first script's banner.
        self.cands = Candidates::new(cfg.library.server_first(&svc.name));
        if !self.cands.is_empty() {
            let step = self.cands.serve(audience)?;
            self.note_answering(s);
            let replies = self.send(s, step).await?;
            self.keep(
                s,
                Exchange {
                    request: None,
                    replies,
                },
            );
        }
        loop {
            let at = self.attacker.messages_read();
            let Some(d) = self.attacker.read_message().await? else {
                return match at {
                    0 => Err(SessionError::NothingSent),
                    _ => Ok(Next::Done),
                };
            };
            // Not kept past the message: its values share the receive buffer.
            let walked = Walked::of(d.msg.as_ref());
            if walked.has_artifacts() {
                s.files.collect(d.msg.as_ref());
            }
            let step = self
                .follow(s, d.msg.as_ref(), &walked)
                .and_then(|()| self.cands.serve(audience));
            if step.is_ok() {
                self.note_answering(s);
            }
            // Recorded once the script accepted it or not: the store keeps only what differs.
            match (&step, self.following()) {
                // The accepted message comes just before the first reply in the script.
                (Ok(step), Some(script)) if step.at > 0 => followed(
                    s,
                    script,
                    step.at - 1,
                    (d.bytes.len(), &walked),
                    Source::Attacker,
                ),
                _ => {
                    s.event(d.msg.as_ref(), d.bytes.len(), true, Source::Attacker, false);
                }
            }
            match step {
                Ok(step) => {
                    let replies = self.send(s, step).await?;
                    self.keep(
                        s,
                        Exchange {
                            request: Some(Bytes::copy_from_slice(&d.bytes)),
                            replies,
                        },
                    );
                }
                Err(deviation) => {
                    return Ok(Next::Deviated {
                        msg: d.msg,
                        at,
                        deviation,
                    })
                }
            }
        }
    }

    /// Keeps an exchange for a handoff; without honeypots there is none, and nothing is kept.
    fn keep(&mut self, s: &Session, exchange: Exchange) {
        if s.cfg.pool.is_some() {
            self.history.push(exchange);
        }
    }

    /// Matches the attacker's message against the scripts it still fits (at the first
    /// message: every script whose opening it matches).
    fn follow(
        &mut self,
        s: &Session,
        msg: &dyn AnyMessage,
        walked: &Walked,
    ) -> Result<(), Deviation> {
        if self.cands.is_empty() {
            let svc = &s.cfg.service;
            let none = || Deviation(format!("no {} script starts with this message", svc.name));
            self.cands =
                Candidates::new(s.cfg.library.candidates(&svc.name, &MatchKey::of_any(msg)));
            return self.cands.accept(msg, walked).map_err(|_| none());
        }
        self.cands.accept(msg, walked)
    }

    /// The recorded script while it is the one answering.
    fn following(&self) -> Option<Arc<Script>> {
        self.recorded.clone().filter(|_| !self.switched)
    }

    /// Records the first script to answer as the connection's; once another answers, the
    /// messages are no longer that script's (the store keeps them whole from then on).
    fn note_answering(&mut self, s: &Session) {
        let Some(now) = self.cands.answering() else {
            return;
        };
        match &self.recorded {
            None => {
                s.cfg.events.script(s.id, now);
                self.recorded = Some(now.clone());
            }
            Some(r) => self.switched |= !Arc::ptr_eq(r, now),
        }
    }

    /// Sends script replies to the attacker in one write; returns them as the history keeps
    /// them.
    async fn send(&mut self, s: &mut Session, step: Step) -> Result<Vec<Bytes>, SessionError> {
        // What the other candidates, if any, need to follow what was sent (none: nothing to
        // build).
        let others = self.cands.len() > 1;
        let following = self.following();
        let mut heard = Vec::new();
        for (i, r) in step.replies.iter().enumerate() {
            // Decoded on the attacker's side too: later requests may recall what it remembers.
            let d = self
                .attacker
                .note_sent(r)
                .map_err(SessionError::ReplyUndecodable)?;
            let msg = d.msg.as_ref();
            match &following {
                Some(script) => {
                    let walked = Walked::of(msg);
                    followed(
                        s,
                        script.clone(),
                        step.at + i,
                        (r.len(), &walked),
                        Source::Script,
                    );
                }
                None => {
                    s.event(msg, r.len(), false, Source::Script, false);
                }
            }
            if others {
                heard.push((MatchKey::of_any(msg), RoleFields::of_any(msg)));
            }
        }
        self.attacker.write_messages(&step.replies).await?;
        if !step.replies.is_empty() {
            s.first_reply();
        }
        if others {
            let heard: Vec<_> = heard.iter().map(|(k, f)| (k, f.as_slice())).collect();
            self.cands.heard(&heard);
        }
        Ok(step
            .replies
            .iter()
            .map(|r| Bytes::copy_from_slice(r))
            .collect())
    }
}

/// Records a message (`length` bytes, its fields walked) as following `script` at `index`:
/// what differs from the script's message, compared field by field.
fn followed(
    s: &Session,
    script: Arc<Script>,
    index: usize,
    (length, walked): (usize, &Walked),
    source: Source,
) {
    let Some(m) = script.messages.get(index) else {
        return;
    };
    let differences = Differences::between(length, walked, m);
    s.cfg.events.followed(FollowedEvent {
        connection: s.id,
        script,
        index,
        source,
        differences,
    });
}

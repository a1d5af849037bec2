//! The scripted phase: the attacker's messages matched against the scripts, answered with
//! their replies rewritten for this attacker; what was sent is kept for a handoff.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{AnyMessage, MatchKey, RoleFields, Value};
use crate::replay::{
    roles_of, Audience, Candidates, Decoded, Deviation, RoleRef, Script, Step, Walked,
};

use super::super::events::{Differences, FollowedEvent, Source};
use super::error::{End, SessionError, Side};
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

/// An attacker's message: recognised in its bytes (its role values, `None` for the script's;
/// its bytes), or decoded.
enum Incoming {
    Known(Vec<Option<Value>>, Bytes),
    Full(Decoded),
}

/// What an attacker's message calls for.
enum Answer {
    /// The step's replies, to the request (its bytes).
    Reply(Step, Bytes),
    End(Next),
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
        let ran = self.run(s).await;
        // A future of its own: what the end holds (the outcome, the error) then shares room
        // with the run's state instead of lying beside it in every session's future.
        self.end(s, ran).await
    }

    /// Where the scripted phase leads once it ran.
    async fn end(mut self: Box<Self>, s: &mut Session, ran: Result<Next, SessionError>) -> State {
        match ran {
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
                // Boxed: the rare refusal's wait is not part of every session's future.
                let reset = not_protocol
                    && Box::pin(refuse(&mut self.attacker, &e, s.cfg.unframeable)).await;
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
            // Boxed as in `answer`: the session's future does not carry the write's state.
            let replies = Box::pin(self.send(s, step)).await?;
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
            let Some(incoming) = self.next_incoming().await? else {
                return match at {
                    0 => Err(SessionError::NothingSent),
                    _ => Ok(Next::Done),
                };
            };
            let answer = match incoming {
                Incoming::Known(values, request) => self.known(s, audience, values, request)?,
                Incoming::Full(d) => self.full(s, audience, d, at),
            };
            match answer {
                Answer::Reply(step, request) => self.answer(s, step, request).await?,
                Answer::End(next) => return Ok(next),
            }
        }
    }

    /// Matches a decoded message and records it.
    fn full(&mut self, s: &mut Session, audience: Audience, d: Decoded, at: usize) -> Answer {
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
                (d.bytes.len(), walked.roles()),
                Source::Attacker,
            ),
            _ => {
                s.event(d.msg.as_ref(), d.bytes.len(), true, Source::Attacker, false);
            }
        }
        match step {
            Ok(step) => Answer::Reply(step, Bytes::copy_from_slice(&d.bytes)),
            Err(deviation) => Answer::End(Next::Deviated {
                msg: d.msg,
                at,
                deviation,
            }),
        }
    }

    /// The attacker's next message: recognised in its bytes while one script is followed and
    /// the message has the shape of its next one, else decoded; `None` when the attacker
    /// closed between messages.
    async fn next_incoming(&mut self) -> Result<Option<Incoming>, SessionError> {
        loop {
            if self.cands.len() == 1 && self.recorded.is_some() && !self.switched {
                let cands = &mut self.cands;
                let known = self.attacker.try_known(|b| cands.accept_bytes(b))?;
                if let Some((values, request)) = known {
                    return Ok(Some(Incoming::Known(values, request)));
                }
            }
            if let Some(d) = self.attacker.try_message()? {
                return Ok(Some(Incoming::Full(d)));
            }
            if !self.attacker.fill().await? {
                return match self.attacker.unframed().1 {
                    0 => Ok(None),
                    n => Err(SessionError::ClosedMidMessage(n)),
                };
            }
        }
    }

    /// Answers a message recognised in its bytes (role values `values`, `None` for the
    /// script's), with the outcome, events and bindings the full path gives it; `Some` when
    /// the scripted phase ends with it.
    fn known(
        &mut self,
        s: &mut Session,
        audience: Audience,
        values: Vec<Option<Value>>,
        request: Bytes,
    ) -> Result<Answer, SessionError> {
        let at = self.attacker.messages_read() - 1;
        let step = self.cands.serve(audience);
        if step.is_ok() {
            self.note_answering(s);
        }
        match (step, self.following()) {
            (Ok(step), Some(script)) if step.at > 0 => {
                if let Some(m) = script.messages.get(step.at - 1) {
                    let roles = roles_of(&m.fields, &values);
                    followed(
                        s,
                        script.clone(),
                        step.at - 1,
                        (request.len(), roles),
                        Source::Attacker,
                    );
                }
                Ok(Answer::Reply(step, request))
            }
            // Not seen with one script followed: decoded after all, and recorded as the full
            // path records it.
            (step, _) => {
                let d =
                    self.attacker
                        .decode_known()
                        .map_err(|source| SessionError::Undecodable {
                            side: Side::Attacker,
                            at,
                            source,
                        })?;
                s.event(d.msg.as_ref(), request.len(), true, Source::Attacker, false);
                Ok(match step {
                    Ok(step) => Answer::Reply(step, request),
                    Err(deviation) => Answer::End(Next::Deviated {
                        msg: d.msg,
                        at,
                        deviation,
                    }),
                })
            }
        }
    }

    /// Sends a step's replies to the attacker's `request` and keeps the exchange.
    async fn answer(
        &mut self,
        s: &mut Session,
        step: Step,
        request: Bytes,
    ) -> Result<(), SessionError> {
        // Boxed: a session waiting for its next message does not carry the write's state.
        let replies = Box::pin(self.send(s, step)).await?;
        self.keep(
            s,
            Exchange {
                request: Some(request),
                replies,
            },
        );
        Ok(())
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
    /// them (none without honeypots).
    async fn send(&mut self, s: &mut Session, step: Step) -> Result<Vec<Bytes>, SessionError> {
        // What the other candidates, if any, need to follow what was sent (none: nothing to
        // build).
        let others = self.cands.len() > 1;
        let following = self.following();
        let mut heard = Vec::new();
        for (i, r) in step.replies.iter().enumerate() {
            // A patched reply following the script: its role values are known, and its
            // decoding on the attacker's side waits until needed.
            let patched = step.patched.get(i).and_then(Option::as_ref);
            if let (Some(script), Some(changed), false) = (&following, patched, others) {
                self.attacker
                    .defer_sent(r.clone())
                    .map_err(SessionError::ReplyUndecodable)?;
                if let Some(m) = script.messages.get(step.at + i) {
                    let mut values = vec![None; m.fields.len()];
                    for (k, v) in changed {
                        if let Some(slot) = values.get_mut(*k) {
                            *slot = Some(v.clone());
                        }
                    }
                    let roles = roles_of(&m.fields, &values);
                    followed(
                        s,
                        script.clone(),
                        step.at + i,
                        (r.len(), roles),
                        Source::Script,
                    );
                }
                continue;
            }
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
                        (r.len(), walked.roles()),
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
        if others {
            let heard: Vec<_> = heard.iter().map(|(k, f)| (k, f.as_slice())).collect();
            self.cands.heard(&heard);
        }
        drop((heard, following));
        let replies = step.replies;
        self.attacker.write_messages(&replies).await?;
        if !replies.is_empty() {
            s.first_reply();
        }
        // Kept for a handoff only (the history keeps nothing without honeypots).
        Ok(match s.cfg.pool {
            Some(_) => replies,
            None => Vec::new(),
        })
    }
}

/// Records a message (`length` bytes, its role fields `roles`) as following `script` at
/// `index`: what differs from the script's message, compared field by field.
fn followed<'a>(
    s: &Session,
    script: Arc<Script>,
    index: usize,
    (length, roles): (usize, impl Iterator<Item = RoleRef<'a>> + Clone),
    source: Source,
) {
    let Some(m) = script.messages.get(index) else {
        return;
    };
    let differences = Differences::between_roles(length, roles, m);
    s.cfg.events.followed(FollowedEvent {
        connection: s.id,
        script,
        index,
        source,
        differences,
    });
}

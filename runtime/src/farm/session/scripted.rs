//! The scripted phase: the attacker's messages matched against the scripts, answered with
//! their replies rewritten for this attacker; what was sent is kept for a handoff.

use bytes::Bytes;

use crate::codec::{AnyMessage, MatchKey, RoleField};
use crate::replay::{Audience, Candidate, Deviation};

use super::super::events::Source;
use super::error::{End, SessionError};
use super::handoff::HandingOff;
use super::peer::Peer;
use super::{Session, State};

/// A reply the attacker got, as the handoff compares it with the honeypot's.
pub struct Sent {
    pub key: MatchKey,
    pub fields: Vec<RoleField>,
    pub kind: String,
}

/// An attacker message answered from the script, and the answers.
pub struct Exchange {
    /// The attacker's message (none for a banner).
    pub request: Option<Box<dyn AnyMessage>>,
    pub replies: Vec<Sent>,
}

pub struct Scripted {
    attacker: Peer,
    history: Vec<Exchange>,
    cand: Option<Candidate>,
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
            cand: None,
        }
    }

    pub async fn step(mut self, s: &mut Session) -> State {
        match self.run(s).await {
            Ok(Next::Deviated { msg, at, deviation }) => State::HandingOff(HandingOff {
                attacker: self.attacker,
                history: self.history,
                deviating: msg,
                at,
                deviation,
            }),
            Ok(Next::Done) => {
                self.attacker.shutdown().await;
                State::Finished(End::Scripted)
            }
            Err(e) => {
                s.read_failed(&e, Source::Attacker);
                self.attacker.shutdown().await;
                State::Finished(End::Failed(e))
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
        if let Some(script) = cfg.library.server_first(&svc.name).into_iter().next() {
            let mut c = Candidate::new(script);
            cfg.events.script(s.id, &c.script);
            let step = c.serve(audience)?;
            let replies = self.send(s, step.replies).await?;
            self.history.push(Exchange {
                request: None,
                replies,
            });
            self.cand = Some(c);
        }
        loop {
            let at = self.attacker.messages_read();
            let Some(d) = self.attacker.read_message().await? else {
                return match at {
                    0 => Err(SessionError::NothingSent),
                    _ => Ok(Next::Done),
                };
            };
            s.files.collect(d.msg.as_ref());
            let step = self
                .follow(s, d.msg.as_ref())
                .and_then(|c| c.serve(audience));
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
                    let replies = self.send(s, step.replies).await?;
                    self.history.push(Exchange {
                        request: Some(d.msg),
                        replies,
                    });
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

    /// The script the attacker's message follows: the one being followed, or the first whose
    /// opening it matches.
    fn follow(&mut self, s: &Session, msg: &dyn AnyMessage) -> Result<&mut Candidate, Deviation> {
        // A deviation ends the scripted phase: the candidate is not needed after it.
        let c = match self.cand.take() {
            Some(mut c) => {
                c.accept(msg)?;
                c
            }
            None => {
                let svc = &s.cfg.service;
                let first = MatchKey::of_any(msg);
                let found = s
                    .cfg
                    .library
                    .candidates(&svc.name, &first)
                    .into_iter()
                    .map(Candidate::new)
                    .find_map(|mut c| c.accept(msg).is_ok().then_some(c));
                let Some(c) = found else {
                    return Err(Deviation(format!(
                        "no {} script starts with this message",
                        svc.name
                    )));
                };
                s.cfg.events.script(s.id, &c.script);
                c
            }
        };
        Ok(self.cand.insert(c))
    }

    /// Sends script replies to the attacker; returns what the handoff needs to know of them.
    async fn send(
        &mut self,
        s: &mut Session,
        replies: Vec<Bytes>,
    ) -> Result<Vec<Sent>, SessionError> {
        let mut sent = Vec::with_capacity(replies.len());
        for r in replies {
            // Decoded on the attacker's side too: later requests may recall what it remembers.
            let d = self
                .attacker
                .note_sent(&r)
                .map_err(SessionError::ReplyUndecodable)?;
            self.attacker.write_message(&r).await?;
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
}

//! The bridge: every message of either side relayed to the other until one closes.

use crate::replay::Deviation;

use super::super::events::Source;
use super::error::{End, SessionError, Side};
use super::handoff::Held;
use super::peer::Peer;
use super::refusal::refuse;
use super::relay::{relay, Link};
use super::{Session, State};

pub struct Bridged {
    pub attacker: Peer,
    pub honeypot: Peer,
    pub link: Link,
    /// The honeypot's lease, given back when the session ends.
    pub held: Held,
    pub at: usize,
    pub deviation: Deviation,
}

impl Bridged {
    pub async fn step(mut self, s: &mut Session) -> State {
        let error = self.relay_all(s).await.err();
        if let Some(e) = &error {
            s.read_failed(e, Source::Relayed);
        }
        // An attacker's message that cannot be framed ends the bridge as the server would end
        // it (nmap's mongodb probe: Samba waits, the farm closed).
        let reset = match &error {
            Some(
                e @ SessionError::Frame {
                    side: Side::Attacker,
                    ..
                },
            ) => refuse(&mut self.attacker, e, s.cfg.unframeable).await,
            _ => false,
        };
        if !reset {
            self.attacker.shutdown().await;
        }
        drop(self.held);
        State::Finished(Box::new(End::Bridged {
            at: self.at,
            deviation: self.deviation,
            error,
        }))
    }

    /// Relays both ways; `Ok` when a side closes.
    async fn relay_all(&mut self, s: &mut Session) -> Result<(), SessionError> {
        loop {
            // Whole messages first: the attacker's may already be buffered.
            while let Some(mut d) = self.attacker.try_message()? {
                s.files.collect(d.msg.as_ref());
                relay(
                    s,
                    d.msg.as_mut(),
                    &mut self.honeypot,
                    &mut self.link,
                    Source::Relayed,
                )
                .await?;
            }
            while let Some(mut d) = self.honeypot.try_message()? {
                relay(
                    s,
                    d.msg.as_mut(),
                    &mut self.attacker,
                    &mut self.link,
                    Source::Relayed,
                )
                .await?;
            }
            let more = tokio::select! {
                r = self.attacker.fill() => r?,
                r = self.honeypot.fill() => r?,
            };
            if !more {
                return Ok(());
            }
        }
    }
}

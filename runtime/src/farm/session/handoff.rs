//! The handoff: a honeypot leased for the deviating attacker, the attacker's messages so far
//! replayed to it (in its values) and its replies checked against what the attacker got, their
//! cookies paired; then the deviating message goes to it and the session is bridged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::codec::{AnyMessage, Description, MatchKey, RoleField};
use crate::replay::{pair_cookies, Conversation, Deviation};
use crate::rewrite::pair_domain_sids;

use super::super::events::Source;
use super::super::honeypot::{HoneypotError, Lease, Pool};
use super::bridge::Bridged;
use super::error::{End, SessionError, Side};
use super::peer::{Patience, Peer};
use super::relay::{relay, Link};
use super::scripted::Exchange;
use super::{Session, State};

pub struct HandingOff {
    pub attacker: Peer,
    pub history: Vec<Exchange>,
    pub deviating: Box<dyn AnyMessage>,
    /// The deviating message's index among the attacker's.
    pub at: usize,
    pub deviation: Deviation,
}

/// A reply the attacker got, as the honeypot's answer is checked against it.
struct Sent {
    key: MatchKey,
    fields: Vec<RoleField>,
    kind: String,
}

impl Sent {
    /// What the attacker got in `msg`, as decoded again from the history.
    fn of(msg: &dyn AnyMessage, text: bool) -> Sent {
        let desc = Description::of(msg);
        Sent {
            key: MatchKey::of_any(msg),
            kind: desc.kind(text),
            fields: desc.roles,
        }
    }
}

/// Lends the session a honeypot for as long as it lives.
pub struct Held {
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
                    Err(e) => tracing::warn!("refilling the honeypot pool: {e}"),
                }
            });
        }
    }
}

impl HandingOff {
    pub async fn step(mut self, s: &mut Session) -> State {
        s.deviated = Some(Instant::now());
        match self.take_over(s).await {
            Ok((honeypot, link, held)) => State::Bridged(Box::new(Bridged {
                attacker: self.attacker,
                honeypot,
                link,
                held,
                at: self.at,
                deviation: self.deviation,
            })),
            Err(error) => {
                s.read_failed(&error, Source::Replayed);
                self.attacker.shutdown().await;
                State::Finished(Box::new(End::HandoffFailed {
                    at: self.at,
                    deviation: self.deviation,
                    error,
                }))
            }
        }
    }

    /// A honeypot brought up to speed, with the deviating message sent to it.
    async fn take_over(&mut self, s: &mut Session) -> Result<(Peer, Link, Held), SessionError> {
        let cfg = s.cfg.clone();
        let (mut hp, held, addr) = connect(s).await?;
        let mut link = Link::new(s.telescope.ip(), addr.ip(), &cfg.names);
        // The attacker's side of the conversation so far, decoded again in the order its
        // conversation saw it: the requests to relay, the replies to compare.
        let mut conv = Conversation::new();
        for (n, ex) in std::mem::take(&mut self.history).into_iter().enumerate() {
            if let Some(bytes) = ex.request {
                let mut d = conv
                    .decode(cfg.service.client, bytes, true)
                    .map_err(|source| SessionError::Undecodable {
                        side: Side::Attacker,
                        at: n,
                        source,
                    })?;
                relay(s, d.msg.as_mut(), &mut hp, &mut link, Source::Replayed)
                    .await
                    .map_err(|e| match e {
                        e @ SessionError::Io { .. } => e,
                        e => SessionError::Replay {
                            at: n,
                            source: Box::new(e),
                        },
                    })?;
            }
            for bytes in ex.replies {
                let d = conv
                    .decode(cfg.service.server, bytes, false)
                    .map_err(SessionError::ReplyUndecodable)?;
                let sent = Sent::of(d.msg.as_ref(), cfg.service.text);
                check_reply(s, &mut hp, &mut link, &sent).await?;
            }
        }
        relay(
            s,
            self.deviating.as_mut(),
            &mut hp,
            &mut link,
            Source::Relayed,
        )
        .await?;
        // Bridged: the honeypot answers when it likes.
        hp.patience.idle = None;
        Ok((hp, link, held))
    }
}

/// Leases a honeypot and connects to it; returns it with its lease and the address it hears
/// itself called by.
async fn connect(s: &mut Session) -> Result<(Peer, Held, SocketAddr), SessionError> {
    let cfg = s.cfg.clone();
    let Some(pool) = cfg.pool.clone() else {
        return Err(SessionError::NoHoneypots(cfg.service.name.clone()));
    };
    let telescope = s.telescope.ip();
    let p = pool.clone();
    let lease = tokio::task::spawn_blocking(move || p.lease(telescope))
        .await
        .map_err(|e| SessionError::LeaseTask(e.to_string()))??;
    let held = Held {
        pool,
        lease: Some(lease),
    };
    cfg.events.honeypot(s.id, &lease.honeypot.to_string());
    // The backend's socket: the netns backend makes the connection the attacker's.
    let (p, attacker) = (held.pool.clone(), s.attacker);
    let route = tokio::task::spawn_blocking(move || p.route(&lease, attacker))
        .await
        .map_err(|e| SessionError::LeaseTask(e.to_string()))??;
    let addr = route.connect;
    let sock = match tokio::time::timeout(cfg.reply_timeout, route.socket.connect(addr)).await {
        Ok(Ok(c)) => c,
        Ok(Err(source)) => return Err(SessionError::Connect { addr, source }),
        Err(_) => return Err(SessionError::ConnectTimeout(addr)),
    };
    let patience = Patience {
        idle: Some(cfg.reply_timeout),
        message: None,
    };
    let hp = Peer::new(
        Side::Honeypot,
        sock,
        &cfg.service,
        cfg.max_message,
        patience,
    );
    // Where the honeypot hears itself called.
    Ok((hp, held, SocketAddr::new(route.heard_as, addr.port())))
}

/// Reads the honeypot's answer to a replayed message: it must be what the attacker got, in the
/// honeypot's values (whose cookies are paired with the attacker's).
async fn check_reply(
    s: &mut Session,
    hp: &mut Peer,
    link: &mut Link,
    sent: &Sent,
) -> Result<(), SessionError> {
    let reply = hp
        .read_message()
        .await?
        .ok_or(SessionError::Closed(Side::Honeypot))?;
    let (_, theirs) = s.event(
        reply.msg.as_ref(),
        reply.bytes.len(),
        false,
        Source::Replayed,
        false,
    );
    let key = MatchKey::of_any(reply.msg.as_ref());
    // A domain SID of another machine (the script's) is an identity mapped from now on.
    let differs = key.first_difference(&sent.key).filter(|_| {
        let paired = pair_domain_sids(&mut link.map, &sent.key, &key);
        link.sids |= paired;
        !paired
    });
    if let Some((path, got, want)) = differs {
        return Err(SessionError::Differs {
            kind: sent.kind.clone(),
            path,
            got,
            want,
        });
    }
    pair_cookies(&mut link.map, &sent.fields, &theirs).map_err(|reason| SessionError::Cookies {
        kind: sent.kind.clone(),
        reason,
    })
}

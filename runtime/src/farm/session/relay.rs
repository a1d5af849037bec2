//! The relay: a message of one side, rewritten for the other (cookies through the value map,
//! addresses and host names), encoded, decoded on the other side's conversation, written and
//! recorded. The handoff's replay and the bridge, both ways, use this one path.

use std::net::IpAddr;

use crate::codec::{AnyMessage, Role, RoleFields};
use crate::rewrite::{DomainSids, Rewrite, ValueMap, Way};

use super::super::events::Source;
use super::error::{SessionError, Side};
use super::peer::Peer;
use super::Session;

/// How values change on the way to one side.
#[derive(Debug, Clone)]
struct Leg {
    way: Way,
    addresses: (IpAddr, IpAddr),
    names: Vec<(String, String)>,
}

/// The attacker's and a honeypot's views of one session: the cookies paired between them
/// (the attacker's on the left) and the rewriting each way.
#[derive(Debug)]
pub struct Link {
    pub map: ValueMap,
    /// The map pairs domain SIDs (the script's machine's with the honeypot's): messages
    /// carry them mapped too.
    pub sids: bool,
    to_honeypot: Leg,
    to_attacker: Leg,
}

impl Link {
    /// `telescope` is the address the attacker connected to, `honeypot` the honeypot's;
    /// `names` pairs the scripts' host names with the honeypots'.
    pub fn new(telescope: IpAddr, honeypot: IpAddr, names: &[(String, String)]) -> Self {
        Link {
            map: ValueMap::new(),
            sids: false,
            to_honeypot: Leg {
                way: Way::Forward,
                addresses: (telescope, honeypot),
                names: names.to_vec(),
            },
            to_attacker: Leg {
                way: Way::Backward,
                addresses: (honeypot, telescope),
                names: names.iter().map(|(s, h)| (h.clone(), s.clone())).collect(),
            },
        }
    }
}

/// Relays `msg` (decoded from the other side) to `to`.
pub async fn relay(
    s: &mut Session,
    msg: &mut dyn AnyMessage,
    to: &mut Peer,
    link: &mut Link,
    source: Source,
) -> Result<(), SessionError> {
    let leg = match to.side {
        Side::Honeypot => &link.to_honeypot,
        Side::Attacker => {
            // Cookies the honeypot issues now stand for themselves on the attacker's side, or
            // for a fresh value where the attacker already knows theirs.
            for f in RoleFields::of_any(msg) {
                if let Role::Cookie { namespace, .. } = f.role {
                    link.map.bind_new(namespace, &f.value);
                }
            }
            &link.to_attacker
        }
    };
    if link.sids {
        DomainSids::new(&link.map, leg.way).apply(msg)?;
    }
    let mut rw = Rewrite::new();
    rw.cookies = Some((&link.map, leg.way));
    rw.addresses = vec![leg.addresses];
    rw.names = leg.names.clone();
    let out = rw.apply(msg)?;
    let to_server = to.side == Side::Honeypot;
    if let Err(e) = to.note_sent(&out) {
        s.undecodable(to_server, out.len(), source, &e);
    }
    to.write_message(&out).await?;
    if to.side == Side::Attacker {
        s.first_reply();
        s.handed_over();
    }
    s.event(msg, out.len(), to_server, source, false);
    Ok(())
}

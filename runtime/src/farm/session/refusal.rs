//! Ending a connection whose messages the farm cannot frame the way the real server does. What
//! the real server does is the service's to say (the services table, next to its framing's
//! `max_frame`); this file only follows it.

use super::error::SessionError;
use super::peer::Peer;
use crate::codec::FrameError;

/// How a service's real server ends a connection whose first message (or, bridged, any of
/// the attacker's messages) the farm cannot frame or decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unframeable {
    /// Closes at once (the text servers, which drop what is not their protocol).
    Close,
    /// Waits for the rest until the client gives up.
    Wait,
    /// Reads the 4-byte header its own way: a header whose first byte is `kind` holds a length
    /// in the low `length_bits` bits of the 3 bytes after it. A message the farm's framing
    /// found too long is to this server one of that length: it waits until that much came,
    /// then reads it and closes (FIN) when exactly that much came, or with the rest unread (a
    /// reset) when more did. Another first byte, or another error: it waits.
    OwnLength { kind: u8, length_bits: u32 },
}

impl Unframeable {
    /// How the server ends the connection after `e`; `unframed` is the sender's first 4
    /// unframed bytes and their count.
    fn refusal(self, e: &SessionError, unframed: (Option<[u8; 4]>, usize)) -> Refusal {
        let (kind, length_bits) = match self {
            Unframeable::Close => return Refusal::Close,
            Unframeable::Wait => return Refusal::Wait,
            Unframeable::OwnLength { kind, length_bits } => (kind, length_bits),
        };
        let too_long = matches!(
            e,
            SessionError::Frame {
                source: FrameError::TooLong { .. },
                ..
            }
        );
        match unframed {
            (Some([first, a, b, c]), received) if too_long && first == kind => {
                let mask = (1u32 << length_bits.min(24)) - 1;
                let len = u32::from_be_bytes([0, a, b, c]) & mask;
                match received.cmp(&(4 + len as usize)) {
                    std::cmp::Ordering::Less => Refusal::Wait,
                    std::cmp::Ordering::Equal => Refusal::Close,
                    std::cmp::Ordering::Greater => Refusal::Reset,
                }
            }
            _ => Refusal::Wait,
        }
    }
}

/// What `honeyfarm specs` says of a service's rule.
impl std::fmt::Display for Unframeable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unframeable::Close => write!(f, "closed at once"),
            Unframeable::Wait => write!(f, "waited out until the client gives up"),
            Unframeable::OwnLength { kind, length_bits } => write!(
                f,
                "a too long header of type {kind:#04x} is read with the server's own \
                 {length_bits}-bit length: closed when that much came, reset when more did, \
                 waited on when less; anything else waited out"
            ),
        }
    }
}

/// What the server does, for one connection.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Waits for the rest until the client gives up.
    Wait,
    /// Closes (FIN).
    Close,
    /// Closes with bytes unread: a reset.
    Reset,
}

/// Ends `peer`'s connection after `e`, its message that cannot be framed, as the service's
/// real server would (`how`): waits it out, or leaves it to be closed, or resets it. True
/// when it was reset (no FIN may follow).
pub async fn refuse(peer: &mut Peer, e: &SessionError, how: Unframeable) -> bool {
    match how.refusal(e, peer.unframed()) {
        Refusal::Wait => {
            peer.wait_out().await;
            false
        }
        Refusal::Close => false,
        Refusal::Reset => {
            peer.reset();
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_own_length_server_waits_closes_or_resets_by_its_own_length() {
        let how = Unframeable::OwnLength {
            kind: 0,
            length_bits: 17,
        };
        let too_long = SessionError::Frame {
            side: super::super::error::Side::Attacker,
            at: 0,
            source: FrameError::TooLong {
                total: 0x0a_0007,
                max: 0x2_0003,
            },
        };
        // 24 bits say 0x0a0003 bytes, 17 say 3.
        let head = Some([0, 0x0a, 0, 3]);
        assert_eq!(how.refusal(&too_long, (head, 6)), Refusal::Wait);
        assert_eq!(how.refusal(&too_long, (head, 7)), Refusal::Close);
        assert_eq!(how.refusal(&too_long, (head, 9)), Refusal::Reset);
        // The 17th bit counts: 0x10003 bytes, not yet in.
        assert_eq!(
            how.refusal(&too_long, (Some([0, 0x0b, 0, 3]), 9)),
            Refusal::Wait
        );
        // Another type byte, or the text servers' rule.
        assert_eq!(
            how.refusal(&too_long, (Some([0x85, 0x0a, 0, 3]), 9)),
            Refusal::Wait
        );
        assert_eq!(
            Unframeable::Close.refusal(&too_long, (head, 9)),
            Refusal::Close
        );
        assert_eq!(
            Unframeable::Wait.refusal(&too_long, (head, 9)),
            Refusal::Wait
        );
    }
}

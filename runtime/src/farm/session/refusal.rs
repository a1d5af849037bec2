//! Ending a connection whose messages the farm cannot frame the way the real server does.

use super::error::SessionError;
use super::peer::Peer;
use crate::codec::FrameError;

/// How a server of the NetBIOS session framing (the binary services the farm carries) ends
/// a message the farm cannot frame.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Waits for the rest until the client gives up.
    Wait,
    /// Closes (FIN) once it has read the message.
    Close,
    /// Closes with bytes unread: a reset.
    Reset,
}

/// Samba frames SMB1 with NetBIOS's 17-bit length on every port: a session message (type byte
/// 0) that the farm's 24-bit length makes too long is to Samba a short one it reads, finds not
/// SMB and drops the connection over, the rest unread (nmap -sV's DNS and oracle-tns probes:
/// a reset), or one whose bytes it still waits for (the afp probe). Other type bytes are
/// NetBIOS control packets Samba waits on too (GetRequest; the mongodb probe's second
/// header). `unframed` is the sender's first 4 unframed bytes and their count.
fn refusal(e: &SessionError, unframed: (Option<[u8; 4]>, usize)) -> Refusal {
    let too_long = matches!(
        e,
        SessionError::Frame {
            source: FrameError::TooLong { .. },
            ..
        }
    );
    match unframed {
        (Some([0, flags, hi, lo]), received) if too_long => {
            let len = (usize::from(flags & 1) << 16) | (usize::from(hi) << 8) | usize::from(lo);
            match received.cmp(&(4 + len)) {
                std::cmp::Ordering::Less => Refusal::Wait,
                std::cmp::Ordering::Equal => Refusal::Close,
                std::cmp::Ordering::Greater => Refusal::Reset,
            }
        }
        _ => Refusal::Wait,
    }
}

/// Ends `peer`'s connection after `e`, its message that cannot be framed, as Samba would:
/// waits it out, or leaves it to be closed, or resets it. True when it was reset (no FIN may
/// follow).
pub async fn refuse(peer: &mut Peer, e: &SessionError) -> bool {
    match refusal(e, peer.unframed()) {
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

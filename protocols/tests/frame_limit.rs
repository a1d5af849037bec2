//! The largest frame comes from the spec (`framing DirectTcp max 0x20003;`): a NetBIOS header
//! that announces more is refused as soon as it is in, one at the limit is read whole.

use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::codec::{Entry, FrameBuf, FrameError};
use honeyfarm_runtime::replay::Conversation;

/// The farm's default `max_message_bytes`.
const CONFIGURED: usize = 1 << 20;

fn entry(name: &str) -> &'static Entry {
    REGISTRY.iter().find(|e| e.name == name).expect(name)
}

/// A direct-TCP header announcing `len` bytes.
fn header(len: usize) -> [u8; 4] {
    [0, (len >> 16) as u8, (len >> 8) as u8, len as u8]
}

/// An SMB1 NEGOTIATE request of exactly `len` bytes (padding after the block is its trailer).
fn smb_negotiate(len: usize) -> Vec<u8> {
    let mut smb = vec![0xff, b'S', b'M', b'B', 0x72, 0, 0, 0, 0, 0x18, 0x53, 0xc8];
    smb.extend_from_slice(&[0; 12]);
    smb.extend_from_slice(&[0xff, 0xff, 0xfe, 0xff, 0, 0, 0, 0]);
    let dialect = b"\x02NT LM 0.12\x00";
    smb.push(0);
    smb.extend_from_slice(&(dialect.len() as u16).to_le_bytes());
    smb.extend_from_slice(dialect);
    smb.resize(len, 0);
    smb
}

#[test]
fn netbios_declares_its_largest_frame() {
    for name in ["netbios.DirectTcp", "netbios.Session"] {
        let e = entry(name);
        assert_eq!(e.max_frame, Some(0x20003), "{name}");
        assert_eq!(e.max_message(CONFIGURED), 0x20003);
        assert_eq!(e.max_message(1000), 1000, "a smaller configured limit wins");
    }
    assert_eq!(entry("smb.Envelope").max_frame, None);
}

#[test]
fn a_longer_frame_is_refused_from_its_header() {
    let e = entry("netbios.DirectTcp");
    let mut buf = FrameBuf::new(e.max_message(CONFIGURED));
    buf.extend_from_slice(&header(0x20000));
    let mut conv = Conversation::new();
    match conv.next_message(e, &mut buf, true) {
        Err(FrameError::TooLong { total, max }) => {
            assert_eq!((total, max), (0x20004, 0x20003));
        }
        Err(e) => panic!("refused as too long, not {e}"),
        Ok(_) => panic!("refused at once"),
    }
}

#[test]
fn a_frame_at_the_limit_is_read() {
    let e = entry("netbios.DirectTcp");
    let mut buf = FrameBuf::new(e.max_message(CONFIGURED));
    let mut conv = Conversation::new();
    buf.extend_from_slice(&header(0x1ffff));
    assert!(conv.next_message(e, &mut buf, true).unwrap().is_none());
    buf.extend_from_slice(&smb_negotiate(0x1ffff));
    let d = conv
        .next_message(e, &mut buf, true)
        .unwrap()
        .expect("a whole frame");
    assert_eq!(d.bytes.len(), 0x20003);
    assert!(buf.is_empty());
}

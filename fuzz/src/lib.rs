//! What the fuzz targets share: a stream cut into messages by the farm's own framing path,
//! with the invariant every decoded message must keep (it re-encodes to exactly its bytes).

use bytes::BytesMut;
use honeyfarm_protocols::services::{Service, SERVICES};
use honeyfarm_runtime::codec::{Entry, FrameBuf};
use honeyfarm_runtime::replay::Conversation;

/// The largest message the targets accept (the farm's default `max_message_bytes`).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Every (service, side) the farm frames: the first input byte of `frame` picks one.
pub fn stacks() -> Vec<(&'static Service, &'static Entry, bool)> {
    let mut out = Vec::new();
    for s in SERVICES {
        let codecs = s.codecs().expect("the service table names compiled types");
        out.push((s, codecs.client, true));
        out.push((s, codecs.server, false));
    }
    out
}

/// Frames `data` as the farm does, message after message, until it is used up, incomplete or
/// an error; each decoded message must re-encode to exactly the bytes it came from.
pub fn frame_all(entry: &Entry, to_server: bool, data: &[u8]) {
    let mut conv = Conversation::new();
    let mut buf = FrameBuf::new(MAX_MESSAGE);
    buf.extend_from_slice(data);
    while let Ok(Some(d)) = conv.next_message(entry, &mut buf, to_server) {
        assert_roundtrip(entry, &d.msg, &d.bytes);
    }
}

/// A decoded message re-encodes to exactly its bytes (what replay and bridging rely on).
pub fn assert_roundtrip(
    entry: &Entry,
    msg: &Box<dyn honeyfarm_runtime::codec::AnyMessage>,
    bytes: &[u8],
) {
    let mut out = BytesMut::new();
    match msg.encode(&mut out) {
        Ok(()) => assert!(
            out[..] == bytes[..],
            "{}: decoded but re-encodes differently\n in:  {:02x?}\n out: {:02x?}",
            entry.name,
            bytes,
            &out[..]
        ),
        Err(e) => panic!("{}: decoded but does not re-encode: {e}", entry.name),
    }
}

/// The script the default configuration ships (`protocols/scripts/samba-enumdomusers.json`).
pub fn shipped_script() -> honeyfarm_runtime::replay::Script {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocols/scripts/samba-enumdomusers.json"
    );
    honeyfarm_runtime::replay::Script::load(
        std::path::Path::new(path),
        &honeyfarm_protocols::services::types,
    )
    .expect("the shipped script loads")
}

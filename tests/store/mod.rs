//! Scripted sessions for the event-store tests, made with the real matcher and rewriter on the
//! shipped script (no sockets), sent through the store's API as a farm session sends them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::codec::Description;
use honeyfarm_runtime::farm::{EventStore, MessageEvent, Outcome, Source};
use honeyfarm_runtime::replay::{Audience, Candidate, Conversation, Script, Side};

pub fn script() -> Arc<Script> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/scripts/samba-enumdomusers.json");
    Arc::new(Script::load(&path, &|name| REGISTRY.iter().find(|e| e.name == name)).expect("loads"))
}

pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("honeyfarm-events-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The messages one scripted session records (connection 0), an attacker whose SMB PIDs are
/// the script's XOR `pid`:
/// its requests accepted and the script's replies served, rewritten as the farm rewrites them.
pub fn session(s: &Arc<Script>, pid: u16) -> Vec<MessageEvent> {
    let audience = Audience {
        telescope: "192.0.2.7".parse().unwrap(),
        attacker: "198.51.100.9".parse().unwrap(),
    };
    let mut c = Candidate::new(s.clone());
    let mut conv = Conversation::new();
    let mut out = Vec::new();
    let event = |d: &dyn honeyfarm_runtime::codec::AnyMessage, length, to_server, source| {
        let desc = Description::of(d);
        MessageEvent {
            connection: 0,
            to_server,
            kind: desc.kind(false),
            length,
            source,
            roles: desc.roles.iter().map(ToString::to_string).collect(),
            followed: true,
        }
    };
    for m in s.messages.iter().filter(|m| m.side == Side::Client) {
        let mut b = m.bytes.to_vec();
        // NetBIOS header (4) + SMB header: the PID sits at offset 26; each of the script's
        // PIDs becomes another, one for one.
        let theirs = u16::from_le_bytes([b[30], b[31]]) ^ pid;
        b[30..32].copy_from_slice(&theirs.to_le_bytes());
        let d = conv.decode(s.service.client, Bytes::from(b), true).unwrap();
        c.accept(d.msg.as_ref()).unwrap();
        out.push(event(d.msg.as_ref(), d.bytes.len(), true, Source::Attacker));
        for r in c.serve(audience).unwrap().replies {
            let d = conv.decode(s.service.server, r, false).unwrap();
            out.push(event(d.msg.as_ref(), d.bytes.len(), false, Source::Script));
        }
    }
    out
}

/// How many events [`replay`] queues for a session of these messages: its start, script,
/// messages, first reply time (from the second message on) and end.
pub fn replay_events(messages: &[MessageEvent]) -> usize {
    messages.len() + 3 + usize::from(messages.len() > 1)
}

/// Sends one recorded session through the store's API, as the farm's session does.
pub fn replay(store: &EventStore, s: &Arc<Script>, messages: &[MessageEvent], n: u32) -> i64 {
    let attacker = SocketAddr::from((
        [198, 51, 100, (n % 250) as u8],
        40_000 + (n % 20_000) as u16,
    ));
    let id = store.connection(attacker, "192.0.2.7:445".parse().unwrap(), "smb");
    store.script(id, s);
    for (k, m) in messages.iter().enumerate() {
        store.message(MessageEvent {
            connection: id,
            ..m.clone()
        });
        if k == 1 {
            store.first_reply(id, 0.4);
        }
    }
    store.end(id, Outcome::Scripted, "");
    id
}

pub fn size(path: &Path) -> u64 {
    let with = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", path.display())).map_or(0, |m| m.len())
    };
    with("") + with("-wal")
}

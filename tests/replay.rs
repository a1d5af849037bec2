//! Matching and serving one script without a network: cookies pair one to one, both ways, and
//! the replies carry the attacker's client cookies and fresh values (issue 5, item 2 and 3).

use std::sync::Arc;

use bytes::Bytes;
use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::codec::{MatchKey, Role, RoleFields, Value};
use honeyfarm_runtime::replay::{Audience, Candidate, Conversation, Script, Side};

fn script() -> Arc<Script> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("protocols/scripts/samba-enumdomusers.json");
    Arc::new(Script::load(&path, &|name| REGISTRY.iter().find(|e| e.name == name)).expect("loads"))
}

/// The script's client message `n` (counting client messages only).
fn request(s: &Script, n: usize) -> &Bytes {
    &s.messages
        .iter()
        .filter(|m| m.side == Side::Client)
        .nth(n)
        .unwrap()
        .bytes
}

/// The script's client message `n`, with another SMB PID.
fn request_with_pid(s: &Script, n: usize, pid: u16) -> Bytes {
    let mut b = request(s, n).to_vec();
    // NetBIOS header (4) + SMB header: the PID sits at offset 26.
    b[30..32].copy_from_slice(&pid.to_le_bytes());
    b.into()
}

fn cookie(msg: &dyn honeyfarm_runtime::codec::AnyMessage, namespace: &str, field: &str) -> Value {
    RoleFields::of_any(msg)
        .into_iter()
        .find(|f| {
            matches!(f.role, Role::Cookie { namespace: ns, .. } if *ns == namespace)
                && f.path.ends_with(field)
        })
        .map(|f| f.value)
        .unwrap()
}

fn audience() -> Audience {
    Audience {
        telescope: "127.0.0.77".parse().unwrap(),
        attacker: "127.0.0.1".parse().unwrap(),
    }
}

#[test]
fn replies_echo_the_attackers_client_cookies() {
    let s = script();
    let entry = s.service.client;
    let mut c = Candidate::new(s.clone());
    let mut conv = Conversation::new();
    let req = conv
        .decode(entry, request_with_pid(&s, 0, 4242), true)
        .unwrap();
    c.accept(req.msg.as_ref()).unwrap();
    let step = c.serve(audience()).unwrap();
    assert_eq!(step.replies.len(), 1);
    let reply = conv
        .decode(s.service.server, step.replies[0].clone(), false)
        .unwrap();
    assert_eq!(
        cookie(reply.msg.as_ref(), "smb.pid", ".pid"),
        Value::Uint(4242)
    );
    // Content is the script's: the same reply but for its role fields.
    let recorded = s.decode(1).unwrap();
    assert_eq!(
        MatchKey::of_any(reply.msg.as_ref()),
        MatchKey::of_any(recorded.msg.as_ref())
    );
}

#[test]
fn one_attacker_value_stands_for_one_script_value() {
    let s = script();
    // The script's client uses PID 65534 for the Negotiate and another PID afterwards.
    let pid = |n: usize| u16::from_le_bytes([request(&s, n)[30], request(&s, n)[31]]);
    assert_ne!(pid(0), pid(1));
    let follow = |pids: [u16; 2]| {
        let mut c = Candidate::new(s.clone());
        let mut conv = Conversation::new();
        for (n, p) in pids.into_iter().enumerate() {
            let req = conv
                .decode(s.service.client, request_with_pid(&s, n, p), true)
                .unwrap();
            c.accept(req.msg.as_ref())?;
            for r in c.serve(audience())?.replies {
                conv.decode(s.service.server, r, false).unwrap();
            }
        }
        Ok::<_, honeyfarm_runtime::replay::Deviation>(())
    };
    // Two PIDs for the script's two: followed.
    follow([100, 200]).unwrap();
    // One PID for both: the script's second PID would need the attacker's first.
    let e = follow([100, 100]).unwrap_err();
    assert!(e.to_string().contains("smb.pid"), "{e}");
    assert!(e.to_string().contains("already pairs"), "{e}");
}

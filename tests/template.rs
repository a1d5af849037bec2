//! Replies served by patching the recording are the bytes the full rewrite (decode, rewrite,
//! encode) gives, for every reply of the shipped scripts; a client message recognised in its
//! bytes (the script message's shape) gives exactly what the full path (decode, walk, match)
//! gives: the same acceptance, length, cookie bindings, replies and stored differences, for the
//! shipped scripts' messages and for every one-byte change of them.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::codec::{Issuer, Role, RoleField, RoleFields, Value};
use honeyfarm_runtime::farm::Differences;
use honeyfarm_runtime::replay::{
    roles_of, Audience, Candidate, Conversation, Script, Side, Step, Walked,
};
use honeyfarm_runtime::rewrite::{Rewrite, ValueMap, Way};

fn scripts() -> Vec<Arc<Script>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/scripts");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("scripts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let s = Script::load(p, &|name| REGISTRY.iter().find(|e| e.name == name));
            Arc::new(s.expect("loads"))
        })
        .collect()
}

/// Every cookie of the script's replies paired with another value of the same size.
fn cookies(s: &Script) -> ValueMap {
    let mut map = ValueMap::new();
    for m in &s.messages {
        for f in &m.fields {
            let Role::Cookie { namespace, .. } = f.role else {
                continue;
            };
            let other = match &f.value {
                Value::Uint(n) => Value::Uint(if *n == 0 { 1 } else { n - 1 }),
                Value::Bytes(b) => Value::Bytes(b.iter().map(|x| x ^ 0x5a).collect()),
                v => v.clone(),
            };
            let _ = map.bind(namespace, other, f.value.clone());
        }
    }
    map
}

#[test]
fn patched_replies_are_the_full_rewrites_bytes() {
    let mut patched = 0;
    for s in scripts() {
        let map = cookies(&s);
        for (i, m) in s.messages.iter().enumerate() {
            if m.side != Side::Server {
                continue;
            }
            let Some(t) = &m.template else { continue };
            let mut rw = Rewrite::new();
            rw.cookies = Some((&map, Way::Backward));
            let to: IpAddr = "10.1.2.3".parse().unwrap();
            rw.addresses = vec![
                (s.server.ip(), to),
                (s.client.ip(), "192.0.2.7".parse().unwrap()),
            ];
            let Some((out, changed)) = t.patch(&m.bytes, &m.fields, &rw) else {
                continue;
            };
            let mut d = s.decode(i).expect("decodes");
            let full = rw.apply(d.msg.as_mut()).expect("rewrites");
            assert_eq!(out, full, "{}: reply {i} ({})", s.source, m.kind);
            // The values it says it changed are the ones the patched bytes decode to.
            let roles = RoleFields::of_any(d.msg.as_ref());
            for (k, f) in roles.iter().enumerate() {
                let want = changed
                    .iter()
                    .find(|(j, _)| *j == k)
                    .map_or(&m.fields[k].value, |(_, v)| v);
                assert_eq!(&f.value, want, "{}: reply {i} role {k}", s.source);
            }
            patched += usize::from(out != m.bytes);
        }
    }
    assert!(patched > 0, "no reply was patched with a change");
}

fn audience() -> Audience {
    Audience {
        telescope: "10.1.2.3".parse::<IpAddr>().unwrap(),
        attacker: "192.0.2.7".parse::<IpAddr>().unwrap(),
    }
}

/// What a step says that does not depend on the clock or the random source.
fn settled(s: &Script, step: &Step) -> Vec<(usize, Vec<(usize, String)>)> {
    step.replies
        .iter()
        .zip(&step.patched)
        .enumerate()
        .map(|(i, (r, p))| {
            let fields = &s.messages[step.at + i].fields;
            let changed = p
                .iter()
                .flatten()
                .filter(|(k, _)| !matches!(fields[*k].role, Role::Timestamp { .. } | Role::Nonce))
                .map(|(k, v)| (*k, v.to_string()))
                .collect();
            (r.len(), changed)
        })
        .collect()
}

/// A map's pairs in a stable order.
fn pairs(m: &ValueMap) -> Vec<String> {
    let mut v: Vec<String> = m.entries().iter().map(|p| format!("{p:?}")).collect();
    v.sort();
    v
}

/// The dialog followed up to client message `upto`, on the full path: the candidate and the
/// attacker's conversation just before it.
fn before(script: &Arc<Script>, upto: usize) -> (Candidate, Conversation) {
    let mut c = Candidate::new(script.clone());
    let mut conv = Conversation::new();
    let svc = &script.service;
    while c.pos < upto {
        let m = &script.messages[c.pos];
        let d = conv
            .decode(svc.client, m.bytes.clone(), true)
            .expect("decodes");
        c.accept(d.msg.as_ref()).expect("follows");
        let step = c.serve(audience()).expect("answers");
        for r in &step.replies {
            conv.decode(svc.server, r.clone(), false)
                .expect("reply decodes");
        }
    }
    (c, conv)
}

/// Both paths on `input` (a client message, maybe changed) at client message `at`: returns
/// whether it was recognised in its bytes.
fn compare(
    script: &Arc<Script>,
    at: usize,
    input: &Bytes,
    base: &(Candidate, Conversation),
) -> bool {
    let mut fast = base.0.clone();
    let Some((len, values)) = fast.accept_bytes(input) else {
        return false;
    };
    let (mut full, mut conv) = (base.0.clone(), base.1.clone());
    let d = conv
        .decode(script.service.client, input.clone(), true)
        .unwrap_or_else(|e| panic!("{}: message {at} recognised, but: {e}", script.source));
    let walked = Walked::of(d.msg.as_ref());
    full.accept_walked(d.msg.as_ref(), &walked)
        .unwrap_or_else(|e| panic!("{}: message {at} recognised, but: {e}", script.source));
    let what = format!("{}: message {at}", script.source);
    assert_eq!(len, d.bytes.len(), "{what}");
    assert_eq!(
        (fast.pos, pairs(&fast.cookies)),
        (full.pos, pairs(&full.cookies)),
        "{what}"
    );
    let m = &script.messages[at];
    assert_eq!(
        Differences::between_roles(len, roles_of(&m.fields, &values), m),
        Differences::between(len, &walked, m),
        "{what}"
    );
    let (a, b) = (fast.serve(audience()), full.serve(audience()));
    match (&a, &b) {
        (Ok(a), Ok(b)) => assert_eq!(settled(script, a), settled(script, b), "{what}"),
        _ => assert_eq!(a.is_ok(), b.is_ok(), "{what}: {a:?} / {b:?}"),
    }
    // The replies' role values as patched are the ones they decode to.
    if let Ok(step) = a {
        let mut conv = conv;
        for (i, (r, p)) in step.replies.iter().zip(&step.patched).enumerate() {
            let d = conv
                .decode(script.service.server, r.clone(), false)
                .expect("reply decodes");
            let Some(p) = p else { continue };
            let m = &script.messages[step.at + i];
            let mut values: Vec<Option<Value>> = vec![None; m.fields.len()];
            for (k, v) in p {
                values[*k] = Some(v.clone());
            }
            assert_eq!(
                Differences::between_roles(r.len(), roles_of(&m.fields, &values), m),
                Differences::between(r.len(), &Walked::of(d.msg.as_ref()), m),
                "{what}: reply {i}"
            );
        }
    }
    true
}

#[test]
fn recognised_messages_give_what_the_full_path_gives() {
    let (mut shaped, mut clients, mut recognised, mut changed) = (0, 0, 0, 0);
    for script in scripts() {
        for (at, m) in script.messages.iter().enumerate() {
            if m.side != Side::Client {
                continue;
            }
            clients += 1;
            shaped += usize::from(m.shape.is_some());
            let base = before(&script, at);
            let known = compare(&script, at, &m.bytes, &base);
            assert_eq!(known, m.shape.is_some(), "{}: message {at}", script.source);
            recognised += usize::from(known);
            // Every one-byte change (two values per byte), and the message with more behind it.
            for i in 0..m.bytes.len() {
                for x in [0x01u8, 0xff] {
                    let mut b = m.bytes.to_vec();
                    b[i] ^= x;
                    changed += usize::from(compare(&script, at, &Bytes::from(b), &base));
                }
            }
            let mut more = m.bytes.to_vec();
            more.extend_from_slice(&m.bytes);
            compare(&script, at, &Bytes::from(more), &base);
        }
    }
    println!("{shaped} of {clients} client messages have a shape; {recognised} recognised, {changed} changed ones");
    assert!(
        shaped * 2 > clients,
        "{shaped} of {clients} client messages have a shape"
    );
    assert!(changed > 0, "no changed message was recognised");
}

/// Messages whose decoding was deferred are decoded, in order, before the next one: the
/// conversation then decodes every message of every shipped script as one that decoded each as
/// it came (the same role fields, the same memory).
#[test]
fn deferred_messages_decode_as_they_would_have() {
    for script in scripts() {
        let (mut now, mut later) = (Conversation::new(), Conversation::new());
        for (i, m) in script.messages.iter().enumerate() {
            let (entry, to_server) = (script.service.entry(m.side), m.side == Side::Client);
            let d = now
                .decode(entry, m.bytes.clone(), to_server)
                .expect("decodes");
            if i % 3 != 2 {
                later
                    .defer(entry, m.bytes.clone(), to_server)
                    .expect("deferred");
                continue;
            }
            let l = later
                .decode(entry, m.bytes.clone(), to_server)
                .expect("decodes after the deferred ones");
            assert!(!later.has_deferred());
            assert_eq!(
                RoleFields::of_any(l.msg.as_ref()),
                RoleFields::of_any(d.msg.as_ref()),
                "{} message {i}",
                script.service.name
            );
            assert_eq!(
                later.remembered(),
                now.remembered(),
                "{} message {i}",
                script.service.name
            );
        }
        // What is still deferred decodes when asked, the last message returned.
        let last = later.catch_up().expect("decodes");
        assert_eq!(
            later.remembered(),
            now.remembered(),
            "{}",
            script.service.name
        );
        if script.messages.len() % 3 != 0 {
            assert_eq!(
                last.map(|d| d.bytes),
                script.messages.last().map(|m| m.bytes.clone())
            );
        }
    }
}

/// A cookie value changed as an attacker's own would differ from the recording's: of the same
/// width, a different value.
fn theirs(v: &Value) -> Value {
    match v {
        Value::Uint(n) => Value::Uint(n ^ 1),
        Value::Bytes(b) => Value::Bytes(b.iter().map(|x| x ^ 0x5a).collect()),
        v => v.clone(),
    }
}

/// An attacker whose own cookies (MIDs, PIDs, call ids: the client's) all differ from the
/// recording's follows every shipped script to its end, and every reply echoes the values it
/// sent (a MID in the reply to its request, a PID to the end); of the pairs of numbers, the
/// session keeps live those of the script values a later message carries, none once the
/// script is done.
#[test]
fn a_session_keeps_the_pairs_of_values_still_to_come_and_rewrites_with_them() {
    let client_cookie = |f: &RoleField| {
        matches!(
            f.role,
            Role::Cookie {
                issuer: Issuer::Client,
                ..
            }
        )
    };
    for script in scripts() {
        let mut own = ValueMap::new();
        for f in script.messages.iter().flat_map(|m| &m.fields) {
            if let Role::Cookie { namespace, .. } = f.role {
                if client_cookie(f) {
                    let _ = own.bind(namespace, theirs(&f.value), f.value.clone());
                }
            }
        }
        let mut c = Candidate::new(script.clone());
        let mut conv = Conversation::new();
        let svc = &script.service;
        // The attacker's values so far, by the script's (what a reply must echo).
        let mut given = Vec::new();
        while c.pos < script.messages.len() {
            let at = c.pos;
            let fields = script.messages[at]
                .fields
                .iter()
                .filter(|f| client_cookie(f));
            given.extend(fields.map(|f| (f.role, f.value.clone())));
            let mut rw = Rewrite::new();
            rw.cookies = Some((&own, Way::Backward));
            let mut d = script.decode(at).expect("decodes");
            let sent = rw.apply(d.msg.as_mut()).expect("rewrites");
            let d = conv.decode(svc.client, sent, true).expect("decodes");
            c.accept(d.msg.as_ref())
                .unwrap_or_else(|e| panic!("{}: message {at}: {e}", script.source));
            let step = c.serve(audience()).expect("answers");
            for (i, r) in step.replies.iter().enumerate() {
                let d = conv.decode(svc.server, r.clone(), false).expect("decodes");
                let got = RoleFields::of_any(d.msg.as_ref());
                let want = &script.messages[step.at + i].fields;
                for (g, w) in got.iter().zip(want) {
                    if given.contains(&(w.role, w.value.clone())) {
                        let reply = step.at + i;
                        assert_eq!(g.value, theirs(&w.value), "{}: {reply}", script.source);
                    }
                }
            }
            let to_come: Vec<(&str, &Value)> = script.messages[c.pos..]
                .iter()
                .flat_map(|m| &m.fields)
                .filter_map(|f| match f.role {
                    Role::Cookie { namespace, .. } => Some((*namespace, &f.value)),
                    _ => None,
                })
                .collect();
            // Numbers the script is done with are retired (packed); other values stay.
            for (namespace, _, right) in c.cookies.entries() {
                assert!(
                    to_come.contains(&(namespace, &right)) || !matches!(right, Value::Uint(_)),
                    "{}: after message {at}, {namespace} {right} stays paired",
                    script.source
                );
            }
        }
        let numbers = c.cookies.entries().into_iter();
        assert_eq!(numbers.filter(|p| matches!(p.2, Value::Uint(_))).count(), 0);
    }
}

//! Replies served by patching the recording are the bytes the full rewrite (decode, rewrite,
//! encode) gives, for every reply of the shipped scripts.

use std::net::IpAddr;

use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::codec::{Role, Value};
use honeyfarm_runtime::replay::{Script, Side};
use honeyfarm_runtime::rewrite::{Rewrite, ValueMap, Way};

fn scripts() -> Vec<Script> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/scripts");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("scripts")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Script::load(p, &|name| REGISTRY.iter().find(|e| e.name == name)).expect("loads"))
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
            let Some(out) = t.patch(&m.bytes, &m.fields, &rw) else {
                continue;
            };
            let mut d = s.decode(i).expect("decodes");
            let full = rw.apply(d.msg.as_mut()).expect("rewrites");
            assert_eq!(out, full, "{}: reply {i} ({})", s.source, m.kind);
            patched += usize::from(out != m.bytes);
        }
    }
    assert!(patched > 0, "no reply was patched with a change");
}

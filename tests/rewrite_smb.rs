//! Rewriting SMB role fields to values of other lengths, checked with tshark: the new values,
//! every enclosing length right, nothing malformed.

mod common;

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use honeyfarm_protocols::netbios;
use honeyfarm_runtime::capture::tcp_streams;
use honeyfarm_runtime::codec::{Class, FieldValue, Message, Value, VisitorMut};

struct SetHost(&'static str, usize);

impl VisitorMut for SetHost {
    fn field(&mut self, _name: &'static str, class: Class, value: &mut dyn FieldValue) {
        if matches!(class, Class::Role(r) if r.name() == "hostname") {
            if let Value::Str(old) = value.value() {
                if old.starts_with("\\\\") {
                    value.set(Value::Str(self.0.into())).unwrap();
                    self.1 += 1;
                }
            }
        }
    }
}

/// The client's messages of each SMB stream of a capture, split on the NetBIOS length.
fn client_streams(file: &str) -> Vec<Vec<Bytes>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/captures")
        .join(file);
    tcp_streams(&path)
        .unwrap()
        .into_iter()
        .filter(|s| s.server.port() == 445)
        .map(|st| {
            let d = &st.to_server.data;
            let mut out = Vec::new();
            let mut at = 0;
            while at + 4 <= d.len() {
                let len = (usize::from(d[at + 1]) << 16)
                    | (usize::from(d[at + 2]) << 8)
                    | usize::from(d[at + 3]);
                out.push(Bytes::copy_from_slice(&d[at..(at + 4 + len).min(d.len())]));
                at += 4 + len;
            }
            out
        })
        .collect()
}

/// tshark's verbose decoding of the last of `payloads`, sent after the others on one connection
/// (tshark reads SPNEGO tokens by what the connection negotiated before).
fn tshark_verbose(payloads: &[&[u8]]) -> String {
    let mut p = common::Pcap::new();
    let (c, s) = (([127, 0, 0, 9], 40000), ([127, 0, 0, 77], 445));
    p.tcp(1, c, s, 100, true, b"");
    let mut seq = 101;
    for (i, payload) in payloads.iter().enumerate() {
        p.tcp(2 + i as u32, c, s, seq, false, payload);
        seq += payload.len() as u32;
    }
    let file = p.write("smb-rewrite");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .arg("-V")
        .output()
        .expect("tshark runs");
    let _ = std::fs::remove_file(file);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = format!("\nFrame {}: ", payloads.len() + 1);
    text.split_once(last.as_str())
        .map_or(text.clone(), |(_, t)| t.to_string())
}

#[test]
fn unc_host_rewritten_longer_with_every_length_following() {
    let tree_connect = client_streams("suricata-verify_smb-eicar-file.pcap")
        .into_iter()
        .flatten()
        .find(|m| m.len() > 8 && m[8] == 0x75)
        .expect("a Tree Connect AndX request");
    let before = tshark_verbose(&[&tree_connect]);
    assert!(before.contains("Path: \\\\192.168.1.3\\PUBLIC"), "{before}");

    let (mut msg, _) = netbios::DirectTcp::decode(tree_connect.clone()).unwrap();
    let new_path = "\\\\honeypot-0042.telescope.example.net\\PUBLIC";
    let mut set = SetHost(new_path, 0);
    msg.visit_mut(&mut set);
    assert_eq!(set.1, 1);
    let out = msg.to_bytes().unwrap();
    let grown = 2 * (new_path.chars().count() - "\\\\192.168.1.3\\PUBLIC".chars().count());
    assert_eq!(out.len(), tree_connect.len() + grown);

    let after = tshark_verbose(&[&out]);
    assert!(after.contains(&format!("Path: {new_path}")), "{after}");
    assert!(
        after.contains(&format!("Length: {}", out.len() - 4)),
        "the NetBIOS length follows:\n{after}"
    );
    let old_bcc: usize = before
        .split("Byte Count (BCC): ")
        .nth(1)
        .unwrap()
        .split('\n')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        after.contains(&format!("Byte Count (BCC): {}", old_bcc + grown)),
        "ByteCount follows:\n{after}"
    );
    assert!(
        after.contains("Service: ?????"),
        "the field after the path is where tshark expects it:\n{after}"
    );
    for bad in ["Malformed", "[Expert Info (Error", "[Expert Info (Warning"] {
        assert!(!after.contains(bad), "tshark reports {bad}:\n{after}");
    }
}

/// Sets the NTLMSSP AUTHENTICATE user name (UTF-16LE), a field located by a security buffer.
struct SetUser(&'static str, usize);

impl VisitorMut for SetUser {
    fn field(&mut self, name: &'static str, _class: Class, value: &mut dyn FieldValue) {
        if name == "user" {
            let utf16: Vec<u8> = self.0.encode_utf16().flat_map(u16::to_le_bytes).collect();
            value.set(Value::Bytes(utf16.into())).unwrap();
            self.1 += 1;
        }
    }
}

/// Rewrites the user name of an AUTHENTICATE laid out in `file`'s order to `new_user`: every
/// security buffer after it moves with it, and tshark still finds the domain, host name and
/// session key.
fn ntlmssp_user_rewritten(
    file: &str,
    user: &str,
    new_user: &'static str,
    domain: &str,
    host: &str,
) {
    let is_auth = |m: &Bytes| {
        m.len() > 8 && m[8] == 0x73 && m.windows(12).any(|w| w == b"NTLMSSP\x00\x03\x00\x00\x00")
    };
    let stream = client_streams(file)
        .into_iter()
        .find(|s| s.iter().any(is_auth))
        .expect("a Session Setup with an NTLMSSP AUTHENTICATE");
    let at = stream.iter().position(is_auth).unwrap_or_default();
    let setup = stream[at].clone();
    let earlier: Vec<&[u8]> = stream[..at].iter().map(|m| &m[..]).collect();
    let verbose = |m: &[u8]| {
        let mut all = earlier.clone();
        all.push(m);
        tshark_verbose(&all)
    };
    let before = verbose(&setup);
    for line in [
        format!("User name: {user}"),
        format!("Domain name: {domain}"),
        format!("Host name: {host}"),
    ] {
        assert!(before.contains(&line), "{line}:\n{before}");
    }
    let session_key = before
        .lines()
        .find(|l| l.trim_start().starts_with("Session Key: "))
        .expect("a session key")
        .trim()
        .to_string();

    let (mut msg, _) = netbios::DirectTcp::decode(setup.clone()).unwrap();
    let mut set = SetUser(new_user, 0);
    msg.visit_mut(&mut set);
    assert_eq!(set.1, 1);
    let out = msg.to_bytes().unwrap();
    assert_eq!(
        out.len(),
        setup.len() + 2 * new_user.len() - 2 * user.len(),
        "the blob grows by the new name"
    );

    let after = verbose(&out);
    for line in [
        format!("User name: {new_user}"),
        format!("Domain name: {domain}"),
        format!("Host name: {host}"),
        session_key,
    ] {
        assert!(after.contains(&line), "{line}:\n{after}");
    }
    let experts = |t: &str| t.matches("[Expert Info").count();
    assert!(!after.contains("Malformed"), "{after}");
    assert_eq!(experts(&after), experts(&before), "{after}");
}

#[test]
fn ntlmssp_user_rewritten_names_first() {
    ntlmssp_user_rewritten(
        "zeek_smb_raw_ntlm_in_smb.pcap",
        "test",
        "honeyfarm-operator",
        "TEST-F7DFBC3FE9",
        "BABYBOOK",
    );
}

/// Inside SPNEGO, whose DER lengths are kept as received, a name of the same length.
#[test]
fn ntlmssp_user_rewritten_responses_first() {
    ntlmssp_user_rewritten(
        "suricata-verify_smb-named-pipe-ascii.pcap",
        "Administrateur",
        "honeyfarm-oper",
        "WORKGROUP",
        "HOST",
    );
}

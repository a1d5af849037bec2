//! Helpers shared by the binary's tests.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

pub mod dirs;
pub mod vm;

use bytes::Bytes;
use honeyfarm_runtime::capture::tcp_streams;
use honeyfarm_runtime::codec::Value;
use honeyfarm_runtime::replay::Script;

/// Runs the `honeyfarm` binary; its standard output, once it has succeeded.
pub fn honeyfarm_ok(args: &[&str]) -> String {
    output_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_honeyfarm")).args(args),
        &format!("honeyfarm {args:?}"),
    )
}

/// Runs `cmd`; its standard output, once it has succeeded (else its stderr in the panic).
pub fn output_ok(cmd: &mut std::process::Command, what: &str) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// rpcclient's and smbclient's options for SMB1 only (Samba's clients default to SMB2).
pub const SMB1_CLIENT: [&str; 4] = [
    "--option=client min protocol=NT1",
    "--option=client max protocol=NT1",
    "--option=client ipc min protocol=NT1",
    "--option=client ipc max protocol=NT1",
];

/// A pcap file of Ethernet/IPv4/TCP packets.
pub struct Pcap(Vec<u8>);

impl Pcap {
    pub fn new() -> Self {
        let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        Pcap(h)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        &mut self,
        t: u32,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        syn: bool,
        payload: &[u8],
    ) {
        let mut p = vec![0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 0x08, 0x00];
        let total = (20 + 20 + payload.len()) as u16;
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
        p.extend_from_slice(&src.0);
        p.extend_from_slice(&dst.0);
        p.extend_from_slice(&src.1.to_be_bytes());
        p.extend_from_slice(&dst.1.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&[0x50, if syn { 0x02 } else { 0x18 }, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        self.0.extend_from_slice(&t.to_le_bytes());
        self.0.extend_from_slice(&0u32.to_le_bytes());
        self.0.extend_from_slice(&(p.len() as u32).to_le_bytes());
        self.0.extend_from_slice(&(p.len() as u32).to_le_bytes());
        self.0.extend_from_slice(&p);
    }

    /// Writes the capture to a file of its own (tests run in parallel threads).
    pub fn write(&self, name: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "honeyfarm-dissect-{}-{n}-{name}.pcap",
            std::process::id()
        ));
        std::fs::write(&path, &self.0).unwrap();
        path
    }
}

/// The messages of the first stream of a capture, both directions, in time order:
/// `(to_server, bytes)`.
pub fn conversation(file: &std::path::Path) -> Vec<(bool, Bytes)> {
    // The dialog: the first stream with data (the recorder's knocks on the port have none).
    let st = tcp_streams(file)
        .unwrap()
        .into_iter()
        .find(|s| !s.to_server.data.is_empty())
        .unwrap();
    let mut all = Vec::new();
    for (to_server, half) in [(true, &st.to_server), (false, &st.to_client)] {
        let d = &half.data;
        let mut at = 0;
        while at + 4 <= d.len() {
            let len = (usize::from(d[at + 1]) << 16)
                | (usize::from(d[at + 2]) << 8)
                | usize::from(d[at + 3]);
            all.push((
                half.time_at(at),
                to_server,
                Bytes::copy_from_slice(&d[at..at + 4 + len]),
            ));
            at += 4 + len;
        }
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.into_iter().map(|(_, d, b)| (d, b)).collect()
}

/// Writes a conversation (as [`conversation`] gives it) as a capture of one TCP connection to
/// port 445, in a file of its own.
pub fn conversation_pcap(conv: &[(bool, Bytes)], name: &str) -> PathBuf {
    let mut p = Pcap::new();
    let (c, s) = (([127, 0, 0, 9], 40000), ([127, 0, 0, 77], 445));
    p.tcp(1, c, s, 100, true, b"");
    p.tcp(1, s, c, 500, true, b"");
    let (mut cseq, mut sseq) = (101u32, 501u32);
    for (i, (to_server, b)) in conv.iter().enumerate() {
        if *to_server {
            p.tcp(2 + i as u32, c, s, cseq, false, b);
            cseq += b.len() as u32;
        } else {
            p.tcp(2 + i as u32, s, c, sseq, false, b);
            sseq += b.len() as u32;
        }
    }
    p.write(name)
}

/// Reads one NetBIOS session message (a script's reply).
pub fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).unwrap();
    let len = (usize::from(head[1] & 1) << 16) | usize::from(head[2]) << 8 | usize::from(head[3]);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    body
}

/// The bytes of every message one side sent in a script file.
pub fn script_messages(script: &Path, from: &str) -> Vec<Vec<u8>> {
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(script).unwrap()).unwrap();
    s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["from"] == from)
        .map(|m| {
            let hex: String = m["hex"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap())
                .collect();
            unhex(&hex)
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The domain SID's own sub-authorities (`S-1-5-21-a-b-c`: a, b, c) in a script's replies.
pub fn domain_sid(s: &Script) -> Vec<u32> {
    let key = &s
        .messages
        .iter()
        .find(|m| m.kind.ends_with("LookupDomainResponse"))
        .expect("the script looks its domain up")
        .key;
    (1..=3)
        .map(|n| {
            let suffix = format!("sub_authority.{n}.item");
            match key.fields().iter().find(|(p, _)| p.ends_with(&suffix)) {
                Some((_, Value::Uint(v))) => *v as u32,
                other => panic!("{suffix}: {other:?}"),
            }
        })
        .collect()
}

/// Replaces every occurrence of `from` (little-endian u32s) by `to` in `b`.
pub fn replace_words(b: &[u8], from: &[u32], to: &[u32]) -> Bytes {
    let mut out = b.to_vec();
    for (f, t) in from.iter().zip(to) {
        let (f, t) = (f.to_le_bytes(), t.to_le_bytes());
        let mut i = 0;
        while i + 4 <= out.len() {
            if out[i..i + 4] == f {
                out[i..i + 4].copy_from_slice(&t);
                i += 4;
            } else {
                i += 1;
            }
        }
    }
    out.into()
}

/// A script as if recorded on another machine: another domain SID in every message; returns
/// it with that SID's own sub-authorities.
pub fn of_another_domain(s: &Script) -> (Script, Vec<u32>) {
    let ours = domain_sid(s);
    let theirs: Vec<u32> = ours.iter().map(|v| v ^ 0x5a5a_5a5a).collect();
    let messages = s
        .messages
        .iter()
        .map(|m| (m.side, replace_words(&m.bytes, &ours, &theirs)))
        .collect();
    let other = Script::new(s.service.clone(), s.client, s.server, &s.source, messages)
        .expect("still a script");
    (other, theirs)
}

/// The process backend's command for the repository's Samba honeypot script.
pub fn samba_honeypot_command() -> Vec<String> {
    vec![
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("scripts/samba-honeypot.sh")
            .display()
            .to_string(),
        "{dir}".into(),
        "{address}".into(),
        "{port}".into(),
    ]
}

//! Real SMB1 dialogs recorded against Samba's smbd (scripts/samba-dialogs.sh starts a private
//! smbd on loopback and captures rpcclient and smbclient with tshark): every message decodes,
//! through NetBIOS, SMB and DCE/RPC, and re-encodes exactly.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn samba_dialogs_roundtrip_exactly() {
    let out_dir =
        std::env::temp_dir().join(format!("honeyfarm-samba-dialogs-{}", std::process::id()));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/samba-dialogs.sh");
    let rec = Command::new("bash")
        .arg(&script)
        .arg(&out_dir)
        .output()
        .expect("bash runs");
    assert!(
        rec.status.success(),
        "recording failed:\n{}\n{}",
        String::from_utf8_lossy(&rec.stdout),
        String::from_utf8_lossy(&rec.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(out_dir.join(name)).unwrap_or_default();
    let users = read("samba-enumdomusers.out");
    assert!(
        users.contains("user:[alice]") && users.contains("user:[bob]"),
        "rpcclient output: {users}"
    );
    assert!(
        read("samba-fragmented.out").contains("netname: archive300"),
        "{}",
        read("samba-fragmented.out")
    );
    assert!(
        read("samba-put.out").contains("put: file landed intact"),
        "{}",
        read("samba-put.out")
    );

    for (name, min_messages, needle) in [
        (
            "samba-enumdomusers.pcap",
            20,
            "EnumerateUsersResponse.buffer",
        ),
        (
            "samba-netremotetod.pcap",
            14,
            "NetrRemoteTodResponse.info.value.year@timestamp",
        ),
        (
            "samba-put.pcap",
            16,
            "WriteAndxRequest.shape.Words14.fid@cookie",
        ),
        (
            "samba-srvinfo.pcap",
            14,
            "NetrServerGetInfoResponse.info.Info101.value.name.value.chars@hostname=\"FILESRV01\"",
        ),
        (
            "samba-signed-rpc.pcap",
            16,
            "Rpc.auth.value.Ntlmssp.body.message.Authenticate.layout.ResponsesFirst.user_offset@offset",
        ),
        (
            "samba-signed-rpc.pcap",
            16,
            "auth.value.Ntlmssp.body.message.Challenge.server_challenge@nonce",
        ),
        (
            "samba-signed-rpc.pcap",
            16,
            "stub.verification.commands.1.length@length=40",
        ),
        (
            "samba-signed-rpc.pcap",
            16,
            "auth.value.Verifier.signature@signature",
        ),
        (
            "samba-netshareenum.pcap",
            14,
            "NetrShareEnumResponse.info.container.Level2",
        ),
        (
            "samba-samr-more.pcap",
            40,
            "LookupNamesInDomainResponse.relative_ids",
        ),
        (
            "samba-samr-more.pcap",
            40,
            "QueryInformationDomainResponse.info.General.buffer.value.replica_source_node_name.buffer.value.chars@hostname=\"FILESRV01\"",
        ),
        (
            "samba-samr-more.pcap",
            40,
            "QueryInformationUserResponse.info.All.buffer.value.profile_path.buffer.value.actual_count@length=25",
        ),
        (
            "samba-samr-more.pcap",
            40,
            "QueryInformationUserResponse.info.All.buffer.value.logon_hours.hours.value.actual_count@length=21",
        ),
        ("samba-lsa.pcap", 20, "GetUserNameResponse.user_name"),
        // 302 shares over 18 DCE/RPC fragments, read whole from the last one.
        (
            "samba-fragmented.pcap",
            40,
            "Fragment.piece.Last.whole.call.NetrShareEnumResponse.info.container.Level2.value.entries_read@count=302",
        ),
    ] {
        let d = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
            .args(["dissect", "--port", "4451=smb"])
            .arg(out_dir.join(name))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&d.stdout);
        let summary = text.lines().last().unwrap_or("");
        let n: usize = summary
            .split("messages=")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let client = read(&name.replace(".pcap", ".out"));
        assert!(
            n >= min_messages,
            "{name}: {summary}\n{text}\nclient said:\n{client}"
        );
        assert_eq!(
            summary,
            format!("dissect: messages={n} decoded={n} roundtrip_exact={n} errors=0"),
            "{name}:\n{text}"
        );
        assert!(text.contains(needle), "{name}: no {needle}:\n{text}");
    }
    // SAMR policy handles: the nonzero handles tshark's dissector names are exactly the ones we
    // mark as cookies (tshark names only some of the calls' handles `samr.handle`, so compare sets).
    let pcap = out_dir.join("samba-enumdomusers.pcap");
    let t = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-d", "tcp.port==4451,nbss", "-Y", "samr", "-T", "fields"])
        .args([
            "-E",
            "occurrence=a",
            "-E",
            "separator=,",
            "-e",
            "samr.handle",
        ])
        .output()
        .expect("tshark runs");
    let nonzero = |h: &str| h.trim_start_matches("0x").chars().any(|c| c != '0');
    let theirs: std::collections::BTreeSet<String> = String::from_utf8_lossy(&t.stdout)
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|h| !h.is_empty() && nonzero(h))
        .map(|h| format!("0x{}", h.replace(':', "")))
        .collect();
    let d = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .args(["dissect", "--json", "--port", "4451=smb"])
        .arg(&pcap)
        .output()
        .expect("honeyfarm runs");
    let ours: std::collections::BTreeSet<String> = String::from_utf8_lossy(&d.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|m| m["roles"].as_array().cloned().unwrap_or_default())
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("handle.handle"))
        })
        .filter_map(|r| r["value"].as_str().map(str::to_string))
        .filter(|h| nonzero(h))
        .collect();
    assert!(theirs.len() >= 2, "tshark handles: {theirs:?}");
    assert_eq!(ours, theirs, "SAMR policy handles");
    let _ = std::fs::remove_dir_all(&out_dir);
}

mod common;

use bytes::Bytes;
use honeyfarm_protocols::netbios;
use honeyfarm_runtime::capture::tcp_streams;
use honeyfarm_runtime::codec::{Class, FieldValue, Message, Reader, Value, VisitorMut};

/// The messages of the first stream of a capture, both directions, in time order:
/// `(to_server, bytes)`.
fn conversation(file: &std::path::Path) -> Vec<(bool, Bytes)> {
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

/// Sets every role field whose path ends with `suffix`.
struct SetPath(&'static str, Value, Vec<String>, usize);

impl VisitorMut for SetPath {
    fn enter(&mut self, name: &str) {
        self.2.push(name.to_string());
    }
    fn leave(&mut self) {
        self.2.pop();
    }
    fn field(&mut self, name: &'static str, class: Class, value: &mut dyn FieldValue) {
        let path = format!("{}.{name}", self.2.join("."));
        if matches!(class, Class::Role(_)) && path.ends_with(self.0) {
            value.set(self.1.clone()).unwrap();
            self.3 += 1;
        }
    }
}

/// Rewrites the messages of a conversation that have a role field at `suffix`; decoding is
/// told each stream's memory, as dissect does, so the stubs are read.
fn rewrite(
    conv: &[(bool, Bytes)],
    suffix: &'static str,
    value: Value,
) -> (Vec<(bool, Bytes)>, usize) {
    let mut memory = Default::default();
    let mut hits = 0;
    let mut out = Vec::new();
    for (to_server, bytes) in conv {
        let mut r = Reader::new(bytes.clone());
        r.set_memory(std::mem::take(&mut memory));
        let mut msg = netbios::DirectTcp::decode_from(&mut r).unwrap();
        memory = r.take_memory();
        let mut set = SetPath(suffix, value.clone(), Vec::new(), 0);
        msg.visit_mut(&mut set);
        hits += set.3;
        out.push((
            *to_server,
            if set.3 > 0 {
                msg.to_bytes().unwrap()
            } else {
                bytes.clone()
            },
        ));
    }
    (out, hits)
}

/// tshark -V of a conversation written as a capture on port 445.
fn tshark_verbose(conv: &[(bool, Bytes)], name: &str) -> String {
    let mut p = common::Pcap::new();
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
    let file = p.write(name);
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .arg("-V")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(file);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_clean(text: &str) {
    for bad in ["Malformed", "[Expert Info (Error", "[Expert Info (Warning"] {
        assert!(!text.contains(bad), "tshark reports {bad}:\n{text}");
    }
}

#[test]
fn samr_domain_name_and_remote_time_rewritten_checked_by_tshark() {
    let out_dir =
        std::env::temp_dir().join(format!("honeyfarm-samba-rewrite-{}", std::process::id()));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/samba-dialogs.sh");
    let rec = Command::new("bash")
        .arg(&script)
        .arg(&out_dir)
        .env("SAMBA_PORT", "4452")
        .output()
        .unwrap();
    assert!(
        rec.status.success(),
        "{}",
        String::from_utf8_lossy(&rec.stderr)
    );

    // LookupDomain: FILESRV01 -> a longer name; every enclosing length must follow.
    let conv = conversation(&out_dir.join("samba-enumdomusers.pcap"));
    let before = tshark_verbose(&conv, "samr-before");
    assert!(before.contains("Domain Name: FILESRV01"), "{before}");
    let (conv2, hits) = rewrite(
        &conv,
        "LookupDomainRequest.name.buffer.value.chars",
        Value::Str("HONEYPOT-FILESERVER-0042".into()),
    );
    assert_eq!(hits, 1);
    let after = tshark_verbose(&conv2, "samr-after");
    assert!(
        after.contains("Pointer to Domain Name (lsa_String) HONEYPOT-FILESERVER-0042"),
        "{after}"
    );
    assert!(
        after.contains("Name Len: 48") && after.contains("Actual Count: 24"),
        "NDR lengths follow:\n{after}"
    );
    assert_eq!(
        after.matches("Operation: LookupDomain (5)").count(),
        2,
        "request and response both decode:\n{after}"
    );
    assert_clean(&after);

    // NetrRemoteTOD: the reply's time.
    let conv = conversation(&out_dir.join("samba-netremotetod.pcap"));
    let (conv2, hits) = rewrite(
        &conv,
        "NetrRemoteTodResponse.info.value.year",
        Value::Uint(2031),
    );
    assert_eq!(hits, 1);
    let after = tshark_verbose(&conv2, "tod-after");
    assert!(after.contains("Year: 2031"), "{after}");
    assert_clean(&after);
    let _ = std::fs::remove_dir_all(&out_dir);
}

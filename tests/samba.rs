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
        (
            "samba-samr-groups.pcap",
            40,
            "EnumerateGroupsResponse.buffer.value.entries_read@count=0",
        ),
        (
            "samba-dispinfo.pcap",
            80,
            "QueryDisplayInformationResponse.buffer.User.buffer.value.entries.1.account_name.length@length=6",
        ),
        (
            "samba-dispinfo.pcap",
            80,
            "QueryDisplayInformationResponse.buffer.Oem.buffer.value.entries.0.oem_account_name.length@length=5",
        ),
        (
            "samba-pwinfo.pcap",
            40,
            "GetGroupsForUserResponse.groups.value.membership_count@count=1",
        ),
        (
            "samba-pwinfo.pcap",
            40,
            "GetUserDomainPasswordInformationRequest.user_handle.handle@cookie",
        ),
        (
            "samba-lsa-more.pcap",
            60,
            "LookupSidsResponse.translated_names.names.value.entries.0.name.length@length=28",
        ),
        (
            "samba-lsa-more.pcap",
            60,
            "GetPrimaryDomainInformationResponse.info.value.info.Basic.domain_name_flat.value.chars@hostname=\"FILESRV01\"",
        ),
        (
            "samba-lsa-more.pcap",
            60,
            "EnumeratePrivilegesResponse.privileges.value.max_count@count=9",
        ),
        (
            "samba-lsa-more.pcap",
            60,
            "QueryInformationPolicyResponse.info.Domain.buffer.value.name.buffer.value.chars@hostname=\"FARMNET\"",
        ),
        (
            "samba-querygroup.pcap",
            40,
            "QueryInformationGroupResponse.info.General.buffer.value.admin_comment.length@length=28",
        ),
        (
            "samba-sessions.pcap",
            30,
            "NetrConnectionEnumResponse.info.container.Level0.value.entries_read@count=0",
        ),
        (
            "samba-sharegetinfo.pcap",
            30,
            "NetrShareGetInfoResponse.info.Info502.value.path.value.actual_count@length=20",
        ),
        // 304 shares (IPC$, ADMIN$, C$, public and 300 more) over 15 DCE/RPC fragments, read whole
        // from the last one.
        (
            "samba-fragmented.pcap",
            40,
            "Fragment.piece.Last.whole.call.NetrShareEnumResponse.info.container.Level2.value.entries_read@count=304",
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
    for name in [
        "samba-enumdomusers.pcap",
        "samba-samr-groups.pcap",
        "samba-dispinfo.pcap",
        "samba-pwinfo.pcap",
        "samba-querygroup.pcap",
    ] {
        assert_handles_agree(&out_dir.join(name), "samr");
    }
    assert_handles_agree(&out_dir.join("samba-lsa-more.pcap"), "lsarpc");
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// Policy handles of an interface (tshark's `samr`, `lsarpc`): the nonzero handles tshark's
/// dissector names (`samr.handle`, `lsarpc.lsa_Close.handle`...) are exactly the ones we mark as
/// cookies (tshark names only some of the calls' handles, so compare sets).
fn assert_handles_agree(pcap: &std::path::Path, interface: &str) {
    let t = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-d", "tcp.port==4451,nbss", "-Y", interface, "-T", "pdml"])
        .output()
        .expect("tshark runs");
    let nonzero = |h: &str| h.trim_start_matches("0x").chars().any(|c| c != '0');
    let attr = |line: &str, name: &str| {
        let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_string())
    };
    let theirs: std::collections::BTreeSet<String> = String::from_utf8_lossy(&t.stdout)
        .lines()
        .filter(|l| {
            attr(l, "name")
                .is_some_and(|n| n.starts_with(&format!("{interface}.")) && n.ends_with(".handle"))
        })
        .filter_map(|l| attr(l, "value"))
        .filter(|h| nonzero(h))
        .map(|h| format!("0x{h}"))
        .collect();
    let d = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .args(["dissect", "--json", "--port", "4451=smb"])
        .arg(pcap)
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
    assert!(
        theirs.len() >= 2,
        "tshark handles of {}: {theirs:?}",
        pcap.display()
    );
    assert_eq!(ours, theirs, "{interface} handles of {}", pcap.display());
}

mod common;

use bytes::Bytes;
use common::conversation;
use honeyfarm_protocols::netbios;
use honeyfarm_runtime::codec::{Class, FieldValue, Message, Reader, Value, VisitorMut};

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
    let file = common::conversation_pcap(conv, name);
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

//! The role fields `honeyfarm dissect --json` reports for SMB and DCE/RPC, compared with what
//! tshark (an independent dissector) reads from the same captures: MID, PID, UID, TID, FID,
//! DCE/RPC call_id and frag_length, and the UNC path of Tree Connect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/captures")
        .join(name)
}

/// The fields of one SMB message.
#[derive(Debug, Default, Clone, PartialEq)]
struct Fields {
    mid: String,
    pid: String,
    uid: String,
    tid: String,
    fid: Option<String>,
    call_id: Option<String>,
    frag_length: Option<String>,
    path: Option<String>,
}

/// tshark's view, one entry per SMB frame, by TCP stream in frame order.
fn tshark(file: &Path) -> BTreeMap<u64, Vec<Fields>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args([
            "-Y",
            "smb && tcp",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=|",
        ])
        .args([
            "-e",
            "tcp.stream",
            "-e",
            "smb.mid",
            "-e",
            "smb.pid",
            "-e",
            "smb.uid",
            "-e",
            "smb.tid",
        ])
        .args([
            "-e",
            "smb.fid",
            "-e",
            "dcerpc.cn_call_id",
            "-e",
            "dcerpc.cn_frag_len",
            "-e",
            "smb.path",
        ])
        .output()
        .expect("tshark runs (scripts/setup.sh installs it)");
    let mut by_stream: BTreeMap<u64, Vec<Fields>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let all: Vec<&str> = line.split('\t').collect();
        // The first occurrence of each field, but the last of the path: tshark puts the tree's
        // path (from the TID) before the path a Tree Connect sends.
        let c: Vec<&str> = all
            .iter()
            .map(|f| f.split('|').next().unwrap_or(""))
            .collect();
        let last_path = all[8].split('|').next_back().unwrap_or("");
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let fid = opt(c[5]).map(|f| {
            u64::from_str_radix(f.trim_start_matches("0x"), 16)
                .unwrap()
                .to_string()
        });
        by_stream
            .entry(c[0].parse().unwrap())
            .or_default()
            .push(Fields {
                mid: c[1].into(),
                pid: c[2].into(),
                uid: c[3].into(),
                tid: c[4].into(),
                fid,
                call_id: opt(c[6]),
                frag_length: opt(c[7]),
                path: opt(last_path),
            });
    }
    by_stream
}

/// honeyfarm's view, one entry per message, by stream in time order.
fn honeyfarm(file: &Path) -> BTreeMap<u64, Vec<Fields>> {
    let out = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .args(["dissect", "--json"])
        .arg(file)
        .output()
        .unwrap();
    let mut by_stream: BTreeMap<u64, Vec<Fields>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let m: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(roles) = m["roles"].as_array() else {
            continue;
        };
        let find = |suffix: &str| {
            roles
                .iter()
                .find(|r| r["path"].as_str().unwrap().ends_with(suffix))
                .map(|r| r["value"].as_str().unwrap().trim_matches('"').to_string())
        };
        by_stream
            .entry(m["stream"].as_u64().unwrap())
            .or_default()
            .push(Fields {
                mid: find("Smb1.mid").unwrap_or_default(),
                pid: find("Smb1.pid").unwrap_or_default(),
                uid: find("Smb1.uid").unwrap_or_default(),
                tid: find("Smb1.tid").unwrap_or_default(),
                fid: find(".fid"),
                call_id: find("Rpc.call_id"),
                frag_length: find("Rpc.frag_length"),
                path: find("Unicode.text")
                    .or_else(|| find("Ascii.text"))
                    .map(|p| p.replace("\\\\", "\\")),
            });
    }
    by_stream
}

fn compare(file: &str, min_fids: usize, min_calls: usize, min_paths: usize) {
    let path = capture(file);
    let theirs = tshark(&path);
    let ours = honeyfarm(&path);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{file}: streams"
    );
    let (mut fids, mut calls, mut paths) = (0, 0, 0);
    for (stream, t) in &theirs {
        let o = &ours[stream];
        assert_eq!(o.len(), t.len(), "{file} stream {stream}: message count");
        for (i, (o, t)) in o.iter().zip(t).enumerate() {
            let at = format!("{file} stream {stream} message {i}");
            assert_eq!(
                (&o.mid, &o.pid, &o.uid, &o.tid),
                (&t.mid, &t.pid, &t.uid, &t.tid),
                "{at}: MID, PID, UID, TID"
            );
            if let Some(fid) = &o.fid {
                assert_eq!(Some(fid), t.fid.as_ref(), "{at}: FID");
                fids += 1;
            }
            if o.call_id.is_some() {
                assert_eq!(
                    (&o.call_id, &o.frag_length),
                    (&t.call_id, &t.frag_length),
                    "{at}: call_id, frag_length"
                );
                calls += 1;
            }
            if let Some(p) = &o.path {
                assert_eq!(Some(p), t.path.as_ref(), "{at}: UNC path");
                paths += 1;
            }
        }
    }
    assert!(
        fids >= min_fids && calls >= min_calls && paths >= min_paths,
        "{file}: compared {fids} FIDs, {calls} calls, {paths} paths"
    );
}

#[test]
fn ntlm_session_with_dcerpc_over_a_named_pipe() {
    compare("zeek_smb_raw_ntlm_in_smb.pcap", 10, 10, 1);
}

#[test]
fn file_write_over_smb1() {
    compare("suricata-verify_smb-eicar-file.pcap", 3, 0, 1);
}

#[test]
fn named_pipe_with_ascii_strings() {
    compare("suricata-verify_smb-named-pipe-ascii.pcap", 0, 0, 1);
}

/// The NTLMSSP server challenges (nonces), raw in SMB and inside SPNEGO, as tshark reads them.
#[test]
fn ntlmssp_server_challenges() {
    let file = capture("zeek_smb_raw_ntlm_in_smb.pcap");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args([
            "-Y",
            "ntlmssp.ntlmserverchallenge && tcp",
            "-T",
            "fields",
            "-e",
            "ntlmssp.ntlmserverchallenge",
        ])
        .output()
        .unwrap();
    let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| format!("0x{}", l.replace(':', "")))
        .collect();
    let d = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .args(["dissect", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    let ours: Vec<String> = String::from_utf8_lossy(&d.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|m| m["roles"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["path"].as_str().unwrap().ends_with("server_challenge"))
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect();
    assert!(!theirs.is_empty());
    assert_eq!(ours, theirs);
}

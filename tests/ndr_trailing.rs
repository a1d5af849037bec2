//! Bytes after a DCE/RPC request's NDR parameters (impacket's SamrCloseHandle carries 4, nmap's
//! LookupDomain 2): Samba reads the parameters and ignores the rest, so the decoder keeps them
//! and re-encodes them exactly. A response with bytes left over stays an error, as before.
//!
//! The messages are real ones from a Samba dialog (`tests/data/samba/samr-groups.pcap`, rpcclient
//! `enumdomgroups; enumalsgroups domain; enumalsgroups builtin`), with bytes appended and the
//! NetBIOS, SMB Transaction and DCE/RPC lengths patched by hand; tshark checks the patching.

mod common;

use std::path::PathBuf;
use std::process::Command;

use bytes::Bytes;
use common::{conversation, conversation_pcap};

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn add_u16(b: &mut [u8], at: usize, n: u16) {
    let v = u16_at(b, at) + n;
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Where an SMB1 Transaction message (request: 16 words plus 2 setup words; response: 10
/// words) keeps its total data count, data count, data offset and byte count, counted from the
/// NetBIOS header.
fn transaction_offsets(request: bool) -> (usize, usize, usize, usize) {
    // The SMB header is 32 bytes after the 4 of NetBIOS; the words start after the word count.
    let words = 4 + 32 + 1;
    if request {
        (words + 2, words + 22, words + 24, words + 32)
    } else {
        (words + 2, words + 12, words + 14, words + 20)
    }
}

/// The DCE/RPC PDU of an SMB1 Transaction message on a pipe: its offset in the message, packet
/// type and operation number (requests only).
fn pdu(msg: &[u8], request: bool) -> Option<(usize, u8, u16)> {
    if msg.len() < 4 + 32 || msg[4..8] != *b"\xffSMB" || msg[8] != 0x25 {
        return None;
    }
    let (_, _, data_offset, _) = transaction_offsets(request);
    let at = 4 + usize::from(u16_at(msg, data_offset));
    let ptype = *msg.get(at + 2)?;
    let opnum = if ptype == 0 { u16_at(msg, at + 22) } else { 0 };
    Some((at, ptype, opnum))
}

/// The message with `extra` appended to its DCE/RPC PDU and every length around it patched.
fn with_trailing(msg: &[u8], request: bool, extra: &[u8]) -> Bytes {
    let (at, _, _) = pdu(msg, request).expect("a DCE/RPC message");
    let n = extra.len() as u16;
    let mut m = msg.to_vec();
    m.extend_from_slice(extra);
    // NetBIOS: a 24-bit big-endian length after the type byte.
    let len = u32::from_be_bytes([0, m[1], m[2], m[3]]) + u32::from(n);
    m[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
    let (total_data, data, _, byte_count) = transaction_offsets(request);
    for field in [total_data, data, byte_count] {
        add_u16(&mut m, field, n);
    }
    // DCE/RPC frag_length (little-endian data representation).
    add_u16(&mut m, at + 8, n);
    Bytes::from(m)
}

fn dialog() -> Vec<(bool, Bytes)> {
    conversation(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/samba/samr-groups.pcap"),
    )
}

/// What `program ARGS CAPTURE` prints for the conversation written as a capture.
fn output_of(program: &str, args: &[&str], conv: &[(bool, Bytes)], name: &str) -> String {
    let file = conversation_pcap(conv, name);
    let out = Command::new(program)
        .args(args)
        .arg(&file)
        .output()
        .expect("the program runs");
    let _ = std::fs::remove_file(file);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dissect(conv: &[(bool, Bytes)], name: &str) -> String {
    output_of(env!("CARGO_BIN_EXE_honeyfarm"), &["dissect"], conv, name)
}

fn tshark(conv: &[(bool, Bytes)], name: &str) -> String {
    output_of("tshark", &["-r"], conv, name)
}

/// Appends `extra` to the requests of SAMR operation `opnum` (or, when `opnum` is `None`, to
/// the responses that carry a handle: Connect5, OpenDomain, Close), to at most `max` of them.
fn patched(opnum: Option<u16>, extra: &[u8], max: usize) -> (Vec<(bool, Bytes)>, usize) {
    let mut hits = 0;
    let conv = dialog()
        .into_iter()
        .map(|(to_server, msg)| {
            let hit = match (to_server, opnum, pdu(&msg, to_server)) {
                (true, Some(op), Some((_, 0, o))) => o == op,
                // A handle response: 20 bytes of handle and a status after the 24 of header.
                (false, None, Some((at, 2, _))) => u16_at(&msg, at + 8) == 24 + 24,
                _ => false,
            };
            if hit && hits < max {
                hits += 1;
                (to_server, with_trailing(&msg, to_server, extra))
            } else {
                (to_server, msg)
            }
        })
        .collect();
    (conv, hits)
}

fn summary(text: &str) -> &str {
    text.lines().last().unwrap_or("")
}

#[test]
fn requests_with_trailing_bytes_decode_and_reencode_exactly() {
    let n = dialog().len();
    let plain = dissect(&dialog(), "trailing-plain");
    assert_eq!(
        summary(&plain),
        format!("dissect: messages={n} decoded={n} roundtrip_exact={n} errors=0")
    );
    // CloseHandle with 4 bytes more (impacket), LookupDomain with 2 (nmap).
    for (opnum, extra, kind, count) in [
        (1, &b"\x00\x00\x00\x00"[..], "Request.SamrCloseRequest]", 6),
        (5, &b"\x41\x00"[..], "Request.LookupDomainRequest]", 1),
    ] {
        let (conv, hits) = patched(Some(opnum), extra, usize::MAX);
        assert_eq!(hits, count, "opnum {opnum}");
        let text = dissect(&conv, "trailing-request");
        assert_eq!(
            summary(&text),
            format!("dissect: messages={n} decoded={n} roundtrip_exact={n} errors=0"),
            "opnum {opnum}:\n{text}"
        );
        assert_eq!(text.matches(kind).count(), count, "{text}");
        // tshark reads the same messages and sees the bytes after the parameters.
        let theirs = tshark(&conv, "trailing-request-tshark");
        assert!(
            !theirs.contains("Malformed"),
            "the patched lengths are wrong:\n{theirs}"
        );
        assert!(theirs.contains("Long frame"), "{theirs}");
    }
}

#[test]
fn responses_with_trailing_bytes_are_still_errors() {
    // The first handle response (Connect5's): the server's direction of the dialog stops there.
    let (conv, hits) = patched(None, b"\x00\x00", 1);
    assert_eq!(hits, 1);
    let text = dissect(&conv, "trailing-response");
    assert!(summary(&text).ends_with("errors=1"), "{text}");
    assert_eq!(
        text.matches("2 byte(s) left over after the last field")
            .count(),
        1,
        "{text}"
    );
}

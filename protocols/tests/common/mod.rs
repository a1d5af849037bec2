//! Hand-made sample messages shared by the tests.
#![allow(dead_code)]

use bytes::Bytes;

pub fn hex(s: &str) -> Bytes {
    let clean: String = s.split_whitespace().collect();
    (0..clean.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

const SMB_HEADER_NEGOTIATE: &str =
    "ff534d42 72 00000000 18 53c8 0000 0000000000000000 0000 ffff feff 0000 0000";

pub fn negotiate_request() -> Bytes {
    let body = "00 1700 024e54204c4d20302e313200 02534d4220322e30303200";
    let smb = hex(&format!("{SMB_HEADER_NEGOTIATE} {body}"));
    let mut framed = vec![0, 0, 0, smb.len() as u8];
    framed.extend_from_slice(&smb);
    framed.into()
}

pub fn utf16(s: &str) -> String {
    s.encode_utf16()
        .flat_map(u16::to_le_bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn tree_connect() -> Bytes {
    let header = "ff534d42 75 00000000 18 07c8 0000 0000000000000000 0000 0000 feff 0008 0100";
    let words = "04 a2 00 5400 0000 0200 2700";
    let bytes = format!("0000 00 {}0000 3f3f3f3f3f00", utf16(r"\\1.2.3.4\IPC$"));
    let gap = "abcd";
    let next = "02 ff 00 0000 0300 78797a";
    hex(&format!("{header} {words} {bytes} {gap} {next}"))
}

pub fn rpc_request(drep0: &str) -> Bytes {
    let header = format!("05 00 00 03 {drep0} 000000 6800 0000 01000000");
    let request = "50000000 0000 0500";
    let handle = "0102030405060708090a0b0c0d0e0f1011121314";
    let name = "0800 0a00 00000200";
    let sid_ref = "04000200";
    let chars = format!("05000000 00000000 04000000 {}", utf16("FARM"));
    let sid = "04000000 01 04 000000000005 15000000 0a000000 0b000000 0c000000";
    hex(&format!(
        "{header} {request} {handle} {name} {sid_ref} {chars} {sid}"
    ))
}

pub fn ntlm_authenticate() -> Bytes {
    let fixed = "4e544c4d53535000 03000000 0800 0800 28000000 0600 0600 30000000 0600 0600 38000000 15820860";
    hex(&format!(
        "{fixed} {}{}7a7a{}",
        utf16("FARM"),
        utf16("bob"),
        utf16("WS1")
    ))
}

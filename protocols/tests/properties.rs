//! Properties of every generated codec, over arbitrary input:
//! - a decoder, fed any bytes, returns a value or an error, never panics;
//! - whatever it decodes re-encodes to exactly the bytes it used (`encode(decode(b)) == b`);
//! - a decoded value whose role fields are set to arbitrary values (what rewriting does)
//!   either is refused by the encoder with an error, or encodes and decodes back to itself.

mod common;

use bytes::Bytes;
use honeyfarm_protocols::{
    dcerpc, ex_frame, ex_msg, ex_rpc, ex_text, ex_web, ftp, http, netbios, smb, smtp,
};
use honeyfarm_runtime::codec::{Class, FieldValue, Message, Value, Visitor, VisitorMut};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Decodes `bytes`; anything decoded must re-encode to the bytes used.
fn exact<M: Message + std::fmt::Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    match M::decode(Bytes::copy_from_slice(bytes)) {
        Ok((msg, used)) => {
            prop_assert!(used <= bytes.len());
            let out = msg.to_bytes().map_err(|e| {
                TestCaseError::fail(format!(
                    "{} decoded {msg:?} but cannot encode it: {e}",
                    M::NAME
                ))
            })?;
            prop_assert_eq!(
                &out[..],
                &bytes[..used],
                "{} re-encodes {:?} differently",
                M::NAME,
                msg
            );
        }
        Err(e) => {
            prop_assert!(
                e.offset <= bytes.len(),
                "{}: error offset {} past the input",
                M::NAME,
                e.offset
            );
            let _ = e.to_string();
        }
    }
    Ok(())
}

/// Every top-level unit of the example specs.
fn all_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    exact::<ex_frame::Packet>(bytes)?;
    exact::<ex_msg::Message>(bytes)?;
    exact::<ex_msg::NegotiateRequest>(bytes)?;
    exact::<ex_msg::NegotiateResponse>(bytes)?;
    exact::<ex_msg::TreeConnectRequest>(bytes)?;
    exact::<ex_msg::AndxBlock>(bytes)?;
    exact::<ex_msg::NtlmAuthenticate>(bytes)?;
    exact::<ex_rpc::Pdu>(bytes)?;
    exact::<ex_rpc::LookupDomainRequest>(bytes)?;
    exact::<ex_rpc::UnicodeString>(bytes)?;
    exact::<ex_rpc::Sid>(bytes)?;
    exact::<ex_text::Command>(bytes)?;
    exact::<ex_text::Reply>(bytes)?;
    exact::<ex_text::Banner>(bytes)?;
    exact::<ex_text::PassiveReply>(bytes)?;
    exact::<ex_text::MailData>(bytes)?;
    exact::<ex_text::Bdat>(bytes)?;
    exact::<ex_text::ExtendedPassiveReply>(bytes)?;
    exact::<ex_web::Request>(bytes)?;
    exact::<ex_web::Response>(bytes)?;
    exact::<ex_web::ChunkedResponse>(bytes)?;
    exact::<ftp::Command>(bytes)?;
    exact::<ftp::Reply>(bytes)?;
    exact::<smtp::ClientMessage>(bytes)?;
    exact::<smtp::Reply>(bytes)?;
    exact::<http::Request>(bytes)?;
    exact::<http::Response>(bytes)?;
    exact::<netbios::Session>(bytes)?;
    exact::<netbios::DirectTcp>(bytes)?;
    exact::<smb::Message>(bytes)?;
    exact::<dcerpc::Pdu>(bytes)?;
    Ok(())
}

fn samples() -> Vec<Bytes> {
    static ALL: std::sync::OnceLock<Vec<Bytes>> = std::sync::OnceLock::new();
    ALL.get_or_init(build_samples).clone()
}

fn build_samples() -> Vec<Bytes> {
    [
        common::negotiate_request(),
        common::tree_connect(),
        common::rpc_request("10"),
        common::rpc_request("00"),
        Bytes::from_static(b"PORT 192,168,1,2,7,138\r\n"),
        Bytes::from_static(b"HELO [192.0.2.1]\r\n"),
        Bytes::from_static(b"250-mail.example.org\r\n250-SIZE 1000\r\n250 HELP\r\n"),
        Bytes::from_static(b"227 Entering Passive Mode (127,0,0,1,200,15).\r\n"),
        Bytes::from_static(b"220 mx.example.org ESMTP ready\r\n"),
        Bytes::from_static(b"POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nCookie: s=1\r\n\r\nhello"),
        Bytes::from_static(b"HTTP/1.1 200 OK\r\nDate: Mon, 23 Nov 2026 08:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\n\r\n"),
        Bytes::from_static(b"BDAT 5 LAST\r\nhello"),
        Bytes::from_static(b"Subject: hi\r\n\r\n..dot\r\n.\r\n"),
        common::ntlm_authenticate(),
        Bytes::from_static(b"230-Welcome\r\n  to the farm\r\n230 Login ok.\r\n"),
        Bytes::from_static(b"220 mx.example.org ESMTP Exim 4.69 Mon, 05 Oct 2009 01:05:54 -0500\r\n"),
        Bytes::from_static(b"250 2.0.0 Ok: queued as 4C5DF1A2B3\r\n"),
        Bytes::from_static(b"EPRT |1|132.235.1.2|6275|\r\n"),
        Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nSet-Cookie: s=1\r\n\r\nabc"),
    ]
    .into_iter()
    .chain(smb_samples())
    .collect()
}

/// Real SMB messages (direct TCP framing) from two corpus captures: negotiation, session setup,
/// tree connect, NT create, named-pipe transactions with DCE/RPC, writes, closes.
fn smb_samples() -> Vec<Bytes> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/captures");
    let mut out = Vec::new();
    for file in [
        "suricata-verify_smb-eicar-file.pcap",
        "zeek_smb_raw_ntlm_in_smb.pcap",
    ] {
        let streams = honeyfarm_runtime::capture::tcp_streams(&dir.join(file)).unwrap();
        for st in streams.iter().filter(|s| s.server.port() == 445) {
            for half in [&st.to_server.data, &st.to_client.data] {
                let mut at = 0;
                while at + 4 <= half.len() {
                    let len = (usize::from(half[at + 1]) << 16)
                        | (usize::from(half[at + 2]) << 8)
                        | usize::from(half[at + 3]);
                    if at + 4 + len > half.len() {
                        break;
                    }
                    out.push(Bytes::copy_from_slice(&half[at..at + 4 + len]));
                    at += 4 + len;
                }
            }
        }
    }
    out.truncate(40);
    out
}

#[derive(Debug, Clone)]
enum Edit {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Cut { at: usize },
    Insert { at: usize, byte: u8 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Set { at, byte }),
        any::<usize>().prop_map(|at| Edit::Cut { at }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
    ]
}

fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        if b.is_empty() {
            break;
        }
        match *e {
            Edit::Flip { at, bit } => {
                let i = at % b.len();
                b[i] ^= 1 << bit;
            }
            Edit::Set { at, byte } => {
                let i = at % b.len();
                b[i] = byte;
            }
            Edit::Cut { at } => b.truncate(at % b.len()),
            Edit::Insert { at, byte } => {
                let i = at % (b.len() + 1);
                b.insert(i, byte);
            }
        }
    }
    b
}

/// Sets every non-derived role field from a stream of arbitrary values.
struct Scramble {
    values: Vec<Value>,
    next: usize,
}

impl VisitorMut for Scramble {
    fn field(&mut self, _name: &'static str, class: Class, value: &mut dyn FieldValue) {
        if let Class::Role(role) = class {
            if !role.is_derived() && !self.values.is_empty() {
                let v = self.values[self.next % self.values.len()].clone();
                self.next += 1;
                // A value of the wrong kind is refused by `set`; that is part of the contract.
                let _ = value.set(v);
            }
        }
    }
}

/// Every leaf except lengths, counts, offsets and layout (padding follows the new lengths),
/// with its path: what must survive a round trip.
#[derive(Default)]
struct Leaves {
    stack: Vec<String>,
    out: Vec<(String, Value)>,
}

impl Visitor for Leaves {
    fn enter(&mut self, name: &str) {
        self.stack.push(name.to_string());
    }
    fn leave(&mut self) {
        self.stack.pop();
    }
    fn field(&mut self, name: &'static str, class: Class, value: &dyn FieldValue) {
        if class == Class::Layout || matches!(class, Class::Role(r) if r.is_derived()) {
            return;
        }
        self.out
            .push((format!("{}.{name}", self.stack.join(".")), value.value()));
    }
}

fn leaves<M: Message>(m: &M) -> Vec<(String, Value)> {
    let mut l = Leaves::default();
    m.visit(&mut l);
    l.out
}

fn rewrite_roundtrip<M: Message + std::fmt::Debug>(
    bytes: &Bytes,
    values: &[Value],
) -> Result<bool, TestCaseError> {
    let Ok((mut msg, _)) = M::decode(bytes.clone()) else {
        return Ok(false);
    };
    msg.visit_mut(&mut Scramble {
        values: values.to_vec(),
        next: 0,
    });
    let Ok(out) = msg.to_bytes() else {
        return Ok(false);
    };
    let (again, used) = M::decode(out.clone()).map_err(|e| {
        TestCaseError::fail(format!(
            "{} encoded {msg:?} to bytes it cannot decode: {e}",
            M::NAME
        ))
    })?;
    prop_assert_eq!(used, out.len());
    prop_assert_eq!(
        leaves(&again),
        leaves(&msg),
        "{} changed in a round trip",
        M::NAME
    );
    prop_assert_eq!(&again.to_bytes().unwrap()[..], &out[..]);
    Ok(true)
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::Uint),
        (0u64..70000).prop_map(Value::Uint),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Bytes(b.into())),
        "[ -~]{0,30}".prop_map(Value::Str),
        "[a-z0-9.\\-]{1,40}".prop_map(Value::Str),
        any::<[u8; 4]>().prop_map(|a| Value::Ip(std::net::IpAddr::from(a))),
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(a, p)| Value::Socket(std::net::SocketAddr::from((a, p)))),
    ]
}

proptest! {
    // 512 cases by default; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn arbitrary_bytes_never_panic_and_decoded_input_reencodes_exactly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        all_decoders(&bytes)?;
    }

    #[test]
    fn edited_real_messages_never_panic_and_reencode_exactly(
        which in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let all = samples();
        let sample = all[which.index(all.len())].to_vec();
        all_decoders(&apply(sample, &edits))?;
    }

    #[test]
    fn rewritten_role_fields_encode_and_decode_back(which in any::<proptest::sample::Index>(), values in proptest::collection::vec(value(), 1..12)) {
        let all = samples();
        let b = &all[which.index(all.len())];
        let decoded_by_some = [
            rewrite_roundtrip::<ex_frame::Packet>(b, &values)?,
            rewrite_roundtrip::<ex_msg::Message>(b, &values)?,
            rewrite_roundtrip::<ex_rpc::Pdu>(b, &values)?,
            rewrite_roundtrip::<ex_text::Command>(b, &values)?,
            rewrite_roundtrip::<ex_text::Reply>(b, &values)?,
            rewrite_roundtrip::<ex_text::Banner>(b, &values)?,
            rewrite_roundtrip::<ex_text::PassiveReply>(b, &values)?,
            rewrite_roundtrip::<ex_text::Bdat>(b, &values)?,
            rewrite_roundtrip::<ex_msg::NtlmAuthenticate>(b, &values)?,
            rewrite_roundtrip::<ftp::Command>(b, &values)?,
            rewrite_roundtrip::<ftp::Reply>(b, &values)?,
            rewrite_roundtrip::<smtp::ClientMessage>(b, &values)?,
            rewrite_roundtrip::<smtp::Reply>(b, &values)?,
            rewrite_roundtrip::<http::Request>(b, &values)?,
            rewrite_roundtrip::<http::Response>(b, &values)?,
            rewrite_roundtrip::<netbios::DirectTcp>(b, &values)?,
            rewrite_roundtrip::<dcerpc::Pdu>(b, &values)?,
            rewrite_roundtrip::<ex_web::Request>(b, &values)?,
            rewrite_roundtrip::<ex_web::Response>(b, &values)?,
            rewrite_roundtrip::<ex_web::ChunkedResponse>(b, &values)?,
        ];
        let _ = decoded_by_some;
    }
}

/// The rewrite property is not vacuous: on the samples, most rewrites do encode.
#[test]
fn most_rewrites_of_samples_encode() {
    let values = [
        Value::Uint(7),
        Value::Str("host-a.example".into()),
        Value::Socket("10.1.2.3:2121".parse().unwrap()),
        Value::Bytes(Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8])),
    ];
    let mut encoded = 0;
    for b in samples() {
        for ok in [
            rewrite_roundtrip::<ex_frame::Packet>(&b, &values).unwrap(),
            rewrite_roundtrip::<ex_rpc::Pdu>(&b, &values).unwrap(),
            rewrite_roundtrip::<ex_text::PassiveReply>(&b, &values).unwrap(),
            rewrite_roundtrip::<ex_text::Banner>(&b, &values).unwrap(),
        ] {
            encoded += usize::from(ok);
        }
    }
    assert!(encoded >= 4, "only {encoded} rewrites encoded");
}

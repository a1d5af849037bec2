//! Exact round trips of the example specs on hand-made bytes, and rewriting through the
//! protocol-independent visitor API.

mod common;

use bytes::{Bytes, BytesMut};
use common::{hex, negotiate_request, ntlm_authenticate, rpc_request, tree_connect};
use honeyfarm_protocols::{ex_frame, ex_msg};
use honeyfarm_runtime::codec::{
    Class, DecodeErrorKind, FieldValue, Message, RoleFields, Value, VisitorMut,
};

/// Decodes all of `bytes`, checks it used every byte and re-encodes to the same bytes.
fn roundtrip<M: Message + std::fmt::Debug>(bytes: &Bytes) -> M {
    let (msg, used) = M::decode(bytes.clone()).unwrap_or_else(|e| panic!("decode: {e}"));
    assert_eq!(
        used,
        bytes.len(),
        "decode used {used} of {} bytes",
        bytes.len()
    );
    let out = msg.to_bytes().unwrap();
    assert_eq!(&out[..], &bytes[..], "re-encoding differs for {msg:#?}");
    msg
}

#[test]
fn negotiate_request_roundtrips_through_two_layers() {
    let bytes = negotiate_request();
    let pkt: ex_frame::Packet = roundtrip(&bytes);
    assert_eq!(pkt.kind, ex_frame::Kind::Message);
    assert_eq!(pkt.length as usize, bytes.len() - 4);
    let ex_frame::PacketBody::Message(msg) = &pkt.body else {
        panic!("not a message: {pkt:?}")
    };
    assert_eq!(msg.command, ex_msg::Command::Negotiate);
    assert!(msg.flags2.contains(ex_msg::Flags2::UNICODE));
    let ex_msg::MessageBody::NegotiateRequest(neg) = &msg.body else {
        panic!("{msg:?}")
    };
    let names: Vec<&[u8]> = neg.dialects.iter().map(|d| &d.name[..]).collect();
    assert_eq!(names, [&b"NT LM 0.12"[..], b"SMB 2.002"]);
}

/// Rewrites every field whose role has the given name and whose path ends with `suffix`.
struct SetRole {
    role: &'static str,
    suffix: &'static str,
    value: Value,
    stack: Vec<String>,
    hits: usize,
}

impl SetRole {
    fn new(role: &'static str, suffix: &'static str, value: Value) -> Self {
        SetRole {
            role,
            suffix,
            value,
            stack: Vec::new(),
            hits: 0,
        }
    }
}

impl VisitorMut for SetRole {
    fn enter(&mut self, name: &str) {
        self.stack.push(name.to_string());
    }
    fn leave(&mut self) {
        self.stack.pop();
    }
    fn field(&mut self, name: &'static str, class: Class, value: &mut dyn FieldValue) {
        let path = format!("{}.{name}", self.stack.join("."));
        if let Class::Role(r) = class {
            if r.name() == self.role && path.ends_with(self.suffix) {
                value.set(self.value.clone()).unwrap();
                self.hits += 1;
            }
        }
    }
}

#[test]
fn andx_chain_with_offset_gap_and_alignment_roundtrips() {
    let bytes = tree_connect();
    let msg: ex_msg::Message = roundtrip(&bytes);
    let ex_msg::MessageBody::TreeConnectRequest(tc) = &msg.body else {
        panic!("{msg:?}")
    };
    assert_eq!(tc.word_count, 4);
    assert_eq!(tc.andx_offset, 84);
    assert_eq!(&tc._pad0[..], &[0]);
    assert_eq!(tc.path.to_string_lossy(), r"\\1.2.3.4\IPC$");
    let next = tc.next.as_ref().expect("chained block");
    assert_eq!(&tc._gap_next[..], &[0xab, 0xcd]);
    assert_eq!(&next.data[..], b"xyz");
    assert!(next.next.is_none());
}

#[test]
fn rewriting_the_unc_host_recomputes_counts_offsets_and_padding() {
    let mut msg: ex_msg::Message = roundtrip(&tree_connect());
    let mut set = SetRole::new(
        "hostname",
        ".path",
        Value::Str(r"\\192.168.100.200\IPC$".into()),
    );
    msg.visit_mut(&mut set);
    assert_eq!(set.hits, 1);
    let out = msg.to_bytes().unwrap();
    assert_eq!(
        out.len(),
        tree_connect().len() + 16,
        "8 more UTF-16 characters"
    );
    let (again, used) = ex_msg::Message::decode(out.clone()).unwrap();
    assert_eq!(used, out.len());
    let ex_msg::MessageBody::TreeConnectRequest(tc) = &again.body else {
        panic!()
    };
    assert_eq!(tc.path.to_string_lossy(), r"\\192.168.100.200\IPC$");
    assert_eq!(tc.byte_count, 0x27 + 16);
    assert_eq!(
        tc.andx_offset,
        84 + 16,
        "the offset follows the longer path, the gap is kept"
    );
    assert_eq!(&tc._gap_next[..], &[0xab, 0xcd]);
    assert_eq!(&tc.next.as_ref().unwrap().data[..], b"xyz");
}

#[test]
fn role_fields_are_enumerated_without_naming_the_protocol() {
    let msg: ex_msg::Message = roundtrip(&tree_connect());
    let roles = RoleFields::of(&msg);
    let find = |path: &str| {
        roles
            .iter()
            .find(|r| r.path == path)
            .map(|r| (r.role.to_string(), r.value.clone()))
    };
    assert_eq!(
        find("mid"),
        Some(("cookie(ex.mid, client)".into(), Value::Uint(1)))
    );
    assert_eq!(
        find("uid"),
        Some(("cookie(ex.uid, server)".into(), Value::Uint(0x800)))
    );
    assert_eq!(
        find("body.TreeConnectRequest.andx_offset").map(|r| r.1),
        Some(Value::Uint(84))
    );
    assert_eq!(
        find("body.TreeConnectRequest.path").map(|r| r.1),
        Some(Value::Str(r"\\1.2.3.4\IPC$".into()))
    );
    assert!(roles
        .iter()
        .any(|r| r.path == "signature" && r.role.name() == "signature"));
}

#[test]
fn match_key_ignores_role_fields_and_keeps_content() {
    use honeyfarm_runtime::codec::MatchKey;
    let a: ex_msg::Message = roundtrip(&tree_connect());
    let mut b = a.clone();
    b.mid = 77;
    b.pid = 1234;
    let mut set = SetRole::new("hostname", ".path", Value::Str(r"\\10.9.8.7\IPC$".into()));
    b.visit_mut(&mut set);
    assert_eq!(
        MatchKey::of(&a),
        MatchKey::of(&b),
        "cookies and host names do not change the key"
    );
    let mut c = a.clone();
    c.status = 5;
    assert_ne!(MatchKey::of(&a), MatchKey::of(&c), "content does");
}

#[test]
fn ndr_stub_with_deferred_pointers_roundtrips() {
    use honeyfarm_protocols::ex_rpc;
    let bytes = rpc_request("10");
    let pdu: ex_rpc::Pdu = roundtrip(&bytes);
    assert_eq!(pdu.frag_length as usize, bytes.len());
    let ex_rpc::PduBody::Request(req) = &pdu.body else {
        panic!("{pdu:?}")
    };
    assert_eq!(req.opnum, 5);
    let ex_rpc::StubCall::LookupDomainRequest(call) = &req.stub.call else {
        panic!("{req:?}")
    };
    assert_eq!(call.name.buffer.referent, 0x20000);
    let chars = call
        .name
        .buffer
        .value
        .as_ref()
        .expect("deferred pointee decoded");
    assert_eq!(chars.chars.to_string_lossy(), "FARM");
    let sid = call.sid.value.as_ref().expect("SID");
    assert_eq!(sid.sub_authority, [0x15, 0x0a, 0x0b, 0x0c]);
    let roles = RoleFields::of(&pdu);
    let referents: Vec<&Value> = roles
        .iter()
        .filter(|r| r.role.to_string() == "cookie(ndr.referent, client)")
        .map(|r| &r.value)
        .collect();
    assert_eq!(referents, [&Value::Uint(0x20000), &Value::Uint(0x20004)]);
}

#[test]
fn byte_order_follows_the_data_representation_at_run_time() {
    use honeyfarm_protocols::ex_rpc;
    let little: ex_rpc::Pdu = roundtrip(&rpc_request("10"));
    let mut big = little.clone();
    big.drep0 = 0x00;
    let bytes = big.to_bytes().unwrap();
    assert_eq!(
        &bytes[8..10],
        &[0x00, 0x68],
        "frag_length is big-endian now"
    );
    let again: ex_rpc::Pdu = roundtrip(&bytes);
    assert_eq!(again, big);
}

#[test]
fn rewriting_an_ndr_string_recomputes_every_enclosing_length() {
    use honeyfarm_protocols::ex_rpc;
    let mut pdu: ex_rpc::Pdu = roundtrip(&rpc_request("10"));
    let mut set = SetRole::new("hostname", ".chars", Value::Str("TELESCOPE01".into()));
    pdu.visit_mut(&mut set);
    assert_eq!(set.hits, 1);
    let bytes = pdu.to_bytes().unwrap();
    let again: ex_rpc::Pdu = roundtrip(&bytes);
    assert_eq!(again.frag_length as usize, bytes.len());
    let ex_rpc::PduBody::Request(req) = &again.body else {
        panic!()
    };
    assert_eq!(req.alloc_hint as usize, bytes.len() - 24);
    let ex_rpc::StubCall::LookupDomainRequest(call) = &req.stub.call else {
        panic!()
    };
    assert_eq!(call.name.length, 22, "RPC_UNICODE_STRING length in bytes");
    let chars = call.name.buffer.value.as_ref().unwrap();
    assert_eq!(chars.actual_count, 11);
    assert_eq!(chars.chars.to_string_lossy(), "TELESCOPE01");
    assert_eq!(
        call.sid.value.as_ref().unwrap().sub_authority.len(),
        4,
        "the SID after it still aligns"
    );
}

#[test]
fn text_commands_roundtrip_exactly() {
    use honeyfarm_protocols::ex_text::{self, CommandArgs};
    for line in [
        &b"PORT 192,168,1,2,7,138\r\n"[..],
        b"ehlo client.example\r\n",
        b"HELO [192.0.2.1]\r\n",
        b"SIZE -0012\r\n",
        b"XYZZY foo  bar\r\n",
        b"QUIT\n",
    ] {
        let cmd: ex_text::Command = roundtrip(&Bytes::copy_from_slice(line));
        match (&cmd.args, line[0]) {
            (CommandArgs::Port(p), b'P') => {
                assert_eq!(p.addr.addr.unwrap().to_string(), "192.168.1.2:1930")
            }
            (CommandArgs::Hello(h), b'e') => assert_eq!(&cmd.verb[..], b"ehlo", "{h:?}"),
            (CommandArgs::HelloLiteral(h), b'H') => {
                assert_eq!(h.addr.addr.to_string(), "192.0.2.1")
            }
            (CommandArgs::Size(s), b'S') => assert_eq!(s.size.value(), Some(-12)),
            (CommandArgs::Unknown(rest), b'X') => assert_eq!(&rest[..], b" foo  bar"),
            (CommandArgs::NoArgs, b'Q') => assert_eq!(&cmd._eol[..], b"\n"),
            (other, _) => panic!("{other:?}"),
        }
    }
}

#[test]
fn multi_line_reply_ends_at_the_line_with_a_space() {
    use honeyfarm_protocols::ex_text;
    let bytes = Bytes::from_static(b"250-mail.example.org\r\n250-SIZE 1000\r\n250 HELP\r\n");
    let reply: ex_text::Reply = roundtrip(&bytes);
    assert_eq!(reply.lines.len(), 3);
    assert_eq!(&reply.lines[2].text[..], b"HELP");
    let (partial, _) = (ex_text::Reply::decode(bytes.slice(..30)), ());
    assert!(
        partial.unwrap_err().is_incomplete(),
        "a cut reply waits for more"
    );
}

#[test]
fn text_addresses_and_host_names_rewrite_to_other_lengths() {
    use honeyfarm_protocols::ex_text;
    let mut pasv: ex_text::PassiveReply = roundtrip(&Bytes::from_static(
        b"227 Entering Passive Mode (127,0,0,1,200,15).\r\n",
    ));
    let mut set = SetRole::new(
        "address",
        ".addr",
        Value::Socket("10.200.30.40:5000".parse().unwrap()),
    );
    pasv.visit_mut(&mut set);
    assert_eq!(
        &pasv.to_bytes().unwrap()[..],
        b"227 Entering Passive Mode (10,200,30,40,19,136).\r\n"
    );

    let mut banner: ex_text::Banner =
        roundtrip(&Bytes::from_static(b"220 mx.example.org ESMTP ready\r\n"));
    let mut set = SetRole::new(
        "hostname",
        ".host",
        Value::Str("mail.telescope.example.net".into()),
    );
    banner.visit_mut(&mut set);
    assert_eq!(
        &banner.to_bytes().unwrap()[..],
        b"220 mail.telescope.example.net ESMTP ready\r\n"
    );
}

#[test]
fn over_long_lines_and_malformed_values_are_typed_errors() {
    use honeyfarm_protocols::ex_text;
    let mut long = vec![b'A'; 600];
    long.extend_from_slice(b"\r\n");
    let err = ex_text::Command::decode(long.into()).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::LineTooLong { max: 512 });
    // Not an address: kept as sent, with no address to rewrite.
    let port: ex_text::Command = roundtrip(&Bytes::from_static(b"PORT 300,1,1,1,1,1\r\n"));
    let ex_text::CommandArgs::Port(p) = &port.args else {
        panic!("{port:?}")
    };
    assert_eq!(
        (p.addr.addr, &p.addr.raw[..]),
        (None, &b"300,1,1,1,1,1"[..])
    );
    let err = ex_text::Command::decode(Bytes::from_static(b"PORT 1,2,3,4,5,6x\r\n")).unwrap_err();
    assert!(
        matches!(err.kind, DecodeErrorKind::Trailing { count: 1 }),
        "{err}"
    );
    assert_eq!(err.field_path(), "ex_text.Command._eol");
    let err = ex_text::ReplyLine::decode(Bytes::from_static(b"2x0 oops\r\n")).unwrap_err();
    assert!(
        matches!(err.kind, DecodeErrorKind::Mismatch { .. }),
        "{err}"
    );
}

#[test]
fn frame_codec_splits_a_stream_cut_anywhere() {
    use honeyfarm_protocols::ex_frame;
    use tokio_util::codec::Decoder;
    let one = negotiate_request();
    let stream: Vec<u8> = [&one[..], &hex("85000000")[..], &one[..]].concat();
    for cut in 1..stream.len() {
        let mut codec = ex_frame::PacketCodec::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in [&stream[..cut], &stream[cut..]] {
            buf.extend_from_slice(chunk);
            while let Some(p) = codec.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got.len(), 3, "cut at {cut}");
        assert!(matches!(got[1].body, ex_frame::PacketBody::Keepalive));
        assert!(buf.is_empty());
    }
}

#[test]
fn truncated_and_inconsistent_input_gives_errors_with_offset_and_path() {
    let bytes = negotiate_request();
    // A NetBIOS length that claims less than the SMB message needs.
    let mut short = bytes.to_vec();
    short[3] -= 5;
    let err = ex_frame::Packet::decode(short.into()).unwrap_err();
    assert!(
        matches!(err.kind, DecodeErrorKind::Truncated { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("ex_frame.Packet.body.ex_msg.Message.body.NegotiateRequest"),
        "{err}"
    );
    // A wrong magic.
    let mut bad = bytes.to_vec();
    bad[5] = b'X';
    let err = ex_frame::Packet::decode(bad.into()).unwrap_err();
    assert_eq!(err.offset, 4);
    assert_eq!(err.location(), Some("ex_msg.proto-dsl:25:5"));
    assert_eq!(err.to_string(), "expected b\"\\xffSMB\", found b\"\\xffXMB\" at byte 4 (ex_frame.Packet.body.ex_msg.Message.magic, ex_msg.proto-dsl:25:5)");
}

#[test]
fn http_request_body_is_sized_by_its_content_length_header() {
    use honeyfarm_protocols::ex_web;
    let wire = Bytes::from_static(
        b"POST /cgi-bin/x HTTP/1.1\r\nHost: 192.0.2.7\r\ncontent-length:  5 \r\nX-Odd:value\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n",
    );
    let (req, used) = ex_web::Request::decode(wire.clone()).unwrap();
    assert_eq!(&req.body[..], b"hello");
    assert_eq!(
        &wire[..used],
        &req.to_bytes().unwrap()[..],
        "headers keep their order, case and spacing"
    );
    let (next, _) = ex_web::Request::decode(wire.slice(used..)).unwrap();
    assert_eq!(&next.line.method[..], b"GET");
    assert!(next.body.is_empty(), "no Content-Length, no body");
}

#[test]
fn rewriting_an_http_body_and_host_updates_content_length() {
    use honeyfarm_protocols::ex_web;
    let wire = Bytes::from_static(
        b"POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello",
    );
    let mut req: ex_web::Request = roundtrip(&wire);
    req.body = Bytes::from_static(b"a longer body");
    let mut set = SetRole::new(
        "hostname",
        ".host",
        Value::Str("honeypot-17.farm.example".into()),
    );
    req.visit_mut(&mut set);
    assert_eq!(set.hits, 1);
    assert_eq!(
        &req.to_bytes().unwrap()[..],
        &b"POST /x HTTP/1.1\r\nHost: honeypot-17.farm.example\r\nContent-Length: 13\r\n\r\na longer body"[..]
    );
    let mut no_header: ex_web::Request = roundtrip(&Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n"));
    no_header.body = Bytes::from_static(b"x");
    let err = no_header.to_bytes().unwrap_err();
    assert!(
        err.to_string()
            .contains("no `head.lines.entry.Field.value.ContentLength.length` to hold their size"),
        "{err}"
    );
}

#[test]
fn chunked_http_body_roundtrips_and_yields_its_content() {
    use honeyfarm_protocols::ex_web;
    let wire = Bytes::from_static(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n");
    let resp: ex_web::ChunkedResponse = roundtrip(&wire);
    assert_eq!(resp.line.status.value(), Some(200));
    assert_eq!(
        resp.body.value(),
        Value::Bytes(Bytes::from_static(b"Wikipedia"))
    );
}

#[test]
fn smtp_data_and_bdat_bodies() {
    use honeyfarm_protocols::ex_text;
    let data: ex_text::MailData =
        roundtrip(&Bytes::from_static(b"Subject: hi\r\n\r\n..dot\r\n.\r\n"));
    assert_eq!(
        data.content.value(),
        Value::Bytes(Bytes::from_static(b"Subject: hi\r\n\r\n.dot\r\n"))
    );

    let mut bdat: ex_text::Bdat = roundtrip(&Bytes::from_static(b"BDAT 5 LAST\r\nhello"));
    assert_eq!(&bdat.chunk[..], b"hello");
    bdat.chunk = Bytes::from_static(b"hello, world");
    assert_eq!(
        &bdat.to_bytes().unwrap()[..],
        b"BDAT 12 LAST\r\nhello, world"
    );
    let cut = ex_text::Bdat::decode(Bytes::from_static(b"BDAT 5 LAST\r\nhel")).unwrap_err();
    assert!(cut.is_incomplete());
}

#[test]
fn security_buffers_locate_their_data_and_follow_a_rewrite() {
    let mut msg: ex_msg::NtlmAuthenticate = roundtrip(&ntlm_authenticate());
    assert_eq!(msg.user.to_string_lossy(), "bob");
    assert_eq!(
        &msg._gap_workstation[..],
        b"zz",
        "bytes between data fields are kept"
    );
    let roles = RoleFields::of(&msg);
    assert!(roles
        .iter()
        .any(|r| r.path == "workstation" && r.role.name() == "volatile"));
    let mut set = SetRole::new("hostname", "domain", Value::Str("TELESCOPE".into()));
    msg.visit_mut(&mut set);
    let again: ex_msg::NtlmAuthenticate = roundtrip(&msg.to_bytes().unwrap());
    assert_eq!((again.domain_length, again.domain_max), (18, 18));
    assert_eq!(
        (again.user_offset, again.workstation_offset),
        (40 + 18, 40 + 18 + 6 + 2)
    );
    assert_eq!(again.domain.to_string_lossy(), "TELESCOPE");
    assert_eq!(again.workstation.to_string_lossy(), "WS1");
}

#[test]
fn offsets_that_point_backwards_are_errors() {
    let mut bytes = ntlm_authenticate().to_vec();
    bytes[24] = 0x20; // user_offset: into the fixed part
    let err = ex_msg::NtlmAuthenticate::decode(bytes.into()).unwrap_err();
    assert!(
        matches!(err.kind, DecodeErrorKind::OffsetBackwards { target: 32 }),
        "{err}"
    );
    assert_eq!(err.field_path(), "ex_msg.NtlmAuthenticate.user");
}

#[test]
fn negotiate_response_with_big_endian_field_timestamp_nonce_and_host() {
    let header = "ff534d42 72 00000000 98 01c8 0000 0000000000000000 0000 0000 feff 0000 0000";
    let words = "08 0500 03 0032 00c0f1d2e3a4b5c6 88ff 08";
    let bytes = format!("1800 1122334455667788 {}0000", common::utf16("FARMNET"));
    let msg: ex_msg::Message = roundtrip(&hex(&format!("{header} {words} {bytes}")));
    let ex_msg::MessageBody::NegotiateResponse(r) = &msg.body else {
        panic!("{msg:?}")
    };
    assert_eq!(r.max_mpx, 50, "u16be in a little-endian protocol");
    assert_eq!(r.time_zone, -120);
    assert_eq!(r.system_time, 0xc6b5a4e3d2f1c000);
    assert_eq!(
        &r.challenge[..],
        &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
    );
    assert_eq!(r.domain.to_string_lossy(), "FARMNET");
    let roles: Vec<String> = RoleFields::of(&msg)
        .iter()
        .map(|r| format!("{}={}", r.path, r.role))
        .collect();
    assert!(
        roles.contains(&"body.NegotiateResponse.system_time=timestamp(filetime)".to_string()),
        "{roles:?}"
    );
    assert!(
        roles.contains(&"body.NegotiateResponse.challenge=nonce".to_string()),
        "{roles:?}"
    );
}

#[test]
fn unknown_enum_values_are_kept() {
    let bytes =
        hex("ff534d42 99 00000000 18 0100 0000 0000000000000000 0000 0000 0000 0000 0000 c0ffee");
    let msg: ex_msg::Message = roundtrip(&bytes);
    assert_eq!(msg.command, ex_msg::Command::Unknown(0x99));
    assert!(matches!(&msg.body, ex_msg::MessageBody::Raw(b) if b[..] == [0xc0, 0xff, 0xee]));
}

#[test]
fn direction_selects_the_unit_and_ports_have_their_role() {
    use honeyfarm_protocols::ex_text::{self, ExchangeItem};
    let cmd = Bytes::from_static(b"NOOP\r\n");
    let reply = Bytes::from_static(b"250 OK\r\n");
    let (a, _) = ex_text::Exchange::decode_directed(cmd.clone(), true).unwrap();
    assert!(matches!(a.item, ExchangeItem::Command(_)));
    let (b, _) = ex_text::Exchange::decode_directed(reply.clone(), false).unwrap();
    assert!(matches!(b.item, ExchangeItem::Reply(_)));
    assert_eq!(b.to_bytes().unwrap(), reply);
    let err = ex_text::Exchange::decode(cmd).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::Arithmetic,
        "no direction given: {err}"
    );

    let epsv: ex_text::ExtendedPassiveReply = roundtrip(&Bytes::from_static(
        b"229 Entering Extended Passive Mode (|||6446|)\r\n",
    ));
    assert_eq!(epsv.port.value(), Some(6446));
    let mut epsv = epsv;
    let mut set = SetRole::new("port", "port", Value::Uint(50001));
    epsv.visit_mut(&mut set);
    assert_eq!(
        &epsv.to_bytes().unwrap()[..],
        b"229 Entering Extended Passive Mode (|||50001|)\r\n"
    );
}

#[test]
fn arrays_by_count_expression() {
    use honeyfarm_protocols::ex_rpc;
    let pdu: ex_rpc::Pdu = roundtrip(&rpc_request("10"));
    let ex_rpc::PduBody::Request(req) = &pdu.body else {
        panic!()
    };
    let ex_rpc::StubCall::LookupDomainRequest(call) = &req.stub.call else {
        panic!()
    };
    assert_eq!(
        call.sid.value.as_ref().unwrap().authority,
        [0, 0, 0, 0, 0, 5]
    );
}

/// `within` ends the body before a trailer sized by its own last byte (peeked with `ahead()`);
/// the length after the trailer is recomputed when the trailer changes.
#[test]
fn a_body_ends_where_a_trailer_sized_by_its_last_byte_begins() {
    use honeyfarm_protocols::ex_pieces;
    let bytes = Bytes::from_static(b"\x01\x03\x02\x00\x01\x00\x02xy\x02");
    let mut msg: ex_pieces::Message = roundtrip(&bytes);
    let ex_pieces::MessageBody::Whole(record) = &msg.body else {
        panic!("a whole record: {msg:?}");
    };
    assert_eq!(record.items, vec![1, 2]);
    assert_eq!(&msg.trailer[..], b"xy");
    msg.trailer = Bytes::from_static(b"xyz");
    assert_eq!(
        &msg.to_bytes().unwrap()[..],
        b"\x01\x03\x02\x00\x01\x00\x02xyz\x03"
    );
    // A trailer size that points before the message: a decode error, not a panic.
    assert!(ex_pieces::Message::decode(Bytes::from_static(b"\x01\x03\x02\x09")).is_err());
}

/// A record split over three messages is gathered in session memory and read whole from the
/// last piece; each message still re-encodes to its own bytes, and the last piece of a
/// record whose first pieces were not seen has no view.
#[test]
fn pieces_gathered_in_memory_are_read_whole_from_the_last() {
    use honeyfarm_protocols::ex_pieces;
    use honeyfarm_runtime::codec::Reader;
    let pieces: [&'static [u8]; 3] = [
        b"\x05\x01\x02\x00\x00",
        b"\x05\x00\x01\x00\x00",
        b"\x05\x02\x02t\x01",
    ];
    let mut memory = Default::default();
    let mut last = None;
    for p in pieces {
        let mut r = Reader::new(Bytes::from_static(p));
        r.set_memory(std::mem::take(&mut memory));
        let msg = ex_pieces::Message::decode_from(&mut r).unwrap();
        memory = r.take_memory();
        assert_eq!(&msg.to_bytes().unwrap()[..], p);
        last = Some(msg);
    }
    let Some(ex_pieces::Message {
        body: ex_pieces::MessageBody::Last(piece),
        ..
    }) = last
    else {
        panic!("the last piece");
    };
    assert_eq!(piece.record.map(|r| r.items), Some(vec![1, 2]));

    let (alone, _) = ex_pieces::Message::decode(Bytes::from_static(pieces[2])).unwrap();
    let ex_pieces::MessageBody::Last(piece) = alone.body else {
        panic!("the last piece");
    };
    assert!(piece.record.is_none());
}

#[test]
fn a_conversation_refuses_to_remember_without_end() {
    use honeyfarm_runtime::codec::FrameBuf;
    use honeyfarm_runtime::replay::{Conversation, FrameError};
    // The example specs are not in the registry: an entry of their own.
    let entry = &honeyfarm_runtime::codec::Entry {
        name: "ex_pieces.Message",
        framing: false,
        max_frame: None,
        decode: honeyfarm_runtime::codec::decode_boxed::<honeyfarm_protocols::ex_pieces::Message>,
    };
    let mut conv = Conversation::with_memory_limit(100);
    // A first piece, then middle pieces of 20 bytes each, never the last.
    let mut buf = FrameBuf::new(1 << 20);
    buf.extend_from_slice(b"\x05\x01\x02\x00\x00");
    assert!(conv.next_message(entry, &mut buf, true).unwrap().is_some());
    let mut middle = vec![5u8, 0];
    middle.extend_from_slice(&[0xab; 20]);
    middle.push(0);
    let mut refused = None;
    for n in 0..10 {
        let mut buf = FrameBuf::new(1 << 20);
        buf.extend_from_slice(&middle);
        match conv.next_message(entry, &mut buf, true) {
            Ok(Some(_)) => assert!(conv.remembered() <= 100),
            Err(FrameError::MemoryFull { remembered, max }) => {
                assert_eq!(max, 100);
                assert!(remembered > 100);
                refused = Some(n);
                break;
            }
            other => panic!("piece {n}: {other:?}"),
        }
    }
    assert!(refused.is_some_and(|n| n >= 3), "{refused:?}");
}

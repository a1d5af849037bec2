//! The SMTP, FTP and HTTP specs on hand-made messages: roles, malformed input as typed errors.

use bytes::Bytes;
use honeyfarm_protocols::{ftp, http, smtp};
use honeyfarm_runtime::codec::{DecodeErrorKind, Message, RoleFields, Value};

fn roles<M: Message>(wire: &'static [u8]) -> Vec<(String, String, Value)> {
    let (m, used) = M::decode(Bytes::from_static(wire)).unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(&m.to_bytes().unwrap()[..], wire);
    RoleFields::of(&m)
        .into_iter()
        .map(|r| (r.path, r.role.name().to_string(), r.value))
        .collect()
}

#[test]
fn a_reply_code_without_a_space_or_hyphen_is_a_typed_error() {
    let err = ftp::Reply::decode(Bytes::from_static(b"226Transfer complete.\r\n")).unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::NoCase { value: "84".into() },
        "{err}"
    );
    assert_eq!(
        err.offset, 4,
        "where the separator check runs, after the byte"
    );
    assert_eq!(err.field_path(), "ftp.Reply.first.ReplyLine._reserved0");
    let err = smtp::Reply::decode(Bytes::from_static(b"250OK\r\n")).unwrap_err();
    assert!(matches!(err.kind, DecodeErrorKind::NoCase { .. }), "{err}");
    let err = ftp::Reply::decode(Bytes::from_static(b"226\r\n")).unwrap_err();
    assert!(
        matches!(err.kind, DecodeErrorKind::Truncated { .. }),
        "{err}"
    );
}

#[test]
fn sizes_held_in_text_are_length_roles() {
    let r = roles::<http::Request>(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    assert!(
        r.iter()
            .any(|(p, role, v)| p.ends_with("ContentLength.length")
                && role == "length"
                && *v == Value::Uint(2)),
        "{r:?}"
    );
    let r = roles::<smtp::ClientMessage>(b"BDAT 3 LAST\r\nabc");
    assert!(
        r.iter().any(|(p, role, v)| p.ends_with("Bdat.size")
            && role == "length"
            && *v == Value::Uint(3)),
        "{r:?}"
    );
}

/// Found by the `registry` fuzz target (`fuzz/regressions/registry/`): a Content-Length too
/// long for any size read as absent, so the body was empty and re-encoding wrote `0`.
#[test]
fn a_size_held_in_text_that_fits_no_size_is_an_error() {
    let wire =
        b"HTTP/1.1 200 OK\r\nContent-Length: 555555555555555555555555555555555555555555\r\n\r\n";
    let err = http::Response::decode(Bytes::from_static(wire)).unwrap_err();
    assert!(matches!(err.kind, DecodeErrorKind::Arithmetic), "{err}");
    let err = http::Request::decode(Bytes::from_static(
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    ))
    .unwrap_err();
    assert!(matches!(err.kind, DecodeErrorKind::Arithmetic), "{err}");
    let ok = http::Request::decode(Bytes::from_static(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(ok.is_ok(), "no Content-Length is an empty body: {ok:?}");
}

#[test]
fn ftp_commands_keep_odd_arguments_as_sent() {
    for wire in [
        &b"PORT 114,115\r\n"[..],
        b"REST -1\r\n",
        b"ALLO 99999999999999999999999\r\n",
        b"XYZZY\r\n",
        b"NOOP\r\n",
        b"EPRT #1#10.0.0.1#21#\r\n",
    ] {
        let (c, used) = ftp::Command::decode(Bytes::copy_from_slice(wire)).unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(&c.to_bytes().unwrap()[..], wire);
    }
    let r = roles::<ftp::Command>(b"PORT 114,115\r\n");
    assert_eq!(
        r[0].2,
        Value::Bytes(Bytes::from_static(b"114,115")),
        "not an address: kept as text"
    );
}

#[test]
fn smtp_roles() {
    let r = roles::<smtp::ClientMessage>(b"EHLO [192.0.2.1]\r\n");
    assert!(
        r.contains(&(
            "command.args.Hello.who.Literal.addr".into(),
            "address".into(),
            Value::Ip("192.0.2.1".parse().unwrap())
        )),
        "{r:?}"
    );
    let r = roles::<smtp::Reply>(b"250 2.0.0 Ok: queued as 4C5DF1A2B3\r\n");
    assert!(
        r.contains(&(
            "first.text.Ok.body.Queued.queue_id".into(),
            "cookie".into(),
            Value::Bytes(Bytes::from_static(b"4C5DF1A2B3"))
        )),
        "{r:?}"
    );
    let (reply, _) =
        smtp::Reply::decode(Bytes::from_static(b"550 5.7.1 Relaying denied\r\n")).unwrap();
    assert_eq!(reply.first.status.code(), Some((5, 7, 1)));
    let (data, _) = smtp::ClientMessage::decode(Bytes::from_static(
        b"DATA\r\nSubject: x\r\n\r\n..hi\r\n.\r\n",
    ))
    .unwrap();
    assert_eq!(
        data.data.unwrap().content(),
        Bytes::from_static(b"Subject: x\r\n\r\n.hi\r\n")
    );
}

#[test]
fn http_roles_and_webdav_methods() {
    let r = roles::<http::Request>(
        b"PROPFIND /dav/ HTTP/1.1\r\nHost: 10.1.2.3\r\nCookie: sid=abc\r\nDepth: 1\r\n\r\n",
    );
    assert!(
        r.contains(&(
            "head.lines.0.entry.Field.value.Host.host".into(),
            "hostname".into(),
            Value::Bytes(Bytes::from_static(b"10.1.2.3"))
        )),
        "{r:?}"
    );
    assert!(
        r.iter()
            .any(|(p, role, _)| p.ends_with("Cookie.value") && role == "cookie"),
        "{r:?}"
    );
    let (resp, _) = http::Response::decode(Bytes::from_static(
        b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of it until close",
    ))
    .unwrap();
    assert_eq!(
        resp.to_close.as_deref(),
        Some(&b"all of it until close"[..])
    );
    let (head, used) = http::Response::decode_from_reader(&mut {
        let mut r = honeyfarm_runtime::codec::Reader::new(Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        ));
        r.set_answering(Bytes::from_static(b"HEAD"));
        r
    })
    .map(|m| (m, 0))
    .unwrap();
    let _ = used;
    assert!(head.body.is_none(), "a response to HEAD has no body");
}

//! Rewriting role fields of text protocol messages to values of other lengths, checked with
//! parsers nobody here wrote: Python's ftplib, smtplib and http.client, and tshark for EPRT.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use bytes::Bytes;
use honeyfarm_protocols::{ftp, http, smtp};
use honeyfarm_runtime::codec::{Class, FieldValue, Message, Value, VisitorMut};

/// Sets the role fields with this role name (and path suffix) to a value.
struct Set {
    role: &'static str,
    suffix: &'static str,
    value: Value,
    stack: Vec<String>,
    hits: usize,
}

impl VisitorMut for Set {
    fn enter(&mut self, name: &str) {
        self.stack.push(name.to_string());
    }
    fn leave(&mut self) {
        self.stack.pop();
    }
    fn field(&mut self, name: &'static str, class: Class, value: &mut dyn FieldValue) {
        let path = format!("{}.{name}", self.stack.join("."));
        if matches!(class, Class::Role(r) if r.name() == self.role) && path.ends_with(self.suffix) {
            value.set(self.value.clone()).unwrap();
            self.hits += 1;
        }
    }
}

fn rewrite<M: Message>(
    wire: &[u8],
    role: &'static str,
    suffix: &'static str,
    value: Value,
) -> Bytes {
    let (mut msg, used) = M::decode(Bytes::copy_from_slice(wire)).unwrap();
    assert_eq!(used, wire.len());
    let mut set = Set {
        role,
        suffix,
        value,
        stack: Vec::new(),
        hits: 0,
    };
    msg.visit_mut(&mut set);
    assert_eq!(set.hits, 1, "one {role} field at *{suffix}");
    msg.to_bytes().unwrap()
}

fn python(kind: &str, bytes: &[u8]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent_parsers.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(child.stdin.take().unwrap(), "{kind}\t{hex}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn ftp_passive_address_rewritten_shorter_and_longer() {
    let wire = b"227 Entering Passive Mode (199,233,217,249,221,90).\r\n";
    for (addr, expect) in [
        ("10.1.2.3:2121", "10.1.2.3 2121"),
        ("192.168.100.200:65000", "192.168.100.200 65000"),
    ] {
        let out = rewrite::<ftp::Reply>(
            wire,
            "address",
            ".addr",
            Value::Socket(addr.parse().unwrap()),
        );
        assert_eq!(python("pasv", &out), expect);
        assert!(
            out.ends_with(b").\r\n"),
            "the text around the address is kept"
        );
    }
}

#[test]
fn ftp_epsv_port_rewritten() {
    let wire = b"229 Entering Extended Passive Mode (|||57086|)\r\n";
    let out = rewrite::<ftp::Reply>(wire, "port", ".port", Value::Uint(7));
    assert_eq!(&out[..], b"229 Entering Extended Passive Mode (|||7|)\r\n");
    assert_eq!(python("epsv", &out), "peer 7");
}

#[test]
fn ftp_eprt_address_rewritten_checked_by_tshark() {
    let wire = b"EPRT |2|2001:470:1f11:81f:c999:d94:aa7c:2e3e|49189|\r\n";
    let out = rewrite::<ftp::Command>(
        wire,
        "address",
        ".addr",
        Value::Ip("2001:db8::77".parse().unwrap()),
    );
    let mut cmd: ftp::Command = ftp::Command::decode(out.clone()).unwrap().0;
    let mut set = Set {
        role: "port",
        suffix: ".port",
        value: Value::Uint(3000),
        stack: Vec::new(),
        hits: 0,
    };
    cmd.visit_mut(&mut set);
    let out = cmd.to_bytes().unwrap();
    assert_eq!(&out[..], b"EPRT |2|2001:db8::77|3000|\r\n");
    let mut p = common::Pcap::new();
    let (c, s) = (([127, 0, 0, 9], 40000), ([127, 0, 0, 1], 21));
    p.tcp(1, c, s, 100, true, b"");
    p.tcp(2, c, s, 101, false, &out);
    let path = p.write("eprt");
    let fields = Command::new("tshark")
        .args([
            "-r",
            path.to_str().unwrap(),
            "-Y",
            "ftp.request.command == \"EPRT\"",
            "-T",
            "fields",
        ])
        .args([
            "-e",
            "ftp.eprt.af",
            "-e",
            "ftp.eprt.ipv6",
            "-e",
            "ftp.eprt.port",
        ])
        .output()
        .expect("tshark runs (scripts/setup.sh installs it)");
    let _ = std::fs::remove_file(path);
    assert_eq!(
        String::from_utf8_lossy(&fields.stdout).trim(),
        "2\t2001:db8::77\t3000"
    );
}

#[test]
fn smtp_banner_and_ehlo_reply_host_names_rewritten() {
    let banner =
        b"220 xc90.websitewelcome.com ESMTP Exim 4.69 #1 Mon, 05 Oct 2009 01:05:54 -0500\r\n";
    let out = rewrite::<smtp::Reply>(
        banner,
        "hostname",
        ".host",
        Value::Str("mx-0042.telescope.example.net".into()),
    );
    assert_eq!(
        python("smtp", &out),
        "220 mx-0042.telescope.example.net ESMTP Exim 4.69 #1 Mon, 05 Oct 2009 01:05:54 -0500"
    );
    let out = rewrite::<smtp::Reply>(
        &out,
        "timestamp",
        ".rest",
        Value::Str("Sun, 22 Nov 2026 23:59:01 +0000".into()),
    );
    assert!(python("smtp", &out).ends_with("#1 Sun, 22 Nov 2026 23:59:01 +0000"));

    // The reply to EHLO: the decoder is told what it answers.
    let ehlo = Bytes::from_static(b"250-xc90.websitewelcome.com Hello GP [122.162.143.157]\r\n250-SIZE 52428800\r\n250 HELP\r\n");
    let mut r = honeyfarm_runtime::codec::Reader::new(ehlo.clone());
    r.set_answering(Bytes::from_static(b"EHLO"));
    let mut reply = smtp::Reply::decode_from(&mut r).unwrap();
    let mut set = Set {
        role: "hostname",
        suffix: ".host",
        value: Value::Str("h1.example".into()),
        stack: Vec::new(),
        hits: 0,
    };
    reply.visit_mut(&mut set);
    assert_eq!(set.hits, 1, "only the first line names the server");
    let out = reply.to_bytes().unwrap();
    assert_eq!(
        python("smtp", &out),
        "250 h1.example Hello GP [122.162.143.157]"
    );
}

#[test]
fn http_host_and_body_rewritten_with_content_length() {
    let wire = b"POST /cgi-bin/login HTTP/1.1\r\nHost: www.osu.edu\r\nContent-Length: 5\r\nAccept: */*\r\n\r\nhello";
    let out = rewrite::<http::Request>(
        wire,
        "hostname",
        ".host",
        Value::Str("203.0.113.250:8080".into()),
    );
    assert_eq!(
        python("http", &out),
        "POST /cgi-bin/login HTTP/1.1 | Host=203.0.113.250:8080 | Content-Length=5 | body=5"
    );
    let mut req = http::Request::decode(out).unwrap().0;
    req.body = Some(Bytes::from_static(b"user=admin&password=admin"));
    let out = req.to_bytes().unwrap();
    assert_eq!(
        python("http", &out),
        "POST /cgi-bin/login HTTP/1.1 | Host=203.0.113.250:8080 | Content-Length=25 | body=25"
    );
}

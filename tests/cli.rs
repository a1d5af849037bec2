//! The `honeyfarm` binary: listing the compiled specs and decoding bytes with exact re-encoding.

mod common;

use std::process::Command;

use common::Pcap;

fn honeyfarm(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const NEGOTIATE: &str =
    "00 00 00 3a ff534d42 72 00000000 18 53c8 0000 0000000000000000 0000 ffff feff 0000 0000 \
                         00 1700 024e54204c4d20302e313200 02534d4220322e30303200";

#[test]
fn specs_lists_every_message_type_framing_and_service() {
    let (code, out, _) = honeyfarm(&["specs"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l == "netbios.Session  (frames a stream, at most 0x20003 bytes)"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l == "ftp.Command  (frames a stream)"),
        "{out}"
    );
    // The services: their largest message and how an unframeable one ends.
    let services = out
        .split_once("\nservices:\n")
        .expect("a services section")
        .1;
    let smb = services
        .split_once("smb (ports 445): client netbios.DirectTcp, server netbios.DirectTcp\n")
        .expect("smb listed")
        .1;
    assert!(
        smb.starts_with(
            "  largest message: 0x20003 bytes (its framing's max), or max_message_bytes if less\n  \
             a message the farm cannot frame: a too long header of type 0x00 is read with the \
             server's own 17-bit length"
        ),
        "{services}"
    );
    assert!(
        services.contains(
            "ftp (ports 21): client ftp.Command, server ftp.Reply\n  largest message: \
             max_message_bytes (the configuration)\n  a message the farm cannot frame: closed at once\n"
        ),
        "{services}"
    );
    assert!(out.lines().any(|l| l == "ndr.Sid"), "{out}");
    assert!(
        !out.contains("smb.SessionSetupRequest\n"),
        "units with parameters are not messages on their own"
    );
    assert!(
        !out.contains("ex_"),
        "the example specs are not in the registry"
    );
}

#[test]
fn decode_shows_roles_through_every_layer_and_checks_the_round_trip() {
    let (code, out, _) = honeyfarm(&["decode", "netbios.Session", "--hex", NEGOTIATE]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("netbios.Session at input byte 0 (62 bytes)\n"),
        "{out}"
    );
    let line = |path: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{path} ")))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
    };
    assert_eq!(line("length").as_deref(), Some("@length(of=payload) 58"));
    assert_eq!(
        line("payload.Message.message.Smb1.mid").as_deref(),
        Some("@cookie(smb.mid, client) 0")
    );
    assert_eq!(
        line("payload.Message.message.Smb1.body.shape.NegotiateRequest.dialects.1.name").as_deref(),
        Some("@choice \"SMB 2.002\"")
    );
    assert!(out.ends_with("  roundtrip: exact\n"), "{out}");
}

#[test]
fn decode_a_stream_of_text_commands() {
    let hex: String = b"PORT 1,2,3,4,5,6\r\nquit\r\n"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (code, out, _) = honeyfarm(&["decode", "ftp.Command", "--stream", "--hex", &hex]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ftp.Command at input byte 18 (6 bytes)"),
        "{out}"
    );
    assert!(out.contains("@address"), "{out}");
    assert_eq!(out.matches("roundtrip: exact").count(), 2);
}

#[test]
fn bad_input_and_bad_arguments_fail_clearly() {
    let (code, out, _) = honeyfarm(&[
        "decode",
        "netbios.Session",
        "--hex",
        "00 00 00 05 ff 53 4d 42 72",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "netbios.Session at input byte 0: error: needs 4 byte(s) but only 0 remain in the \
         enclosing length at byte 9 (netbios.Session.payload.smb.Envelope.message.Message.status, \
         smb.proto-dsl:91:5)\n"
    );
    let (code, _, err) = honeyfarm(&["decode", "nope.Unit", "--hex", "00"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("honeyfarm: no message type `nope.Unit`; known: "),
        "{err}"
    );
    assert!(
        err.contains(" ftp.Command,") && err.contains(" smb.Message,"),
        "{err}"
    );
    let (code, _, err) = honeyfarm(&["decode", "ftp.Command", "--hex", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("odd number of digits"), "{err}");
}

#[test]
fn script_import_and_show_keep_every_message_with_its_roles() {
    let dir = std::env::temp_dir().join(format!("honeyfarm-cli-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("eicar.json");
    let pcap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/captures/suricata-verify_smb-eicar-file.pcap"
    );
    let (code, said, err) = honeyfarm(&[
        "script",
        "import",
        "--pcap",
        pcap,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(said.contains("18 messages of smb"), "{said}");
    let (code, shown, err) = honeyfarm(&["script", "show", "--hex", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = shown.lines().filter(|l| l.contains(" bytes")).collect();
    assert_eq!(lines.len(), 18, "{shown}");
    // The upload: its data is an artifact of the file its FID names.
    assert!(
        shown.contains("WriteAndxRequest") && shown.contains("bytes@artifact="),
        "{shown}"
    );
    // The bytes are all there: the hex dump of the first message starts with its NetBIOS header.
    assert!(shown.contains("      0000  00 00 00"), "{shown}");

    // A script of a version this build does not read is refused, naming both.
    let text = std::fs::read_to_string(&out)
        .unwrap()
        .replace("\"version\": 1", "\"version\": 2");
    let v2 = dir.join("v2.json");
    std::fs::write(&v2, text).unwrap();
    let (code, _, err) = honeyfarm(&["script", "show", v2.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("version 2") && err.contains("`honeyfarm-script` version 1"),
        "{err}"
    );
    // A message cut short: message 3 no longer decodes.
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    s["messages"][3]["hex"] = serde_json::json!(["000000ff"]);
    let bad = dir.join("bad.json");
    std::fs::write(&bad, s.to_string()).unwrap();
    let (code, _, err) = honeyfarm(&["script", "show", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.json: message 3:"), "{err}");
}

#[test]
fn script_import_wants_a_whole_dialog() {
    let pcap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/captures/zeek_netbios_netbios-truncated-session-msg.pcap"
    );
    let (code, _, err) = honeyfarm(&["script", "import", "--pcap", pcap, "--out", "/dev/null"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no whole dialog (from its SYNs, with data both ways)"),
        "{err}"
    );
    let (code, _, err) = honeyfarm(&[
        "script",
        "import",
        "--pcap",
        pcap,
        "--stream",
        "7",
        "--out",
        "/dev/null",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no TCP stream 7"), "{err}");
}

#[test]
fn script_import_refuses_a_dialog_captured_after_its_start() {
    // An FTP dialog whose SYNs the capture missed: it could start anywhere.
    let client = ([10, 0, 0, 1], 40000);
    let server = ([10, 0, 0, 2], 21);
    let mut p = Pcap::new();
    p.tcp(1, server, client, 500, false, b"220 ready\r\n");
    p.tcp(2, client, server, 100, false, b"QUIT\r\n");
    p.tcp(3, server, client, 511, false, b"221 bye\r\n");
    let pcap = p.write("no-syn");
    let (code, _, err) = honeyfarm(&[
        "script",
        "import",
        "--pcap",
        pcap.to_str().unwrap(),
        "--stream",
        "0",
        "--out",
        "/dev/null",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("stream 0: the capture does not start with the connection"),
        "{err}"
    );
    // With its SYNs, the same dialog is a script.
    let mut p = Pcap::new();
    p.tcp(0, client, server, 99, true, b"");
    p.tcp(0, server, client, 499, true, b"");
    p.tcp(1, server, client, 500, false, b"220 ready\r\n");
    p.tcp(2, client, server, 100, false, b"QUIT\r\n");
    p.tcp(3, server, client, 511, false, b"221 bye\r\n");
    let pcap = p.write("syn");
    let out = std::env::temp_dir().join(format!("honeyfarm-cli-syn-{}.json", std::process::id()));
    let (code, said, err) = honeyfarm(&[
        "script",
        "import",
        "--pcap",
        pcap.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(said.contains("3 messages of ftp"), "{said}");
}

/// Runs `honeyfarm args`, reads one line of its output and closes the pipe; its exit status
/// and standard error.
fn first_line_only(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // The reader is gone; the rest of the output (far more than a pipe holds) has nowhere to go.
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), line, err)
}

#[test]
fn a_reader_that_closes_early_ends_the_output_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let capture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/captures/zeek_dce-rpc_20-fids.pcap"
    );
    let negotiate: String = NEGOTIATE.split_whitespace().collect();
    let stream = negotiate.repeat(300);
    for args in [
        // Written through a writer, and by `println!`.
        &["dissect", "--json", capture][..],
        &["decode", "netbios.Session", "--stream", "--hex", &stream],
    ] {
        let (status, line, err) = first_line_only(args);
        assert!(!line.is_empty(), "{args:?}: no output");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
        // As a Unix filter ends: by SIGPIPE, 141 to a shell.
        assert_eq!(status.signal(), Some(libc::SIGPIPE), "{args:?}: {status}");
    }
}

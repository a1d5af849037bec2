//! The `honeyfarm` binary: listing the compiled specs and decoding bytes with exact re-encoding.

use std::process::Command;

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
fn specs_lists_every_message_type_and_framings() {
    let (code, out, _) = honeyfarm(&["specs"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l == "ex_frame.Packet  (frames a stream)"),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "ex_rpc.Sid"), "{out}");
    assert!(
        !out.contains("ex_rpc.Stub"),
        "units with parameters are not messages on their own"
    );
}

#[test]
fn decode_shows_roles_through_every_layer_and_checks_the_round_trip() {
    let (code, out, _) = honeyfarm(&["decode", "ex_frame.Packet", "--hex", NEGOTIATE]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("ex_frame.Packet at input byte 0 (62 bytes)\n"),
        "{out}"
    );
    let line = |path: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{path} ")))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
    };
    assert_eq!(line("length").as_deref(), Some("@length(of=body) 58"));
    assert_eq!(
        line("body.Message.mid").as_deref(),
        Some("@cookie(ex.mid, client) 0")
    );
    assert_eq!(
        line("body.Message.body.NegotiateRequest.dialects.1.name").as_deref(),
        Some("content \"SMB 2.002\"")
    );
    assert!(out.ends_with("  roundtrip: exact\n"), "{out}");
}

#[test]
fn decode_a_stream_of_text_commands() {
    let hex: String = b"PORT 1,2,3,4,5,6\r\nquit\r\n"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (code, out, _) = honeyfarm(&["decode", "ex_text.Command", "--stream", "--hex", &hex]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ex_text.Command at input byte 18 (6 bytes)"),
        "{out}"
    );
    assert!(out.contains("@address"), "{out}");
    assert_eq!(out.matches("roundtrip: exact").count(), 2);
}

#[test]
fn bad_input_and_bad_arguments_fail_clearly() {
    let (code, out, _) = honeyfarm(&[
        "decode",
        "ex_frame.Packet",
        "--hex",
        "00 00 00 04 ff 53 4d 43",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "ex_frame.Packet at input byte 0: error: expected b\"\\xffSMB\", found b\"\\xffSMC\" at byte 4 \
         (ex_frame.Packet.body.ex_msg.Message.magic, ex_msg.proto-dsl:25:5)\n"
    );
    let (code, _, err) = honeyfarm(&["decode", "nope.Unit", "--hex", "00"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("honeyfarm: no message type `nope.Unit`; known: "),
        "{err}"
    );
    assert!(
        err.contains(" ftp.Command,") && err.contains(" ex_msg.Message,"),
        "{err}"
    );
    let (code, _, err) = honeyfarm(&["decode", "ex_text.Command", "--hex", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("odd number of digits"), "{err}");
}

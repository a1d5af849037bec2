//! `honeyfarm dissect` on real captures (SMTP, FTP, HTTP) and on captures the test writes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Pcap;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/captures")
        .join(name)
}

fn dissect(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .arg("dissect")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn summary(out: &str) -> &str {
    out.lines().last().unwrap_or("")
}

/// Every message of every well-formed SMTP, FTP and HTTP capture decodes and re-encodes to
/// exactly its bytes.
#[test]
fn text_protocol_captures_roundtrip_exactly() {
    let expected = [
        ("zeek_ftp_bruteforce.pcap", 210),
        ("zeek_ftp_fake-long-commands.pcap", 19),
        ("zeek_ftp_ipv4.pcap", 35),
        ("zeek_ftp_ipv6-multiline-reply.pcap", 24),
        ("zeek_ftp_ipv6.pcap", 50),
        ("zeek_ftp_retr.pcap", 22),
        ("suricata-verify_ftp-epsv.pcap", 57),
        ("suricata-verify_ftp_ftp-bounce_test.pcap", 14),
        ("suricata-verify_ftp_ftp-download-active.pcap", 28),
        ("suricata-verify_ftp_ftp-download-passive.pcap", 28),
        ("suricata-verify_ftp_ftp-upload-active.pcap", 28),
        ("zeek_smtp.pcap", 32),
        ("zeek_smtp-multi-addr.pcap", 11),
        ("zeek_smtp-mail-transactions-invalid.pcap", 35),
        ("zeek_smtp_rfc3030-bdat-example1.pcap", 11),
        ("suricata-verify_bug-3616-smtp.pcap", 18),
        ("suricata-verify_firewall_ruletype-firewall-122-smtp_smtp-simple-session.pcap", 12),
        ("suricata-verify_firewall_ruletype-firewall-127-smtp-interactive-commands_smtp-interactive.pcap", 22),
        ("suricata-verify_firewall_ruletype-firewall-135-smtp-multi-mail-accept_smtp-multi-mail.pcap", 28),
        ("zeek_http_get.pcap", 2),
        ("zeek_http_100-continue.pcap", 3),
        ("zeek_http_methods.pcap", 98),
    ];
    for (file, n) in expected {
        let (code, out) = dissect(&[capture(file).to_str().unwrap()]);
        assert_eq!(
            summary(&out),
            format!("dissect: messages={n} decoded={n} roundtrip_exact={n} errors=0"),
            "{file}"
        );
        assert_eq!(code, 0, "{file}");
    }
}

#[test]
fn an_invalid_reply_code_is_a_typed_error_and_decoding_goes_on() {
    let (code, out) = dissect(&[capture("zeek_ftp_ftp-invalid-reply-code.pcap")
        .to_str()
        .unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        summary(&out),
        "dissect: messages=9 decoded=8 roundtrip_exact=8 errors=1"
    );
    let errors: Vec<&str> = out.lines().filter(|l| l.contains(" error ")).collect();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].ends_with(
            "ftp.Reply error at stream byte 45: expected a 3-digit number, found b\"99 PASV invalid\" at byte 0 \
             (ftp.Reply.first.ReplyLine.code, ftp.proto-dsl:68:5)"
        ),
        "{}",
        errors[0]
    );
    assert!(
        out.contains("ftp.Reply [221]"),
        "the reply after the bad one decodes:\n{out}"
    );
}

#[test]
fn ftp_data_connections_are_tied_to_their_control_connection() {
    let (_, out) = dissect(&[capture("zeek_ftp_ipv4.pcap").to_str().unwrap()]);
    let data: Vec<&str> = out.lines().filter(|l| l.contains("ftp-data")).collect();
    assert_eq!(
        data.len(),
        4,
        "two passive and two active transfers:\n{out}"
    );
    assert!(
        data.iter().all(|l| l.contains("ftp-data of stream 0")),
        "{data:?}"
    );
    assert!(
        data[0].starts_with("stream 1 141.142.220.235:37604 -> 199.233.217.249:56666"),
        "{data:?}"
    );
    // The announcements carry their role and value.
    assert!(
        out.contains("first.text.Passive.body.Address.addr@address=199.233.217.249:56666"),
        "{out}"
    );
    assert!(
        out.contains("args.Port.addr@address=141.142.220.235:33582"),
        "{out}"
    );
    // IPv6: EPSV replies announce a port on the server's address, EPRT an address and a port.
    let (_, out) = dissect(&[capture("zeek_ftp_ipv6.pcap").to_str().unwrap()]);
    assert!(
        out.contains("ExtendedPassive.body.Port.port@port=57086"),
        "{out}"
    );
    assert!(out.contains("args.Eprt.body.Pipe.port@port=49189"), "{out}");
    let data: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("ftp-data of stream 0"))
        .collect();
    assert_eq!(
        data.len(),
        5,
        "three passive (EPSV) and two active (EPRT) transfers:\n{out}"
    );
    assert!(
        data[3].starts_with(
            "stream 4 [2001:470:4867:99::21]:55785 -> [2001:470:1f11:81f:c999:d94:aa7c:2e3e]:49189"
        ),
        "{data:?}"
    );
}

#[test]
fn smtp_roles_and_http_roles() {
    let (_, out) = dissect(&[capture("zeek_smtp.pcap").to_str().unwrap()]);
    assert!(out.contains("smtp.Reply [220] 181 bytes first.text.Greeting.host@hostname=\"xc90.websitewelcome.com\""), "{out}");
    assert!(
        out.contains("command.args.Hello.who.Domain.name@hostname=\"GP\""),
        "{out}"
    );
    assert!(
        out.contains("first.text.Ok.body.Hello.host@hostname=\"xc90.websitewelcome.com\""),
        "the reply to EHLO names the server:\n{out}"
    );
    let (_, out) = dissect(&[capture("zeek_smtp-mail-transactions-invalid.pcap")
        .to_str()
        .unwrap()]);
    assert!(
        out.contains("Id.queue_id@cookie=\"1pgobK-001mwq-ED\""),
        "{out}"
    );
    let (_, out) = dissect(&[capture("zeek_http_get.pcap").to_str().unwrap()]);
    assert!(out.contains("Host.host@hostname=\"bro.org\""), "{out}");
    assert!(out.contains("Date.date@timestamp="), "{out}");
}

#[test]
fn json_has_one_object_per_message_with_role_spans_and_the_summary_last() {
    let (_, out) = dissect(&["--json", capture("zeek_ftp_ipv4.pcap").to_str().unwrap()]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["summary"]["messages"], 35);
    assert_eq!(last["summary"]["roundtrip_exact"], 35);
    let pasv = lines
        .iter()
        .find(|m| m["kind"] == "227")
        .expect("a 227 reply");
    let span = pasv["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["role"] == "address")
        .unwrap();
    let (start, end) = (
        span["start"].as_u64().unwrap(),
        span["end"].as_u64().unwrap(),
    );
    assert_eq!(end - start, "199,233,217,249,221,90".len() as u64);
    assert_eq!(pasv["roles"][0]["value"], "199.233.217.249:56666");
}

// ---------------------------------------------------------------- captures written here

#[test]
fn over_long_lines_are_errors_and_the_stream_resynchronises_at_the_next_line() {
    let client = ([127, 0, 0, 9], 40000);
    let server = ([127, 0, 0, 1], 2121);
    let mut p = Pcap::new();
    p.tcp(1, client, server, 100, true, b"");
    p.tcp(2, server, client, 500, true, b"");
    p.tcp(
        3,
        server,
        client,
        501,
        false,
        b"220 ftp.telescope.example ready\r\n",
    );
    let mut long = b"USER ".to_vec();
    long.extend(std::iter::repeat_n(b'A', 5000));
    long.extend_from_slice(b"\r\n");
    // Out of order: the second segment first, then the first twice (a retransmission).
    let rest = b"PASS secret\r\nQUIT\r\n";
    p.tcp(4, client, server, 101 + long.len() as u32, false, rest);
    p.tcp(5, client, server, 101, false, &long);
    p.tcp(6, client, server, 101, false, &long);
    p.tcp(7, server, client, 501 + 33, false, b"221 Bye\r\n");
    let path = p.write("long-line");
    let (code, out) = dissect(&["--port", "2121=ftp", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        summary(&out),
        "dissect: messages=5 decoded=4 roundtrip_exact=4 errors=1",
        "{out}"
    );
    assert!(
        out.contains("ftp.Command error at stream byte 0: line longer than 4096 bytes at byte 0"),
        "{out}"
    );
    assert!(out.contains("ftp.Command [PASS]"), "{out}");
    assert!(out.contains("ftp.Command [QUIT]"), "{out}");
    // Without the port mapping the stream is not read at all.
    let (_, out) = dissect(&[path.to_str().unwrap()]);
    assert_eq!(
        summary(&out),
        "dissect: messages=0 decoded=0 roundtrip_exact=0 errors=0"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn bad_arguments_and_files() {
    let out = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .args(["dissect", "--port", "2121=gopher", "x.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "unknown service `gopher` in --port 2121=gopher; the services are ftp, smtp, smb, netbios-ssn, http"
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .args(["dissect", "/nonexistent.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.pcap"));
    let junk = std::env::temp_dir().join(format!("honeyfarm-junk-{}.pcap", std::process::id()));
    std::fs::write(&junk, b"this is not a capture").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
        .arg("dissect")
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a pcap or pcapng file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(junk);
}

/// SMB1 over direct TCP (445) and NetBIOS (139): every message of the well-formed captures
/// decodes and re-encodes exactly; SMB2 messages are kept as bytes.
#[test]
fn smb_captures_roundtrip_exactly() {
    let expected = [
        ("zeek_smb_cifs_negotiate_lanman.pcap", 2),
        ("zeek_smb_raw_ntlm_in_smb.pcap", 107),
        ("zeek_smb_smb1-logoff-andx-advance.pcap", 1),
        ("zeek_smb_smb1.pcap", 18),
        ("zeek_smb_smb1_transaction2_request.pcap", 7),
        ("zeek_dce-rpc_20-fids.pcap", 374),
        ("suricata-verify_smb-dce_iface.pcap", 26),
        (
            "suricata-verify_smb-eicar-file-segmentation-random.pcap",
            16,
        ),
        ("suricata-verify_smb-eicar-file.pcap", 18),
        (
            "suricata-verify_smb-eicar-padding_smb1_eicar_andx_write_padding2.pcap",
            16,
        ),
        ("suricata-verify_smb-named-pipe-ascii.pcap", 12),
        ("suricata-verify_smb1-02_smb1_osx.pcap", 18),
        ("suricata-verify_dcerpc-smb-test-01.pcap", 146),
        ("suricata-verify_dcerpc_dcerpc-smb-ctxid.pcap", 28),
        ("suricata-verify_output-eve-smb-01.pcap", 10),
    ];
    for (file, n) in expected {
        let (code, out) = dissect(&[capture(file).to_str().unwrap()]);
        assert_eq!(
            summary(&out),
            format!("dissect: messages={n} decoded={n} roundtrip_exact={n} errors=0"),
            "{file}"
        );
        assert_eq!(code, 0, "{file}");
    }
}

/// Samba's SAMR, LSARPC, DSSETUP and SRVSVC dialogs (`tests/data/samba`): every message decodes,
/// every call by its operation (none kept as opaque bytes), and re-encodes exactly.
#[test]
fn samba_samr_dialogs_decode_every_call() {
    for (file, n, opaque, calls) in [
        (
            "samr-groups.pcap",
            56,
            0,
            &["EnumerateGroupsRequest", "EnumerateGroupsResponse"][..],
        ),
        (
            "samr-dispinfo.pcap",
            102,
            0,
            &[
                "QueryDisplayInformationRequest",
                "QueryDisplayInformationResponse.User",
                "QueryDisplayInformationResponse.Machine",
                "QueryDisplayInformationResponse.Group",
                "QueryDisplayInformationResponse.Oem",
            ][..],
        ),
        (
            "samr-pwinfo.pcap",
            62,
            0,
            &[
                "GetDomainPasswordInformationRequest",
                "GetUserDomainPasswordInformationRequest",
                "PasswordInformationResponse",
                "GetGroupsForUserRequest",
                "GetGroupsForUserResponse",
            ][..],
        ),
        // Classes 2 and 4 are kept as bytes.
        (
            "samr-querygroup.pcap",
            62,
            0,
            &[
                "OpenGroupRequest",
                "QueryInformationRequest",
                "QueryInformationGroupResponse.General",
                "QueryInformationGroupResponse.Other",
            ][..],
        ),
        // Issue 10's 31 rpcclient commands in one session.
        (
            "rpcclient-31.pcap",
            386,
            0,
            &[
                "EnumerateGroupsRequest",
                "QueryDisplayInformationResponse.User",
                "LookupSidsResponse",
                "GetPrimaryDomainInformationResponse.Basic",
                "NetrShareGetInfoResponse.Info502",
                "NetrSessionEnumResponse.Level1",
            ][..],
        ),
        // impacket's SamrCloseHandle carries 4 bytes after its parameters.
        (
            "impacket-samrdump.pcap",
            72,
            0,
            &[
                "ConnectRequest",
                "QueryInformationRequest",
                "QueryInformationUserResponse.All",
                "SamrCloseRequest",
            ][..],
        ),
        // Level 1005 is kept as bytes.
        (
            "srvsvc-sharegetinfo.pcap",
            30,
            0,
            &[
                "NetrShareGetInfoRequest",
                "NetrShareGetInfoResponse.Info1",
                "NetrShareGetInfoResponse.Info2",
                "NetrShareGetInfoResponse.Info502",
                "NetrShareGetInfoResponse.Other",
            ][..],
        ),
        (
            "srvsvc-sessions.pcap",
            32,
            0,
            &[
                "NetrSessionEnumRequest.Level1",
                "NetrSessionEnumResponse.Level1",
                "NetrConnectionEnumRequest.Level0",
                "NetrConnectionEnumResponse.Level1",
            ][..],
        ),
        (
            "lsa-more.pcap",
            78,
            0,
            &[
                "QueryInformationPolicyRequest",
                "QueryInformationPolicyResponse.Domain",
                "LookupSidsRequest",
                "LookupSidsResponse",
                "LsaEnumerationRequest",
                "EnumeratePrivilegesResponse",
                "EnumerateAccountsResponse",
                "EnumerateTrustedDomainsResponse",
                "GetPrimaryDomainInformationRequest",
                "GetPrimaryDomainInformationResponse.Basic",
            ][..],
        ),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/samba")
            .join(file);
        let (code, out) = dissect(&["--port", "4497=smb", path.to_str().unwrap()]);
        assert_eq!(
            summary(&out),
            format!("dissect: messages={n} decoded={n} roundtrip_exact={n} errors=0"),
            "{file}"
        );
        assert_eq!(code, 0, "{file}");
        assert_eq!(out.matches(".Opaque]").count(), opaque, "{file}:\n{out}");
        for call in calls {
            assert!(
                out.contains(&format!(".Rpc.Request.{call}"))
                    || out.contains(&format!(".Rpc.Response.{call}")),
                "{file}: no {call}"
            );
        }
    }
}

/// Captures of malformed SMB: each message that cannot be decoded gives the error its
/// malformation calls for, and the rest of the capture still decodes.
#[test]
fn malformed_smb_captures_give_the_expected_errors() {
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "zeek_smb_smb1-OSS-fuzz-54883.pcap",
            "dissect: messages=2 decoded=0 roundtrip_exact=0 errors=2",
            &[
                "input ends 88478 byte(s) early at byte 4 (netbios.Session.length",
                "input ends 59232 byte(s) early",
            ],
        ),
        (
            "zeek_netbios_netbios-truncated-session-msg.pcap",
            "dissect: messages=1 decoded=0 roundtrip_exact=0 errors=1",
            &["input ends 65435 byte(s) early at byte 4 (netbios.Session.length"],
        ),
        (
            "zeek_netbios_netbios-split-session-msg.pcap",
            "dissect: messages=1 decoded=0 roundtrip_exact=0 errors=1",
            &["needs 1 byte(s) but only 0 remain in the enclosing length at byte 36"],
        ),
        (
            "zeek_smb_smb1_transaction_request.pcap",
            "dissect: messages=7 decoded=6 roundtrip_exact=6 errors=1",
            &["error at stream byte 310: needs 4 byte(s) but only 0 remain in the enclosing length at byte 65 (netbios.DirectTcp.payload.smb.Envelope.message.Message.body.Block.shape.TransactionRequest.setup_count"],
        ),
        (
            "zeek_smb_smb1_transaction_response.pcap",
            "dissect: messages=8 decoded=6 roundtrip_exact=6 errors=2",
            &["error at stream byte 310: needs 4 byte(s) but only 0 remain", "error at stream byte 296:"],
        ),
        (
            "suricata-verify_smb-eicar-andx_smbandx.pcap",
            "dissect: messages=14 decoded=13 roundtrip_exact=13 errors=1",
            &["offset points back to byte 87, before the current position at byte 164 (netbios.DirectTcp.payload.smb.Envelope.message.Message.body.Block.shape.AndxBlock.next.Block.shape.WriteAndxRequest.shape.WriteAndxWords.next"],
        ),
    ];
    for (file, want, errors) in cases {
        let (code, out) = dissect(&[capture(file).to_str().unwrap()]);
        assert_eq!(summary(&out), want, "{file}:\n{out}");
        assert_eq!(code, 1, "{file}");
        for e in errors {
            assert!(
                out.lines().any(|l| l.contains(" error ") && l.contains(e)),
                "{file}: no error with {e:?}:\n{out}"
            );
        }
    }
}

/// Binary messages are named by the cases they took through every layer; SMB2 and later are
/// `not_smb1`, counted in the JSON summary, not errors.
#[test]
fn smb_message_kinds_and_smb2_counted_as_not_smb1() {
    let (_, out) = dissect(&[capture("zeek_smb_raw_ntlm_in_smb.pcap").to_str().unwrap()]);
    for kind in [
        "[Smb1.NegotiateRequest]",
        "[Smb1.SessionSetupResponse.Extended.Raw.Challenge]",
        "[Smb1.SessionSetupRequest.Extended.Raw.Authenticate.NamesFirst]",
        "[Smb1.TransactionRequest.Pipe.Unicode.Rpc.Request.OpenPolicy2Request]",
        "[Smb1.Transaction2Request.FindFirst2.Unicode]",
        // SRVSVC and LSARPC pipes both bind context 0: the response is read by its own pipe's
        // interface (memory keyed by pipe).
        "[Smb1.TransactionResponse.Words10.Rpc.Response.NetrShareEnumResponse.Level1]",
        "[Smb1.TransactionResponse.Words10.Rpc.Response.LookupNamesResponse]",
    ] {
        assert!(out.contains(kind), "{kind}:\n{out}");
    }
    let (code, out) = dissect(&[
        "--json",
        capture("zeek_dce-rpc_20-fids.pcap").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (last, messages) = lines.split_last().unwrap();
    assert_eq!(last["summary"]["not_smb1"], 374);
    assert_eq!(last["summary"]["errors"], 0);
    assert!(messages.iter().all(|m| m["kind"] == "not_smb1"));
}

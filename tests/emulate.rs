//! The emulator against real servers (docs/EMULATION.md): each server is started on loopback
//! by scripts/emul-servers.sh, scanned into a personality, stopped, and the farm emulates it
//! on the same port; nmap's service detection and scripts must print the same for both
//! (times masked), clients must complete their sessions, and what they sent must be stored.
//! Starts servers on fixed loopback ports 184xx used by nothing else: run under its own lock
//! (`flock /tmp/honeyfarm-emul-tests.lock cargo test --test emulate`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::output_ok;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Words no reply may contain: the farm's name and its internals.
const FORBIDDEN: &[&str] = &["honeyfarm", "honeypot", "/tmp/", "/work/", "hfe-"];

/// The test's directory, kept after the run for a failure's logs; earlier, dead runs' are
/// swept (and what they left running killed).
fn work_dir(name: &str) -> PathBuf {
    common::dirs::sweep(&format!("hfe-test-{name}"));
    let d = std::env::temp_dir().join(format!("hfe-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn wait_listening(addr: SocketAddr) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{addr} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real server from scripts/emul-servers.sh, stopped when dropped.
struct Server {
    name: &'static str,
    dir: PathBuf,
}

impl Server {
    fn start(name: &'static str, dir: &Path, port: u16) -> Server {
        let script = Path::new(ROOT).join("scripts/emul-servers.sh");
        let d = dir.join(name);
        output_ok(
            Command::new(&script)
                .args(["start", name])
                .arg(&d)
                .arg(port.to_string()),
            &format!("starting {name}"),
        );
        Server { name, dir: d }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let script = Path::new(ROOT).join("scripts/emul-servers.sh");
        let _ = Command::new(script)
            .args(["stop", self.name])
            .arg(&self.dir)
            .status();
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The farm emulating one personality on `addr`, stopped (SIGTERM) when dropped.
struct Farm {
    child: Child,
    pub events: PathBuf,
}

impl Farm {
    fn start(dir: &Path, addr: SocketAddr, service: &str, personality: &Path) -> Farm {
        Farm::start_on(dir, &[addr], service, personality)
    }

    /// The farm emulating the personality on each of `addrs`.
    fn start_on(dir: &Path, addrs: &[SocketAddr], service: &str, personality: &Path) -> Farm {
        let each: Vec<_> = addrs.iter().map(|a| (*a, service, personality)).collect();
        Farm::start_each(dir, &each)
    }

    /// The farm emulating on each address its service's personality. Its scan filter is off:
    /// the test is one source, and the filter answers a source's first 4 (address, port)
    /// pairs only.
    fn start_each(dir: &Path, listeners: &[(SocketAddr, &str, &Path)]) -> Farm {
        let events = dir.join("events.sqlite");
        std::fs::create_dir_all(dir.join("scripts")).unwrap();
        let config = dir.join("farm.toml");
        let mut text = format!(
            "[events]\npath = {events:?}\n[scripts]\ndirs = [{:?}]\n[filter]\nenabled = false\n",
            dir.join("scripts")
        );
        for (addr, service, personality) in listeners {
            text.push_str(&format!(
                "[[listen]]\naddress = \"{addr}\"\nservice = \"{service}\"\n\
                 responder = \"emulate\"\npersonality = {personality:?}\n"
            ));
        }
        std::fs::write(&config, text).unwrap();
        let addr = listeners[0].0;
        let child = Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
            .args(["run", "--config"])
            .arg(&config)
            .stderr(std::fs::File::create(dir.join("farm.log")).unwrap())
            .spawn()
            .unwrap();
        wait_listening(addr);
        Farm { child, events }
    }

    /// Stops the farm (its store flushed) and returns what it stored.
    fn stop(mut self) -> Stored {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let db = rusqlite::Connection::open(&self.events).unwrap();
        let mut q = db
            .prepare(
                "SELECT COALESCE(c.outcome, ''), (SELECT COUNT(*) FROM artifact_sightings a \
                 WHERE a.connection = c.id) FROM connections c",
            )
            .unwrap();
        let connections = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut q = db
            .prepare(
                "SELECT s.name, a.content FROM artifact_sightings s \
                 JOIN artifacts a ON a.sha256 = s.artifact",
            )
            .unwrap();
        let artifacts = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        Stored {
            connections,
            artifacts,
        }
    }
}

/// What the farm stored: `(outcome, artifacts)` per connection, `(name, content)` per
/// artifact sighting.
struct Stored {
    connections: Vec<(String, i64)>,
    artifacts: Vec<(String, Vec<u8>)>,
}

impl Stored {
    /// FTP uploads stored as `incoming/{name}-…` holding `name`.
    fn uploads(&self, name: &str) -> usize {
        let prefix = format!("ftp-upload:incoming/{name}-");
        self.artifacts
            .iter()
            .filter(|(n, c)| n.starts_with(&prefix) && c == name.as_bytes())
            .count()
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// `nmap -sV --version-all` with scripts on one loopback port: the probes it sent and what
/// each matched (`--version-trace`), then the port's lines, with the parts that change from
/// run to run masked and the script blocks in a fixed order.
fn nmap(port: u16, scripts: &str) -> Vec<String> {
    let out = output_ok(
        Command::new("nmap").args([
            "-sV",
            "--version-all",
            "--version-trace",
            "-Pn",
            "-p",
            &port.to_string(),
            "--script",
            scripts,
            "127.0.0.1",
        ]),
        "nmap",
    );
    let trace = out
        .lines()
        .filter(|l| l.starts_with("Service scan sending probe") || l.contains("match (Probe "))
        .map(String::from);
    let mut lines: Vec<String> = out
        .lines()
        .skip_while(|l| !l.starts_with("PORT"))
        .take_while(|l| !l.is_empty() && !l.starts_with("Service detection"))
        .filter(|l| !l.starts_with("Final times for host"))
        .map(mask)
        .collect();
    lines.sort();
    trace.chain(lines).collect()
}

fn mask(line: &str) -> String {
    if let Some(i) = line.find("Date: ") {
        return format!("{}Date: (masked)", &line[..i]);
    }
    // vsftpd's STAT counts the clients connected when the session started.
    if let Some(i) = line.find("client count was ") {
        return format!("{}client count was (masked)", &line[..i]);
    }
    line.trim_end().to_string()
}

fn assert_clean(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for w in FORBIDDEN {
        assert!(!lower.contains(w), "{what} shows `{w}`: {text}");
    }
}

/// Sends raw bytes, returns everything the server says until it closes or stays quiet.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The machine's host name, as the real servers call themselves.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// A dialog line by line: each line sent, then the reply read (up to its last line).
fn dialog(addr: SocketAddr, lines: &[&[u8]]) -> Vec<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut replies = vec![read_reply(&mut s)];
    for l in lines {
        s.write_all(l).unwrap();
        replies.push(read_reply(&mut s));
    }
    replies
}

/// One SMTP or FTP reply: lines up to one whose code is followed by a space.
fn read_reply(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap_or(0) == 1 {
        out.push(b[0]);
        let text = String::from_utf8_lossy(&out);
        let last = text
            .trim_end_matches("\r\n")
            .rsplit("\r\n")
            .next()
            .unwrap_or("");
        if text.ends_with("\r\n") && last.len() >= 4 && last.as_bytes()[3] == b' ' {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `honeyfarm personality scan` of the server at `addr` into `out`.
fn scan(protocol: &str, addr: SocketAddr, out: &Path) {
    common::honeyfarm_ok(&[
        "personality",
        "scan",
        protocol,
        &addr.to_string(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
}

fn curl(addr: SocketAddr, path: &str) -> String {
    output_ok(
        Command::new("curl").args(["-s", "-i", &format!("http://{addr}{path}")]),
        "curl",
    )
}

fn without_dates(s: &str) -> String {
    s.lines().map(mask).collect::<Vec<_>>().join("\n")
}

/// The whole HTTP comparison for one server on `port`.
fn http_like_the_real_server(name: &'static str, port: u16) {
    let dir = work_dir(name);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let personality = dir.join(format!("{name}.toml"));
    let scripts = "http-headers,http-methods";
    let (real_nmap, real_pages) = {
        let _server = Server::start(name, &dir, port);
        scan("http", addr, &personality);
        let pages = ["/", "/nothere.html", "/index.html"].map(|p| without_dates(&curl(addr, p)));
        (nmap(port, scripts), pages)
    };
    let text = std::fs::read_to_string(&personality).unwrap();
    assert_clean("the personality", &text);
    let farm = Farm::start(&dir.join("farm"), addr, "http", &personality);
    let emulated = nmap(port, scripts);
    assert_eq!(real_nmap, emulated, "nmap on {name} and on its emulation");
    for (i, p) in ["/", "/nothere.html", "/index.html"].iter().enumerate() {
        let page = without_dates(&curl(addr, p));
        assert_clean("a page", &page);
        assert_eq!(real_pages[i], page, "GET {p}");
    }
    let over = raw(addr, b"GET / HTTP/1.0\r\n\r\n");
    assert!(over.starts_with(b"HTTP/1.1 200 OK\r\n"), "{over:?}");
    let stored = farm.stop();
    let conns = &stored.connections;
    assert!(conns.len() > 10, "{conns:?}");
    assert!(
        conns.iter().any(|(o, a)| o == "emulated" && *a > 0),
        "{conns:?}"
    );
    let request = |(n, c): &(String, Vec<u8>)| n == "http-request" && c.starts_with(b"GET / ");
    assert!(stored.artifacts.iter().any(request));
}

#[test]
fn nginx_is_emulated_like_nginx() {
    http_like_the_real_server("nginx", 18480);
}

#[test]
fn apache_is_emulated_like_apache() {
    http_like_the_real_server("apache", 18490);
}

#[test]
fn the_iis_personality_is_named_iis_5() {
    let dir = work_dir("iis");
    let addr: SocketAddr = "127.0.0.1:18482".parse().unwrap();
    let personality = Path::new(ROOT).join("config/personalities/iis-5.0.toml");
    let farm = Farm::start(&dir, addr, "http", &personality);
    let lines = nmap(addr.port(), "http-methods");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("open  http    Microsoft IIS httpd 5.0")),
        "{lines:?}"
    );
    let code = |method: &str| {
        let r = raw(addr, format!("{method} / HTTP/1.0\r\n\r\n").as_bytes());
        String::from_utf8_lossy(&r[..r.len().min(12)]).into_owned()
    };
    assert_eq!(code("GET"), "HTTP/1.1 200");
    assert_eq!(code("HEAD"), "HTTP/1.1 200");
    assert_eq!(code("SEARCH"), "HTTP/1.1 411");
    assert_eq!(code("PROPFIND"), "HTTP/1.1 207");
    assert_eq!(code("DELETE"), "HTTP/1.1 405");
    let options = String::from_utf8(raw(addr, b"OPTIONS / HTTP/1.0\r\n\r\n")).unwrap();
    assert!(options.contains("\r\nDAV: 1, 2\r\n") && options.contains("\r\nPublic: "));
    let get = String::from_utf8(raw(addr, b"GET / HTTP/1.0\r\n\r\n")).unwrap();
    assert!(get.contains("Set-Cookie: ASPSESSIONID") && get.contains("Cache-control: private"));
    let long = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(1200));
    assert!(
        raw(addr, long.as_bytes()).is_empty(),
        "no answer over 1,000 bytes"
    );
    assert_clean("IIS", &get);
    farm.stop();
}

/// Postfix: scanned, then emulated on its port; nmap's name, `smtp-commands` and smtpscan's
/// reply codes equal, swaks completes a mail and BDAT another, both stored with their
/// envelopes; two mails get fresh queue ids of the real server's shape.
#[test]
fn postfix_is_emulated_like_postfix() {
    smtp_like_the_real_server("postfix", 18425);
}

/// Exim, run from its unpacked package beside Postfix: the same comparison.
#[test]
fn exim_is_emulated_like_exim() {
    smtp_like_the_real_server("exim", 18435);
}

fn smtp_like_the_real_server(name: &'static str, port: u16) {
    let dir = work_dir(name);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let personality = dir.join(format!("{name}.toml"));
    let host = hostname();
    let to = format!("root@{host}");
    let swaks = |what: &str| {
        output_ok(
            Command::new("swaks").args([
                "--server",
                &addr.to_string(),
                "--to",
                &to,
                "--from",
                "sender@example.net",
                "--ehlo",
                "client.example.net",
                "--body",
                what,
            ]),
            "swaks",
        )
    };
    let bdat: [&[u8]; 4] = [
        b"EHLO client.example.net\r\n",
        b"MAIL FROM:<sender@example.net>\r\n",
        format!("RCPT TO:<{to}>\r\n").leak().as_bytes(),
        b"BDAT 12 LAST\r\nchunked mail",
    ];
    let (real_nmap, real_bdat, real_smtpscan) = {
        let _server = Server::start(name, &dir, port);
        scan("smtp", addr, &personality);
        swaks("real");
        let nmap = nmap(port, "smtp-commands");
        (nmap, dialog(addr, &bdat), smtpscan(addr))
    };
    assert_clean(
        "the personality",
        &std::fs::read_to_string(&personality).unwrap(),
    );
    let farm = Farm::start(&dir.join("farm"), addr, "smtp", &personality);
    let emulated = nmap(port, "smtp-commands");
    assert_eq!(real_nmap, emulated, "nmap on {name} and on its emulation");
    let out = swaks("emulated mail");
    assert_clean("swaks", &out);
    assert!(out.contains("<-  221 "), "{out}");
    let got = dialog(addr, &bdat);
    let code = |r: &[String]| {
        r.iter()
            .map(|l| l[..l.len().min(3)].to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(code(&real_bdat), code(&got), "{real_bdat:?} {got:?}");
    assert!(got[4].starts_with("250"), "{got:?}");
    assert_eq!(real_smtpscan, smtpscan(addr), "smtpscan's codes");
    let again = dialog(addr, &bdat);
    let ids = [&real_bdat[4], &got[4], &again[4]].map(|r| message_id(r));
    assert_ne!(ids[1], ids[2], "a fresh id per mail: {got:?} {again:?}");
    assert_eq!(id_shape(&ids[0]), id_shape(&ids[1]), "{ids:?}");
    assert_eq!(id_shape(&ids[0]), id_shape(&ids[2]), "{ids:?}");
    let stored = farm.stop();
    let mails: Vec<String> = stored
        .artifacts
        .iter()
        .filter(|(n, _)| n == "smtp-mail")
        .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
        .collect();
    let envelope = format!("MAIL FROM:sender@example.net\r\nRCPT TO:{to}\r\n\r\n");
    assert!(
        mails
            .iter()
            .any(|m| m.starts_with(&envelope) && m.contains("emulated mail")),
        "{mails:?}"
    );
    assert!(
        mails
            .iter()
            .any(|m| m.starts_with(&envelope) && m.ends_with("chunked mail")),
        "{mails:?}"
    );
}

/// smtpscan's 15 tests (Julien Bordet, 2002; its `tests` file as Nessus' smtpscan.nasl
/// carries it), each on its own connection as smtpscan runs them: the commands of a test in
/// sequence, the code of the reply to its last one. Returns the codes joined by `:`, as
/// smtpscan's fingerprints write them.
fn smtpscan(addr: SocketAddr) -> String {
    let (valid, invalid) = ("smtpscan1@example.net", "smtpscan1@invalid1.org");
    let helo = "HELO client.example.net";
    let tests: [Vec<String>; 15] = [
        vec![format!("MAIL FROM: {valid}")],
        vec!["HELO".to_string()],
        vec![helo.into(), "MAIL FROM test".into()],
        vec![helo.into(), "MAIL FROM: <>".into()],
        vec![helo.into(), format!("MAIL FROM: <{valid}")],
        vec![helo.into(), format!("MAIL FROM: <{invalid}>")],
        vec![
            helo.into(),
            format!("MAIL FROM: <{valid}>"),
            "RCPT TO: test".into(),
        ],
        vec![helo.into(), "HELP".into()],
        vec![helo.into(), "VRFY root".into()],
        vec![helo.into(), "EXPN root".into()],
        vec![helo.into(), "TURN".into()],
        vec![helo.into(), format!("SOML FROM: <{valid}>")],
        vec![helo.into(), format!("SAML FROM: <{valid}>")],
        vec![helo.into(), "NOOP".into()],
        vec!["EHLO client.example.net".to_string()],
    ];
    tests
        .iter()
        .map(|t| {
            let lines: Vec<Vec<u8>> = t.iter().map(|l| format!("{l}\r\n").into_bytes()).collect();
            let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let replies = dialog(addr, &refs);
            let last = replies.last().map_or("", String::as_str);
            last.get(..3).unwrap_or("0").to_string()
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// The id a mail's last reply gives (Postfix: `queued as 4F2A1B3C9D`, Exim:
/// `id=1xYcEF-0005db-0f`).
fn message_id(reply: &str) -> String {
    let word = reply.split_whitespace().last().unwrap_or("");
    word.trim_start_matches("id=").to_string()
}

/// An id's shape: letters and digits as `x`, separators as they are.
fn id_shape(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { 'x' } else { c })
        .collect()
}

/// Python's ftplib in passive and active mode: login, LIST, NLST, RETR of the readme; SIZE,
/// MDTM, CWD into `pub` and a missing directory, PWD, RETR of a file of bare LFs in TYPE A and
/// TYPE I (raw bytes), STAT, CDUP, NLST of a directory; STOR of an upload, then LIST of the
/// upload directory (this session's uploads only: the real server also holds the scan's and
/// the other address family's) and SIZE of the upload; PASV last (IPv6: vsftpd's 0,0,0,0).
/// Prints what it got.
const FTPLIB: &str = r#"
import ftplib, io, sys
host, port, upload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def cmd(f, c):
    try: print(c, "->", f.sendcmd(c))
    except ftplib.all_errors as e: print(c, "->", e)
def raw(f, c, lines=False):
    try:
        conn, size = f.ntransfercmd(c)
        data = b""
        while True:
            x = conn.recv(8192)
            if not x: break
            data += x
        conn.close()
        print(c, "->", size, f.voidresp())
        print(data.decode() if lines else repr(data))
    except ftplib.all_errors as e: print(c, "->", e)
for passive in (True, False):
    f = ftplib.FTP(timeout=10)
    f.connect(host, port)
    print(f.getwelcome())
    print(f.login())
    f.set_pasv(passive)
    lines = []
    f.retrlines("LIST", lines.append)
    print("\n".join(lines))
    print(f.nlst())
    b = io.BytesIO()
    print(f.retrbinary("RETR README.txt", b.write))
    print(b.getvalue())
    for c in ["TYPE A", "SIZE pub/notes.txt", "MDTM pub/notes.txt", "MDTM pub", "CWD nosuchdir", "CWD pub", "PWD"]:
        cmd(f, c)
    raw(f, "RETR notes.txt")
    raw(f, "LIST", True)
    for c in ["TYPE I", "STAT"]:
        cmd(f, c)
    raw(f, "RETR notes.txt")
    for c in ["CDUP", "XPWD", "CWD /pub/../incoming", "XCUP"]:
        cmd(f, c)
    raw(f, "NLST pub", True)
    raw(f, "LIST nosuchdir", True)
    name = "incoming/%s-%d.txt" % (upload, passive)
    print(f.storbinary("STOR " + name, io.BytesIO(upload.encode())))
    lines = []
    f.retrlines("LIST incoming", lines.append)
    print("\n".join(l for l in lines if upload in l))
    cmd(f, "SIZE " + name)
    cmd(f, "PASV")
    f.quit()
"#;

/// What changes from run to run masked: the listing times of the upload directory and the
/// uploads (now, on either server: the rest of the tree has its times of before the scan),
/// also as nmap's `ftp-anon` prints them, passive ports, vsftpd's client count.
fn ftp_masked(session: &str) -> String {
    let ls = regex::Regex::new(
        r"(?m)^([|_ ]*[d-][rwx-]{9}\s+\d+\s+\S+\s+\S+\s+\d+\s+)\w{3}\s+\d+\s+[\d:]+ (incoming|\w+-\d\.txt)\r?$",
    )
    .unwrap();
    let pasv = regex::Regex::new(r",\d+,\d+\)").unwrap();
    let session = ls.replace_all(session, "${1}(now) $2");
    let session = pasv.replace_all(&session, ",p1,p2)");
    session.lines().map(mask).collect::<Vec<_>>().join("\n")
}

fn ftplib(addr: SocketAddr, upload: &str) -> String {
    output_ok(
        Command::new("python3").args([
            "-c",
            FTPLIB,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            upload,
        ]),
        "ftplib",
    )
}

/// vsftpd: scanned, then emulated on its port; nmap's name, `ftp-anon` and `ftp-syst` equal;
/// ftplib completes passive and active sessions the same over IPv4 and IPv6 (EPSV, EPRT;
/// vsftpd serves [::1] from a second process), through the tree, in both transfer types, and
/// the uploads are stored.
#[test]
fn vsftpd_is_emulated_like_vsftpd() {
    let (name, port) = ("vsftpd", 18421);
    let dir = work_dir(name);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let addr6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let personality = dir.join("vsftpd.toml");
    let (real_nmap, real_session, real_session6) = {
        let _server = Server::start(name, &dir, port);
        scan("ftp", addr, &personality);
        (
            nmap(port, "ftp-anon,ftp-syst"),
            ftplib(addr, "uploaded"),
            ftplib(addr6, "sixup"),
        )
    };
    let text = std::fs::read_to_string(&personality).unwrap();
    assert_clean("the personality", &text);
    assert!(text.contains("version = \"I\""), "no rule of TYPE I");
    let farm = Farm::start_on(&dir.join("farm"), &[addr, addr6], "ftp", &personality);
    let emulated = nmap(port, "ftp-anon,ftp-syst");
    assert_eq!(real_nmap, emulated, "nmap on vsftpd and on its emulation");
    let session = ftplib(addr, "uploaded");
    assert_clean("ftplib", &session);
    assert_eq!(ftp_masked(&real_session), ftp_masked(&session));
    let session6 = ftplib(addr6, "sixup");
    assert_eq!(ftp_masked(&real_session6), ftp_masked(&session6));
    assert!(session6.contains("PASV -> 227 Entering Passive Mode (0,0,0,0,"));
    let stored = farm.stop();
    assert_eq!(stored.uploads("uploaded"), 2, "{:?}", stored.artifacts);
    assert_eq!(stored.uploads("sixup"), 2, "{:?}", stored.artifacts);
}

/// Python's ftplib as for ProFTPD (IPv4, the root of its tree): login, LIST, NLST (in the
/// server's order: ProFTPD's is its directory's, not LIST's), RETR of the readme, STOR of an
/// upload, in passive and active mode; prints what it got.
const FTPLIB_ROOT: &str = r#"
import ftplib, io, sys
port, upload = int(sys.argv[1]), sys.argv[2]
for passive in (True, False):
    f = ftplib.FTP(timeout=10)
    f.connect("127.0.0.1", port)
    print(f.getwelcome())
    print(f.login())
    f.set_pasv(passive)
    lines = []
    f.retrlines("LIST", lines.append)
    print("\n".join(lines))
    print(f.nlst())
    b = io.BytesIO()
    print(f.retrbinary("RETR README.txt", b.write))
    print(b.getvalue())
    print(f.storbinary("STOR incoming/%s-%d.txt" % (upload, passive), io.BytesIO(upload.encode())))
    f.quit()
"#;

/// [`FTPLIB_ROOT`] against 127.0.0.1:`port`, uploading a file named after `upload`.
fn ftplib_root(port: u16, upload: &str) -> String {
    output_ok(
        Command::new("python3").args(["-c", FTPLIB_ROOT, &port.to_string(), upload]),
        "ftplib",
    )
}

/// ProFTPD 1.3.8, run from its unpacked package beside vsftpd with Debian's default
/// configuration and anonymous section: scanned, then emulated on its port; nmap's
/// `--version-trace`, name, `ftp-anon` and `ftp-syst` equal (the upload directory's time
/// masked); ftplib's
/// passive and active sessions equal and the uploads stored. Its banner names no version, so
/// nmap 7.93 names it by the GenericLines reply (Nagios NSCA: any 132-byte reply); the FTP
/// script is forced (`+`) as nmap would not run it on that service.
#[test]
fn proftpd_is_emulated_like_proftpd() {
    let (name, port) = ("proftpd", 18450);
    let dir = work_dir(name);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let personality = dir.join("proftpd.toml");
    let scripts = "+ftp-anon,+ftp-syst";
    let session = || ftplib_root(port, "uploaded");
    let (real_nmap, real_session) = {
        let _server = Server::start(name, &dir, port);
        scan("ftp", addr, &personality);
        (nmap(port, scripts), session())
    };
    assert_clean(
        "the personality",
        &std::fs::read_to_string(&personality).unwrap(),
    );
    let farm = Farm::start(&dir.join("farm"), addr, "ftp", &personality);
    let emulated = nmap(port, scripts);
    let masked = |lines: &[String]| ftp_masked(&lines.join("\n"));
    assert_eq!(
        masked(&real_nmap),
        masked(&emulated),
        "nmap on ProFTPD and on its emulation"
    );
    let got = session();
    assert_clean("ftplib", &got);
    assert_eq!(ftp_masked(&real_session), ftp_masked(&got));
    let stored = farm.stop();
    assert_eq!(stored.uploads("uploaded"), 2, "{:?}", stored.artifacts);
}

/// One farm emulating vsftpd and ProFTPD on two ports (and the IIS personality on a third),
/// as one client reaches them: each FTP personality answers ftplib's passive and active
/// sessions as its own server did, and its uploads are stored; IIS answers as IIS. The two
/// servers are scanned one after the other on one port, so their passive ports stay clear of
/// the other tests'.
#[test]
fn one_farm_emulates_two_ftp_servers_each_as_itself() {
    let dir = work_dir("two-ftp");
    let port = 18400;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let scanned = ["vsftpd", "proftpd"].map(|name| {
        let personality = dir.join(format!("{name}.toml"));
        let _server = Server::start(name, &dir, port);
        scan("ftp", addr, &personality);
        (personality, ftplib_root(port, name))
    });
    let [(vsftpd, real_vsftpd), (proftpd, real_proftpd)] = &scanned;
    let iis = Path::new(ROOT).join("config/personalities/iis-5.0.toml");
    let at = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().unwrap() };
    let farm = Farm::start_each(
        &dir.join("farm"),
        &[
            (at(18400), "ftp", vsftpd),
            (at(18410), "ftp", proftpd),
            (at(18405), "http", &iis),
        ],
    );
    wait_listening(at(18410));
    wait_listening(at(18405));
    let v = ftplib_root(18400, "vsftpd");
    let p = ftplib_root(18410, "proftpd");
    assert!(v.starts_with("220 (vsFTPd "), "{v}");
    assert!(p.starts_with("220 ProFTPD Server"), "{p}");
    assert_eq!(ftp_masked(real_vsftpd), ftp_masked(&v));
    assert_eq!(ftp_masked(real_proftpd), ftp_masked(&p));
    let head = String::from_utf8(raw(at(18405), b"HEAD / HTTP/1.0\r\n\r\n")).unwrap();
    assert!(head.contains("Server: Microsoft-IIS/5.0"), "{head}");
    let stored = farm.stop();
    assert_eq!(stored.uploads("vsftpd"), 2, "{:?}", stored.artifacts);
    assert_eq!(stored.uploads("proftpd"), 2, "{:?}", stored.artifacts);
}

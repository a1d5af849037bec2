//! The farm end to end, with real peers on loopback: scripts recorded from a Samba honeypot,
//! rpcclient and smbclient served from them through `honeyfarm run`, deviations handed to
//! honeypot smbd processes the farm starts, the event store read back (issue 5, tests 8a-8e).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::dirs::{processes_with, Cleanup};
use common::{read_frame, script_messages};
use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::replay::Script;

const TELESCOPE: &str = "127.0.0.77";
const FARM_PORT: u16 = 4460;
/// The recording server and the honeypots listen on this port, each on its own address.
const SMB_PORT: u16 = 4461;
const REFERENCE: &str = "127.0.0.6";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory (with an empty `scripts/`) for one test, and the guard that stops what the
/// test leaves running in it (after sweeping what earlier runs left: [`common::dirs::sweep`]).
fn test_dir(name: &str) -> (PathBuf, Cleanup) {
    let (dir, cleanup) = common::dirs::test_dir(name);
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    (dir, cleanup)
}

/// Copies the script the default configuration ships (enumdomusers, recorded from FILESRV01).
fn ship_script(dir: &Path) {
    std::fs::copy(
        root().join("protocols/scripts/samba-enumdomusers.json"),
        dir.join("scripts/samba-enumdomusers.json"),
    )
    .unwrap();
}

/// A child in its own process group, stopped (with everything it started) when dropped.
struct Group(Child);

impl Group {
    fn spawn(cmd: &mut Command) -> Group {
        std::os::unix::process::CommandExt::process_group(cmd, 0);
        Group(cmd.spawn().expect("starts"))
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = self.0.try_wait() {
                return st;
            }
            assert!(Instant::now() < deadline, "did not stop within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.signal("-KILL");
            let _ = self.0.wait();
        }
    }
}

fn wait_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no {}", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `honeyfarm run --config CONFIG`, its log in `dir/farm.log`; returns once it is listening.
fn start_farm(dir: &Path, config: &Path) -> (Group, PathBuf) {
    let log = dir.join("farm.log");
    let farm = Group::spawn(
        Command::new(env!("CARGO_BIN_EXE_honeyfarm"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    wait_log(&log, "stop with Ctrl-C");
    (farm, log)
}

/// Waits for the farm to say it is ready (connecting to find out would be a connection too).
fn wait_log(log: &Path, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(line) {
            return;
        }
        assert!(Instant::now() < deadline, "the farm did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a client said, standard output then standard error, whatever its status.
fn said(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the client runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rpcclient(addr: &str, port: u16, commands: &str) -> String {
    said(
        Command::new("rpcclient")
            .args(["-U%", "-N", "-p", &port.to_string()])
            .args(common::SMB1_CLIENT)
            .args([addr, "-c", commands]),
    )
}

fn smbclient(addr: &str, port: u16, share: &str, command: &[&str]) -> String {
    said(
        Command::new("smbclient")
            .arg(format!("//{addr}/{share}"))
            .args(["-p", &port.to_string(), "-N", "-m", "NT1"])
            .args(&common::SMB1_CLIENT[..2])
            .args(command),
    )
}

/// tshark capturing to `file` until stopped.
fn capture(iface: &str, filter: &str, file: &Path, probe: SocketAddr) -> Group {
    let err = file.with_extension("err");
    let g = Group::spawn(
        Command::new("tshark")
            .args(["-i", iface, "-f", filter, "-w"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap()),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&err)
        .unwrap_or_default()
        .contains("Capturing on")
    {
        assert!(Instant::now() < deadline, "tshark did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // "Capturing on" can come before the first packets are caught: knock on the port until the
    // knock is in the file.
    let size = || std::fs::metadata(file).map_or(0, |m| m.len());
    let empty = size();
    while size() == empty {
        assert!(Instant::now() < deadline, "tshark captures nothing");
        let _ = TcpStream::connect_timeout(&probe, Duration::from_millis(200));
        std::thread::sleep(Duration::from_millis(200));
    }
    g
}

fn stop_capture(g: Group) {
    std::thread::sleep(Duration::from_millis(500));
    g.signal("-INT");
    let _ = g.stop();
}

fn honeyfarm(args: &[&str]) -> String {
    common::honeyfarm_ok(args)
}

/// Records `run` against a fresh reference honeypot and imports the dialog as a script.
fn record(dir: &Path, name: &str, run: impl FnOnce() -> String) -> String {
    let pcap = dir.join(format!("{name}.pcap"));
    let cap = capture(
        "lo",
        &format!("tcp port {SMB_PORT} and host {REFERENCE}"),
        &pcap,
        format!("{REFERENCE}:{SMB_PORT}").parse().unwrap(),
    );
    let out = run();
    stop_capture(cap);
    let script = dir.join("scripts").join(format!("{name}.json"));
    let port = format!("{SMB_PORT}=smb");
    honeyfarm(&[
        "script",
        "import",
        "--pcap",
        pcap.to_str().unwrap(),
        "--port",
        &port,
        "--out",
        script.to_str().unwrap(),
    ]);
    out
}

fn farm_config(
    dir: &Path,
    listen: &str,
    command: &str,
    honeypots: &[&str],
    pool: usize,
) -> PathBuf {
    farm_config_for(Contained::Process, dir, listen, command, honeypots, pool)
}

/// Which backend the end-to-end test runs its honeypots with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Contained {
    /// Processes on loopback addresses of this host.
    Process,
    /// Each in a network namespace of its own (prefix `hfn`), holding the telescope address.
    Netns,
    /// VMs restored from the saved warm state of this image (`scripts/vm-image.sh`), each on a
    /// tap in a namespace of its own (prefix `hfq`), as a netns honeypot is.
    Qemu(PathBuf),
}

fn farm_config_for(
    backend: Contained,
    dir: &Path,
    listen: &str,
    command: &str,
    honeypots: &[&str],
    pool: usize,
) -> PathBuf {
    let backend = match backend {
        Contained::Process => format!("backend = \"process\"\ncommand = {command}"),
        Contained::Netns => {
            format!("backend = \"netns\"\nnetns_prefix = \"hfn\"\ncommand = {command}")
        }
        Contained::Qemu(image) => format!(
            "backend = \"qemu\"\nnetns_prefix = \"hfq\"\n[honeypots.qemu]\nimage = {:?}\nstate = {:?}",
            image.display().to_string(),
            common::vm::STATE_DIR
        ),
    };
    let text = format!(
        r#"
[events]
path = "{dir}/events.sqlite"
[scripts]
dirs = ["{dir}/scripts"]
[[listen]]
address = "{listen}"
service = "smb"
[session]
idle_timeout_secs = 60
reply_timeout_secs = 30
[honeypots]
services = ["smb"]
addresses = {honeypots:?}
pool = {pool}
work_dir = "{dir}/honeypots"
ready_file = "{{dir}}/ready"
keep = true
ready_timeout_secs = 60
{backend}
"#,
        dir = dir.display()
    );
    let path = dir.join("farm.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `(outcome, deviated_at, first_reply_ms, handoff_ms, detail)` of connection `id`.
fn connection(db: &Path, id: i64) -> (String, Option<i64>, Option<f64>, Option<f64>, String) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT outcome, deviated_at, first_reply_ms, handoff_ms, COALESCE(detail, '') FROM connections WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
    .unwrap_or_else(|e| panic!("connection {id}: {e}"))
}

/// Waits until the farm has recorded how connection `id` ended.
fn ended(db: &Path, id: i64) -> (String, Option<i64>, Option<f64>, Option<f64>, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = rusqlite::Connection::open(db).unwrap();
        let done: Option<String> = c
            .query_row("SELECT outcome FROM connections WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .ok()
            .flatten();
        if done.is_some() {
            return connection(db, id);
        }
        assert!(Instant::now() < deadline, "connection {id} never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until connection `id` ended, checks that it ended `outcome` and returns its detail.
fn ends(db: &Path, id: i64, outcome: &str) -> String {
    let (got, _, _, _, detail) = ended(db, id);
    assert_eq!(got, outcome, "connection {id}: {detail}");
    detail
}

/// rpcclient prints the domain's modification count as "Sequence No": a time.
fn without_times(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with("Sequence No"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn replay_handoff_and_bridge_with_samba() {
    replay_handoff_and_bridge(Contained::Process);
}

/// The same with every honeypot a VM restored from the saved warm state (issue 12, item 3).
/// Skipped, with the reason printed, where the qemu backend cannot run (tests/common/vm.rs).
#[test]
fn replay_handoff_and_bridge_with_qemu_honeypots() {
    let Some(config) = common::vm::config("hfq-farm-warm", honeyfarm_runtime::farm::Boot::Restore)
    else {
        return;
    };
    // The warm VM is saved (or found saved) before the farm starts, which would do it too.
    let image = config.image.clone();
    drop(honeyfarm_runtime::farm::QemuBackend::new(config).expect("the warm VM is saved"));
    replay_handoff_and_bridge(Contained::Qemu(image));
}

/// The end-to-end runs share the telescope, reference and honeypot addresses: one at a time.
static END_TO_END: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The same with every honeypot in a namespace of its own (issue 12).
#[test]
fn replay_handoff_and_bridge_with_contained_samba() {
    replay_handoff_and_bridge(Contained::Netns);
}

/// Removes the namespaces (prefix `.0`) of the `netns` or `qemu` backend's honeypots on
/// `links`, whatever happened.
struct Namespaces(&'static str, Vec<SocketAddr>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for a in &self.1 {
            if let std::net::IpAddr::V4(v) = a.ip() {
                honeyfarm_runtime::farm::remove_netns(&format!("{}-{v}", self.0));
                let _ = Command::new("ip")
                    .args(["link", "del", &format!("{}{:08x}", self.0, u32::from(v))])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// Scripts recorded from a Samba server, then the farm end to end (8a-8e) with its honeypots
/// run by `backend`.
fn replay_handoff_and_bridge(backend: Contained) {
    let _one = END_TO_END.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, _cleanup) = test_dir(match backend {
        Contained::Process => "honeyfarm-farm",
        Contained::Netns => "honeyfarm-farm-netns",
        Contained::Qemu(_) => "honeyfarm-farm-qemu",
    });
    let script = root().join("scripts/samba-honeypot.sh");

    // The server the scripts are recorded from: a honeypot like the farm's.
    let reference = Group::spawn(
        Command::new("bash")
            .arg(&script)
            .arg(dir.join("reference"))
            .arg(REFERENCE)
            .arg(SMB_PORT.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // Ready once it has warmed up its RPC services: that session must not be recorded.
    wait_file(&dir.join("reference/ready"));
    let direct_users = record(&dir, "enumdomusers", || {
        rpcclient(REFERENCE, SMB_PORT, "enumdomusers")
    });
    assert!(direct_users.contains("user:[alice]"), "{direct_users}");
    let listing = record(&dir, "sharelist", || {
        smbclient(REFERENCE, SMB_PORT, "", &["-L", REFERENCE])
    });
    assert!(listing.contains("public"), "{listing}");
    // What the deviating clients print against the server itself.
    let direct_more = rpcclient(REFERENCE, SMB_PORT, "enumdomusers; querydominfo");
    let direct_srvinfo = rpcclient(REFERENCE, SMB_PORT, "srvinfo");
    assert!(direct_more.contains("Total Users:\t2"), "{direct_more}");
    assert!(direct_srvinfo.contains("FILESRV01"), "{direct_srvinfo}");
    let shown = honeyfarm(&[
        "script",
        "show",
        dir.join("scripts/enumdomusers.json").to_str().unwrap(),
    ]);
    assert!(
        shown.contains("EnumerateUsersResponse") && shown.contains("@cookie"),
        "{shown}"
    );
    // 8a: the recorded server is gone; the farm alone answers.
    let _ = reference.stop();
    let listen = format!("{TELESCOPE}:{FARM_PORT}");
    let command = format!(
        r#"["{}", "{{dir}}", "{{address}}", "{{port}}"]"#,
        script.display()
    );
    let honeypots = match backend {
        Contained::Process => ["127.0.0.5", "127.0.0.8", "127.0.0.9"],
        Contained::Netns => ["10.231.9.5", "10.231.9.8", "10.231.9.9"],
        Contained::Qemu(_) => ["10.233.9.5", "10.233.9.8", "10.233.9.9"],
    }
    .map(|a| format!("{a}:{SMB_PORT}"));
    // Namespaced honeypots hold the telescope address (netns) or are told it (qemu).
    let contained = backend != Contained::Process;
    let links = || honeypots.iter().map(|a| a.parse().unwrap()).collect();
    let _namespaces = match backend {
        Contained::Process => Namespaces("hfn", Vec::new()),
        Contained::Netns => Namespaces("hfn", links()),
        Contained::Qemu(_) => Namespaces("hfq", links()),
    };
    let honeypots: Vec<&str> = honeypots.iter().map(String::as_str).collect();
    let config = farm_config_for(backend.clone(), &dir, &listen, &command, &honeypots, 2);
    let (farm, farm_log) = start_farm(&dir, &config);
    // Handoffs are measured with warm honeypots, as a farm that has been running has them.
    wait_log(&farm_log, "honeypot pool warm");
    let db = dir.join("events.sqlite");
    let log = || std::fs::read_to_string(&farm_log).unwrap_or_default();
    // Honeypot-side traffic, to see what the honeypots were told (8d).
    let hp_pcap = dir.join("honeypot-side.pcap");
    let hp_cap = capture(
        // The netns and qemu backends' honeypots are behind veths.
        if contained { "any" } else { "lo" },
        &format!("tcp port {SMB_PORT}"),
        &hp_pcap,
        format!("{REFERENCE}:{SMB_PORT}").parse().unwrap(),
    );

    let users = rpcclient(TELESCOPE, FARM_PORT, "enumdomusers");
    assert_eq!(users, direct_users, "farm log:\n{}", log());
    let (outcome, _, first_reply, _, detail) = ended(&db, 1);
    assert_eq!(outcome, "scripted", "{detail}\n{}", log());
    eprintln!("8a enumdomusers: scripted, first reply after {first_reply:?} ms");

    // 8b: each deviates, is handed to a honeypot, and prints what the server itself printed.
    let more = rpcclient(TELESCOPE, FARM_PORT, "enumdomusers; querydominfo");
    assert_eq!(
        without_times(&more),
        without_times(&direct_more),
        "farm log:\n{}",
        log()
    );
    let (outcome, at, first_reply, handoff, detail) = ended(&db, 2);
    assert_eq!(outcome, "bridged", "{detail}\n{}", log());
    eprintln!("8b enumdomusers+querydominfo: bridged, deviated_at={at:?}, first reply {first_reply:?} ms, honeypot's first answer {handoff:?} ms after the deviation ({detail})");
    // The honeypot chose its own UID and handles; the attacker kept the script's: the bridge
    // translated between the two.
    let values = |source: &str, needle: &str| -> std::collections::BTreeSet<String> {
        let c = rusqlite::Connection::open(&db).unwrap();
        let messages = honeyfarm_runtime::farm::stored_messages(&c, 2).unwrap();
        messages
            .iter()
            .filter(|m| m.source == source && !m.to_server)
            .flat_map(|m| &m.roles)
            .filter(|l| l.contains(needle))
            .map(|l| l.rsplit('=').next().unwrap().to_string())
            .collect()
    };
    let (scripted_uids, honeypot_uids) = (
        values("script", "Smb1.uid@cookie="),
        values("replayed", "Smb1.uid@cookie="),
    );
    assert!(
        scripted_uids != honeypot_uids,
        "UIDs: script {scripted_uids:?}, honeypot {honeypot_uids:?}"
    );
    let srvinfo = rpcclient(TELESCOPE, FARM_PORT, "srvinfo");
    assert_eq!(srvinfo, direct_srvinfo, "farm log:\n{}", log());
    let (outcome, at, first_reply, handoff, detail) = ended(&db, 3);
    assert_eq!(outcome, "bridged", "{detail}\n{}", log());
    eprintln!("8b srvinfo: bridged, deviated_at={at:?}, first reply {first_reply:?} ms, honeypot's first answer {handoff:?} ms after the deviation ({detail})");

    // 8c: an upload through the farm, scripted from a share listing until it deviates.
    let payload: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = dir.join("payload.bin");
    std::fs::write(&file, &payload).unwrap();
    let put = smbclient(
        TELESCOPE,
        FARM_PORT,
        "public",
        &["-c", &format!("put {} x.exe", file.display())],
    );
    assert!(put.contains("putting file"), "{put}\nfarm log:\n{}", log());
    let (outcome, at, first_reply, handoff, detail) = ended(&db, 4);
    assert_eq!(outcome, "bridged", "{detail}\n{}", log());
    eprintln!("8c put: bridged, deviated_at={at:?}, first reply {first_reply:?} ms, honeypot's first answer {handoff:?} ms after the deviation ({detail})");
    let c = rusqlite::Connection::open(&db).unwrap();
    let (sha, size, content): (String, i64, Vec<u8>) = c
        .query_row(
            "SELECT a.sha256, a.size, a.content FROM artifacts a JOIN artifact_sightings s ON s.artifact = a.sha256 WHERE s.connection = 4",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the upload is an artifact");
    assert_eq!(size as usize, payload.len());
    assert!(
        content == payload,
        "the artifact differs from the file sent"
    );
    let sha_file = Command::new("sha256sum").arg(&file).output().unwrap();
    assert!(String::from_utf8_lossy(&sha_file.stdout).starts_with(&sha));
    // The honeypot's share: its directory is kept when it stops (keep = true).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (landed, kept) = loop {
        // A VM's share is on its kept overlay.
        let in_kept = |d: PathBuf| match &backend {
            Contained::Process | Contained::Netns => std::fs::read(d.join("share/x.exe")).ok(),
            Contained::Qemu(_) => {
                common::vm::guest_file(&d.join("disk.qcow2"), "/srv/samba/public/x.exe", &dir)
            }
        };
        let found = std::fs::read_dir(dir.join("honeypots/done"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .find_map(|e| in_kept(e.path()).map(|k| (e.path(), k)))
            })
            .ok()
            .flatten();
        if let Some(p) = found {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no honeypot kept x.exe\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(kept == payload, "x.exe in {} differs", landed.display());

    // 8d: the attacker named the telescope address; the honeypots heard their own.
    stop_capture(hp_cap);
    let t = Command::new("tshark")
        .arg("-r")
        .arg(&hp_pcap)
        .args([
            "-d",
            &format!("tcp.port=={SMB_PORT},nbss"),
            "-Y",
            "smb.path",
            "-T",
            "fields",
            "-e",
            "ip.dst",
            "-e",
            "smb.path",
        ])
        .output()
        .unwrap();
    let paths = String::from_utf8_lossy(&t.stdout).into_owned();
    assert!(
        !paths.trim().is_empty(),
        "tshark saw no tree connect to a honeypot"
    );
    for line in paths.lines() {
        let (dst, path) = line.split_once('\t').unwrap();
        // A contained honeypot holds the telescope address (a VM's guest is told it too).
        let heard = if contained { TELESCOPE } else { dst };
        assert!(
            path.starts_with(&format!("\\\\{heard}\\")),
            "honeypot {dst} was told {path}"
        );
        assert_eq!(path.contains(TELESCOPE), contained, "{path}");
    }
    let told: String = honeyfarm_runtime::farm::stored_messages(&c, 3)
        .unwrap()
        .into_iter()
        .find(|m| m.source == "attacker" && m.kind.starts_with("Smb1.TreeConnectRequest"))
        .map(|m| m.roles.join("\n"))
        .unwrap();
    let unc = format!("\\\\{TELESCOPE}\\IPC$");
    assert!(told.contains(&format!("@hostname={unc:?}")), "{told}");

    // 8e: garbage, and a client that leaves in the middle of a handoff; the farm goes on.
    let mut g = TcpStream::connect(&listen).unwrap();
    // A web scanner on the SMB port: its first four bytes make a NetBIOS length of 4.5 MB.
    g.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = g.read_to_end(&mut sink);
    let detail = ends(&db, 5, "not_protocol");
    assert!(
        detail.contains("attacker message 0: a message of at least")
            // NetBIOS's own limit (`framing DirectTcp max 0x20003;`), below the configured 1 MiB.
            && detail.contains("more than the 131075 accepted"),
        "{detail}"
    );
    let client_messages: Vec<Vec<u8>> =
        script_messages(&dir.join("scripts/enumdomusers.json"), "client");
    // Negotiate, two Session Setups and the Tree Connect as recorded, each answered from the
    // script, then an Echo the script does not have; the client hangs up without waiting.
    let mut quitter = TcpStream::connect(&listen).unwrap();
    let mut served = Vec::new();
    for m in &client_messages[..4] {
        quitter.write_all(m).unwrap();
        served.push(read_frame(&mut quitter));
    }
    // Replies are the script's with fresh values: the Negotiate's SystemTime is now (FILETIME at
    // byte 56 of the SMB message), the NTLMSSP server challenge is not the recorded one.
    let filetime = u64::from_le_bytes(served[0][56..64].try_into().unwrap());
    let unix = filetime / 10_000_000 - 11_644_473_600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(unix.abs_diff(now) < 120, "SystemTime {unix}, now {now}");
    let server_messages: Vec<Vec<u8>> =
        script_messages(&dir.join("scripts/enumdomusers.json"), "server");
    let challenge = |msg: &[u8]| {
        let at = msg
            .windows(12)
            .position(|w| w == b"NTLMSSP\0\x02\0\0\0")
            .expect("an NTLMSSP CHALLENGE");
        msg[at + 24..at + 32].to_vec()
    };
    // served[1] has no NetBIOS header; the script's message has.
    assert_ne!(challenge(&served[1]), challenge(&server_messages[1]));
    quitter.write_all(&echo_request()).unwrap();
    drop(quitter);
    let (outcome, at, _, _, detail) = ended(&db, 6);
    assert!(
        outcome == "bridged" || outcome == "handoff_failed",
        "{outcome}: {detail}"
    );
    assert_eq!(at, Some(4), "{detail}");
    assert_eq!(
        rpcclient(TELESCOPE, FARM_PORT, "enumdomusers"),
        direct_users
    );
    ends(&db, 7, "scripted");

    // Item 2: the same Negotiate with the dialects in another order is answered with the index
    // of the script's dialect in the attacker's list; without that dialect, it deviates.
    let negotiate = |dialects: &[&str]| {
        let m = &client_messages[0];
        let mut body: Vec<u8> = Vec::new();
        for d in dialects {
            body.push(2);
            body.extend_from_slice(d.as_bytes());
            body.push(0);
        }
        let mut smb = m[4..36].to_vec();
        smb.push(0);
        smb.extend_from_slice(&(body.len() as u16).to_le_bytes());
        smb.extend_from_slice(&body);
        let mut out = vec![0, 0, (smb.len() >> 8) as u8, smb.len() as u8];
        out.extend_from_slice(&smb);
        out
    };
    let mut c = TcpStream::connect(&listen).unwrap();
    c.write_all(&negotiate(&["NT LM 0.12", "SMB 2.002", "NT LANMAN 1.0"]))
        .unwrap();
    let reply = read_frame(&mut c);
    drop(c);
    // The script's server chose "NT LANMAN 1.0", its first dialect: here the third.
    assert_eq!(u16::from_le_bytes([reply[33], reply[34]]), 2);
    ends(&db, 8, "scripted");
    let mut c = TcpStream::connect(&listen).unwrap();
    c.write_all(&negotiate(&["NT LM 0.12"])).unwrap();
    let reply = read_frame(&mut c);
    drop(c);
    // Handed to a honeypot, which chose the only dialect there was.
    assert_eq!(u16::from_le_bytes([reply[33], reply[34]]), 0);
    let (outcome, at, _, _, detail) = ended(&db, 9);
    assert_eq!((outcome.as_str(), at), ("bridged", Some(0)), "{detail}");
    assert!(
        detail.contains("which the attacker does not offer"),
        "{detail}"
    );

    // The sessions as the store has them (the closing note quotes these).
    let c = rusqlite::Connection::open(&db).unwrap();
    let mut q = c
        .prepare("SELECT id, outcome, deviated_at, first_reply_ms, handoff_ms FROM connections ORDER BY id")
        .unwrap();
    let rows = q
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<f64>>(3)?,
                r.get::<_, Option<f64>>(4)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, outcome, at, first, handoff) = row.unwrap();
        eprintln!(
            "connection {id}: {} deviated_at={at:?} first_reply_ms={first:?} handoff_ms={handoff:?}",
            outcome.unwrap_or_default()
        );
    }

    // A clean stop: sessions closed, honeypots stopped, the store flushed.
    assert!(farm.stop().success(), "{}", log());
    assert!(log().contains("honeyfarm: stopped"), "{}", log());
    let left = processes_with(&dir.join("honeypots").display().to_string());
    assert!(left.is_empty(), "honeypot processes left: {left:?}");
    let n: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM connections WHERE outcome IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 9);
}

#[test]
fn a_honeypot_that_fails_to_start_is_a_clear_event() {
    let (dir, _cleanup) = test_dir("honeyfarm-farm-broken");
    // The shipped script: srvinfo deviates from it at the pipe it opens.
    ship_script(&dir);
    let listen = "127.0.0.78:4462";
    let config = farm_config(
        &dir,
        listen,
        r#"["sh", "-c", "echo no such honeypot image >&2; exit 3"]"#,
        &["127.0.0.10:4463", "127.0.0.11:4463"],
        0,
    );
    let (farm, _log) = start_farm(&dir, &config);
    let db = dir.join("events.sqlite");
    let out = rpcclient("127.0.0.78", 4462, "srvinfo");
    assert!(out.contains("NT_STATUS"), "{out}");
    let (outcome, at, _, _, detail) = ended(&db, 1);
    assert_eq!(outcome, "handoff_failed", "{detail}");
    assert!(at.is_some());
    assert!(
        detail.contains("exited before accepting connections")
            && detail.contains("no such honeypot image"),
        "{detail}"
    );
    // Scripted clients are still served.
    let users = rpcclient("127.0.0.78", 4462, "enumdomusers");
    assert!(users.contains("user:[alice]"), "{users}");
    ends(&db, 2, "scripted");
    assert!(farm.stop().success());
}

/// An SMB1 ECHO request (MS-CIFS 2.2.4.39), behind its NetBIOS session header.
fn echo_request() -> Vec<u8> {
    let mut smb = vec![0xff, b'S', b'M', b'B', 0x2b, 0, 0, 0, 0, 0x18, 0x01, 0xc8];
    smb.extend_from_slice(&[0; 12]); // PID high, signature, reserved
    smb.extend_from_slice(&[0xff, 0xff, 0x34, 0x12, 0, 0, 0x40, 0]); // TID, PID, UID, MID
    smb.extend_from_slice(&[1, 1, 0, 4, 0]); // WordCount, EchoCount, ByteCount
    smb.extend_from_slice(b"ping");
    let mut out = vec![0, 0, 0, smb.len() as u8];
    out.extend_from_slice(&smb);
    out
}

/// Reads one FTP reply (every line of a multi-line one).
fn read_ftp_reply(r: &mut std::io::BufReader<TcpStream>) -> String {
    use std::io::BufRead;
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            return all;
        }
        all.push_str(&line);
        let b = line.as_bytes();
        if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
            return all;
        }
    }
}

#[test]
fn ftp_is_answered_from_a_corpus_script_with_the_telescope_address() {
    let (dir, _cleanup) = test_dir("honeyfarm-farm-ftp");
    let pcap = root().join("tests/data/captures/zeek_ftp_ipv4.pcap");
    let script = dir.join("scripts/netbsd-ftp.json");
    honeyfarm(&[
        "script",
        "import",
        "--pcap",
        pcap.to_str().unwrap(),
        "--out",
        script.to_str().unwrap(),
    ]);
    let config = dir.join("farm.toml");
    std::fs::write(
        &config,
        format!(
            "[events]\npath = \"{d}/events.sqlite\"\n[scripts]\ndirs = [\"{d}/scripts\"]\n[[listen]]\naddress = \"127.0.0.79:2121\"\nservice = \"ftp\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let (farm, _log) = start_farm(&dir, &config);
    let requests: Vec<Vec<u8>> = script_messages(&script, "client");
    let conn = TcpStream::connect("127.0.0.79:2121").unwrap();
    let mut w = conn.try_clone().unwrap();
    let mut r = std::io::BufReader::new(conn);
    // The banner first: the server speaks first in this script.
    let banner = read_ftp_reply(&mut r);
    assert!(
        banner.starts_with("220 ") && banner.contains("ftp.NetBSD.org"),
        "{banner}"
    );
    let mut last = String::new();
    // USER, PASS, SYST, PASV as recorded.
    for req in &requests[..4] {
        w.write_all(req).unwrap();
        last = read_ftp_reply(&mut r);
    }
    // The recorded server address became the telescope address; Python's ftplib agrees.
    let py = Command::new("python3")
        .args([
            "-c",
            "import ftplib, sys; print('%s %d' % ftplib.parse227(sys.argv[1].strip()))",
            &last,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        "127.0.0.79 56666",
        "{last} {}",
        String::from_utf8_lossy(&py.stderr)
    );
    // The script goes on with LIST: QUIT deviates, and FTP has no honeypots here.
    w.write_all(b"QUIT\r\n").unwrap();
    let rest = read_ftp_reply(&mut r);
    assert_eq!(rest, "", "the farm closes the connection");
    let db = dir.join("events.sqlite");
    let (outcome, at, _, _, detail) = ended(&db, 1);
    assert_eq!(
        (outcome.as_str(), at),
        ("handoff_failed", Some(4)),
        "{detail}"
    );
    assert!(
        detail.contains("no honeypots are configured for ftp"),
        "{detail}"
    );
    assert!(farm.stop().success());
}

#[test]
fn a_honeypot_of_another_name_is_heard_under_the_scripts_name() {
    let (dir, _cleanup) = test_dir("honeyfarm-farm-names");
    // Recorded from FILESRV01.
    ship_script(&dir);
    let script = root().join("scripts/samba-honeypot.sh");
    let command = format!(
        r#"["env", "HONEYPOT_NAME=HONEYPOT7", "{}", "{{dir}}", "{{address}}", "{{port}}"]"#,
        script.display()
    );
    let config = farm_config(&dir, "127.0.0.80:4465", &command, &["127.0.0.15:4466"], 1);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "keep = true",
        "keep = true\nnames = [[\"FILESRV01\", \"HONEYPOT7\"]]",
    );
    std::fs::write(&config, text).unwrap();
    let (farm, farm_log) = start_farm(&dir, &config);
    wait_log(&farm_log, "honeypot pool warm");
    // srvinfo deviates at the pipe it opens and is bridged to HONEYPOT7, which names itself in
    // NetrServerGetInfo; the attacker hears FILESRV01, as from the script.
    let out = rpcclient("127.0.0.80", 4465, "srvinfo");
    assert!(
        out.contains("FILESRV01") && !out.contains("HONEYPOT7"),
        "{out}\n{}",
        std::fs::read_to_string(&farm_log).unwrap_or_default()
    );
    let db = dir.join("events.sqlite");
    ends(&db, 1, "bridged");
    // What the honeypot itself said, before the names were mapped back.
    let c = rusqlite::Connection::open(&db).unwrap();
    let relayed: String = c
        .query_row(
            "SELECT group_concat(roles, char(10)) FROM messages WHERE connection = 1 AND source = 'relayed' AND direction = 'to_client'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(relayed.contains("@hostname=\"FILESRV01\""), "{relayed}");
    assert!(farm.stop().success());
}

/// The DNS host name a server gives in its NTLMSSP challenge (impacket's anonymous login).
fn dns_host_name(addr: &str, port: u16) -> String {
    let py = format!(
        "from impacket.smbconnection import SMBConnection\n\
         c = SMBConnection('{addr}', '{addr}', sess_port={port})\n\
         c.login('', '')\n\
         print(c.getServerDNSHostName())\n"
    );
    common::output_ok(Command::new("python3").args(["-c", &py]), "impacket login")
        .trim()
        .to_string()
}

/// Every honeypot shows the same ordinary server: the shares of a Windows server (IPC$, ADMIN$,
/// C$) and `public`, at paths that name nothing of the farm (not its directory, not the words
/// honeyfarm or honeypot, not its address), under the host name of the machine the scripts
/// were recorded on (not this one's); ADMIN$ takes a worm's file into system32.
#[test]
fn honeypots_show_one_ordinary_identity() {
    let (dir, _cleanup) = test_dir("honeyfarm-identity");
    let script = root().join("scripts/samba-honeypot.sh");
    let port = 4467;
    let worm = dir.join("worm.exe");
    std::fs::write(&worm, b"MZ\x90\x00 a worm's body").unwrap();
    let mut shown = Vec::new();
    for addr in ["127.0.0.31", "127.0.0.32"] {
        // Where the farm's process backend would put it.
        let home = dir.join(format!("honeypots/honeypot-{addr}-{port}"));
        let honeypot = Group::spawn(
            Command::new("bash")
                .arg(&script)
                .arg(&home)
                .arg(addr)
                .arg(port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_file(&home.join("ready"));
        let all = rpcclient(addr, port, "netshareenumall");
        let info = rpcclient(
            addr,
            port,
            "netsharegetinfo public; netsharegetinfo ADMIN$; netsharegetinfo C$",
        );
        for share in ["IPC$", "ADMIN$", "C$", "public"] {
            assert!(all.contains(&format!("netname: {share}\n")), "{all}");
        }
        // The recorded machine's host name (NTLMSSP's DNS computer name), not this one's.
        assert_eq!(dns_host_name(addr, port), "vm");
        for path in [
            r"C:\srv\samba\public",
            r"C:\srv\samba\Windows",
            r"C:\srv\samba",
        ] {
            assert!(info.contains(&format!("path:\t{path}\n")), "{info}");
        }
        let home_text = home.display().to_string();
        let home_windows = format!("C:{home_text}").replace('/', "\\");
        for tell in ["honeyfarm", "honeypot", addr, &home_text, &home_windows] {
            for text in [&all, &info] {
                assert!(
                    !text.to_lowercase().contains(&tell.to_lowercase()),
                    "{tell} shown:\n{text}"
                );
            }
        }
        let put = smbclient(
            addr,
            port,
            "ADMIN$",
            &["-c", &format!(r"put {} system32\x.exe", worm.display())],
        );
        assert_eq!(
            std::fs::read(home.join("drive/Windows/system32/x.exe")).ok(),
            std::fs::read(&worm).ok(),
            "{put}"
        );
        shown.push((all, info));
        assert!(honeypot.stop().success());
    }
    assert_eq!(shown[0], shown[1], "two honeypots, two identities");
}

/// `count` deviating rpcclient commands (`srvinfo`), one a second, through a farm on `listen`
/// whose pool has these honeypot addresses and keeps `warm` started; each must be bridged.
/// Returns each connection's handoff time (ms).
fn one_command_a_second(
    name: &str,
    listen: SocketAddr,
    count: u64,
    honeypots: &[&str],
    warm: usize,
) -> Vec<f64> {
    let (dir, _cleanup) = test_dir(name);
    // srvinfo deviates from the shipped script at the pipe it opens.
    ship_script(&dir);
    let script = root().join("scripts/samba-honeypot.sh");
    let command = format!(
        r#"["{}", "{{dir}}", "{{address}}", "{{port}}"]"#,
        script.display()
    );
    let config = farm_config(&dir, &listen.to_string(), &command, honeypots, warm);
    let (farm, farm_log) = start_farm(&dir, &config);
    wait_log(&farm_log, "honeypot pool warm");
    let runs: Vec<_> = (0..count)
        .map(|i| {
            std::thread::sleep(Duration::from_secs(u64::from(i > 0)));
            std::thread::spawn(move || {
                rpcclient(&listen.ip().to_string(), listen.port(), "srvinfo")
            })
        })
        .collect();
    let outs: Vec<String> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    let db = dir.join("events.sqlite");
    let mut handoffs = Vec::new();
    for (n, out) in outs.iter().enumerate() {
        assert!(out.contains("FILESRV01"), "command {n}: {out}");
        let (outcome, _, _, handoff, detail) = ended(&db, n as i64 + 1);
        assert_eq!(outcome, "bridged", "connection {}: {detail}", n + 1);
        handoffs.push(handoff.unwrap_or_default());
    }
    assert!(farm.stop().success());
    handoffs
}

/// One deviating rpcclient command a second (issue 10): the pool of the default configuration
/// (three addresses, two warm) replaces each used honeypot in the background and every
/// command is bridged; none fails for want of a honeypot.
#[test]
fn a_deviating_command_a_second_is_always_bridged() {
    let honeypots = ["127.0.0.41:4470", "127.0.0.42:4470", "127.0.0.43:4470"];
    let listen = "127.0.0.81:4469".parse().unwrap();
    let handoffs = one_command_a_second("honeyfarm-farm-burst", listen, 5, &honeypots, 2);
    eprintln!("handoff times (ms): {handoffs:?}");
}

/// The pool under one deviating command a second for a minute, with the default pool (3
/// addresses, 2 warm) and a larger one (6, 3): handoff time percentiles, every command bridged.
/// Slow (two minutes): `cargo test --test farm -- --ignored pool_for_a_minute --nocapture`.
#[test]
#[ignore]
fn pool_for_a_minute() {
    let all = [
        "127.0.0.51:4478",
        "127.0.0.52:4478",
        "127.0.0.53:4478",
        "127.0.0.54:4478",
        "127.0.0.55:4478",
        "127.0.0.56:4478",
    ];
    let listen = "127.0.0.85:4477".parse().unwrap();
    for (addresses, warm) in [(3, 2), (6, 3)] {
        let mut h =
            one_command_a_second("honeyfarm-farm-minute", listen, 60, &all[..addresses], warm);
        h.sort_by(f64::total_cmp);
        let at = |p: usize| h[(h.len() - 1) * p / 100];
        eprintln!(
            "{addresses} addresses, {warm} warm: 60 commands bridged, handoff ms p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}",
            at(50),
            at(90),
            at(99),
            h[h.len() - 1]
        );
    }
}

/// Test dir `name` with the shipped script and those `add` puts in its `scripts/`, and a farm
/// on `listen` whose honeypot (on `honeypot`) cannot start: a deviation fails its handoff, so
/// only scripts answer. The dir, its cleanup, the farm and its event store.
fn scripts_only_farm(
    name: &str,
    listen: &str,
    honeypot: &str,
    add: impl FnOnce(&Path),
) -> (PathBuf, Cleanup, Group, PathBuf) {
    let (dir, cleanup) = test_dir(name);
    ship_script(&dir);
    add(&dir);
    let config = farm_config(&dir, listen, r#"["sh", "-c", "exit 3"]"#, &[honeypot], 0);
    let farm = start_farm(&dir, &config).0;
    let db = dir.join("events.sqlite");
    (dir, cleanup, farm, db)
}

/// Two scripts that begin alike (issue 10): rpcclient's enumdomusers and its getdompwinfo
/// dialog (`tests/data/samba/samr-pwinfo.pcap`) open with the same requests; through the farm
/// each is served from its own script, no honeypot needed.
#[test]
fn two_scripts_that_begin_alike_both_serve_through_the_farm() {
    let import = |dir: &Path| {
        let pcap = root().join("tests/data/samba/samr-pwinfo.pcap");
        let out = dir.join("scripts/samba-pwinfo.json");
        honeyfarm(&[
            "script",
            "import",
            "--pcap",
            &pcap.display().to_string(),
            "--port",
            "4497=smb",
            "--out",
            &out.display().to_string(),
        ]);
    };
    let (_dir, _cleanup, farm, db) = scripts_only_farm(
        "honeyfarm-farm-alike",
        "127.0.0.82:4471",
        "127.0.0.44:4472",
        import,
    );
    let commands = "getdompwinfo; getusrdompwinfo 1000; queryusergroups 1000";
    let pw = rpcclient("127.0.0.82", 4471, commands);
    let recorded =
        std::fs::read_to_string(root().join("tests/data/samba/samr-pwinfo.out")).unwrap();
    for line in ["min_password_length: 5", "group rid:[0x201] attr:[0x7]"] {
        assert!(pw.contains(line) && recorded.contains(line), "{pw}");
    }
    ends(&db, 1, "scripted");
    let users = rpcclient("127.0.0.82", 4471, "enumdomusers");
    assert!(users.contains("user:[alice]"), "{users}");
    ends(&db, 2, "scripted");
    assert!(farm.stop().success());
}

/// A script recorded on another machine (issue 10): its domain SID is not the honeypot's, and
/// the SID is part of the replayed prefix (LookupDomain, OpenDomain); the handoff pairs the
/// two SIDs and the bridge maps them, so `enumdomusers; querydominfo` is bridged.
#[test]
fn a_script_of_another_domain_bridges_to_a_honeypot() {
    let (dir, _cleanup) = test_dir("honeyfarm-farm-domain");
    let shipped = Script::load(
        &root().join("protocols/scripts/samba-enumdomusers.json"),
        &|name| REGISTRY.iter().find(|e| e.name == name),
    )
    .unwrap();
    let (other, _) = common::of_another_domain(&shipped);
    other.save(&dir.join("scripts/other-domain.json")).unwrap();
    let script = root().join("scripts/samba-honeypot.sh");
    let command = format!(
        r#"["{}", "{{dir}}", "{{address}}", "{{port}}"]"#,
        script.display()
    );
    let config = farm_config(&dir, "127.0.0.83:4473", &command, &["127.0.0.45:4474"], 1);
    let (farm, farm_log) = start_farm(&dir, &config);
    wait_log(&farm_log, "honeypot pool warm");
    let out = rpcclient("127.0.0.83", 4473, "enumdomusers; querydominfo");
    assert!(
        out.contains("user:[alice]") && out.contains("Total Users:\t2"),
        "{out}"
    );
    let db = dir.join("events.sqlite");
    ends(&db, 1, "bridged");
    assert!(farm.stop().success());
}

/// impacket's samrdump calls (issue 10: every impacket client was bridged at its first
/// message): answered from the shipped `impacket-samrdump.json`, no honeypot needed.
#[test]
fn impacket_samrdump_is_served_from_its_script() {
    let copy = |dir: &Path| {
        let name = "impacket-samrdump.json";
        std::fs::copy(
            root().join("protocols/scripts").join(name),
            dir.join("scripts").join(name),
        )
        .unwrap();
    };
    let (_dir, _cleanup, farm, db) = scripts_only_farm(
        "honeyfarm-farm-impacket",
        "127.0.0.84:4475",
        "127.0.0.46:4476",
        copy,
    );
    let out = Command::new("python3")
        .arg(root().join("tests/data/samba/impacket-samrdump.py"))
        .args(["127.0.0.84", "4475"])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let recorded =
        std::fs::read_to_string(root().join("tests/data/samba/impacket-samrdump.out")).unwrap();
    assert_eq!(text, recorded, "{}", String::from_utf8_lossy(&out.stderr));
    ends(&db, 1, "scripted");
    assert!(farm.stop().success());
}

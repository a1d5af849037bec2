//! The FTP battery, after ftpmap: TYPE A/X/C, CWD without argument, PORT and ALLO with
//! negative numbers, EPRT/EPSV, SYST, FEAT, HELP, STAT, SITE commands and unknown verbs before
//! and after login; anonymous and failed logins; LIST, NLST, RETR and STOR over passive data
//! connections. The server's root listing and its files become the personality's file tree.
//! Each probe is its own connection, after the commands that reach its state; sent twice.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::dynamic::{merge, templatize, Known};
use super::smtp::reply_complete;
use super::{Probe, Progress, ScanError, ScanOptions};
use crate::emulate::line::{classes, Command};
use crate::emulate::personality::{Action, FileEntry, Personality, Protocol, Rule, ANY};

const REACH: &[(&str, &[&str])] = &[
    ("start", &[]),
    ("user-anon", &["USER anonymous"]),
    ("user-other", &["USER nosuchuser9"]),
    ("login", &["USER anonymous", "PASS {pass}"]),
    ("data", &["USER anonymous", "PASS {pass}", "PASV"]),
];

const ANYWHERE: &[&str] = &[
    "SYST",
    "FEAT",
    "HELP",
    "STAT",
    "SITE HELP",
    "QWERTY",
    "NOOP",
    "PWD",
    "TYPE A",
    "TYPE X",
    "TYPE C",
    "CWD",
    "PORT -1,0,0,1,0,20",
    "ALLO -1",
    "EPSV",
    "EPRT |9|x|1|",
    "LIST",
    "QUIT",
];
const START: &[&str] = &[
    "USER anonymous",
    "USER nosuchuser9",
    "PASS {pass}",
    "AUTH TLS",
];
const USER: &[&str] = &["PASS {pass}", "PASS wrong9"];
const LOGIN: &[&str] = &[
    "TYPE I",
    "CWD /",
    "CWD nosuchdir9",
    "CDUP",
    "MODE S",
    "STRU F",
    "SIZE {file}",
    "SIZE nosuchfile9",
    "MDTM nosuchfile9",
    "RETR nosuchfile9",
    "DELE nosuchfile9",
    "SITE CHMOD 777 nosuchfile9",
    "REST 0",
    "PASV",
    "{port}",
    "{eprt}",
];
const DATA: &[&str] = &["{list}", "{nlst}", "{retr}", "{stor}"];

/// The verb standing for every verb the server does not know.
const UNKNOWN: &str = "QWERTY";

fn probes(state: &str) -> Vec<&'static str> {
    let own: &[&str] = match state {
        "start" => START,
        "user-anon" | "user-other" => USER,
        "login" => LOGIN,
        _ => DATA,
    };
    own.iter().chain(ANYWHERE).copied().collect()
}

pub fn battery_len() -> usize {
    REACH.iter().map(|(s, _)| probes(s).len()).sum::<usize>() + 1
}

/// The state after a reply, as FTP defines it.
fn next(state: &str, cmd: &Command, reply: &str) -> Option<&'static str> {
    let ok = reply.starts_with(['2', '3']);
    match cmd.verb.as_str() {
        "USER" if ok && cmd.arg.eq_ignore_ascii_case("anonymous") => Some("user-anon"),
        "USER" if ok => Some("user-other"),
        "PASS" if reply.starts_with("230") => Some("login"),
        "PASS" if state.starts_with("user") => Some("start"),
        "PASV" | "EPSV" | "PORT" | "EPRT" if ok && state != "start" => Some("data"),
        "LIST" | "NLST" | "RETR" | "STOR" if ok && state == "data" => Some("login"),
        _ => None,
    }
}

fn action(verb: &str) -> Option<Action> {
    match verb {
        "PASV" | "EPSV" => Some(Action::Passive),
        "PORT" | "EPRT" => Some(Action::Active),
        "LIST" => Some(Action::List),
        "NLST" => Some(Action::NameList),
        "RETR" => Some(Action::Retrieve),
        "STOR" => Some(Action::Store),
        _ => None,
    }
}

/// The data endpoint a PASV reply announces.
fn pasv_endpoint(reply: &str) -> Option<std::net::SocketAddr> {
    let inner = reply.split('(').nth(1)?.split(')').next()?;
    crate::emulate::ftp::host_port(inner)
}

/// PASV's endpoint and EPSV's port as placeholders.
fn data_placeholders(t: String) -> String {
    let t = match (t.find("Passive Mode ("), t.find(')')) {
        (Some(a), Some(b)) if a < b => {
            format!("{}Passive Mode ({{pasv-endpoint}}{}", &t[..a], &t[b..])
        }
        _ => t,
    };
    match (t.find("(|||"), t.rfind("|)")) {
        (Some(a), Some(b)) if a + 4 <= b => format!("{}(|||{{data-port}}{}", &t[..a], &t[b..]),
        _ => t,
    }
}

/// One connection's session with the server.
struct Session<'a> {
    o: &'a ScanOptions,
    c: Probe,
    peer: String,
    pass: String,
    file: String,
    upload: String,
    /// The last PASV endpoint.
    data_at: Option<std::net::SocketAddr>,
}

impl Session<'_> {
    fn template(&self, reply: &[u8], arg: &str, size: Option<usize>) -> String {
        let address = self.o.target.ip().to_string();
        let known = Known {
            arg,
            hostname: &self.o.hostname,
            address: &address,
            peer: &self.peer,
        };
        let mut t = data_placeholders(templatize(reply, &known));
        if let Some(n) = size {
            t = t.replace(&format!("({n} bytes)"), "({size} bytes)");
        }
        t
    }

    fn fill(&self, t: &str) -> String {
        let port = self.c.local_ip().replace('.', ",");
        let eprt = format!("EPRT |1|{}|2000|", self.c.local_ip());
        match t {
            "{port}" => format!("PORT {port},7,208"),
            "{eprt}" => eprt,
            "{list}" => "LIST".into(),
            "{nlst}" => "NLST".into(),
            "{retr}" => format!("RETR {}", self.file),
            "{stor}" => format!("STOR {}", self.upload),
            t => t
                .replace("{pass}", &self.pass)
                .replace("{file}", &self.file),
        }
    }

    /// One command; for a transfer, its data too. The rule and the data read.
    async fn exchange(&mut self, state: &str, template: &str) -> (Rule, Vec<u8>) {
        let line = self.fill(template);
        let cmd = Command::parse(&line);
        let transfer = matches!(cmd.verb.as_str(), "LIST" | "NLST" | "RETR" | "STOR");
        let data = match (transfer, self.data_at) {
            (true, Some(at)) => self.connect_data(at).await,
            _ => None,
        };
        let x = self
            .c
            .send(format!("{line}\r\n").as_bytes(), reply_complete)
            .await;
        let mut got = Vec::new();
        let mut done = None;
        if let (Some(mut d), true) = (data, x.reply.starts_with(b"1")) {
            if cmd.verb == "STOR" {
                let _ = d.write_all(b"uploaded by the scan\r\n").await;
                drop(d);
            } else {
                let _ = d.read_to_end(&mut got).await;
            }
            let end = self.c.send(b"", reply_complete).await;
            done = Some(self.template(&end.reply, &cmd.arg, Some(got.len())));
        }
        if cmd.verb == "PASV" {
            self.data_at = pasv_endpoint(&String::from_utf8_lossy(&x.reply));
        }
        let size = (cmd.verb == "RETR").then_some(got.len());
        let reply = self.template(&x.reply, &cmd.arg, size);
        let args = classes(Protocol::Ftp, &cmd, &self.o.hostname, &[self.entry()]);
        let verb = if cmd.verb == UNKNOWN {
            ANY.to_string()
        } else {
            cmd.verb.clone()
        };
        let to = next(state, &cmd, &reply);
        let rule = Rule {
            state: state.into(),
            command: verb.clone(),
            arg: args[0].clone(),
            version: ANY.into(),
            next: to.map(String::from),
            close: x.closed,
            action: action(&verb),
            done,
            reply,
        };
        (rule, got)
    }

    /// A data connection from the control connection's own address (servers refuse others).
    async fn connect_data(&self, at: std::net::SocketAddr) -> Option<TcpStream> {
        let ip: std::net::IpAddr = self.peer.parse().ok()?;
        let s = match ip {
            std::net::IpAddr::V4(_) => TcpSocket::new_v4(),
            std::net::IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .ok()?;
        s.bind(std::net::SocketAddr::new(ip, 0)).ok()?;
        s.connect(at).await.ok()
    }

    /// The scanned file, as the classes see it.
    fn entry(&self) -> FileEntry {
        FileEntry {
            name: self.file.clone(),
            content: String::new(),
            listing: String::new(),
        }
    }
}

async fn session<'a>(
    o: &'a ScanOptions,
    n: usize,
    file: &str,
) -> Result<(Session<'a>, Vec<u8>), ScanError> {
    let mut c = Probe::connect(o).await?;
    let banner = c.send(b"", reply_complete).await.reply;
    Ok((
        Session {
            o,
            peer: c.local_ip(),
            c,
            pass: format!("scan{n}@example.net"),
            file: file.to_string(),
            upload: format!(
                "incoming/upload{n}-{}.txt",
                crate::emulate::serve::fresh() % 100_000
            ),
            data_at: None,
        },
        banner,
    ))
}

/// Runs one probe: the commands reaching its state, then it; every exchange as a rule.
async fn run_probe(
    o: &ScanOptions,
    reach: &[&str],
    probe: &str,
    n: usize,
    file: &str,
) -> Result<Vec<(Rule, Vec<u8>)>, ScanError> {
    let (mut s, _) = session(o, n, file).await?;
    let mut at = "start".to_string();
    let mut seen = Vec::new();
    for t in reach.iter().chain([&probe]) {
        let (rule, data) = s.exchange(&at, t).await;
        if let Some(to) = &rule.next {
            at = to.clone();
        }
        let closed = rule.close;
        seen.push((rule, data));
        if closed {
            break;
        }
    }
    Ok(seen)
}

/// The server's root listing as the file tree, each file's content retrieved.
async fn file_tree(o: &ScanOptions) -> Result<Vec<FileEntry>, ScanError> {
    let login = ["USER anonymous", "PASS {pass}", "PASV"];
    let seen = run_probe(o, &login, "{list}", 0, "").await?;
    let listing = seen
        .last()
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    let mut files = Vec::new();
    for line in listing.lines().filter(|l| !l.is_empty()) {
        let name = line.split_whitespace().last().unwrap_or("").to_string();
        let content = if line.starts_with('-') {
            let got = run_probe(o, &login, "{retr}", 0, &name).await?;
            got.last()
                .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
                .unwrap_or_default()
        } else {
            String::new()
        };
        files.push(FileEntry {
            name,
            content,
            listing: line.to_string(),
        });
    }
    Ok(files)
}

/// Scans the file tree, then runs the battery twice and adds a rule per exchange.
pub async fn scan(
    o: &ScanOptions,
    per: &mut Personality,
    bar: &mut Progress,
) -> Result<(), ScanError> {
    bar.step("file tree");
    per.files = file_tree(o).await?;
    let file = per
        .files
        .iter()
        .find(|f| f.listing.starts_with('-'))
        .map_or(String::new(), |f| f.name.clone());
    let (_, banner) = session(o, 1, &file).await?;
    per.banner = Some(templatize(
        &banner,
        &Known {
            hostname: &o.hostname,
            ..Known::default()
        },
    ));
    for (state, reach) in REACH {
        for probe in probes(state) {
            bar.step(&format!("{state}: {probe}"));
            let a = run_probe(o, reach, probe, 1, &file).await?;
            let b = run_probe(o, reach, probe, 2, &file).await?;
            for (i, (mut rule, _)) in a.into_iter().enumerate() {
                if let Some((other, _)) = b.get(i).filter(|(r, _)| r.state == rule.state) {
                    rule.reply = merge(&rule.reply, &other.reply);
                }
                per.add_rule(rule);
            }
        }
    }
    Ok(())
}

//! The FTP battery, after ftpmap: TYPE A/X/C, CWD without argument, PORT and ALLO with
//! negative numbers, EPRT/EPSV, SYST, FEAT, HELP, STAT, SITE commands and unknown verbs before
//! and after login; anonymous and failed logins; CWD/XCWD into a directory and a missing one,
//! LIST, NLST, RETR, STOR, APPE and STOU over passive data connections; the replies that
//! depend on the transfer type once more in TYPE I. The anonymous area is walked before
//! (the tree the classes see) and after the battery (the tree served: directories' times after
//! the scan's uploads, and how an upload is listed). Each probe is its own connection, after
//! the commands that reach its state; sent twice.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::dynamic::{merge, templatize, Known};
use super::smtp::reply_complete;
use super::{Probe, Progress, ScanError, ScanOptions};
use crate::emulate::ftp;
use crate::emulate::line::Command;
use crate::emulate::personality::{Action, FileEntry, Personality, Rule, ANY};

const LOGGED_IN: &[&str] = &["USER anonymous", "PASS {pass}"];

/// Each state's commands that reach it, its own probes, and whether the probes of every
/// state are sent there too. The last two repeat the logged-in states in TYPE I.
const REACH: &[(&str, &[&str], &[&str], bool)] = &[
    ("start", &[], START, true),
    ("user-anon", &["USER anonymous"], USER, true),
    ("user-other", &["USER nosuchuser9"], USER, true),
    ("login", LOGGED_IN, LOGIN, true),
    (
        "data",
        &["USER anonymous", "PASS {pass}", "PASV"],
        DATA,
        true,
    ),
    (
        "login",
        &["USER anonymous", "PASS {pass}", "TYPE I"],
        TYPED,
        false,
    ),
    (
        "data",
        &["USER anonymous", "PASS {pass}", "TYPE I", "PASV"],
        TYPED_DATA,
        false,
    ),
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
    "CWD {dir}",
    "XCWD nosuchdir9",
    "XPWD",
    "XCUP",
    "MDTM {file}",
    "TYPE L 8",
    "TYPE E",
    "TYPE A N",
];
const DATA: &[&str] = &[
    "{list}",
    "{nlst}",
    "{retr}",
    "{stor}",
    "LIST {dir}",
    "NLST {dir}",
    "LIST nosuchdir9",
    "NLST {file}",
    "RETR nosuchfile9",
    "APPE {upload}",
    "STOU",
];
/// What may answer otherwise in TYPE I.
const TYPED: &[&str] = &["STAT", "SIZE {file}", "LIST", "TYPE A"];
const TYPED_DATA: &[&str] = &["{list}", "{nlst}", "{retr}", "STAT"];

/// The verb standing for every verb the server does not know.
const UNKNOWN: &str = "QWERTY";

fn probes(own: &[&'static str], anywhere: bool) -> Vec<&'static str> {
    let all: &[&str] = if anywhere { ANYWHERE } else { &[] };
    own.iter().chain(all).copied().collect()
}

pub fn battery_len() -> usize {
    REACH
        .iter()
        .map(|(_, _, own, all)| probes(own, *all).len())
        .sum::<usize>()
        + 2
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
        // A transfer, done or refused, uses up the data connection set up.
        "LIST" | "NLST" | "RETR" | "STOR" | "APPE" | "STOU" if state == "data" => Some("login"),
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
        "STOR" | "APPE" | "STOU" => Some(Action::Store),
        "TYPE" => Some(Action::Type),
        "CWD" | "XCWD" | "CDUP" | "XCUP" => Some(Action::ChangeDir),
        _ => None,
    }
}

/// The data endpoint a PASV reply announces.
fn pasv_endpoint(reply: &str) -> Option<std::net::SocketAddr> {
    let inner = reply.split('(').nth(1)?.split(')').next()?;
    crate::emulate::ftp::host_port(inner)
}

/// PASV's endpoint and EPSV's port as placeholders (EPSV's `Extended Passive Mode (|||p|)`
/// is not a PASV endpoint).
fn data_placeholders(t: String) -> String {
    let t = match (t.find("Passive Mode ("), t.find(')')) {
        (Some(a), Some(b)) if a < b && !t.contains("(|||") => {
            format!("{}Passive Mode ({{pasv-endpoint}}{}", &t[..a], &t[b..])
        }
        _ => t,
    };
    match (t.find("(|||"), t.rfind("|)")) {
        (Some(a), Some(b)) if a + 4 <= b => format!("{}(|||{{data-port}}{}", &t[..a], &t[b..]),
        _ => t,
    }
}

/// What the battery's probes name: a file and a directory of the tree, and the tree.
#[derive(Debug, Default)]
struct Scanned {
    file: String,
    dir: String,
    tree: Vec<FileEntry>,
}

/// Splits off what follows a preliminary (1xx) reply: a small transfer's closing reply may
/// come in the same read.
fn preliminary(reply: &mut Vec<u8>) -> Option<Vec<u8>> {
    if !reply.starts_with(b"1") || reply.get(3) != Some(&b' ') {
        return None;
    }
    let end = reply.windows(2).position(|w| w == b"\r\n")? + 2;
    (end < reply.len()).then(|| reply.split_off(end))
}

/// One connection's session with the server.
struct Session<'a> {
    o: &'a ScanOptions,
    at: &'a Scanned,
    c: Probe,
    peer: String,
    pass: String,
    upload: String,
    /// The last PASV endpoint.
    data_at: Option<std::net::SocketAddr>,
    /// The transfer type and working directory, as the server's replies set them.
    ftp: ftp::Session,
    /// The last reply, as sent.
    last: String,
}

impl Session<'_> {
    fn template(&self, verb: &str, reply: &[u8], arg: &str, size: Option<usize>) -> String {
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
        let code = |c: &str| t.starts_with(c) && t.ends_with("\r\n") && !t.contains('-');
        match verb {
            "PWD" | "XPWD" => t.replacen(&format!("\"{}\"", self.ftp.cwd), "\"{cwd}\"", 1),
            "SIZE" if code("213 ") => "213 {size}\r\n".into(),
            "MDTM" if code("213 ") => "213 {mtime}\r\n".into(),
            _ => t,
        }
    }

    fn fill(&self, t: &str) -> String {
        let port = self.c.local_ip().replace('.', ",");
        let eprt = format!("EPRT |1|{}|2000|", self.c.local_ip());
        match t {
            "{port}" => format!("PORT {port},7,208"),
            "{eprt}" => eprt,
            "{list}" => "LIST".into(),
            "{nlst}" => "NLST".into(),
            "{retr}" => format!("RETR {}", self.at.file),
            "{stor}" => format!("STOR {}", self.upload),
            t => t
                .replace("{pass}", &self.pass)
                .replace("{file}", &self.at.file)
                .replace("{dir}", &self.at.dir)
                .replace("{upload}", &self.upload),
        }
    }

    /// One command; for a transfer, its data too. The rule and the data read.
    async fn exchange(&mut self, state: &str, template: &str) -> (Rule, Vec<u8>) {
        let line = self.fill(template);
        let cmd = Command::parse(&line);
        let transfer = matches!(
            cmd.verb.as_str(),
            "LIST" | "NLST" | "RETR" | "STOR" | "APPE" | "STOU"
        );
        let data = match (transfer, self.data_at) {
            (true, Some(at)) => self.connect_data(at).await,
            _ => None,
        };
        let mut x = self
            .c
            .send(format!("{line}\r\n").as_bytes(), reply_complete)
            .await;
        let early = preliminary(&mut x.reply);
        let mut got = Vec::new();
        let mut done = None;
        if let (Some(mut d), true) = (data, x.reply.starts_with(b"1")) {
            if matches!(cmd.verb.as_str(), "STOR" | "APPE" | "STOU") {
                let _ = d.write_all(b"uploaded by the scan\r\n").await;
                drop(d);
            } else {
                let _ = d.read_to_end(&mut got).await;
                // Closed at once: ProFTPD lingers until the client closes before its 226.
                drop(d);
            }
            let end = match early {
                Some(end) => end,
                None => self.c.send(b"", reply_complete).await.reply,
            };
            done = Some(self.template("", &end, &cmd.arg, Some(got.len())));
        }
        if cmd.verb == "PASV" {
            self.data_at = pasv_endpoint(&String::from_utf8_lossy(&x.reply));
        }
        let size = (cmd.verb == "RETR").then_some(got.len());
        let reply = self.template(&cmd.verb, &x.reply, &cmd.arg, size);
        let tree: Vec<&FileEntry> = self.at.tree.iter().collect();
        let args = ftp::classes(&cmd, &tree, &self.ftp.cwd);
        let verb = if cmd.verb == UNKNOWN {
            ANY.to_string()
        } else {
            cmd.verb.clone()
        };
        let to = next(state, &cmd, &reply);
        let version = self.ftp.kind.clone();
        self.last = String::from_utf8_lossy(&x.reply).into_owned();
        self.follow(&cmd, &reply);
        let rule = Rule {
            state: state.into(),
            command: verb.clone(),
            arg: args[0].clone(),
            version,
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

    /// The transfer type and directory after a reply that accepted TYPE, CWD or CDUP.
    fn follow(&mut self, cmd: &Command, reply: &str) {
        if !reply.starts_with('2') {
            return;
        }
        match cmd.verb.as_str() {
            "TYPE" => self.ftp.kind = ftp::transfer_type(&cmd.arg),
            "CWD" | "XCWD" => self.ftp.cwd = ftp::resolve(&self.ftp.cwd, cmd.arg.trim()),
            "CDUP" | "XCUP" => self.ftp.cwd = ftp::resolve(&self.ftp.cwd, ".."),
            _ => {}
        }
    }
}

async fn session<'a>(
    o: &'a ScanOptions,
    n: usize,
    at: &'a Scanned,
) -> Result<(Session<'a>, Vec<u8>), ScanError> {
    let mut c = Probe::connect(o).await?;
    let banner = c.send(b"", reply_complete).await.reply;
    Ok((
        Session {
            o,
            peer: c.local_ip(),
            c,
            at,
            pass: format!("scan{n}@example.net"),
            upload: format!(
                "incoming/upload{n}-{}.txt",
                crate::emulate::serve::fresh() % 100_000
            ),
            data_at: None,
            ftp: ftp::Session::default(),
            last: String::new(),
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
    at: &Scanned,
) -> Result<Vec<(Rule, Vec<u8>)>, ScanError> {
    let (mut s, _) = session(o, n, at).await?;
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

/// Bounds of the walk through the anonymous area.
const MAX_DEPTH: usize = 3;
const MAX_ENTRIES: usize = 64;
/// Larger files are listed but sent empty.
const MAX_CONTENT: usize = 64 * 1024;

/// The anonymous area as the server lists it.
struct Walked {
    tree: Vec<FileEntry>,
    /// RETR in TYPE A sent a file's bare LFs as CRLF.
    ascii_crlf: bool,
}

/// Walks the anonymous area in one session: CWD into each directory and LIST it (bounded
/// depth and count); each file retrieved in TYPE I (up to a bound) and its MDTM time; then a
/// file with bare LFs once more in TYPE A, to see whether the server converts them.
async fn walk(o: &ScanOptions) -> Result<Walked, ScanError> {
    let none = Scanned::default();
    let (mut s, _) = session(o, 0, &none).await?;
    for t in LOGGED_IN.iter().chain(&["TYPE I"]) {
        s.exchange("login", t).await;
    }
    let mut tree: Vec<FileEntry> = Vec::new();
    let mut dirs = vec![("/".to_string(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        s.exchange("login", &format!("CWD {dir}")).await;
        s.exchange("login", "PASV").await;
        let (_, got) = s.exchange("data", "LIST").await;
        let listed = tree.len();
        for line in String::from_utf8_lossy(&got).lines() {
            let Some(name) = ftp::listed_name(line).filter(|n| *n != "." && *n != "..") else {
                continue;
            };
            if tree.len() >= MAX_ENTRIES {
                break;
            }
            let path = ftp::resolve(&dir, name);
            let mut e = FileEntry {
                dir: dir.clone(),
                name: name.to_string(),
                content: String::new(),
                listing: line.to_string(),
                mtime: None,
                nlst: None,
            };
            if line.starts_with('d') && depth + 1 < MAX_DEPTH {
                dirs.push((path.clone(), depth + 1));
            }
            if line.starts_with('-') {
                (e.content, e.mtime) = fetch(&mut s, &path, line).await;
            }
            tree.push(e);
        }
        s.exchange("login", "PASV").await;
        let (_, names) = s.exchange("data", "NLST").await;
        nlst_order(&mut tree[listed..], &String::from_utf8_lossy(&names));
    }
    let ascii_crlf = converts(&mut s, &tree).await;
    Ok(Walked { tree, ascii_crlf })
}

/// Each entry's place among the names NLST sent, if their order is not LIST's (ProFTPD names
/// a directory's files in the order it reads them; vsftpd sorts both, and its entries keep
/// none).
fn nlst_order(entries: &mut [FileEntry], names: &str) {
    let names: Vec<&str> = names.lines().collect();
    let places: Vec<Option<usize>> = entries
        .iter()
        .map(|e| names.iter().position(|n| *n == e.name))
        .collect();
    let found: Vec<usize> = places.iter().flatten().copied().collect();
    if found.windows(2).all(|w| w[0] < w[1]) {
        return;
    }
    for (e, place) in entries.iter_mut().zip(places) {
        e.nlst = place;
    }
}

/// A file's content (if small) and MDTM time.
async fn fetch(s: &mut Session<'_>, path: &str, listing: &str) -> (String, Option<String>) {
    let mut content = String::new();
    if ftp::listed_size(listing).is_some_and(|n| n <= MAX_CONTENT) {
        s.exchange("login", "PASV").await;
        let (_, got) = s.exchange("data", &format!("RETR {path}")).await;
        content = String::from_utf8_lossy(&got).into_owned();
    }
    s.exchange("login", &format!("MDTM {path}")).await;
    let mtime = s
        .last
        .strip_prefix("213 ")
        .map(|m| m.trim_end().to_string());
    (content, mtime)
}

/// Whether RETR in TYPE A sends a file's bare LFs as CRLF (false without such a file).
async fn converts(s: &mut Session<'_>, tree: &[FileEntry]) -> bool {
    let bare = |e: &&FileEntry| e.content.contains('\n') && !e.content.contains("\r\n");
    let Some(f) = tree.iter().find(bare) else {
        return false;
    };
    s.exchange("login", "TYPE A").await;
    s.exchange("login", "PASV").await;
    let path = ftp::resolve(&f.dir, &f.name);
    let (_, got) = s.exchange("data", &format!("RETR {path}")).await;
    got == ftp::to_crlf(f.content.as_bytes())
}

/// Rules scanned in both transfer types: one for any type where the replies agree, else one
/// per type.
fn collapse_types(rules: &mut Vec<Rule>) {
    let key = |r: &Rule| (r.state.clone(), r.command.clone(), r.arg.clone());
    let what = |r: &Rule| (r.reply.clone(), r.done.clone(), r.next.clone(), r.close);
    let agree: Vec<bool> = rules
        .iter()
        .map(|r| {
            rules
                .iter()
                .filter(|o| key(o) == key(r))
                .all(|o| what(o) == what(r))
        })
        .collect();
    let mut out: Vec<Rule> = Vec::new();
    for (mut r, agree) in rules.drain(..).zip(agree) {
        if agree {
            r.version = ANY.into();
        }
        if !out
            .iter()
            .any(|o| key(o) == key(&r) && o.version == r.version)
        {
            out.push(r);
        }
    }
    *rules = out;
}

/// Walks the tree, runs the battery twice and adds a rule per exchange, then walks the tree
/// again: the tree served, with the directories' times after the scan's uploads (not the
/// uploads themselves), and the first upload's line as the model of an upload's.
pub async fn scan(
    o: &ScanOptions,
    per: &mut Personality,
    bar: &mut Progress,
) -> Result<(), ScanError> {
    bar.step("file tree");
    let before = walk(o).await?;
    per.ftp.ascii_crlf = before.ascii_crlf;
    let root = |e: &&FileEntry, kind: char| e.dir == "/" && e.listing.starts_with(kind);
    let name = |kind| {
        before
            .tree
            .iter()
            .find(|e| root(e, kind))
            .map_or(String::new(), |f| f.name.clone())
    };
    let at = Scanned {
        file: name('-'),
        dir: name('d'),
        tree: before.tree.clone(),
    };
    let (_, banner) = session(o, 1, &at).await?;
    per.banner = Some(templatize(
        &banner,
        &Known {
            hostname: &o.hostname,
            ..Known::default()
        },
    ));
    for (state, reach, own, anywhere) in REACH {
        for probe in probes(own, *anywhere) {
            bar.step(&format!("{state}: {probe}"));
            let a = run_probe(o, reach, probe, 1, &at).await?;
            let b = run_probe(o, reach, probe, 2, &at).await?;
            for (i, (mut rule, _)) in a.into_iter().enumerate() {
                if let Some((other, _)) = b.get(i).filter(|(r, _)| r.state == rule.state) {
                    rule.reply = merge(&rule.reply, &other.reply);
                }
                per.add_rule(rule);
            }
        }
    }
    collapse_types(&mut per.rules);
    bar.step("file tree after uploads");
    let after = walk(o).await?;
    let scanned: Vec<&FileEntry> = before.tree.iter().collect();
    let known = |e: &FileEntry| ftp::lookup(&scanned, &ftp::resolve(&e.dir, &e.name)).is_some();
    per.ftp.upload_listing = after
        .tree
        .iter()
        .find(|e| !known(e) && e.name.starts_with("upload") && e.listing.starts_with('-'))
        .map(|e| e.listing.clone());
    per.files = after.tree.into_iter().filter(known).collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nlst_places_only_where_its_order_is_not_lists() {
        let entry = |name: &str| FileEntry {
            dir: "/".into(),
            name: name.into(),
            content: String::new(),
            listing: String::new(),
            mtime: None,
            nlst: None,
        };
        let mut sorted = [entry("README.txt"), entry("incoming")];
        nlst_order(&mut sorted, "README.txt\r\nincoming\r\n");
        assert!(sorted.iter().all(|e| e.nlst.is_none()));
        let mut read = [entry("README.txt"), entry("incoming"), entry("hidden")];
        nlst_order(&mut read, "incoming\r\nREADME.txt\r\n");
        let places: Vec<_> = read.iter().map(|e| e.nlst).collect();
        assert_eq!(places, [Some(1), Some(0), None]);
    }

    fn rule(version: &str, reply: &str) -> Rule {
        Rule {
            state: "data".into(),
            command: "RETR".into(),
            arg: "existing".into(),
            version: version.into(),
            reply: reply.into(),
            next: None,
            close: false,
            action: Some(Action::Retrieve),
            done: None,
        }
    }

    #[test]
    fn types_kept_only_where_replies_differ() {
        let mut rules = vec![
            rule("A", "150 ASCII"),
            rule("I", "150 BINARY"),
            Rule {
                command: "NLST".into(),
                ..rule("A", "150 list")
            },
            Rule {
                command: "NLST".into(),
                ..rule("I", "150 list")
            },
        ];
        collapse_types(&mut rules);
        let got: Vec<(&str, &str)> = rules
            .iter()
            .map(|r| (r.command.as_str(), r.version.as_str()))
            .collect();
        assert_eq!(got, [("RETR", "A"), ("RETR", "I"), ("NLST", "*")]);
    }

    #[test]
    fn a_closing_reply_read_with_the_preliminary_one_is_split_off() {
        let mut r = b"150 Opening BINARY mode.\r\n226 Transfer complete.\r\n".to_vec();
        let end = preliminary(&mut r);
        assert_eq!(r, b"150 Opening BINARY mode.\r\n");
        assert_eq!(end.as_deref(), Some(&b"226 Transfer complete.\r\n"[..]));
        let mut r = b"150 Ok to send data.\r\n".to_vec();
        assert_eq!(preliminary(&mut r), None);
    }

    #[test]
    fn data_endpoints_become_placeholders() {
        let pasv = "227 Entering Passive Mode (127,0,0,1,72,10).\r\n".to_string();
        assert_eq!(
            data_placeholders(pasv),
            "227 Entering Passive Mode ({pasv-endpoint}).\r\n"
        );
        let epsv = "229 Entering Extended Passive Mode (|||18423|)\r\n".to_string();
        assert_eq!(
            data_placeholders(epsv),
            "229 Entering Extended Passive Mode (|||{data-port}|)\r\n"
        );
    }
}

//! FTP's data connections for the emulator: PASV/EPSV open a listener on the telescope
//! address, PORT/EPRT name an endpoint of the attacker's own address (never another: no
//! bounce), and LIST, NLST, RETR send the personality's small file tree over it while STOR
//! receives an upload, stored as an artifact. A session keeps its transfer type and working
//! directory; uploads are listed to the listener's later sessions, as the real server's are.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::clock::Civil;
use super::line::Command;
use super::personality::{Action, FileEntry, FtpTraits};

/// How long a data connection may take to come.
const DATA_WAIT: Duration = Duration::from_secs(10);

/// Where the next transfer's data connection comes from.
#[derive(Debug, Default)]
pub enum DataChannel {
    #[default]
    None,
    Passive(TcpListener),
    Active(SocketAddr),
}

impl DataChannel {
    /// A listener for PASV/EPSV on the address the attacker reached; its port.
    pub async fn passive(at: IpAddr) -> std::io::Result<(DataChannel, u16)> {
        let l = TcpListener::bind(SocketAddr::new(at, 0)).await?;
        let port = l.local_addr()?.port();
        Ok((DataChannel::Passive(l), port))
    }

    /// The data connection, once the attacker connects (passive) or we do (active).
    pub async fn open(self) -> Option<TcpStream> {
        let conn = async {
            match self {
                DataChannel::None => None,
                DataChannel::Passive(l) => l.accept().await.ok().map(|(s, _)| s),
                DataChannel::Active(to) => TcpStream::connect(to).await.ok(),
            }
        };
        tokio::time::timeout(DATA_WAIT, conn).await.ok().flatten()
    }
}

/// The endpoint of `PORT h1,h2,h3,h4,p1,p2` or `EPRT |1|h|p|`, if it is `attacker`'s own.
pub fn active_endpoint(verb: &str, arg: &str, attacker: IpAddr) -> Option<SocketAddr> {
    let to = if verb == "EPRT" {
        eprt(arg)?
    } else {
        host_port(arg)?
    };
    (to.ip() == attacker).then_some(to)
}

/// The endpoint of `EPRT |1|h|p|` (IPv4) or `EPRT |2|h|p|` (IPv6).
fn eprt(arg: &str) -> Option<SocketAddr> {
    let parts: Vec<&str> = arg.split('|').collect();
    let ip: IpAddr = parts.get(2)?.parse().ok()?;
    let family = match ip {
        IpAddr::V4(_) => "1",
        IpAddr::V6(_) => "2",
    };
    (parts.get(1)? == &family).then_some(())?;
    Some(SocketAddr::new(ip, parts.get(3)?.parse().ok()?))
}

/// FTP's `h1,h2,h3,h4,p1,p2` (PORT's argument, PASV's reply).
pub fn host_port(text: &str) -> Option<SocketAddr> {
    let n: Vec<u8> = text
        .split(',')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    let [a, b, c, d, p1, p2] = n[..] else {
        return None;
    };
    Some(SocketAddr::from((
        [a, b, c, d],
        u16::from(p1) << 8 | u16::from(p2),
    )))
}

/// An FTP connection's own state: the transfer type (the key's version of FTP rules) and the
/// working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `A` or `I` (`L 8` is `I`).
    pub kind: String,
    pub cwd: String,
    /// The MDTM time of the file the command names, for `{mtime}`.
    pub mtime: String,
}

impl Default for Session {
    fn default() -> Session {
        Session {
            kind: "A".into(),
            cwd: "/".into(),
            mtime: String::new(),
        }
    }
}

/// The transfer type a TYPE argument sets.
pub fn transfer_type(arg: &str) -> String {
    match arg.trim().chars().next().map(|c| c.to_ascii_uppercase()) {
        Some('A') => "A".into(),
        Some('E') => "E".into(),
        _ => "I".into(),
    }
}

/// `arg` resolved against `cwd`: an absolute path without `.` or `..` parts.
pub fn resolve(cwd: &str, arg: &str) -> String {
    let start = if arg.starts_with('/') { "" } else { cwd };
    let mut parts: Vec<&str> = Vec::new();
    for p in start.split('/').chain(arg.split('/')) {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A path's directory and name (`/pub/a` -> `/pub`, `a`).
pub fn split(path: &str) -> (String, String) {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = if dir.is_empty() { "/" } else { dir };
    (dir.to_string(), name.to_string())
}

/// The entry at an absolute path.
pub fn lookup<'a>(tree: &[&'a FileEntry], path: &str) -> Option<&'a FileEntry> {
    let (dir, name) = split(path);
    tree.iter()
        .find(|e| e.dir == dir && e.name == name)
        .copied()
}

fn is_dir(tree: &[&FileEntry], path: &str) -> bool {
    path == "/" || lookup(tree, path).is_some_and(|e| e.listing.starts_with('d'))
}

/// The file (not a directory) at a path.
pub fn file<'a>(tree: &[&'a FileEntry], path: &str) -> Option<&'a FileEntry> {
    lookup(tree, path).filter(|e| !e.listing.starts_with('d'))
}

/// The path LIST/NLST name, options (`-la`) left out.
fn listed(arg: &str) -> &str {
    arg.split(' ')
        .find(|w| !w.is_empty() && !w.starts_with('-'))
        .unwrap_or("")
}

/// FTP's argument classes of one command, the most particular first: USER `anonymous` or
/// `other`; RETR/SIZE/MDTM `existing` (a file; RETR: one anonymous may read) or `missing`;
/// CWD `dir` or `missing`; LIST/NLST `dir`, `existing` or `missing`; PORT/ALLO/REST
/// `negative`; TYPE/MODE/STRU `arg:X`; then `given` or `none`.
pub fn classes(cmd: &Command, tree: &[&FileEntry], cwd: &str) -> Vec<String> {
    let arg = cmd.arg.trim();
    let at = |a: &str| resolve(cwd, a);
    let class = match cmd.verb.as_str() {
        "USER"
            if ["anonymous", "ftp"]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(arg)) =>
        {
            Some("anonymous".into())
        }
        "USER" if !arg.is_empty() => Some("other".into()),
        "RETR" if !arg.is_empty() => Some(match file(tree, &at(arg)) {
            Some(f) if f.listing.get(7..8) == Some("r") => "existing".into(),
            _ => "missing".into(),
        }),
        "SIZE" | "MDTM" if !arg.is_empty() => Some(match file(tree, &at(arg)) {
            Some(_) => "existing".into(),
            None => "missing".into(),
        }),
        "CWD" | "XCWD" if !arg.is_empty() => Some(match is_dir(tree, &at(arg)) {
            true => "dir".into(),
            false => "missing".into(),
        }),
        "LIST" | "NLST" if !listed(arg).is_empty() => Some(match at(listed(arg)) {
            p if is_dir(tree, &p) => "dir".into(),
            p if file(tree, &p).is_some() => "existing".into(),
            _ => "missing".into(),
        }),
        "PORT" | "ALLO" | "REST" if arg.contains('-') => Some("negative".into()),
        "EPRT" if !arg.is_empty() && eprt(arg).is_none() => Some("bad".into()),
        "TYPE" | "MODE" | "STRU" if !arg.is_empty() => {
            Some(format!("arg:{}", arg.to_ascii_uppercase()))
        }
        _ => None,
    };
    // LIST's options alone (`LIST -la`) list the directory as no argument does.
    let path = match cmd.verb.as_str() {
        "LIST" | "NLST" => listed(arg),
        _ => arg,
    };
    let given = if path.is_empty() { "none" } else { "given" };
    class.into_iter().chain([given.to_string()]).collect()
}

/// What a transfer sends: the listing, the names, or the file asked for (TYPE A: bare LFs
/// as CRLF where the server converts).
pub fn outgoing(
    action: Action,
    tree: &[&FileEntry],
    s: &Session,
    arg: &str,
    crlf: bool,
) -> Vec<u8> {
    let path = listed(arg);
    let at = resolve(&s.cwd, path);
    let lines = |f: &dyn Fn(&FileEntry) -> String| -> Vec<u8> {
        let mut picked: Vec<&FileEntry> = match is_dir(tree, &at) {
            true => tree.iter().copied().filter(|e| e.dir == at).collect(),
            false => file(tree, &at).into_iter().collect(),
        };
        // NLST in the server's own order where the scan saw one; the rest (uploads) after.
        if action == Action::NameList {
            picked.sort_by_key(|e| e.nlst.unwrap_or(usize::MAX));
        }
        picked
            .into_iter()
            .map(|e| format!("{}\r\n", f(e)))
            .collect::<String>()
            .into_bytes()
    };
    match action {
        Action::List => lines(&|e| e.listing.clone()),
        // NLST names a directory's files after the path given (`pub/notes.txt`), a file as given.
        Action::NameList if is_dir(tree, &at) && !path.is_empty() => {
            lines(&|e| format!("{}/{}", path.trim_end_matches('/'), e.name))
        }
        Action::NameList if is_dir(tree, &at) => lines(&|e| e.name.clone()),
        Action::NameList => lines(&|_| path.to_string()),
        _ => match file(tree, &resolve(&s.cwd, arg)) {
            Some(f) if crlf && s.kind == "A" => to_crlf(f.content.as_bytes()),
            Some(f) => f.content.clone().into_bytes(),
            None => Vec::new(),
        },
    }
}

/// Bare LFs as CRLF, as an ASCII-mode transfer sends text.
pub fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The size an `ls -l` line gives.
pub fn listed_size(listing: &str) -> Option<usize> {
    let f = ls_fields(listing)?;
    listing[f[4].clone()].parse().ok()
}

/// The name an `ls -l` line ends with.
pub fn listed_name(listing: &str) -> Option<&str> {
    listing.get(ls_fields(listing)?[7].end + 1..)
}

/// Byte ranges of an `ls -l` line's first eight fields: mode, links, owner, group, size,
/// month, day, time or year (the name follows).
fn ls_fields(line: &str) -> Option<[Range<usize>; 8]> {
    let mut out: [Range<usize>; 8] = Default::default();
    let mut rest = 0;
    for f in &mut out {
        let start = rest + line[rest..].find(|c: char| c != ' ')?;
        let end = start + line[start..].find(' ')?;
        *f = start..end;
        rest = end;
    }
    Some(out)
}

/// An `ls -l` line with its time now, and another size and name if given; columns kept where
/// the widths allow.
pub fn relisted(line: &str, size: Option<usize>, name: Option<&str>, now: &Civil) -> String {
    let Some(f) = ls_fields(line) else {
        return line.to_string();
    };
    let zero_pad = f[6].start - f[5].end == 1;
    let mut out = line[..f[3].end].to_string();
    let size = size.map_or_else(|| line[f[4].clone()].to_string(), |n| n.to_string());
    let pad = (f[4].end - f[3].end).saturating_sub(size.len()).max(1);
    out.push_str(&" ".repeat(pad));
    out.push_str(&size);
    out.push_str(&line[f[4].end..f[5].start]);
    out.push_str(&now.ls(zero_pad));
    match name {
        Some(n) => {
            out.push(' ');
            out.push_str(n);
        }
        None => out.push_str(&line[f[7].end..]),
    }
    out
}

/// The tree as a session sees it: the personality's, changed by what uploads changed.
pub fn merged<'a>(base: &'a [FileEntry], changed: &'a [FileEntry]) -> Vec<&'a FileEntry> {
    let mut tree: Vec<&FileEntry> = base.iter().collect();
    for e in changed {
        if let Some(t) = tree.iter_mut().find(|t| t.dir == e.dir && t.name == e.name) {
            *t = e;
            continue;
        }
        // Among its directory's entries in name order, as servers list them.
        let at = tree
            .iter()
            .position(|t| t.dir == e.dir && t.name > e.name)
            .unwrap_or(tree.len());
        tree.insert(at, e);
    }
    tree
}

/// The most uploads the listener's sessions see (the oldest forgotten first).
const MAX_UPLOADS: usize = 256;

/// What uploads changed in the tree (new files, their directories' times), shared by a
/// listener's sessions: the real server lists an upload to every later client too.
#[derive(Debug, Clone, Default)]
pub struct Uploads(Arc<Mutex<Vec<FileEntry>>>);

impl Uploads {
    /// What the uploads changed, now (entries without content: small to copy).
    pub fn snapshot(&self) -> Vec<FileEntry> {
        self.0.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Lists an upload of `size` bytes at `path` and makes its directory's time now, if the
    /// server shows uploads.
    pub fn add(&self, base: &[FileEntry], traits: &FtpTraits, path: &str, size: usize) {
        let Some(proto) = &traits.upload_listing else {
            return;
        };
        let now = Civil::now();
        let snapshot = self.snapshot();
        let tree = merged(base, &snapshot);
        let (dir, name) = split(path);
        let mut changed = vec![FileEntry {
            dir: dir.clone(),
            name: name.clone(),
            content: String::new(),
            listing: relisted(proto, Some(size), Some(&name), &now),
            mtime: Some(now.mdtm()),
            nlst: None,
        }];
        if let Some(d) = lookup(&tree, &dir) {
            changed.push(FileEntry {
                listing: relisted(&d.listing, None, None, &now),
                mtime: Some(now.mdtm()),
                ..d.clone()
            });
        }
        let Ok(mut overlay) = self.0.lock() else {
            return;
        };
        for e in changed {
            overlay.retain(|t| t.dir != e.dir || t.name != e.name);
            overlay.push(e);
        }
        while overlay.len() > MAX_UPLOADS {
            overlay.remove(0);
        }
    }
}

/// Sends `bytes` over the data connection and closes it.
pub async fn send(mut s: TcpStream, bytes: &[u8]) -> bool {
    s.write_all(bytes).await.is_ok() && s.shutdown().await.is_ok()
}

/// Reads an upload to its end (at most `max` bytes kept).
pub async fn receive(mut s: TcpStream, max: usize, idle: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    // On the heap: an array here would be part of every emulated connection's future.
    let mut chunk = vec![0u8; 16384];
    while let Ok(Ok(n)) = tokio::time::timeout(idle, s.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        let room = max.saturating_sub(out.len()).min(n);
        out.extend_from_slice(&chunk[..room]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &str, listing: &str) -> FileEntry {
        FileEntry {
            dir: dir.into(),
            name: listing.rsplit(' ').next().unwrap().into(),
            content: "a\nb\n".into(),
            listing: listing.into(),
            mtime: None,
            nlst: None,
        }
    }

    fn tree() -> Vec<FileEntry> {
        vec![
            entry(
                "/",
                "-rw-r--r--    1 0        0               4 Jan 15  2024 README.txt",
            ),
            entry(
                "/",
                "drwxr-xr-x    2 0        0            4096 Jan 15  2024 pub",
            ),
            entry(
                "/pub",
                "-rw-r--r--    1 0        0               4 Jan 15  2024 notes.txt",
            ),
            entry(
                "/",
                "drwxr-xr-x    2 103      106          4096 Jan 15  2024 incoming",
            ),
        ]
    }

    fn refs(t: &[FileEntry]) -> Vec<&FileEntry> {
        t.iter().collect()
    }

    #[test]
    fn paths_resolve_and_classify() {
        assert_eq!(resolve("/pub", "../x/./y"), "/x/y");
        assert_eq!(resolve("/pub", "/"), "/");
        assert_eq!(resolve("/", ".."), "/");
        assert_eq!(split("/pub/notes.txt"), ("/pub".into(), "notes.txt".into()));
        let base = tree();
        let t = refs(&base);
        let cls = |line: &str, cwd: &str| classes(&Command::parse(line), &t, cwd)[0].clone();
        assert_eq!(cls("CWD pub", "/"), "dir");
        assert_eq!(cls("CWD nosuch", "/"), "missing");
        assert_eq!(cls("CWD ..", "/pub"), "dir");
        assert_eq!(cls("SIZE notes.txt", "/pub"), "existing");
        assert_eq!(cls("SIZE notes.txt", "/"), "missing");
        assert_eq!(cls("RETR pub", "/"), "missing");
        assert_eq!(cls("LIST -la pub", "/"), "dir");
        assert_eq!(cls("NLST README.txt", "/"), "existing");
        assert_eq!(cls("LIST -la", "/"), "none");
        assert_eq!(cls("EPRT |9|x|1|", "/"), "bad");
        assert_eq!(cls("EPRT |2|::1|2000|", "/"), "given");
    }

    #[test]
    fn transfers_follow_the_directory_and_type() {
        let base = tree();
        let t = refs(&base);
        let mut s = Session::default();
        let list = outgoing(Action::List, &t, &s, "", false);
        assert_eq!(String::from_utf8(list).unwrap().lines().count(), 3);
        let names = outgoing(Action::NameList, &t, &s, "pub", false);
        assert_eq!(names, b"pub/notes.txt\r\n");
        assert_eq!(
            outgoing(Action::Retrieve, &t, &s, "pub/notes.txt", true),
            b"a\r\nb\r\n"
        );
        s.kind = "I".into();
        s.cwd = "/pub".into();
        assert_eq!(
            outgoing(Action::Retrieve, &t, &s, "notes.txt", true),
            b"a\nb\n"
        );
        assert_eq!(outgoing(Action::List, &t, &s, "nosuch", false), b"");
    }

    #[test]
    fn names_follow_the_scanned_nlst_order() {
        let mut base = tree();
        for (e, place) in base.iter_mut().zip([Some(1), Some(2), None, Some(0)]) {
            e.nlst = place;
        }
        let t = refs(&base);
        let s = Session::default();
        let names = outgoing(Action::NameList, &t, &s, "", false);
        assert_eq!(names, b"incoming\r\nREADME.txt\r\npub\r\n");
        let list = String::from_utf8(outgoing(Action::List, &t, &s, "", false)).unwrap();
        let listed: Vec<_> = list.lines().filter_map(listed_name).collect();
        assert_eq!(listed, ["README.txt", "pub", "incoming"]);
    }

    #[test]
    fn uploads_are_listed_with_their_directory_time() {
        let traits = FtpTraits {
            ascii_crlf: false,
            upload_listing: Some(
                "-rw-------    1 103      106             4 Dec 02 04:42 up.txt".into(),
            ),
        };
        let up = Uploads::default();
        up.add(&tree(), &traits, "/incoming/x.bin", 123456);
        let (base, changed) = (tree(), up.snapshot());
        let t = merged(&base, &changed);
        let now = Civil::now().ls(true);
        let x = lookup(&t, "/incoming/x.bin").unwrap();
        assert_eq!(
            x.listing,
            format!("-rw-------    1 103      106        123456 {now} x.bin")
        );
        let dir = lookup(&t, "/incoming").unwrap();
        assert_eq!(
            dir.listing,
            format!("drwxr-xr-x    2 103      106          4096 {now} incoming")
        );
        assert_eq!(listed_size(&x.listing), Some(123456));
        assert_eq!(
            classes(&Command::parse("RETR incoming/x.bin"), &t, "/")[0],
            "missing"
        );
        up.add(&tree(), &traits, "/incoming/a.bin", 1);
        let s = Session::default();
        let changed = up.snapshot();
        let t = merged(&base, &changed);
        let names = outgoing(Action::NameList, &t, &s, "incoming", false);
        assert_eq!(names, b"incoming/a.bin\r\nincoming/x.bin\r\n");
    }

    #[test]
    fn active_endpoints_only_to_the_attacker() {
        let me: IpAddr = "127.0.0.2".parse().unwrap();
        let want: SocketAddr = "127.0.0.2:4660".parse().unwrap();
        assert_eq!(active_endpoint("PORT", "127,0,0,2,18,52", me), Some(want));
        assert_eq!(
            active_endpoint("EPRT", "|1|127.0.0.2|4660|", me),
            Some(want)
        );
        assert_eq!(active_endpoint("PORT", "10,0,0,1,18,52", me), None);
        assert_eq!(active_endpoint("PORT", "-1,0,0,1,18,52", me), None);
    }
}

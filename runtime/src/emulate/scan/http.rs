//! The HTTP battery: methods (WebDAV's and a made-up one too) on an existing and a missing
//! path in HTTP/1.0 and 1.1, HTTP/0.9, 1.1 without Host, bad request lines, a long URI and
//! a few common paths; each sent twice with other missing paths, at other times.

use super::dynamic::{merge, templatize, Known};
use super::{Probe, Progress, ScanError, ScanOptions};
use crate::emulate::http::response_complete;
use crate::emulate::personality::{Personality, Rule, ANY};
use crate::emulate::serve::fresh;

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "OPTIONS", "TRACE", "PROPFIND", "SEARCH", "PUT", "DELETE",
];
/// A method no server knows: its reply is the one for unknown methods.
const BOGUS: &str = "QWERTY";
/// Paths tried besides `/`; kept when they exist.
const COMMON: &[&str] = &["/index.html", "/robots.txt", "/favicon.ico"];
/// The long URI's length: over the common 8 KiB request-line limits (the emulator's `long`
/// class starts at [`crate::emulate::http::LONG_URI`]).
const LONG: usize = 10_000;

/// Where a request's target points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    Root,
    Missing,
    Long,
    Common(&'static str),
}

/// One request of the battery, and the key its reply is kept under.
#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    /// The rule's command (`*` for made-up methods and garbage).
    command: &'static str,
    path: PathKind,
    version: &'static str,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for version in ["1.0", "1.1", "1.1-close"] {
        for path in [PathKind::Root, PathKind::Missing] {
            for &method in METHODS.iter().chain([&BOGUS]) {
                let command = if method == BOGUS { ANY } else { method };
                v.push(Case {
                    method,
                    command,
                    path,
                    version,
                });
            }
        }
        for path in [PathKind::Long]
            .into_iter()
            .chain(COMMON.iter().map(|&c| PathKind::Common(c)))
        {
            v.push(Case {
                method: "GET",
                command: "GET",
                path,
                version,
            });
        }
    }
    let extra = [
        ("GET", "GET", PathKind::Root, "0.9"),
        ("GET", "GET", PathKind::Missing, "0.9"),
        ("GET", "GET", PathKind::Root, "1.1-nohost"),
        ("GET", ANY, PathKind::Root, "bad"),
        ("GARBAGE", ANY, PathKind::Root, "bad"),
    ];
    for (method, command, path, version) in extra {
        v.push(Case {
            method,
            command,
            path,
            version,
        });
    }
    v
}

/// How many steps the battery's progress shows.
pub fn battery_len() -> usize {
    cases().len()
}

/// A missing path of this pass.
fn missing() -> String {
    let n = fresh();
    let name: String = (0..8)
        .map(|i| (b'a' + ((n >> (i * 5)) % 26) as u8) as char)
        .collect();
    format!("/{name}.html")
}

fn target(path: PathKind, missing: &str) -> String {
    match path {
        PathKind::Root => "/".into(),
        PathKind::Missing => missing.into(),
        PathKind::Long => format!("/{}", "A".repeat(LONG)),
        PathKind::Common(c) => c.into(),
    }
}

fn request(c: &Case, target: &str, o: &ScanOptions) -> Vec<u8> {
    match (c.method, c.version) {
        ("GARBAGE", _) => b"GARBAGE\r\n\r\n".to_vec(),
        (_, "bad") => format!("{} {target} HTTP/9.9\r\n\r\n", c.method).into_bytes(),
        (_, "0.9") => format!("{} {target}\r\n", c.method).into_bytes(),
        (_, "1.0") => format!("{} {target} HTTP/1.0\r\n\r\n", c.method).into_bytes(),
        (_, "1.1-nohost") => format!("{} {target} HTTP/1.1\r\n\r\n", c.method).into_bytes(),
        (_, v) => {
            format!(
            "{} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n{}\r\n",
            c.method,
            o.target.ip(),
            if v == "1.1-close" { "Connection: close\r\n" } else { "" }
        )
            .into_bytes()
        }
    }
}

/// The reply's template with its Content-Length a placeholder when it counts the body that
/// follows in the raw reply (not for HEAD, whose body is absent).
fn length_placeholder(t: String, raw: &[u8]) -> String {
    const NAME: &str = "\r\ncontent-length:";
    let Some(body_at) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return t;
    };
    let body = raw.len() - body_at - 4;
    let Some(head_end) = t.find("\r\n\r\n") else {
        return t;
    };
    let Some(at) = t[..head_end].to_ascii_lowercase().find(NAME) else {
        return t;
    };
    let start = at + NAME.len();
    let end = t[start..].find("\r\n").map_or(head_end, |e| start + e);
    if t[start..end].trim().parse::<usize>().ok() != Some(body) {
        return t;
    }
    format!("{} {{content-length}}{}", &t[..start], &t[end..])
}

async fn exchange(o: &ScanOptions, c: &Case, missing: &str) -> Result<(String, bool), ScanError> {
    let target = target(c.path, missing);
    let mut p = Probe::connect(o).await?;
    let x = p.send(&request(c, &target, o), response_complete).await;
    let address = o.target.ip().to_string();
    let arg = if c.path == PathKind::Root {
        ""
    } else {
        &target
    };
    let peer = p.local_ip();
    let known = Known {
        arg,
        hostname: &o.hostname,
        address: &address,
        peer: &peer,
    };
    Ok((
        length_placeholder(templatize(&x.reply, &known), &x.reply),
        x.closed,
    ))
}

fn status(reply: &str) -> Option<u16> {
    reply.split(' ').nth(1)?.parse().ok()
}

/// Runs the battery twice and adds a rule per case (common paths only where they exist).
pub async fn scan(
    o: &ScanOptions,
    p: &mut Personality,
    bar: &mut Progress,
) -> Result<(), ScanError> {
    let (m1, m2) = (missing(), missing());
    for c in cases() {
        bar.step(&format!("{} {:?} {}", c.method, c.path, c.version));
        let (a, closed) = exchange(o, &c, &m1).await?;
        let (b, _) = exchange(o, &c, &m2).await?;
        let arg = match c.path {
            _ if c.version == "bad" => ANY.to_string(),
            PathKind::Root => "path:/".into(),
            PathKind::Missing => "missing".into(),
            PathKind::Long => "long".into(),
            PathKind::Common(path) => {
                if !status(&a).is_some_and(|s| (200..400).contains(&s)) {
                    continue;
                }
                format!("path:{path}")
            }
        };
        p.add_rule(Rule {
            state: ANY.into(),
            command: c.command.into(),
            arg,
            version: c.version.into(),
            reply: merge(&a, &b),
            next: None,
            close: closed,
            action: None,
            done: None,
        });
    }
    Ok(())
}

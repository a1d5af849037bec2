//! nmap's service probes (`nmap-service-probes`): the TCP probes whose port list names a
//! port, with their payloads unescaped, so a scan stores exactly what nmap's matchers see.

use std::ops::RangeInclusive;
use std::path::Path;

/// Where Debian's nmap keeps them.
pub const DEFAULT_PATH: &str = "/usr/share/nmap/nmap-service-probes";

/// One TCP probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmapProbe {
    pub name: String,
    pub payload: Vec<u8>,
    pub ports: Vec<RangeInclusive<u16>>,
}

impl NmapProbe {
    pub fn covers(&self, port: u16) -> bool {
        self.ports.iter().any(|r| r.contains(&port))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NmapError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line}: a probe's payload without its closing delimiter")]
    Payload { path: String, line: usize },
}

/// Reads the TCP probes of the file (the NULL probe, with an empty payload, included).
pub fn load(path: &Path) -> Result<Vec<NmapProbe>, NmapError> {
    let text = std::fs::read_to_string(path).map_err(|source| NmapError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text).map_err(|line| NmapError::Payload {
        path: path.display().to_string(),
        line,
    })
}

/// Parses probe lines and their `ports` lines; `Err(line)` for a broken payload.
pub fn parse(text: &str) -> Result<Vec<NmapProbe>, usize> {
    let mut probes: Vec<NmapProbe> = Vec::new();
    let mut tcp = false;
    for (n, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("Probe ") {
            tcp = rest.starts_with("TCP ");
            if !tcp {
                continue;
            }
            let mut parts = rest[4..].splitn(2, ' ');
            let name = parts.next().unwrap_or("").to_string();
            let q = parts.next().unwrap_or("");
            let payload = payload(q).ok_or(n + 1)?;
            probes.push(NmapProbe {
                name,
                payload,
                ports: Vec::new(),
            });
        } else if let (true, Some(ports)) = (tcp, line.strip_prefix("ports ")) {
            if let Some(p) = probes.last_mut() {
                p.ports = port_ranges(ports);
            }
        }
    }
    Ok(probes)
}

/// `q|...|`: the bytes between the delimiters, escapes resolved.
fn payload(q: &str) -> Option<Vec<u8>> {
    let rest = q.strip_prefix('q')?;
    let delim = rest.chars().next()?;
    let body = &rest[delim.len_utf8()..];
    let end = body.find(delim)?;
    Some(unescape(&body[..end]))
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (byte, used) = match b[i + 1] {
            b'0' => (0, 2),
            b'a' => (7, 2),
            b'b' => (8, 2),
            b'f' => (12, 2),
            b'n' => (b'\n', 2),
            b'r' => (b'\r', 2),
            b't' => (b'\t', 2),
            b'v' => (11, 2),
            b'x' => match s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => (v, 4),
                None => (b'x', 2),
            },
            c => (c, 2),
        };
        out.push(byte);
        i += used;
    }
    out
}

fn port_ranges(list: &str) -> Vec<RangeInclusive<u16>> {
    list.split(',')
        .filter_map(|p| {
            let p = p.trim();
            match p.split_once('-') {
                Some((a, b)) => Some(a.parse().ok()?..=b.parse().ok()?),
                None => p.parse().ok().map(|v| v..=v),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probes_and_ports() {
        let text = "Probe TCP NULL q||\nProbe TCP GetRequest q|GET / HTTP/1.0\\r\\n\\r\\n|\n\
                    rarity 1\nports 1,80-85,8080\nProbe UDP X q|\\x01|\nports 80\n\
                    Probe TCP X11Probe q|\\x6C\\0\\x0B|\n";
        let p = parse(text).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].payload, b"GET / HTTP/1.0\r\n\r\n");
        assert!(p[1].covers(82) && p[1].covers(8080) && !p[1].covers(86));
        assert_eq!(p[2].payload, b"\x6c\x00\x0b");
        assert!(p[2].ports.is_empty());
    }
}

//! HTTP requests as the emulator and the scanner key them: method, argument class of the
//! target (a scanned path, `missing`, `long`) and version class (`0.9`, `1.0`, `1.1`,
//! `1.1-close` with `Connection: close`, `1.1-nohost`, `bad`).

use super::personality::Personality;

/// The targets at least this long are `long` unless the personality says otherwise.
pub const LONG_URI: usize = 8000;

/// A complete request at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub version: String,
    /// Its bytes, head and body.
    pub len: usize,
}

/// Finds the end of the line that starts `buf` (`\n`, with or without `\r`).
fn line_end(buf: &[u8]) -> Option<(usize, usize)> {
    let n = buf.iter().position(|&b| b == b'\n')?;
    let content = if n > 0 && buf[n - 1] == b'\r' {
        n - 1
    } else {
        n
    };
    Some((content, n + 1))
}

/// The end of the head (after its empty line).
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some((content, next)) = line_end(&buf[at..]) {
        at += next;
        if content == 0 {
            return Some(at);
        }
    }
    None
}

/// The value of header `name` in `head` (case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The request at the start of `buf`, or `None` while it is incomplete.
pub fn frame(buf: &[u8]) -> Option<Request> {
    let (content, next) = line_end(buf)?;
    let line = String::from_utf8_lossy(&buf[..content]);
    let parts: Vec<&str> = line.split(' ').collect();
    let (method, target) = (
        parts[0].to_string(),
        parts.get(1).unwrap_or(&"").to_string(),
    );
    let request = |version: &str, len| Request {
        method: method.clone(),
        target: target.clone(),
        version: version.to_string(),
        len,
    };
    match parts.as_slice() {
        [_, _] => return Some(request("0.9", next)),
        [_, _, v] if v.starts_with("HTTP/") => {}
        _ => return Some(request("bad", next)),
    }
    let end = head_end(buf)?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let version = match parts[2] {
        "HTTP/1.0" => "1.0",
        "HTTP/1.1" if header(&head, "Host").is_none() => "1.1-nohost",
        "HTTP/1.1"
            if header(&head, "Connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) =>
        {
            "1.1-close"
        }
        "HTTP/1.1" => "1.1",
        _ => "bad",
    };
    let body = header(&head, "Content-Length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    (buf.len() >= end.saturating_add(body)).then(|| request(version, end + body))
}

/// A response is complete: its head and the body its Content-Length counts (without one, or
/// for HEAD, only the server's close or silence ends it).
pub fn response_complete(reply: &[u8]) -> bool {
    let Some(end) = head_end(reply) else {
        return false;
    };
    let head = String::from_utf8_lossy(&reply[..end]);
    header(&head, "Content-Length")
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > 0 && reply.len() >= end + n)
}

/// The target's classes, the most particular first.
pub fn classes(target: &str, p: &Personality) -> Vec<String> {
    if target.len() >= p.limits.long_uri.unwrap_or(LONG_URI) {
        return vec!["long".into()];
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    vec![format!("path:{path}"), "missing".into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_versions_and_bodies() {
        assert_eq!(frame(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        let r = frame(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nmore").unwrap();
        assert_eq!((r.version.as_str(), r.len), ("1.1", 27));
        assert_eq!(
            frame(b"GET / HTTP/1.1\r\n\r\n").unwrap().version,
            "1.1-nohost"
        );
        assert_eq!(frame(b"GET /\r\n").unwrap().version, "0.9");
        let close = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n";
        assert_eq!(frame(close).unwrap().version, "1.1-close");
        assert_eq!(frame(b"GARBAGE\r\n").unwrap().version, "bad");
        let post = b"POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nab";
        assert_eq!(frame(post), None);
        assert_eq!(
            frame(b"POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
                .unwrap()
                .len,
            42
        );
    }
}

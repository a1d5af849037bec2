//! Finding a reply's dynamic parts: what the scanner knows (the argument it sent, the host's
//! name and address, dates) is replaced by its placeholder; what still differs between two
//! probes with other arguments at other times becomes a process id or an id of its shape.

use crate::emulate::clock::{find_date, unix_now, DateStyle};
use crate::emulate::template::{envelope_path, IdShape, Template};

/// What the scanner knew when it sent a probe.
#[derive(Debug, Clone, Default)]
pub struct Known<'a> {
    /// The argument sent (echoed back by many servers).
    pub arg: &'a str,
    pub hostname: &'a str,
    pub address: &'a str,
    /// The scanner's own address, as the server saw it.
    pub peer: &'a str,
}

/// Shortest argument or name replaced: shorter ones match by chance.
const MIN_ECHO: usize = 3;

/// The reply as a template, with what is known replaced by placeholders.
pub fn templatize(reply: &[u8], known: &Known) -> String {
    let mut t = Template::literal(reply);
    t = replace_dates(&t);
    let lit = |s: &str| Template::literal(s.as_bytes());
    if known.arg.len() >= MIN_ECHO {
        let arg = lit(known.arg);
        let (up, low) = (arg.to_uppercase(), arg.to_lowercase());
        t = t.replace(&arg, "{echo}");
        if up != arg {
            t = t.replace(&up, "{echo-upper}");
        }
        if low != arg {
            t = t.replace(&low, "{echo-lower}");
        }
        if let Some(path) = envelope_path(known.arg).filter(|p| p.len() >= MIN_ECHO) {
            t = t.replace(&lit(path), "{echo-path}");
        }
    }
    if known.hostname.len() >= MIN_ECHO {
        t = t.replace(&lit(known.hostname), "{hostname}");
    }
    if known.address.len() >= MIN_ECHO {
        t = t.replace(&lit(known.address), "{address}");
    }
    if known.peer.len() >= MIN_ECHO {
        t = t.replace(&lit(known.peer), "{peer}");
    }
    t
}

/// A date this close to the scan is "now" (a file's Last-Modified is not).
const NOW_SLACK: i64 = 600;

/// Dates of the scan's time become `{date-http}` or `{date-mail}`; others stay.
fn replace_dates(t: &str) -> String {
    let now = unix_now() as i64;
    let mut out = String::new();
    let mut rest = t;
    while let Some(d) = find_date(rest) {
        out.push_str(&rest[..d.range.start]);
        let text = &rest[d.range.clone()];
        out.push_str(match d.style {
            _ if (d.unix - now).abs() > NOW_SLACK => text,
            DateStyle::Http => "{date-http}",
            DateStyle::Mail => "{date-mail}",
        });
        rest = &rest[d.range.end..];
    }
    out.push_str(rest);
    out
}

/// Merges two templates of the same reply: words that still differ become `{pid}` (digits)
/// or `{id:SHAPE}` (ids of letters and digits, `-` between parts: Postfix's queue ids,
/// Exim's message ids); anything else keeps the first.
pub fn merge(a: &str, b: &str) -> String {
    if a == b {
        return a.to_string();
    }
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.split('\n').collect(), b.split('\n').collect());
    if la.len() != lb.len() {
        return a.to_string();
    }
    la.iter()
        .zip(&lb)
        .map(|(x, y)| merge_line(x, y))
        .collect::<Vec<_>>()
        .join("\n")
}

fn merge_line(a: &str, b: &str) -> String {
    let (wa, wb) = (runs(a), runs(b));
    if a == b || wa.len() != wb.len() {
        return a.to_string();
    }
    wa.iter()
        .zip(&wb)
        .map(|(x, y)| match x == y {
            true => x.to_string(),
            false => dynamic_word(x, y),
        })
        .collect()
}

/// A word's part of an id: letters, digits and the `-` between an id's parts.
fn in_id(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// The line cut where it turns from id characters to others and back (`id=`,
/// `1xYcEF-0005db-0f`); a placeholder (`{echo}`) is a run of its own.
fn runs(line: &str) -> Vec<&str> {
    #[derive(PartialEq, Clone, Copy)]
    enum Kind {
        Id,
        Other,
        Hole,
    }
    let mut out: Vec<(Kind, usize, usize)> = Vec::new();
    let mut i = 0;
    while let Some(c) = line[i..].chars().next() {
        let (kind, end) = match c {
            '{' if line[i + 1..].starts_with('{') => (Kind::Other, i + 2),
            '{' => (
                Kind::Hole,
                line[i..].find('}').map_or(line.len(), |j| i + j + 1),
            ),
            c if in_id(c) => (Kind::Id, i + 1),
            c => (Kind::Other, i + c.len_utf8()),
        };
        match out.last_mut() {
            Some((k, _, e)) if *k == kind && kind != Kind::Hole => *e = end,
            _ => out.push((kind, i, end)),
        }
        i = end;
    }
    out.into_iter().map(|(_, s, e)| &line[s..e]).collect()
}

/// Fewest letters and digits an id is taken for (shorter words differ by chance).
const MIN_ID: usize = 5;

/// A run that changed between probes, made a placeholder where both shapes say which: digits a
/// `{pid}`; letters and digits with a digit, in as many `-`-parts, an id of their shape.
fn dynamic_word(a: &str, b: &str) -> String {
    let alnum = |w: &str| !w.is_empty() && w.chars().all(in_id) && !w.contains('{');
    if !alnum(a) || !alnum(b) {
        return a.to_string();
    }
    let digits = |w: &str| w.bytes().all(|c| c.is_ascii_digit());
    if digits(a) && digits(b) {
        return "{pid}".to_string();
    }
    let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('-').collect(), b.split('-').collect());
    let letters = a.chars().filter(char::is_ascii_alphanumeric).count();
    if pa.len() != pb.len() || letters < MIN_ID || !a.contains(|c: char| c.is_ascii_digit()) {
        return a.to_string();
    }
    let shape: Vec<String> = pa
        .iter()
        .zip(&pb)
        .map(|(x, y)| {
            let class = IdShape::class_of(&format!("{x}{y}"));
            class.to_string().repeat(x.len())
        })
        .collect();
    format!("{{id:{}}}", shape.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_parts_become_placeholders() {
        let k = Known {
            arg: "/nope.html",
            hostname: "mx1",
            address: "127.0.0.1",
            peer: "127.0.0.2",
        };
        let now = crate::emulate::clock::Civil::now().http();
        let r = format!("HTTP/1.1 404\r\nDate: {now}\r\nLast-Modified: Wed, 02 Dec 2020 01:40:00 GMT\r\n\r\n/nope.html /NOPE.HTML at mx1 127.0.0.1");
        assert_eq!(
            templatize(r.as_bytes(), &k),
            "HTTP/1.1 404\r\nDate: {date-http}\r\nLast-Modified: Wed, 02 Dec 2020 01:40:00 GMT\r\n\r\n{echo} {echo-upper} at {hostname} {address}"
        );
    }

    #[test]
    fn what_still_differs_becomes_ids() {
        let a = "250 2.0.0 Ok: queued as 4F2A1B3C9D\r\n";
        let b = "250 2.0.0 Ok: queued as 77AB01C3EE\r\n";
        assert_eq!(merge(a, b), "250 2.0.0 Ok: queued as {id:FFFFFFFFFF}\r\n");
        assert_eq!(merge("x [1234] y", "x [999] y"), "x [{pid}] y");
        assert_eq!(
            merge(
                "250 OK id=1xYcEF-0005db-0f\r\n",
                "250 OK id=1xYcEK-000621-0v\r\n"
            ),
            "250 OK id={id:ZZZZZZ-ffffff-aa}\r\n"
        );
        assert_eq!(merge("a {echo} b", "a xyz123 b"), "a {echo} b");
        assert_eq!(
            runs("id={{x}} {pid}-a1"),
            ["id", "={{", "x", "}} ", "{pid}", "-a1"]
        );
        assert_eq!(merge("hello world", "hello there"), "hello world");
    }
}

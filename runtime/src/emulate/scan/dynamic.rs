//! Finding a reply's dynamic parts: what the scanner knows (the argument it sent, the host's
//! name and address, dates) is replaced by its placeholder; what still differs between two
//! probes with other arguments at other times becomes a process id or queue id.

use crate::emulate::clock::{find_date, unix_now, DateStyle};
use crate::emulate::template::Template;

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
/// or `{queue-id}` (other letters and digits); anything else keeps the first.
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
    let (wa, wb): (Vec<&str>, Vec<&str>) = (a.split(' ').collect(), b.split(' ').collect());
    if a == b || wa.len() != wb.len() {
        return a.to_string();
    }
    wa.iter()
        .zip(&wb)
        .map(|(x, y)| {
            if x == y {
                x.to_string()
            } else {
                dynamic_word(x)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A word that changed between probes, made a placeholder where its shape says which.
fn dynamic_word(w: &str) -> String {
    let core = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if core.is_empty() || w.contains('{') {
        return w.to_string();
    }
    let hole = if core.bytes().all(|c| c.is_ascii_digit()) {
        "{pid}"
    } else if core.bytes().all(|c| c.is_ascii_alphanumeric()) && (5..=16).contains(&core.len()) {
        "{queue-id}"
    } else {
        return w.to_string();
    };
    w.replacen(core, hole, 1)
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
        assert_eq!(merge(a, b), "250 2.0.0 Ok: queued as {queue-id}\r\n");
        assert_eq!(merge("x [1234] y", "x [999] y"), "x [{pid}] y");
    }
}

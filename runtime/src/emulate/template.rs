//! Reply templates: text with typed placeholders (`{hostname}`, `{date-http}`, `{echo}`...)
//! for the parts of a server's replies that change with the host, the time, the argument or
//! the message. `{{` is a literal `{`; `{xHH}` is one byte (replies that are not text);
//! `{id:SHAPE}` a fresh id of the shape the scanned server's ids had.

use std::fmt::Write as _;

use super::clock::Civil;

/// A dynamic part of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The host name the personality answers as.
    Hostname,
    /// The telescope address the attacker reached.
    Address,
    /// The attacker's address.
    Peer,
    /// Now, as HTTP writes it.
    HttpDate,
    /// Now, as mail headers and banners write it.
    MailDate,
    /// The command's argument as sent.
    Echo,
    EchoUpper,
    EchoLower,
    /// The address of an SMTP envelope argument (`FROM:<a@b> SIZE=9` -> `a@b`).
    EchoPath,
    /// A fresh mail queue id (11 hex digits, as Postfix writes them).
    QueueId,
    /// A process id, fixed per connection.
    Pid,
    /// The length of the body after the first empty line (HTTP's Content-Length).
    ContentLength,
    /// A passive data endpoint as FTP's PASV writes it: `h1,h2,h3,h4,p1,p2`.
    PasvEndpoint,
    /// A passive data port (EPSV).
    DataPort,
    /// The size in bytes of the file a transfer names.
    Size,
    /// FTP's working directory (PWD).
    Cwd,
    /// The modification time of the file MDTM names (`20261202044246`).
    Mtime,
    /// One byte, for replies that are not text.
    Byte(u8),
}

const NAMED: &[(&str, Placeholder)] = &[
    ("hostname", Placeholder::Hostname),
    ("address", Placeholder::Address),
    ("peer", Placeholder::Peer),
    ("date-http", Placeholder::HttpDate),
    ("date-mail", Placeholder::MailDate),
    ("echo", Placeholder::Echo),
    ("echo-upper", Placeholder::EchoUpper),
    ("echo-lower", Placeholder::EchoLower),
    ("echo-path", Placeholder::EchoPath),
    ("queue-id", Placeholder::QueueId),
    ("pid", Placeholder::Pid),
    ("content-length", Placeholder::ContentLength),
    ("pasv-endpoint", Placeholder::PasvEndpoint),
    ("data-port", Placeholder::DataPort),
    ("size", Placeholder::Size),
    ("cwd", Placeholder::Cwd),
    ("mtime", Placeholder::Mtime),
];

impl Placeholder {
    fn parse(name: &str) -> Option<Placeholder> {
        if let Some(hex) = name.strip_prefix('x') {
            if hex.len() == 2 {
                return u8::from_str_radix(hex, 16).ok().map(Placeholder::Byte);
            }
        }
        NAMED.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    fn name(self) -> String {
        match self {
            Placeholder::Byte(b) => format!("x{b:02x}"),
            p => NAMED
                .iter()
                .find(|(_, q)| *q == p)
                .map_or(String::new(), |(n, _)| n.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Hole(Placeholder),
    /// A fresh id per reply, of this shape (see [`IdShape`]).
    Id(IdShape),
}

/// The shape of a server's message or queue ids, one character per position: `9` a decimal
/// digit, `F`/`f` an upper/lower case hex digit, `A`/`a` an upper/lower case letter or
/// digit, `Z` any letter or digit (base 62); `-`, `.` and `_` stand for themselves. Exim's
/// `1xYcEF-0005db-0f` is `ZZZZZZ-ffffff-aa`, Postfix's `4F2A1B3C9D` `FFFFFFFFFF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdShape(String);

impl IdShape {
    /// The classes, from the most particular: each class's characters.
    const CLASSES: &'static [(char, &'static str)] = &[
        ('9', "0123456789"),
        ('F', "0123456789ABCDEF"),
        ('f', "0123456789abcdef"),
        ('A', "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        ('a', "0123456789abcdefghijklmnopqrstuvwxyz"),
        (
            'Z',
            "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        ),
    ];

    pub fn parse(s: &str) -> Option<IdShape> {
        let ok = |c: char| "-._".contains(c) || Self::CLASSES.iter().any(|(k, _)| *k == c);
        (!s.is_empty() && s.chars().all(ok)).then(|| IdShape(s.to_string()))
    }

    /// The most particular class holding every character of `samples` (letters and digits).
    pub fn class_of(samples: &str) -> char {
        Self::CLASSES
            .iter()
            .find(|(_, set)| samples.chars().all(|c| set.contains(c)))
            .map_or('Z', |(k, _)| *k)
    }

    /// The shape as written in a template, without braces (`id:ZZZZZZ-ffffff-aa`).
    fn source(&self) -> String {
        format!("id:{}", self.0)
    }

    /// A fresh id of this shape.
    fn render(&self, out: &mut Vec<u8>) {
        let mut bits = super::serve::fresh();
        for (i, c) in self.0.chars().enumerate() {
            let Some((_, set)) = Self::CLASSES.iter().find(|(k, _)| *k == c) else {
                out.push(c as u8);
                continue;
            };
            if i % 8 == 7 {
                bits = super::serve::fresh();
            }
            out.push(set.as_bytes()[(bits % set.len() as u64) as usize]);
            bits /= set.len() as u64;
        }
    }
}

/// A parsed reply template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder `{{{0}}}`")]
    Unknown(String),
    #[error("a `{{` without its `}}`")]
    Unclosed,
}

/// What fills a template's placeholders for one reply.
#[derive(Debug, Clone, Default)]
pub struct Fill<'a> {
    pub hostname: &'a str,
    pub address: String,
    pub peer: String,
    pub echo: &'a str,
    pub pid: u32,
    pub queue_id: String,
    pub data_port: u16,
    pub size: usize,
    pub cwd: &'a str,
    pub mtime: &'a str,
}

/// Stands for the Content-Length until the body's length is known.
const LENGTH_MARK: &[u8] = b"\x00\x01length\x01\x00";

impl Template {
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('{') {
            text.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(r) = rest.strip_prefix('{') {
                text.push('{');
                rest = r;
                continue;
            }
            let end = rest.find('}').ok_or(TemplateError::Unclosed)?;
            let name = &rest[..end];
            let piece = match name.strip_prefix("id:") {
                Some(shape) => IdShape::parse(shape).map(Piece::Id),
                None => Placeholder::parse(name).map(Piece::Hole),
            }
            .ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
            rest = &rest[end + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// The template of literal bytes: text as is, other bytes as `{xHH}`.
    pub fn literal(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '{' => out.push_str("{{"),
                    '\r' | '\n' | '\t' => out.push(c),
                    c if c.is_control() && (c as u32) < 0x80 => {
                        let _ = write!(out, "{{x{:02x}}}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            for b in chunk.invalid() {
                let _ = write!(out, "{{x{b:02x}}}");
            }
        }
        out
    }

    /// The template as the personality file writes it.
    pub fn source(&self) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(&t.replace('{', "{{")),
                Piece::Hole(h) => {
                    let _ = write!(out, "{{{}}}", h.name());
                }
                Piece::Id(shape) => {
                    let _ = write!(out, "{{{}}}", shape.source());
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The placeholders it holds (bytes not counted).
    pub fn placeholders(&self) -> usize {
        self.pieces
            .iter()
            .filter(|p| !matches!(p, Piece::Text(_) | Piece::Hole(Placeholder::Byte(_))))
            .count()
    }

    /// The reply's bytes, with the placeholders filled.
    pub fn render(&self, fill: &Fill) -> Vec<u8> {
        let mut out = Vec::new();
        let mut length_at = None;
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                Piece::Hole(Placeholder::ContentLength) => {
                    length_at = Some(out.len());
                    out.extend_from_slice(LENGTH_MARK);
                }
                Piece::Hole(h) => render_hole(*h, fill, &mut out),
                Piece::Id(shape) => shape.render(&mut out),
            }
        }
        if let Some(at) = length_at {
            let body = out
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(0, |i| out.len() - i - 4);
            let n = body.to_string();
            out.splice(at..at + LENGTH_MARK.len(), n.into_bytes());
        }
        out
    }
}

fn render_hole(h: Placeholder, fill: &Fill, out: &mut Vec<u8>) {
    let s = match h {
        Placeholder::Hostname => fill.hostname.to_string(),
        Placeholder::Address => fill.address.clone(),
        Placeholder::Peer => fill.peer.clone(),
        Placeholder::HttpDate => Civil::now().http(),
        Placeholder::MailDate => Civil::now().mail(),
        Placeholder::Echo => fill.echo.to_string(),
        Placeholder::EchoUpper => fill.echo.to_uppercase(),
        Placeholder::EchoLower => fill.echo.to_lowercase(),
        Placeholder::EchoPath => envelope_path(fill.echo).unwrap_or(fill.echo).to_string(),
        Placeholder::QueueId => fill.queue_id.clone(),
        Placeholder::Pid => fill.pid.to_string(),
        Placeholder::DataPort => fill.data_port.to_string(),
        Placeholder::Size => fill.size.to_string(),
        Placeholder::Cwd => fill.cwd.to_string(),
        Placeholder::Mtime => fill.mtime.to_string(),
        Placeholder::PasvEndpoint => {
            // PASV cannot name an IPv6 address: vsftpd writes 0,0,0,0 (the port is still open).
            let ip = match fill.address.contains(':') {
                true => "0,0,0,0".to_string(),
                false => fill.address.replace('.', ","),
            };
            format!("{ip},{},{}", fill.data_port >> 8, fill.data_port & 0xff)
        }
        Placeholder::ContentLength => String::new(),
        Placeholder::Byte(b) => {
            out.push(b);
            return;
        }
    };
    out.extend_from_slice(s.as_bytes());
}

/// The address of an SMTP envelope argument: after `FROM:` or `TO:`, up to a space, without
/// its angle brackets; none for other arguments.
pub fn envelope_path(arg: &str) -> Option<&str> {
    let (verb, rest) = arg.split_once(':')?;
    if !["FROM", "TO"].iter().any(|v| v.eq_ignore_ascii_case(verb)) {
        return None;
    }
    let word = rest.trim_start().split(' ').next().unwrap_or("");
    Some(word.trim_matches(['<', '>']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fills() {
        let src = "HTTP/1.1 404 Not Found\r\nDate: {date-http}\r\nContent-Length: {content-length}\r\n\r\n{{} {echo-upper}";
        let t = Template::parse(src).unwrap();
        assert_eq!(t.source(), src);
        assert_eq!(t.placeholders(), 3);
        let fill = Fill {
            echo: "/abc",
            ..Fill::default()
        };
        let out = String::from_utf8(t.render(&fill)).unwrap();
        assert!(out.ends_with("Content-Length: 7\r\n\r\n{} /ABC"), "{out}");
    }

    #[test]
    fn bytes_that_are_not_text_survive() {
        let raw = b"\x16\x03\x01{\xff\r\nok";
        let src = Template::literal(raw);
        assert_eq!(src, "{x16}{x03}{x01}{{{xff}\r\nok");
        assert_eq!(Template::parse(&src).unwrap().render(&Fill::default()), raw);
    }

    #[test]
    fn ids_are_fresh_and_of_their_shape() {
        let t = Template::parse("250 OK id={id:ZZZZZZ-ffffff-aa} <{echo-path}>").unwrap();
        assert_eq!(t.source(), "250 OK id={id:ZZZZZZ-ffffff-aa} <{echo-path}>");
        assert_eq!(t.placeholders(), 2);
        let fill = Fill {
            echo: "TO:<root@mx1> NOTIFY=NEVER",
            ..Fill::default()
        };
        let (a, b) = (t.render(&fill), t.render(&fill));
        assert_ne!(a, b);
        for r in [a, b] {
            let r = String::from_utf8(r).unwrap();
            let id = r["250 OK id=".len()..r.len() - " <root@mx1>".len()].to_string();
            assert!(r.ends_with(" <root@mx1>"), "{r}");
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [6, 6, 2]);
            assert!(parts[0].chars().all(|c| c.is_ascii_alphanumeric()), "{r}");
            assert!(parts[1]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            assert!(parts[2]
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        }
        assert_eq!(IdShape::class_of("0005db000621"), 'f');
        assert_eq!(IdShape::class_of("1xYcEF1xYcEK"), 'Z');
        assert_eq!(
            Template::parse("{id:X}"),
            Err(TemplateError::Unknown("id:X".into()))
        );
    }

    #[test]
    fn rejects_unknown_placeholders() {
        assert_eq!(
            Template::parse("{nope}"),
            Err(TemplateError::Unknown("nope".into()))
        );
        assert_eq!(Template::parse("{date"), Err(TemplateError::Unclosed));
    }
}

//! The personality file: a real server's replies, keyed by protocol state, command and
//! argument class, with typed placeholders for their dynamic parts, plus the raw replies to
//! the probes nmap sends. Versioned TOML, meant to be read and written by a person
//! (docs/EMULATION.md).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::template::{Template, TemplateError};

/// The format this build reads and writes.
pub const FORMAT: u32 = 1;

/// The protocol a personality speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Smtp,
    Ftp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Smtp => "smtp",
            Protocol::Ftp => "ftp",
        }
    }

    /// The ports nmap's probes for this protocol name (a scan on a high port still sends
    /// them).
    pub fn well_known_ports(self) -> &'static [u16] {
        match self {
            Protocol::Http => &[80],
            Protocol::Smtp => &[25],
            Protocol::Ftp => &[21],
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = PersonalityError;
    fn from_str(s: &str) -> Result<Protocol, PersonalityError> {
        match s {
            "http" => Ok(Protocol::Http),
            "smtp" => Ok(Protocol::Smtp),
            "ftp" => Ok(Protocol::Ftp),
            _ => Err(PersonalityError::Protocol(s.to_string())),
        }
    }
}

/// Matches any state, command, argument class or version.
pub const ANY: &str = "*";

fn any() -> String {
    ANY.to_string()
}

fn is_any(s: &str) -> bool {
    s == ANY
}

/// Real work a command does besides its reply (SMTP's envelope and message, FTP's data
/// connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// SMTP MAIL: starts an envelope with this sender.
    Sender,
    /// SMTP RCPT: adds a recipient.
    Recipient,
    /// SMTP DATA: the message follows, up to a line with a single dot.
    Data,
    /// SMTP BDAT: a chunk of the size the argument says follows.
    Bdat,
    /// SMTP RSET: forgets the envelope.
    Reset,
    /// FTP PASV/EPSV: opens a passive data listener.
    Passive,
    /// FTP PORT/EPRT: the data connection goes to the endpoint given.
    Active,
    /// FTP LIST/NLST/RETR: sends data over the data connection.
    List,
    NameList,
    Retrieve,
    /// FTP STOR: receives a file over the data connection.
    Store,
    /// FTP TYPE: the transfer type becomes the argument's (`A`, `I`; `L 8` is `I`).
    Type,
    /// FTP CWD/XCWD/CDUP/XCUP: the working directory becomes the argument's (CDUP: `..`).
    ChangeDir,
}

/// One reply of the server: what it answers in `state` to `command` with an argument of
/// class `arg` (and HTTP `version`), and where the dialog goes next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default = "any", skip_serializing_if = "is_any")]
    pub state: String,
    pub command: String,
    #[serde(default = "any", skip_serializing_if = "is_any")]
    pub arg: String,
    #[serde(default = "any", skip_serializing_if = "is_any")]
    pub version: String,
    pub reply: String,
    /// The state after the reply (none: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The server closed the connection after this reply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub close: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The reply when the action's data transfer ends (FTP's 226).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<String>,
}

/// What one raw probe (one of nmap's) got: kept whole, answered to identical bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub name: String,
    pub sent: String,
    pub reply: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub close: bool,
}

/// A file or directory of the small tree FTP serves (LIST, NLST, RETR, CWD, SIZE, MDTM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The directory it is in, as an absolute path (`/` the root, `/pub`).
    #[serde(default = "root", skip_serializing_if = "is_root")]
    pub dir: String,
    pub name: String,
    #[serde(default)]
    pub content: String,
    /// The line LIST shows for it (a directory's starts with `d`).
    pub listing: String,
    /// MDTM's time for it (`20261202044246`), if the server told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<String>,
    /// Its place among its directory's names as NLST sends them, when that is not LIST's
    /// order (ProFTPD names them in the order it reads the directory, LIST sorts them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlst: Option<usize>,
}

fn root() -> String {
    "/".to_string()
}

fn is_root(s: &str) -> bool {
    s == "/"
}

/// What an FTP server does besides its replies, as the scan saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FtpTraits {
    /// RETR in TYPE A sends each bare LF as CRLF (vsftpd does only with
    /// `ascii_download_enable`).
    #[serde(default)]
    pub ascii_crlf: bool,
    /// The LIST line of an anonymous upload as the server showed it; an upload's line is this
    /// one with its size, time and name. None: uploads are not shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_listing: Option<String>,
}

impl FtpTraits {
    fn is_default(&self) -> bool {
        *self == FtpTraits::default()
    }
}

/// Limits of the emulated server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Limits {
    /// Requests longer than this get no answer and the connection is closed (the IIS
    /// emulator's rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request: Option<usize>,
    /// HTTP targets at least this long are of class `long`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_uri: Option<usize>,
}

/// A scanned (or hand-written) server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Personality {
    pub format: u32,
    pub protocol: Protocol,
    /// What was scanned, and when.
    #[serde(default)]
    pub source: String,
    /// The host name `{hostname}` stands for.
    #[serde(default)]
    pub hostname: String,
    /// Sent when a client connects (SMTP's 220, FTP's 220).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    /// The state a connection starts in.
    #[serde(default = "initial")]
    pub initial: String,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "FtpTraits::is_default")]
    pub ftp: FtpTraits,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    #[serde(default, rename = "probe", skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeResult>,
    #[serde(default, rename = "file", skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
}

fn initial() -> String {
    "start".to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum PersonalityError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("writing the personality: {0}")]
    Write(#[from] toml::ser::Error),
    #[error("{path} is personality format {found}; this build reads format {FORMAT}")]
    Format { path: String, found: u32 },
    #[error("{what}: {source}")]
    Template { what: String, source: TemplateError },
    #[error("unknown protocol `{0}` (http, smtp, ftp)")]
    Protocol(String),
}

impl Personality {
    pub fn new(protocol: Protocol, source: String, hostname: String) -> Personality {
        Personality {
            format: FORMAT,
            protocol,
            source,
            hostname,
            banner: None,
            initial: initial(),
            limits: Limits::default(),
            ftp: FtpTraits::default(),
            rules: Vec::new(),
            probes: Vec::new(),
            files: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Personality, PersonalityError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PersonalityError::Read {
            path: p.clone(),
            source,
        })?;
        let me: Personality = toml::from_str(&text).map_err(|e| PersonalityError::Parse {
            path: p.clone(),
            source: Box::new(e),
        })?;
        if me.format != FORMAT {
            return Err(PersonalityError::Format {
                path: p,
                found: me.format,
            });
        }
        Ok(me)
    }

    pub fn to_toml(&self) -> Result<String, PersonalityError> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Adds a rule unless one with the same key is there (the first reply seen wins).
    pub fn add_rule(&mut self, rule: Rule) -> bool {
        let same = |r: &Rule| {
            r.state == rule.state
                && r.command == rule.command
                && r.arg == rule.arg
                && r.version == rule.version
        };
        if self.rules.iter().any(same) {
            return false;
        }
        self.rules.push(rule);
        true
    }
}

/// A rule with its templates parsed.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub rule: Rule,
    pub reply: Template,
    pub done: Option<Template>,
}

/// A probe with its bytes and reply ready.
#[derive(Debug, Clone)]
pub struct CompiledProbe {
    pub name: String,
    pub reply: Template,
    pub close: bool,
}

/// What a command is, for the lookup: the state it came in, its command, the classes of its
/// argument from the most particular to the most general, and its version.
#[derive(Debug, Clone)]
pub struct Key<'a> {
    pub state: &'a str,
    pub command: &'a str,
    pub args: &'a [String],
    pub version: &'a str,
}

/// A personality ready to answer: templates parsed, probes by their bytes.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub personality: Personality,
    pub banner: Option<Template>,
    pub rules: Vec<CompiledRule>,
    pub probes: HashMap<Vec<u8>, CompiledProbe>,
    /// The longest probe, so the emulator knows how long a prefix may still become one.
    pub longest_probe: usize,
}

fn parse(what: String, s: &str) -> Result<Template, PersonalityError> {
    Template::parse(s).map_err(|source| PersonalityError::Template { what, source })
}

/// An optional template (the banner, a transfer's `done`), parsed if present.
fn parse_some(what: String, s: Option<&str>) -> Result<Option<Template>, PersonalityError> {
    s.map(|s| parse(what, s)).transpose()
}

impl Compiled {
    pub fn new(personality: Personality) -> Result<Compiled, PersonalityError> {
        let banner = parse_some("the banner".into(), personality.banner.as_deref())?;
        let mut rules = Vec::new();
        for (i, r) in personality.rules.iter().enumerate() {
            let what = format!("rule {} ({} {})", i + 1, r.command, r.arg);
            let reply = parse(what.clone(), &r.reply)?;
            let done = parse_some(what, r.done.as_deref())?;
            rules.push(CompiledRule {
                rule: r.clone(),
                reply,
                done,
            });
        }
        let mut probes = HashMap::new();
        for p in &personality.probes {
            let what = format!("probe {}", p.name);
            let sent = parse(what.clone(), &p.sent)?.render(&Default::default());
            let reply = parse(what, &p.reply)?;
            probes.entry(sent).or_insert(CompiledProbe {
                name: p.name.clone(),
                reply,
                close: p.close,
            });
        }
        let longest_probe = probes.keys().map(Vec::len).max().unwrap_or(0);
        Ok(Compiled {
            personality,
            banner,
            rules,
            probes,
            longest_probe,
        })
    }

    /// The rule that answers `key`: the one whose command matches exactly before `*`, then
    /// whose state matches (a command never seen in this state answers as in another), then
    /// whose argument class is the most particular, then whose version does. The state ranks
    /// first because a reply seen in this state is what the server said here, while one from
    /// another state is a guess: an FTP reply scanned after login for one transfer type or
    /// argument class must not answer the same command before login, where the scan saw the
    /// refusal for any type or a more general class.
    pub fn find(&self, key: &Key) -> Option<&CompiledRule> {
        let exact = |v: &str, k: &str| -> Option<bool> {
            match v {
                _ if v == k => Some(true),
                ANY => Some(false),
                _ => None,
            }
        };
        let rank = |r: &Rule| -> Option<(bool, u8, usize, bool)> {
            let command = exact(&r.command, key.command)?;
            let version = exact(&r.version, key.version)?;
            let state = match exact(&r.state, key.state) {
                Some(true) => 2,
                Some(false) => 1,
                None => 0,
            };
            let arg = if r.arg == ANY {
                0
            } else {
                key.args.len() - key.args.iter().position(|a| *a == r.arg)?
            };
            Some((command, state, arg, version))
        };
        self.rules
            .iter()
            .filter_map(|r| rank(&r.rule).map(|k| (k, r)))
            .max_by_key(|(k, _)| *k)
            .map(|(_, r)| r)
    }

    /// Keys and placeholders, for the scan's summary and the reports.
    pub fn size(&self) -> (usize, usize, usize) {
        let holes = self
            .rules
            .iter()
            .map(|r| r.reply.placeholders())
            .sum::<usize>()
            + self
                .probes
                .values()
                .map(|p| p.reply.placeholders())
                .sum::<usize>()
            + self.banner.as_ref().map_or(0, Template::placeholders);
        (self.rules.len(), self.probes.len(), holes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(command: &str, arg: &str, reply: &str) -> Rule {
        Rule {
            state: any(),
            command: command.into(),
            arg: arg.into(),
            version: any(),
            reply: reply.into(),
            next: None,
            close: false,
            action: None,
            done: None,
        }
    }

    #[test]
    fn finds_the_most_particular_rule() {
        let mut p = Personality::new(Protocol::Http, String::new(), "h".into());
        p.rules = vec![
            rule("*", "*", "unknown"),
            rule("GET", "missing", "404"),
            rule("GET", "path:/", "200"),
        ];
        let text = p.to_toml().unwrap();
        let back: Personality = toml::from_str(&text).unwrap();
        assert_eq!(back, p);
        let c = Compiled::new(p).unwrap();
        let args = ["path:/".to_string(), "missing".to_string()];
        let key = |command, args| Key {
            state: "start",
            command,
            args,
            version: "1.1",
        };
        assert_eq!(c.find(&key("GET", &args)).unwrap().rule.reply, "200");
        assert_eq!(c.find(&key("GET", &args[1..])).unwrap().rule.reply, "404");
        assert_eq!(c.find(&key("BREW", &args)).unwrap().rule.reply, "unknown");
    }

    /// A reply scanned in another state for the key's version loses to the key's own state's
    /// reply for any version (ProFTPD's STAT: 530 before login, its status after).
    #[test]
    fn the_state_ranks_above_the_version() {
        let mut p = Personality::new(Protocol::Ftp, String::new(), "h".into());
        let stat = |state: &str, version: &str, reply: &str| Rule {
            state: state.into(),
            version: version.into(),
            ..rule("STAT", "none", reply)
        };
        p.rules = vec![
            stat("start", ANY, "530 Please login"),
            stat("login", "A", "211 ASCII status"),
            stat("login", "I", "211 binary status"),
        ];
        let c = Compiled::new(p).unwrap();
        let args = ["none".to_string()];
        let find = |state, version| {
            let key = Key {
                state,
                command: "STAT",
                args: &args,
                version,
            };
            c.find(&key).unwrap().rule.reply.clone()
        };
        assert_eq!(find("start", "A"), "530 Please login");
        assert_eq!(find("login", "A"), "211 ASCII status");
        assert_eq!(find("login", "I"), "211 binary status");
        // Never seen in this state: answered as in another.
        assert_eq!(find("user-anon", "I"), "211 binary status");
    }

    /// A reply scanned in the key's state for a general argument class beats one scanned in
    /// another state for the key's particular class: STOR of an existing file before login
    /// is refused as any STOR is there, not as the overwrite the scan saw refused after login.
    #[test]
    fn the_state_ranks_above_the_argument_class() {
        let mut p = Personality::new(Protocol::Ftp, String::new(), "h".into());
        let stor = |state: &str, arg: &str, reply: &str| Rule {
            state: state.into(),
            ..rule("STOR", arg, reply)
        };
        p.rules = vec![
            stor("start", "given", "530 Please login"),
            stor("login", "existing", "553 Could not create file"),
            stor("login", "given", "150 Ok to send data"),
        ];
        let c = Compiled::new(p).unwrap();
        let find = |state, args: &[String]| {
            let key = Key {
                state,
                command: "STOR",
                args,
                version: ANY,
            };
            c.find(&key).unwrap().rule.reply.clone()
        };
        let existing = ["existing".to_string(), "given".to_string()];
        assert_eq!(find("start", &existing), "530 Please login");
        assert_eq!(find("login", &existing), "553 Could not create file");
        assert_eq!(find("login", &existing[1..]), "150 Ok to send data");
        // Never seen in this state: the most particular class of any state.
        assert_eq!(find("data", &existing), "553 Could not create file");
    }
}

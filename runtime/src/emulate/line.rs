//! Line-based dialogs (SMTP, FTP): a command per line, keyed by the dialog's state, its verb
//! and the classes of its argument. The state machine is the personality's data (each rule's
//! `next`); the real work a command does is its `action`: SMTP's envelope, message (DATA,
//! BDAT) and the mail stored with its envelope as an artifact.

use super::ftp::{self, DataChannel};
use super::personality::{Action, CompiledRule, FileEntry, Key, Protocol, ANY};
use super::serve::{Conn, EmulateError};

/// Lines at least this long are of class `long`.
pub const LONG_LINE: usize = 1000;

/// The command the end of a DATA message is answered as.
pub const MESSAGE: &str = "<message>";

/// A command line: its verb (upper case) and argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub verb: String,
    pub arg: String,
}

impl Command {
    pub fn parse(line: &str) -> Command {
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        Command {
            verb: verb.to_ascii_uppercase(),
            arg: arg.to_string(),
        }
    }
}

/// What the connection reads next.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    #[default]
    Commands,
    /// A DATA message, up to the line with a single dot.
    Data,
    /// A BDAT chunk: bytes still to come, the last chunk or not, and the rule that answers.
    Chunk {
        remaining: usize,
        last: bool,
        rule: usize,
        size: String,
    },
}

/// A mail in the making.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub mode: Mode,
    pub sender: Option<String>,
    pub recipients: Vec<String>,
    pub message: Vec<u8>,
}

impl Mail {
    /// The artifact: the envelope as SMTP said it, an empty line, the message.
    fn artifact(&self) -> Vec<u8> {
        let mut out = format!("MAIL FROM:{}\r\n", self.sender.as_deref().unwrap_or(""));
        for r in &self.recipients {
            out.push_str(&format!("RCPT TO:{r}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.message);
        out
    }
}

/// The address part of `FROM:<a@b>` / `TO:<a@b>`: its form's class and the address.
fn path_class(arg: &str, prefix: &str) -> (&'static str, String) {
    let Some(p) = arg
        .get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| arg[prefix.len()..].trim_start())
    else {
        return ("syntax", String::new());
    };
    let addr = p.split(' ').next().unwrap_or("");
    let class = match (addr.starts_with('<'), addr.ends_with('>')) {
        _ if addr == "<>" => "null",
        (true, true) => "bracketed",
        (true, false) => "unclosed",
        (false, _) if addr.is_empty() => "syntax",
        (false, _) => "bare",
    };
    (class, addr.trim_matches(['<', '>']).to_string())
}

/// A recipient's class by its domain: none (`unqualified`: some servers qualify it, others
/// refuse it), this host's (a known user or not), or a relay.
fn domain_class(addr: &str, hostname: &str) -> &'static str {
    let Some((user, domain)) = addr.rsplit_once('@') else {
        return "unqualified";
    };
    let local = domain.is_empty()
        || domain.eq_ignore_ascii_case(hostname)
        || domain.eq_ignore_ascii_case("localhost");
    match (local, known_user(user)) {
        (false, _) => "relay",
        (true, true) => "local-known",
        (true, false) => "local-unknown",
    }
}

/// The users every mail server has.
fn known_user(user: &str) -> bool {
    ["root", "postmaster"]
        .iter()
        .any(|u| u.eq_ignore_ascii_case(user))
}

/// The argument's classes, the most particular first.
pub fn classes(
    protocol: Protocol,
    cmd: &Command,
    hostname: &str,
    files: &[FileEntry],
) -> Vec<String> {
    if protocol == Protocol::Ftp {
        let tree: Vec<&FileEntry> = files.iter().collect();
        return ftp::classes(cmd, &tree, "/");
    }
    let given = if cmd.arg.is_empty() { "none" } else { "given" };
    if cmd.verb.len() + cmd.arg.len() >= LONG_LINE {
        return vec!["long".into(), given.into()];
    }
    let v: Vec<&str> = match (protocol, cmd.verb.as_str()) {
        (Protocol::Smtp, "MAIL") => vec![path_class(&cmd.arg, "FROM:").0],
        (Protocol::Smtp, "RCPT") => {
            let (form, addr) = path_class(&cmd.arg, "TO:");
            match form {
                "bracketed" | "bare" => vec![domain_class(&addr, hostname), form],
                _ => vec![form],
            }
        }
        (Protocol::Smtp, "VRFY" | "EXPN") if !cmd.arg.is_empty() => {
            let user = cmd.arg.trim_matches(['<', '>']);
            let user = user.split('@').next().unwrap_or("");
            vec![if known_user(user) { "known" } else { "unknown" }]
        }
        (Protocol::Smtp, "BDAT") => {
            let last = cmd
                .arg
                .split(' ')
                .nth(1)
                .is_some_and(|l| l.eq_ignore_ascii_case("LAST"));
            vec![if last { "last" } else { "chunk" }]
        }
        _ => vec![],
    };
    v.into_iter().chain([given]).map(String::from).collect()
}

/// Answers every complete line (or message, or chunk) in the buffer.
pub(super) async fn commands(c: &mut Conn) -> Result<(), EmulateError> {
    while !c.closed {
        let progressed = match c.mail.mode.clone() {
            Mode::Commands => command(c).await?,
            Mode::Data => data(c).await?,
            Mode::Chunk { .. } => chunk(c).await?,
        };
        if !progressed {
            return Ok(());
        }
    }
    Ok(())
}

/// One command line, if the buffer holds one.
async fn command(c: &mut Conn) -> Result<bool, EmulateError> {
    let Some(n) = c.buf.iter().position(|&b| b == b'\n') else {
        return Ok(false);
    };
    let raw = c.buf.split_to(n + 1);
    c.record(&raw);
    let cmd = Command::parse(&String::from_utf8_lossy(&raw));
    let p = c.cfg.personality.clone();
    let per = &p.personality;
    let (args, version) = match per.protocol {
        Protocol::Ftp => {
            let changed = c.cfg.uploads.snapshot();
            let tree = ftp::merged(&per.files, &changed);
            let path = ftp::resolve(&c.ftp.cwd, cmd.arg.trim());
            let named = ftp::file(&tree, &path);
            c.size = named
                .and_then(|f| ftp::listed_size(&f.listing))
                .unwrap_or(0);
            c.ftp.mtime = named.and_then(|f| f.mtime.clone()).unwrap_or_default();
            (ftp::classes(&cmd, &tree, &c.ftp.cwd), c.ftp.kind.clone())
        }
        _ => (classes(per.protocol, &cmd, &per.hostname, &[]), ANY.into()),
    };
    let key = Key {
        state: &c.state,
        command: &cmd.verb,
        args: &args,
        version: &version,
    };
    let Some(rule) = p.find(&key) else {
        c.closed = true;
        return Ok(true);
    };
    if rule.rule.action == Some(Action::Bdat) && accepted(rule) {
        let size = cmd.arg.split(' ').next().unwrap_or("0").to_string();
        c.mail.mode = Mode::Chunk {
            remaining: size.parse().unwrap_or(0),
            last: args.first().is_some_and(|a| a == "last"),
            rule: index_of(&p.rules, rule),
            size,
        };
        return Ok(true);
    }
    if accepted(rule) && rule.rule.action.is_some_and(transfers) {
        return transfer(c, rule, &cmd).await.map(|()| true);
    }
    if accepted(rule) && rule.rule.action == Some(Action::Passive) {
        let (channel, port) = DataChannel::passive(c.telescope.ip()).await?;
        c.data = channel;
        c.data_port = port;
    }
    c.answer(rule, &cmd.arg).await?;
    act(c, rule, &cmd);
    Ok(true)
}

/// FTP's commands that move data over a data connection.
fn transfers(a: Action) -> bool {
    matches!(
        a,
        Action::List | Action::NameList | Action::Retrieve | Action::Store
    )
}

/// An FTP transfer: the preliminary reply, the data connection, the closing reply (`done`).
async fn transfer(c: &mut Conn, rule: &CompiledRule, cmd: &Command) -> Result<(), EmulateError> {
    let per = &c.cfg.personality.personality;
    let changed = c.cfg.uploads.snapshot();
    let tree = ftp::merged(&per.files, &changed);
    let action = rule.rule.action.unwrap_or(Action::List);
    let out = ftp::outgoing(action, &tree, &c.ftp, &cmd.arg, per.ftp.ascii_crlf);
    if action != Action::Retrieve {
        c.size = out.len();
    }
    c.answer(rule, &cmd.arg).await?;
    let channel = std::mem::take(&mut c.data);
    tracing::debug!("transfer {} over {channel:?}", cmd.verb);
    let Some(data) = channel.open().await else {
        tracing::debug!("no data connection for {}", cmd.verb);
        return Ok(());
    };
    if action == Action::Store {
        let upload = ftp::receive(data, c.cfg.max_message, c.cfg.idle_timeout).await;
        let name = format!("ftp-upload:{}", cmd.arg);
        let per = &c.cfg.personality.personality;
        // STOU names no file: the server chose one the emulator does not know.
        if !cmd.arg.trim().is_empty() {
            let path = ftp::resolve(&c.ftp.cwd, cmd.arg.trim());
            c.cfg.uploads.add(&per.files, &per.ftp, &path, upload.len());
        }
        c.cfg.events.artifact(c.id, &name, upload);
    } else if !ftp::send(data, &out).await {
        return Ok(());
    }
    if let Some(done) = &rule.done {
        let bytes = done.render(&c.fill(&cmd.arg));
        c.send(&bytes).await?;
    }
    Ok(())
}

fn index_of(rules: &[CompiledRule], rule: &CompiledRule) -> usize {
    rules
        .iter()
        .position(|r| std::ptr::eq(r, rule))
        .unwrap_or(0)
}

/// The rule's reply accepts the command (1xx, 2xx or 3xx): only then does its action happen.
fn accepted(rule: &CompiledRule) -> bool {
    rule.rule.reply.starts_with(['1', '2', '3'])
}

/// The real work of a command the server accepted.
fn act(c: &mut Conn, rule: &CompiledRule, cmd: &Command) {
    if !accepted(rule) {
        return;
    }
    match rule.rule.action {
        Some(Action::Sender) => c.mail.sender = Some(path_class(&cmd.arg, "FROM:").1),
        Some(Action::Recipient) => c.mail.recipients.push(path_class(&cmd.arg, "TO:").1),
        Some(Action::Data) => c.mail.mode = Mode::Data,
        Some(Action::Reset) => c.mail = Mail::default(),
        Some(Action::Type) => c.ftp.kind = ftp::transfer_type(&cmd.arg),
        Some(Action::ChangeDir) => {
            let to = match cmd.verb.as_str() {
                "CDUP" | "XCUP" => "..",
                _ => cmd.arg.trim(),
            };
            c.ftp.cwd = ftp::resolve(&c.ftp.cwd, to);
        }
        Some(Action::Active) => {
            c.data = match ftp::active_endpoint(&cmd.verb, &cmd.arg, c.attacker.ip()) {
                Some(to) => DataChannel::Active(to),
                None => DataChannel::None,
            }
        }
        _ => {}
    }
}

/// Stores the finished mail and starts a new envelope.
fn deliver(c: &mut Conn) {
    let mail = std::mem::take(&mut c.mail);
    c.cfg.events.artifact(c.id, "smtp-mail", mail.artifact());
}

/// The DATA message, once its end (a line with a single dot) is in the buffer.
async fn data(c: &mut Conn) -> Result<bool, EmulateError> {
    let end = if c.buf.starts_with(b".\r\n") {
        Some(0)
    } else {
        c.buf
            .windows(5)
            .position(|w| w == b"\r\n.\r\n")
            .map(|i| i + 2)
    };
    let Some(end) = end else {
        return Ok(false);
    };
    let raw = c.buf.split_to(end + 3);
    c.mail.message.extend_from_slice(&raw[..end]);
    deliver(c);
    let p = c.cfg.personality.clone();
    let key = Key {
        state: &c.state,
        command: MESSAGE,
        args: &[],
        version: ANY,
    };
    match p.find(&key) {
        Some(rule) => c.answer(rule, "").await?,
        None => c.closed = true,
    }
    Ok(true)
}

/// A BDAT chunk's bytes; answered once they are all in.
async fn chunk(c: &mut Conn) -> Result<bool, EmulateError> {
    let Mode::Chunk {
        remaining,
        last,
        rule,
        size,
    } = c.mail.mode.clone()
    else {
        return Ok(false);
    };
    let take = remaining.min(c.buf.len());
    let bytes = c.buf.split_to(take);
    c.mail.message.extend_from_slice(&bytes);
    if take < remaining {
        c.mail.mode = Mode::Chunk {
            remaining: remaining - take,
            last,
            rule,
            size,
        };
        return Ok(false);
    }
    c.mail.mode = Mode::Commands;
    if last {
        deliver(c);
    }
    let p = c.cfg.personality.clone();
    if let Some(r) = p.rules.get(rule) {
        c.answer(r, &size).await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cls(line: &str) -> Vec<String> {
        classes(Protocol::Smtp, &Command::parse(line), "mx", &[])
    }

    #[test]
    fn classes_smtp_arguments() {
        assert_eq!(cls("MAIL FROM:<a@b>"), ["bracketed", "given"]);
        assert_eq!(cls("mail from:<>"), ["null", "given"]);
        assert_eq!(cls("MAIL FROM:<a@b"), ["unclosed", "given"]);
        assert_eq!(cls("MAIL TO:<a@b>"), ["syntax", "given"]);
        assert_eq!(
            cls("RCPT TO:<root@mx>"),
            ["local-known", "bracketed", "given"]
        );
        assert_eq!(cls("RCPT TO:joe@mx"), ["local-unknown", "bare", "given"]);
        assert_eq!(cls("RCPT TO: test"), ["unqualified", "bare", "given"]);
        assert_eq!(
            cls("RCPT TO:<x@example.org>"),
            ["relay", "bracketed", "given"]
        );
        assert_eq!(cls("VRFY postmaster"), ["known", "given"]);
        assert_eq!(cls("BDAT 10 LAST"), ["last", "given"]);
        assert_eq!(cls("HELP"), ["none"]);
        assert_eq!(cls(&format!("NOOP {}", "x".repeat(1000)))[0], "long");
    }
}

//! The SMTP battery, after smtpscan and smtpmap: HELO/EHLO variants, HELP, VRFY/EXPN, MAIL and
//! RCPT with and without angle brackets (one missing), RCPT before MAIL, known, unknown and
//! relayed recipients, DATA out of order, SOML/SAML/TURN/ETRN and unknown verbs, over-long
//! lines, a whole mail by DATA and by BDAT. Each probe is its own connection (servers count
//! errors per connection), after the commands that reach its state; each is sent twice with
//! other arguments. smtpscan's 15 tests (its `tests` file, as Nessus' smtpscan.nasl carries
//! it) are all here by their classes: MAIL before HELO with a bare sender, HELO without
//! argument, MAIL without colon, null, unclosed, RCPT of an unqualified user, HELP, VRFY,
//! EXPN, TURN, SOML, SAML, NOOP, EHLO.

use super::dynamic::{merge, templatize, Known};
use super::{Probe, Progress, ScanError, ScanOptions};
use crate::emulate::line::{classes, Command, MESSAGE};
use crate::emulate::personality::{Action, Personality, Protocol, Rule, ANY};

/// The commands that bring a connection to each state (`{helo}`, `{host}`, `{from}` filled
/// per pass).
const REACH: &[(&str, &[&str])] = &[
    ("start", &[]),
    ("helo", &["EHLO {helo}"]),
    ("mail", &["EHLO {helo}", "MAIL FROM:<{from}>"]),
    (
        "rcpt",
        &["EHLO {helo}", "MAIL FROM:<{from}>", "RCPT TO:<root@{host}>"],
    ),
];

const ANYWHERE: &[&str] = &[
    "NOOP",
    "HELP",
    "HELP MAIL",
    "HELP RCPT",
    "VRFY root",
    "VRFY nosuchuser9",
    "VRFY",
    "EXPN root",
    "EXPN",
    "SOML FROM:<{from}>",
    "SAML FROM:<{from}>",
    "TURN",
    "ETRN {host}",
    "QWERTY",
    "RSET",
    "{long}",
    "MAIL FROM:<{from}>",
    "RCPT TO:<root@{host}>",
    "DATA",
    "QUIT",
];

const START: &[&str] = &[
    "HELO",
    "EHLO",
    "HELO {helo}",
    "EHLO {helo}",
    "MAIL FROM: {from}",
];
const HELO: &[&str] = &[
    "MAIL FROM:{from}",
    "MAIL FROM:<{from}",
    "MAIL FROM:<>",
    "MAIL TO:<{from}>",
    "EHLO {helo}",
];
const MAIL: &[&str] = &[
    "RCPT TO:<nosuchuser9@{host}>",
    "RCPT TO:<someone@example.org>",
    "RCPT TO:root@{host}",
    "RCPT TO:<root@{host}",
    "RCPT FROM:<root@{host}>",
    "RCPT TO: nosuchuser9",
];
const RCPT: &[&str] = &["RCPT TO:<postmaster@{host}>", "{bdat}", "{mail}"];

/// The verb standing for every verb the server does not know.
const UNKNOWN: &str = "QWERTY";

/// Values that differ between the two passes.
struct Pass {
    helo: String,
    from: String,
    body: String,
}

fn pass(n: usize) -> Pass {
    Pass {
        helo: format!("client{n}.example.net"),
        from: format!("sender{n}@example.net"),
        body: format!("Subject: hello\r\n\r\nmessage number {n}\r\n"),
    }
}

/// The probes of one state.
fn probes(state: &str) -> Vec<&'static str> {
    let own: &[&str] = match state {
        "start" => START,
        "helo" => HELO,
        "mail" => MAIL,
        _ => RCPT,
    };
    own.iter().chain(ANYWHERE).copied().collect()
}

pub fn battery_len() -> usize {
    REACH.iter().map(|(s, _)| probes(s).len()).sum()
}

/// A reply is complete once a line has a code and a space (`250 Ok`).
pub fn reply_complete(r: &[u8]) -> bool {
    r.ends_with(b"\r\n")
        && r[..r.len() - 2]
            .rsplit(|&b| b == b'\n')
            .next()
            .is_some_and(|l| l.len() >= 4 && l[..3].iter().all(u8::is_ascii_digit) && l[3] == b' ')
}

/// What one command of a probe is: its line, bytes sent after it (BDAT), the verb and
/// argument it is keyed as.
struct Step {
    line: String,
    extra: Vec<u8>,
    key: Command,
    echo: String,
}

fn step(template: &str, p: &Pass, host: &str) -> Vec<Step> {
    let fill = |t: &str| {
        t.replace("{helo}", &p.helo)
            .replace("{from}", &p.from)
            .replace("{host}", host)
    };
    let plain = |line: String| {
        let key = Command::parse(&line);
        let echo = key.arg.clone();
        Step {
            line,
            extra: Vec::new(),
            key,
            echo,
        }
    };
    match template {
        "{long}" => vec![plain(format!("NOOP {}", "x".repeat(1100)))],
        "{mail}" => {
            let mut d = plain("DATA".into());
            d.extra = format!("{}.\r\n", p.body).into_bytes();
            vec![d]
        }
        "{bdat}" => {
            let size = p.body.len().to_string();
            vec![Step {
                line: format!("BDAT {size} LAST"),
                extra: p.body.clone().into_bytes(),
                key: Command::parse(&format!("BDAT {size} LAST")),
                echo: size,
            }]
        }
        t => vec![plain(fill(t))],
    }
}

/// The state after a reply: from the reply code and the command, as SMTP defines it.
fn next(state: &str, verb: &str, reply: &str) -> Option<&'static str> {
    if !reply.starts_with(['2', '3']) {
        return None;
    }
    match verb {
        "HELO" | "EHLO" => Some("helo"),
        "RSET" if state != "start" => Some("helo"),
        "MAIL" => Some("mail"),
        "RCPT" => Some("rcpt"),
        "DATA" => Some("data"),
        MESSAGE | "BDAT" => Some("helo"),
        _ => None,
    }
}

fn action(verb: &str) -> Option<Action> {
    match verb {
        "MAIL" => Some(Action::Sender),
        "RCPT" => Some(Action::Recipient),
        "DATA" => Some(Action::Data),
        "BDAT" => Some(Action::Bdat),
        "RSET" | "HELO" | "EHLO" => Some(Action::Reset),
        _ => None,
    }
}

/// One exchange as a rule (its reply not yet merged with the other pass's).
struct Seen {
    rule: Rule,
}

/// Tries a probe this often while the server is too slow to answer every command in time
/// (a loaded machine): a late banner would be taken for the next command's reply.
const TRIES: usize = 3;

/// Runs one probe, again while a reply came incomplete.
async fn probe_whole(
    o: &ScanOptions,
    reach: &[&str],
    probe: &str,
    p: &Pass,
    banner: &mut Option<String>,
) -> Result<Vec<Seen>, ScanError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let (seen, whole) = run_probe(o, reach, probe, p, banner).await?;
        if whole || tries == TRIES {
            return Ok(seen);
        }
    }
}

/// Runs one probe in a fresh connection: the commands that reach `state`, then the probe.
/// Also says whether every reply came whole (or the server closed).
async fn run_probe(
    o: &ScanOptions,
    reach: &[&str],
    probe: &str,
    p: &Pass,
    banner: &mut Option<String>,
) -> Result<(Vec<Seen>, bool), ScanError> {
    let mut c = Probe::connect(o).await?;
    let peer = c.local_ip();
    let known = |arg: &str| KnownNow {
        arg: arg.to_string(),
        hostname: o.hostname.clone(),
        address: o.target.ip().to_string(),
        peer: peer.clone(),
    };
    let greeting = c.send(b"", reply_complete).await;
    let mut whole = reply_complete(&greeting.reply);
    if !whole {
        return Ok((Vec::new(), false));
    }
    if banner.is_none() {
        *banner = Some(known("").template(&greeting.reply));
    }
    let mut seen = Vec::new();
    let mut at = "start".to_string();
    let steps = reach
        .iter()
        .chain([&probe])
        .flat_map(|t| step(t, p, &o.hostname));
    for s in steps {
        let mut x = c
            .send(format!("{}\r\n", s.line).as_bytes(), reply_complete)
            .await;
        let mut verb = s.key.verb.clone();
        let args = classes(Protocol::Smtp, &s.key, &o.hostname, &[]);
        let mut rules = vec![(verb.clone(), args[0].clone(), x.clone())];
        if !s.extra.is_empty() && x.reply.starts_with(b"354") {
            rules.push((
                MESSAGE.into(),
                ANY.into(),
                c.send(&s.extra, reply_complete).await,
            ));
        } else if !s.extra.is_empty() {
            x = c.send(&s.extra, reply_complete).await;
            rules[0].2 = x.clone();
        }
        whole &= rules
            .iter()
            .all(|(_, _, x)| x.closed || reply_complete(&x.reply));
        for (v, arg, x) in rules {
            verb = if v == UNKNOWN { ANY.into() } else { v };
            let reply = known(&s.echo).template(&x.reply);
            let to = next(&at, &verb, &reply);
            seen.push(Seen {
                rule: Rule {
                    state: at.clone(),
                    command: verb.clone(),
                    arg,
                    version: ANY.into(),
                    next: to.map(String::from),
                    close: x.closed,
                    action: action(&verb),
                    done: None,
                    reply,
                },
            });
            if let Some(t) = to {
                at = t.into();
            }
        }
        if c.is_closed() || !whole {
            break;
        }
    }
    Ok((seen, whole))
}

/// What the scanner knew in one connection.
struct KnownNow {
    arg: String,
    hostname: String,
    address: String,
    peer: String,
}

impl KnownNow {
    fn template(&self, reply: &[u8]) -> String {
        let t = templatize(
            reply,
            &Known {
                arg: &self.arg,
                hostname: &self.hostname,
                address: &self.address,
                peer: &self.peer,
            },
        );
        size_placeholder(t, &self.arg)
    }
}

/// BDAT's byte count (`Ok: 57 bytes`, `57 byte chunk, total 57`) as the echoed size.
fn size_placeholder(t: String, arg: &str) -> String {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return t;
    }
    [" ", ",", "\r"].iter().fold(t, |t, after| {
        t.replace(&format!(" {arg}{after}"), &format!(" {{echo}}{after}"))
    })
}

/// Runs the battery twice and adds a rule per exchange, the banner, and merges the passes.
pub async fn scan(
    o: &ScanOptions,
    per: &mut Personality,
    bar: &mut Progress,
) -> Result<(), ScanError> {
    let (p1, p2) = (pass(1), pass(2));
    let mut banner = None;
    for (state, reach) in REACH {
        for probe in probes(state) {
            bar.step(&format!("{state}: {probe}"));
            let a = probe_whole(o, reach, probe, &p1, &mut banner).await?;
            let b = probe_whole(o, reach, probe, &p2, &mut None).await?;
            for (i, s) in a.into_iter().enumerate() {
                let mut rule = s.rule;
                if let Some(other) = b.get(i).filter(|o| o.rule.state == rule.state) {
                    rule.reply = merge(&rule.reply, &other.rule.reply);
                }
                per.add_rule(rule);
            }
        }
    }
    per.banner = banner;
    Ok(())
}

//! The farm's session without Samba: an in-process fake honeypot (a `Backend` whose server is
//! a tokio task on 127.0.0.1, port 0) answers the shipped script's dialog with cookies of its
//! own (other UIDs, TIDs, FIDs, handles), so the handoff and the bridge are tested here: a
//! handoff that succeeds with cookies translated both ways, a honeypot that answers
//! differently, one that closes, decode errors on either side (counted and recorded), and the
//! deadline of a message that never completes.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use honeyfarm_protocols::REGISTRY;
use honeyfarm_runtime::codec::{AnyMessage, FrameBuf, MatchKey, Role, RoleFields, Value};
use honeyfarm_runtime::farm::{
    sample, serve_connection, stored_messages, Backend, Deadlines, EventStore, Honeypot,
    HoneypotError, Metrics, Outcome, Pool, SessionConfig, UNDECODABLE,
};
use honeyfarm_runtime::replay::{pair_cookies, Conversation, Library, Script, Side};
use honeyfarm_runtime::rewrite::{Rewrite, ValueMap, Way};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

fn script() -> Arc<Script> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("protocols/scripts/samba-enumdomusers.json");
    Arc::new(Script::load(&path, &|name| REGISTRY.iter().find(|e| e.name == name)).expect("loads"))
}

/// The script's client messages, in order, with the number of replies each gets.
fn dialog(s: &Script) -> Vec<(Bytes, usize)> {
    let mut out: Vec<(Bytes, usize)> = Vec::new();
    for m in &s.messages {
        match m.side {
            Side::Client => out.push((m.bytes.clone(), 0)),
            Side::Server => out.last_mut().expect("the client speaks first").1 += 1,
        }
    }
    out
}

/// A cookie of the honeypot's own for one of the script's: numbers and bytes flipped.
fn own(v: &Value) -> Value {
    match v {
        Value::Uint(n) => Value::Uint(n ^ 0x0101),
        Value::Bytes(b) => Value::Bytes(b.iter().map(|c| c ^ 0x5a).collect::<Vec<u8>>().into()),
        other => other.clone(),
    }
}

/// How the fake honeypot behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers like the script's server, in its own cookies.
    Faithful,
    /// Answers the first message with the reply of the second.
    Differently,
    /// Closes at the first message.
    Closes,
    /// Answers a message the script does not have with bytes that do not decode.
    Garbage,
}

/// What the fake honeypot saw.
#[derive(Debug, Default)]
struct Seen {
    /// Per message received: its role fields as `path=value`.
    messages: Vec<Vec<(String, Value)>>,
    /// Cookies that did not pair with the script's consistently (not in its values).
    errors: Vec<String>,
}

struct Fake {
    script: Arc<Script>,
    mode: Mode,
    /// The honeypot's cookies (left) for the script's server-issued ones (right).
    seeds: ValueMap,
    seen: Mutex<Seen>,
}

impl Fake {
    fn new(script: Arc<Script>, mode: Mode) -> Arc<Fake> {
        let mut seeds = ValueMap::new();
        let mut clients: HashSet<(&'static str, Value)> = HashSet::new();
        for m in &script.messages {
            for f in &m.fields {
                let Role::Cookie { namespace, .. } = f.role else {
                    continue;
                };
                let key = (*namespace, f.value.clone());
                match m.side {
                    Side::Client => {
                        clients.insert(key);
                    }
                    Side::Server if !clients.contains(&key) && f.value != Value::Uint(0) => {
                        let _ = seeds.bind(namespace, own(&f.value), f.value.clone());
                    }
                    Side::Server => {}
                }
            }
        }
        Arc::new(Fake {
            script,
            mode,
            seeds,
            seen: Mutex::new(Seen::default()),
        })
    }

    /// Serves one connection from the farm.
    async fn serve(self: Arc<Self>, mut sock: TcpStream) {
        let entry = self.script.service.client;
        let mut conv = Conversation::new();
        let mut buf = FrameBuf::new(1 << 20);
        let mut used = vec![false; self.script.messages.len()];
        loop {
            let msg = loop {
                match conv.next_message(entry, &mut buf, true) {
                    Ok(Some(d)) => break d,
                    Ok(None) => {}
                    Err(_) => return,
                }
                match sock.read_buf(buf.read_target()).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            };
            if self.mode == Mode::Closes {
                return;
            }
            let Some(replies) = self.answer(msg.msg.as_ref(), &mut used) else {
                return;
            };
            for r in replies {
                if sock.write_all(&r).await.is_err() {
                    return;
                }
            }
        }
    }

    /// The replies to a message: the script's for its first unused client message with the
    /// same content (or the last one, for a repeat), in the honeypot's cookies.
    fn answer(&self, msg: &dyn AnyMessage, used: &mut [bool]) -> Option<Vec<Bytes>> {
        let s = &self.script;
        let key = MatchKey::of_any(msg);
        let fields = RoleFields::of_any(msg);
        self.seen.lock().unwrap().messages.push(
            fields
                .iter()
                .map(|f| (f.path.clone(), f.value.clone()))
                .collect(),
        );
        let same = |i: &usize| s.messages[*i].side == Side::Client && s.messages[*i].key == key;
        let fresh = (0..s.messages.len()).find(|i| same(i) && !used[*i]);
        let i = fresh.or_else(|| (0..s.messages.len()).rev().find(same))?;
        if fresh.is_none() && self.mode == Mode::Garbage {
            // A NetBIOS message whose SMB header is cut short.
            return Some(vec![Bytes::from_static(
                b"\x00\x00\x00\x08\xffSMBr\x00\x00\x00",
            )]);
        }
        used[i] = true;
        let mut map = self.seeds.clone();
        if let Err(e) = pair_cookies(&mut map, &fields, &s.messages[i].fields) {
            self.seen.lock().unwrap().errors.push(e);
        }
        let first = match self.mode {
            Mode::Differently if i == 0 => {
                s.messages
                    .iter()
                    .skip(2)
                    .position(|m| m.side == Side::Server)?
                    + 2
            }
            _ => i + 1,
        };
        let mut out = Vec::new();
        for j in first..s.messages.len() {
            if s.messages[j].side != Side::Server {
                break;
            }
            let mut d = s.decode(j)?;
            for f in &s.messages[j].fields {
                if let Role::Cookie { namespace, .. } = f.role {
                    map.bind_new(namespace, &f.value);
                }
            }
            let mut rw = Rewrite::new();
            rw.cookies = Some((&map, Way::Backward));
            out.push(rw.apply(d.msg.as_mut()).ok()?);
            if self.mode == Mode::Differently {
                break;
            }
        }
        Some(out)
    }
}

/// A backend whose one honeypot is the fake, already listening.
struct FakeBackend {
    addr: SocketAddr,
}

impl Backend for FakeBackend {
    fn start(&self, _addr: SocketAddr) -> Result<Honeypot, HoneypotError> {
        Ok(Honeypot::in_process(self.addr, std::env::temp_dir()))
    }
    fn stop(&self, _honeypot: Honeypot) {}
}

/// Starts a fake honeypot; returns its pool.
async fn fake_pool(fake: Arc<Fake>) -> Arc<Pool> {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(fake.clone().serve(sock));
        }
    });
    Pool::new(Arc::new(FakeBackend { addr }), vec![addr], 0)
}

fn store() -> (EventStore, PathBuf) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "honeyfarm-session-{}-{n}.sqlite",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    (EventStore::open(&path).unwrap(), path)
}

fn config(pool: Option<Arc<Pool>>, events: EventStore, deadlines: Deadlines) -> Arc<SessionConfig> {
    config_with(&[script()], pool, events, deadlines)
}

/// A session configuration whose library holds `scripts`, in this order.
fn config_with(
    scripts: &[Arc<Script>],
    pool: Option<Arc<Pool>>,
    events: EventStore,
    deadlines: Deadlines,
) -> Arc<SessionConfig> {
    let s = &scripts[0];
    let mut library = Library::new();
    for x in scripts {
        library.add((**x).clone());
    }
    Arc::new(SessionConfig {
        service: s.service.clone(),
        unframeable: honeyfarm_protocols::services::service(&s.service.name)
            .expect("a service of the table")
            .unframeable,
        library: Arc::new(library),
        pool,
        events,
        reply_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        max_message: 1 << 20,
        max_artifact: 1 << 20,
        names: Vec::new(),
        deadlines,
        metrics: Some(Metrics::new()),
    })
}

/// Serves one connection whose attacker is `attacker`; returns the session's end and what
/// the attacker returned.
async fn session<T, F>(
    cfg: Arc<SessionConfig>,
    attacker: impl FnOnce(TcpStream) -> F,
) -> ((Outcome, String), T)
where
    F: std::future::Future<Output = T>,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let farm = async {
        let (sock, peer) = l.accept().await.unwrap();
        let (_, outcome, detail) = serve_connection(cfg, sock, peer, addr, stop).await;
        (outcome, detail)
    };
    let client = async { attacker(TcpStream::connect(addr).await.unwrap()).await };
    tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(farm, client)
    })
    .await
    .expect("the session ends")
}

/// Reads one NetBIOS message.
async fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
    let mut body = vec![0u8; 4 + len];
    body[..4].copy_from_slice(&head);
    s.read_exact(&mut body[4..]).await.ok()?;
    Some(body.into())
}

/// Follows the whole script, then sends its last client message again (MID 15): a deviation.
/// Returns the reply to it, if any.
async fn follow_then_repeat(sock: TcpStream, after: Option<&'static [u8]>) -> Option<Bytes> {
    let s = script();
    let last = dialog(&s).len() - 1;
    follow_then_ask(sock, s, last, after).await
}

/// Follows the whole of `s`, then sends its client message `again` once more (MID 15): a
/// deviation; then `after`, if any. Returns the reply to the repeated message, if any.
async fn follow_then_ask(
    mut sock: TcpStream,
    s: Arc<Script>,
    again: usize,
    after: Option<&'static [u8]>,
) -> Option<Bytes> {
    let d = dialog(&s);
    for (bytes, replies) in &d {
        sock.write_all(bytes).await.ok()?;
        for _ in 0..*replies {
            read_frame(&mut sock).await?;
        }
    }
    let mut again = d[again].0.to_vec();
    // NetBIOS header (4) + SMB header: the MID sits at offset 30.
    again[34..36].copy_from_slice(&15u16.to_le_bytes());
    sock.write_all(&again).await.ok()?;
    let reply = read_frame(&mut sock).await;
    if let Some(b) = after {
        sock.write_all(b).await.ok()?;
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest).await;
    }
    reply
}

fn value_at(msg: &dyn AnyMessage, suffix: &str) -> Value {
    RoleFields::of_any(msg)
        .into_iter()
        .find(|f| f.path.ends_with(suffix))
        .map(|f| f.value)
        .unwrap_or_else(|| panic!("no {suffix}"))
}

/// `(source, kind, roles)` of the connection's messages.
fn messages(events: &EventStore, path: &PathBuf) -> Vec<(String, String, String)> {
    events.close();
    let db = rusqlite::Connection::open(path).unwrap();
    let mut q = db
        .prepare("SELECT source, kind, roles FROM messages ORDER BY id")
        .unwrap();
    let rows = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

/// What a session whose attacker follows the script and then repeats its last message left.
struct Run {
    outcome: Outcome,
    detail: String,
    /// The answer to the repeated message.
    reply: Option<Bytes>,
    /// `(source, kind, roles)` of every message recorded.
    messages: Vec<(String, String, String)>,
    /// Handoffs the metrics counted.
    handoffs: Option<f64>,
}

impl Run {
    /// Checks the outcome and how the detail ends.
    fn ends(&self, outcome: Outcome, detail_end: &str) {
        let detail = &self.detail;
        assert_eq!(self.outcome, outcome, "{detail}");
        assert!(detail.ends_with(detail_end), "{detail}");
    }

    fn count(&self, f: impl Fn(&(String, String, String)) -> bool) -> usize {
        self.messages.iter().filter(|m| f(m)).count()
    }
}

/// Runs that session against a fake honeypot behaving as `mode` (none: no honeypots); the
/// attacker sends `after` once answered.
async fn deviating(fake: Option<Arc<Fake>>, after: Option<&'static [u8]>) -> Run {
    deviating_until(fake, after, Deadlines::default()).await
}

/// [`deviating`] under `deadlines`.
async fn deviating_until(
    fake: Option<Arc<Fake>>,
    after: Option<&'static [u8]>,
    deadlines: Deadlines,
) -> Run {
    let (events, path) = store();
    let pool = match fake {
        Some(f) => Some(fake_pool(f).await),
        None => None,
    };
    let cfg = config(pool, events.clone(), deadlines);
    let metrics = cfg.metrics.clone();
    let ((outcome, detail), reply) = session(cfg, |sock| follow_then_repeat(sock, after)).await;
    Run {
        outcome,
        detail,
        reply,
        messages: messages(&events, &path),
        handoffs: metrics.and_then(|m| sample(&m.render(), "honeyfarm_handoff_latency_ms_count")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deviating_attacker_is_bridged_with_cookies_translated_both_ways() {
    let s = script();
    let fake = Fake::new(s.clone(), Mode::Faithful);
    let run = deviating(Some(fake.clone()), None).await;
    let detail = &run.detail;
    assert_eq!(
        run.outcome,
        Outcome::Bridged { deviated_at: 15 },
        "{detail}"
    );
    assert_eq!(detail, "the script ends after 30 messages");

    // The attacker hears the script's UID and TID and its own MID, not the honeypot's.
    let reply = run
        .reply
        .clone()
        .expect("the honeypot's answer reaches the attacker");
    let d = Conversation::new()
        .decode(s.service.server, reply, false)
        .unwrap();
    assert_eq!(value_at(d.msg.as_ref(), "Smb1.uid"), Value::Uint(62344));
    assert_eq!(value_at(d.msg.as_ref(), "Smb1.tid"), Value::Uint(43336));
    assert_eq!(value_at(d.msg.as_ref(), "Smb1.mid"), Value::Uint(15));

    // The honeypot heard its own values, consistently, in every message.
    let seen = fake.seen.lock().unwrap();
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    assert_eq!(seen.messages.len(), 16);
    let field = |m: &Vec<(String, Value)>, suffix: &str| {
        m.iter()
            .find(|(p, _)| p.ends_with(suffix))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        field(&seen.messages[15], "Smb1.uid"),
        Some(own(&Value::Uint(62344)))
    );
    assert_eq!(
        field(&seen.messages[5], ".fid"),
        Some(own(&Value::Uint(38584)))
    );

    let m = &run.messages;
    assert_eq!(run.count(|(s, _, _)| s == "replayed"), 30, "{m:?}");
    assert_eq!(run.count(|(s, _, _)| s == "relayed"), 2, "{m:?}");
    assert_eq!(run.count(|(_, k, _)| k == UNDECODABLE), 0, "{m:?}");
    assert_eq!(
        run.handoffs,
        Some(1.0),
        "the handoff's latency is in the histogram"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_honeypot_that_answers_differently_fails_the_handoff() {
    let run = deviating(Some(Fake::new(script(), Mode::Differently)), None).await;
    let detail = &run.detail;
    assert_eq!(
        run.outcome,
        Outcome::HandoffFailed { deviated_at: 15 },
        "{detail}"
    );
    assert!(
        detail.starts_with(
            "the script ends after 30 messages; the honeypot answered Smb1.NegotiateResponse"
        ) && detail.contains("differently"),
        "{detail}"
    );
    assert!(run.reply.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_honeypot_that_closes_fails_the_handoff() {
    let run = deviating(Some(Fake::new(script(), Mode::Closes)), None).await;
    run.ends(
        Outcome::HandoffFailed { deviated_at: 15 },
        "the honeypot closed the connection",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_honeypots_a_deviation_ends_the_session() {
    let run = deviating(None, None).await;
    run.ends(
        Outcome::HandoffFailed { deviated_at: 15 },
        "no honeypots are configured for smb",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_honeypot_message_that_does_not_decode_is_counted_and_recorded() {
    let run = deviating(Some(Fake::new(script(), Mode::Garbage)), None).await;
    let detail = &run.detail;
    assert_eq!(
        run.outcome,
        Outcome::Bridged { deviated_at: 15 },
        "{detail}"
    );
    assert!(
        detail.contains("bridge ended: honeypot message 15 does not decode")
            && detail.ends_with("(1 messages did not decode where they went)"),
        "{detail}"
    );
    assert!(run.reply.is_none());
    let bad: Vec<_> = run
        .messages
        .iter()
        .filter(|(_, k, _)| k == UNDECODABLE)
        .collect();
    assert_eq!(bad.len(), 1, "{:?}", run.messages);
    assert!(bad[0].2.contains("does not decode"), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_message_that_does_not_decode_is_counted_and_recorded() {
    let garbage: &'static [u8] = b"\x00\x00\x00\x08\xffSMBr\x00\x00\x00";
    let run = deviating(Some(Fake::new(script(), Mode::Faithful)), Some(garbage)).await;
    let detail = &run.detail;
    assert!(run.reply.is_some());
    assert_eq!(
        run.outcome,
        Outcome::Bridged { deviated_at: 15 },
        "{detail}"
    );
    assert!(
        detail.contains("bridge ended: attacker message 16 does not decode"),
        "{detail}"
    );
    let m = &run.messages;
    assert_eq!(run.count(|(_, k, _)| k == UNDECODABLE), 1, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_trickled_past_its_deadline_ends_the_session() {
    let (events, _path) = store();
    let deadlines = Deadlines {
        message: Some(Duration::from_millis(300)),
        session: None,
    };
    let cfg = config(None, events, deadlines);
    let first = dialog(&script())[0].0.clone();
    let ((outcome, detail), sent) = session(cfg, |mut sock| async move {
        // One byte every 50 ms: never silent for the idle timeout, never a whole message.
        let mut sent = 0;
        for b in first.iter().take(40) {
            if sock.write_all(&[*b]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    })
    .await;
    assert_eq!(outcome, Outcome::Error, "{detail}");
    assert_eq!(detail, "attacker took more than 300 ms to send message 0");
    assert!(sent < 40, "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_past_its_deadline_ends() {
    let (events, _path) = store();
    let deadlines = Deadlines {
        message: None,
        session: Some(Duration::from_millis(300)),
    };
    let cfg = config(None, events, deadlines);
    let ((outcome, detail), ()) = session(cfg, |mut sock| async move {
        // Silent for less than the idle timeout, longer than the session may last.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), sock.read_to_end(&mut rest)).await;
    })
    .await;
    assert_eq!(outcome, Outcome::Error, "{detail}");
    assert_eq!(detail, "the session lasted more than 300 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridged_session_past_its_deadline_ends_bridged() {
    let deadlines = Deadlines {
        message: None,
        session: Some(Duration::from_secs(4)),
    };
    // Bridged, answered, then silent (for less than the idle timeout) until the farm closes.
    let fake = Fake::new(script(), Mode::Faithful);
    let run = deviating_until(Some(fake), Some(b""), deadlines).await;
    assert!(run.reply.is_some(), "the honeypot answered");
    run.ends(
        Outcome::Bridged { deviated_at: 15 },
        "the script ends after 30 messages; bridge ended: the session lasted more than 4000 ms",
    );
}

/// A second script from the same honeypot configuration as the shipped one: rpcclient
/// `getdompwinfo; getusrdompwinfo 1000; queryusergroups 1000`, which begins with the same
/// requests as `enumdomusers` (Negotiate, Session Setup, Tree Connect, the `\\samr` pipe, its
/// bind and SAMR Connect) and then goes its own way.
fn pwinfo_script() -> Arc<Script> {
    let pcap =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/samba/samr-pwinfo.pcap");
    let messages = common::conversation(&pcap)
        .into_iter()
        .map(|(to_server, b)| {
            (
                if to_server {
                    Side::Client
                } else {
                    Side::Server
                },
                b,
            )
        })
        .collect();
    let shipped = script();
    Arc::new(
        Script::new(
            shipped.service.clone(),
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:4497".parse().unwrap(),
            "samr-pwinfo.pcap",
            messages,
        )
        .expect("the capture makes a script"),
    )
}

/// An attacker that follows `s` the way a real client does: its requests carry the cookies
/// the farm's replies gave it (learnt by pairing each reply with the script's).
async fn echo(mut sock: TcpStream, s: Arc<Script>) -> usize {
    let mut farm = ValueMap::new();
    let mut conv = Conversation::new();
    let mut answered = 0;
    for (i, m) in s.messages.iter().enumerate() {
        if m.side == Side::Client {
            let mut d = s.decode(i).expect("the script decodes");
            let mut rw = Rewrite::new();
            rw.cookies = Some((&farm, Way::Backward));
            let out = rw.apply(d.msg.as_mut()).expect("rewrites");
            conv.decode(s.service.client, out.clone(), true)
                .expect("decodes");
            if sock.write_all(&out).await.is_err() {
                break;
            }
            continue;
        }
        let Some(reply) = read_frame(&mut sock).await else {
            break;
        };
        let d = conv
            .decode(s.service.server, reply, false)
            .expect("decodes");
        pair_cookies(&mut farm, &RoleFields::of_any(d.msg.as_ref()), &m.fields)
            .expect("the farm's cookies pair with the script's");
        assert_eq!(
            MatchKey::of_any(d.msg.as_ref()),
            m.key,
            "reply {i} ({}) is the script's",
            m.kind
        );
        answered += 1;
    }
    answered
}

/// `(script, outcome)` of every connection.
fn connections(events: &EventStore, path: &PathBuf) -> Vec<(String, String)> {
    events.close();
    let db = rusqlite::Connection::open(path).unwrap();
    let mut q = db
        .prepare("SELECT script, outcome FROM connections ORDER BY id")
        .unwrap();
    let rows = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_that_begin_alike_each_serve_their_own_dialog() {
    let (a, b) = (script(), pwinfo_script());
    // The two really share their opening requests (up to cookies).
    let requests = |s: &Script| -> Vec<MatchKey> {
        s.messages
            .iter()
            .filter(|m| m.side == Side::Client)
            .map(|m| m.key.clone())
            .collect()
    };
    let shared = requests(&a)
        .iter()
        .zip(requests(&b).iter())
        .take_while(|(x, y)| x == y)
        .count();
    assert!(shared >= 5, "only {shared} requests in common");
    for (order, follows) in [
        ([a.clone(), b.clone()], b.clone()),
        ([a.clone(), b.clone()], a.clone()),
        ([b.clone(), a.clone()], a.clone()),
    ] {
        let (events, path) = store();
        let cfg = config_with(&order, None, events.clone(), Deadlines::default());
        let follows2 = follows.clone();
        let ((outcome, detail), answered) = session(cfg, |sock| echo(sock, follows2)).await;
        let replies = follows
            .messages
            .iter()
            .filter(|m| m.side == Side::Server)
            .count();
        assert_eq!(outcome, Outcome::Scripted, "{detail}");
        assert_eq!(answered, replies);
        // The connection's script is the first to answer; the store still gives back every
        // message as it went, those answered after another script took over kept whole.
        let c = connections(&events, &path);
        assert_eq!(c, vec![(order[0].source.clone(), "scripted".to_string())]);
        let db = rusqlite::Connection::open(&path).unwrap();
        let stored: Vec<(bool, String)> = stored_messages(&db, 1)
            .unwrap()
            .into_iter()
            .map(|m| (m.to_server, m.kind))
            .collect();
        let sent: Vec<(bool, String)> = follows
            .messages
            .iter()
            .map(|m| (m.side == Side::Client, m.kind.clone()))
            .collect();
        assert_eq!(stored, sent);
        let _ = std::fs::remove_file(&path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_of_another_domain_hands_off_with_its_sid_mapped() {
    let (other, sid) = common::of_another_domain(&script());
    let other = Arc::new(other);
    assert_eq!(common::domain_sid(&other), sid);
    let honeypot_sid = common::domain_sid(&script());
    // The honeypot is the machine of the shipped script: its own SID, not the script's.
    let fake = Fake::new(script(), Mode::Faithful);
    let (events, path) = store();
    let pool = fake_pool(fake.clone()).await;
    let cfg = config_with(
        std::slice::from_ref(&other),
        Some(pool),
        events.clone(),
        Deadlines::default(),
    );
    // Deviates by looking the domain up again once the script is over: the honeypot answers.
    let lookup = other
        .messages
        .iter()
        .filter(|m| m.side == Side::Client)
        .position(|m| m.kind.ends_with("LookupDomainRequest"))
        .expect("a LookupDomain request");
    let ((outcome, detail), reply) = session(cfg, |sock| {
        follow_then_ask(sock, other.clone(), lookup, None)
    })
    .await;
    assert_eq!(outcome, Outcome::Bridged { deviated_at: 15 }, "{detail}");
    // The replayed prefix (its LookupDomain and OpenDomain) reached the honeypot in its SID.
    let seen = fake.seen.lock().unwrap();
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    assert_eq!(seen.messages.len(), 16);
    // The honeypot's answer reaches the attacker in the script's SID.
    let reply = reply.expect("the honeypot's answer reaches the attacker");
    let has = |w: &[u32]| {
        w.iter()
            .all(|v| reply.windows(4).any(|x| x == v.to_le_bytes()))
    };
    assert!(has(&sid), "the script's SID");
    assert!(!honeypot_sid
        .iter()
        .any(|v| reply.windows(4).any(|x| x == v.to_le_bytes())));
    drop(seen);
    let _ = std::fs::remove_file(&path);
}

/// nmap -sV's probes that are not SMB at all (GetRequest, HTTPOptions, RTSPRequest): like
/// Samba, the farm waits for the rest of what it took for a message until the client gives
/// up (here: its idle timeout of 1 s), instead of closing at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_message_that_is_not_smb_is_waited_out() {
    for probe in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        &b"OPTIONS / HTTP/1.0\r\n\r\n"[..],
        &b"OPTIONS / RTSP/1.0\r\n\r\n"[..],
    ] {
        let (events, path) = store();
        let mut cfg = config(None, events, Deadlines::default());
        Arc::get_mut(&mut cfg).unwrap().idle_timeout = Duration::from_secs(1);
        let ((outcome, detail), (read, waited)) = session(cfg, |mut sock| async move {
            let t = std::time::Instant::now();
            sock.write_all(probe).await.unwrap();
            let mut rest = Vec::new();
            let r = sock.read_to_end(&mut rest).await.map(|_| rest.len());
            (r.ok(), t.elapsed())
        })
        .await;
        assert!(
            matches!(outcome, Outcome::NotProtocol),
            "{outcome:?} {detail}"
        );
        assert_eq!(read, Some(0), "no answer");
        assert!(
            waited >= Duration::from_millis(900),
            "closed after {waited:?}"
        );
        let _ = std::fs::remove_file(&path);
    }
}

/// nmap -sV's DNS probes on the SMB port (issue 10): a session message (type byte 0) too
/// long for the farm's 24-bit length, whose 17-bit NetBIOS length (Samba's) is short: Samba
/// reads that much, finds no SMB and drops the connection, the rest unread: a reset at once.
/// The farm too; a message of just that length is closed (FIN) at once, and one whose 17-bit
/// length is not all there yet (nmap's afp probe) is waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_message_too_long_is_refused_at_once() {
    for (probe, reset) in [
        (
            &b"\0\x1e\0\x06\x01\0\0\x01\0\0\0\0\0\0\x07version\x04bind\0\0\x10\0\x03"[..],
            true,
        ),
        (&b"\0\x0c\0\0\x10\0\0\0\0\0\0\0\0\0"[..], true),
        (&b"\0\x0c\0\0"[..], false),
        (&b"\0\x0c\0\x02ab"[..], false),
    ] {
        let (events, path) = store();
        let mut cfg = config(None, events, Deadlines::default());
        Arc::get_mut(&mut cfg).unwrap().idle_timeout = Duration::from_secs(10);
        let ((outcome, detail), (read, waited)) = session(cfg, |mut sock| async move {
            let t = std::time::Instant::now();
            sock.write_all(probe).await.unwrap();
            let mut rest = Vec::new();
            let r = sock.read_to_end(&mut rest).await.map(|_| rest.len());
            (r.map_err(|e| e.kind()), t.elapsed())
        })
        .await;
        assert!(
            matches!(outcome, Outcome::NotProtocol),
            "{outcome:?} {detail}"
        );
        assert!(detail.contains("more than the"), "{detail}");
        let want = if reset {
            Err(std::io::ErrorKind::ConnectionReset)
        } else {
            Ok(0)
        };
        assert_eq!(read, want, "{probe:?}");
        assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
        let _ = std::fs::remove_file(&path);
    }
    // nmap's afp probe: 17-bit length 0x10001, 16 bytes sent: waited for.
    let (events, path) = store();
    let mut cfg = config(None, events, Deadlines::default());
    Arc::get_mut(&mut cfg).unwrap().idle_timeout = Duration::from_secs(1);
    let (_, (read, waited)) = session(cfg, |mut sock| async move {
        let t = std::time::Instant::now();
        sock.write_all(b"\0\x03\0\x01\0\0\0\0\0\0\0\x02\0\0\0\0\x0f\0")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let r = sock.read_to_end(&mut rest).await.map(|_| rest.len());
        (r.ok(), t.elapsed())
    })
    .await;
    assert_eq!(read, Some(0));
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
    let _ = std::fs::remove_file(&path);
}

/// nmap's mongodb probe (issue 10): an empty first message (type byte 0x41) is bridged, then
/// comes a header the farm's 24-bit length makes too long but Samba reads as a NetBIOS control
/// packet and waits on: the bridge waits too (here: the idle timeout of 1 s), not closing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridged_message_that_cannot_be_framed_is_waited_out() {
    const MONGODB: &[u8] = b"\x41\0\0\0\x3a\x30\0\0\xff\xff\xff\xff\xd4\x07\0\0\0\0\0\0test.$cmd\0\0\0\0\0\xff\xff\xff\xff\x1b\0\0\0\x01serverStatus\0\0\0\0\0\0\0\xf0\x3f\0";
    let fake = Fake::new(script(), Mode::Faithful);
    let (events, path) = store();
    let mut cfg = config(Some(fake_pool(fake).await), events, Deadlines::default());
    Arc::get_mut(&mut cfg).unwrap().idle_timeout = Duration::from_secs(1);
    let ((outcome, detail), (read, waited)) = session(cfg, |mut sock| async move {
        let t = std::time::Instant::now();
        sock.write_all(MONGODB).await.unwrap();
        let mut rest = Vec::new();
        let r = sock.read_to_end(&mut rest).await.map(|_| rest.len());
        (r.ok(), t.elapsed())
    })
    .await;
    assert_eq!(outcome, Outcome::Bridged { deviated_at: 0 }, "{detail}");
    assert!(detail.contains("more than the"), "{detail}");
    assert_eq!(read, Some(0));
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
    let _ = std::fs::remove_file(&path);
}

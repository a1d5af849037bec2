//! `honeyfarm bench flood`: the hostile inputs of issue 9 against a farm on loopback, each
//! bounded in count and time, each followed by the check that the farm is alive and serves a
//! fresh scripted session. Cases print their figures; what they should be is the tests' job.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use bytes::Bytes;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::{connect, Framing, Plan};
use super::load::{open_many, SESSION_LIMIT};
use super::target::{set_nofile, FarmOptions, Server, Workdir};
use super::{BenchError, Case, Common, FloodArgs};

/// One case's outcome.
#[derive(Debug, Serialize)]
pub struct CaseReport {
    pub case: String,
    /// Connections the case made.
    pub connections: u64,
    pub seconds: f64,
    /// The farm process still runs after the case.
    pub alive: bool,
    /// It then served a whole scripted session.
    pub fresh_session: bool,
    pub fresh_error: Option<String>,
    /// `panicked` in the farm's standard error.
    pub panics: u64,
    pub stderr_bytes: u64,
    pub farm_rss_bytes: u64,
    pub farm_cpu_ms: f64,
    /// What the case counted or measured, by name.
    pub figures: BTreeMap<String, f64>,
}

impl CaseReport {
    fn text(&self) -> String {
        let figures: Vec<String> = self
            .figures
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}: {} connections in {:.1} s; farm {}, fresh scripted session {}; {} panics; stderr {} bytes; RSS {:.1} MB; CPU {:.0} ms\n  {}",
            self.case,
            self.connections,
            self.seconds,
            if self.alive { "alive" } else { "DEAD" },
            match (&self.fresh_session, &self.fresh_error) {
                (true, _) => "served".to_string(),
                (false, e) => format!("FAILED ({})", e.as_deref().unwrap_or("")),
            },
            self.panics,
            self.stderr_bytes,
            self.farm_rss_bytes as f64 / 1048576.0,
            self.farm_cpu_ms,
            figures.join(" "),
        )
    }
}

/// Figures a case reports, by name.
type Figures = BTreeMap<String, f64>;

/// `honeyfarm bench flood`: every case asked for, one fresh farm each.
pub async fn flood(common: &Common, args: &FloodArgs) -> Result<(), BenchError> {
    let plan = Arc::new(Plan::load(&common.script)?);
    set_nofile(u64::MAX, false).map_err(BenchError::Limit)?;
    let cases = if args.cases.is_empty() {
        vec![
            Case::ConnectClose,
            Case::Random,
            Case::Mutated,
            Case::Slowloris,
            Case::Trickle,
            Case::FdExhaustion,
        ]
    } else {
        args.cases.clone()
    };
    for case in cases {
        let report = run_case(case, common, args, &plan).await?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&report).expect("a report serialises")
            );
        } else {
            println!("{}", report.text());
        }
    }
    Ok(())
}

async fn run_case(
    case: Case,
    common: &Common,
    args: &FloodArgs,
    plan: &Arc<Plan>,
) -> Result<CaseReport, BenchError> {
    let dir = Workdir::new("flood")?;
    let opts = FarmOptions {
        idle_timeout_secs: match case {
            Case::Slowloris => args.idle_timeout,
            _ => FarmOptions::default().idle_timeout_secs,
        },
        // A slowloris keeps under the idle timeout: the message deadline is what ends it.
        message_deadline_secs: (case == Case::Slowloris).then_some(args.idle_timeout),
        nofile: (case == Case::FdExhaustion).then_some(args.fd_limit),
        ..FarmOptions::default()
    };
    let mut farm = Server::farm(&dir, &common.script, &plan.service, opts)?;
    let (cpu0, start) = (farm.cpu(), Instant::now());
    let deadline = start + Duration::from_secs_f64(args.case_seconds);
    let (connections, mut figures) = match case {
        Case::ConnectClose => connect_close(&farm, args, deadline).await,
        Case::Random => random(&farm, plan, args, deadline).await,
        Case::Mutated => mutated(&farm, plan, args, deadline).await,
        Case::Slowloris => slowloris(&farm, plan, args).await,
        Case::Trickle => trickle(&farm, plan, args).await,
        Case::FdExhaustion => fd_exhaustion(&farm, plan, args).await,
    };
    let seconds = start.elapsed().as_secs_f64();
    let alive = farm.alive();
    let fresh = if alive {
        plan.session(farm.addr, SESSION_LIMIT)
            .await
            .map_err(|f| f.to_string())
    } else {
        Err("the farm is not running".into())
    };
    if let Ok(d) = &fresh {
        figures.insert("fresh_session_ms".into(), ms(*d));
    }
    let report = CaseReport {
        case: case.name().to_string(),
        connections,
        seconds,
        alive: farm.alive(),
        fresh_session: fresh.is_ok(),
        fresh_error: fresh.err(),
        panics: farm
            .stderr
            .panics
            .load(std::sync::atomic::Ordering::Relaxed),
        stderr_bytes: farm.stderr.bytes.load(std::sync::atomic::Ordering::Relaxed),
        farm_rss_bytes: farm.rss(),
        farm_cpu_ms: ms(farm.cpu().saturating_sub(cpu0)),
        figures,
    };
    farm.stop(Duration::from_secs(20));
    Ok(report)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Runs `each(i)` for `i` in `0..n`, at most `concurrency` at once, starting none after
/// `deadline`; counts the outcomes each returns.
async fn many<F, Fut>(n: u64, concurrency: usize, deadline: Instant, each: F) -> (u64, Figures)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = &'static str> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut counts = Figures::new();
    let mut started = 0;
    let mut tally = |r: Result<&'static str, _>| {
        let key = r.unwrap_or("task failed");
        *counts.entry(key.to_string()).or_insert(0.0) += 1.0;
    };
    while started < n && Instant::now() < deadline {
        if set.len() >= concurrency {
            if let Some(r) = set.join_next().await {
                tally(r);
            }
            continue;
        }
        set.spawn(each(started));
        started += 1;
    }
    while let Some(r) = set.join_next().await {
        tally(r);
    }
    (started, counts)
}

/// Reads until the farm closes or `limit` passes: what the farm did with what it was sent.
async fn outcome(mut s: TcpStream, limit: Duration) -> &'static str {
    let mut buf = [0u8; 4096];
    let mut answered = false;
    let drained = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => answered = true,
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    match (drained, answered) {
        (Err(_), _) => "still open",
        (Ok(Err(_)), _) => "reset",
        (Ok(Ok(())), true) => "answered, then closed",
        (Ok(Ok(())), false) => "closed",
    }
}

async fn connect_close(farm: &Server, args: &FloodArgs, deadline: Instant) -> (u64, Figures) {
    let addr = farm.addr;
    many(
        args.connect_close,
        args.concurrency,
        deadline,
        move |_| async move {
            match connect(addr).await {
                Ok(_) => "connected and closed",
                Err(_) => "connect failed",
            }
        },
    )
    .await
}

async fn random(
    farm: &Server,
    plan: &Arc<Plan>,
    args: &FloodArgs,
    deadline: Instant,
) -> (u64, Figures) {
    let addr = farm.addr;
    let plan = plan.clone();
    many(args.random, args.concurrency, deadline, move |i| {
        let plan = plan.clone();
        async move {
            let mut rng = Rng::new(i);
            let len = 1 + rng.below(2048) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            send_then_close(addr, &plan, 0, &bytes).await
        }
    })
    .await
}

/// Connects, plays the script up to client message `k`, sends `last` instead, closes its side
/// and reports what the farm did.
async fn send_then_close(addr: SocketAddr, plan: &Plan, k: usize, last: &[u8]) -> &'static str {
    let Ok(mut s) = connect(addr).await else {
        return "connect failed";
    };
    let prefix = plan.play(&mut s, plan.before_request(k));
    if !matches!(
        tokio::time::timeout(SESSION_LIMIT, prefix).await,
        Ok(Ok(()))
    ) {
        return "the script's prefix failed";
    }
    if s.write_all(last).await.is_err() {
        return "reset";
    }
    let _ = s.shutdown().await;
    outcome(s, Duration::from_secs(5)).await
}

async fn mutated(
    farm: &Server,
    plan: &Arc<Plan>,
    args: &FloodArgs,
    deadline: Instant,
) -> (u64, Figures) {
    let addr = farm.addr;
    let requests = Arc::new(plan.requests());
    let plan = plan.clone();
    many(args.mutated, args.concurrency, deadline, move |i| {
        let (plan, requests) = (plan.clone(), requests.clone());
        async move {
            let mut rng = Rng::new(i);
            let k = rng.below(requests.len() as u64) as usize;
            let bad = mutate(&requests[k], plan.framing, &mut rng);
            send_then_close(addr, &plan, k, &bad).await
        }
    })
    .await
}

/// A bit-flipped or truncated copy of a client message (half the truncations keep the NetBIOS
/// length right, so the decoder sees a short SMB message rather than a stalled stream).
fn mutate(original: &Bytes, framing: Framing, rng: &mut Rng) -> Vec<u8> {
    let mut m = original.to_vec();
    let len = m.len() as u64;
    match rng.below(3) {
        0 => {
            for _ in 0..=rng.below(4) {
                let bit = rng.below(len * 8);
                m[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
        }
        1 => m.truncate(1 + rng.below(len - 1) as usize),
        _ => {
            m.truncate(5 + rng.below(len.saturating_sub(5).max(1)) as usize);
            if framing == Framing::NetBios && m.len() > 4 {
                let body = m.len() - 4;
                m[1] = (body >> 16) as u8 & 1;
                m[2] = (body >> 8) as u8;
                m[3] = body as u8;
            }
        }
    }
    m
}

/// Connections that send one byte of the first client message as soon as they are connected
/// and then every `interval`, each for three idle timeouts; counts those the farm has not
/// closed at the end.
async fn slowloris(farm: &Server, plan: &Arc<Plan>, args: &FloodArgs) -> (u64, Figures) {
    let first = plan.requests().into_iter().next().unwrap_or_default();
    let interval = Duration::from_secs_f64(args.slowloris_interval);
    let hold = Duration::from_secs(args.idle_timeout * 3);
    let addr = farm.addr;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..args.slowloris {
        let first = first.clone();
        set.spawn(async move {
            let connecting = tokio::time::timeout(Duration::from_secs(10), connect(addr));
            let Ok(Ok(mut s)) = connecting.await else {
                return "connect_failed";
            };
            let end = Instant::now() + hold;
            for i in 0.. {
                let byte = first.get(i % first.len().max(1)).copied().unwrap_or(0);
                if s.write_all(&[byte]).await.is_err() {
                    return "closed_by_farm";
                }
                if Instant::now() + interval >= end {
                    break;
                }
                tokio::time::sleep(interval).await;
            }
            tokio::time::sleep_until(end.into()).await;
            let mut buf = [0u8; 64];
            match s.try_read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => "survived",
                _ => "closed_by_farm",
            }
        });
    }
    let mut figures = Figures::from([
        ("idle_timeout_s".into(), args.idle_timeout as f64),
        ("held_s".into(), hold.as_secs_f64()),
        ("survived".into(), 0.0),
    ]);
    while let Some(r) = set.join_next().await {
        *figures
            .entry(r.unwrap_or("task failed").to_string())
            .or_insert(0.0) += 1.0;
    }
    (args.slowloris as u64, figures)
}

/// Connections that each trickle most of a message declaring `trickle_bytes`, then hold it
/// unfinished: the farm's memory while it gathers them.
async fn trickle(farm: &Server, plan: &Arc<Plan>, args: &FloodArgs) -> (u64, Figures) {
    let rss0 = farm.rss();
    let (held, failed) = open_many(farm.addr, args.trickle, plan, 0).await;
    let declared = args.trickle_bytes.min(0xFF_FFFF);
    let body = declared.saturating_sub(1024);
    let mut set = tokio::task::JoinSet::new();
    for mut s in held {
        set.spawn(async move {
            let head = [
                0,
                (declared >> 16) as u8,
                (declared >> 8) as u8,
                declared as u8,
            ];
            let chunk = vec![0u8; 16 << 10];
            let mut sent = 0;
            let mut ok = s.write_all(&head).await.is_ok();
            while ok && sent < body {
                let n = chunk.len().min(body - sent);
                ok = s.write_all(&chunk[..n]).await.is_ok();
                sent += n;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (s, ok)
        });
    }
    let mut streams = Vec::new();
    let mut closed = 0.0;
    while let Some(Ok((s, ok))) = set.join_next().await {
        closed += if ok { 0.0 } else { 1.0 };
        streams.push(s);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss1 = farm.rss();
    let n = streams.len().max(1) as f64;
    drop(streams);
    let figures = Figures::from([
        ("connect_failed".into(), failed as f64),
        ("declared_bytes".into(), declared as f64),
        ("closed_by_farm".into(), closed),
        ("rss_before_mb".into(), mb(rss0)),
        ("rss_held_mb".into(), mb(rss1)),
        (
            "rss_per_connection_kb".into(),
            (rss1.saturating_sub(rss0) as f64 / n / 1024.0).round(),
        ),
    ]);
    (args.trickle as u64, figures)
}

fn mb(b: u64) -> f64 {
    (b as f64 / 1048576.0 * 10.0).round() / 10.0
}

/// More connections than the farm may open files: what it logs and burns while they are held,
/// and whether a fresh session is served meanwhile.
async fn fd_exhaustion(farm: &Server, plan: &Arc<Plan>, args: &FloodArgs) -> (u64, Figures) {
    let (stderr0, cpu0) = (farm.stderr.bytes.load(ORDER), farm.cpu());
    let start = Instant::now();
    let (held, failed) = open_many(farm.addr, args.fd_connections, plan, 0).await;
    let during = plan.session(farm.addr, Duration::from_secs(5)).await;
    let rest = Duration::from_secs_f64(args.fd_seconds).saturating_sub(start.elapsed());
    tokio::time::sleep(rest).await;
    let secs = start.elapsed().as_secs_f64();
    let (stderr1, cpu1) = (farm.stderr.bytes.load(ORDER), farm.cpu());
    drop(held);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let figures = Figures::from([
        ("farm_fd_limit".into(), args.fd_limit as f64),
        ("connect_failed".into(), failed as f64),
        ("held_s".into(), (secs * 10.0).round() / 10.0),
        (
            "stderr_bytes_held".into(),
            stderr1.saturating_sub(stderr0) as f64,
        ),
        (
            "cpu_percent_held".into(),
            (cpu1.saturating_sub(cpu0).as_secs_f64() / secs * 100.0).round(),
        ),
        (
            "fresh_session_while_held".into(),
            if during.is_ok() { 1.0 } else { 0.0 },
        ),
    ]);
    (args.fd_connections as u64, figures)
}

const ORDER: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// xorshift64*: reproducible inputs per connection index, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

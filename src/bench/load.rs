//! Scripted sessions per second against the farm and the baseline, interleaved (farm,
//! baseline, farm, baseline) so that both see the same noisy machine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::client::{connect, Failure, Plan};
use super::target::{FarmOptions, Server, Workdir};
use super::{BenchError, Common, LoadArgs};

/// The longest a scripted session may take before it counts as failed.
pub const SESSION_LIMIT: Duration = Duration::from_secs(15);

/// What one or more runs against one server gave.
#[derive(Default)]
struct Totals {
    ok: u64,
    failed: BTreeMap<Failure, u64>,
    latencies: Vec<Duration>,
    elapsed: Duration,
    cpu: Duration,
    rss: u64,
    store_grown: u64,
}

impl Totals {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn row(&mut self, name: &str, measured: bool) -> String {
        self.latencies.sort_unstable();
        let l = &self.latencies;
        let failed: u64 = self.failed.values().sum();
        let (cpu, rss) = if measured {
            (
                format!(
                    "{:.3}",
                    self.cpu.as_secs_f64() * 1e3 / self.ok.max(1) as f64
                ),
                format!("{:.1}", self.rss as f64 / 1048576.0),
            )
        } else {
            ("-".into(), "-".into())
        };
        format!(
            "  {name:<9} {:>9} {:>7} {:>11.1} {:>8.2} {:>8.2} {:>8.2} {:>14} {:>8}",
            self.ok,
            failed,
            self.rate(),
            percentile_ms(l, 0.5),
            percentile_ms(l, 0.9),
            percentile_ms(l, 0.99),
            cpu,
            rss,
        )
    }

    fn failures(&self, name: &str) -> Option<String> {
        (!self.failed.is_empty()).then(|| {
            let list: Vec<String> = self
                .failed
                .iter()
                .map(|(f, n)| format!("{n} {f}"))
                .collect();
            format!("  {name} failures: {}", list.join(", "))
        })
    }
}

/// The `q` quantile of sorted durations, in milliseconds.
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e3
}

/// One timed run: `concurrency` clients loop over sessions until `max` have started or
/// `duration` has passed.
pub async fn drive(
    plan: Arc<Plan>,
    target: SocketAddr,
    concurrency: usize,
    max: u64,
    duration: Duration,
) -> (Vec<Duration>, BTreeMap<Failure, u64>, Duration) {
    let started = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (plan, started) = (plan.clone(), started.clone());
        tasks.spawn(async move {
            let mut ok = Vec::new();
            let mut failed = BTreeMap::new();
            while Instant::now() < deadline && started.fetch_add(1, Ordering::Relaxed) < max {
                match plan.session(target, SESSION_LIMIT).await {
                    Ok(d) => ok.push(d),
                    Err(f) => *failed.entry(f).or_insert(0) += 1,
                }
            }
            (ok, failed)
        });
    }
    let mut latencies = Vec::new();
    let mut failed = BTreeMap::new();
    while let Some(Ok((ok, f))) = tasks.join_next().await {
        latencies.extend(ok);
        for (k, n) in f {
            *failed.entry(k).or_insert(0) += n;
        }
    }
    (latencies, failed, start.elapsed())
}

/// A server to measure: one this tool started (CPU, RSS and store readable) or an address.
struct Measured<'a> {
    name: &'static str,
    addr: SocketAddr,
    server: Option<&'a Server>,
}

impl Measured<'_> {
    async fn run(&self, plan: &Arc<Plan>, c: usize, args: &LoadArgs, into: &mut Totals) {
        let cpu0 = self.server.map(Server::cpu).unwrap_or_default();
        let store0 = self.server.map(Server::store_bytes).unwrap_or(0);
        let duration = Duration::from_secs_f64(args.seconds);
        let (lat, failed, elapsed) =
            drive(plan.clone(), self.addr, c, args.sessions, duration).await;
        into.ok += lat.len() as u64;
        into.latencies.extend(lat);
        for (k, n) in failed {
            *into.failed.entry(k).or_insert(0) += n;
        }
        into.elapsed += elapsed;
        if let Some(s) = self.server {
            into.cpu += s.cpu().saturating_sub(cpu0);
            into.rss = s.rss();
            if s.store.is_some() {
                let after = s.settle_store(Duration::from_secs(10));
                into.store_grown += after.saturating_sub(store0);
            }
        }
    }
}

/// `honeyfarm bench`: the sessions/s table.
pub async fn throughput(common: &Common, args: &LoadArgs) -> Result<(), BenchError> {
    let plan = Arc::new(Plan::load(&common.script)?);
    let dir = Workdir::new("load")?;
    let farm = match common.target {
        Some(_) => None,
        None => Some(Server::farm(
            &dir,
            &common.script,
            &plan.service,
            FarmOptions::default(),
        )?),
    };
    let baseline = Server::baseline(&common.script)?;
    let targets = [
        Measured {
            name: "farm",
            addr: common
                .target
                .or(farm.as_ref().map(|f| f.addr))
                .expect("a farm"),
            server: farm.as_ref(),
        },
        Measured {
            name: "baseline",
            addr: baseline.addr,
            server: Some(&baseline),
        },
    ];
    for t in &targets {
        plan.session(t.addr, SESSION_LIMIT)
            .await
            .map_err(|f| BenchError::Warmup(t.name, f))?;
    }
    println!(
        "honeyfarm bench: {} ({} client messages), farm {}{}, baseline {} (pid {}); {} round(s) of {} s (at most {} sessions) per server and concurrency, interleaved",
        common.script.display(),
        plan.requests().len(),
        targets[0].addr,
        farm.as_ref().map(|f| format!(" (pid {})", f.pid())).unwrap_or_default(),
        baseline.addr,
        baseline.pid(),
        args.rounds,
        args.seconds,
        args.sessions,
    );
    let mut farm_sessions = 0;
    let mut farm_store = 0;
    for &c in &args.concurrency {
        let mut totals = [Totals::default(), Totals::default()];
        for _ in 0..args.rounds {
            for (t, into) in targets.iter().zip(totals.iter_mut()) {
                t.run(&plan, c, args, into).await;
            }
        }
        let ratio = totals[0].rate() / totals[1].rate().max(1e-9);
        println!(
            "\nconcurrency {c}: farm/baseline {ratio:.2}x ({:.1} vs {:.1} sessions/s)",
            totals[0].rate(),
            totals[1].rate()
        );
        println!(
            "  {:<9} {:>9} {:>7} {:>11} {:>8} {:>8} {:>8} {:>14} {:>8}",
            "server",
            "sessions",
            "failed",
            "sessions/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "cpu ms/session",
            "rss MB"
        );
        for (t, tot) in targets.iter().zip(totals.iter_mut()) {
            println!("{}", tot.row(t.name, t.server.is_some()));
        }
        for (t, tot) in targets.iter().zip(totals.iter()) {
            if let Some(line) = tot.failures(t.name) {
                println!("{line}");
            }
        }
        farm_sessions += totals[0].ok;
        farm_store += totals[0].store_grown;
    }
    if farm.is_some() {
        println!(
            "\nevent store: {:.0} bytes per scripted session ({farm_store} bytes for {farm_sessions} sessions)",
            farm_store as f64 / farm_sessions.max(1) as f64
        );
    }
    if let Some(f) = farm {
        f.stop(Duration::from_secs(20));
    }
    Ok(())
}

/// Open descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Opens `n` connections to `target`, 256 at a time, each having played the first `k` client
/// messages of `plan` (with their replies); those that failed are left out.
pub async fn open_many(
    target: SocketAddr,
    n: usize,
    plan: &Arc<Plan>,
    k: usize,
) -> (Vec<TcpStream>, usize) {
    let mut held = Vec::with_capacity(n);
    let mut failed = 0;
    let mut left = n;
    while left > 0 {
        let batch = left.min(256);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let plan = plan.clone();
            set.spawn(tokio::time::timeout(Duration::from_secs(5), async move {
                let mut s = connect(target).await.map_err(|_| Failure::Connect)?;
                plan.play(&mut s, plan.before_request(k)).await?;
                Ok::<_, Failure>(s)
            }));
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(Ok(s))) => held.push(s),
                _ => failed += 1,
            }
        }
        left -= batch;
    }
    (held, failed)
}

//! `honeyfarm bench idle`: the farm's memory per idle connection. The farm's scan filter
//! touches a page of its table per new source (a fixed table, allocated at start and mapped as
//! sources come): one connection from each of the client's source addresses goes first, closed
//! at once, so that what the held connections add is theirs alone; both figures are printed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::{connect, Plan, SOURCES};
use super::load::{open_fds, open_many, SESSION_LIMIT};
use super::target::{set_nofile, FarmOptions, Server, Workdir};
use super::{BenchError, Common, IdleArgs};

/// Connections the farm admits besides those held: the warm-up and the fresh session after.
const SPARE: usize = 64;
/// Source-touching connections in flight at once (few: the memory they free is reused by
/// the connections held next, and would hide theirs).
const TOUCHING: usize = 16;

/// Holds the connections and prints the farm's memory growth per connection.
pub async fn idle(common: &Common, args: &IdleArgs) -> Result<(), BenchError> {
    let limit = set_nofile(u64::MAX, false).map_err(BenchError::Limit)?;
    if args.connections as u64 + 128 > limit {
        return Err(BenchError::TooMany(args.connections, limit));
    }
    let plan = Arc::new(Plan::load(&common.script)?);
    let dir = Workdir::new("idle")?;
    // The global cap raised for the count held (not by default: a farm's default cap is
    // what a user gets).
    let opts = FarmOptions {
        max_connections: Some(args.connections + SPARE),
        ..FarmOptions::default()
    };
    let farm = Server::farm(&dir, &common.script, &plan.service, opts)?;
    plan.session(farm.addr, SESSION_LIMIT)
        .await
        .map_err(|f| BenchError::Warmup("farm", f))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (started, fds0) = (farm.rss(), open_fds(farm.pid()));
    let sources = touch_sources(farm.addr).await;
    // Their sessions ended once the farm holds no more descriptors than before.
    fds_settled(farm.pid(), |n| n <= fds0).await;
    let (rss0, fds0) = (farm.rss(), open_fds(farm.pid()));
    let opening = Instant::now();
    let (held, failed) = open_many(farm.addr, args.connections, &plan, args.messages).await;
    let opened = opening.elapsed();
    // Held connections are idle once the farm has accepted them all.
    let want = fds0 + held.len();
    fds_settled(farm.pid(), |n| n >= want).await;
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let (rss1, fds1) = (farm.rss(), open_fds(farm.pid()));
    let accepted = fds1.saturating_sub(fds0);
    println!(
        "honeyfarm bench idle: {} connections held ({failed} failed, opened in {:.1} s, 256 at a time), each after {} client message(s); farm (pid {}) has {accepted} more descriptors",
        held.len(),
        opened.as_secs_f64(),
        args.messages,
        farm.pid()
    );
    println!(
        "  farm RSS {:.1} MB at start, {:.1} MB once {sources} source addresses connected once (the scan filter's table)",
        mb(started),
        mb(rss0),
    );
    println!(
        "  farm RSS {:.1} MB -> {:.1} MB: {:.0} bytes per idle connection it accepted",
        mb(rss0),
        mb(rss1),
        rss1.saturating_sub(rss0) as f64 / accepted.max(1) as f64
    );
    drop(held);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fresh = plan.session(farm.addr, SESSION_LIMIT).await;
    println!(
        "  after closing them: RSS {:.1} MB, a fresh scripted session {}",
        mb(farm.rss()),
        match fresh {
            Ok(d) => format!("served in {:.1} ms", d.as_secs_f64() * 1e3),
            Err(f) => format!("FAILED: {f}"),
        }
    );
    farm.stop(Duration::from_secs(20));
    Ok(())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// Connects once from each of the client's source addresses and closes at once, a few at a
/// time; returns how many connected.
async fn touch_sources(target: SocketAddr) -> usize {
    let mut set = tokio::task::JoinSet::new();
    let mut connected = 0;
    for _ in 0..SOURCES {
        if set.len() >= TOUCHING {
            if let Some(Ok(true)) = set.join_next().await {
                connected += 1;
            }
        }
        set.spawn(async move {
            tokio::time::timeout(Duration::from_secs(5), connect(target))
                .await
                .is_ok_and(|c| c.is_ok())
        });
    }
    while let Some(r) = set.join_next().await {
        connected += usize::from(matches!(r, Ok(true)));
    }
    connected
}

/// Waits until a process's number of descriptors is `done`, or has not changed for 5 s, or
/// 60 s have passed; returns the number.
async fn fds_settled(pid: u32, done: impl Fn(usize) -> bool) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (open_fds(pid), Instant::now());
    while !done(last) && since.elapsed() < Duration::from_secs(5) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = open_fds(pid);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

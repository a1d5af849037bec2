//! The honeypot backends' bench (issue 12, item 5; figures printed, no timed assertions), all
//! four rows in one run: `process`, `netns`, `qemu` booting each VM cold and `qemu` restoring
//! it from the saved warm state. Per row: the time from a lease to a honeypot that answers an
//! SMB Negotiate through the lease's route (cold: the lease starts it; warm: the pool had it
//! ready), a recycling (stop, then start again: what the pool does after a lease), memory per
//! honeypot (RSS and PSS of its processes, with two running), and honeypots made ready per
//! second per core (two started at once). `process` is the baseline; the other rows are also
//! given as ratios to it. The qemu rows are skipped, with the reason printed, where VMs cannot
//! run (tests/common/vm.rs).
//!
//! `flock /tmp/honeyfarm-peer-tests.lock cargo test --test honeypots -- --ignored --nocapture`
//! (root: Samba, namespaces, QEMU).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use honeyfarm_runtime::farm::{
    negotiate_answered, Backend, Boot, NetnsBackend, NetnsConfig, Policy, Pool, ProcessBackend,
    ProcessConfig,
};

/// Connects through the lease's route and waits for the Negotiate's answer.
fn answers_smb(pool: &Pool, rt: &tokio::runtime::Runtime, lease: &honeyfarm_runtime::farm::Lease) {
    let route = pool
        .route(lease, "203.0.113.9:40000".parse().unwrap())
        .expect("a route");
    let s = rt
        .block_on(route.socket.connect(route.connect))
        .expect("connects");
    let mut s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    assert!(
        negotiate_answered(&mut s, Duration::from_secs(20)),
        "an SMB Negotiate answer"
    );
}

/// RSS and PSS (KiB) of the processes whose command line names `needle` (a honeypot's
/// directory).
fn memory_kib(needle: &str) -> (u64, u64) {
    let (mut rss, mut pss) = (0, 0);
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = e.path();
        let cmd = std::fs::read(p.join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmd).contains(needle) {
            continue;
        }
        let text = std::fs::read_to_string(p.join("smaps_rollup")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        rss += field("Rss:");
        pss += field("Pss:");
    }
    (rss, pss)
}

/// One backend's figures.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    cold_ms: f64,
    warm_ms: f64,
    recycle_ms: f64,
    rss_mib: f64,
    pss_mib: f64,
    ready_per_sec_core: f64,
}

/// Measures a backend on `addrs` (2; honeypots on them are started and stopped); `dir` names a
/// honeypot's directory (which its processes' command lines contain) by its address.
fn bench_backend(
    backend: Arc<dyn Backend>,
    addrs: &[SocketAddr],
    dir: impl Fn(SocketAddr) -> String,
) -> Row {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let telescope = |i: u8| IpAddr::from([198, 18, 9, i]);
    // Cold: the lease starts the honeypot.
    let pool = Pool::new(backend.clone(), addrs[..1].to_vec(), 0);
    let began = Instant::now();
    let l = pool.lease(telescope(1)).expect("a honeypot");
    answers_smb(&pool, &rt, &l);
    let cold = began.elapsed();
    pool.release(l);
    pool.shutdown();
    // Warm: the pool had one ready.
    let pool = Pool::new(backend.clone(), addrs[..1].to_vec(), 1);
    pool.fill().unwrap();
    let began = Instant::now();
    let l = pool.lease(telescope(2)).expect("a honeypot");
    answers_smb(&pool, &rt, &l);
    let warm = began.elapsed();
    pool.release(l);
    pool.shutdown();
    // Recycling: a used honeypot stopped and its successor ready.
    let h = backend.start(addrs[0]).expect("starts");
    let began = Instant::now();
    backend.stop(h);
    let h = backend.start(addrs[0]).expect("starts");
    let recycle = began.elapsed();
    backend.stop(h);
    // Ready per second: every address started at once; memory with them all running.
    let began = Instant::now();
    let started: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = addrs
            .iter()
            .map(|a| s.spawn(|| backend.start(*a).expect("starts")))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all = began.elapsed();
    let (rss, pss) = addrs
        .iter()
        .map(|a| memory_kib(&dir(*a)))
        .fold((0, 0), |(r, p), (r1, p1)| (r + r1, p + p1));
    for h in started {
        backend.stop(h);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let n = addrs.len() as f64;
    Row {
        cold_ms: cold.as_secs_f64() * 1e3,
        warm_ms: warm.as_secs_f64() * 1e3,
        recycle_ms: recycle.as_secs_f64() * 1e3,
        rss_mib: rss as f64 / 1024.0 / n,
        pss_mib: pss as f64 / 1024.0 / n,
        ready_per_sec_core: n / all.as_secs_f64() / cores,
    }
}

fn process_config(work: &Path) -> ProcessConfig {
    ProcessConfig {
        command: common::samba_honeypot_command(),
        ready_file: Some("{dir}/ready".into()),
        work_dir: work.to_path_buf(),
        keep: false,
        ready_timeout: Duration::from_secs(60),
    }
}

fn print(name: &str, r: Row, base: Row) {
    println!(
        "{name:<13} {:>9.0} {:>9.0} {:>11.0} {:>9.1} {:>9.1} {:>9.3}   x{:.2} x{:.2} x{:.2} x{:.2} x{:.2} x{:.2}",
        r.cold_ms,
        r.warm_ms,
        r.recycle_ms,
        r.rss_mib,
        r.pss_mib,
        r.ready_per_sec_core,
        r.cold_ms / base.cold_ms,
        r.warm_ms / base.warm_ms,
        r.recycle_ms / base.recycle_ms,
        r.rss_mib / base.rss_mib,
        r.pss_mib / base.pss_mib,
        r.ready_per_sec_core / base.ready_per_sec_core
    );
}

/// Two link addresses `10.233.{third}.2-3:445`.
fn links(third: u8) -> Vec<SocketAddr> {
    (2..4)
        .map(|i| SocketAddr::from(([10, 233, third, i], 445)))
        .collect()
}

#[test]
#[ignore = "a bench: root, Samba, namespaces, QEMU; run under the shared lock"]
fn bench_honeypots() {
    let (work, _killed) = common::dirs::test_dir("hfq-bench");
    let netns_links = links(7);
    let (cold_links, restore_links) = (links(8), links(9));
    let all: Vec<SocketAddr> = [&netns_links, &cold_links, &restore_links]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let _gone = common::vm::Links(common::vm::PREFIX, all, work.clone());
    let named = |w: &Path, kind: &'static str| {
        let w = w.display().to_string();
        move |a: SocketAddr| format!("{w}/{kind}-{}-{}", a.ip(), a.port())
    };
    let process_work = work.join("process");
    let process = Arc::new(ProcessBackend::new(process_config(&process_work)));
    let local: Vec<SocketAddr> = ["127.0.0.31:4471", "127.0.0.32:4471"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let base = bench_backend(process, &local, named(&process_work, "honeypot"));
    let netns_work = work.join("netns");
    let netns = NetnsBackend::new(NetnsConfig {
        process: process_config(&netns_work),
        prefix: common::vm::PREFIX.into(),
        farm: [10, 231, 255, 254].into(),
        policy: Policy::deny_all(),
        events: None,
    });
    let contained = bench_backend(netns, &netns_links, named(&netns_work, "honeypot"));
    let mut rows = vec![("process", base), ("netns", contained)];
    let vms = [
        ("qemu cold", Boot::Cold, cold_links),
        ("qemu restore", Boot::Restore, restore_links),
    ];
    for (name, boot, addrs) in vms {
        let Some((backend, vm_work)) = common::vm::backend(
            &format!("hfq-bench-vm-{name}"),
            boot,
            Policy::deny_all(),
            None,
        ) else {
            break;
        };
        let _dir = common::vm::Links(common::vm::PREFIX, Vec::new(), vm_work.clone());
        rows.push((name, bench_backend(backend, &addrs, named(&vm_work, "vm"))));
    }
    println!(
        "backend        cold(ms)  warm(ms) recycle(ms)  RSS(MiB)  PSS(MiB) ready/s/core   (ratios to process, same order)"
    );
    for (name, row) in &rows {
        print(name, *row, base);
    }
    let ksm = std::fs::read_to_string("/sys/kernel/mm/ksm/run").map_or_else(
        |_| "KSM: not in this kernel (/sys/kernel/mm/ksm absent)".to_string(),
        |r| {
            let shared =
                std::fs::read_to_string("/sys/kernel/mm/ksm/pages_sharing").unwrap_or_default();
            format!(
                "KSM: run={} pages_sharing={} (QEMU does not mark guest RAM mergeable unless \
                 asked: the clones share the saved RAM file's unwritten pages instead)",
                r.trim(),
                shared.trim()
            )
        },
    );
    println!("{ksm}");
    println!(
        "cold: a lease that starts its honeypot; warm: the pool had one ready; memory per \
         honeypot with 2 running (qemu: the QEMU process, 256 MiB guests); {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}

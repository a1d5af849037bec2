//! The honeypot backends' bench (issue 12, item 5; figures printed, no timed assertions): per
//! backend, the time from a lease to a honeypot that answers an SMB Negotiate (cold: the
//! lease starts it; warm: the pool had it ready), the memory of one honeypot (RSS of its
//! processes), and honeypots made ready per second per core. `process` is the baseline; the
//! other rows are also given as ratios to it.
//!
//! `flock /tmp/honeyfarm-peer-tests.lock cargo test --test honeypots -- --ignored --nocapture`
//! (root: Samba, namespaces). A backend adds its row with [`bench_backend`].

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use honeyfarm_runtime::farm::{
    remove_netns, Backend, NetnsBackend, NetnsConfig, Policy, Pool, ProcessBackend, ProcessConfig,
};

/// An SMB1 NEGOTIATE (NT LM 0.12) behind its NetBIOS session header.
fn negotiate() -> Vec<u8> {
    let mut smb = vec![0xff, b'S', b'M', b'B', 0x72, 0, 0, 0, 0, 0x18, 0x01, 0xc8];
    smb.extend_from_slice(&[0; 12]);
    smb.extend_from_slice(&[0xff, 0xff, 0x34, 0x12, 0, 0, 0x40, 0]);
    let dialect = b"\x02NT LM 0.12\0";
    smb.push(0);
    smb.extend_from_slice(&(dialect.len() as u16).to_le_bytes());
    smb.extend_from_slice(dialect);
    let mut out = vec![0, 0, 0, smb.len() as u8];
    out.extend_from_slice(&smb);
    out
}

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
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&negotiate()).unwrap();
    let mut head = [0u8; 9];
    s.read_exact(&mut head).expect("an answer");
    assert_eq!(&head[4..9], b"\xffSMBr", "an SMB Negotiate answer");
}

/// RSS (KiB) of the processes whose command line names `dir`.
fn rss_kib(dir: &Path) -> u64 {
    let needle = dir.display().to_string();
    let mut total = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = e.path();
        let cmd = std::fs::read(p.join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmd).contains(&needle) {
            continue;
        }
        let status = std::fs::read_to_string(p.join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// One backend's figures.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    cold_ms: f64,
    warm_ms: f64,
    rss_mib: f64,
    ready_per_sec_core: f64,
}

/// Measures a backend on `addrs` (at least 2; honeypots on them are started and stopped).
pub fn bench_backend(backend: Arc<dyn Backend>, addrs: &[SocketAddr], work: &Path) -> Row {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let telescope = |i: u8| IpAddr::from([198, 18, 9, i]);
    // Cold: the lease starts the honeypot.
    let pool = Pool::new(backend.clone(), addrs[..1].to_vec(), 0);
    let began = Instant::now();
    let l = pool.lease(telescope(1)).expect("a honeypot");
    answers_smb(&pool, &rt, &l);
    let cold = began.elapsed();
    let dir = work.join(format!(
        "honeypot-{}-{}",
        l.honeypot.ip(),
        l.honeypot.port()
    ));
    let rss = rss_kib(&dir);
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
    // Ready per second: every address started at once.
    let began = Instant::now();
    let started: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = addrs
            .iter()
            .map(|a| s.spawn(|| backend.start(*a).expect("starts")))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all = began.elapsed();
    for h in started {
        backend.stop(h);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Row {
        cold_ms: cold.as_secs_f64() * 1e3,
        warm_ms: warm.as_secs_f64() * 1e3,
        rss_mib: rss as f64 / 1024.0,
        ready_per_sec_core: addrs.len() as f64 / all.as_secs_f64() / cores,
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
        "{name:<8} {:>9.0} {:>9.0} {:>9.1} {:>10.2}   x{:.2} x{:.2} x{:.2} x{:.2}",
        r.cold_ms,
        r.warm_ms,
        r.rss_mib,
        r.ready_per_sec_core,
        r.cold_ms / base.cold_ms,
        r.warm_ms / base.warm_ms,
        r.rss_mib / base.rss_mib,
        r.ready_per_sec_core / base.ready_per_sec_core
    );
}

#[test]
#[ignore = "a bench: root, Samba, namespaces; run under the shared lock"]
fn bench_honeypots() {
    let work = std::env::temp_dir().join(format!("hfn-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let links: Vec<SocketAddr> = ["10.231.7.2:445", "10.231.7.3:445"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    struct Gone(Vec<SocketAddr>, PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            for a in &self.0 {
                remove_netns(&format!("hfn-{}", a.ip()));
            }
            let _ = std::process::Command::new("pkill")
                .args(["-9", "-f"])
                .arg(&self.1)
                .status();
        }
    }
    let _gone = Gone(links.clone(), work.clone());
    let process = Arc::new(ProcessBackend::new(process_config(&work.join("process"))));
    let local: Vec<SocketAddr> = ["127.0.0.31:4471", "127.0.0.32:4471"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let base = bench_backend(process, &local, &work.join("process"));
    let netns = NetnsBackend::new(NetnsConfig {
        process: process_config(&work.join("netns")),
        prefix: "hfn".into(),
        farm: [10, 231, 255, 254].into(),
        policy: Policy::deny_all(),
        events: None,
    });
    let contained = bench_backend(netns, &links, &work.join("netns"));
    println!("backend   cold(ms)  warm(ms)  RSS(MiB) ready/s/core   (ratios to process)");
    print("process", base, base);
    print("netns", contained, base);
    let _ = std::fs::remove_dir_all(&work);
}

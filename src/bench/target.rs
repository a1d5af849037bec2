//! The servers a bench measures, each its own process: the farm (`honeyfarm run` of this very
//! binary, with a configuration in a temporary directory) and the baseline. Their CPU and
//! memory come from `/proc`, their standard error is counted, not kept (a spinning accept loop
//! writes hundreds of megabytes).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::BenchError;

/// A temporary directory, removed when dropped.
pub struct Workdir(pub PathBuf);

impl Workdir {
    pub fn new(tag: &str) -> Result<Workdir, BenchError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("honeyfarm-bench-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("scripts")).map_err(|e| BenchError::io(&path, e))?;
        Ok(Workdir(path))
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on now (the servers bind it a moment later).
pub fn free_address() -> Result<SocketAddr, BenchError> {
    let probe: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    TcpListener::bind(probe)
        .and_then(|l| l.local_addr())
        .map_err(|e| BenchError::Listen(probe, e))
}

/// How the farm under test is configured.
#[derive(Debug, Clone, Copy)]
pub struct FarmOptions {
    /// `[session] idle_timeout_secs`.
    pub idle_timeout_secs: u64,
    /// `[session] message_deadline_secs` (the farm's default if `None`).
    pub message_deadline_secs: Option<u64>,
    /// The farm's limit of open files (soft and hard: it raises its soft limit to the hard
    /// one), if not this process's.
    pub nofile: Option<u64>,
    /// `[limits] max_connections` (the farm's default if `None`).
    pub max_connections: Option<usize>,
}

impl Default for FarmOptions {
    fn default() -> Self {
        FarmOptions {
            idle_timeout_secs: 120,
            message_deadline_secs: None,
            nofile: None,
            max_connections: None,
        }
    }
}

/// What a server wrote on standard error: how much, and whether anything panicked.
#[derive(Default)]
pub struct Stderr {
    pub bytes: AtomicU64,
    pub panics: AtomicU64,
    /// The first 16 KiB (start-up lines, the first errors).
    head: Mutex<String>,
}

impl Stderr {
    pub fn head(&self) -> String {
        self.head.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn watch(self: Arc<Self>, mut from: impl Read + Send + 'static) {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let chunk = String::from_utf8_lossy(&buf[..n]);
                self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                let panics = chunk.matches("panicked").count() as u64;
                self.panics.fetch_add(panics, Ordering::Relaxed);
                if let Ok(mut head) = self.head.lock() {
                    if head.len() < 16 << 10 {
                        head.push_str(&chunk);
                    }
                }
            }
        });
    }
}

/// A running server process, stopped when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub stderr: Arc<Stderr>,
    /// The farm's event store.
    pub store: Option<PathBuf>,
}

impl Server {
    /// Starts `honeyfarm run` on a free loopback port, answering from `script` alone (no
    /// honeypots), and returns once it is listening.
    pub fn farm(
        dir: &Workdir,
        script: &Path,
        service: &str,
        opts: FarmOptions,
    ) -> Result<Server, BenchError> {
        let addr = free_address()?;
        let d = &dir.0;
        let copy = d.join("scripts").join("script.json");
        std::fs::copy(script, &copy).map_err(|e| BenchError::io(script, e))?;
        let store = d.join("events.sqlite");
        let config = d.join("honeyfarm.toml");
        let text = format!(
            "[events]\npath = {store:?}\n[scripts]\ndirs = [{scripts:?}]\n[[listen]]\naddress = \"{addr}\"\nservice = \"{service}\"\n[session]\nidle_timeout_secs = {idle}\n{deadline}{limits}",
            store = store.display().to_string(),
            scripts = d.join("scripts").display().to_string(),
            idle = opts.idle_timeout_secs,
            deadline = opts
                .message_deadline_secs
                .map(|s| format!("message_deadline_secs = {s}\n"))
                .unwrap_or_default(),
            limits = opts
                .max_connections
                .map(|n| format!("[limits]\nmax_connections = {n}\n"))
                .unwrap_or_default(),
        );
        std::fs::write(&config, text).map_err(|e| BenchError::io(&config, e))?;
        let mut cmd = Command::new(exe()?);
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(limit) = opts.nofile {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || set_nofile(limit, true).map(|_| ()));
            }
        }
        let child = cmd.spawn().map_err(BenchError::Spawn)?;
        let mut server = Server::watched(child, addr, Some(store));
        server.wait_until(|s| s.stderr.head().contains("stop with Ctrl-C"))?;
        Ok(server)
    }

    /// Starts the baseline server for `script` on a free loopback port.
    pub fn baseline(script: &Path) -> Result<Server, BenchError> {
        let addr = free_address()?;
        let mut child = Command::new(exe()?)
            .args(["bench", "serve-baseline", "--listen", &addr.to_string()])
            .arg("--script")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(BenchError::Spawn)?;
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line);
        let mut server = Server::watched(child, addr, None);
        server.wait_until(|_| line.starts_with("listening"))?;
        Ok(server)
    }

    /// A started child whose standard error (piped) is counted from now on.
    fn watched(mut child: Child, addr: SocketAddr, store: Option<PathBuf>) -> Server {
        let stderr = Arc::new(Stderr::default());
        stderr
            .clone()
            .watch(child.stderr.take().expect("stderr is piped"));
        Server {
            child,
            addr,
            stderr,
            store,
        }
    }

    fn wait_until(&mut self, ready: impl Fn(&Server) -> bool) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(self) {
            if !self.alive() || Instant::now() > deadline {
                return Err(BenchError::Start(self.stderr.head()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// CPU time used so far (user + system).
    pub fn cpu(&self) -> Duration {
        cpu_of(self.pid()).unwrap_or_default()
    }

    /// Resident memory now, in bytes.
    pub fn rss(&self) -> u64 {
        rss_of(self.pid()).unwrap_or(0)
    }

    /// The event store's size on disk: the database and its WAL or rollback journal.
    pub fn store_bytes(&self) -> u64 {
        let Some(db) = &self.store else { return 0 };
        ["", "-wal", "-journal"]
            .iter()
            .map(|suffix| {
                let mut p = db.clone().into_os_string();
                p.push(suffix);
                std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
            })
            .sum()
    }

    /// Waits (at most `limit`) until the event store stops growing: the farm's writer has
    /// caught up with the sessions that ended.
    pub fn settle_store(&self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        let mut last = self.store_bytes();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = self.store_bytes();
            if now == last || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; whether it exited by itself.
    pub fn stop(mut self, grace: Duration) -> bool {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn exe() -> Result<PathBuf, BenchError> {
    std::env::current_exe().map_err(BenchError::Spawn)
}

/// utime + stime of a process (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// VmRSS of a process, in bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Sets the soft limit of open files (capped at the hard limit), and with `hard` the hard limit
/// too (a process may raise its soft limit up to its hard one); returns the limit set.
pub fn set_nofile(want: u64, hard: bool) -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim.rlim_cur = want.min(lim.rlim_max);
        if hard {
            lim.rlim_max = lim.rlim_cur;
        }
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

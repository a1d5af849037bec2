//! The `process` backend: a server process per honeypot on the farm's own host.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Backend, Honeypot, HoneypotError};

/// The `process` backend: a real server per honeypot, started from a command template.
/// `{address}`, `{port}` and `{dir}` in the command and the ready file are replaced by the
/// honeypot's address, port and private directory.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    pub command: Vec<String>,
    /// A file (template) whose existence says the honeypot is ready, beside accepting
    /// connections: a server that warms itself up after it listens writes it when done.
    pub ready_file: Option<String>,
    /// Where private directories are made.
    pub work_dir: PathBuf,
    /// Keep a stopped honeypot's directory (moved to `work_dir/done/`) instead of removing it.
    pub keep: bool,
    pub ready_timeout: Duration,
}

pub struct ProcessBackend {
    config: ProcessConfig,
}

impl ProcessBackend {
    pub fn new(config: ProcessConfig) -> Self {
        ProcessBackend { config }
    }
}

fn fill(template: &str, addr: SocketAddr, address: &str, dir: &Path) -> String {
    template
        .replace("{address}", address)
        .replace("{port}", &addr.port().to_string())
        .replace("{dir}", &dir.display().to_string())
}

impl Backend for ProcessBackend {
    fn start(&self, addr: SocketAddr) -> Result<Honeypot, HoneypotError> {
        self.launch(addr, &[], &addr.ip().to_string())
    }

    fn stop(&self, honeypot: Honeypot) {
        self.halt(honeypot)
    }
}

impl ProcessBackend {
    /// Starts the command, after `wrap` (`ip netns exec NAME`), with `{address}` as `address`;
    /// returns once it accepts connections on `addr` (and its ready file exists).
    pub(super) fn launch(
        &self,
        addr: SocketAddr,
        wrap: &[String],
        address: &str,
    ) -> Result<Honeypot, HoneypotError> {
        let c = &self.config;
        let dir = c
            .work_dir
            .join(format!("honeypot-{}-{}", addr.ip(), addr.port()));
        let prep = |source| HoneypotError::Prepare {
            addr,
            dir: dir.display().to_string(),
            source,
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(prep)?;
        let argv: Vec<String> = c
            .command
            .iter()
            .map(|a| fill(a, addr, address, &dir))
            .collect();
        let Some((prog, args)) = argv.split_first() else {
            return Err(HoneypotError::Command {
                addr,
                command: String::new(),
                reason: "the command is empty".into(),
            });
        };
        let log = std::fs::File::create(dir.join("honeypot.log")).map_err(prep)?;
        let log2 = log.try_clone().map_err(prep)?;
        // The honeypot runs in its own directory: a relative program path is the farm's.
        let prog = match Path::new(prog) {
            p if p.is_relative() && p.components().count() > 1 => std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf()),
            p => p.to_path_buf(),
        };
        let mut cmd = match wrap.split_first() {
            Some((w, rest)) => {
                let mut cmd = Command::new(w);
                cmd.args(rest).arg(prog);
                cmd
            }
            None => Command::new(prog),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .current_dir(&dir);
        // Its own process group: stopping it stops whatever it started.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| HoneypotError::Command {
            addr,
            command: argv.join(" "),
            reason: e.to_string(),
        })?;
        let ready_file = c
            .ready_file
            .as_ref()
            .map(|f| PathBuf::from(fill(f, addr, address, &dir)));
        let began = Instant::now();
        let deadline = began + c.ready_timeout;
        loop {
            // An exited command is not ready, whatever else answers on its address.
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            let warm = ready_file.as_ref().is_none_or(|f| f.exists());
            if !exited
                && warm
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                tracing::info!(
                    "honeypot {addr} ready after {} ms",
                    began.elapsed().as_millis()
                );
                return Ok(Honeypot {
                    addr,
                    dir,
                    child: Some(child),
                });
            }
            if exited || Instant::now() >= deadline {
                let log = std::fs::read_to_string(dir.join("honeypot.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let hp = Honeypot {
                    addr,
                    dir,
                    child: Some(child),
                };
                self.halt(hp);
                tracing::warn!("honeypot {addr} did not start (exited: {exited})");
                return Err(HoneypotError::NotReady {
                    addr,
                    why: if exited {
                        "exited before accepting connections".to_string()
                    } else {
                        format!(
                            "not accepting connections after {} s",
                            c.ready_timeout.as_secs()
                        )
                    },
                    log: if tail.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (its log ends: {})",
                            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                        )
                    },
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the honeypot's process group and keeps or removes its directory.
    pub(super) fn halt(&self, mut honeypot: Honeypot) {
        tracing::debug!("stopping honeypot {}", honeypot.addr);
        let Some(child) = &mut honeypot.child else {
            return;
        };
        let pgid = child.id() as libc::pid_t;
        // SIGTERM to the group, then SIGKILL for what is left (a group already gone: ESRCH,
        // nothing to do).
        // SAFETY: kill(2) on a process group this backend started; no memory is involved.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
        super::retire_dir(&self.config.work_dir, &honeypot.dir, self.config.keep);
    }
}

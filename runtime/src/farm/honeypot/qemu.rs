//! The `qemu` backend: each honeypot a Debian VM (the image of `scripts/vm-image.sh`) under
//! KVM, or TCG (software emulation) where there is no KVM.
//!
//! Flash cloning: the backend boots the image once until Samba is warm, its RAM a shared file
//! mapping (`ram.img`), and saves the VM's device state by migration to a file (RAM left out:
//! QEMU's `x-ignore-shared`), with the disk it had (`warm.qcow2`, frozen from then on). Each
//! honeypot is then a fresh qcow2 overlay on that disk and a QEMU that maps `ram.img` private
//! (copy on write: the clones share every page none of them wrote, through the page cache) and
//! loads the device state (`-incoming`): its smbd is running and warm the moment the VM
//! resumes. Stopping discards the overlay (or keeps it, for forensics); the next honeypot
//! restores again.
//!
//! Network: each VM is the honeypot of a `netns` backend's namespace (the backend makes the
//! namespace, its veth to the farm and its containment ruleset first, see `netns.rs`): the
//! guest's NIC is on a tap in that namespace, and QEMU itself runs there too (`ip netns exec`),
//! so a guest that escaped into QEMU would still be behind the ruleset, and QEMU opens the tap
//! by name (no descriptor to pass). Every clone keeps the fixed address [`GUEST`] its saved
//! state has, its default route the tap's address [`GATEWAY`] (both from
//! `scripts/vm-image.sh`); the namespace DNATs the farm's connections to it and SNATs them to
//! the attacker's address, and forwards what the guest sends through the containment rules.
//! The tap is made down and set up once the restore has completed: the network is attached
//! after the restore, so nothing the restoring VM sends (its stale TCP state, QEMU's
//! post-migration announcements) goes anywhere, and the farm's first packet meets a running
//! guest. The saved warm VM's NIC was on a hub port that leads nowhere: a backend with state of
//! its own (QEMU's user-mode network has) would be part of the saved state, and a tap's is not.
//!
//! A second serial port is the guest's command channel (`cmd.sock` in the honeypot's
//! directory, see [`guest_command`]): what the tests run inside the guest.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::link::{Netns, NetnsError};
use super::qmp::{Qmp, QmpError};
use super::Honeypot;
use crate::farm::command::{self, CommandError};

/// The guest's fixed address (`scripts/vm-image.sh`'s `guest_addr`).
pub const GUEST: Ipv4Addr = Ipv4Addr::new(172, 16, 20, 15);
/// The tap's address in the honeypot's namespace, the guest's default route
/// (`scripts/vm-image.sh`'s `gateway`), on the guest's /24.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 16, 20, 1);
/// The tap's name inside the honeypot's namespace.
pub const TAP: &str = "tap0";
/// Where the guest's smbd listens.
pub const GUEST_SMB_PORT: u16 = 445;
/// TCG's translation cache (MiB).
const TCG_CACHE_MB: u32 = 64;
/// The guest's init prints this on the serial console once Samba is warm.
const READY_LINE: &str = "HONEYFARM-READY";

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error("`{command}` failed: {reason}")]
    Tool { command: String, reason: String },
    /// A tool run to completion (`qemu-img`) failed or is missing.
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("KVM is not usable here ({0}): use accel = \"tcg\"")]
    NoKvm(String),
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error("the VM {why}{log}")]
    NotReady { why: String, log: String },
    #[error("the VM's network: {0}")]
    Netns(#[from] NetnsError),
    #[error("the guest's command channel {path}: {why}")]
    Channel { path: String, why: String },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> QemuError + 'a {
    move |source| QemuError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// How the VM's CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// Software emulation: no `/dev/kvm` needed, about ten times slower to boot and restore.
    Tcg,
}

impl Accel {
    /// KVM where it runs a stock Debian kernel, else TCG. A host whose KVM is PVM only
    /// (`kvm_pvm` without `kvm_intel`/`kvm_amd`, as in a Firecracker VM) runs unmodified guests
    /// through its instruction emulator: minutes to boot, far slower than TCG.
    pub fn detect() -> Accel {
        let hardware = ["kvm_intel", "kvm_amd"]
            .iter()
            .any(|m| Path::new("/sys/module").join(m).exists());
        if hardware && kvm_usable().is_ok() {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// How a honeypot VM comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// Restored from the saved warm state (flash cloning).
    Restore,
    /// Booted from the image, every time (slow; the baseline the restore is measured against).
    Cold,
}

#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// The directory `scripts/vm-image.sh` printed: `base.qcow2`, `vmlinuz`, `initrd.img`.
    pub image: PathBuf,
    /// Where the warm state is saved (reused while the image, memory and accelerator match).
    pub state_dir: PathBuf,
    pub memory_mb: u32,
    pub accel: Accel,
    pub boot: Boot,
    /// Where each honeypot's directory (overlay, logs, QMP socket) is made.
    pub work_dir: PathBuf,
    /// Keep a stopped honeypot's directory, its overlay with what the attacker wrote.
    pub keep: bool,
    pub ready_timeout: Duration,
    /// The QEMU program.
    pub qemu: PathBuf,
}

/// The warm VM every honeypot is restored from.
#[derive(Debug, Clone)]
struct Warm {
    /// Its disk (frozen at the save): the backing file of every overlay.
    disk: PathBuf,
    /// Its device state, a migration stream without the RAM.
    state: PathBuf,
    /// Its RAM, as it was at the save.
    ram: PathBuf,
}

/// Where a VM's RAM lives.
#[derive(Debug, Clone, Copy)]
enum Ram<'a> {
    /// Anonymous memory (a cold boot).
    Anonymous,
    /// This file, written through (the warm VM, whose RAM is saved in it).
    Saved(&'a Path),
    /// This file's pages, copied on write (a clone).
    Cloned(&'a Path),
}

pub struct QemuBackend {
    config: QemuConfig,
    warm: Option<Warm>,
}

impl QemuBackend {
    /// The backend; with [`Boot::Restore`], boots and saves the warm VM first unless a saved
    /// one for this image, memory size and accelerator is there (blocking, seconds).
    pub fn new(config: QemuConfig) -> Result<Self, QemuError> {
        if config.accel == Accel::Kvm {
            kvm_usable()?;
        }
        let warm = match config.boot {
            Boot::Restore => Some(prepare_warm(&config)?),
            Boot::Cold => None,
        };
        Ok(QemuBackend { config, warm })
    }

    /// The QEMU process id of a honeypot (for its memory figures).
    pub fn pid(honeypot: &Honeypot) -> Option<u32> {
        honeypot.child.as_ref().map(Child::id)
    }
}

/// Whether `/dev/kvm` can be opened (it exists and this user may use it).
pub fn kvm_usable() -> Result<(), QemuError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| QemuError::NoKvm(format!("/dev/kvm: {e}")))
}

/// The command line of a honeypot VM on `disk`, its files in `dir`; `netns`: the honeypot's
/// namespace, where QEMU runs with the guest's NIC on [`TAP`] (none: the warm VM, its NIC on a
/// hub port that leads nowhere).
fn vm_command(c: &QemuConfig, disk: &Path, dir: &Path, ram: Ram, netns: Option<&str>) -> Command {
    let net = match netns {
        Some(_) => format!("tap,id=n0,ifname={TAP},script=no,downscript=no,vnet_hdr=off"),
        None => "hubport,id=n0,hubid=0".to_string(),
    };
    let cpu = match c.accel {
        Accel::Kvm => "host",
        Accel::Tcg => "max",
    };
    // TCG's translation cache is 1 GiB by default: most of a VM's memory, never used here.
    let accel = match c.accel {
        Accel::Kvm => "kvm".to_string(),
        Accel::Tcg => format!("tcg,tb-size={TCG_CACHE_MB}"),
    };
    let mut cmd = match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns]).arg(&c.qemu);
            cmd
        }
        None => Command::new(&c.qemu),
    };
    cmd.args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-accel", &accel])
        .args(["-cpu", cpu, "-smp", "1", "-m", &c.memory_mb.to_string()]);
    let file = match ram {
        Ram::Anonymous => None,
        Ram::Saved(f) => Some((f, "on")),
        Ram::Cloned(f) => Some((f, "off")),
    };
    match file {
        None => cmd.args(["-machine", "pc"]),
        Some((f, share)) => cmd
            .args(["-machine", "pc,memory-backend=ram0", "-object"])
            .arg(format!(
                "memory-backend-file,id=ram0,size={}M,mem-path={},share={share}",
                c.memory_mb,
                f.display()
            )),
    };
    cmd.arg("-kernel")
        .arg(c.image.join("vmlinuz"))
        .arg("-initrd")
        .arg(c.image.join("initrd.img"))
        .args([
            "-append",
            "root=/dev/vda rw init=/sbin/hf-init console=ttyS0 net.ifnames=0 quiet",
        ])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", disk.display()))
        .args(["-netdev", &net])
        .args(["-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"])
        .arg("-serial")
        .arg(format!("file:{}", dir.join("serial.log").display()))
        .arg("-serial")
        .arg(format!(
            "unix:{},server=on,wait=off",
            dir.join("cmd.sock").display()
        ))
        .arg("-qmp")
        .arg(format!(
            "unix:{},server=on,wait=off",
            dir.join("qmp.sock").display()
        ))
        .current_dir(dir)
        .stdin(Stdio::null());
    // Its own process group: the farm's signals are not the VM's.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd
}

/// Starts `cmd` with its output in `dir/qemu.log`.
fn spawn(mut cmd: Command, dir: &Path) -> Result<Child, QemuError> {
    let log_path = dir.join("qemu.log");
    let log = std::fs::File::create(&log_path).map_err(io("creating", &log_path))?;
    let log2 = log.try_clone().map_err(io("creating", &log_path))?;
    cmd.stdout(log).stderr(log2);
    cmd.spawn().map_err(|e| QemuError::Tool {
        command: format!("{cmd:?}"),
        reason: e.to_string(),
    })
}

/// A qcow2 overlay at `path` on `backing`.
fn overlay(backing: &Path, path: &Path) -> Result<(), QemuError> {
    let args = ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"]
        .map(OsStr::new)
        .into_iter()
        .chain([backing.as_os_str(), path.as_os_str()])
        .collect::<Vec<_>>();
    command::run("qemu-img", &args, None)?;
    Ok(())
}

/// The last lines of the VM's logs, for an error.
fn log_tail(dir: &Path) -> String {
    let mut lines = Vec::new();
    for f in ["qemu.log", "serial.log"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(4).collect();
        lines.extend(tail.into_iter().rev().map(|l| format!("{f}: {l}")));
    }
    if lines.is_empty() {
        String::new()
    } else {
        format!(" (its logs end: {})", lines.join(" | "))
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Holds an exclusive lock on `path` while alive (one warm boot at a time per state dir).
struct FileLock {
    _held: std::fs::File,
}

impl FileLock {
    fn take(path: &Path) -> Result<FileLock, QemuError> {
        let f = std::fs::File::create(path).map_err(io("creating", path))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io("locking", path)(std::io::Error::last_os_error()));
        }
        Ok(FileLock { _held: f })
    }
}

/// What the saved state depends on: the image files, the memory size, the accelerator.
fn state_key(c: &QemuConfig) -> Result<String, QemuError> {
    // The machine's devices (a second serial port, the NIC's backend given at restore) are
    // part of the saved state: a change to them is a new state.
    let mut key = format!(
        "file-ram hubport serial2 {} {}m {}",
        c.image.display(),
        c.memory_mb,
        c.accel.name()
    );
    for f in ["base.qcow2", "vmlinuz", "initrd.img"] {
        let p = c.image.join(f);
        let m = std::fs::metadata(&p).map_err(io("reading", &p))?;
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        key += &format!(" {f}:{}:{mtime}", m.len());
    }
    Ok(key)
}

/// The saved warm VM, booted and saved now unless one for the same key is there.
fn prepare_warm(c: &QemuConfig) -> Result<Warm, QemuError> {
    // One directory per image too: farms (and test runs) on two images keep both states.
    let image = c
        .image
        .file_name()
        .map_or_else(String::new, |n| format!("-{}", n.to_string_lossy()));
    let dir = c
        .state_dir
        .join(format!("{}-{}m{image}", c.accel.name(), c.memory_mb));
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let _lock = FileLock::take(&dir.join(".lock"))?;
    let warm = Warm {
        disk: dir.join("warm.qcow2"),
        state: dir.join("state.bin"),
        ram: dir.join("ram.img"),
    };
    let key = state_key(c)?;
    let stamp = dir.join("key");
    if std::fs::read_to_string(&stamp).is_ok_and(|k| k == key)
        && warm.state.exists()
        && warm.ram.exists()
    {
        return Ok(warm);
    }
    let _ = std::fs::remove_file(&stamp);
    let _ = std::fs::remove_file(&warm.state);
    let _ = std::fs::remove_file(&warm.disk);
    let _ = std::fs::remove_file(&warm.ram);
    // A ready line in an old log would be taken for this boot's.
    for f in ["qmp.sock", "serial.log"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let began = Instant::now();
    overlay(&c.image.join("base.qcow2"), &warm.disk)?;
    let cmd = vm_command(c, &warm.disk, &dir, Ram::Saved(&warm.ram), None);
    let mut child = spawn(cmd, &dir)?;
    let saved = boot_and_save(c, &dir, &warm.state, &mut child);
    kill(&mut child);
    saved?;
    std::fs::write(&stamp, key).map_err(io("writing", &stamp))?;
    tracing::info!(
        "qemu: warm VM booted and saved in {} ms ({} KB of device state)",
        began.elapsed().as_millis(),
        std::fs::metadata(&warm.state).map_or(0, |m| m.len() >> 10)
    );
    Ok(warm)
}

/// Waits for the booting VM's ready line, then saves its state to `state`.
fn boot_and_save(
    c: &QemuConfig,
    dir: &Path,
    state: &Path,
    child: &mut Child,
) -> Result<(), QemuError> {
    let deadline = Instant::now() + c.ready_timeout;
    let serial = dir.join("serial.log");
    loop {
        if std::fs::read_to_string(&serial).is_ok_and(|s| s.contains(READY_LINE)) {
            break;
        }
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited || Instant::now() >= deadline {
            return Err(QemuError::NotReady {
                why: if exited {
                    "exited while booting".into()
                } else {
                    format!("printed no ready line in {} s", c.ready_timeout.as_secs())
                },
                log: log_tail(dir),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut qmp = Qmp::connect(&dir.join("qmp.sock"), Duration::from_secs(10))?;
    qmp.ignore_shared_ram()?;
    let tmp = state.with_extension("tmp");
    qmp.save_state(&format!("exec:cat > {}", tmp.display()), c.ready_timeout)?;
    let _ = qmp.execute("quit", serde_json::json!({}));
    std::fs::rename(&tmp, state).map_err(io("renaming", &tmp))
}

/// A minimal SMB1 Negotiate (NT LM 0.12) behind its NetBIOS header.
const NEGOTIATE: [u8; 51] = [
    0, 0, 0, 47, 0xff, b'S', b'M', b'B', 0x72, 0, 0, 0, 0, 0x18, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 0, 0, 0, 12, 0, 2, b'N', b'T', b' ', b'L', b'M', b' ',
    b'0', b'.', b'1', b'2', 0,
];

/// Whether an SMB server answers a Negotiate on `addr` within `timeout`: a forwarded port
/// accepts connections before the guest behind it does, so accepting proves nothing.
pub fn answers_smb(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    // The guest's first answer after a restore can take a while under TCG (its code is
    // translated afresh); a refused connection ends the wait at once.
    negotiate_answered(&mut s, timeout * 8)
}

/// Whether the SMB server on the other end of `s` answers a Negotiate within `timeout`.
pub fn negotiate_answered(s: &mut TcpStream, timeout: Duration) -> bool {
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_nodelay(true);
    if s.write_all(&NEGOTIATE).is_err() {
        return false;
    }
    let mut head = [0u8; 9];
    s.read_exact(&mut head).is_ok() && head[4..9] == [0xff, b'S', b'M', b'B', 0x72]
}

/// Loads the saved device state into the VM waiting in `dir` (its RAM is the saved file's) and
/// waits until it runs.
fn restore(dir: &Path, state: &Path, timeout: Duration) -> Result<(), QemuError> {
    let mut qmp = Qmp::connect(&dir.join("qmp.sock"), timeout)?;
    qmp.ignore_shared_ram()?;
    qmp.execute(
        "migrate-incoming",
        serde_json::json!({ "uri": format!("exec:cat {}", state.display()) }),
    )?;
    qmp.wait_running(timeout)?;
    Ok(())
}

impl QemuBackend {
    /// Starts a VM in `ns` (the honeypot's namespace, its containment loaded) whose SMB port
    /// answers on `addr` from the farm; its tap is attached once the restore has completed.
    fn start_vm(&self, addr: SocketAddr, dir: &Path, ns: &Netns) -> Result<Child, QemuError> {
        let c = &self.config;
        let began = Instant::now();
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let disk = dir.join("disk.qcow2");
        let backing = match &self.warm {
            Some(w) => w.disk.clone(),
            None => c.image.join("base.qcow2"),
        };
        overlay(&backing, &disk)?;
        ns.ip(&["tuntap", "add", "dev", TAP, "mode", "tap"])?;
        ns.ip(&["addr", "add", &format!("{GATEWAY}/24"), "dev", TAP])?;
        let ram = match &self.warm {
            Some(w) => Ram::Cloned(&w.ram),
            None => Ram::Anonymous,
        };
        let mut cmd = vm_command(c, &disk, dir, ram, Some(ns.name()));
        if self.warm.is_some() {
            cmd.args(["-incoming", "defer"]);
        }
        let mut child = spawn(cmd, dir)?;
        let attached = match &self.warm {
            Some(w) => restore(dir, &w.state, c.ready_timeout),
            None => Ok(()),
        }
        .and_then(|()| Ok(ns.ip(&["link", "set", TAP, "up"]).map(drop)?));
        if let Err(e) = attached {
            kill(&mut child);
            return Err(e);
        }
        tracing::debug!(
            "honeypot VM {addr}: running, its tap up, after {} ms",
            began.elapsed().as_millis()
        );
        let deadline = Instant::now() + c.ready_timeout;
        loop {
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if !exited && answers_smb(addr, Duration::from_millis(250)) {
                return Ok(child);
            }
            if exited || Instant::now() >= deadline {
                kill(&mut child);
                return Err(QemuError::NotReady {
                    why: if exited {
                        "exited before Samba answered".into()
                    } else {
                        format!("did not answer SMB within {} s", c.ready_timeout.as_secs())
                    },
                    log: log_tail(dir),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A honeypot VM in namespace `ns`, answering SMB on `addr` (the namespace's link address
    /// and port) when this returns.
    pub(super) fn start_in(&self, addr: SocketAddr, ns: &Netns) -> Result<Honeypot, QemuError> {
        let dir = self
            .config
            .work_dir
            .join(format!("vm-{}-{}", addr.ip(), addr.port()));
        let began = Instant::now();
        match self.start_vm(addr, &dir, ns) {
            Ok(child) => {
                tracing::info!(
                    "honeypot VM {addr} answers SMB after {} ms",
                    began.elapsed().as_millis()
                );
                Ok(Honeypot {
                    addr,
                    dir,
                    child: Some(child),
                })
            }
            Err(e) => {
                super::retire_dir(&self.config.work_dir, &dir, self.config.keep);
                Err(e)
            }
        }
    }

    /// Stops a honeypot VM and discards (or keeps) its overlay; its namespace is the caller's.
    pub(super) fn stop(&self, mut honeypot: Honeypot) {
        tracing::debug!("stopping honeypot VM {}", honeypot.addr);
        // Nothing of the VM is worth a clean shutdown: its disk writes are on the overlay
        // already (the guest's Samba syncs every write).
        if let Some(child) = &mut honeypot.child {
            kill(child);
        }
        super::retire_dir(&self.config.work_dir, &honeypot.dir, self.config.keep);
    }
}

/// Runs `command` in the guest of the VM honeypot whose directory is `dir` (`Honeypot::dir`;
/// `vm-{address}-{port}` in the work directory) through its command channel, waiting at most
/// `timeout`; returns its exit status and output (standard output and error together).
pub fn guest_command(
    dir: &Path,
    command: &str,
    timeout: Duration,
) -> Result<(i32, String), QemuError> {
    let path = dir.join("cmd.sock");
    let fail = |why: String| QemuError::Channel {
        path: path.display().to_string(),
        why,
    };
    if command.contains('\n') {
        return Err(fail("a command is one line".into()));
    }
    let mut s = UnixStream::connect(&path).map_err(|e| fail(e.to_string()))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| fail(e.to_string()))?;
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out);
        if let Some(at) = text.rfind("HF-DONE ") {
            let rest = &text[at + 8..];
            if let Some(end) = rest.find('\n') {
                let status = rest[..end].trim().parse().unwrap_or(-1);
                return Ok((status, text[..at].to_string()));
            }
        }
        if Instant::now() >= deadline {
            return Err(fail(format!("no end within {timeout:?}: {text}")));
        }
        match s.read(&mut buf) {
            Ok(0) => return Err(fail(format!("closed: {text}"))),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(fail(format!("{e}: {text}"))),
        }
    }
}

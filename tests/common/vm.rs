//! The qemu backend's test setup: the image (built through `scripts/vm-image.sh`, cached) and
//! a backend configuration, or a printed reason to skip.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use honeyfarm_runtime::farm::{
    remove_netns, Accel, Boot, EventStore, NetnsBackend, NetnsConfig, Policy, ProcessConfig,
    QemuBackend, QemuConfig,
};

/// The prefix of the qemu tests' namespaces, host veth ends and nftables tables.
pub const PREFIX: &str = "hfq";

/// Where the tests keep the saved warm state between runs (keyed by the image inside).
pub const STATE_DIR: &str = "/var/cache/honeyfarm/vm-state";

/// Why this machine cannot run the qemu tests, if it cannot.
fn missing() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (the image build needs debootstrap and chroot)".into());
    }
    for tool in ["qemu-system-x86_64", "qemu-img", "debootstrap"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is missing (scripts/setup.sh installs it)"));
        }
    }
    None
}

/// The image directory, built on first use (minutes) and cached; `None` (after printing why)
/// where this machine cannot build or run it.
pub fn image() -> Option<PathBuf> {
    if let Some(why) = missing() {
        eprintln!("SKIPPED: the qemu backend's tests need {why}");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/vm-image.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "vm-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Some(PathBuf::from(dir))
}

/// A backend configuration for honeypots under a fresh work directory named after `name`.
pub fn config(name: &str, boot: Boot) -> Option<QemuConfig> {
    let image = image()?;
    let accel = Accel::detect();
    if accel == Accel::Tcg {
        eprintln!(
            "note: no KVM that runs a stock kernel here (/dev/kvm missing, or PVM only): \
             the VMs run under TCG"
        );
    }
    // A killed earlier run's VMs hold their namespaces' addresses: they go first.
    super::dirs::sweep(name);
    let work_dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work_dir);
    Some(QemuConfig {
        image,
        state_dir: PathBuf::from(STATE_DIR),
        memory_mb: 256,
        accel,
        boot,
        work_dir,
        keep: false,
        ready_timeout: Duration::from_secs(240),
        qemu: "qemu-system-x86_64".into(),
    })
}

/// The file at `path` in the guest file system of the VM disk `disk` (an overlay on the image),
/// read with qemu-img and debugfs; scratch files go in `scratch`.
pub fn guest_file(disk: &Path, path: &str, scratch: &Path) -> Option<Vec<u8>> {
    if !disk.exists() {
        return None;
    }
    let raw = scratch.join("guest-disk.raw");
    let out = scratch.join("guest-file");
    let _ = std::fs::remove_file(&out);
    let converted = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(disk)
        .arg(&raw)
        .status()
        .is_ok_and(|s| s.success());
    // A killed VM leaves its last metadata in the ext4 journal: replay it first (e2fsck exits
    // 1 when it has changed something).
    let replayed = converted
        && Command::new("e2fsck")
            .arg("-fy")
            .arg(&raw)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| matches!(s.code(), Some(0..=1)));
    let dumped = replayed
        && Command::new("debugfs")
            .arg("-R")
            .arg(format!("dump {path} {}", out.display()))
            .arg(&raw)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&raw);
    // debugfs says "not found" without failing: an empty or missing dump is no file.
    dumped
        .then(|| std::fs::read(&out).ok())
        .flatten()
        .filter(|b| !b.is_empty())
}

/// The `qemu` backend as the farm runs it: each VM in a namespace of its own (prefix
/// [`PREFIX`]) under `policy`, its decisions recorded in `events`; the warm VM saved (or
/// found saved). `None` (after printing why) where this machine cannot run VMs.
pub fn backend(
    name: &str,
    boot: Boot,
    policy: Policy,
    events: Option<EventStore>,
) -> Option<(Arc<NetnsBackend>, PathBuf)> {
    let config = config(name, boot)?;
    let work = config.work_dir.clone();
    let vms = QemuBackend::new(config).expect("the warm VM is saved");
    let net = NetnsConfig {
        // A process honeypot's settings: unused by VMs.
        process: ProcessConfig {
            command: Vec::new(),
            ready_file: None,
            work_dir: work.clone(),
            keep: false,
            ready_timeout: Duration::from_secs(240),
        },
        prefix: PREFIX.into(),
        farm: [10, 231, 255, 254].into(),
        policy,
        events,
    };
    Some((NetnsBackend::with_vms(net, vms), work))
}

/// Removes the namespaces and host veth ends of honeypots on these link addresses (prefix
/// `.0`) and the directory `.2`, whatever happened; what ran in a namespace dies with it.
pub struct Links(pub &'static str, pub Vec<SocketAddr>, pub PathBuf);

impl Drop for Links {
    fn drop(&mut self) {
        for a in &self.1 {
            if let IpAddr::V4(v) = a.ip() {
                remove_netns(&format!("{}-{v}", self.0));
                let _ = Command::new("ip")
                    .args(["link", "del", &format!("{}{:08x}", self.0, u32::from(v))])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.2);
    }
}

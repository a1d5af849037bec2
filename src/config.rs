//! The farm's configuration file (TOML; `config/honeyfarm.toml` is the documented example and
//! the embedded default).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use honeyfarm_runtime::farm::{Deadlines, FilterConfig, Policy, Ports, Prefix, Scope};
use serde::Deserialize;

/// The configuration `honeyfarm run` uses without `--config`.
pub const DEFAULT: &str = include_str!("../config/honeyfarm.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub events: Events,
    pub scripts: Scripts,
    #[serde(default)]
    pub listen: Vec<Listen>,
    pub honeypots: Option<Honeypots>,
    #[serde(default)]
    pub session: Session,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub filter: Filter,
    #[serde(default)]
    pub kernel: Kernel,
    pub metrics: Option<Metrics>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    pub path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scripts {
    pub dirs: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// One telescope address and port (`127.0.0.77:4450`)...
    #[serde(default)]
    pub address: Option<SocketAddr>,
    /// ... or a prefix (`198.18.0.0/24`, IPv4 or IPv6, routed local: "AnyIP") and its ports.
    #[serde(default)]
    pub prefix: Option<String>,
    /// A list of ports; with `mode = "tproxy"` also `"all"`.
    #[serde(default)]
    pub ports: PortList,
    /// The service of a socket-mode entry; a TPROXY entry's service is its port's (the
    /// services table), so it takes none.
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub mode: Mode,
    /// `script` (the default: recorded dialogs, honeypots on deviation) or `emulate`
    /// (answers from `personality`, docs/EMULATION.md).
    #[serde(default)]
    pub responder: Responder,
    #[serde(default)]
    pub personality: Option<PathBuf>,
}

/// Who answers a listener's connections.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Responder {
    #[default]
    Script,
    /// The emulator, from the personality file.
    Emulate,
}

/// How a `[[listen]]` entry takes its connections.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A socket per port (AnyIP for a prefix).
    #[default]
    Socket,
    /// Every port (or the listed ports) of the prefix through an nftables `tproxy` rule to one
    /// transparent socket (needs `CAP_NET_ADMIN`).
    Tproxy,
}

/// `ports = [445, 139]`, or `ports = "all"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PortList {
    List(Vec<u16>),
    Word(String),
}

impl Default for PortList {
    fn default() -> Self {
        PortList::List(Vec::new())
    }
}

impl PortList {
    fn list(&self) -> &[u16] {
        match self {
            PortList::List(l) => l,
            PortList::Word(_) => &[],
        }
    }
}

/// A `mode = "tproxy"` entry: its prefix and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TproxyEntry {
    pub prefix: Prefix,
    pub ports: Ports,
}

/// One socket the farm binds: an address and port, the prefixes it answers for (the
/// `[[listen]]` entries of its family and port), and their service.
#[derive(Debug, Clone)]
pub struct Binding {
    pub bind: SocketAddr,
    pub prefixes: Vec<Prefix>,
    pub service: String,
    /// The personality file, when the emulator answers.
    pub personality: Option<PathBuf>,
}

impl Binding {
    pub fn scope(&self) -> Scope {
        Scope::new(self.prefixes.clone())
    }
}

impl Listen {
    /// The personality file of an emulated entry (none for scripts).
    fn personality(&self) -> Result<Option<PathBuf>> {
        match (&self.responder, &self.personality) {
            (Responder::Emulate, Some(p)) => Ok(Some(p.clone())),
            (Responder::Emulate, None) => {
                bail!("`responder = \"emulate\"` needs `personality = \"FILE\"`")
            }
            (Responder::Script, Some(_)) => {
                bail!("`personality` is for `responder = \"emulate\"`")
            }
            (Responder::Script, None) => Ok(None),
        }
    }

    /// The (prefix, port) pairs and service of a socket-mode entry.
    fn pairs(&self) -> Result<(Vec<(Prefix, u16)>, &str)> {
        let Some(service) = &self.service else {
            bail!("[[listen]]: `service = \"...\"` is missing");
        };
        let ports = self.ports.list();
        match (&self.address, &self.prefix, &self.ports) {
            (Some(a), None, _) if ports.is_empty() => {
                let p = Prefix::new(a.ip(), if a.is_ipv4() { 32 } else { 128 })
                    .context("an address is its own prefix")?;
                Ok((vec![(p, a.port())], service))
            }
            (None, Some(p), PortList::List(_)) if !ports.is_empty() => {
                let p: Prefix = p.parse()?;
                Ok((ports.iter().map(|&port| (p, port)).collect(), service))
            }
            _ => bail!(
                "[[listen]] takes either `address = \"IP:PORT\"` or `prefix = \"NET/LEN\"` \
                 with `ports = [...]` (`ports = \"all\"` with `mode = \"tproxy\"` only)"
            ),
        }
    }

    /// The prefix and ports of a TPROXY entry.
    fn tproxy(&self) -> Result<TproxyEntry> {
        let (None, Some(p), None) = (&self.address, &self.prefix, &self.service) else {
            bail!(
                "[[listen]] with mode = \"tproxy\" takes `prefix` and `ports`, no `address` \
                 nor `service` (each port's service is its well-known one)"
            );
        };
        let ports = match &self.ports {
            PortList::Word(w) if w == "all" => Ports::All,
            PortList::List(l) if !l.is_empty() => Ports::List(l.clone()),
            _ => bail!("[[listen]] mode = \"tproxy\": `ports = \"all\"` or a list of ports"),
        };
        if self.responder != Responder::Script || self.personality.is_some() {
            bail!("[[listen]] mode = \"tproxy\" answers from scripts: the emulator takes a socket-mode entry");
        }
        Ok(TproxyEntry {
            prefix: p.parse()?,
            ports,
        })
    }
}

impl Config {
    /// The sockets to bind, one per family and port: the prefix's own address when a port has
    /// one single-address entry (as before prefixes), else the unspecified address, which
    /// accepts for every address routed local.
    pub fn bindings(&self) -> Result<Vec<Binding>> {
        let mut by: BTreeMap<(bool, u16), Binding> = BTreeMap::new();
        for l in self.listen.iter().filter(|l| l.mode == Mode::Socket) {
            let personality = l.personality()?;
            let (pairs, service) = l.pairs()?;
            for (prefix, port) in pairs {
                let key = (prefix.first().is_ipv4(), port);
                let b = by.entry(key).or_insert_with(|| Binding {
                    bind: SocketAddr::new(prefix.bind_address(), port),
                    prefixes: Vec::new(),
                    service: service.to_string(),
                    personality: personality.clone(),
                });
                if b.personality != personality {
                    bail!("port {port} is given two responders or personalities");
                }
                if b.service != service {
                    bail!(
                        "port {port} is given two services, `{}` and `{service}`",
                        b.service,
                    );
                }
                b.prefixes.push(prefix);
            }
        }
        for b in by.values_mut().filter(|b| b.prefixes.len() > 1) {
            let family = Prefix::new(b.bind.ip(), 0).context("/0 fits")?;
            b.bind.set_ip(family.bind_address());
        }
        Ok(by.into_values().collect())
    }

    /// The `mode = "tproxy"` entries.
    pub fn tproxy(&self) -> Result<Vec<TproxyEntry>> {
        self.listen
            .iter()
            .filter(|l| l.mode == Mode::Tproxy)
            .map(Listen::tproxy)
            .collect()
    }

    /// Every prefix the farm watches, in either mode.
    pub fn prefixes(&self) -> Result<Vec<Prefix>> {
        let mut all: Vec<Prefix> = self.tproxy()?.iter().map(|t| t.prefix).collect();
        for b in self.bindings()? {
            all.extend(b.prefixes);
        }
        all.sort_by_key(|p| p.to_string());
        all.dedup();
        Ok(all)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Honeypots {
    /// The services whose deviating attackers these honeypots take (`smb`).
    pub services: Vec<String>,
    pub backend: String,
    /// The honeypot's command line (`process` and `netns`).
    #[serde(default)]
    pub command: Vec<String>,
    /// The `qemu` backend's keys (`[honeypots.qemu]`).
    #[serde(default)]
    pub qemu: Option<QemuKeys>,
    pub addresses: Vec<SocketAddr>,
    #[serde(default)]
    pub pool: usize,
    pub work_dir: PathBuf,
    /// `[scripts' host name, honeypots' host name]` pairs, where the honeypots are another
    /// machine than the one the scripts were recorded from.
    #[serde(default)]
    pub names: Vec<(String, String)>,
    /// A file (`{dir}`, `{address}`, `{port}` filled in) the honeypot writes when it is ready.
    #[serde(default)]
    pub ready_file: Option<String>,
    /// Keep each honeypot's directory after it stops (under `work_dir/done/`), for forensics.
    #[serde(default)]
    pub keep: bool,
    #[serde(default = "default_ready")]
    pub ready_timeout_secs: u64,
    /// How long a telescope address keeps its honeypot after its last session ends, so a
    /// worm's next session reaches the same one (0: stopped at once).
    #[serde(default)]
    pub lease_linger_secs: u64,
    /// `netns` and `qemu` backends: the containment policy file (`docs/containment.example.toml`);
    /// without one, honeypots send nothing out at all.
    #[serde(default)]
    pub containment: Option<PathBuf>,
    /// `netns` and `qemu` backends: the prefix of their namespaces, veths and nftables tables.
    #[serde(default = "default_netns_prefix")]
    pub netns_prefix: String,
    /// `netns` and `qemu` backends: the farm's address on every honeypot's veth.
    #[serde(default = "default_farm_address")]
    pub farm_address: Ipv4Addr,
    /// The checked containment policy (filled in by [`Config::load`]).
    #[serde(skip)]
    pub policy: Option<Policy>,
}

fn default_netns_prefix() -> String {
    "hf".to_string()
}

fn default_farm_address() -> Ipv4Addr {
    Ipv4Addr::new(10, 231, 255, 254)
}

fn default_ready() -> u64 {
    30
}

/// `[honeypots.qemu]`: honeypot VMs restored from a saved warm state (docs/RUNNING.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuKeys {
    /// The directory `scripts/vm-image.sh` printed (base.qcow2, vmlinuz, initrd.img).
    pub image: PathBuf,
    /// Where the warm state is saved; `work_dir/state` when absent.
    #[serde(default)]
    pub state: Option<PathBuf>,
    #[serde(default = "default_vm_memory")]
    pub memory_mb: u32,
    /// `kvm`, `tcg` (software emulation, the fallback) or `auto` (KVM where it runs a stock
    /// kernel).
    #[serde(default = "default_accel")]
    pub accel: String,
    /// `restore` (flash cloning from the warm state) or `cold` (a full boot per honeypot).
    #[serde(default = "default_boot")]
    pub boot: String,
}

fn default_vm_memory() -> u32 {
    256
}
fn default_accel() -> String {
    "auto".into()
}
fn default_boot() -> String {
    "restore".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
    #[serde(default = "default_reply")]
    pub reply_timeout_secs: u64,
    #[serde(default = "default_max")]
    pub max_message_bytes: usize,
    #[serde(default = "default_artifact")]
    pub max_artifact_bytes: usize,
    /// From a message's first byte to its last (0: no limit).
    #[serde(default = "default_message_deadline")]
    pub message_deadline_secs: u64,
    /// From a connection's start to its end (0: no limit).
    #[serde(default = "default_session_deadline")]
    pub session_deadline_secs: u64,
}

impl Session {
    /// The deadlines besides the idle timeout, as the runtime takes them.
    pub fn deadlines(&self) -> Deadlines {
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        Deadlines {
            message: secs(self.message_deadline_secs),
            session: secs(self.session_deadline_secs),
        }
    }
}

/// A slowloris that sends a byte before the idle timeout, message after message, is cut here.
fn default_message_deadline() -> u64 {
    30
}
/// Long enough for a worm's upload through the bridge, short enough that nothing stays forever.
fn default_session_deadline() -> u64 {
    3600
}

fn default_idle() -> u64 {
    120
}
fn default_reply() -> u64 {
    15
}
fn default_max() -> usize {
    1 << 20
}
fn default_artifact() -> usize {
    64 << 20
}

impl Default for Session {
    fn default() -> Self {
        Session {
            idle_timeout_secs: default_idle(),
            reply_timeout_secs: default_reply(),
            max_message_bytes: default_max(),
            max_artifact_bytes: default_artifact(),
            message_deadline_secs: default_message_deadline(),
            session_deadline_secs: default_session_deadline(),
        }
    }
}

/// What the farm takes in at most (`docs/RUNNING.md`, "Limits").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Connections served at once, over all listeners; more are reset at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections served at once from one source address.
    #[serde(default = "default_max_per_source")]
    pub max_per_source: usize,
    /// Connections the kernel queues for each listener before the farm accepts them.
    #[serde(default = "default_backlog")]
    pub listen_backlog: u32,
    /// How often refusals, accept errors and outcomes are summarised (log and event store).
    #[serde(default = "default_report")]
    pub report_interval_secs: u64,
}

fn default_max_connections() -> usize {
    4096
}
fn default_max_per_source() -> usize {
    64
}
fn default_backlog() -> u32 {
    4096
}
fn default_report() -> u64 {
    10
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: default_max_connections(),
            max_per_source: default_max_per_source(),
            listen_backlog: default_backlog(),
            report_interval_secs: default_report(),
        }
    }
}

/// The scan filter (`docs/RUNNING.md`, "The scan filter").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Probes (new telescope addresses) answered per source; 0 turns the filter off.
    #[serde(default = "default_n")]
    pub n: usize,
    /// Sources by IPv4 prefix (32: each address its own source; 24: a /24 is one).
    #[serde(default = "default_v4")]
    pub ipv4_prefix: u8,
    /// Sources by IPv6 prefix (at most 64).
    #[serde(default = "default_v6")]
    pub ipv6_prefix: u8,
    /// A source idle this long is forgotten.
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// Sources tracked at most (56 bytes each, allocated at start).
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Filtered sources also go to an nftables set, so the kernel drops their SYNs (needs
    /// `CAP_NET_ADMIN` and `nft`; without them, the farm says so and filters in user space).
    #[serde(default)]
    pub kernel_set: bool,
}

fn yes() -> bool {
    true
}
fn default_n() -> usize {
    FilterConfig::default().n
}
fn default_v4() -> u8 {
    FilterConfig::default().ipv4_prefix
}
fn default_v6() -> u8 {
    FilterConfig::default().ipv6_prefix
}
fn default_window() -> u64 {
    FilterConfig::default().window.as_secs()
}
fn default_capacity() -> usize {
    FilterConfig::default().capacity
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            enabled: true,
            n: default_n(),
            ipv4_prefix: default_v4(),
            ipv6_prefix: default_v6(),
            window_secs: default_window(),
            capacity: default_capacity(),
            kernel_set: false,
        }
    }
}

/// The farm's kernel side (`docs/RUNNING.md`, "Privileged modes"): the nftables table it owns
/// (for `[filter] kernel_set` and TPROXY entries) and TPROXY's policy route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// The `inet` table's name (letters, digits, `_`); replaced at start, removed at exit.
    #[serde(default = "default_table")]
    pub table: String,
    /// The mark of diverted packets (`ip rule add fwmark MARK lookup ROUTE_TABLE`).
    #[serde(default = "default_fwmark")]
    pub fwmark: u32,
    /// The routing table that delivers them locally (`local default dev lo`).
    #[serde(default = "default_route_table")]
    pub route_table: u32,
    /// How often filtered sources are written to the kernel set (one `nft` run each).
    #[serde(default = "default_flush_ms")]
    pub flush_ms: u64,
}

fn default_table() -> String {
    "honeyfarm".into()
}
/// "HF".
fn default_fwmark() -> u32 {
    0x4846
}
fn default_route_table() -> u32 {
    4846
}
fn default_flush_ms() -> u64 {
    200
}

impl Default for Kernel {
    fn default() -> Self {
        Kernel {
            table: default_table(),
            fwmark: default_fwmark(),
            route_table: default_route_table(),
            flush_ms: default_flush_ms(),
        }
    }
}

impl Filter {
    /// The runtime's settings; off (`n = 0`) unless enabled.
    pub fn settings(&self) -> FilterConfig {
        FilterConfig {
            n: if self.enabled { self.n } else { 0 },
            ipv4_prefix: self.ipv4_prefix,
            ipv6_prefix: self.ipv6_prefix,
            window: Duration::from_secs(self.window_secs),
            capacity: self.capacity,
        }
    }
}

/// The Prometheus endpoint; absent, there is none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// A loopback address and port (`127.0.0.1:9464`).
    pub listen: SocketAddr,
}

impl Honeypots {
    /// The namespace settings (of `netns` and `qemu`), and the containment policy loaded.
    fn check_netns(&mut self, name: &str) -> Result<()> {
        let p = &self.netns_prefix;
        if p.is_empty() || p.len() > 6 || !p.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("{name}: [honeypots] netns_prefix `{p}`: 1 to 6 letters or digits");
        }
        if let Some(a) = self.addresses.iter().find(|a| !a.is_ipv4()) {
            bail!("{name}: [honeypots] address {a}: the netns and qemu backends' links are IPv4");
        }
        self.policy = Some(match &self.containment {
            Some(path) => Policy::load(path)?,
            None => Policy::deny_all(),
        });
        Ok(())
    }

    /// Checks the backend's settings and loads the containment policy of a `netns` or `qemu`
    /// backend.
    fn check(&mut self, name: &str) -> Result<()> {
        if self.command.is_empty() && self.backend != "qemu" {
            bail!("{name}: [honeypots] command is empty");
        }
        match self.backend.as_str() {
            "process" => {}
            "qemu" => {
                let Some(q) = &self.qemu else {
                    bail!("{name}: backend `qemu` needs [honeypots.qemu] image");
                };
                if !["auto", "kvm", "tcg"].contains(&q.accel.as_str()) {
                    bail!(
                        "{name}: [honeypots.qemu] accel `{}`: auto, kvm or tcg",
                        q.accel
                    );
                }
                if !["restore", "cold"].contains(&q.boot.as_str()) {
                    bail!(
                        "{name}: [honeypots.qemu] boot `{}`: restore or cold",
                        q.boot
                    );
                }
                // Each VM is in a namespace of its own, as a netns honeypot is.
                self.check_netns(name)?;
            }
            "netns" => self.check_netns(name)?,
            other => {
                bail!("{name}: honeypot backend `{other}`: this build has `process`, `netns` and `qemu`")
            }
        }
        Ok(())
    }
}

impl Config {
    /// Reads a configuration file; `None` gives the embedded default.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let (text, name) = match path {
            Some(p) => (
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
                p.display().to_string(),
            ),
            None => (DEFAULT.to_string(), "the default configuration".to_string()),
        };
        let mut c: Config = toml::from_str(&text).with_context(|| format!("in {name}"))?;
        if c.listen.is_empty() {
            bail!("{name}: no [[listen]] entries: the farm would answer nothing");
        }
        c.bindings().with_context(|| format!("in {name}"))?;
        c.tproxy().with_context(|| format!("in {name}"))?;
        if c.kernel.flush_ms == 0 {
            bail!("{name}: [kernel] flush_ms must be at least 1");
        }
        let l = &c.limits;
        if l.max_connections == 0
            || l.max_per_source == 0
            || l.listen_backlog == 0
            || l.report_interval_secs == 0
        {
            bail!("{name}: every [limits] value must be at least 1");
        }
        c.filter
            .settings()
            .check()
            .with_context(|| format!("in {name}"))?;
        if let Some(m) = &c.metrics {
            if !m.listen.ip().is_loopback() {
                bail!(
                    "{name}: [metrics] listen = {}: loopback addresses only",
                    m.listen
                );
            }
        }
        if let Some(h) = &mut c.honeypots {
            h.check(&name)?;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_states_the_default_limits() {
        let c = Config::load(None).unwrap();
        let d = Limits::default();
        assert_eq!(
            (
                c.limits.max_connections,
                c.limits.max_per_source,
                c.limits.listen_backlog,
                c.limits.report_interval_secs
            ),
            (
                d.max_connections,
                d.max_per_source,
                d.listen_backlog,
                d.report_interval_secs
            )
        );
    }

    #[test]
    fn a_zero_limit_is_refused() {
        let dir = std::env::temp_dir().join(format!("honeyfarm-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("zero.toml");
        let text = DEFAULT.replace("max_per_source = 64", "max_per_source = 0");
        std::fs::write(&path, text).unwrap();
        let e = Config::load(Some(&path)).unwrap_err();
        assert!(format!("{e:#}").contains("[limits]"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_qemu_backend_needs_its_image_and_known_settings() {
        let dir = std::env::temp_dir().join(format!("honeyfarm-config-q-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("q.toml");
        let load = |backend: &str| {
            let text = DEFAULT.replace("backend = \"process\"", backend);
            std::fs::write(&path, text).unwrap();
            Config::load(Some(&path)).map_err(|e| format!("{e:#}"))
        };
        let e = load("backend = \"qemu\"").unwrap_err();
        assert!(e.contains("needs [honeypots.qemu] image"), "{e}");
        // The [honeypots.qemu] table goes last: it ends [honeypots].
        let with = |keys: &str| {
            let text = format!(
                "{}\n[honeypots.qemu]\nimage = \"/var/cache/honeyfarm/vm/x\"\n{keys}\n",
                DEFAULT.replace("backend = \"process\"", "backend = \"qemu\"")
            );
            std::fs::write(&path, text).unwrap();
            Config::load(Some(&path)).map_err(|e| format!("{e:#}"))
        };
        let c = with("").unwrap();
        let q = c.honeypots.unwrap().qemu.unwrap();
        assert_eq!(
            (q.memory_mb, q.accel.as_str(), q.boot.as_str()),
            (256, "auto", "restore")
        );
        let e = with("accel = \"hvf\"").unwrap_err();
        assert!(e.contains("accel `hvf`"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn filter_and_metrics_settings_are_checked() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.filter.settings(), FilterConfig::default());
        assert!(c.metrics.is_none(), "metrics are off by default");
        let dir = std::env::temp_dir().join(format!("honeyfarm-config-f-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.toml");
        let load = |text: String| {
            std::fs::write(&path, text).unwrap();
            Config::load(Some(&path)).map_err(|e| format!("{e:#}"))
        };
        let off = load(DEFAULT.replace("enabled = true", "enabled = false")).unwrap();
        assert_eq!(off.filter.settings().n, 0);
        let e = load(DEFAULT.replace("n = 4", "n = 11")).unwrap_err();
        assert!(e.contains("[filter] n = 11"), "{e}");
        let e = load(DEFAULT.replace(
            "# [metrics]\n# listen = \"127.0.0.1:9464\"",
            "[metrics]\nlisten = \"0.0.0.0:9464\"",
        ))
        .unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn with_listen(listen: &str) -> Result<Config, String> {
        let dir = std::env::temp_dir().join(format!(
            "honeyfarm-config-l-{}-{:x}",
            std::process::id(),
            listen.len() ^ listen.bytes().map(u64::from).sum::<u64>() as usize
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.toml");
        let text = DEFAULT.replace(
            "[[listen]]\naddress = \"127.0.0.77:4450\"\nservice = \"smb\"",
            listen,
        );
        assert_ne!(text, DEFAULT, "the default's [[listen]] moved");
        std::fs::write(&path, text).unwrap();
        let c = Config::load(Some(&path)).map_err(|e| format!("{e:#}"));
        let _ = std::fs::remove_dir_all(&dir);
        c
    }

    #[test]
    fn tproxy_entries_take_a_prefix_and_all_or_listed_ports() {
        let c = with_listen(
            "[[listen]]\nmode = \"tproxy\"\nprefix = \"198.18.0.0/24\"\nports = \"all\"\n\
             [[listen]]\nmode = \"tproxy\"\nprefix = \"2001:db8::/64\"\nports = [21, 80]\n\
             [[listen]]\naddress = \"127.0.0.77:4450\"\nservice = \"smb\"",
        )
        .unwrap();
        assert_eq!(
            c.tproxy().unwrap(),
            [
                TproxyEntry {
                    prefix: "198.18.0.0/24".parse().unwrap(),
                    ports: Ports::All
                },
                TproxyEntry {
                    prefix: "2001:db8::/64".parse().unwrap(),
                    ports: Ports::List(vec![21, 80])
                },
            ]
        );
        assert_eq!(c.bindings().unwrap().len(), 1, "socket entries only");
        assert_eq!(c.prefixes().unwrap().len(), 3);
        assert_eq!(c.kernel.table, "honeyfarm");
        for (bad, says) in [
            ("ports = \"some\"", "`ports = \"all\"` or a list"),
            ("ports = \"all\"\nservice = \"smb\"", "nor `service`"),
        ] {
            let e = with_listen(&format!(
                "[[listen]]\nmode = \"tproxy\"\nprefix = \"198.18.0.0/24\"\n{bad}"
            ))
            .unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn listen_takes_an_address_or_a_prefix_with_ports() {
        let c = Config::load(None).unwrap();
        let b = c.bindings().unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].bind.to_string(), "127.0.0.77:4450");
        let c = with_listen(
            "[[listen]]\nprefix = \"198.18.0.0/24\"\nports = [445, 139]\nservice = \"smb\"\n\
             [[listen]]\nprefix = \"2001:db8::/64\"\nports = [445]\nservice = \"smb\"\n\
             [[listen]]\naddress = \"127.0.0.77:445\"\nservice = \"smb\"",
        )
        .unwrap();
        let b: Vec<(String, Vec<String>)> = c
            .bindings()
            .unwrap()
            .iter()
            .map(|b| {
                let p = b.prefixes.iter().map(|p| p.to_string()).collect();
                (b.bind.to_string(), p)
            })
            .collect();
        assert_eq!(
            b,
            [
                ("[::]:445".to_string(), vec!["2001:db8::/64".to_string()]),
                ("0.0.0.0:139".to_string(), vec!["198.18.0.0/24".to_string()]),
                (
                    "0.0.0.0:445".to_string(),
                    vec!["198.18.0.0/24".to_string(), "127.0.0.77/32".to_string()]
                ),
            ]
        );
        let e =
            with_listen("[[listen]]\nprefix = \"198.18.0.0/24\"\nservice = \"smb\"").unwrap_err();
        assert!(e.contains("ports = [...]"), "{e}");
        let e = with_listen(
            "[[listen]]\nprefix = \"198.18.0.0/24\"\nports = \"all\"\nservice = \"smb\"",
        )
        .unwrap_err();
        assert!(e.contains("with `mode = \"tproxy\"` only"), "{e}");
        let e =
            with_listen("[[listen]]\nprefix = \"198.18.0.0/33\"\nports = [1]\nservice = \"smb\"")
                .unwrap_err();
        assert!(e.contains("longer than the address"), "{e}");
    }
}

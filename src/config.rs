//! The farm's configuration file (TOML; `config/honeyfarm.toml` is the documented example and
//! the embedded default).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use honeyfarm_runtime::farm::{Deadlines, FilterConfig, Prefix, Scope};
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
    #[serde(default)]
    pub ports: Vec<u16>,
    pub service: String,
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

    /// The (prefix, port) pairs of the entry.
    fn pairs(&self) -> Result<Vec<(Prefix, u16)>> {
        match (&self.address, &self.prefix) {
            (Some(a), None) if self.ports.is_empty() => {
                let p = Prefix::new(a.ip(), if a.is_ipv4() { 32 } else { 128 })
                    .context("an address is its own prefix")?;
                Ok(vec![(p, a.port())])
            }
            (None, Some(p)) if !self.ports.is_empty() => {
                let p: Prefix = p.parse()?;
                Ok(self.ports.iter().map(|&port| (p, port)).collect())
            }
            _ => bail!(
                "[[listen]] takes either `address = \"IP:PORT\"` or `prefix = \"NET/LEN\"` \
                 with `ports = [...]`"
            ),
        }
    }
}

impl Config {
    /// The sockets to bind, one per family and port: the prefix's own address when a port has
    /// one single-address entry (as before prefixes), else the unspecified address, which
    /// accepts for every address routed local.
    pub fn bindings(&self) -> Result<Vec<Binding>> {
        let mut by: BTreeMap<(bool, u16), Binding> = BTreeMap::new();
        for l in &self.listen {
            let personality = l.personality()?;
            for (prefix, port) in l.pairs()? {
                let key = (prefix.first().is_ipv4(), port);
                let b = by.entry(key).or_insert_with(|| Binding {
                    bind: SocketAddr::new(prefix.bind_address(), port),
                    prefixes: Vec::new(),
                    service: l.service.clone(),
                    personality: personality.clone(),
                });
                if b.personality != personality {
                    bail!("port {port} is given two responders or personalities");
                }
                if b.service != l.service {
                    bail!(
                        "port {port} is given two services, `{}` and `{}`",
                        b.service,
                        l.service
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Honeypots {
    /// The services whose deviating attackers these honeypots take (`smb`).
    pub services: Vec<String>,
    pub backend: String,
    pub command: Vec<String>,
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
}

fn default_ready() -> u64 {
    30
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
        let c: Config = toml::from_str(&text).with_context(|| format!("in {name}"))?;
        if c.listen.is_empty() {
            bail!("{name}: no [[listen]] entries: the farm would answer nothing");
        }
        c.bindings().with_context(|| format!("in {name}"))?;
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
        if let Some(h) = &c.honeypots {
            if h.backend != "process" {
                bail!(
                    "{name}: honeypot backend `{}`: this build has `process`",
                    h.backend
                );
            }
            if h.command.is_empty() {
                bail!("{name}: [honeypots] command is empty");
            }
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
        let e =
            with_listen("[[listen]]\nprefix = \"198.18.0.0/33\"\nports = [1]\nservice = \"smb\"")
                .unwrap_err();
        assert!(e.contains("longer than the address"), "{e}");
    }
}

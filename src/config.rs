//! The farm's configuration file (TOML; `config/honeyfarm.toml` is the documented example and
//! the embedded default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
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
    pub address: SocketAddr,
    pub service: String,
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
        }
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
        let c: Config = toml::from_str(&text).with_context(|| format!("in {name}"))?;
        if c.listen.is_empty() {
            bail!("{name}: no [[listen]] entries: the farm would answer nothing");
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

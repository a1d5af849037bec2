//! `honeyfarm personality`: scan a real server into a personality file, and summarise one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use honeyfarm_runtime::emulate::scan::{self, ScanOptions};
use honeyfarm_runtime::emulate::{Compiled, Personality, Protocol};

/// What `personality scan` takes from the command line.
#[derive(clap::Args)]
pub struct ScanArgs {
    /// `http`, `smtp` or `ftp`.
    pub protocol: String,
    pub target: SocketAddr,
    #[arg(long)]
    pub out: PathBuf,
    /// The server's host name (replaced by `{hostname}`); this machine's by default.
    #[arg(long)]
    pub hostname: Option<String>,
    /// nmap's service probes.
    #[arg(long, default_value = honeyfarm_runtime::emulate::scan::nmap::DEFAULT_PATH)]
    pub probes: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// This machine's name, as servers on it call themselves.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn scan(a: ScanArgs) -> Result<bool> {
    let protocol: Protocol = a.protocol.parse()?;
    let o = ScanOptions {
        protocol,
        target: a.target,
        hostname: a.hostname.unwrap_or_else(system_hostname),
        nmap_probes: a.probes,
        first_byte: Duration::from_millis(2500),
        quiet: Duration::from_millis(400),
        progress: !a.quiet,
    };
    let p = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(scan::scan(&o))?;
    std::fs::write(&a.out, p.to_toml()?).with_context(|| format!("writing {}", a.out.display()))?;
    let c = Compiled::new(p)?;
    println!("{}: {}", a.out.display(), summary(&c));
    Ok(true)
}

fn summary(c: &Compiled) -> String {
    let (rules, probes, holes) = c.size();
    format!(
        "{} personality, {rules} rules, {probes} raw probes, {holes} placeholders, {} files",
        c.personality.protocol.name(),
        c.personality.files.len()
    )
}

/// Checks a personality file and prints its size.
pub fn show(path: &Path) -> Result<bool> {
    let c = Compiled::new(Personality::load(path)?)?;
    println!("{}: {}", path.display(), summary(&c));
    println!("source: {}", c.personality.source);
    Ok(true)
}

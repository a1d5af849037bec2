//! The farm's kernel side at start (`docs/RUNNING.md`, "Privileged modes"): the transparent
//! sockets of `mode = "tproxy"` entries, the nftables table that diverts to them and holds
//! the kernel set of filtered sources, and the writer that fills that set. Removed at a clean
//! exit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use honeyfarm_runtime::farm::{
    listen_transparent, Divert, Installed, Intake, Metrics, Ports, Scope, SetSpec, SetWriter,
    TableSpec,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;

const LOG: &str = "honeyfarm";

/// One family's TPROXY socket, and what it watches.
pub struct Diversion {
    pub listener: TcpListener,
    pub scope: Scope,
    /// The ports of its entries (`None`: all).
    ports: Option<Vec<u16>>,
}

impl Diversion {
    /// Whether connections to `port` reach it.
    pub fn takes(&self, port: u16) -> bool {
        self.ports.as_ref().is_none_or(|l| l.contains(&port))
    }
}

/// What [`start`] set up; [`KernelSide::stop`] at shutdown.
pub struct KernelSide {
    installed: Option<Installed>,
    diversions: Vec<Diversion>,
    writer: Option<JoinHandle<()>>,
}

impl KernelSide {
    /// The TPROXY sockets, to accept on.
    pub fn take_diversions(&mut self) -> Vec<Diversion> {
        std::mem::take(&mut self.diversions)
    }

    /// Writes what the kernel set still has queued, then removes the table and the policy
    /// route. The listeners must have stopped.
    pub async fn stop(&mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.await;
        }
        if let Some(mut t) = self.installed.take() {
            let name = t.name().to_string();
            match tokio::task::spawn_blocking(move || t.remove()).await {
                Ok(Ok(())) => info!(target: LOG, "nftables table {name} removed"),
                Ok(Err(e)) => warn!(target: LOG, "removing nftables table {name}: {e}"),
                Err(e) => warn!(target: LOG, "removing nftables table {name}: {e}"),
            }
        }
    }
}

/// Binds the TPROXY sockets, installs the farm's table (replacing a stale one) and starts the
/// kernel set's writer. TPROXY entries without the privilege are an error; the kernel set
/// without it is a warning (the user-space filter works alone).
pub fn start(
    cfg: &Config,
    intake: &Arc<Intake>,
    metrics: &Arc<Metrics>,
    stop: &watch::Receiver<bool>,
) -> Result<KernelSide> {
    let entries = cfg.tproxy()?;
    let mut diversions = Vec::new();
    let mut diverts = Vec::new();
    for v4 in [true, false] {
        let mine: Vec<_> = entries
            .iter()
            .filter(|e| e.prefix.first().is_ipv4() == v4)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let any = if v4 {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        };
        let listener = listen_transparent(SocketAddr::new(any, 0), cfg.limits.listen_backlog)
            .with_context(|| {
                "a transparent socket for [[listen]] mode = \"tproxy\" (IP_TRANSPARENT needs \
                 root or CAP_NET_ADMIN)"
            })?;
        let bind = listener.local_addr()?;
        let mut ports = Some(Vec::new());
        for e in &mine {
            diverts.push(Divert {
                prefix: e.prefix,
                ports: e.ports.clone(),
                to: bind,
            });
            match (&e.ports, &mut ports) {
                (Ports::List(l), Some(all)) => all.extend(l),
                _ => ports = None,
            }
        }
        diversions.push(Diversion {
            listener,
            scope: Scope::new(mine.iter().map(|e| e.prefix).collect()),
            ports,
        });
    }
    let f = &cfg.filter;
    let settings = f.settings();
    let set = (f.kernel_set && settings.n > 0).then(|| SetSpec {
        prefixes: cfg.prefixes().unwrap_or_default(),
        ipv4_prefix: f.ipv4_prefix,
        ipv6_prefix: f.ipv6_prefix,
        window: settings.window,
        capacity: f.capacity,
        n: settings.n,
    });
    if set.is_none() && diverts.is_empty() {
        return Ok(KernelSide {
            installed: None,
            diversions,
            writer: None,
        });
    }
    let spec = TableSpec {
        name: cfg.kernel.table.clone(),
        set: set.clone(),
        diverts,
        fwmark: cfg.kernel.fwmark,
        route_table: cfg.kernel.route_table,
    };
    let installed = match spec.install() {
        Ok(i) => i,
        Err(e) if spec.diverts.is_empty() => {
            warn!(target: LOG,
                "[filter] kernel_set: cannot set up nftables table {} ({e}); it needs root or \
                 CAP_NET_ADMIN and `nft`: filtering in user space alone",
                spec.name
            );
            return Ok(KernelSide {
                installed: None,
                diversions,
                writer: None,
            });
        }
        Err(e) => bail!(
            "[[listen]] mode = \"tproxy\": setting up nftables table {} and its policy route: \
             {e} (needs root or CAP_NET_ADMIN, `nft` and `ip`)",
            spec.name
        ),
    };
    for d in &spec.diverts {
        info!(target: LOG, "TPROXY: {} ({}) diverted to {}", d.prefix, ports_text(&d.ports), d.to);
    }
    let writer = set.map(|set| {
        let w = SetWriter::nft(&spec.name, &set);
        intake.attach_kernel(w.clone());
        metrics.attach_kernel(w.clone());
        info!(target: LOG,
            "kernel set: filtered sources' SYNs to {} dropped for {} s (nftables table {})",
            set.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
            set.window.as_secs(),
            spec.name
        );
        tokio::spawn(w.flush_every(
            Duration::from_millis(cfg.kernel.flush_ms),
            Duration::from_secs(cfg.limits.report_interval_secs),
            stop.clone(),
        ))
    });
    Ok(KernelSide {
        installed: Some(installed),
        diversions,
        writer,
    })
}

fn ports_text(p: &Ports) -> String {
    match p {
        Ports::All => "every port".into(),
        Ports::List(l) => {
            let l: Vec<String> = l.iter().map(u16::to_string).collect();
            format!("ports {}", l.join(", "))
        }
    }
}

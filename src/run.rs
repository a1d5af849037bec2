//! `honeyfarm run`: the farm's main loop. Listeners per telescope address, a session per
//! connection, honeypots from the pool for attackers who deviate, events in SQLite; SIGINT or
//! SIGTERM shuts it all down cleanly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use honeyfarm_runtime::farm::{
    serve_connection, EventStore, HoneypotError, Outcome, Pool, ProcessBackend, ProcessConfig,
    SessionConfig,
};
use honeyfarm_runtime::replay::Library;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::services::{self, types};

pub fn run(config: Option<&Path>) -> Result<bool> {
    let cfg = Config::load(config)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(farm(cfg))
}

async fn farm(cfg: Config) -> Result<bool> {
    let events = EventStore::open(&cfg.events.path)?;
    let mut library = Library::new();
    for dir in &cfg.scripts.dirs {
        for e in library.load_dir(dir, &types)? {
            eprintln!("honeyfarm: skipping a script: {e}");
        }
    }
    let pool = cfg.honeypots.as_ref().map(|h| {
        Pool::new(
            Arc::new(ProcessBackend::new(ProcessConfig {
                command: h.command.clone(),
                ready_file: h.ready_file.clone(),
                work_dir: h.work_dir.clone(),
                keep: h.keep,
                ready_timeout: Duration::from_secs(h.ready_timeout_secs),
            })),
            h.addresses.clone(),
            h.pool,
        )
    });
    let library = Arc::new(library);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut listeners = JoinSet::new();
    for l in &cfg.listen {
        let svc = services::service(&l.service)?;
        let session = Arc::new(SessionConfig {
            service: svc.codecs()?,
            library: library.clone(),
            // Honeypots only for the services they run.
            pool: pool.clone().filter(|_| {
                cfg.honeypots
                    .as_ref()
                    .is_some_and(|h| h.services.iter().any(|s| s == svc.name))
            }),
            events: events.clone(),
            reply_timeout: Duration::from_secs(cfg.session.reply_timeout_secs),
            idle_timeout: Duration::from_secs(cfg.session.idle_timeout_secs),
            max_message: cfg.session.max_message_bytes,
            max_artifact: cfg.session.max_artifact_bytes,
            deadlines: Default::default(),
            names: cfg
                .honeypots
                .as_ref()
                .map(|h| h.names.clone())
                .unwrap_or_default(),
        });
        let listener = TcpListener::bind(l.address)
            .await
            .with_context(|| format!("listening on {}", l.address))?;
        eprintln!(
            "honeyfarm: {} on {} ({} scripts loaded)",
            svc.name,
            l.address,
            library.len()
        );
        listeners.spawn(accept_loop(listener, session, stop_rx.clone()));
    }
    eprintln!(
        "honeyfarm: events in {}; stop with Ctrl-C",
        cfg.events.path.display()
    );
    if let Some(p) = pool.clone() {
        tokio::task::spawn_blocking(move || match p.fill() {
            Ok(()) => eprintln!("honeyfarm: honeypot pool warm"),
            Err(HoneypotError::Closed) => {}
            Err(e) => eprintln!("honeyfarm: warming the honeypot pool: {e}"),
        });
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("honeyfarm: shutting down");
    let _ = stop_tx.send(true);
    while listeners.join_next().await.is_some() {}
    if let Some(p) = pool {
        let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
    }
    events.close();
    eprintln!("honeyfarm: stopped");
    Ok(true)
}

/// Accepts connections until shutdown, then waits for its sessions to end.
async fn accept_loop(
    listener: TcpListener,
    session: Arc<SessionConfig>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    let for_sessions = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, attacker)) => {
                    let telescope = sock.local_addr().unwrap_or_else(|_| {
                        listener.local_addr().expect("a bound listener has an address")
                    });
                    let cfg = session.clone();
                    let stop = for_sessions.clone();
                    sessions.spawn(async move {
                        let (id, outcome, detail) =
                            serve_connection(cfg, sock, attacker, telescope, stop).await;
                        let at = match &outcome {
                            Outcome::Bridged { deviated_at } | Outcome::HandoffFailed { deviated_at } => {
                                format!(" deviated_at={deviated_at}")
                            }
                            _ => String::new(),
                        };
                        eprintln!(
                            "honeyfarm: connection {id} from {attacker} to {telescope}: {}{at}{}{detail}",
                            outcome.name(),
                            if detail.is_empty() { "" } else { ": " }
                        );
                    });
                }
                Err(e) => eprintln!("honeyfarm: accept: {e}"),
            },
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    while sessions.join_next().await.is_some() {}
}

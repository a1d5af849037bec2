//! `honeyfarm run`: the farm's main loop. Listeners per telescope address behind one intake
//! (connection caps, accept back-off, then the scan filter), a session per admitted
//! connection, honeypots from the pool for attackers who deviate, events in SQLite, metrics
//! on a loopback port if configured; SIGINT or SIGTERM shuts it all down cleanly.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use honeyfarm_runtime::emulate::{serve_emulated, Compiled, EmulateConfig, Personality};
use honeyfarm_runtime::farm::{
    accept_in_scope, bind_metrics, listen, raise_fd_limit, reflect_to, serve_connection,
    serve_metrics, then, Accel, Backend, Boot, EventStore, HoneypotError, Intake, Limits, Metrics,
    NetnsBackend, NetnsConfig, Outcome, Policy, Pool, ProcessBackend, ProcessConfig, QemuBackend,
    QemuConfig, ScanFilter, SessionConfig,
};
use honeyfarm_runtime::replay::Library;
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::either::Either;
use tracing::{debug, info, warn};
use tracing_subscriber::EnvFilter;

use crate::config::{self, Config};
use crate::kernel;
use crate::services::{self, types, Service};

/// The target of the farm's own log lines (`RUST_LOG=honeyfarm=debug` shows a line per
/// connection; the runtime's lines are under `honeyfarm_runtime`).
const LOG: &str = "honeyfarm";

/// Descriptors a farm needs besides two per connection: listeners, the store, honeypots.
const FD_OVERHEAD: u64 = 256;

pub fn run(config: Option<&Path>) -> Result<bool> {
    init_logging();
    let cfg = Config::load(config)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(farm(cfg))
}

/// Log lines on standard error; `RUST_LOG` chooses which (default: `info`).
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Already set (a second farm in one process): keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

async fn farm(cfg: Config) -> Result<bool> {
    let events = EventStore::open(&cfg.events.path)?;
    let mut library = Library::new();
    for dir in &cfg.scripts.dirs {
        for e in library.load_dir(dir, &types)? {
            warn!(target: LOG, "skipping a script: {e}");
        }
    }
    let library = Arc::new(library);
    let (pool, netns) = pool(&cfg, &events)?.unzip();
    let intake = Intake::new(Limits {
        max_connections: cfg.limits.max_connections,
        max_per_source: cfg.limits.max_per_source,
        report_interval: Duration::from_secs(cfg.limits.report_interval_secs),
    });
    check_fd_limit(&cfg.limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = Metrics::new();
    let filter = Arc::new(ScanFilter::new(&cfg.filter.settings())?);
    metrics.attach_filter(filter.clone());
    metrics.attach_events(events.clone());
    intake.attach(filter, metrics.clone());
    if let Some(p) = &pool {
        metrics.attach_pool(p.clone());
        tokio::spawn(expire_leases(p.clone(), stop_rx.clone()));
    }
    if let Some(n) = netns.flatten() {
        let every = Duration::from_secs(cfg.limits.report_interval_secs);
        tokio::spawn(record_containment(n, every, stop_rx.clone()));
    }
    if let Some(m) = &cfg.metrics {
        let listener = bind_metrics(m.listen).await?;
        info!(target: LOG, "metrics on http://{}/metrics", m.listen);
        tokio::spawn(serve_metrics(listener, metrics.clone(), stop_rx.clone()));
    }
    let mut listeners = JoinSet::new();
    let sessions = Sessions {
        cfg: &cfg,
        library: &library,
        pool: &pool,
        events: &events,
        metrics: &metrics,
    };
    let mut spawn = |listener, scope, services| {
        let (admitted, stop) = (intake.clone(), stop_rx.clone());
        let serve = move |sock, attacker, telescope| {
            connection(&services, &admitted, &stop, sock, attacker, telescope)
        };
        listeners.spawn(accept_in_scope(
            listener,
            scope,
            intake.clone(),
            stop_rx.clone(),
            serve,
        ));
    };
    for l in cfg.bindings()? {
        for p in &l.prefixes {
            p.check_routed()?;
        }
        let svc = services::service(&l.service)?;
        let session = sessions.config(svc)?;
        let listener = listen(l.bind, cfg.limits.listen_backlog)
            .with_context(|| format!("listening on {}", l.bind))?;
        let watched: Vec<String> = l.prefixes.iter().map(|p| p.to_string()).collect();
        info!(target: LOG,
            "{} on {} for {} ({} scripts loaded)",
            svc.name,
            l.bind,
            watched.join(", "),
            library.len()
        );
        let responder = match &l.personality {
            Some(path) => Responder::Emulated(emulator(path, &session)?),
            None => Responder::Scripted(session),
        };
        spawn(listener, l.scope(), Services::One(responder));
    }
    let mut kernel = kernel::start(&cfg, &intake, &metrics, &stop_rx)?;
    for d in kernel.take_diversions() {
        let mut by_port = HashMap::new();
        for (port, svc) in services::services_by_port(&[]) {
            if d.takes(port) {
                by_port.insert(port, Responder::Scripted(sessions.config(svc)?));
            }
        }
        spawn(d.listener, d.scope, Services::ByPort(by_port));
    }
    let reporter = tokio::spawn(
        intake
            .clone()
            .report_every_interval(events.clone(), stop_rx.clone()),
    );
    info!(target: LOG,
        "events in {}; stop with Ctrl-C",
        cfg.events.path.display()
    );
    if let Some(p) = pool.clone() {
        tokio::task::spawn_blocking(move || match p.fill() {
            Ok(()) => info!(target: LOG, "honeypot pool warm"),
            Err(HoneypotError::Closed) => {}
            Err(e) => warn!(target: LOG, "warming the honeypot pool: {e}"),
        });
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    info!(target: LOG, "shutting down");
    let _ = stop_tx.send(true);
    while listeners.join_next().await.is_some() {}
    let _ = reporter.await;
    // The last interval, with the sessions the shutdown ended.
    intake.report(&events);
    kernel.stop().await;
    if let Some(p) = pool {
        let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
    }
    events.close();
    info!(target: LOG, "stopped");
    Ok(true)
}

/// Ends the leases that lingered long enough, every second until shutdown, and warms
/// honeypots in place of the stopped ones.
async fn expire_leases(pool: Arc<Pool>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let p = pool.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if p.expire() > 0 {
                match p.fill() {
                    Ok(()) | Err(HoneypotError::Closed) => {}
                    Err(e) => warn!(target: LOG, "refilling the honeypot pool: {e}"),
                }
            }
        })
        .await;
    }
}

/// The honeypot pool of the configuration, if it has one, with its backend; its leases (and a
/// `netns` backend's containment decisions) go to `events`. Inside the async runtime.
/// A `qemu` backend prepares its warm VM first (blocking; minutes on first use under TCG).
type Honeypots = (Arc<Pool>, Option<Arc<NetnsBackend>>);
fn pool(cfg: &Config, events: &EventStore) -> Result<Option<Honeypots>> {
    let Some(h) = cfg.honeypots.as_ref() else {
        return Ok(None);
    };
    let process = ProcessConfig {
        command: h.command.clone(),
        ready_file: h.ready_file.clone(),
        work_dir: h.work_dir.clone(),
        keep: h.keep,
        ready_timeout: Duration::from_secs(h.ready_timeout_secs),
    };
    let contain = || NetnsConfig {
        process: process.clone(),
        prefix: h.netns_prefix.clone(),
        farm: h.farm_address,
        policy: h.policy.clone().unwrap_or_else(Policy::deny_all),
        events: Some(events.clone()),
    };
    // `qemu`'s VMs are each in a namespace of their own too, as `netns`'s processes are.
    let netns = match (h.backend.as_str(), &h.qemu) {
        ("netns", _) => Some(NetnsBackend::new(contain())),
        ("qemu", Some(q)) => Some(NetnsBackend::with_vms(contain(), qemu_backend(h, q)?)),
        _ => None,
    };
    let backend: Arc<dyn Backend> = match &netns {
        Some(n) => n.clone(),
        None => Arc::new(ProcessBackend::new(process)),
    };
    let pool = Pool::with_leases(
        backend,
        h.addresses.clone(),
        h.pool,
        Duration::from_secs(h.lease_linger_secs),
        Some(events.clone()),
    );
    if let Some(n) = &netns {
        n.set_reflector(reflect_to(
            pool.clone(),
            tokio::runtime::Handle::current(),
            Some(events.clone()),
        ));
    }
    Ok(Some((pool, netns)))
}

/// The `qemu` backend of `[honeypots.qemu]`, its warm VM saved (or found saved).
fn qemu_backend(h: &config::Honeypots, q: &config::QemuKeys) -> Result<QemuBackend> {
    let accel = match q.accel.as_str() {
        "kvm" => Accel::Kvm,
        "tcg" => Accel::Tcg,
        _ => Accel::detect(),
    };
    info!(target: LOG, "qemu honeypots: accel {accel:?}, boot {}", q.boot);
    QemuBackend::new(QemuConfig {
        image: q.image.clone(),
        state_dir: q.state.clone().unwrap_or_else(|| h.work_dir.join("state")),
        memory_mb: q.memory_mb,
        accel,
        boot: if q.boot == "cold" {
            Boot::Cold
        } else {
            Boot::Restore
        },
        work_dir: h.work_dir.clone(),
        keep: h.keep,
        ready_timeout: Duration::from_secs(h.ready_timeout_secs),
        qemu: "qemu-system-x86_64".into(),
    })
    .context("preparing the qemu honeypots")
}

/// Records the containment decisions of every honeypot's namespace each interval.
async fn record_containment(
    netns: Arc<NetnsBackend>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let n = netns.clone();
        let _ = tokio::task::spawn_blocking(move || n.record_counters()).await;
    }
}

/// Raises the soft open-file limit to the hard limit (a farm holds a descriptor per
/// connection, two once bridged), and says so once when even that is below what
/// `max_connections` needs: accepts would then fail with EMFILE before the cap refuses anything.
fn check_fd_limit(limits: &config::Limits) {
    let want = 2 * limits.max_connections as u64 + FD_OVERHEAD;
    match raise_fd_limit(u64::MAX) {
        Ok(n) if n < want => warn!(target: LOG,
            "the open-file limit is {n} (the hard limit), below the {want} that \
             max_connections = {} needs: accepts may fail with EMFILE (they pause and retry)",
            limits.max_connections
        ),
        Ok(n) => info!(target: LOG, "open-file limit {n} (the hard limit)"),
        Err(e) => warn!(target: LOG, "raising the open-file limit: {e}"),
    }
}

/// What every listener's sessions share; [`Sessions::config`] makes one service's.
struct Sessions<'a> {
    cfg: &'a Config,
    library: &'a Arc<Library>,
    pool: &'a Option<Arc<Pool>>,
    events: &'a EventStore,
    metrics: &'a Arc<Metrics>,
}

impl Sessions<'_> {
    fn config(&self, svc: &Service) -> Result<Arc<SessionConfig>> {
        let cfg = self.cfg;
        Ok(Arc::new(SessionConfig {
            service: svc.codecs()?,
            unframeable: svc.unframeable,
            library: self.library.clone(),
            // Honeypots only for the services they run.
            pool: self.pool.clone().filter(|_| {
                cfg.honeypots
                    .as_ref()
                    .is_some_and(|h| h.services.iter().any(|s| s == svc.name))
            }),
            events: self.events.clone(),
            reply_timeout: Duration::from_secs(cfg.session.reply_timeout_secs),
            idle_timeout: Duration::from_secs(cfg.session.idle_timeout_secs),
            max_message: cfg.session.max_message_bytes,
            max_artifact: cfg.session.max_artifact_bytes,
            deadlines: cfg.session.deadlines(),
            metrics: Some(self.metrics.clone()),
            names: cfg
                .honeypots
                .as_ref()
                .map(|h| h.names.clone())
                .unwrap_or_default(),
        }))
    }
}

/// The sessions of one listener: one service, or (TPROXY) the service of each port.
enum Services {
    One(Responder),
    ByPort(HashMap<u16, Responder>),
}

/// Who answers a listener's connections.
#[derive(Clone)]
enum Responder {
    Scripted(Arc<SessionConfig>),
    Emulated(Arc<EmulateConfig>),
}

/// The emulator of a listener: its personality, and the session settings that apply.
fn emulator(path: &Path, session: &SessionConfig) -> Result<Arc<EmulateConfig>> {
    let personality = Compiled::new(Personality::load(path)?)?;
    info!(target: LOG, "emulating from {}", path.display());
    Ok(Arc::new(EmulateConfig {
        personality: Arc::new(personality),
        codecs: session.service.clone(),
        events: session.events.clone(),
        idle_timeout: session.idle_timeout,
        max_message: session.max_message,
        uploads: Default::default(),
    }))
}

/// One admitted connection of a listener, served: its session, then its outcome counted and
/// logged, as one future (the connection's task holds it inline: one allocation). Under
/// TPROXY the service is the one of the port the attacker reached; a port without one is
/// closed at once (after the handshake the kernel made) and counted as `no_service`.
fn connection(
    services: &Services,
    intake: &Arc<Intake>,
    stop: &watch::Receiver<bool>,
    sock: TcpStream,
    attacker: SocketAddr,
    telescope: SocketAddr,
) -> impl Future<Output = ()> + Send + 'static {
    let responder = match services {
        Services::One(s) => Some(s),
        Services::ByPort(by_port) => by_port.get(&telescope.port()),
    };
    let Some(responder) = responder else {
        intake.no_service();
        drop(sock);
        return Either::Right(std::future::ready(()));
    };
    let session = match responder {
        Responder::Scripted(cfg) => Either::Left(serve_connection(
            cfg.clone(),
            sock,
            attacker,
            telescope,
            stop.clone(),
        )),
        // Boxed: the emulator's future is larger than a scripted session's (1.5 KB against
        // 1.4 KB; it held a 16 KiB upload buffer until that went to the heap), and inline it
        // would size every scripted connection's task too.
        Responder::Emulated(cfg) => Either::Right(Box::pin(serve_emulated(
            cfg.clone(),
            sock,
            attacker,
            telescope,
            stop.clone(),
        ))),
    };
    let intake = intake.clone();
    Either::Left(then(session, move |(id, outcome, detail)| {
        ended(&intake, id, &outcome, &detail, attacker, telescope)
    }))
}

/// Counts and logs how a connection ended.
fn ended(
    intake: &Intake,
    id: i64,
    outcome: &Outcome,
    detail: &str,
    attacker: SocketAddr,
    telescope: SocketAddr,
) {
    intake.ended(outcome);
    let at = match outcome {
        Outcome::Bridged { deviated_at } | Outcome::HandoffFailed { deviated_at } => {
            format!(" deviated_at={deviated_at}")
        }
        _ => String::new(),
    };
    debug!(target: LOG,
        "connection {id} from {attacker} to {telescope}: {}{at}{}{detail}",
        outcome.name(),
        if detail.is_empty() { "" } else { ": " }
    );
}

//! The farm's metrics, served as Prometheus text on a loopback port: connections by outcome,
//! filter decisions, the filter's table, leases and honeypots, handoff latency, and the event
//! queue's depth. Counters are atomics the hot paths bump; the filter's and the pool's state
//! is read when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::events::EventStore;
use super::filter::{FilterDecision, Probe, ScanFilter};
use super::honeypot::Pool;
use super::kernel::SetWriter;

/// Upper bounds (ms) of the handoff latency histogram's buckets.
const HANDOFF_BUCKETS_MS: [f64; 12] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("[metrics] listen = {0}: metrics are served on loopback only")]
    NotLoopback(SocketAddr),
    #[error("metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The farm's counters; one per farm, shared (`Arc<Metrics>`).
#[derive(Default)]
pub struct Metrics {
    /// Ended connections by outcome name (refusals and filtered connections included).
    outcomes: Mutex<BTreeMap<String, u64>>,
    admitted: AtomicU64,
    follow_ups: AtomicU64,
    filtered: AtomicU64,
    handoff_buckets: [AtomicU64; HANDOFF_BUCKETS_MS.len()],
    handoff_count: AtomicU64,
    /// Sum of handoff latencies, in microseconds.
    handoff_sum_us: AtomicU64,
    /// The event store, whose queue depth is read when scraped.
    events: OnceLock<EventStore>,
    filter: OnceLock<Arc<ScanFilter>>,
    pool: OnceLock<Arc<Pool>>,
    kernel: OnceLock<Arc<SetWriter>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("admitted", &self.admitted)
            .field("follow_ups", &self.follow_ups)
            .field("filtered", &self.filtered)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Reports this filter's table when scraped (the first one attached stays).
    pub fn attach_filter(&self, filter: Arc<ScanFilter>) {
        let _ = self.filter.set(filter);
    }

    /// Reports the kernel sets' writes when scraped (the first one attached stays).
    pub fn attach_kernel(&self, writer: Arc<SetWriter>) {
        let _ = self.kernel.set(writer);
    }

    /// Reports this pool's honeypots and leases when scraped (the first one attached stays).
    pub fn attach_pool(&self, pool: Arc<Pool>) {
        let _ = self.pool.set(pool);
    }

    /// Counts a filter decision.
    pub fn decision(&self, d: FilterDecision) {
        let c = match d {
            FilterDecision::Admit => &self.admitted,
            FilterDecision::FollowUp => &self.follow_ups,
            FilterDecision::Filtered(_) => &self.filtered,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an ended connection by its outcome's name.
    pub fn outcome(&self, name: &str) {
        let mut m = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                m.insert(name.to_string(), 1);
            }
        }
    }

    /// Records a handoff's latency (deviation to the honeypot's first answer relayed).
    pub fn handoff(&self, latency: Duration) {
        let ms = latency.as_secs_f64() * 1000.0;
        for (b, le) in self.handoff_buckets.iter().zip(HANDOFF_BUCKETS_MS) {
            if ms <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.handoff_count.fetch_add(1, Ordering::Relaxed);
        self.handoff_sum_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Reports this store's queue depth when scraped (the first one attached stays).
    pub fn attach_events(&self, events: EventStore) {
        let _ = self.events.set(events);
    }

    /// The filter's decision for one connection, counted: what the intake calls after its
    /// caps and before any session. A filter that is off admits everything (counted too).
    pub fn gate(&self, filter: &ScanFilter, probe: &Probe) -> FilterDecision {
        let d = filter.decide(probe);
        self.decision(d);
        if !d.answered() {
            self.outcome("filtered");
        }
        d
    }

    /// Everything, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let outcomes: Vec<(String, f64)> = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (format!("{{outcome=\"{k}\"}}"), *v as f64))
            .collect();
        metric(
            "honeyfarm_connections_total",
            "counter",
            "Connections ended, by outcome.",
            &outcomes,
        );
        metric(
            "honeyfarm_filter_decisions_total",
            "counter",
            "Scan filter decisions, by kind.",
            &[
                ("{decision=\"admit\"}".into(), load(&self.admitted)),
                ("{decision=\"follow_up\"}".into(), load(&self.follow_ups)),
                ("{decision=\"filtered\"}".into(), load(&self.filtered)),
            ],
        );
        if let Some(f) = self.filter.get() {
            let s = f.stats();
            for (name, kind, help, v) in [
                (
                    "honeyfarm_filter_sources_tracked",
                    "gauge",
                    "Sources in the filter's table.",
                    s.tracked as f64,
                ),
                (
                    "honeyfarm_filter_sources_capacity",
                    "gauge",
                    "The filter table's slots.",
                    s.capacity as f64,
                ),
                (
                    "honeyfarm_filter_sources_evicted_total",
                    "counter",
                    "Sources pushed out of the table within their window.",
                    s.evicted as f64,
                ),
                (
                    "honeyfarm_filter_sources_forgotten_total",
                    "counter",
                    "Sources idle past the window whose slot was reused.",
                    s.forgotten as f64,
                ),
            ] {
                metric(name, kind, help, &[(String::new(), v)]);
            }
        }
        if let Some(k) = self.kernel.get() {
            let c = &k.counts;
            metric(
                "honeyfarm_kernel_set_elements_total",
                "counter",
                "Elements for the nftables kernel sets, by set and result.",
                &[
                    (
                        "{set=\"filtered\",result=\"added\"}".into(),
                        load(&c.filtered_added),
                    ),
                    (
                        "{set=\"admitted\",result=\"added\"}".into(),
                        load(&c.admitted_added),
                    ),
                    ("{result=\"failed\"}".into(), load(&c.failed)),
                    ("{result=\"dropped\"}".into(), load(&c.dropped)),
                ],
            );
        }
        if let Some(p) = self.pool.get() {
            let c = p.counts();
            metric(
                "honeyfarm_honeypots",
                "gauge",
                "Honeypots by state.",
                &[
                    ("{state=\"free\"}".into(), c.warm as f64),
                    ("{state=\"starting\"}".into(), c.starting as f64),
                    ("{state=\"in_use\"}".into(), c.in_use as f64),
                    ("{state=\"lingering\"}".into(), c.lingering as f64),
                ],
            );
            metric(
                "honeyfarm_leases_total",
                "counter",
                "Leases of a honeypot to a telescope address, started and ended.",
                &[
                    ("{event=\"started\"}".into(), c.leases_started as f64),
                    ("{event=\"ended\"}".into(), c.leases_ended as f64),
                ],
            );
        }
        let mut rows: Vec<(String, f64)> = self
            .handoff_buckets
            .iter()
            .zip(HANDOFF_BUCKETS_MS)
            .map(|(b, le)| (format!("_bucket{{le=\"{le}\"}}"), load(b)))
            .collect();
        rows.push(("_bucket{le=\"+Inf\"}".into(), load(&self.handoff_count)));
        rows.push(("_sum".into(), load(&self.handoff_sum_us) / 1000.0));
        rows.push(("_count".into(), load(&self.handoff_count)));
        metric(
            "honeyfarm_handoff_latency_ms",
            "histogram",
            "From a deviation to the honeypot's first answer relayed, in milliseconds.",
            &rows,
        );
        if let Some(e) = self.events.get() {
            metric(
                "honeyfarm_event_queue_depth",
                "gauge",
                "Events queued for the store and not yet written.",
                &[(String::new(), e.queued() as f64)],
            );
        }
        out
    }
}

/// The value of one series (`name{labels}` as rendered) in Prometheus text: for tests and
/// tools that scrape the farm.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?
        .parse()
        .ok()
}

/// Binds the metrics endpoint; loopback addresses only (the farm's state is not for the
/// telescope's visitors).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    if !addr.ip().is_loopback() {
        return Err(MetricsError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })
}

/// Serves `GET /metrics` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((sock, _)) = accepted {
                    let m = metrics.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(5), answer(sock, &m)).await;
                    });
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One request, one answer, closed: all a scraper needs.
async fn answer(mut sock: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = req.split(|b| *b == b'\r').next().unwrap_or_default();
    let (status, body) = if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET / ") {
        ("200 OK", metrics.render())
    } else {
        ("404 Not Found", "GET /metrics\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body.as_bytes()).await?;
    sock.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::filter::FilterConfig;
    use crate::farm::honeypot::tests::{addrs, Fake};
    use crate::farm::EventStore;
    use std::net::IpAddr;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_text_says_what_happened() {
        let path =
            std::env::temp_dir().join(format!("honeyfarm-metrics-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let events = EventStore::open(&path).unwrap();
        let metrics = Metrics::new();
        let filter = Arc::new(
            ScanFilter::with_seed(
                &FilterConfig {
                    n: 4,
                    capacity: 64,
                    ..FilterConfig::default()
                },
                1,
            )
            .unwrap(),
        );
        let pool = Pool::with_leases(
            Arc::new(Fake::default()),
            addrs(4),
            1,
            Duration::ZERO,
            Some(events.clone()),
        );
        metrics.attach_filter(filter.clone());
        metrics.attach_pool(pool.clone());
        // Source A: 6 new addresses (4 admitted, 2 filtered), a follow-up; source B: 1.
        let probe = |src: [u8; 4], last: u8| Probe {
            source: IpAddr::from(src),
            telescope: SocketAddr::from(([198, 18, 0, last], 445)),
            now: 1000,
        };
        let mut answered = Vec::new();
        for (src, last) in [
            ([192, 0, 2, 1], 1),
            ([192, 0, 2, 1], 2),
            ([192, 0, 2, 1], 3),
            ([192, 0, 2, 1], 4),
            ([192, 0, 2, 1], 5),
            ([192, 0, 2, 1], 6),
            ([192, 0, 2, 1], 2),
            ([192, 0, 2, 2], 5),
        ] {
            let p = probe(src, last);
            if metrics.gate(&filter, &p).answered() {
                answered.push(p.telescope.ip());
            }
        }
        // Every answered connection takes a lease and ends scripted.
        let p = pool.clone();
        let leased = answered.clone();
        tokio::task::spawn_blocking(move || {
            p.fill().unwrap();
            for t in leased {
                let l = p.lease(t).unwrap();
                p.release(l);
            }
        })
        .await
        .unwrap();
        for _ in &answered {
            metrics.outcome("scripted");
        }
        metrics.handoff(Duration::from_millis(30));
        metrics.attach_events(events.clone());

        let text = metrics.render();
        for (series, want) in [
            ("honeyfarm_filter_decisions_total{decision=\"admit\"}", 5.0),
            (
                "honeyfarm_filter_decisions_total{decision=\"follow_up\"}",
                1.0,
            ),
            (
                "honeyfarm_filter_decisions_total{decision=\"filtered\"}",
                2.0,
            ),
            ("honeyfarm_connections_total{outcome=\"filtered\"}", 2.0),
            ("honeyfarm_connections_total{outcome=\"scripted\"}", 6.0),
            ("honeyfarm_filter_sources_tracked", 2.0),
            ("honeyfarm_filter_sources_evicted_total", 0.0),
            ("honeyfarm_leases_total{event=\"started\"}", 6.0),
            ("honeyfarm_leases_total{event=\"ended\"}", 6.0),
            ("honeyfarm_honeypots{state=\"in_use\"}", 0.0),
            ("honeyfarm_handoff_latency_ms_bucket{le=\"25\"}", 0.0),
            ("honeyfarm_handoff_latency_ms_bucket{le=\"50\"}", 1.0),
            ("honeyfarm_handoff_latency_ms_count", 1.0),
        ] {
            assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
        }
        let depth = sample(&text, "honeyfarm_event_queue_depth").expect("the store's queue");
        assert!(depth >= 0.0, "{depth}");

        // The event store agrees on the leases.
        events.close();
        let db = rusqlite::Connection::open(&path).unwrap();
        let n: i64 = db
            .query_row("SELECT COUNT(*) FROM leases", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            Some(n as f64),
            sample(&text, "honeyfarm_leases_total{event=\"ended\"}")
        );
        pool.shutdown();
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn only_loopback() {
        let e = bind("0.0.0.0:0".parse().unwrap()).await.unwrap_err();
        assert!(matches!(e, MetricsError::NotLoopback(_)), "{e}");
    }
}

//! The scan filter in the intake, over loopback: a source's first N telescope addresses are
//! served, its next new one is reset unread and counted, its follow-up to an admitted address
//! is served, another source is unaffected; the metrics endpoint says the same.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use honeyfarm_runtime::farm::{
    accept_loop, bind_metrics, listen, sample, serve_metrics, FilterConfig, Intake, Limits,
    Metrics, ScanFilter,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connects from `source` to `to`; whether the farm answered (its greeting came).
async fn served(source: [u8; 4], to: SocketAddr) -> bool {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((source, 0))).unwrap();
    // The reset can come before the connect is seen complete.
    let mut c = match s.connect(to).await {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return false,
        Err(e) => panic!("connecting to {to}: {e}"),
    };
    let mut buf = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await {
        Ok(Ok(_)) => buf == b"hello",
        Ok(Err(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
            false
        }
        Err(_) => panic!("no answer and no reset from {to}"),
    }
}

async fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_probes_served_the_next_reset_follow_ups_served() {
    let intake = Intake::new(Limits {
        max_connections: 100,
        max_per_source: 10,
        report_interval: Duration::from_secs(60),
    });
    let metrics = Metrics::new();
    let filter = Arc::new(
        ScanFilter::new(&FilterConfig {
            n: 4,
            capacity: 1024,
            ..FilterConfig::default()
        })
        .unwrap(),
    );
    metrics.attach_filter(filter.clone());
    intake.attach(filter, metrics.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Six telescope addresses, a listener each (127.0.0.0/8 is all local).
    let mut telescope = Vec::new();
    let mut loops = Vec::new();
    for last in 31..=36u8 {
        let l = listen(SocketAddr::from(([127, 0, 0, last], 0)), 64).unwrap();
        telescope.push(l.local_addr().unwrap());
        loops.push(tokio::spawn(accept_loop(
            l,
            intake.clone(),
            stop_rx.clone(),
            |mut sock: TcpStream, _peer| async move {
                let _ = sock.write_all(b"hello").await;
                let _ = sock.shutdown().await;
            },
        )));
    }
    let m = bind_metrics(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let metrics_addr = m.local_addr().unwrap();
    let server = tokio::spawn(serve_metrics(m, metrics.clone(), stop_rx.clone()));

    let a = [127, 0, 0, 100];
    let b = [127, 0, 0, 101];
    for t in &telescope[..4] {
        assert!(served(a, *t).await, "probe to {t}");
    }
    assert!(
        !served(a, telescope[4]).await,
        "the fifth new address is reset"
    );
    assert!(served(a, telescope[1]).await, "a follow-up is served");
    assert!(!served(a, telescope[5]).await, "still filtered");
    assert!(served(b, telescope[4]).await, "another source is its own");

    let text = scrape(metrics_addr).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
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
        ("honeyfarm_filter_sources_tracked", 2.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
    }
    let _ = stop_tx.send(true);
    for l in loops {
        l.await.unwrap();
    }
    server.await.unwrap();
}

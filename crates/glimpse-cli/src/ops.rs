//! What `glimpse serve` does for operators beyond the API: the Prometheus recorder (and its own listener with
//! `--metrics-addr`), and draining on SIGTERM / Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use glimpse_router::observability::{Draining, RenderMetrics};
use glimpse_router::AppState;
use metrics_exporter_prometheus::PrometheusBuilder;

/// Histogram buckets (seconds) for every latency metric: from one decoded thumbnail to a long generation.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Installs the process-wide recorder behind the `metrics` facade and describes every metric.
pub fn install_metrics() -> anyhow::Result<RenderMetrics> {
    let handle = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .context("metrics buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    glimpse_core::metered::describe();
    glimpse_router::observability::describe();
    glimpse_files::describe_metrics();
    glimpse_core::admission::describe();
    metrics::describe_gauge!("glimpse_model_load_seconds", metrics::Unit::Seconds, "How long loading each model took.");
    Ok(Arc::new(move || handle.render()))
}

/// `--metrics-addr`: `/metrics`, `/healthz` and `/readyz` on their own listener (commonly a port only the
/// scraper and the orchestrator reach). It keeps answering while the API listener drains, so `/readyz` reports
/// the drain there.
pub async fn serve_ops(addr: &str, state: AppState) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding --metrics-addr {addr}"))?;
    eprintln!("glimpse: Prometheus metrics on http://{}/metrics", listener.local_addr()?);
    let app = glimpse_router::observability::routes().with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// Resolves when SIGTERM or Ctrl-C arrives, after marking the server as draining (`/readyz` answers 503); the
/// server then accepts no new connection and lets open requests finish. A second signal, or `drain` seconds
/// without all requests finished, exits at once.
pub async fn drain_on_signal(draining: Arc<Draining>, drain: Duration) {
    signal().await;
    draining.start();
    eprintln!("glimpse: draining (up to {} s for requests in flight)", drain.as_secs());
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(drain) => eprintln!("glimpse: drain time is over, exiting with requests unfinished"),
            _ = signal() => eprintln!("glimpse: second signal, exiting now"),
        }
        std::process::exit(0);
    });
}

async fn signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The machine's memory (`MemTotal` of /proc/meminfo), where it can be read.
pub fn memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

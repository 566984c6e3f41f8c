//! Deletes expired files (blob and row), abandoned uploads and expired interactions in the background.

use std::sync::Arc;
use std::time::Duration;

use crate::store::FileStore;

/// How often the sweeper runs for a given time-to-live: often enough that a file outlives its expiry by at
/// most a small fraction of it, never more often than once a second. Reads check expiry themselves, so an
/// expired file is gone for clients at once whatever the sweep interval.
pub fn interval_for(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

pub fn spawn(store: Arc<FileStore>) -> tokio::task::JoinHandle<()> {
    let every = interval_for(store.config().ttl.min(store.config().interaction_ttl));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            match store.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "swept expired files and abandoned uploads"),
                Err(e) => tracing::warn!(error = %e, "file sweep failed"),
            }
        }
    })
}

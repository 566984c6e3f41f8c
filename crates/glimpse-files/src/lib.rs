//! The File API's storage: what `files.upload` / `files.get` / `files.list` / `files.delete` persist, and the
//! Interactions API's stored conversations, batch jobs and cached contents (same database).
//!
//! Metadata lives in SQL through `sqlx`'s `Any` driver, so the same queries run on the embedded SQLite
//! database (default: `<data dir>/glimpse.db`) and on PostgreSQL (`--database-url postgres://…`). File bytes
//! live in [`blobs::Blobs`]: a folder by default, an object store (S3-compatible, GCS, Azure) by URL. Uploads
//! are streamed chunk by chunk into the blob store, so memory stays constant whatever the file size and any
//! replica can take the next chunk.

pub mod batches;
pub mod blobs;
pub mod caches;
pub mod db;
pub mod ids;
pub mod interactions;
pub mod record;
pub mod store;
pub mod sweeper;

pub use record::{FileRecord, FileSource, FileState, InteractionRecord, UploadSession};
pub use store::{FileStore, FileStoreConfig, NewUpload};

/// Describes this crate's metrics (their help text on `/metrics`).
pub fn describe_metrics() {
    metrics::describe_counter!("glimpse_upload_bytes_total", metrics::Unit::Bytes, "Bytes received in file uploads.");
}

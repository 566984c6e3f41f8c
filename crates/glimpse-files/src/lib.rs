//! The File API's storage: what `files.upload` / `files.get` / `files.list` / `files.delete` persist, and the
//! Interactions API's stored conversations (same database).
//!
//! Metadata lives in SQL through `sqlx`'s `Any` driver, so the same queries run on the embedded SQLite
//! database (default: `<data dir>/glimpse.db`) and on PostgreSQL (`--database-url postgres://…`). File bytes
//! live in a [`blobs::BlobStore`]; the embedded one is a folder. Uploads are streamed chunk by chunk into a
//! staging file, so memory stays constant whatever the file size.

pub mod blobs;
pub mod db;
pub mod ids;
pub mod interactions;
pub mod record;
pub mod store;
pub mod sweeper;

pub use record::{FileRecord, FileState, InteractionRecord, UploadSession};
pub use store::{FileStore, FileStoreConfig, NewUpload};

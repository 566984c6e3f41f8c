//! Where file bytes live. The embedded store is a folder; an object store (S3-compatible) can implement the
//! same trait.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use glimpse_core::GlimpseError;

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Takes ownership of a complete local file (an upload's staging file) under `key`.
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), GlimpseError>;
    async fn read(&self, key: &str) -> Result<Vec<u8>, GlimpseError>;
    /// Deleting a missing blob is not an error (the sweeper and a delete may race).
    async fn delete(&self, key: &str) -> Result<(), GlimpseError>;
}

/// Blobs as files under one folder. `put_file` is a rename, so a blob is either absent or complete; the
/// staging folder must be on the same filesystem (both live in the data folder).
pub struct FolderBlobs {
    root: PathBuf,
}

impl FolderBlobs {
    pub fn new(root: PathBuf) -> Self {
        FolderBlobs { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf, GlimpseError> {
        // Keys are built from generated ids and hashed project names; refuse anything else.
        if key.is_empty() || key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(GlimpseError::Storage(format!("invalid blob key {key:?}")));
        }
        Ok(self.root.join(key))
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> GlimpseError {
    GlimpseError::Storage(format!("{what} {}: {e}", path.display()))
}

#[async_trait]
impl BlobStore for FolderBlobs {
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), GlimpseError> {
        let dest = self.path(key)?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| io_error("creating", parent, e))?;
        }
        tokio::fs::rename(path, &dest).await.map_err(|e| io_error("moving a blob to", &dest, e))
    }

    async fn read(&self, key: &str) -> Result<Vec<u8>, GlimpseError> {
        let path = self.path(key)?;
        tokio::fs::read(&path).await.map_err(|e| io_error("reading", &path, e))
    }

    async fn delete(&self, key: &str) -> Result<(), GlimpseError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error("deleting", &path, e)),
            _ => Ok(()),
        }
    }
}

//! Where file bytes live: one object store behind a URL (`--blob-url`), through Apache Arrow's `object_store`.
//!
//! `file:///path` (the default: `<data dir>/blobs`) keeps them in a folder; `s3://bucket[/prefix]` in any
//! S3-compatible store, configured by the standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP=true` for a plain-http endpoint); `gs://bucket` and
//! `az://container` through their own environments. Every replica of a deployment points at the same URL, so
//! no byte lives on one machine's disk.
//!
//! Writes stream: up to [`WRITE_BUFFER`] is sent in one PUT, more goes out as a multipart upload in parts of
//! that size, so memory stays flat whatever the file's size.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use glimpse_core::GlimpseError;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;
use tokio::io::AsyncWriteExt;

/// Bytes buffered before a write turns into a multipart upload (S3's smallest part is 5 MiB).
pub const WRITE_BUFFER: usize = 8 * 1024 * 1024;

pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The folder, when the store is one (see [`Blobs::remove_staging`]).
    folder: Option<std::path::PathBuf>,
    /// The URL without credentials, for logs.
    url: String,
}

/// A failure of the blob store: the detail (which may name paths or endpoints) goes to the log only.
pub(crate) fn blob_error(what: &str, e: impl std::fmt::Display) -> GlimpseError {
    GlimpseError::Storage(format!("blob store: {what}: {e}"))
}

/// Retries of a failing store end within 15 s (object_store's default keeps a request waiting 3 minutes when
/// the store is down); the request then fails with 500 and readiness reports the store.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig { max_retries: 4, retry_timeout: std::time::Duration::from_secs(15), ..Default::default() }
}

impl Blobs {
    /// Opens the store a URL names; `None` is the folder `default_dir`.
    pub fn open(url: Option<&str>, default_dir: &FsPath) -> Result<Blobs, GlimpseError> {
        let invalid = |why: String| GlimpseError::invalid(format!("--blob-url: {why}"));
        let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
            return Blobs::folder(default_dir);
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(format!("{url} is not a URL: {e}")))?;
        if parsed.scheme() == "file" {
            let dir = parsed.to_file_path().map_err(|_| invalid(format!("{url} is not a local path")))?;
            return Blobs::folder(&dir);
        }
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = match parsed.scheme() {
            "s3" | "s3a" => {
                let store = object_store::aws::AmazonS3Builder::from_env().with_url(url).with_retry(retry()).build();
                (Arc::new(store.map_err(|e| invalid(e.to_string()))?), Path::from(parsed.path()))
            }
            "gs" => {
                let store = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url).with_retry(retry()).build();
                (Arc::new(store.map_err(|e| invalid(e.to_string()))?), Path::from(parsed.path()))
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let store = object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url).with_retry(retry()).build();
                (Arc::new(store.map_err(|e| invalid(e.to_string()))?), Path::from(parsed.path()))
            }
            other => return Err(invalid(format!("unsupported scheme {other}: use file://, s3://, gs:// or az://"))),
        };
        let mut shown = parsed.clone();
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        Ok(Blobs { store, prefix, folder: None, url: shown.to_string() })
    }

    fn folder(dir: &FsPath) -> Result<Blobs, GlimpseError> {
        std::fs::create_dir_all(dir).map_err(|e| blob_error(&format!("creating {}", dir.display()), e))?;
        let dir = dir.canonicalize().map_err(|e| blob_error(&format!("opening {}", dir.display()), e))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| blob_error("opening the folder", e))?;
        Ok(Blobs { store: Arc::new(store), prefix: Path::default(), folder: Some(dir.clone()), url: format!("file://{}", dir.display()) })
    }

    /// The store's URL, credentials left out.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> Result<Path, GlimpseError> {
        // Keys are built from generated ids and hashed project names; refuse anything else.
        if key.is_empty() || key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(GlimpseError::Storage(format!("invalid blob key {key:?}")));
        }
        Ok(self.prefix.parts().chain(Path::from(key).parts()).collect())
    }

    /// Streams `body` into a new object `key`, calling `check` with the running total before each piece is
    /// written (it refuses a body over its limits). Returns the bytes written; on any error nothing is left
    /// under `key`.
    pub async fn write<S, E>(
        &self,
        key: &str,
        body: S,
        mut check: impl FnMut(u64) -> Result<(), GlimpseError>,
    ) -> Result<u64, GlimpseError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut writer = BufWriter::with_capacity(self.store.clone(), self.path(key)?, WRITE_BUFFER);
        let mut total = 0u64;
        let mut body = body;
        let result = async {
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(|e| GlimpseError::BodyInterrupted(format!("The upload's bytes stopped arriving: {e}")))?;
                total += piece.len() as u64;
                check(total)?;
                writer.put(piece).await.map_err(|e| blob_error("writing", e))?;
            }
            writer.shutdown().await.map_err(|e| blob_error("completing a write", e))
        }
        .await;
        match result {
            Ok(()) => Ok(total),
            Err(e) => {
                let _ = writer.abort().await;
                let _ = self.delete(key).await;
                Err(e)
            }
        }
    }

    /// The object's bytes, as a stream of pieces (constant memory).
    pub async fn stream(&self, key: &str) -> Result<BoxStream<'static, Result<Bytes, GlimpseError>>, GlimpseError> {
        let got = self.store.get(&self.path(key)?).await.map_err(|e| blob_error("reading", e))?;
        Ok(got.into_stream().map(|piece| piece.map_err(|e| blob_error("reading", e))).boxed())
    }

    pub async fn read(&self, key: &str) -> Result<Vec<u8>, GlimpseError> {
        let got = self.store.get(&self.path(key)?).await.map_err(|e| blob_error("reading", e))?;
        Ok(got.bytes().await.map_err(|e| blob_error("reading", e))?.to_vec())
    }

    /// Moves an object (a rename on a folder, copy and delete on an object store).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), GlimpseError> {
        self.store.rename(&self.path(from)?, &self.path(to)?).await.map_err(|e| blob_error("moving", e))
    }

    /// Deleting a missing object is not an error: replicas' sweepers and a client's delete may race.
    pub async fn delete(&self, key: &str) -> Result<(), GlimpseError> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(blob_error("deleting", e)),
        }
        let (dir, file) = key.rsplit_once('/').unwrap_or(("", key));
        let staged = format!("{file}#");
        self.remove_staging(dir, move |name| name.starts_with(&staged)).await
    }

    /// A folder store writes an object as `key#N` and renames it when complete; a process killed midway leaves
    /// that file behind, and `object_store` neither lists nor deletes such names. Deleting an object (or a
    /// prefix) therefore also removes the staging files in its folder `dir` that `select` picks by name.
    async fn remove_staging(&self, dir: &str, select: impl Fn(&str) -> bool + Send + 'static) -> Result<(), GlimpseError> {
        let Some(folder) = &self.folder else { return Ok(()) };
        let dir = folder.join(dir);
        tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
            for entry in entries.flatten() {
                if entry.file_name().to_str().is_some_and(|name| name.contains('#') && select(name)) {
                    remove_tree(&entry.path())?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| blob_error("removing staging files", e))?
        .map_err(|e: std::io::Error| blob_error("removing staging files", e))
    }

    /// Deletes every object whose key starts with `prefix/`: what a process killed while writing may have left
    /// under an upload's own prefix without a row naming it.
    pub async fn delete_under(&self, prefix: &str) -> Result<(), GlimpseError> {
        let prefix_key = prefix.trim_end_matches('/').to_string();
        let prefix = self.path(prefix)?;
        self.remove_staging(&prefix_key, |_| true).await?;
        let mut listed = self.store.list(Some(&prefix));
        while let Some(meta) = listed.next().await {
            match meta {
                Ok(meta) => match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(blob_error("deleting", e)),
                },
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(blob_error("listing", e)),
            }
        }
        Ok(())
    }

    /// Whether the store answers (for `/readyz`): a lookup of an object that need not exist.
    pub async fn check(&self) -> Result<(), GlimpseError> {
        match self.store.head(&self.path("glimpse-readiness-probe")?).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(blob_error("checking", e)),
        }
    }
}

/// Removes a file, or a folder and everything in it.
fn remove_tree(path: &FsPath) -> std::io::Result<()> {
    let removed = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

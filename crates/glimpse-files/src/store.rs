//! The File API's behaviour on top of [`Db`] and [`Blobs`]: upload sessions, chunk appends, finalize (hash,
//! recognise, publish), get / list / delete with per-project isolation, quota and expiry.
//!
//! Nothing lives in one process: an upload in progress is its row plus one blob per chunk, so any replica can
//! take the next chunk or the finalize; the database's conditional updates decide between replicas racing
//! for the same chunk, finalize or sweep.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use glimpse_core::media;
use glimpse_core::GlimpseError;
use sha2::{Digest, Sha256};

use crate::blobs::{blob_error, Blobs};
use crate::db::{Chunk, Db};
use crate::ids;
use crate::record::{now_ms, FileRecord, FileSource, FileState, UploadSession};

#[derive(Debug, Clone)]
pub struct FileStoreConfig {
    /// Holds `glimpse.db` (unless `database_url` is set) and `blobs/` (unless `blob_url` is set).
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default: SQLite in the data folder.
    pub database_url: Option<String>,
    /// `file:///…`, `s3://bucket[/prefix]`, `gs://…`, `az://…`; default: the data folder's `blobs/`.
    pub blob_url: Option<String>,
    pub max_file_bytes: u64,
    pub project_quota_bytes: u64,
    pub ttl: Duration,
    /// How long a stored interaction (and so a conversation through `previous_interaction_id`) is kept.
    pub interaction_ttl: Duration,
}

impl FileStoreConfig {
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 2 * 1024 * 1024 * 1024;
    pub const DEFAULT_PROJECT_QUOTA_BYTES: u64 = 20 * 1024 * 1024 * 1024;
    pub const DEFAULT_TTL: Duration = Duration::from_secs(48 * 3600);
    /// The Gemini API keeps paid-tier interactions 55 days.
    pub const DEFAULT_INTERACTION_TTL: Duration = Duration::from_secs(55 * 24 * 3600);
}

/// What the start request of an upload says.
#[derive(Debug, Clone, Default)]
pub struct NewUpload {
    pub project: String,
    /// A client-chosen id (`files/{id}`).
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub mime_type: Option<String>,
    pub declared_size: Option<u64>,
}

pub struct FileStore {
    pub(crate) db: Db,
    blobs: Arc<Blobs>,
    config: FileStoreConfig,
}

/// Bytes read from an upload to recognise its format.
const SNIFF_BYTES: usize = 64 * 1024;

/// A chunk's blob: unique per attempt, so two replicas given the same chunk never write the same object.
fn chunk_key(upload_id: &str, start: u64) -> String {
    format!("{}/{start:020}-{}", upload_prefix(upload_id), ids::new_file_id())
}

/// Where an upload's chunks live, and nothing else.
fn upload_prefix(upload_id: &str) -> String {
    format!("uploads/{upload_id}")
}

/// A file's blob: unique per upload, so a name used again after expiry never shares a blob with the old file.
fn file_key(project: &str, upload_id: &str) -> String {
    format!("files/{project}/{upload_id}")
}

/// The mime type of batch inputs and results (JSON Lines). The SDKs' examples upload them as `jsonl`.
pub const JSONL_MIME: &str = "application/jsonl";

/// Whether an upload declared as `mime` is JSON Lines (a batch job's input).
pub fn is_jsonl_mime(mime: &str) -> bool {
    let essence = mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    matches!(essence.as_str(), "jsonl" | "application/jsonl" | "application/x-jsonlines" | "application/jsonlines" | "application/x-ndjson" | "text/jsonl")
}

/// The real API's answer for a file that does not exist, has expired, or belongs to another project.
pub fn no_such_file(id: &str) -> GlimpseError {
    GlimpseError::PermissionDenied(format!("You do not have permission to access the File {id} or it may not exist."))
}

impl FileStore {
    pub async fn open(config: FileStoreConfig) -> Result<FileStore, GlimpseError> {
        tokio::fs::create_dir_all(&config.data_dir)
            .await
            .map_err(|e| GlimpseError::Storage(format!("creating {}: {e}", config.data_dir.display())))?;
        let url = match &config.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", config.data_dir.join("glimpse.db").display()),
        };
        let db = Db::connect(&url).await?;
        let blobs = Blobs::open(config.blob_url.as_deref(), &config.data_dir.join("blobs"))?;
        // Uploads in progress were staged in this folder before they moved to the blob store (migration 2
        // dropped their rows).
        let _ = tokio::fs::remove_dir_all(config.data_dir.join("uploads")).await;
        Ok(FileStore { db, blobs: Arc::new(blobs), config })
    }

    pub fn config(&self) -> &FileStoreConfig {
        &self.config
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Whether the database and the blob store answer (for `/readyz`).
    pub async fn check(&self) -> Result<(), GlimpseError> {
        self.db.check().await?;
        self.blobs.check().await
    }

    fn quota_error(&self) -> GlimpseError {
        GlimpseError::ResourceExhausted(format!(
            "File storage quota exceeded: a project may store at most {} bytes.",
            self.config.project_quota_bytes
        ))
    }

    fn too_large(&self, size: u64) -> GlimpseError {
        GlimpseError::invalid(format!(
            "File size {size} bytes exceeds the maximum of {} bytes per file.",
            self.config.max_file_bytes
        ))
    }

    /// Opens an upload session; limits on the declared size and the project's quota are checked here, before
    /// any byte is sent.
    pub async fn start_upload(&self, request: NewUpload) -> Result<UploadSession, GlimpseError> {
        if let Some(size) = request.declared_size {
            if size > self.config.max_file_bytes {
                return Err(self.too_large(size));
            }
            let used = self.db.used_bytes(&request.project, now_ms(), "").await?;
            if used.saturating_add(size) > self.config.project_quota_bytes {
                return Err(self.quota_error());
            }
        }
        if let Some(name) = &request.display_name {
            if name.chars().count() > 512 {
                return Err(GlimpseError::invalid("displayName must be at most 512 characters."));
            }
        }
        let file_id = match &request.name {
            Some(name) => {
                let id = ids::parse_custom_name(name)?;
                if self.db.id_taken(&request.project, &id).await? {
                    return Err(GlimpseError::AlreadyExists(format!("File files/{id} already exists.")));
                }
                id
            }
            None => ids::new_file_id(),
        };
        let session = UploadSession {
            id: ids::new_upload_id(),
            project: request.project,
            file_id,
            display_name: request.display_name,
            mime_type: request.mime_type,
            declared_size: request.declared_size,
            received: 0,
            create_ms: now_ms(),
        };
        self.db.insert_upload(&session).await?;
        Ok(session)
    }

    pub async fn upload_session(&self, upload_id: &str) -> Result<Option<UploadSession>, GlimpseError> {
        self.db.upload(upload_id).await
    }

    /// Appends one chunk at `offset` (which must equal the bytes received so far), streaming it to the blob
    /// store. Returns the new total. On any error the upload is where it was.
    pub async fn append<S, E>(&self, session: &UploadSession, offset: u64, body: S) -> Result<u64, GlimpseError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if offset != session.received {
            return Err(offset_error(offset, session.received));
        }
        let limit = session.declared_size.unwrap_or(self.config.max_file_bytes).min(self.config.max_file_bytes);
        let quota_left = self
            .config
            .project_quota_bytes
            .saturating_sub(self.db.used_bytes(&session.project, now_ms(), &session.id).await?);
        let key = chunk_key(&session.id, offset);
        let check = |written: u64| {
            let total = session.received + written;
            if total > limit {
                return Err(match session.declared_size {
                    Some(declared) if declared < self.config.max_file_bytes => GlimpseError::invalid(format!(
                        "The upload is larger than its declared size of {declared} bytes."
                    )),
                    _ => self.too_large(total),
                });
            }
            if total > quota_left {
                return Err(self.quota_error());
            }
            Ok(())
        };
        let length = self.blobs.write(&key, body, check).await?;
        if length == 0 {
            self.blobs.delete(&key).await?;
            return Ok(session.received);
        }
        metrics::counter!("glimpse_upload_bytes_total").increment(length);
        let chunk = Chunk { start: offset, length, blob_key: key };
        if !self.db.add_chunk(&session.id, &chunk).await? {
            // Another request moved the upload on (or is finalizing it) while this chunk was written.
            self.blobs.delete(&chunk.blob_key).await?;
            let now = self.db.upload(&session.id).await?.map_or(session.received, |s| s.received);
            return Err(GlimpseError::FailedPrecondition(format!(
                "Another request wrote to this upload at the same time (it has now received {now} bytes); send chunks one at a time."
            )));
        }
        Ok(offset + length)
    }

    /// Completes an upload: checks the size, hashes the bytes, recognises the image format and publishes the
    /// file (ACTIVE), or records it as FAILED when the bytes are not a supported image. The session ends
    /// either way. A replica claims the upload first, so a finalize sent twice publishes one file.
    pub async fn finalize(&self, session: &UploadSession) -> Result<FileRecord, GlimpseError> {
        if let Some(declared) = session.declared_size {
            if declared != session.received {
                self.discard(session).await?;
                return Err(GlimpseError::invalid(format!(
                    "The upload was finalized after {} bytes but declared {declared} bytes.",
                    session.received
                )));
            }
        }
        let lease = FinalizeLease::claim(&self.db, session).await?;
        let key = file_key(&session.project, &session.id);
        if let Some(file) = self.published_by(session, &key).await? {
            // A finalize killed after publishing the file and before ending the upload: this retry ends it.
            self.discard(session).await?;
            return Ok(file);
        }
        let assembled = lease.hold_while(self.assemble(session, &key)).await;
        let (sha256, head) = match assembled {
            Ok(done) => done,
            Err(e) => {
                let _ = self.blobs.delete(&key).await;
                lease.release().await;
                return Err(e);
            }
        };
        let sniffed = media::sniff(&head);
        let declared_format = session.mime_type.as_deref().and_then(|m| media::parse_mime(m).ok());
        let batch_input = session.mime_type.as_deref().is_some_and(is_jsonl_mime);
        let mime_type = if batch_input { Some(JSONL_MIME.to_string()) } else { session.mime_type.clone() }
            .or_else(|| sniffed.map(|f| f.mime().to_string()))
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let failure = match (sniffed, declared_format) {
            // A batch job's input: its lines are checked when a job reads them.
            _ if batch_input => None,
            (None, _) => Some(format!(
                "The file is not a supported image (PNG, JPEG, WEBP, HEIC or HEIF) or a batch input (mime type \
                 jsonl); declared type {mime_type}."
            )),
            (Some(found), Some(declared)) if !found.fulfils(declared) => {
                Some(format!("The file was declared as {declared} but its bytes are {found}."))
            }
            _ => None,
        };

        let now = now_ms();
        let mut record = FileRecord {
            id: session.file_id.clone(),
            project: session.project.clone(),
            display_name: session.display_name.clone(),
            mime_type,
            size_bytes: session.received,
            sha256_base64: sha256,
            create_ms: now,
            update_ms: now,
            expire_ms: now + self.config.ttl.as_millis() as i64,
            state: FileState::Active,
            error: None,
            blob_key: Some(key.clone()),
            source: FileSource::Uploaded,
        };
        if let Some(message) = failure {
            record.state = FileState::Failed;
            record.error = Some(message);
            record.blob_key = None;
            self.blobs.delete(&key).await?;
        }
        self.db.insert_file(&record).await?;
        self.discard(session).await?;
        Ok(record)
    }

    /// The file this upload already published (its row is written before the upload ends, so a process killed
    /// in between leaves both). The file id is reserved for the upload while it lasts, so a row with that id
    /// created since the upload started is its own: ACTIVE with the upload's blob, or FAILED with none.
    async fn published_by(&self, session: &UploadSession, key: &str) -> Result<Option<FileRecord>, GlimpseError> {
        let file = self.db.file(&session.project, &session.file_id).await?;
        Ok(file.filter(|f| {
            f.source == FileSource::Uploaded
                && f.create_ms >= session.create_ms
                && f.blob_key.as_deref().map_or(f.state == FileState::Failed, |k| k == key)
        }))
    }

    /// Puts an upload's chunks together under `key`, hashing them and keeping the first bytes on the way
    /// (constant memory). One chunk is moved rather than copied.
    async fn assemble(&self, session: &UploadSession, key: &str) -> Result<(String, Vec<u8>), GlimpseError> {
        let chunks = self.db.chunks(&session.id).await?;
        let contiguous = chunks.iter().try_fold(0u64, |at, c| (c.start == at).then_some(at + c.length));
        if contiguous != Some(session.received) {
            return Err(blob_error("assembling an upload", format!("its chunks do not cover {} bytes", session.received)));
        }
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut note = |piece: &Bytes| {
            hasher.update(piece);
            if head.len() < SNIFF_BYTES {
                head.extend_from_slice(&piece[..(SNIFF_BYTES - head.len()).min(piece.len())]);
            }
        };
        match chunks.as_slice() {
            [] => {
                self.blobs.write(key, futures::stream::empty::<Result<Bytes, GlimpseError>>(), |_| Ok(())).await?;
            }
            [only] => {
                // A finalize that was killed after the move left the bytes at `key` already.
                let (mut pieces, moved) = match self.blobs.stream(&only.blob_key).await {
                    Ok(pieces) => (pieces, false),
                    Err(e) => (self.blobs.stream(key).await.map_err(|_| e)?, true),
                };
                while let Some(piece) = pieces.next().await {
                    note(&piece?);
                }
                if !moved {
                    self.blobs.rename(&only.blob_key, key).await?;
                }
            }
            many => {
                let mut sources = Vec::with_capacity(many.len());
                for chunk in many {
                    sources.push(self.blobs.stream(&chunk.blob_key).await?);
                }
                let joined = futures::stream::iter(sources).flatten().map(|piece| {
                    piece.inspect(|p| note(p))
                });
                self.blobs.write(key, Box::pin(joined), |_| Ok(())).await?;
            }
        }
        Ok((base64::engine::general_purpose::STANDARD.encode(hasher.finalize()), head))
    }

    /// Ends an upload without a file: its row, its chunk rows and their blobs. Whether this call ended it
    /// (another replica, or a finalize, may have been first).
    ///
    /// The blobs go before the row that leads to them: a process killed in between leaves the upload's row, and
    /// the next discard (a finalize sent again, the sweeper) ends it. The other order left a killed process's
    /// chunks under a prefix nothing refers to, for good.
    pub async fn discard(&self, session: &UploadSession) -> Result<bool, GlimpseError> {
        // Every chunk blob lives under the upload's prefix: the listed ones, and one a killed process wrote
        // without recording it.
        let chunks = upload_prefix(&session.id);
        self.blobs.delete_under(&chunks).await?;
        // The file a killed finalize assembled without publishing it (a published one has its row).
        let key = file_key(&session.project, &session.id);
        let published = self.db.file(&session.project, &session.file_id).await?;
        if published.and_then(|file| file.blob_key).as_deref() != Some(key.as_str()) {
            self.blobs.delete(&key).await?;
        }
        let ended = self.db.delete_upload(&session.id).await?;
        if ended {
            // A chunk another request wrote and recorded while the blobs above were deleted (one recorded after
            // the row went is refused, and its writer deletes it).
            self.blobs.delete_under(&chunks).await?;
        }
        Ok(ended)
    }

    /// A file of `project` that exists and has not expired; anything else is the real API's 403.
    pub async fn get(&self, project: &str, id: &str) -> Result<FileRecord, GlimpseError> {
        match self.db.file(project, id).await? {
            Some(file) if !file.is_expired(now_ms()) => Ok(file),
            _ => Err(no_such_file(id)),
        }
    }

    pub async fn list(
        &self,
        project: &str,
        page_size: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<(Vec<FileRecord>, Option<String>), GlimpseError> {
        let (size, after) = page_request(page_size, page_token, 10)?;
        let size = size.min(100);
        let files = self.db.list_files(project, now_ms(), after, size + 1).await?;
        Ok(one_page(files, size, |f| (f.create_ms, &f.id)))
    }

    pub async fn delete(&self, project: &str, id: &str) -> Result<(), GlimpseError> {
        let file = self.get(project, id).await?;
        self.remove(&file).await
    }

    async fn remove(&self, file: &FileRecord) -> Result<(), GlimpseError> {
        let deleted = self.db.delete_file(&file.project, &file.id).await?;
        self.drop_blob_if(deleted, file).await
    }

    /// The row goes first, then the blob, and only by the call whose delete took the row (replicas and a
    /// client's delete may race): a row never points at a missing blob.
    async fn drop_blob_if(&self, row_deleted: bool, file: &FileRecord) -> Result<(), GlimpseError> {
        match &file.blob_key {
            Some(key) if row_deleted => self.blobs.delete(key).await,
            _ => Ok(()),
        }
    }

    /// The bytes of an ACTIVE file, for a prompt. `max_bytes` keeps a 2 GB upload from being read into memory.
    pub async fn read_for_prompt(
        &self,
        project: &str,
        id: &str,
        max_bytes: u64,
    ) -> Result<(FileRecord, Vec<u8>), GlimpseError> {
        let file = self.active(project, id).await?;
        if file.size_bytes > max_bytes {
            return Err(GlimpseError::invalid(format!(
                "The File {id} has {} bytes; images used in a prompt may have at most {max_bytes} bytes.",
                file.size_bytes
            )));
        }
        let key = file.blob_key.clone().ok_or_else(|| no_such_file(id))?;
        let bytes = self.blobs.read(&key).await?;
        Ok((file, bytes))
    }

    /// A file of `project` that may be used (ACTIVE); a FAILED one is FAILED_PRECONDITION, as upstream.
    async fn active(&self, project: &str, id: &str) -> Result<FileRecord, GlimpseError> {
        let file = self.get(project, id).await?;
        if file.state != FileState::Active {
            return Err(GlimpseError::FailedPrecondition(format!(
                "The File {id} is not in an ACTIVE state and usage is not allowed."
            )));
        }
        Ok(file)
    }

    /// A file's bytes as a stream (constant memory).
    async fn stream_of(&self, file: FileRecord) -> Result<(FileRecord, BoxStream<'static, Result<Bytes, GlimpseError>>), GlimpseError> {
        let key = file.blob_key.clone().ok_or_else(|| no_such_file(&file.id))?;
        let stream = self.blobs.stream(&key).await?;
        Ok((file, stream))
    }

    /// Stores `body` as a file the server made (a batch job's results): hashed on the way, published ACTIVE,
    /// downloadable by its project.
    pub async fn publish_generated<S>(
        &self,
        project: &str,
        display_name: Option<String>,
        mime_type: &str,
        body: S,
    ) -> Result<FileRecord, GlimpseError>
    where
        S: Stream<Item = Result<Bytes, GlimpseError>> + Send + Unpin,
    {
        let id = ids::new_file_id();
        let key = format!("files/{project}/generated-{id}");
        let mut hasher = Sha256::new();
        let hashed = body.map(|piece| piece.inspect(|p| hasher.update(p)));
        let size = self.blobs.write(&key, hashed, |_| Ok(())).await?;
        let now = now_ms();
        let record = FileRecord {
            id,
            project: project.to_string(),
            display_name,
            mime_type: mime_type.to_string(),
            size_bytes: size,
            sha256_base64: base64::engine::general_purpose::STANDARD.encode(hasher.finalize()),
            create_ms: now,
            update_ms: now,
            expire_ms: now + self.config.ttl.as_millis() as i64,
            state: FileState::Active,
            error: None,
            blob_key: Some(key.clone()),
            source: FileSource::Generated,
        };
        if let Err(e) = self.db.insert_file(&record).await {
            let _ = self.blobs.delete(&key).await;
            return Err(e);
        }
        Ok(record)
    }

    /// A file's bytes as a stream: only files the server made can be downloaded, as in the File API.
    pub async fn download(
        &self,
        project: &str,
        id: &str,
    ) -> Result<(FileRecord, BoxStream<'static, Result<Bytes, GlimpseError>>), GlimpseError> {
        let file = self.get(project, id).await?;
        if file.source != FileSource::Generated {
            return Err(GlimpseError::invalid(
                "Only generated files can be downloaded; uploaded files cannot be downloaded.",
            ));
        }
        self.stream_of(file).await
    }

    /// The bytes of an ACTIVE file as a stream (a batch job reads its input line by line).
    pub async fn stream_active(
        &self,
        project: &str,
        id: &str,
    ) -> Result<(FileRecord, BoxStream<'static, Result<Bytes, GlimpseError>>), GlimpseError> {
        let file = self.active(project, id).await?;
        self.stream_of(file).await
    }

    /// Deletes expired files and abandoned uploads; returns how many were removed.
    pub async fn sweep(&self) -> Result<usize, GlimpseError> {
        let now = now_ms();
        let mut removed = 0;
        for file in self.db.expired_files(now).await? {
            // Every replica sweeps: each file is counted by the one whose delete took its row.
            let deleted = self.db.delete_expired_file(&file.project, &file.id, now).await?;
            self.drop_blob_if(deleted, &file).await?;
            removed += usize::from(deleted);
        }
        let stale_before = now - self.config.ttl.as_millis() as i64;
        for session in self.db.uploads_started_before(stale_before).await? {
            removed += usize::from(self.discard(&session).await?);
        }
        removed += self.db.delete_expired_interactions(now).await? as usize;
        removed += self.db.delete_expired_caches(now).await? as usize;
        removed += self.db.expire_batches(now - crate::batches::BATCH_EXPIRY_MS).await? as usize;
        Ok(removed)
    }
}

/// How long a finalize's claim on an upload holds without being renewed: a finalizer renews it every third of
/// this while it assembles the file, so a claim this old belongs to a process that died, and a retried finalize
/// takes it over instead of being refused until the upload expires.
const FINALIZE_LEASE_MS: i64 = 10_000;

/// One finalize's claim on an upload (see [`FINALIZE_LEASE_MS`]).
struct FinalizeLease<'a> {
    db: &'a Db,
    upload_id: String,
    stamp: std::sync::atomic::AtomicI64,
}

impl<'a> FinalizeLease<'a> {
    async fn claim(db: &'a Db, session: &UploadSession) -> Result<FinalizeLease<'a>, GlimpseError> {
        let now = now_ms();
        if !db.claim_finalizing(&session.id, session.received, now, now - FINALIZE_LEASE_MS).await? {
            return Err(GlimpseError::FailedPrecondition(
                "Another request is writing to or finalizing this upload; send one request at a time.".into(),
            ));
        }
        Ok(FinalizeLease { db, upload_id: session.id.clone(), stamp: now.into() })
    }

    /// Runs `work`, renewing the lease every third of its length meanwhile.
    async fn hold_while<T>(&self, work: impl std::future::Future<Output = Result<T, GlimpseError>>) -> Result<T, GlimpseError> {
        use std::sync::atomic::Ordering;
        let renew = async {
            let every = std::time::Duration::from_millis((FINALIZE_LEASE_MS / 3) as u64);
            loop {
                tokio::time::sleep(every).await;
                let (stamp, now) = (self.stamp.load(Ordering::SeqCst), now_ms());
                match self.db.renew_finalizing(&self.upload_id, stamp, now).await {
                    Ok(true) => self.stamp.store(now, Ordering::SeqCst),
                    Ok(false) => return GlimpseError::FailedPrecondition("Another request took over finalizing this upload.".into()),
                    Err(e) => return e,
                }
            }
        };
        tokio::select! {
            done = work => done,
            lost = renew => Err(lost),
        }
    }

    async fn release(&self) {
        let stamp = self.stamp.load(std::sync::atomic::Ordering::SeqCst);
        let _ = self.db.renew_finalizing(&self.upload_id, stamp, 0).await;
    }
}

/// A list call's page size (`default` when absent or 0, at most 1000) and where it starts (`pageToken`).
pub(crate) fn page_request(
    page_size: Option<u32>,
    page_token: Option<&str>,
    default: u32,
) -> Result<(usize, Option<(i64, String)>), GlimpseError> {
    let size = page_size.filter(|&n| n > 0).unwrap_or(default).min(1000) as usize;
    let after = page_token.filter(|t| !t.is_empty()).map(parse_page_token).transpose()?;
    Ok((size, after))
}

/// The first `size` of `rows` (fetched as `size + 1`, newest first) and the token of the next page if any.
pub(crate) fn one_page<T>(mut rows: Vec<T>, size: usize, position: impl Fn(&T) -> (i64, &str)) -> (Vec<T>, Option<String>) {
    let next = if rows.len() > size {
        rows.truncate(size);
        rows.last().map(|row| {
            let (ms, id) = position(row);
            page_token_for(ms, id)
        })
    } else {
        None
    };
    (rows, next)
}

fn page_token_for(create_ms: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{create_ms}.{id}"))
}

fn parse_page_token(token: &str) -> Result<(i64, String), GlimpseError> {
    let invalid = || GlimpseError::invalid(format!("Invalid page token: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let (ms, id) = text.split_once('.').ok_or_else(invalid)?;
    Ok((ms.parse().map_err(|_| invalid())?, id.to_string()))
}

fn offset_error(offset: u64, received: u64) -> GlimpseError {
    GlimpseError::invalid(format!("Invalid upload offset {offset}: {received} bytes have been received so far."))
}

//! The File API's behaviour on top of [`Db`] and a [`BlobStore`]: upload sessions, chunk appends, finalize
//! (hash, recognise, publish), get / list / delete with per-project isolation, quota and expiry.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use glimpse_core::media;
use glimpse_core::GlimpseError;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::blobs::{BlobStore, FolderBlobs};
use crate::db::Db;
use crate::ids;
use crate::record::{now_ms, FileRecord, FileState, UploadSession};

#[derive(Debug, Clone)]
pub struct FileStoreConfig {
    /// Holds `glimpse.db` (unless `database_url` is set), `blobs/` and `uploads/` (staging).
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default: SQLite in the data folder.
    pub database_url: Option<String>,
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
    blobs: Arc<dyn BlobStore>,
    staging: PathBuf,
    config: FileStoreConfig,
    /// Uploads with a chunk being written: a second concurrent chunk for the same upload is refused.
    busy: Mutex<HashSet<String>>,
}

/// Bytes read from a staged upload to recognise its format.
const SNIFF_BYTES: usize = 64 * 1024;

fn io(what: &str, e: std::io::Error) -> GlimpseError {
    GlimpseError::Storage(format!("{what}: {e}"))
}

/// The real API's answer for a file that does not exist, has expired, or belongs to another project.
pub fn no_such_file(id: &str) -> GlimpseError {
    GlimpseError::PermissionDenied(format!("You do not have permission to access the File {id} or it may not exist."))
}

impl FileStore {
    pub async fn open(config: FileStoreConfig) -> Result<FileStore, GlimpseError> {
        let staging = config.data_dir.join("uploads");
        let blob_root = config.data_dir.join("blobs");
        for dir in [&config.data_dir, &staging, &blob_root] {
            tokio::fs::create_dir_all(dir).await.map_err(|e| io(&format!("creating {}", dir.display()), e))?;
        }
        let url = match &config.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", config.data_dir.join("glimpse.db").display()),
        };
        let db = Db::connect(&url).await?;
        Ok(FileStore {
            db,
            blobs: Arc::new(FolderBlobs::new(blob_root)),
            staging,
            config,
            busy: Mutex::new(HashSet::new()),
        })
    }

    pub fn config(&self) -> &FileStoreConfig {
        &self.config
    }

    fn staging_path(&self, upload_id: &str) -> PathBuf {
        self.staging.join(format!("{upload_id}.part"))
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
        tokio::fs::File::create(self.staging_path(&session.id)).await.map_err(|e| io("creating an upload", e))?;
        self.db.insert_upload(&session).await?;
        Ok(session)
    }

    pub async fn upload_session(&self, upload_id: &str) -> Result<Option<UploadSession>, GlimpseError> {
        self.db.upload(upload_id).await
    }

    /// Appends one chunk at `offset` (which must equal the bytes received so far), streaming it to disk.
    /// Returns the new total. On any error the staged bytes are back at the previous total.
    pub async fn append<S, E>(&self, session: &UploadSession, offset: u64, body: S) -> Result<u64, GlimpseError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if offset != session.received {
            return Err(GlimpseError::invalid(format!(
                "Invalid upload offset {offset}: {} bytes have been received so far.",
                session.received
            )));
        }
        let _guard = BusyGuard::take(&self.busy, &session.id)?;
        let limit = session.declared_size.unwrap_or(self.config.max_file_bytes).min(self.config.max_file_bytes);
        let quota_left = self
            .config
            .project_quota_bytes
            .saturating_sub(self.db.used_bytes(&session.project, now_ms(), &session.id).await?);

        let path = self.staging_path(&session.id);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .await
            .map_err(|e| io("opening an upload", e))?;
        // A crash between a write and the row update can leave extra bytes: the row is authoritative.
        file.set_len(session.received).await.map_err(|e| io("truncating an upload", e))?;
        let mut file = tokio::io::BufWriter::new(file);
        tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(session.received))
            .await
            .map_err(|e| io("seeking an upload", e))?;

        let result = async {
            let mut total = session.received;
            let mut body = body;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| GlimpseError::invalid(format!("Reading the upload failed: {e}")))?;
                total += chunk.len() as u64;
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
                file.write_all(&chunk).await.map_err(|e| io("writing an upload", e))?;
            }
            file.flush().await.map_err(|e| io("writing an upload", e))?;
            Ok(total)
        }
        .await;

        match result {
            Ok(total) => {
                self.db.set_received(&session.id, total).await?;
                Ok(total)
            }
            Err(e) => {
                let file = file.into_inner();
                let _ = file.set_len(session.received).await;
                Err(e)
            }
        }
    }

    /// Completes an upload: checks the size, hashes the bytes, recognises the image format and publishes the
    /// file (ACTIVE), or records it as FAILED when the bytes are not a supported image. The session ends
    /// either way.
    pub async fn finalize(&self, session: &UploadSession) -> Result<FileRecord, GlimpseError> {
        let _guard = BusyGuard::take(&self.busy, &session.id)?;
        if let Some(declared) = session.declared_size {
            if declared != session.received {
                self.discard(session).await?;
                return Err(GlimpseError::invalid(format!(
                    "The upload was finalized after {} bytes but declared {declared} bytes.",
                    session.received
                )));
            }
        }
        let path = self.staging_path(&session.id);
        let (sha256, head) = hash_and_head(&path).await?;
        let sniffed = media::sniff(&head);
        let declared_format = session.mime_type.as_deref().and_then(|m| media::parse_mime(m).ok());
        let mime_type = session
            .mime_type
            .clone()
            .or_else(|| sniffed.map(|f| f.mime().to_string()))
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let failure = match (sniffed, declared_format) {
            (None, _) => Some(format!(
                "The file is not a supported image (PNG, JPEG, WEBP, HEIC or HEIF); declared type {mime_type}."
            )),
            (Some(found), Some(declared)) if found != declared && !(found.is_heif_family() && declared.is_heif_family()) => {
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
            blob_key: None,
        };
        if let Some(message) = failure {
            record.state = FileState::Failed;
            record.error = Some(message);
            self.discard(session).await?;
        } else {
            let key = blob_key(&session.project, &session.file_id);
            self.blobs.put_file(&key, &path).await?;
            record.blob_key = Some(key);
            self.db.delete_upload(&session.id).await?;
        }
        self.db.insert_file(&record).await?;
        Ok(record)
    }

    /// Ends an upload without a file.
    pub async fn discard(&self, session: &UploadSession) -> Result<(), GlimpseError> {
        self.db.delete_upload(&session.id).await?;
        match tokio::fs::remove_file(self.staging_path(&session.id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing an upload", e)),
            _ => Ok(()),
        }
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
        let size = page_size.filter(|&n| n > 0).unwrap_or(10).min(100) as usize;
        let after = page_token.filter(|t| !t.is_empty()).map(parse_page_token).transpose()?;
        let mut files = self.db.list_files(project, now_ms(), after, size + 1).await?;
        let next = if files.len() > size {
            files.truncate(size);
            files.last().map(|f| page_token_for(f.create_ms, &f.id))
        } else {
            None
        };
        Ok((files, next))
    }

    pub async fn delete(&self, project: &str, id: &str) -> Result<(), GlimpseError> {
        let file = self.get(project, id).await?;
        self.remove(&file).await
    }

    async fn remove(&self, file: &FileRecord) -> Result<(), GlimpseError> {
        self.db.delete_file(&file.project, &file.id).await?;
        if let Some(key) = &file.blob_key {
            self.blobs.delete(key).await?;
        }
        Ok(())
    }

    /// The bytes of an ACTIVE file, for a prompt. `max_bytes` keeps a 2 GB upload from being read into memory.
    pub async fn read_for_prompt(
        &self,
        project: &str,
        id: &str,
        max_bytes: u64,
    ) -> Result<(FileRecord, Vec<u8>), GlimpseError> {
        let file = self.get(project, id).await?;
        if file.state != FileState::Active {
            return Err(GlimpseError::FailedPrecondition(format!(
                "The File {id} is not in an ACTIVE state and usage is not allowed."
            )));
        }
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

    /// Deletes expired files and abandoned uploads; returns how many were removed.
    pub async fn sweep(&self) -> Result<usize, GlimpseError> {
        let now = now_ms();
        let mut removed = 0;
        for file in self.db.expired_files(now).await? {
            self.remove(&file).await?;
            removed += 1;
        }
        let stale_before = now - self.config.ttl.as_millis() as i64;
        for session in self.db.uploads_started_before(stale_before).await? {
            self.discard(&session).await?;
            removed += 1;
        }
        removed += self.db.delete_expired_interactions(now).await? as usize;
        Ok(removed)
    }
}

fn blob_key(project: &str, file_id: &str) -> String {
    format!("{project}/{file_id}")
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

/// SHA-256 (base64) of a staged file and its first bytes, read in constant memory.
async fn hash_and_head(path: &std::path::Path) -> Result<(String, Vec<u8>), GlimpseError> {
    let mut file = tokio::fs::File::open(path).await.map_err(|e| io("opening an upload", e))?;
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| io("reading an upload", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
    }
    Ok((base64::engine::general_purpose::STANDARD.encode(hasher.finalize()), head))
}

/// Marks an upload busy for the life of the guard.
struct BusyGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl<'a> BusyGuard<'a> {
    fn take(set: &'a Mutex<HashSet<String>>, id: &str) -> Result<Self, GlimpseError> {
        let mut busy = set.lock().unwrap_or_else(|p| p.into_inner());
        if !busy.insert(id.to_string()) {
            return Err(GlimpseError::FailedPrecondition(
                "Another request is writing to this upload; send chunks one at a time.".into(),
            ));
        }
        Ok(BusyGuard { set, id: id.to_string() })
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

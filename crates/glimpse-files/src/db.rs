//! File and upload-session rows in SQL. One set of portable statements (`$n` placeholders, BIGINT, TEXT)
//! runs on SQLite and PostgreSQL through `sqlx::any`.

use std::sync::Once;

use glimpse_core::GlimpseError;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::record::{FileRecord, FileSource, FileState, InteractionRecord, UploadSession};

/// The `files` table's columns after `id`, the same in every version so far.
macro_rules! file_columns_after_id {
    () => {
        "project TEXT NOT NULL, display_name TEXT, mime_type TEXT NOT NULL, size_bytes BIGINT NOT NULL, \
         sha256 TEXT NOT NULL, create_ms BIGINT NOT NULL, update_ms BIGINT NOT NULL, expire_ms BIGINT NOT NULL, \
         state TEXT NOT NULL, error TEXT, blob_key TEXT"
    };
}

/// The first release's tables ("version 0"). Later changes are [`MIGRATIONS`], so that a database made by any
/// earlier version is brought forward in place.
const SCHEMA: &[&str] = &[
    concat!("CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, ", file_columns_after_id!(), ")"),
    "CREATE INDEX IF NOT EXISTS files_by_project ON files (project, create_ms)",
    "CREATE INDEX IF NOT EXISTS files_by_expiry ON files (expire_ms)",
    "CREATE TABLE IF NOT EXISTS uploads (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        file_id TEXT NOT NULL,
        display_name TEXT,
        mime_type TEXT,
        declared_size BIGINT,
        received BIGINT NOT NULL,
        create_ms BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS interactions (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        previous_id TEXT,
        create_ms BIGINT NOT NULL,
        expire_ms BIGINT NOT NULL,
        body TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS interactions_by_expiry ON interactions (expire_ms)",
    "CREATE TABLE IF NOT EXISTS glimpse_schema (version BIGINT NOT NULL)",
];

/// Schema changes in order; `glimpse_schema.version` counts those applied. Portable SQL (SQLite and PostgreSQL
/// both rename tables and drop a table's indexes with it).
const MIGRATIONS: &[&[&str]] = &[
    // 1: file ids are per project. With one global id space, a custom name taken by one API key was
    // ALREADY_EXISTS for every other key: a way to learn other projects' names and to squat them.
    &[
        concat!(
            "CREATE TABLE files_by_project_id (id TEXT NOT NULL, ",
            file_columns_after_id!(),
            ", PRIMARY KEY (project, id))"
        ),
        concat!(
            "INSERT INTO files_by_project_id (id, project, display_name, mime_type, size_bytes, sha256, create_ms, ",
            "update_ms, expire_ms, state, error, blob_key) SELECT id, project, display_name, mime_type, size_bytes, ",
            "sha256, create_ms, update_ms, expire_ms, state, error, blob_key FROM files"
        ),
        "DROP TABLE files",
        "ALTER TABLE files_by_project_id RENAME TO files",
        "CREATE INDEX IF NOT EXISTS files_by_project ON files (project, create_ms)",
        "CREATE INDEX IF NOT EXISTS files_by_expiry ON files (expire_ms)",
        "CREATE INDEX IF NOT EXISTS uploads_by_file ON uploads (project, file_id)",
    ],
    // 2: uploads in progress live in the blob store, one object per chunk, so that any replica can take the
    // next chunk; a replica finalizing an upload claims it first (`finalizing`: the time of its lease, 0 if
    // none). Uploads begun before this version kept their bytes in one machine's staging folder, which no longer
    // exists: they are dropped (clients start again).
    &[
        "CREATE TABLE upload_chunks (
            upload_id TEXT NOT NULL,
            start_offset BIGINT NOT NULL,
            length BIGINT NOT NULL,
            blob_key TEXT NOT NULL,
            PRIMARY KEY (upload_id, start_offset)
        )",
        "ALTER TABLE uploads ADD COLUMN finalizing BIGINT NOT NULL DEFAULT 0",
        "DELETE FROM uploads",
    ],
    // 3: files the server writes (batch results, downloadable), batch jobs with one row per request (its
    // result recorded once, so a job resumed after a restart runs only what is left), and cached contents.
    &[
        "ALTER TABLE files ADD COLUMN source TEXT",
        "CREATE TABLE batches (
            id TEXT PRIMARY KEY,
            project TEXT NOT NULL,
            model TEXT NOT NULL,
            display_name TEXT,
            state TEXT NOT NULL,
            create_ms BIGINT NOT NULL,
            update_ms BIGINT NOT NULL,
            end_ms BIGINT,
            input_file TEXT,
            responses_file TEXT,
            request_count BIGINT NOT NULL,
            error TEXT,
            lease_ms BIGINT NOT NULL DEFAULT 0
        )",
        "CREATE INDEX batches_by_project ON batches (project, create_ms)",
        "CREATE INDEX batches_by_state ON batches (state, create_ms)",
        // The request (up to megabytes of base64) comes last: SQLite keeps a row's first columns on its page and
        // the rest in overflow pages, so counting outcomes does not read every request.
        "CREATE TABLE batch_requests (
            batch_id TEXT NOT NULL,
            idx BIGINT NOT NULL,
            outcome TEXT,
            request_key TEXT,
            metadata TEXT,
            result TEXT,
            request TEXT,
            PRIMARY KEY (batch_id, idx)
        )",
        "CREATE TABLE cached_contents (
            id TEXT PRIMARY KEY,
            project TEXT NOT NULL,
            model TEXT NOT NULL,
            display_name TEXT,
            create_ms BIGINT NOT NULL,
            update_ms BIGINT NOT NULL,
            expire_ms BIGINT NOT NULL,
            token_count BIGINT NOT NULL,
            body TEXT NOT NULL
        )",
        "CREATE INDEX cached_contents_by_project ON cached_contents (project, create_ms)",
        "CREATE INDEX cached_contents_by_expiry ON cached_contents (expire_ms)",
    ],
];

/// Serialises schema set-up between processes sharing one PostgreSQL database (an arbitrary constant key).
const SCHEMA_LOCK_KEY: i64 = 0x676c_696d_7073;

const FILE_COLUMNS: &str = "id, project, display_name, mime_type, size_bytes, sha256, create_ms, update_ms, expire_ms, \
     state, error, blob_key, source";
const UPLOAD_COLUMNS: &str = "id, project, file_id, display_name, mime_type, declared_size, received, create_ms";
const INTERACTION_COLUMNS: &str = "id, project, previous_id, create_ms, expire_ms, body";

/// One chunk of an upload in progress: `length` bytes from `start` of the file, in the blob `blob_key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub start: u64,
    pub length: u64,
    pub blob_key: String,
}

pub struct Db {
    pub(crate) pool: AnyPool,
}

/// A database failure. The detail (SQL, addresses) is for the log; a database that cannot be reached is
/// `503 UNAVAILABLE` (retry), anything else a storage failure (500); neither shows the detail to clients.
pub(crate) fn storage(e: sqlx::Error) -> GlimpseError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            tracing::error!(error = %e, "the database cannot be reached");
            GlimpseError::Unavailable("The metadata database cannot be reached; retry the request.".into())
        }
        e => GlimpseError::Storage(format!("database: {e}")),
    }
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn file_from_row(row: &AnyRow) -> Result<FileRecord, sqlx::Error> {
    Ok(FileRecord {
        id: row.try_get("id")?,
        project: row.try_get("project")?,
        display_name: row.try_get("display_name")?,
        mime_type: row.try_get("mime_type")?,
        size_bytes: row.try_get::<i64, _>("size_bytes")?.max(0) as u64,
        sha256_base64: row.try_get("sha256")?,
        create_ms: row.try_get("create_ms")?,
        update_ms: row.try_get("update_ms")?,
        expire_ms: row.try_get("expire_ms")?,
        state: FileState::parse(&row.try_get::<String, _>("state")?),
        error: row.try_get("error")?,
        blob_key: row.try_get("blob_key")?,
        source: FileSource::parse(row.try_get::<Option<String>, _>("source")?.as_deref()),
    })
}

fn upload_from_row(row: &AnyRow) -> Result<UploadSession, sqlx::Error> {
    Ok(UploadSession {
        id: row.try_get("id")?,
        project: row.try_get("project")?,
        file_id: row.try_get("file_id")?,
        display_name: row.try_get("display_name")?,
        mime_type: row.try_get("mime_type")?,
        declared_size: row.try_get::<Option<i64>, _>("declared_size")?.map(|n| n.max(0) as u64),
        received: row.try_get::<i64, _>("received")?.max(0) as u64,
        create_ms: row.try_get("create_ms")?,
    })
}

/// Creates the first release's tables if needed and applies the migrations not yet applied, in one
/// transaction (under an advisory lock on PostgreSQL, so replicas starting together do it once).
async fn migrate(pool: &AnyPool, postgres: bool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    if postgres {
        sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS locked").bind(SCHEMA_LOCK_KEY).execute(&mut *tx).await?;
    }
    for statement in SCHEMA {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    let version: Option<i64> =
        sqlx::query("SELECT version FROM glimpse_schema").fetch_optional(&mut *tx).await?.map(|row| row.try_get(0)).transpose()?;
    if version.is_none() {
        sqlx::query("INSERT INTO glimpse_schema (version) VALUES (0)").execute(&mut *tx).await?;
    }
    let applied = version.unwrap_or(0).max(0) as usize;
    for (index, statements) in MIGRATIONS.iter().enumerate().skip(applied) {
        for statement in *statements {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE glimpse_schema SET version = $1").bind(index as i64 + 1).execute(&mut *tx).await?;
    }
    tx.commit().await
}

const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Db {
    /// Connects (`sqlite://…?mode=rwc` or `postgres://…`) and creates the tables if needed.
    pub async fn connect(url: &str) -> Result<Db, GlimpseError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        // SQLite allows one writer; a single connection serialises statements instead of failing on locks.
        let max = if url.starts_with("sqlite:") { 1 } else { 8 };
        // A request waits at most ACQUIRE_TIMEOUT for a connection, then answers 503 (the database is down or
        // saturated) instead of hanging.
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(storage)?;
        migrate(&pool, url.starts_with("postgres")).await.map_err(storage)?;
        Ok(Db { pool })
    }

    pub async fn insert_file(&self, f: &FileRecord) -> Result<(), GlimpseError> {
        sqlx::query(&format!(
            "INSERT INTO files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&f.id)
        .bind(&f.project)
        .bind(f.display_name.clone())
        .bind(&f.mime_type)
        .bind(to_i64(f.size_bytes))
        .bind(&f.sha256_base64)
        .bind(f.create_ms)
        .bind(f.update_ms)
        .bind(f.expire_ms)
        .bind(f.state.as_str())
        .bind(f.error.clone())
        .bind(f.blob_key.clone())
        .bind(f.source.as_str())
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    pub async fn file(&self, project: &str, id: &str) -> Result<Option<FileRecord>, GlimpseError> {
        let row = sqlx::query(&format!("SELECT {FILE_COLUMNS} FROM files WHERE project = $1 AND id = $2"))
            .bind(project)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.as_ref().map(file_from_row).transpose().map_err(storage)
    }

    /// A project's unexpired files, newest first, starting after `after` = (create_ms, id).
    pub async fn list_files(
        &self,
        project: &str,
        now_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<FileRecord>, GlimpseError> {
        let (after_ms, after_id) = after.unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(&format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE project = $1 AND expire_ms > $2 \
             AND (create_ms < $3 OR (create_ms = $4 AND id < $5)) \
             ORDER BY create_ms DESC, id DESC LIMIT $6"
        ))
        .bind(project)
        .bind(now_ms)
        .bind(after_ms)
        .bind(after_ms)
        .bind(after_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter().map(file_from_row).collect::<Result<_, _>>().map_err(storage)
    }

    /// Whether this call deleted the row (a replica may have been first).
    pub async fn delete_file(&self, project: &str, id: &str) -> Result<bool, GlimpseError> {
        let done = sqlx::query("DELETE FROM files WHERE project = $1 AND id = $2")
            .bind(project)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn expired_files(&self, now_ms: i64) -> Result<Vec<FileRecord>, GlimpseError> {
        let rows = sqlx::query(&format!("SELECT {FILE_COLUMNS} FROM files WHERE expire_ms <= $1"))
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        rows.iter().map(file_from_row).collect::<Result<_, _>>().map_err(storage)
    }

    /// Bytes a project holds: stored, unexpired files plus what its open uploads declared (or have received).
    pub async fn used_bytes(&self, project: &str, now_ms: i64, except_upload: &str) -> Result<u64, GlimpseError> {
        let files: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM files \
             WHERE project = $1 AND expire_ms > $2 AND blob_key IS NOT NULL",
        )
        .bind(project)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(storage)?;
        let uploads: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(COALESCE(declared_size, received)), 0) AS BIGINT) FROM uploads \
             WHERE project = $1 AND id <> $2",
        )
        .bind(project)
        .bind(except_upload)
        .fetch_one(&self.pool)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(storage)?;
        Ok((files.max(0) + uploads.max(0)) as u64)
    }

    /// Whether a project already uses a file id for a file or an open upload (other projects' ids are theirs).
    pub async fn id_taken(&self, project: &str, id: &str) -> Result<bool, GlimpseError> {
        let n: i64 = sqlx::query(
            "SELECT CAST((SELECT COUNT(*) FROM files WHERE project = $1 AND id = $2) \
             + (SELECT COUNT(*) FROM uploads WHERE project = $3 AND file_id = $4) AS BIGINT)",
        )
        .bind(project)
        .bind(id)
        .bind(project)
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(storage)?;
        Ok(n > 0)
    }

    pub async fn insert_upload(&self, u: &UploadSession) -> Result<(), GlimpseError> {
        sqlx::query(&format!("INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(&u.id)
            .bind(&u.project)
            .bind(&u.file_id)
            .bind(u.display_name.clone())
            .bind(u.mime_type.clone())
            .bind(u.declared_size.map(to_i64))
            .bind(to_i64(u.received))
            .bind(u.create_ms)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    pub async fn upload(&self, id: &str) -> Result<Option<UploadSession>, GlimpseError> {
        let row = sqlx::query(&format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.as_ref().map(upload_from_row).transpose().map_err(storage)
    }

    /// Deletes an upload and its chunk rows (not their blobs); whether this call deleted it (another replica
    /// may have been first).
    pub async fn delete_upload(&self, id: &str) -> Result<bool, GlimpseError> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(storage)?;
        sqlx::query("DELETE FROM upload_chunks WHERE upload_id = $1").bind(id).execute(&mut *tx).await.map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a chunk written to the blob store, if the upload still stands at `start` (and is not being
    /// finalized): one transaction, so two replicas given chunks for the same offset cannot both succeed.
    pub async fn add_chunk(&self, upload_id: &str, chunk: &Chunk) -> Result<bool, GlimpseError> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let moved = sqlx::query("UPDATE uploads SET received = $1 WHERE id = $2 AND received = $3 AND finalizing = 0")
            .bind(to_i64(chunk.start + chunk.length))
            .bind(upload_id)
            .bind(to_i64(chunk.start))
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO upload_chunks (upload_id, start_offset, length, blob_key) VALUES ($1, $2, $3, $4)")
            .bind(upload_id)
            .bind(to_i64(chunk.start))
            .bind(to_i64(chunk.length))
            .bind(&chunk.blob_key)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(true)
    }

    /// An upload's chunks in file order.
    pub async fn chunks(&self, upload_id: &str) -> Result<Vec<Chunk>, GlimpseError> {
        let rows = sqlx::query(
            "SELECT start_offset, length, blob_key FROM upload_chunks WHERE upload_id = $1 ORDER BY start_offset",
        )
        .bind(upload_id)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        let read = |row: &AnyRow| -> Result<Chunk, sqlx::Error> {
            Ok(Chunk {
                start: row.try_get::<i64, _>("start_offset")?.max(0) as u64,
                length: row.try_get::<i64, _>("length")?.max(0) as u64,
                blob_key: row.try_get("blob_key")?,
            })
        };
        rows.iter().map(read).collect::<Result<_, _>>().map_err(storage)
    }

    /// Claims an upload of `received` bytes for finalizing, as a lease stamped `now_ms` (the `finalizing` column;
    /// 0: unclaimed). A claim older than `stale_before_ms` belongs to a finalizer that died (its process was
    /// killed) and is taken over. Whether this call got it.
    pub async fn claim_finalizing(&self, upload_id: &str, received: u64, now_ms: i64, stale_before_ms: i64) -> Result<bool, GlimpseError> {
        let done = sqlx::query(
            "UPDATE uploads SET finalizing = $1 WHERE id = $2 AND received = $3 AND (finalizing = 0 OR finalizing < $4)",
        )
        .bind(now_ms)
        .bind(upload_id)
        .bind(to_i64(received))
        .bind(stale_before_ms)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves this finalizer's lease from `stamp` to `now_ms` (or back to unclaimed with 0): whether it still had it.
    pub async fn renew_finalizing(&self, upload_id: &str, stamp: i64, now_ms: i64) -> Result<bool, GlimpseError> {
        let done = sqlx::query("UPDATE uploads SET finalizing = $1 WHERE id = $2 AND finalizing = $3")
            .bind(now_ms)
            .bind(upload_id)
            .bind(stamp)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a file's row if it has expired by `now_ms`: whether this call deleted it (replicas sweep together).
    pub async fn delete_expired_file(&self, project: &str, id: &str, now_ms: i64) -> Result<bool, GlimpseError> {
        let done = sqlx::query("DELETE FROM files WHERE project = $1 AND id = $2 AND expire_ms <= $3")
            .bind(project)
            .bind(id)
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn check(&self) -> Result<(), GlimpseError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(storage)?;
        Ok(())
    }

    pub async fn uploads_started_before(&self, before_ms: i64) -> Result<Vec<UploadSession>, GlimpseError> {
        let rows = sqlx::query(&format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE create_ms < $1"))
            .bind(before_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        rows.iter().map(upload_from_row).collect::<Result<_, _>>().map_err(storage)
    }

    pub async fn insert_interaction(&self, r: &InteractionRecord) -> Result<(), GlimpseError> {
        sqlx::query(&format!("INSERT INTO interactions ({INTERACTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
            .bind(&r.id)
            .bind(&r.project)
            .bind(r.previous_id.clone())
            .bind(r.create_ms)
            .bind(r.expire_ms)
            .bind(&r.body)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    pub async fn interaction(&self, id: &str) -> Result<Option<InteractionRecord>, GlimpseError> {
        let row = sqlx::query(&format!("SELECT {INTERACTION_COLUMNS} FROM interactions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        let read = |row: &AnyRow| -> Result<InteractionRecord, sqlx::Error> {
            Ok(InteractionRecord {
                id: row.try_get("id")?,
                project: row.try_get("project")?,
                previous_id: row.try_get("previous_id")?,
                create_ms: row.try_get("create_ms")?,
                expire_ms: row.try_get("expire_ms")?,
                body: row.try_get("body")?,
            })
        };
        row.as_ref().map(read).transpose().map_err(storage)
    }

    pub async fn delete_interaction(&self, id: &str) -> Result<(), GlimpseError> {
        sqlx::query("DELETE FROM interactions WHERE id = $1").bind(id).execute(&self.pool).await.map_err(storage)?;
        Ok(())
    }

    /// Deletes expired interactions; returns how many.
    pub async fn delete_expired_interactions(&self, now_ms: i64) -> Result<u64, GlimpseError> {
        let done = sqlx::query("DELETE FROM interactions WHERE expire_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected())
    }
}

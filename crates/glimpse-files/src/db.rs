//! File and upload-session rows in SQL. One set of portable statements (`$n` placeholders, BIGINT, TEXT)
//! runs on SQLite and PostgreSQL through `sqlx::any`.

use std::sync::Once;

use glimpse_core::GlimpseError;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::record::{FileRecord, FileState, InteractionRecord, UploadSession};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS files (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        display_name TEXT,
        mime_type TEXT NOT NULL,
        size_bytes BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        create_ms BIGINT NOT NULL,
        update_ms BIGINT NOT NULL,
        expire_ms BIGINT NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        blob_key TEXT
    )",
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
];

const FILE_COLUMNS: &str =
    "id, project, display_name, mime_type, size_bytes, sha256, create_ms, update_ms, expire_ms, state, error, blob_key";
const UPLOAD_COLUMNS: &str = "id, project, file_id, display_name, mime_type, declared_size, received, create_ms";
const INTERACTION_COLUMNS: &str = "id, project, previous_id, create_ms, expire_ms, body";

pub struct Db {
    pool: AnyPool,
}

fn storage(e: sqlx::Error) -> GlimpseError {
    GlimpseError::Storage(e.to_string())
}

fn to_i64(n: u64) -> i64 {
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

impl Db {
    /// Connects (`sqlite://…?mode=rwc` or `postgres://…`) and creates the tables if needed.
    pub async fn connect(url: &str) -> Result<Db, GlimpseError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        // SQLite allows one writer; a single connection serialises statements instead of failing on locks.
        let max = if url.starts_with("sqlite:") { 1 } else { 8 };
        let pool = AnyPoolOptions::new().max_connections(max).connect(url).await.map_err(storage)?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await.map_err(storage)?;
        }
        Ok(Db { pool })
    }

    pub async fn insert_file(&self, f: &FileRecord) -> Result<(), GlimpseError> {
        sqlx::query(&format!(
            "INSERT INTO files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
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
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    pub async fn file(&self, id: &str) -> Result<Option<FileRecord>, GlimpseError> {
        let row = sqlx::query(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = $1"))
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

    pub async fn delete_file(&self, id: &str) -> Result<(), GlimpseError> {
        sqlx::query("DELETE FROM files WHERE id = $1").bind(id).execute(&self.pool).await.map_err(storage)?;
        Ok(())
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

    /// Whether a file id is used by a file or reserved by an open upload.
    pub async fn id_taken(&self, id: &str) -> Result<bool, GlimpseError> {
        let n: i64 = sqlx::query(
            "SELECT CAST((SELECT COUNT(*) FROM files WHERE id = $1) + (SELECT COUNT(*) FROM uploads WHERE file_id = $2) AS BIGINT)",
        )
        .bind(id)
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

    pub async fn set_received(&self, id: &str, received: u64) -> Result<(), GlimpseError> {
        sqlx::query("UPDATE uploads SET received = $1 WHERE id = $2")
            .bind(to_i64(received))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    pub async fn delete_upload(&self, id: &str) -> Result<(), GlimpseError> {
        sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id).execute(&self.pool).await.map_err(storage)?;
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

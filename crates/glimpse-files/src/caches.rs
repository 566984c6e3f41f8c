//! Cached contents (`cachedContents`) in SQL: what a client stored once (contents with images, a system
//! instruction) to be prepended to many later requests. The database is the source of truth: a replica that
//! has not seen a cache, or has evicted its prepared form, reads it from here.

use glimpse_core::GlimpseError;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{storage, to_i64, Db};
use crate::record::now_ms;
use crate::store::{one_page, page_request, FileStore};

#[derive(Debug, Clone, PartialEq)]
pub struct CacheRecord {
    pub id: String,
    pub project: String,
    /// `models/…` as the client named it at creation.
    pub model: String,
    pub display_name: Option<String>,
    pub create_ms: i64,
    pub update_ms: i64,
    pub expire_ms: i64,
    /// The cached prompt's tokens for its model (`usageMetadata.totalTokenCount`).
    pub token_count: u64,
    /// `{"contents": […], "systemInstruction": {…}}` as the client sent them (keys normalised), JSON.
    pub body: String,
}

const CACHE_COLUMNS: &str = "id, project, model, display_name, create_ms, update_ms, expire_ms, token_count, body";
/// Everything but the body, for lists and metadata reads.
const CACHE_META: &str = "id, project, model, display_name, create_ms, update_ms, expire_ms, token_count, '' AS body";

fn cache_from_row(row: &AnyRow) -> Result<CacheRecord, sqlx::Error> {
    Ok(CacheRecord {
        id: row.try_get("id")?,
        project: row.try_get("project")?,
        model: row.try_get("model")?,
        display_name: row.try_get("display_name")?,
        create_ms: row.try_get("create_ms")?,
        update_ms: row.try_get("update_ms")?,
        expire_ms: row.try_get("expire_ms")?,
        token_count: row.try_get::<i64, _>("token_count")?.max(0) as u64,
        body: row.try_get("body")?,
    })
}

impl Db {
    pub async fn insert_cache(&self, c: &CacheRecord) -> Result<(), GlimpseError> {
        sqlx::query(&format!("INSERT INTO cached_contents ({CACHE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(&c.id)
            .bind(&c.project)
            .bind(&c.model)
            .bind(c.display_name.clone())
            .bind(c.create_ms)
            .bind(c.update_ms)
            .bind(c.expire_ms)
            .bind(to_i64(c.token_count))
            .bind(&c.body)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    /// A cache's row; `with_body: false` leaves the (possibly large) body out.
    pub async fn cache(&self, id: &str, with_body: bool) -> Result<Option<CacheRecord>, GlimpseError> {
        let columns = if with_body { CACHE_COLUMNS } else { CACHE_META };
        let row = sqlx::query(&format!("SELECT {columns} FROM cached_contents WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.as_ref().map(cache_from_row).transpose().map_err(storage)
    }

    /// A project's unexpired caches (without bodies), newest first, after `after` = (create_ms, id).
    pub async fn list_caches(&self, project: &str, now_ms: i64, after: Option<(i64, String)>, limit: usize) -> Result<Vec<CacheRecord>, GlimpseError> {
        let (after_ms, after_id) = after.unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(&format!(
            "SELECT {CACHE_META} FROM cached_contents WHERE project = $1 AND expire_ms > $2 \
             AND (create_ms < $3 OR (create_ms = $4 AND id < $5)) ORDER BY create_ms DESC, id DESC LIMIT $6"
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
        rows.iter().map(cache_from_row).collect::<Result<_, _>>().map_err(storage)
    }

    pub async fn set_cache_expiry(&self, id: &str, expire_ms: i64, now_ms: i64) -> Result<(), GlimpseError> {
        sqlx::query("UPDATE cached_contents SET expire_ms = $1, update_ms = $2 WHERE id = $3")
            .bind(expire_ms)
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    pub async fn delete_cache(&self, id: &str) -> Result<(), GlimpseError> {
        sqlx::query("DELETE FROM cached_contents WHERE id = $1").bind(id).execute(&self.pool).await.map_err(storage)?;
        Ok(())
    }

    /// Deletes expired caches; how many.
    pub async fn delete_expired_caches(&self, now_ms: i64) -> Result<u64, GlimpseError> {
        let done = sqlx::query("DELETE FROM cached_contents WHERE expire_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected())
    }
}

impl FileStore {
    /// An unexpired cache of `project` (with its body when `with_body`): another project's is 403 PERMISSION_DENIED,
    /// a missing or expired one 404 NOT_FOUND.
    pub async fn cache(&self, project: &str, id: &str, with_body: bool) -> Result<CacheRecord, GlimpseError> {
        match self.db.cache(id, with_body).await? {
            Some(cache) if cache.expire_ms <= now_ms() => Err(no_such_cache(id)),
            Some(cache) if cache.project == project => Ok(cache),
            Some(_) => Err(GlimpseError::PermissionDenied(format!(
                "You do not have permission to access the CachedContent cachedContents/{id}."
            ))),
            None => Err(no_such_cache(id)),
        }
    }

    pub async fn put_cache(&self, cache: &CacheRecord) -> Result<(), GlimpseError> {
        self.db.insert_cache(cache).await
    }

    pub async fn list_caches(&self, project: &str, page_size: Option<u32>, page_token: Option<&str>) -> Result<(Vec<CacheRecord>, Option<String>), GlimpseError> {
        let (size, after) = page_request(page_size, page_token, 100)?;
        let caches = self.db.list_caches(project, now_ms(), after, size + 1).await?;
        Ok(one_page(caches, size, |c| (c.create_ms, &c.id)))
    }

    /// Sets a cache's expiry (the only thing an update may change, as upstream); the updated cache.
    pub async fn update_cache_expiry(&self, project: &str, id: &str, expire_ms: i64) -> Result<CacheRecord, GlimpseError> {
        self.cache(project, id, false).await?;
        self.db.set_cache_expiry(id, expire_ms, now_ms()).await?;
        self.cache(project, id, false).await
    }

    pub async fn delete_cache(&self, project: &str, id: &str) -> Result<(), GlimpseError> {
        self.cache(project, id, false).await?;
        self.db.delete_cache(id).await
    }
}

/// The API's answer for a cache that does not exist or has expired.
pub fn no_such_cache(id: &str) -> GlimpseError {
    GlimpseError::NotFound(format!("CachedContent not found: cachedContents/{id}."))
}

//! Batch jobs (`batchGenerateContent`) in SQL: one row per job and one per request, so that any replica can run
//! a job, a job survives the process that ran it, and each request's result is recorded exactly once.
//!
//! A replica running a job holds a lease on it (`lease_ms`, renewed every few seconds); a job whose lease is
//! older than [`BATCH_LEASE_MS`] lost its runner (the process died) and is taken over, and the new runner runs
//! only the requests without a result.

use glimpse_core::GlimpseError;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{storage, to_i64, Db};
use crate::record::now_ms;
use crate::store::{one_page, page_request, FileStore};

/// How long a runner's claim on a job holds without renewal (it renews every third of this).
pub const BATCH_LEASE_MS: i64 = 15_000;

/// A job not finished this long after it was made expires, as in the Gemini API (48 hours).
pub const BATCH_EXPIRY_MS: i64 = 48 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

impl BatchState {
    /// The wire name (`BATCH_STATE_…`; the SDKs show it as `JOB_STATE_…`).
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Pending => "BATCH_STATE_PENDING",
            BatchState::Running => "BATCH_STATE_RUNNING",
            BatchState::Succeeded => "BATCH_STATE_SUCCEEDED",
            BatchState::Failed => "BATCH_STATE_FAILED",
            BatchState::Cancelled => "BATCH_STATE_CANCELLED",
            BatchState::Expired => "BATCH_STATE_EXPIRED",
        }
    }

    fn parse(s: &str) -> BatchState {
        match s {
            "BATCH_STATE_PENDING" => BatchState::Pending,
            "BATCH_STATE_RUNNING" => BatchState::Running,
            "BATCH_STATE_SUCCEEDED" => BatchState::Succeeded,
            "BATCH_STATE_CANCELLED" => BatchState::Cancelled,
            "BATCH_STATE_EXPIRED" => BatchState::Expired,
            _ => BatchState::Failed,
        }
    }

    pub fn is_done(self) -> bool {
        !matches!(self, BatchState::Pending | BatchState::Running)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub id: String,
    pub project: String,
    /// `models/…` as the client named it.
    pub model: String,
    pub display_name: Option<String>,
    pub state: BatchState,
    pub create_ms: i64,
    pub update_ms: i64,
    pub end_ms: Option<i64>,
    /// The JSONL file of requests (`files/…` id), for a job made from a file: its results go to a file too.
    pub input_file: Option<String>,
    /// The results file's id, once written.
    pub responses_file: Option<String>,
    /// Requests in the job (0 while a file job's input has not been read yet).
    pub request_count: u64,
    /// Why the job FAILED.
    pub error: Option<String>,
}

/// One request as it enters a job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewBatchRequest {
    /// The JSONL line's `key`.
    pub key: Option<String>,
    /// An inline request's `metadata` (JSON).
    pub metadata: Option<String>,
    /// The `GenerateContentRequest` (JSON).
    pub request: Option<String>,
    /// Why the request cannot run (a line that is not JSON): recorded as its result at once.
    pub failure: Option<String>,
}

/// A request's outcome, as the results report it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    pub index: u64,
    pub key: Option<String>,
    pub metadata: Option<String>,
    /// `Ok(GenerateContentResponse JSON)` or `Err(google.rpc.Status JSON)`; `None` while pending.
    pub outcome: Option<Result<String, String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub requests: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub pending: u64,
}

const BATCH_COLUMNS: &str =
    "id, project, model, display_name, state, create_ms, update_ms, end_ms, input_file, responses_file, request_count, error";
const RUNNABLE: &str = "('BATCH_STATE_PENDING', 'BATCH_STATE_RUNNING')";
const OK: &str = "ok";
const ERROR: &str = "error";

fn batch_from_row(row: &AnyRow) -> Result<BatchRecord, sqlx::Error> {
    Ok(BatchRecord {
        id: row.try_get("id")?,
        project: row.try_get("project")?,
        model: row.try_get("model")?,
        display_name: row.try_get("display_name")?,
        state: BatchState::parse(&row.try_get::<String, _>("state")?),
        create_ms: row.try_get("create_ms")?,
        update_ms: row.try_get("update_ms")?,
        end_ms: row.try_get("end_ms")?,
        input_file: row.try_get("input_file")?,
        responses_file: row.try_get("responses_file")?,
        request_count: row.try_get::<i64, _>("request_count")?.max(0) as u64,
        error: row.try_get("error")?,
    })
}

impl Db {
    /// Inserts a job with its first requests (all of an inline job's), in one transaction.
    pub async fn insert_batch(&self, batch: &BatchRecord, requests: &[NewBatchRequest]) -> Result<(), GlimpseError> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        sqlx::query(&format!(
            "INSERT INTO batches ({BATCH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&batch.id)
        .bind(&batch.project)
        .bind(&batch.model)
        .bind(batch.display_name.clone())
        .bind(batch.state.as_str())
        .bind(batch.create_ms)
        .bind(batch.update_ms)
        .bind(batch.end_ms)
        .bind(batch.input_file.clone())
        .bind(batch.responses_file.clone())
        .bind(to_i64(batch.request_count))
        .bind(batch.error.clone())
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        insert_requests(&mut tx, &batch.id, 0, requests).await?;
        tx.commit().await.map_err(storage)
    }

    /// Adds requests from `first_index` on (a file job's input, read page by page).
    pub async fn add_batch_requests(&self, id: &str, first_index: u64, requests: &[NewBatchRequest]) -> Result<(), GlimpseError> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        insert_requests(&mut tx, id, first_index, requests).await?;
        tx.commit().await.map_err(storage)
    }

    /// Drops a job's requests (a file job whose reading of the input was interrupted starts it again).
    pub async fn clear_batch_requests(&self, id: &str) -> Result<(), GlimpseError> {
        sqlx::query("DELETE FROM batch_requests WHERE batch_id = $1").bind(id).execute(&self.pool).await.map_err(storage)?;
        Ok(())
    }

    pub async fn batch(&self, id: &str) -> Result<Option<BatchRecord>, GlimpseError> {
        let row = sqlx::query(&format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.as_ref().map(batch_from_row).transpose().map_err(storage)
    }

    /// A project's jobs, newest first, after `after` = (create_ms, id).
    pub async fn list_batches(&self, project: &str, after: Option<(i64, String)>, limit: usize) -> Result<Vec<BatchRecord>, GlimpseError> {
        let (after_ms, after_id) = after.unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE project = $1 \
             AND (create_ms < $2 OR (create_ms = $3 AND id < $4)) ORDER BY create_ms DESC, id DESC LIMIT $5"
        ))
        .bind(project)
        .bind(after_ms)
        .bind(after_ms)
        .bind(after_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter().map(batch_from_row).collect::<Result<_, _>>().map_err(storage)
    }

    pub async fn batch_stats(&self, id: &str) -> Result<BatchStats, GlimpseError> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM batch_requests WHERE batch_id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(storage)?;
        let get = |i: usize| row.try_get::<i64, _>(i).map(|n| n.max(0) as u64).map_err(storage);
        let (requests, succeeded, failed) = (get(0)?, get(1)?, get(2)?);
        Ok(BatchStats { requests, succeeded, failed, pending: requests - succeeded - failed })
    }

    /// Claims the oldest runnable job whose lease is free or stale (older than `stale_before_ms`): whether and
    /// which. Replicas race through a compare-and-set on the lease they saw.
    pub async fn claim_batch(&self, now_ms: i64, stale_before_ms: i64) -> Result<Option<BatchRecord>, GlimpseError> {
        let rows = sqlx::query(&format!(
            "SELECT {BATCH_COLUMNS}, lease_ms FROM batches WHERE state IN {RUNNABLE} AND lease_ms < $1 \
             ORDER BY create_ms LIMIT 8"
        ))
        .bind(stale_before_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        for row in rows {
            let seen: i64 = row.try_get("lease_ms").map_err(storage)?;
            let batch = batch_from_row(&row).map_err(storage)?;
            let done = sqlx::query(&format!("UPDATE batches SET lease_ms = $1 WHERE id = $2 AND lease_ms = $3 AND state IN {RUNNABLE}"))
                .bind(now_ms)
                .bind(&batch.id)
                .bind(seen)
                .execute(&self.pool)
                .await
                .map_err(storage)?;
            if done.rows_affected() == 1 {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    /// Moves a runner's lease from `stamp` to `now_ms` (0 gives it up): whether it still held it and the job is
    /// still runnable (a cancelled or deleted job is not).
    pub async fn renew_batch_lease(&self, id: &str, stamp: i64, now_ms: i64) -> Result<bool, GlimpseError> {
        let done = sqlx::query(&format!("UPDATE batches SET lease_ms = $1 WHERE id = $2 AND lease_ms = $3 AND state IN {RUNNABLE}"))
            .bind(now_ms)
            .bind(id)
            .bind(stamp)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a job that is still runnable to `state`; whether it moved (it may have been cancelled meanwhile).
    pub async fn set_batch_state(
        &self,
        id: &str,
        state: BatchState,
        request_count: Option<u64>,
        responses_file: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool, GlimpseError> {
        let now = now_ms();
        let done = sqlx::query(&format!(
            "UPDATE batches SET state = $1, update_ms = $2, end_ms = $3, request_count = COALESCE($4, request_count), \
             responses_file = COALESCE($5, responses_file), error = COALESCE($6, error) WHERE id = $7 AND state IN {RUNNABLE}"
        ))
        .bind(state.as_str())
        .bind(now)
        .bind(state.is_done().then_some(now))
        .bind(request_count.map(to_i64))
        .bind(responses_file)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(done.rows_affected() == 1)
    }

    /// Up to `limit` requests of a job without a result, in order: (index, request JSON).
    pub async fn pending_batch_requests(&self, id: &str, limit: usize) -> Result<Vec<(u64, String)>, GlimpseError> {
        let rows = sqlx::query(
            "SELECT idx, request FROM batch_requests WHERE batch_id = $1 AND outcome IS NULL ORDER BY idx LIMIT $2",
        )
        .bind(id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let index = row.try_get::<i64, _>("idx")?.max(0) as u64;
                let request = row.try_get::<Option<String>, _>("request")?.unwrap_or_default();
                Ok((index, request))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(storage)
    }

    /// Records a request's result unless one is recorded already (a replica that took over may have been
    /// first); whether this call recorded it.
    pub async fn record_batch_result(&self, id: &str, index: u64, outcome: Result<&str, &str>) -> Result<bool, GlimpseError> {
        let (kind, text) = match outcome {
            Ok(response) => (OK, response),
            Err(status) => (ERROR, status),
        };
        let done = sqlx::query(
            "UPDATE batch_requests SET outcome = $1, result = $2 WHERE batch_id = $3 AND idx = $4 AND outcome IS NULL",
        )
        .bind(kind)
        .bind(text)
        .bind(id)
        .bind(to_i64(index))
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(done.rows_affected() == 1)
    }

    /// Up to `limit` requests of a job from `from_index` on, with their outcomes, in order.
    pub async fn batch_results(&self, id: &str, from_index: u64, limit: usize) -> Result<Vec<BatchResult>, GlimpseError> {
        let rows = sqlx::query(
            "SELECT idx, request_key, metadata, outcome, result FROM batch_requests \
             WHERE batch_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
        )
        .bind(id)
        .bind(to_i64(from_index))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        let read = |row: &AnyRow| -> Result<BatchResult, sqlx::Error> {
            let outcome: Option<String> = row.try_get("outcome")?;
            let result: String = row.try_get::<Option<String>, _>("result")?.unwrap_or_default();
            Ok(BatchResult {
                index: row.try_get::<i64, _>("idx")?.max(0) as u64,
                key: row.try_get("request_key")?,
                metadata: row.try_get("metadata")?,
                outcome: match outcome.as_deref() {
                    Some(OK) => Some(Ok(result)),
                    Some(_) => Some(Err(result)),
                    None => None,
                },
            })
        };
        rows.iter().map(read).collect::<Result<_, _>>().map_err(storage)
    }

    /// Deletes a job and its requests; whether this call deleted it.
    pub async fn delete_batch(&self, id: &str) -> Result<bool, GlimpseError> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let done = sqlx::query("DELETE FROM batches WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(storage)?;
        sqlx::query("DELETE FROM batch_requests WHERE batch_id = $1").bind(id).execute(&mut *tx).await.map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks runnable jobs made before `made_before_ms` EXPIRED; how many.
    pub async fn expire_batches(&self, made_before_ms: i64) -> Result<u64, GlimpseError> {
        let now = now_ms();
        let done = sqlx::query(&format!(
            "UPDATE batches SET state = 'BATCH_STATE_EXPIRED', update_ms = $1, end_ms = $2 \
             WHERE state IN {RUNNABLE} AND create_ms < $3"
        ))
        .bind(now)
        .bind(now)
        .bind(made_before_ms)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(done.rows_affected())
    }
}

async fn insert_requests(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    first_index: u64,
    requests: &[NewBatchRequest],
) -> Result<(), GlimpseError> {
    for (offset, request) in requests.iter().enumerate() {
        let (outcome, result) = match &request.failure {
            Some(status) => (Some(ERROR), Some(status.clone())),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO batch_requests (batch_id, idx, request_key, metadata, request, outcome, result) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(to_i64(first_index + offset as u64))
        .bind(request.key.clone())
        .bind(request.metadata.clone())
        .bind(request.request.clone())
        .bind(outcome)
        .bind(result)
        .execute(&mut **tx)
        .await
        .map_err(storage)?;
    }
    Ok(())
}

/// The API's answer for a job that does not exist.
pub fn no_such_batch(id: &str) -> GlimpseError {
    GlimpseError::NotFound(format!("Batch batches/{id} was not found."))
}

impl FileStore {
    /// A job of `project`: another project's is 403, a missing one 404.
    pub async fn batch(&self, project: &str, id: &str) -> Result<BatchRecord, GlimpseError> {
        match self.db.batch(id).await? {
            Some(batch) if batch.project == project => Ok(batch),
            Some(_) => Err(GlimpseError::PermissionDenied(format!(
                "You do not have permission to access the batch batches/{id}."
            ))),
            None => Err(no_such_batch(id)),
        }
    }

    /// A page of the project's jobs, newest first.
    pub async fn list_batches(
        &self,
        project: &str,
        page_size: Option<u32>,
        page_token: Option<&str>,
    ) -> Result<(Vec<BatchRecord>, Option<String>), GlimpseError> {
        let (size, after) = page_request(page_size, page_token, 50)?;
        let batches = self.db.list_batches(project, after, size + 1).await?;
        Ok(one_page(batches, size, |b| (b.create_ms, &b.id)))
    }

    /// The job tables, for the runner.
    pub fn batch_db(&self) -> &Db {
        &self.db
    }
}

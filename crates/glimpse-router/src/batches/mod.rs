//! The Batch API: `models/{m}:batchGenerateContent` with inline requests or a JSONL file of them, then
//! `batches/{id}` get, list, `:cancel` and delete, as the SDKs' `batches` clients call them.
//!
//! Jobs live in the database ([`glimpse_files::batches`]) and are run in the background by [`runner`], on
//! whichever replica claims them, behind interactive traffic ([`glimpse_core::Priority::Batch`]).

mod input;
mod resource;
pub mod runner;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use glimpse_core::{Code, GlimpseError};
use glimpse_files::batches::{BatchRecord, BatchState};
use glimpse_files::record::now_ms;
use glimpse_files::store::is_jsonl_mime;
use glimpse_files::FileStore;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::body::parse_json;
use crate::error::ApiError;
use crate::http::{bare_model_name, json_response, page_size, page_token, resolve_model, ApiVersion};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{version}/batches", get(list_batches))
        .route("/{version}/batches/{id}", get(get_batch).delete(delete_batch).post(batch_method))
}

#[derive(serde::Deserialize)]
struct BatchPath {
    id: String,
}

fn store(state: &AppState) -> Result<&FileStore, ApiError> {
    state.files.as_deref().ok_or_else(|| ApiError::new(Code::Unimplemented, "The Batch API needs the File API's storage, which is disabled on this server."))
}

/// `POST /{v}/models/{model}:batchGenerateContent` (the body already read under the size cap):
/// `{"batch": {"displayName", "inputConfig": {"requests": {"requests": [...]}} | {"fileName": "files/…"}}}`.
pub async fn create(state: &AppState, caller: &Caller, version: &str, model: &str, bytes: Bytes) -> Result<Response, ApiError> {
    let store = store(state)?;
    let engine = resolve_model(state, model, version, "batchGenerateContent")?;
    let body = crate::body::off_runtime_if_large(bytes.len(), move || {
        let mut body = parse_json(&bytes)?;
        crate::json_keys::normalize_gemini(&mut body);
        Ok::<_, ApiError>(body)
    })
    .await??;
    let batch = body.get("batch").unwrap_or(&body);
    let display_name = match batch.get("displayName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.clone()),
        Some(_) => return Err(ApiError::invalid("batch.displayName must be a string.")),
    };
    let input = batch.get("inputConfig").filter(|v| v.is_object()).ok_or_else(|| {
        ApiError::invalid("* BatchGenerateContentRequest.batch.input_config: input_config is required.")
    })?;
    let now = now_ms();
    let mut record = BatchRecord {
        id: glimpse_files::ids::new_file_id(),
        project: caller.project.clone(),
        model: format!("models/{}", bare_model_name(model)),
        display_name,
        state: BatchState::Pending,
        create_ms: now,
        update_ms: now,
        end_ms: None,
        input_file: None,
        responses_file: None,
        request_count: 0,
        error: None,
    };
    let requests = match (input.get("requests"), input.get("fileName")) {
        (Some(inline), None) => input::inline_requests(inline)?,
        (None, Some(Value::String(file_name))) => {
            let id = file_name.strip_prefix("files/").unwrap_or(file_name);
            let file = store.get(&caller.project, id).await?;
            if !is_jsonl_mime(&file.mime_type) {
                return Err(ApiError::invalid(format!(
                    "The input file {file_name} is {}; a batch's input file is JSON Lines (uploaded with mime type jsonl).",
                    file.mime_type
                )));
            }
            record.input_file = Some(file.id);
            Vec::new()
        }
        _ => return Err(ApiError::invalid("batch.inputConfig must hold exactly one of requests and fileName.")),
    };
    if record.input_file.is_none() && requests.is_empty() {
        return Err(ApiError::invalid("A batch needs at least one request."));
    }
    record.request_count = requests.len() as u64;
    store.batch_db().insert_batch(&record, &requests).await?;
    tracing::info!(batch = %record.id, model = %engine.info().id, requests = record.request_count, "batch job created");
    state.batch_wakeup.notify_one();
    respond(store, &record, true).await
}

/// The job as an Operation, its results with it once it is done (`with_output`).
async fn respond(store: &FileStore, batch: &BatchRecord, with_output: bool) -> Result<Response, ApiError> {
    let stats = store.batch_db().batch_stats(&batch.id).await?;
    let output = if with_output { resource::output(store, batch).await? } else { None };
    Ok(json_response(&resource::operation_json(batch, stats, output)))
}

async fn get_batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(_): ApiVersion,
    Path(BatchPath { id }): Path<BatchPath>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let batch = store.batch(&caller.project, batch_id(&id, None)?).await?;
    respond(store, &batch, true).await
}

/// `GET /{v}/batches` → `{"operations": […], "nextPageToken"}` (without their inline results: get one job for
/// those).
async fn list_batches(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(_): ApiVersion,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let (batches, next) = store.list_batches(&caller.project, page_size(&query)?, page_token(&query)).await?;
    let mut operations = Vec::with_capacity(batches.len());
    for batch in &batches {
        let stats = store.batch_db().batch_stats(&batch.id).await?;
        operations.push(resource::operation_json(batch, stats, None));
    }
    let mut body = json!({});
    if !operations.is_empty() {
        body["operations"] = Value::Array(operations);
    }
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    Ok(json_response(&body))
}

/// `POST /{v}/batches/{id}:cancel`: a job not yet done stops (requests in flight are dropped, finished ones
/// keep their results) and is CANCELLED.
async fn batch_method(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(_): ApiVersion,
    Path(BatchPath { id }): Path<BatchPath>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let batch = store.batch(&caller.project, batch_id(&id, Some("cancel"))?).await?;
    store.batch_db().set_batch_state(&batch.id, BatchState::Cancelled, None, None, None).await?;
    Ok(json_response(&json!({})))
}

/// `DELETE /{v}/batches/{id}`: the job and its inline results are gone (a results file stays a file); a job
/// still running stops.
async fn delete_batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(_): ApiVersion,
    Path(BatchPath { id }): Path<BatchPath>,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let batch = store.batch(&caller.project, batch_id(&id, None)?).await?;
    store.batch_db().delete_batch(&batch.id).await?;
    Ok(json_response(&json!({})))
}

/// The id of `{id}` or `{id}:method`, where `method` is the one the route serves.
fn batch_id<'a>(raw: &'a str, method: Option<&str>) -> Result<&'a str, GlimpseError> {
    match (raw.split_once(':'), method) {
        (None, None) => Ok(raw),
        (Some((id, found)), Some(wanted)) if found == wanted => Ok(id),
        (None, Some(wanted)) => Err(GlimpseError::NotFound(format!("POST batches/{raw}: the only method is :{wanted}."))),
        (Some((_, found)), _) => Err(GlimpseError::NotFound(format!("Unknown method {found} on batches."))),
    }
}

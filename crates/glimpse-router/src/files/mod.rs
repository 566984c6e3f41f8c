//! The File API: resumable (and multipart / raw) upload, list, get, delete, as the SDKs' `files` clients call it.

mod resource;
mod upload;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use glimpse_core::{Code, GlimpseError};
use glimpse_files::FileStore;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::{json_response, page_size, page_token, ApiVersion};
use crate::AppState;

pub use resource::file_json;

/// The keyed File API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{version}/files", get(list_files).post(create_metadata_only))
        .route("/{version}/files/{id}", get(get_file).delete(delete_file))
        .route("/download/{version}/files/{id}", get(get_file))
}

/// The upload route, kept apart: its continuations authenticate by upload id ([`crate::auth::upload_caller`]).
pub fn upload_routes() -> Router<AppState> {
    Router::new().route("/upload/{version}/files", post(upload::upload))
}

/// The `{id}` segment (`id` or `id:method`).
#[derive(serde::Deserialize)]
struct FilePath {
    id: String,
}

fn store(state: &AppState) -> Result<&FileStore, ApiError> {
    state.files.as_deref().ok_or_else(|| ApiError::new(Code::Unimplemented, "The File API is disabled on this server."))
}

/// Where clients reach this API: the configured public URL, else this request's `Host`, plus the prefix.
pub fn api_base(state: &AppState, headers: &HeaderMap) -> String {
    let base = match &state.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            format!("http://{host}")
        }
    };
    format!("{base}{}", state.path_prefix)
}

/// `GET /{v}/files?pageSize=&pageToken=` → `{"files": [...], "nextPageToken": ...}`, or `{}` when empty.
async fn list_files(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(version): ApiVersion,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (files, next) = store(&state)?.list(&caller.project, page_size(&query)?, page_token(&query)).await?;
    let base = api_base(&state, &headers);
    let mut body = json!({});
    if !files.is_empty() {
        body["files"] = Value::Array(files.iter().map(|f| file_json(f, &base, &version)).collect());
    }
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    Ok(json_response(&body))
}

/// Splits `{id}` from an optional `:method` suffix (`files/{id}:download`): whether it is a download.
fn file_id(raw: &str) -> Result<(&str, bool), ApiError> {
    match raw.split_once(':') {
        None => Ok((raw, false)),
        Some((id, "download")) => Ok((id, true)),
        Some((_, method)) => Err(ApiError::new(Code::NotFound, format!("Unknown method {method} on files."))),
    }
}

/// `GET /{v}/files/{id}`, or `GET [/download]/{v}/files/{id}:download?alt=media`: the bytes of a file the
/// server made (a batch job's results); uploaded files cannot be downloaded, as upstream.
async fn get_file(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(version): ApiVersion,
    Path(FilePath { id }): Path<FilePath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    match file_id(&id)? {
        (id, false) => {
            let file = store.get(&caller.project, id).await?;
            Ok(json_response(&file_json(&file, &api_base(&state, &headers), &version)))
        }
        (id, true) => {
            let (file, bytes) = store.download(&caller.project, id).await?;
            let headers = [
                (axum::http::header::CONTENT_TYPE, file.mime_type.clone()),
                (axum::http::header::CONTENT_LENGTH, file.size_bytes.to_string()),
            ];
            Ok((headers, axum::body::Body::from_stream(bytes)).into_response())
        }
    }
}

/// `DELETE /{v}/files/{id}` → 200 `{}` (not 204: the SDKs parse a JSON body).
async fn delete_file(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(_): ApiVersion,
    Path(FilePath { id }): Path<FilePath>,
) -> Result<Response, ApiError> {
    store(&state)?.delete(&caller.project, file_id(&id)?.0).await?;
    Ok(json_response(&json!({})))
}

/// `POST /{v}/files` (metadata only) makes a file without bytes, which is useless for images.
async fn create_metadata_only(ApiVersion(_): ApiVersion) -> Result<Response, ApiError> {
    Err(GlimpseError::invalid("Creating a file without content is not supported; upload it with /upload/{version}/files.").into())
}

//! `POST /upload/{v}/files`: the resumable protocol both SDKs use (start, then `upload` / `upload, finalize`
//! chunks at offsets on the returned URL), plus the one-request multipart and raw forms
//! (docs/gemini-api.md §4.1–4.2).
//!
//! Every answer on this route carries `X-Goog-Upload-Status`: without it both SDKs retry a chunk three times.
//! Errors say `final` so clients stop at once, except a wrong offset, after which the upload can go on.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use glimpse_core::{Code, GlimpseError};
use glimpse_files::{FileRecord, FileStore, NewUpload, UploadSession};
use serde::Deserialize;
use serde_json::json;

use super::{api_base, file_json, store};
use crate::auth::{Caller, UploadContinuation};
use crate::body::{parse_gemini, read_limited};
use crate::error::{ApiError, JSON_CONTENT_TYPE};
use crate::http::check_version;
use crate::{lenient, AppState};

const STATUS: &str = "x-goog-upload-status";
const CHUNK_GRANULARITY: u64 = 8 * 1024 * 1024;
/// The JSON metadata part of a start or multipart request.
const METADATA_LIMIT: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBody {
    file: Option<FileMetadata>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileMetadata {
    name: Option<String>,
    display_name: Option<String>,
    mime_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    size_bytes: Option<i64>,
}

/// An error answer that also tells the SDK the upload is over (or, with `active`, may continue).
fn upload_error(err: impl Into<ApiError>, status: &'static str, received: Option<u64>) -> Response {
    let mut response = err.into().into_response();
    response.headers_mut().insert(STATUS, HeaderValue::from_static(status));
    if let Some(received) = received {
        response.headers_mut().insert("x-goog-upload-size-received", HeaderValue::from(received));
    }
    response
}

fn final_file(file: &FileRecord, base: &str, version: &str) -> Response {
    let body = json!({"file": file_json(file, base, version)}).to_string();
    let mut response = (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, JSON_CONTENT_TYPE)], body).into_response();
    response.headers_mut().insert(STATUS, HeaderValue::from_static("final"));
    response
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    header(headers, name)
        .map(|v| v.parse::<u64>().map_err(|_| ApiError::invalid(format!("Invalid {name} header: {v}"))))
        .transpose()
}

pub async fn upload(
    State(state): State<AppState>,
    Path(version): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    caller: Option<Caller>,
    continuation: Option<UploadContinuation>,
    request: Request,
) -> Response {
    if let Err(e) = check_version(&version) {
        return upload_error(e, "final", None);
    }
    let store = match store(&state) {
        Ok(store) => store,
        Err(e) => return upload_error(e, "final", None),
    };
    let base = api_base(&state, request.headers());
    if let Some(UploadContinuation(upload_id)) = continuation {
        return chunk(store, &upload_id, caller, request, &base, &version).await;
    }
    let Some(caller) = caller else {
        return upload_error(ApiError::new(Code::PermissionDenied, "No caller for this upload."), "final", None);
    };
    let protocol = header(request.headers(), "x-goog-upload-protocol")
        .map(str::to_ascii_lowercase)
        .or_else(|| query.get("uploadType").map(|t| if t == "media" { "raw".into() } else { t.to_ascii_lowercase() }))
        .unwrap_or_else(|| "resumable".into());
    let result = match protocol.as_str() {
        "resumable" => start(store, caller, request, &base, &version).await,
        "multipart" => multipart(store, caller, request).await.map(|file| final_file(&file, &base, &version)),
        "raw" => raw(store, caller, request).await.map(|file| final_file(&file, &base, &version)),
        other => Err(ApiError::invalid(format!("Unsupported X-Goog-Upload-Protocol: {other}"))),
    };
    result.unwrap_or_else(|e| upload_error(e, "final", None))
}

fn parse_metadata(bytes: &[u8]) -> Result<FileMetadata, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(FileMetadata::default()); // raw REST callers may send no body
    }
    Ok(parse_gemini::<StartBody>(bytes)?.file.unwrap_or_default())
}

fn new_upload(caller: Caller, meta: FileMetadata, mime: Option<String>, size: Option<u64>) -> Result<NewUpload, ApiError> {
    let declared_size = match (size, meta.size_bytes) {
        (Some(n), _) => Some(n),
        (None, Some(n)) if n >= 0 => Some(n as u64),
        (None, Some(n)) => return Err(ApiError::invalid(format!("Invalid sizeBytes: {n}"))),
        (None, None) => None,
    };
    Ok(NewUpload {
        project: caller.project,
        name: meta.name,
        display_name: meta.display_name,
        mime_type: mime.or(meta.mime_type),
        declared_size,
    })
}

/// The start request: limits are checked here, before the client sends any byte.
async fn start(store: &FileStore, caller: Caller, request: Request, base: &str, version: &str) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    if let Some(command) = header(&headers, "x-goog-upload-command") {
        if !command.split(',').any(|c| c.trim().eq_ignore_ascii_case("start")) {
            return Err(ApiError::invalid(format!(
                "X-Goog-Upload-Command \"{command}\" needs an upload_id; start an upload first."
            )));
        }
    }
    let meta = parse_metadata(&read_limited(request.into_body(), METADATA_LIMIT).await?)?;
    let mime = header(&headers, "x-goog-upload-header-content-type").map(str::to_string);
    let size = header_u64(&headers, "x-goog-upload-header-content-length")?;
    let session = store.start_upload(new_upload(caller, meta, mime, size)?).await?;
    let url = format!("{base}/upload/{version}/files?upload_id={}&upload_protocol=resumable", session.id);
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert("x-goog-upload-url", HeaderValue::from_str(&url).map_err(|e| ApiError::invalid(e.to_string()))?);
    h.insert(STATUS, HeaderValue::from_static("active"));
    h.insert("x-goog-upload-chunk-granularity", HeaderValue::from(CHUNK_GRANULARITY));
    Ok(response)
}

/// A request on the upload URL: `upload`, `finalize`, `query` or `cancel`, comma-separated. It acts as the
/// upload's project; a key presented with it must belong to that project (another project's upload is as
/// unknown as a finished one).
async fn chunk(
    store: &FileStore,
    upload_id: &str,
    caller: Option<Caller>,
    request: Request,
    base: &str,
    version: &str,
) -> Response {
    let session = match store.upload_session(upload_id).await {
        Ok(Some(session)) if caller.as_ref().is_none_or(|c| c.project == session.project) => session,
        Ok(_) => {
            let err = ApiError::new(Code::NotFound, "No upload session with this upload_id (finished, cancelled or unknown).");
            return upload_error(err, "final", None);
        }
        Err(e) => return upload_error(e, "final", None),
    };
    let commands: Vec<String> = header(request.headers(), "x-goog-upload-command")
        .unwrap_or("upload, finalize")
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let has = |c: &str| commands.iter().any(|x| x == c);
    if has("cancel") {
        return match store.discard(&session).await {
            Ok(_) => {
                let mut response = StatusCode::OK.into_response();
                response.headers_mut().insert(STATUS, HeaderValue::from_static("cancelled"));
                response
            }
            Err(e) => upload_error(e, "final", None),
        };
    }
    if has("query") {
        return still_active(session.received);
    }
    if !has("upload") && !has("finalize") {
        return upload_error(ApiError::invalid(format!("Unknown X-Goog-Upload-Command: {commands:?}")), "final", None);
    }
    let session = if has("upload") {
        match append(store, &session, request).await {
            Ok(session) => session,
            Err(AppendFailure::Offset(e)) => return upload_error(e, "active", Some(session.received)),
            // A chunk cut short (the client stalled or went away) left nothing behind: the upload goes on
            // from where it was, as a resumable upload must.
            Err(AppendFailure::Fatal(e @ GlimpseError::BodyInterrupted(_))) => {
                return upload_error(e, "active", Some(session.received));
            }
            Err(AppendFailure::Fatal(e)) => {
                let _ = store.discard(&session).await;
                return upload_error(e, "final", None);
            }
        }
    } else {
        session
    };
    if !has("finalize") {
        return still_active(session.received);
    }
    match store.finalize(&session).await {
        Ok(file) => final_file(&file, base, version),
        Err(e) => upload_error(e, "final", None),
    }
}

/// The answer to a chunk or a query while the upload goes on.
fn still_active(received: u64) -> Response {
    let mut response = StatusCode::OK.into_response();
    response.headers_mut().insert(STATUS, HeaderValue::from_static("active"));
    response.headers_mut().insert("x-goog-upload-size-received", HeaderValue::from(received));
    response
}

enum AppendFailure {
    /// The chunk's offset is not where the upload stands; nothing was written and the upload goes on.
    Offset(ApiError),
    /// The upload cannot go on (too large, over quota, broken connection, storage failure).
    Fatal(GlimpseError),
}

async fn append(store: &FileStore, session: &UploadSession, request: Request) -> Result<UploadSession, AppendFailure> {
    let offset = match header_u64(request.headers(), "x-goog-upload-offset") {
        Ok(offset) => offset.unwrap_or(session.received),
        Err(e) => return Err(AppendFailure::Offset(e)),
    };
    if offset != session.received {
        return Err(AppendFailure::Offset(ApiError::invalid(format!(
            "Invalid X-Goog-Upload-Offset {offset}: the upload has received {} bytes.",
            session.received
        ))));
    }
    let body = request.into_body().into_data_stream();
    let received = store.append(session, offset, body).await.map_err(AppendFailure::Fatal)?;
    Ok(UploadSession { received, ..session.clone() })
}

/// `multipart/related`: a JSON `{"file": {...}}` part, then the media part.
async fn multipart(store: &FileStore, caller: Caller, request: Request) -> Result<FileRecord, ApiError> {
    let content_type = header(request.headers(), "content-type").unwrap_or_default().to_string();
    // multipart/related (Google's convention) as well as multipart/form-data.
    let boundary = content_type
        .parse::<mime::Mime>()
        .ok()
        .filter(|m| m.type_() == mime::MULTIPART)
        .and_then(|m| m.get_param(mime::BOUNDARY).map(|b| b.to_string()))
        .ok_or_else(|| ApiError::invalid("A multipart upload needs a multipart Content-Type with a boundary."))?;
    let mut parts = multer::Multipart::new(request.into_body().into_data_stream(), boundary);
    let bad = |e: multer::Error| ApiError::invalid(format!("Invalid multipart upload: {e}"));
    let first = parts.next_field().await.map_err(bad)?.ok_or_else(|| ApiError::invalid("The multipart upload is empty."))?;
    let meta = parse_metadata(&first.bytes().await.map_err(bad)?)?;
    let media = parts.next_field().await.map_err(bad)?.ok_or_else(|| ApiError::invalid("The multipart upload has no media part."))?;
    let mime = media.content_type().map(|m| m.to_string());
    let session = store.start_upload(new_upload(caller, meta, mime, None)?).await?;
    upload_all(store, &session, Box::pin(media.map_err(|e| e.to_string()))).await
}

/// The raw protocol: the body is the file, `Content-Type` its type.
async fn raw(store: &FileStore, caller: Caller, request: Request) -> Result<FileRecord, ApiError> {
    let mime = header(request.headers(), "content-type").map(str::to_string);
    let size = header_u64(request.headers(), "content-length")?;
    let session = store.start_upload(new_upload(caller, FileMetadata::default(), mime, size)?).await?;
    upload_all(store, &session, request.into_body().into_data_stream()).await
}

async fn upload_all<S, E>(store: &FileStore, session: &UploadSession, body: S) -> Result<FileRecord, ApiError>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    match store.append(session, 0, body).await {
        Ok(received) => Ok(store.finalize(&UploadSession { received, ..session.clone() }).await?),
        Err(e) => {
            let _ = store.discard(session).await;
            Err(e.into())
        }
    }
}

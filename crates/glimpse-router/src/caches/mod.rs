//! Context caching (`cachedContents`): create, get, list, update (the expiry only, as upstream), delete, and
//! `cachedContent` in generateContent, streamGenerateContent, countTokens and the OpenAI layer
//! (`extra_body.google.cached_content`).
//!
//! What a cache saves: the stored contents are kept parsed and checked, images included ([`prepared`]), the
//! images' decoded and resized pixels stay in the pixel cache and their vision-encoder output in the engine's
//! encoder cache (both keyed by the image's bytes), so a request naming the cache sends, uploads, decodes and
//! encodes none of it again.

mod prepared;
mod resource;

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use glimpse_core::{Code, GlimpseError};
use glimpse_files::caches::CacheRecord;
use glimpse_files::record::now_ms;
use glimpse_files::FileStore;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::body::{parse_json, parse_json_body, read_limited};
use crate::error::ApiError;
use crate::http::{json_response, max_body_bytes, page_size, page_token, resolve_model, ApiVersion};
use crate::AppState;

pub use prepared::{apply_cached_content, PreparedCaches};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{version}/cachedContents", get(list_caches).post(create_cache))
        .route("/{version}/cachedContents/{id}", get(get_cache).patch(update_cache).delete(delete_cache))
}

#[derive(serde::Deserialize)]
struct CachePath {
    id: String,
}

fn store(state: &AppState) -> Result<&FileStore, ApiError> {
    state.files.as_deref().ok_or_else(|| ApiError::new(Code::Unimplemented, "Context caching needs the File API's storage, which is disabled on this server."))
}

/// `POST /{v}/cachedContents`: `{model, contents?, systemInstruction?, ttl | expireTime, displayName?}`.
async fn create_cache(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(version): ApiVersion,
    body: Body,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let mut body = parse_json_body(read_limited(body, max_body_bytes(&state.limits)).await?).await?;
    crate::json_keys::normalize_gemini(&mut body);
    let model = match body.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        _ => return Err(ApiError::invalid("* CreateCachedContentRequest.cached_content.model: model is required.")),
    };
    let model = if model.starts_with("models/") { model } else { format!("models/{model}") };
    let engine = resolve_model(&state, &model, &version, "createCachedContent")?;
    for unsupported in ["tools", "toolConfig"] {
        if body.get(unsupported).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid(format!("{unsupported} cannot be cached: this server serves no tools.")));
        }
    }
    let now = now_ms();
    let expire_ms = resource::expiry(&body, now)?.unwrap_or(now + resource::DEFAULT_TTL_MS);
    let display_name = match body.get("displayName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.clone()),
        Some(_) => return Err(ApiError::invalid("displayName must be a string.")),
    };
    let contents = prepared::inline_references(body.get("contents").cloned(), &state.remote_media(&caller)).await?;
    let stored = json!({"contents": contents, "systemInstruction": body.get("systemInstruction").cloned().unwrap_or(Value::Null)});
    let prompt = prepared::prepare(&stored, &state).await?;
    let tokens = engine.count_tokens(&prompt.as_prompt()).await?.total();
    let min = state.cache_min_tokens;
    if tokens < min {
        return Err(ApiError::invalid(format!(
            "Cached content is too small. total_token_count={tokens}, min_total_token_count={min}"
        )));
    }
    let record = CacheRecord {
        id: glimpse_files::ids::new_file_id(),
        project: caller.project.clone(),
        model,
        display_name,
        create_ms: now,
        update_ms: now,
        expire_ms,
        token_count: tokens.into(),
        body: stored.to_string(),
    };
    store.put_cache(&record).await?;
    state.prepared_caches.insert(&record.id, prompt);
    Ok(json_response(&resource::cache_json(&record)))
}

async fn get_cache(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(_): ApiVersion,
    Path(CachePath { id }): Path<CachePath>,
) -> Result<Response, ApiError> {
    let cache = store(&state)?.cache(&caller.project, &id, false).await?;
    Ok(json_response(&resource::cache_json(&cache)))
}

/// `GET /{v}/cachedContents` → `{"cachedContents": […], "nextPageToken"}`, or `{}` when there are none.
async fn list_caches(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(_): ApiVersion,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (caches, next) = store(&state)?.list_caches(&caller.project, page_size(&query)?, page_token(&query)).await?;
    let mut body = json!({});
    if !caches.is_empty() {
        body["cachedContents"] = Value::Array(caches.iter().map(resource::cache_json).collect());
    }
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    Ok(json_response(&body))
}

/// `PATCH /{v}/cachedContents/{id}` with `{ttl}` or `{expireTime}`: nothing else of a cache can change.
async fn update_cache(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(_): ApiVersion,
    Path(CachePath { id }): Path<CachePath>,
    body: Body,
) -> Result<Response, ApiError> {
    let mut body = parse_json(&read_limited(body, 64 * 1024).await?)?;
    crate::json_keys::normalize_gemini(&mut body);
    let Some(expire_ms) = resource::expiry(&body, now_ms())? else {
        return Err(ApiError::invalid("An update of a CachedContent must set ttl or expireTime."));
    };
    let cache = store(&state)?.update_cache_expiry(&caller.project, &id, expire_ms).await?;
    Ok(json_response(&resource::cache_json(&cache)))
}

async fn delete_cache(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(_): ApiVersion,
    Path(CachePath { id }): Path<CachePath>,
) -> Result<Response, ApiError> {
    store(&state)?.delete_cache(&caller.project, &id).await?;
    state.prepared_caches.remove(&id);
    Ok(json_response(&json!({})))
}

/// The id in `cachedContents/{id}` (or a bare id).
pub fn cache_id(name: &str) -> Result<&str, GlimpseError> {
    let id = name.strip_prefix("cachedContents/").unwrap_or(name);
    if id.is_empty() || id.contains('/') {
        return Err(GlimpseError::invalid(format!("Invalid cachedContent name {name:?}: expected cachedContents/{{id}}.")));
    }
    Ok(id)
}

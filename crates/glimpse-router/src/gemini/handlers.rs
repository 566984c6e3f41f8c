//! Route handlers. Streaming is decided by the method name and `alt=sse`, never by `Accept` (spec §1.3).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use glimpse_core::engine::collect;
use glimpse_core::{Code, Engine, GenerationEvent, GenerationStream, Prompt};
use serde_json::{json, Value};

use super::convert::{convert_contents, convert_generate_request};
use super::response::{
    modality_details, CountTokensResponse, GenerateContentResponse, ListModelsResponse, ModelResource,
};
use super::types::{CountTokensRequest, GenerateContentRequest};
use crate::auth::Caller;
use crate::body::{parse_gemini, read_limited};
use crate::error::{ApiError, JSON_CONTENT_TYPE};
use crate::AppState;

const VERSIONS: &[&str] = &["v1", "v1beta", "v1alpha"];

pub(crate) fn check_version(version: &str) -> Result<(), ApiError> {
    if VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(ApiError::new(Code::NotFound, format!("API version {version} is not served here; use v1, v1beta or v1alpha.")))
    }
}

pub(crate) fn resolve(state: &AppState, model: &str, version: &str, method: &str) -> Result<Arc<dyn Engine>, ApiError> {
    let engine = state.registry.resolve(model);
    if let Some(engine) = &engine {
        crate::observability::note_model(&engine.info().id, Some(method));
    }
    engine.ok_or_else(|| {
        let bare = model.strip_prefix("models/").unwrap_or(model);
        ApiError::new(
            Code::NotFound,
            format!(
                "models/{bare} is not found for API version {version}, or is not supported for {method}. \
                 Call ListModels to see the list of available models and their supported methods."
            ),
        )
    })
}

pub(crate) fn json_response(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, JSON_CONTENT_TYPE)], body).into_response(),
        Err(e) => ApiError::new(Code::Internal, format!("response serialisation failed: {e}")).into_response(),
    }
}

fn new_response_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `POST /{v}/models/{model}:{method}`.
pub async fn model_method(
    State(state): State<AppState>,
    caller: Caller,
    Path((version, model_and_method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    let Some((model, method)) = model_and_method.rsplit_once(':') else {
        return Err(ApiError::new(Code::NotFound, format!("Unknown method on models/{model_and_method}.")));
    };
    let bytes = read_limited(body, state.limits.max_body_bytes()).await?;
    let remote = state.remote_media(&caller);
    match method {
        "generateContent" => {
            let engine = resolve(&state, model, &version, method)?;
            let request = convert_generate_request(parse_gemini::<GenerateContentRequest>(&bytes)?, &state.limits, &remote).await?;
            let stream = engine.generate(request).await?;
            let (text, finish, usage) = collect(stream).await?;
            let id = new_response_id();
            Ok(json_response(&GenerateContentResponse::text(text, Some(finish), Some(usage), &engine.info().id, &id)))
        }
        "streamGenerateContent" => {
            let engine = resolve(&state, model, &version, method)?;
            let request = convert_generate_request(parse_gemini::<GenerateContentRequest>(&bytes)?, &state.limits, &remote).await?;
            let stream = crate::sse::start(engine.generate(request).await?).await?;
            let chunks = response_chunks(stream, engine.info().id.clone());
            if query.get("alt").or_else(|| query.get("$alt")).is_some_and(|alt| alt.eq_ignore_ascii_case("sse")) {
                let events = chunks.map(|chunk| Ok::<_, Infallible>(Event::default().data(chunk.to_string())));
                Ok(Sse::new(events).into_response())
            } else {
                // Without alt=sse the real API streams one JSON array; curl users see the same shape.
                let all: Vec<Value> = chunks.collect().await;
                Ok(json_response(&all))
            }
        }
        "countTokens" => {
            let engine = resolve(&state, model, &version, method)?;
            let request = parse_gemini::<CountTokensRequest>(&bytes)?;
            let prompt = match request.generate_content_request {
                Some(inner) => convert_generate_request(inner, &state.limits, &remote).await?.prompt,
                None => Prompt { turns: convert_contents(request.contents, &state.limits, &remote).await?, ..Default::default() },
            };
            let tokens = engine.count_tokens(&prompt).await?;
            Ok(json_response(&CountTokensResponse {
                total_tokens: tokens.total(),
                prompt_tokens_details: modality_details(tokens),
            }))
        }
        other => Err(ApiError::new(
            Code::NotFound,
            format!("Method {other} is not supported on models/{model}; this server implements generateContent, streamGenerateContent and countTokens."),
        )),
    }
}

/// Turns engine events into response chunks. One text delta is held back so the final chunk carries the last
/// text together with `finishReason` and `usageMetadata`; an error mid-stream becomes a `{"error":…}` chunk
/// and ends the stream, as both SDKs expect.
fn response_chunks(
    rest: GenerationStream,
    model_version: String,
) -> impl futures::Stream<Item = Value> + Send {
    struct State {
        rest: GenerationStream,
        pending: Option<String>,
        done: bool,
        model_version: String,
        response_id: String,
    }
    let state =
        State { rest, pending: None, done: false, model_version, response_id: new_response_id() };
    stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let chunk = match st.rest.next().await {
                Some(Ok(GenerationEvent::Text(delta))) => {
                    if delta.is_empty() {
                        continue;
                    }
                    match st.pending.replace(delta) {
                        Some(previous) => {
                            GenerateContentResponse::text(previous, None, None, &st.model_version, &st.response_id)
                        }
                        None => continue,
                    }
                }
                Some(Ok(GenerationEvent::Done { finish, usage })) => {
                    st.done = true;
                    let text = st.pending.take().unwrap_or_default();
                    GenerateContentResponse::text(text, Some(finish), Some(usage), &st.model_version, &st.response_id)
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((ApiError::from(e).to_json(), st));
                }
                None => {
                    st.done = true;
                    let err = ApiError::new(Code::Internal, "The model stopped before finishing its answer.");
                    return Some((err.to_json(), st));
                }
            };
            return Some((serde_json::to_value(chunk).unwrap_or_else(|e| json!({"error": e.to_string()})), st));
        }
    })
}

/// `GET /{v}/models` with `pageSize` / `pageToken` (an offset).
pub async fn list_models(
    State(state): State<AppState>,
    Path(version): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    let catch_all = state.registry.is_catch_all();
    let all: Vec<ModelResource> = state
        .registry
        .names()
        .into_iter()
        .map(|(name, engine)| {
            let info = engine.info();
            let note = if name != info.id {
                format!(" Alias of models/{}.", info.id)
            } else if catch_all {
                " Any model name (for example gemini-3-flash-preview) is answered by this model.".to_string()
            } else {
                String::new()
            };
            ModelResource::new(&name, info, &note)
        })
        .collect();
    let page_size = query
        .get("pageSize")
        .or_else(|| query.get("page_size"))
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(50)
        .min(1000);
    let offset = match query.get("pageToken").or_else(|| query.get("page_token")).filter(|t| !t.is_empty()) {
        Some(token) => token.parse::<usize>().map_err(|_| ApiError::invalid("Invalid pageToken."))?,
        None => 0,
    };
    let total = all.len();
    let models: Vec<ModelResource> = all.into_iter().skip(offset).take(page_size).collect();
    let next = offset + models.len();
    let next_page_token = (next < total).then(|| next.to_string());
    Ok(json_response(&ListModelsResponse { models, next_page_token }))
}

/// `GET /{v}/models/{model}`.
pub async fn get_model(
    State(state): State<AppState>,
    Path((version, model)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    let engine = resolve(&state, &model, &version, "generateContent")?;
    let bare = model.strip_prefix("models/").unwrap_or(&model);
    Ok(json_response(&ModelResource::new(bare, engine.info(), "")))
}

/// `GET /{v}/tunedModels`: there are none (Python's `models.list(config={'query_base': False})`).
pub async fn list_tuned_models(Path(version): Path<String>) -> Result<Response, ApiError> {
    check_version(&version)?;
    Ok(json_response(&json!({})))
}

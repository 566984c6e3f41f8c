//! Route handlers. Streaming is decided by the method name and `alt=sse`, never by `Accept` (as the SDKs call
//! it: `:streamGenerateContent?alt=sse`).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::sse::Event;
use axum::response::Response;
use futures::stream::StreamExt;
use glimpse_core::{answer_events, collect, AnswerEvent, Code, GenerationStream, Prompt};
use serde::Deserialize;
use serde_json::{json, Value};

use super::convert::convert_contents;
use super::response::{
    modality_details, CountTokensResponse, GenerateContentResponse, ListModelsResponse, ModelResource,
};
use super::types::{CountTokensRequest, GenerateContentRequest};
use crate::auth::Caller;
use crate::body::{parse_gemini_body, read_limited};
use crate::error::ApiError;
use crate::http::{
    bare_model_name, json_response, max_body_bytes, page_size, page_token, prepare_request, resolve_model, start_generation,
    ApiVersion,
};
use crate::sse::spawn_sse;
use crate::AppState;

/// The `{model}` segment (for `:method` routes, `name:method`).
#[derive(Deserialize)]
pub struct ModelPath {
    model: String,
}

fn new_response_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `POST /{v}/models/{model}:{method}`.
pub async fn model_method(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(version): ApiVersion,
    Path(ModelPath { model: model_and_method }): Path<ModelPath>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Result<Response, ApiError> {
    let Some((model, method)) = model_and_method.rsplit_once(':') else {
        return Err(ApiError::new(Code::NotFound, format!("Unknown method on models/{model_and_method}.")));
    };
    let bytes = read_limited(body, max_body_bytes(&state.limits)).await?;
    match method {
        "generateContent" => {
            let request = parse_gemini_body::<GenerateContentRequest>(bytes).await?;
            let (engine, stream) = start_generation(&state, &caller, model, &version, method, request).await?;
            let (text, finish, usage) = collect(stream).await?;
            let id = new_response_id();
            Ok(json_response(&GenerateContentResponse::text(text, Some(finish), Some(usage), &engine.info().id, &id)))
        }
        "streamGenerateContent" => {
            let request = parse_gemini_body::<GenerateContentRequest>(bytes).await?;
            let (engine, stream) = start_generation(&state, &caller, model, &version, method, request).await?;
            let stream = crate::sse::start(stream).await?;
            let chunks = response_chunks(stream, engine.info().id.clone());
            if query.get("alt").or_else(|| query.get("$alt")).is_some_and(|alt| alt.eq_ignore_ascii_case("sse")) {
                Ok(spawn_sse(move |mut sender| async move {
                    let mut chunks = std::pin::pin!(chunks);
                    while let Some(chunk) = chunks.next().await {
                        if !sender.send(Event::default().data(chunk.to_string())).await {
                            return;
                        }
                    }
                }))
            } else {
                // Without alt=sse the real API streams one JSON array; curl users see the same shape.
                let all: Vec<Value> = chunks.collect().await;
                Ok(json_response(&all))
            }
        }
        "countTokens" => {
            let engine = resolve_model(&state, model, &version, method)?;
            let request = parse_gemini_body::<CountTokensRequest>(bytes).await?;
            let (prompt, cached) = match request.generate_content_request {
                Some(inner) => {
                    let (prepared, cached) = prepare_request(&state, &caller, &engine, inner).await?;
                    (prepared.prompt, cached)
                }
                None => {
                    let turns = convert_contents(request.contents, &state.limits, &state.remote_media(&caller)).await?;
                    (Prompt { turns, ..Default::default() }, 0)
                }
            };
            let tokens = engine.count_tokens(&prompt).await?;
            Ok(json_response(&CountTokensResponse {
                total_tokens: tokens.total(),
                cached_content_token_count: cached,
                prompt_tokens_details: modality_details(tokens),
            }))
        }
        "batchGenerateContent" => crate::batches::create(&state, &caller, &version, model, bytes).await,
        other => Err(ApiError::new(
            Code::NotFound,
            format!("Method {other} is not supported on models/{model}; this server implements generateContent, streamGenerateContent, countTokens and batchGenerateContent."),
        )),
    }
}

/// Turns an answer into response chunks. One text delta is held back so the final chunk carries the last
/// text together with `finishReason` and `usageMetadata`; a failure becomes a `{"error":…}` chunk and ends the
/// stream, as both SDKs expect.
fn response_chunks(stream: GenerationStream, model_version: String) -> impl futures::Stream<Item = Value> + Send {
    let response_id = new_response_id();
    let mut pending: Option<String> = None;
    answer_events(stream).filter_map(move |event| {
        let chunk = match event {
            AnswerEvent::Delta(delta) => pending
                .replace(delta)
                .map(|previous| GenerateContentResponse::text(previous, None, None, &model_version, &response_id)),
            AnswerEvent::Finished { finish, usage } => {
                let text = pending.take().unwrap_or_default();
                Some(GenerateContentResponse::text(text, Some(finish), Some(usage), &model_version, &response_id))
            }
            AnswerEvent::Failed(e) => return std::future::ready(Some(ApiError::from(e).to_json())),
        };
        std::future::ready(chunk.map(|c| serde_json::to_value(c).unwrap_or_else(|e| json!({"error": e.to_string()}))))
    })
}

/// `GET /{v}/models` with `pageSize` / `pageToken` (an offset).
pub async fn list_models(
    State(state): State<AppState>,
    ApiVersion(_): ApiVersion,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
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
    let page_size = page_size(&query)?.filter(|&n| n > 0).unwrap_or(50).min(1000) as usize;
    let offset = match page_token(&query) {
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
    ApiVersion(version): ApiVersion,
    Path(ModelPath { model }): Path<ModelPath>,
) -> Result<Response, ApiError> {
    let engine = resolve_model(&state, &model, &version, "generateContent")?;
    Ok(json_response(&ModelResource::new(bare_model_name(&model), engine.info(), "")))
}

/// `GET /{v}/tunedModels`: there are none (Python's `models.list(config={'query_base': False})`).
pub async fn list_tuned_models(ApiVersion(_): ApiVersion) -> Result<Response, ApiError> {
    Ok(json_response(&json!({})))
}

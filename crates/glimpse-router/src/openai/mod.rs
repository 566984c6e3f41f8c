//! OpenAI compatibility (`/{v}/openai/`, as Google's OpenAI-compatible endpoint and the `openai` SDK use it):
//! chat completions (unary and streamed) and the model list, on the same engine, media pipeline and limits as
//! generateContent. Errors keep Google's envelope, which the OpenAI SDK reads (`error.message`) and classifies
//! by HTTP status.

mod translate;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::sse::Event;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use glimpse_core::collect;
use glimpse_core::{answer_events, AnswerEvent, FinishReason, GenerationStream, Usage};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::body::read_json_object;
use crate::error::ApiError;
use crate::http::{bare_model_name, json_response, max_body_bytes, start_generation, ApiVersion};
use crate::sse::{spawn_sse, SseSender};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{version}/openai/chat/completions", post(chat_completions))
        .route("/{version}/openai/models", get(list_models))
        .route("/{version}/openai/models/{*id}", get(get_model))
}

fn finish_reason(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::MaxTokens => "length",
        FinishReason::Stop | FinishReason::Other => "stop",
    }
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt.total(),
        "completion_tokens": usage.output,
        "total_tokens": usage.prompt.total() + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cached_prompt},
    })
}

/// What every completion and chunk of one answer shares.
struct Completion {
    id: String,
    created: i64,
    model: String,
}

impl Completion {
    fn body(&self, object: &str, choices: Value) -> Value {
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model, "choices": choices})
    }

    fn chunk(&self, delta: Value, finish: Option<FinishReason>) -> Value {
        self.body("chat.completion.chunk", json!([{"index": 0, "delta": delta, "finish_reason": finish.map(finish_reason)}]))
    }
}

async fn chat_completions(
    State(state): State<AppState>,
    caller: Caller,
    ApiVersion(version): ApiVersion,
    body: Body,
) -> Result<Response, ApiError> {
    let object = &read_json_object(body, max_body_bytes(&state.limits)).await?;
    let options = translate::options(object)?;
    let gemini = translate::generate_request(object)?;
    let (_, generation) = start_generation(&state, &caller, &options.model, &version, "chat.completions", gemini).await?;
    let completion = Completion {
        id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        created: unix_seconds(),
        model: options.model,
    };
    if options.stream {
        let stream = crate::sse::start(generation).await?;
        return Ok(spawn_sse(move |sender| stream_chunks(completion, stream, options.include_usage, sender)));
    }
    let (text, finish, usage) = collect(generation).await?;
    let mut body = completion.body(
        "chat.completion",
        json!([{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason(finish)}]),
    );
    body["usage"] = usage_json(usage);
    Ok(json_response(&body))
}

fn unix_seconds() -> i64 {
    glimpse_files::record::now_ms() / 1000
}

/// `data: {chunk}` events: the role first, then text deltas, a chunk with `finish_reason`, the usage chunk
/// (`choices: []`) when asked for, and `data: [DONE]`. A failure mid-stream is a `data: {"error":…}` event,
/// which the SDK raises.
async fn stream_chunks(completion: Completion, stream: GenerationStream, include_usage: bool, mut sender: SseSender) {
    let event = |value: Value| Event::default().data(value.to_string());
    if !sender.send(event(completion.chunk(json!({"role": "assistant", "content": ""}), None))).await {
        return;
    }
    let mut answer = std::pin::pin!(answer_events(stream));
    while let Some(answer_event) = answer.next().await {
        let value = match answer_event {
            AnswerEvent::Delta(delta) => completion.chunk(json!({"content": delta}), None),
            AnswerEvent::Finished { finish, usage } => {
                if !sender.send(event(completion.chunk(json!({}), Some(finish)))).await {
                    return;
                }
                if include_usage {
                    let mut last = completion.body("chat.completion.chunk", json!([]));
                    last["usage"] = usage_json(usage);
                    if !sender.send(event(last)).await {
                        return;
                    }
                }
                sender.done().await;
                return;
            }
            AnswerEvent::Failed(e) => {
                sender.send(event(ApiError::from(e).to_json())).await;
                return;
            }
        };
        if !sender.send(event(value)).await {
            return;
        }
    }
}

/// The `{*id}` segment (`x` or `models/x`).
#[derive(serde::Deserialize)]
struct ModelIdPath {
    id: String,
}

fn model_json(id: &str) -> Value {
    json!({"id": format!("models/{id}"), "object": "model", "created": 0, "owned_by": "glimpse"})
}

/// `GET /{v}/openai/models`: every model id and alias.
async fn list_models(State(state): State<AppState>, ApiVersion(_): ApiVersion) -> Result<Response, ApiError> {
    let data: Vec<Value> = state.registry.names().iter().map(|(name, _)| model_json(name)).collect();
    Ok(json_response(&json!({"object": "list", "data": data})))
}

/// `GET /{v}/openai/models/{id}` (with or without `models/`).
async fn get_model(
    State(state): State<AppState>,
    ApiVersion(_): ApiVersion,
    Path(ModelIdPath { id }): Path<ModelIdPath>,
) -> Result<Response, ApiError> {
    let bare = bare_model_name(&id);
    if state.registry.resolve(bare).is_none() {
        return Err(ApiError::model_not_found(format!("Model {bare} is not served here.")));
    }
    Ok(json_response(&model_json(bare)))
}

//! OpenAI compatibility (`/{v}/openai/`, spec §6): chat completions (unary and streamed) and the model list,
//! on the same engine, media pipeline and limits as generateContent. Errors keep Google's envelope, which the
//! OpenAI SDK reads (`error.message`) and classifies by HTTP status.

mod translate;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::sse::Event;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use glimpse_core::engine::collect;
use glimpse_core::{Code, FinishReason, GenerationEvent, GenerationStream, GlimpseError, Usage};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::body::{gemini_from_value, read_json_object};
use crate::error::ApiError;
use crate::gemini::{check_version, convert_generate_request, json_response, resolve_engine};
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
    Path(version): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    check_version(&version)?;
    let object = &read_json_object(body, state.limits.max_body_bytes()).await?;
    let options = translate::options(object)?;
    let gemini = gemini_from_value(translate::generate_request(object)?)?;
    let engine = resolve_engine(&state, &options.model, &version, "chat.completions")?;
    let generate = convert_generate_request(gemini, &state.limits, &state.remote_media(&caller)).await?;
    let generation = engine.generate(generate).await?;
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
async fn stream_chunks(completion: Completion, mut stream: GenerationStream, include_usage: bool, mut sender: SseSender) {
    let event = |value: Value| Event::default().data(value.to_string());
    if !sender.send(event(completion.chunk(json!({"role": "assistant", "content": ""}), None))).await {
        return;
    }
    loop {
        let value = match stream.next().await {
            Some(Ok(GenerationEvent::Text(delta))) if delta.is_empty() => continue,
            Some(Ok(GenerationEvent::Text(delta))) => completion.chunk(json!({"content": delta}), None),
            Some(Ok(GenerationEvent::Done { finish, usage })) => {
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
            Some(Err(e)) => {
                sender.send(event(ApiError::from(e).to_json())).await;
                return;
            }
            None => {
                let err = GlimpseError::Engine("the model stopped before finishing its answer".into());
                sender.send(event(ApiError::from(err).to_json())).await;
                return;
            }
        };
        if !sender.send(event(value)).await {
            return;
        }
    }
}

fn model_json(id: &str) -> Value {
    json!({"id": format!("models/{id}"), "object": "model", "created": 0, "owned_by": "glimpse"})
}

/// `GET /{v}/openai/models`: every model id and alias.
async fn list_models(State(state): State<AppState>, Path(version): Path<String>) -> Result<Response, ApiError> {
    check_version(&version)?;
    let data: Vec<Value> = state.registry.names().iter().map(|(name, _)| model_json(name)).collect();
    Ok(json_response(&json!({"object": "list", "data": data})))
}

/// `GET /{v}/openai/models/{id}` (with or without `models/`).
async fn get_model(State(state): State<AppState>, Path((version, id)): Path<(String, String)>) -> Result<Response, ApiError> {
    check_version(&version)?;
    let bare = id.strip_prefix("models/").unwrap_or(&id);
    if state.registry.resolve(bare).is_none() {
        return Err(ApiError::new(Code::NotFound, format!("Model {bare} is not served here.")));
    }
    Ok(json_response(&model_json(bare)))
}

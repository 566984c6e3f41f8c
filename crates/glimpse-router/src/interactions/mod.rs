//! The Interactions API (`/{v}/interactions`), as google-genai's `client.interactions` calls it.
//!
//! A create request is translated into the equivalent generateContent request ([`translate`]) and goes through
//! the same conversion, limits, File API / URL resolution and engine path; the answer is the `steps` schema,
//! unary or streamed. With `store` (the default) the turn is persisted beside the files, so that
//! `previous_interaction_id` can rebuild the conversation and GET / DELETE can find it. Only inputs and outputs
//! are inherited by a follow-up turn, never its configuration (as upstream).

mod error;
mod resource;
mod stream;
mod translate;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use axum::response::Response;
use glimpse_core::collect;
use glimpse_core::{GlimpseError, Usage};
use glimpse_files::FileStore;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::body::read_json_object;
use crate::http::{json_response, max_body_bytes, start_generation, ApiVersion};
use crate::AppState;

pub use error::InteractionError;
use resource::{output_step, status_for, InteractionHead};

/// Longest chain of `previous_interaction_id`s a request may rebuild.
const MAX_CONVERSATION_TURNS: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{version}/interactions", post(create))
        .route("/{version}/interactions/{id}", get(fetch).delete(remove))
        .route("/{version}/interactions/{id}/cancel", post(cancel))
}

/// The API version, refused in the Interactions error format.
struct Version(String);

impl<S: Send + Sync> FromRequestParts<S> for Version {
    type Rejection = InteractionError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, InteractionError> {
        Ok(Version(ApiVersion::from_request_parts(parts, state).await?.0))
    }
}

/// The `{id}` segment.
#[derive(serde::Deserialize)]
struct InteractionPath {
    id: String,
}

/// Where a finished turn is stored: its project and its input steps (the output is added when known).
pub struct Persist {
    files: Arc<FileStore>,
    project: String,
    input: Vec<Value>,
}

impl Persist {
    async fn save(self, head: &InteractionHead, status: &str, output: Vec<Value>, usage: Usage) -> Result<(), GlimpseError> {
        let mut steps = self.input;
        steps.extend(output);
        let body = head.json(status, Some(steps), Some(usage)).to_string();
        self.files.put_interaction(&self.project, &head.id, head.previous_interaction_id.as_deref(), body).await
    }
}

fn files(state: &AppState) -> Result<&Arc<FileStore>, GlimpseError> {
    state.files.as_ref().ok_or_else(|| GlimpseError::FailedPrecondition("This server keeps no interactions.".into()))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Version(version): Version,
    body: Body,
) -> Result<Response, InteractionError> {
    let object = &read_json_object(body, max_body_bytes(&state.limits)).await?;
    let options = translate::options(object)?;
    let input = object.get("input").ok_or_else(|| GlimpseError::invalid("input is required."))?;
    let input = translate::input_steps(input)?;
    let mut prompt_steps = match &options.previous_interaction_id {
        Some(id) => history(&state, &caller, id).await?,
        None => Vec::new(),
    };
    prompt_steps.extend(input.iter().cloned());
    let request = translate::generate_request(object, &prompt_steps)?;
    let (_, generation) = start_generation(&state, &caller, &options.model, &version, "interactions", request).await?;
    let head = InteractionHead::new(&options, object);
    let persist = match (options.store, &state.files) {
        (true, Some(files)) => Some(Persist { files: files.clone(), project: caller.project.clone(), input }),
        _ => None,
    };
    if options.stream {
        return Ok(stream::respond(head, crate::sse::start(generation).await?, persist));
    }
    let (text, finish, usage) = collect(generation).await?;
    let status = status_for(finish);
    let output = vec![output_step(text)];
    if let Some(persist) = persist {
        persist.save(&head, status, output.clone(), usage).await?;
    }
    Ok(json_response(&head.json(status, Some(output), Some(usage))))
}

/// The input and output steps of the conversation ending at `id`, oldest first.
async fn history(state: &AppState, caller: &Caller, id: &str) -> Result<Vec<Value>, GlimpseError> {
    let files = files(state)?;
    let mut turns = Vec::new();
    let mut next = Some(id.to_string());
    while let Some(id) = next {
        if turns.len() == MAX_CONVERSATION_TURNS {
            return Err(GlimpseError::invalid(format!(
                "The conversation is longer than {MAX_CONVERSATION_TURNS} turns; start a new one with the history as input."
            )));
        }
        let record = files.interaction(&caller.project, &id).await?;
        let body: Value = serde_json::from_str(&record.body)
            .map_err(|e| GlimpseError::Storage(format!("stored interaction {id} is unreadable: {e}")))?;
        let steps: Vec<Value> = body["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["type"] == "user_input" || s["type"] == "model_output")
            .cloned()
            .collect();
        turns.push(steps);
        next = record.previous_id;
    }
    Ok(turns.into_iter().rev().flatten().collect())
}

async fn stored(state: &AppState, caller: &Caller, id: &str) -> Result<Value, InteractionError> {
    let record = files(state)?.interaction(&caller.project, id).await?;
    let body = serde_json::from_str(&record.body)
        .map_err(|e| GlimpseError::Storage(format!("stored interaction {id} is unreadable: {e}")))?;
    Ok(body)
}

/// `GET /{v}/interactions/{id}`: the whole turn, inputs included unless `include_input=false`;
/// `stream=true` replays it as events.
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    _: Version,
    Path(InteractionPath { id }): Path<InteractionPath>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, InteractionError> {
    let mut body = stored(&state, &caller, &id).await?;
    if query.get("stream").is_some_and(|v| v == "true") {
        return Ok(stream::replay(body));
    }
    if query.get("include_input").is_some_and(|v| v == "false") {
        if let Some(steps) = body.get_mut("steps").and_then(Value::as_array_mut) {
            steps.retain(|s| s["type"] != "user_input");
        }
    }
    Ok(json_response(&body))
}

/// `DELETE /{v}/interactions/{id}` → `{}`.
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    _: Version,
    Path(InteractionPath { id }): Path<InteractionPath>,
) -> Result<Response, InteractionError> {
    files(&state)?.delete_interaction(&caller.project, &id).await?;
    Ok(json_response(&Map::new()))
}

/// `POST /{v}/interactions/{id}/cancel`: only background interactions can be cancelled, and this server runs
/// none, so an existing interaction is already finished.
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    _: Version,
    Path(InteractionPath { id }): Path<InteractionPath>,
) -> Result<Response, InteractionError> {
    let body = stored(&state, &caller, &id).await?;
    Err(GlimpseError::FailedPrecondition(format!(
        "Interaction {id} is {} and cannot be cancelled: only background interactions can.",
        body["status"].as_str().unwrap_or("finished")
    ))
    .into())
}

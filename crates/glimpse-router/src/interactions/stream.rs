//! `stream: true`: `interaction.created`, `step.start`, `step.delta`…, `step.stop`,
//! `interaction.completed`, then `data: [DONE]`; a failure after the stream started is an `error` event.

use axum::response::sse::Event;
use axum::response::Response;
use futures::StreamExt;
use glimpse_core::{answer_events, AnswerEvent, GenerationStream, GlimpseError};
use serde_json::{json, Value};

use super::error::InteractionError;
use super::resource::{output_step, status_for, InteractionHead};
use super::Persist;
use crate::sse::{spawn_sse, SseSender};

/// Numbers the events (`event_id` e1, e2, …) and names them after their `event_type`.
struct Events {
    sender: SseSender,
    next_id: u64,
}

impl Events {
    async fn emit(&mut self, kind: &str, mut data: Value) -> bool {
        self.next_id += 1;
        data["event_type"] = json!(kind);
        data["event_id"] = json!(format!("e{}", self.next_id));
        self.sender.send(Event::default().event(kind).data(data.to_string())).await
    }

    async fn error(&mut self, err: GlimpseError) {
        let body = InteractionError::from(err).to_json();
        self.emit("error", body).await;
    }
}

pub fn respond(head: InteractionHead, stream: GenerationStream, persist: Option<Persist>) -> Response {
    spawn_sse(move |sender| async move {
        let mut events = Events { sender, next_id: 0 };
        let created = json!({"interaction": head.json("in_progress", None, None)});
        if !events.emit("interaction.created", created).await
            || !events.emit("step.start", json!({"index": 0, "step": {"type": "model_output", "content": []}})).await
        {
            return;
        }
        let mut text = String::new();
        let mut answer = std::pin::pin!(answer_events(stream));
        let (finish, usage) = loop {
            match answer.next().await {
                Some(AnswerEvent::Delta(delta)) => {
                    text.push_str(&delta);
                    if !events.emit("step.delta", json!({"index": 0, "delta": {"type": "text", "text": delta}})).await {
                        return;
                    }
                }
                Some(AnswerEvent::Finished { finish, usage }) => break (finish, usage),
                Some(AnswerEvent::Failed(e)) => return events.error(e).await,
                None => return,
            }
        };
        if !events.emit("step.stop", json!({"index": 0})).await {
            return;
        }
        let status = status_for(finish);
        if let Some(persist) = persist {
            if let Err(e) = persist.save(&head, status, vec![output_step(text)], usage).await {
                return events.error(e).await;
            }
        }
        let completed = json!({"interaction": head.json(status, None, Some(usage))});
        if events.emit("interaction.completed", completed).await {
            events.sender.done().await;
        }
    })
}

/// A stored interaction replayed as a stream (`GET …?stream=true`): the same events a live stream sends.
pub fn replay(stored: Value) -> Response {
    spawn_sse(move |sender| async move {
        let mut events = Events { sender, next_id: 0 };
        let mut head = stored.clone();
        if let Some(object) = head.as_object_mut() {
            object.remove("steps");
            object.remove("usage");
        }
        if !events.emit("interaction.created", json!({"interaction": head})).await {
            return;
        }
        let steps = stored["steps"].as_array().cloned().unwrap_or_default();
        for (index, step) in steps.into_iter().filter(|s| s["type"] != "user_input").enumerate() {
            let mut start = step.clone();
            start["content"] = json!([]);
            if !events.emit("step.start", json!({"index": index, "step": start})).await {
                return;
            }
            for delta in step["content"].as_array().cloned().unwrap_or_default() {
                if !events.emit("step.delta", json!({"index": index, "delta": delta})).await {
                    return;
                }
            }
            if !events.emit("step.stop", json!({"index": index})).await {
                return;
            }
        }
        let mut completed = stored;
        if let Some(object) = completed.as_object_mut() {
            object.remove("steps");
        }
        if events.emit("interaction.completed", json!({"interaction": completed})).await {
            events.sender.done().await;
        }
    })
}

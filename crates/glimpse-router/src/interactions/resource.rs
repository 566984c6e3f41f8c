//! The `Interaction` resource (docs/gemini-api.md §5.3): what create answers, what is stored, what GET returns.

use glimpse_core::{FinishReason, PromptTokens, Usage};
use glimpse_files::record::{now_ms, rfc3339_seconds};
use serde_json::{json, Map, Value};

use super::translate::CreateOptions;

/// Request fields an interaction echoes back.
const ECHOED: &[&str] = &["system_instruction", "generation_config", "response_format"];

/// What is known of an interaction before its output: id, model, creation time, chain and echoed config.
#[derive(Clone)]
pub struct InteractionHead {
    pub id: String,
    pub model: String,
    pub created: String,
    pub previous_interaction_id: Option<String>,
    echo: Map<String, Value>,
}

impl InteractionHead {
    pub fn new(options: &CreateOptions, request: &Map<String, Value>) -> Self {
        let echo = ECHOED.iter().filter_map(|&k| request.get(k).map(|v| (k.to_string(), v.clone()))).collect();
        InteractionHead {
            id: format!("v1_{}", uuid::Uuid::new_v4().simple()),
            model: options.model.clone(),
            created: rfc3339_seconds(now_ms()),
            previous_interaction_id: options.previous_interaction_id.clone(),
            echo,
        }
    }

    /// The resource with `status`, and `steps` / `usage` when given.
    pub fn json(&self, status: &str, steps: Option<Vec<Value>>, usage: Option<Usage>) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("status".into(), json!(status));
        out.insert("model".into(), json!(self.model));
        out.insert("created".into(), json!(self.created));
        out.insert("updated".into(), json!(rfc3339_seconds(now_ms())));
        if let Some(previous) = &self.previous_interaction_id {
            out.insert("previous_interaction_id".into(), json!(previous));
        }
        if let Some(steps) = steps {
            out.insert("steps".into(), Value::Array(steps));
        }
        if let Some(usage) = usage {
            out.insert("usage".into(), usage_json(usage));
        }
        out.extend(self.echo.clone());
        Value::Object(out)
    }
}

/// The step holding the model's answer.
pub fn output_step(text: String) -> Value {
    json!({"type": "model_output", "content": [{"type": "text", "text": text}]})
}

/// Reaching `max_output_tokens` is `incomplete`, as upstream.
pub fn status_for(finish: FinishReason) -> &'static str {
    if finish == FinishReason::MaxTokens {
        "incomplete"
    } else {
        "completed"
    }
}

/// The Interactions usage object; the same counts as usageMetadata and countTokens.
pub fn usage_json(usage: Usage) -> Value {
    let PromptTokens { text, image } = usage.prompt;
    let mut by_modality = Vec::new();
    if text > 0 {
        by_modality.push(json!({"modality": "text", "tokens": text}));
    }
    if image > 0 {
        by_modality.push(json!({"modality": "image", "tokens": image}));
    }
    json!({
        "total_input_tokens": usage.prompt.total(),
        "total_output_tokens": usage.output,
        "total_thought_tokens": 0,
        "total_tokens": usage.prompt.total() + usage.output,
        "input_tokens_by_modality": by_modality,
        "output_tokens_by_modality": [{"modality": "text", "tokens": usage.output}],
    })
}

//! Interactions request → generateContent request (spec §5.1–5.2): all five `input` forms, `image` items by
//! `data` or `uri`, `system_instruction`, `generation_config` (and `config`, its alias for raw REST callers),
//! `response_format` (current and legacy forms).

use glimpse_core::GlimpseError;
use serde_json::{json, Map, Value};


/// What a create request asks for besides the prompt itself.
pub struct CreateOptions {
    pub model: String,
    pub stream: bool,
    /// Whether to persist the interaction (default true, as upstream).
    pub store: bool,
    pub previous_interaction_id: Option<String>,
}

fn invalid(message: impl Into<String>) -> GlimpseError {
    GlimpseError::invalid(message)
}

fn str_field<'a>(object: &'a Map<String, Value>, snake: &str, camel: &str) -> Option<&'a Value> {
    object.get(snake).or_else(|| object.get(camel)).filter(|v| !v.is_null())
}

pub fn options(object: &Map<String, Value>) -> Result<CreateOptions, GlimpseError> {
    if object.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(GlimpseError::Unimplemented("Background interactions are not supported by this server.".into()));
    }
    if object.get("agent").is_some_and(|v| !v.is_null()) {
        return Err(invalid("Agents are not supported by this server."));
    }
    let flag = |key: &str, default: bool| match object.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("{key} must be a boolean."))),
    };
    let model = object
        .get("model")
        .and_then(Value::as_str)
        .map(|m| m.strip_prefix("models/").unwrap_or(m).to_string())
        .ok_or_else(|| invalid("model is required."))?;
    let previous_interaction_id = match str_field(object, "previous_interaction_id", "previousInteractionId") {
        None => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(invalid("previous_interaction_id must be a string.")),
    };
    Ok(CreateOptions { model, stream: flag("stream", false)?, store: flag("store", true)?, previous_interaction_id })
}

/// `input` (any of the five forms of §5.2) as a list of `user_input` / `model_output` steps whose `content` is
/// always a list of typed items: the form stored and shown by GET, and the form a follow-up turn's history
/// is rebuilt from. Thought steps are dropped (they are not part of the prompt).
pub fn input_steps(input: &Value) -> Result<Vec<Value>, GlimpseError> {
    let user = |content: Vec<Value>| json!({"type": "user_input", "content": content});
    match input {
        Value::String(_) | Value::Object(_) => Ok(vec![user(vec![content_item(input)?])]),
        Value::Array(items) if items.is_empty() => Err(invalid("input must not be empty.")),
        Value::Array(items) => {
            let first = items[0].as_object();
            let is_step = first
                .and_then(|o| o.get("type"))
                .and_then(Value::as_str)
                .is_some_and(|t| matches!(t, "user_input" | "model_output" | "thought"));
            let is_turn = first.is_some_and(|o| o.contains_key("role"));
            if is_step || is_turn {
                items.iter().filter_map(|item| step(item).transpose()).collect()
            } else {
                Ok(vec![user(items.iter().map(content_item).collect::<Result<_, _>>()?)])
            }
        }
        _ => Err(invalid("input must be a string, a content object, or a list of contents, steps or turns.")),
    }
}

/// A step (`user_input` / `model_output`; thoughts are skipped) or a legacy `{role, content}` turn.
fn step(item: &Value) -> Result<Option<Value>, GlimpseError> {
    let object = item.as_object().ok_or_else(|| invalid("Every input step must be an object."))?;
    let kind = match (object.get("type").and_then(Value::as_str), object.get("role").and_then(Value::as_str)) {
        (Some("user_input"), _) | (None, Some("user")) => "user_input",
        (Some("model_output"), _) | (None, Some("model")) => "model_output",
        (Some("thought"), _) => return Ok(None),
        (Some(other), _) => return Err(invalid(format!("Unsupported input step type: {other}"))),
        (None, other) => return Err(invalid(format!("Unsupported turn role: {}", other.unwrap_or("none")))),
    };
    let content = match object.get("content") {
        Some(Value::Array(items)) if !items.is_empty() => items.iter().map(content_item).collect::<Result<_, _>>()?,
        Some(item @ (Value::String(_) | Value::Object(_))) => vec![content_item(item)?],
        _ => return Err(invalid("Every input step needs content.")),
    };
    Ok(Some(json!({"type": kind, "content": content})))
}

/// A content item with its `type` made explicit (a bare string or a `{text}` object is a text item).
fn content_item(item: &Value) -> Result<Value, GlimpseError> {
    match item {
        Value::String(text) => Ok(json!({"type": "text", "text": text})),
        Value::Object(object) if !object.contains_key("type") && object.contains_key("text") => {
            let mut typed = object.clone();
            typed.insert("type".into(), json!("text"));
            Ok(Value::Object(typed))
        }
        Value::Object(_) => Ok(item.clone()),
        _ => Err(invalid("Every content item must be an object.")),
    }
}

/// The generateContent request (as Gemini JSON) for `steps` (history and this turn's input) and the create
/// request's `system_instruction`, `generation_config` (or `config`) and `response_format`.
pub fn generate_request(object: &Map<String, Value>, steps: &[Value]) -> Result<Value, GlimpseError> {
    let contents = steps
        .iter()
        .map(|step| {
            let role = if step["type"] == "model_output" { "model" } else { "user" };
            let empty = Vec::new();
            let parts = step["content"].as_array().unwrap_or(&empty).iter().map(part).collect::<Result<Vec<_>, _>>()?;
            Ok(json!({"role": role, "parts": parts}))
        })
        .collect::<Result<Vec<_>, GlimpseError>>()?;
    let mut request = Map::new();
    request.insert("contents".into(), Value::Array(contents));
    if let Some(system) = str_field(object, "system_instruction", "systemInstruction") {
        let text = system.as_str().ok_or_else(|| invalid("system_instruction must be a string."))?;
        request.insert("systemInstruction".into(), json!({"parts": [{"text": text}]}));
    }
    let config = str_field(object, "generation_config", "generationConfig").or_else(|| object.get("config"));
    let mut generation = generation_config(config)?;
    response_format(object, &mut generation)?;
    request.insert("generationConfig".into(), Value::Object(generation));
    Ok(Value::Object(request))
}

/// A content item → a Gemini part.
fn part(item: &Value) -> Result<Value, GlimpseError> {
    let object = item.as_object().ok_or_else(|| invalid("Every content item must be an object."))?;
    let kind = object.get("type").and_then(Value::as_str).unwrap_or(if object.contains_key("text") { "text" } else { "" });
    match kind {
        "text" => {
            let text = object.get("text").and_then(Value::as_str).ok_or_else(|| invalid("A text item needs text."))?;
            Ok(json!({"text": text}))
        }
        "image" => {
            let mime = str_field(object, "mime_type", "mimeType").cloned();
            let mut part = if let Some(data) = object.get("data") {
                json!({"inlineData": {"data": data, "mimeType": mime}})
            } else if let Some(uri) = object.get("uri") {
                json!({"fileData": {"fileUri": uri, "mimeType": mime}})
            } else {
                return Err(invalid("An image item needs data or uri."));
            };
            if let Some(level) = object.get("resolution").and_then(Value::as_str) {
                part["mediaResolution"] = json!({"level": level});
            }
            Ok(part)
        }
        "document" | "audio" | "video" => Err(invalid(format!("{kind} input is not supported by this server: images and text only."))),
        other => Err(invalid(format!("Unsupported content type: {other:?}"))),
    }
}

fn generation_config(config: Option<&Value>) -> Result<Map<String, Value>, GlimpseError> {
    let mut out = Map::new();
    let Some(config) = config else { return Ok(out) };
    let config = config.as_object().ok_or_else(|| invalid("generation_config must be an object."))?;
    for (snake, camel) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("max_output_tokens", "maxOutputTokens"),
        ("stop_sequences", "stopSequences"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = str_field(config, snake, camel) {
            out.insert(camel.into(), v.clone());
        }
    }
    // thinking_level / thinking_summaries: Qwen2.5-VL has no thinking switch; accepted as a documented no-op.
    Ok(out)
}

/// `response_format`: `{type:"text", mime_type, schema}` (or a list of them), or the legacy bare schema with
/// `response_mime_type`.
fn response_format(object: &Map<String, Value>, generation: &mut Map<String, Value>) -> Result<(), GlimpseError> {
    let legacy_mime = str_field(object, "response_mime_type", "responseMimeType").and_then(Value::as_str);
    let Some(format) = str_field(object, "response_format", "responseFormat") else {
        if let Some(mime) = legacy_mime {
            generation.insert("responseMimeType".into(), json!(mime));
        }
        return Ok(());
    };
    let format = match format {
        Value::Array(items) if items.len() == 1 => &items[0],
        Value::Array(_) => return Err(invalid("Only one response_format is supported.")),
        other => other,
    };
    let format = format.as_object().ok_or_else(|| invalid("response_format must be an object."))?;
    match format.get("type").and_then(Value::as_str) {
        Some("text") => {
            if let Some(mime) = str_field(format, "mime_type", "mimeType").and_then(Value::as_str) {
                generation.insert("responseMimeType".into(), json!(mime));
            }
            if let Some(schema) = format.get("schema") {
                generation.insert("responseJsonSchema".into(), schema.clone());
                generation.entry("responseMimeType").or_insert(json!("application/json"));
            }
        }
        Some(other) if !format.contains_key("properties") => {
            return Err(invalid(format!("response_format type {other:?} is not supported: this server answers with text.")));
        }
        _ => {
            // Legacy: the object is the JSON schema itself.
            generation.insert("responseJsonSchema".into(), Value::Object(format.clone()));
            generation.insert("responseMimeType".into(), json!(legacy_mime.unwrap_or("application/json")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gemini::GenerateContentRequest;

    fn translate(body: Value) -> Result<GenerateContentRequest, GlimpseError> {
        let object = body.as_object().unwrap();
        options(object)?;
        let request = generate_request(object, &input_steps(&object["input"])?)?;
        Ok(crate::body::gemini_from_value(request).unwrap())
    }

    fn parts_of(body: Value) -> Vec<Value> {
        let request = translate(body).unwrap();
        request.contents.iter().map(|c| json!({"role": c.role, "parts": c.parts.len()})).collect()
    }

    #[test]
    fn all_input_forms() {
        let img = json!({"type": "image", "data": "iVBORw0KGgo=", "mime_type": "image/png"});
        assert_eq!(parts_of(json!({"model": "m", "input": "hi"})), vec![json!({"role": "user", "parts": 1})]);
        assert_eq!(parts_of(json!({"model": "m", "input": img})), vec![json!({"role": "user", "parts": 1})]);
        assert_eq!(
            parts_of(json!({"model": "m", "input": [{"type": "text", "text": "a"}, img]})),
            vec![json!({"role": "user", "parts": 2})]
        );
        assert_eq!(
            parts_of(json!({"model": "m", "input": [
                {"type": "user_input", "content": [{"type": "text", "text": "a"}, img]},
                {"type": "thought", "summary": []},
                {"type": "model_output", "content": [{"type": "text", "text": "b"}]},
                {"type": "user_input", "content": [{"text": "c"}]}]})),
            vec![json!({"role": "user", "parts": 2}), json!({"role": "model", "parts": 1}), json!({"role": "user", "parts": 1})]
        );
        assert_eq!(
            parts_of(json!({"model": "m", "input": [{"role": "user", "content": "a"}, {"role": "model", "content": [{"type": "text", "text": "b"}]}]})),
            vec![json!({"role": "user", "parts": 1}), json!({"role": "model", "parts": 1})]
        );
    }

    #[test]
    fn steps_are_normalised_for_storage() {
        assert_eq!(
            input_steps(&json!([{"role": "user", "content": "a"}, {"role": "model", "content": [{"text": "b"}]}])).unwrap(),
            vec![
                json!({"type": "user_input", "content": [{"type": "text", "text": "a"}]}),
                json!({"type": "model_output", "content": [{"text": "b", "type": "text"}]}),
            ]
        );
    }

    #[test]
    fn config_and_response_format() {
        let body = json!({"model": "models/m", "input": "x", "config": {"max_output_tokens": 5},
            "response_format": {"type": "text", "mime_type": "application/json", "schema": {"type": "object"}}});
        assert_eq!(options(body.as_object().unwrap()).unwrap().model, "m");
        let g = translate(body).unwrap().generation_config.unwrap();
        assert_eq!(g.max_output_tokens, Some(5));
        assert_eq!(g.response_mime_type.as_deref(), Some("application/json"));
        assert_eq!(g.response_json_schema, Some(json!({"type": "object"})));
        let legacy = translate(json!({"model": "m", "input": "x", "response_format": {"type": "object", "properties": {}}})).unwrap();
        assert!(legacy.generation_config.unwrap().response_json_schema.is_some());
    }

    #[test]
    fn options_default_to_stored_and_unary() {
        let o = options(json!({"model": "m", "previous_interaction_id": "v1_x"}).as_object().unwrap()).unwrap();
        assert!(o.store && !o.stream);
        assert_eq!(o.previous_interaction_id.as_deref(), Some("v1_x"));
    }

    #[test]
    fn unsupported_things_are_clear_errors() {
        for (body, code) in [
            (json!({"model": "m", "input": "x", "background": true}), glimpse_core::Code::Unimplemented),
            (json!({"model": "m", "input": "x", "stream": "yes"}), glimpse_core::Code::InvalidArgument),
            (json!({"model": "m", "input": [{"type": "audio", "data": "AA=="}]}), glimpse_core::Code::InvalidArgument),
            (json!({"input": "x"}), glimpse_core::Code::InvalidArgument),
        ] {
            assert_eq!(translate(body.clone()).err().unwrap().code(), code, "{body}");
        }
    }
}

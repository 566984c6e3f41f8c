//! Interactions request → generateContent request (spec §5.1–5.2): all five `input` forms, `image` items by
//! `data` or `uri`, `system_instruction`, `generation_config` (and `config`, its alias for raw REST callers),
//! `response_format` (current and legacy forms).

use glimpse_core::GlimpseError;
use serde_json::{json, Map, Value};

use crate::gemini::GenerateContentRequest;
use crate::json_keys;

pub struct Translated {
    pub model: String,
    pub request: GenerateContentRequest,
}

fn invalid(message: impl Into<String>) -> GlimpseError {
    GlimpseError::invalid(message)
}

fn str_field<'a>(object: &'a Map<String, Value>, snake: &str, camel: &str) -> Option<&'a Value> {
    object.get(snake).or_else(|| object.get(camel))
}

pub fn translate(body: &Value) -> Result<Translated, GlimpseError> {
    let object = body.as_object().ok_or_else(|| invalid("The request body must be a JSON object."))?;
    for (key, what) in [("stream", "Streaming interactions"), ("background", "Background interactions")] {
        if object.get(key).and_then(Value::as_bool) == Some(true) {
            return Err(invalid(format!("{what} are not supported by this server yet.")));
        }
    }
    if str_field(object, "previous_interaction_id", "previousInteractionId").is_some_and(|v| !v.is_null()) {
        return Err(invalid("previous_interaction_id is not supported by this server yet: send the whole history as input steps."));
    }
    if object.get("agent").is_some_and(|v| !v.is_null()) {
        return Err(invalid("Agents are not supported by this server."));
    }
    let model = object
        .get("model")
        .and_then(Value::as_str)
        .map(|m| m.strip_prefix("models/").unwrap_or(m).to_string())
        .ok_or_else(|| invalid("model is required."))?;
    let input = object.get("input").ok_or_else(|| invalid("input is required."))?;

    let mut request = Map::new();
    request.insert("contents".into(), Value::Array(contents(input)?));
    if let Some(system) = str_field(object, "system_instruction", "systemInstruction") {
        let text = system.as_str().ok_or_else(|| invalid("system_instruction must be a string."))?;
        request.insert("systemInstruction".into(), json!({"parts": [{"text": text}]}));
    }
    let config = str_field(object, "generation_config", "generationConfig").or_else(|| object.get("config"));
    let mut generation = generation_config(config)?;
    response_format(object, &mut generation)?;
    request.insert("generationConfig".into(), Value::Object(generation));

    let mut value = Value::Object(request);
    json_keys::normalize_gemini(&mut value);
    let request = serde_path_to_error::deserialize(value)
        .map_err(|e| invalid(format!("Invalid interaction request at '{}': {}", e.path(), e.inner())))?;
    Ok(Translated { model, request })
}

/// `input` → Gemini `contents` (§5.2).
fn contents(input: &Value) -> Result<Vec<Value>, GlimpseError> {
    match input {
        Value::String(text) => Ok(vec![json!({"role": "user", "parts": [{"text": text}]})]),
        Value::Object(_) => Ok(vec![json!({"role": "user", "parts": [part(input)?]})]),
        Value::Array(items) if items.is_empty() => Err(invalid("input must not be empty.")),
        Value::Array(items) => {
            let first = items[0].as_object();
            let is_step = first.and_then(|o| o.get("type")).and_then(Value::as_str).is_some_and(|t| t == "user_input" || t == "model_output");
            let is_turn = first.is_some_and(|o| o.contains_key("role"));
            if is_step || is_turn {
                items.iter().filter_map(|item| turn(item).transpose()).collect()
            } else {
                let parts = items.iter().map(part).collect::<Result<Vec<_>, _>>()?;
                Ok(vec![json!({"role": "user", "parts": parts})])
            }
        }
        _ => Err(invalid("input must be a string, a content object, or a list of contents, steps or turns.")),
    }
}

/// A step (`user_input` / `model_output`; thoughts are skipped) or a legacy `{role, content}` turn.
fn turn(item: &Value) -> Result<Option<Value>, GlimpseError> {
    let object = item.as_object().ok_or_else(|| invalid("Every input step must be an object."))?;
    let role = match (object.get("type").and_then(Value::as_str), object.get("role").and_then(Value::as_str)) {
        (Some("user_input"), _) | (None, Some("user")) => "user",
        (Some("model_output"), _) | (None, Some("model")) => "model",
        (Some("thought"), _) => return Ok(None),
        (Some(other), _) => return Err(invalid(format!("Unsupported input step type: {other}"))),
        (None, other) => return Err(invalid(format!("Unsupported turn role: {}", other.unwrap_or("none")))),
    };
    let parts = match object.get("content") {
        Some(Value::String(text)) => vec![json!({"text": text})],
        Some(Value::Array(items)) => items.iter().map(part).collect::<Result<_, _>>()?,
        Some(item @ Value::Object(_)) => vec![part(item)?],
        _ => return Err(invalid("Every input step needs content.")),
    };
    Ok(Some(json!({"role": role, "parts": parts})))
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

    fn parts_of(body: Value) -> Vec<Value> {
        let t = translate(&body).unwrap();
        t.request.contents.iter().map(|c| json!({"role": c.role, "parts": c.parts.len()})).collect()
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
    fn config_and_response_format() {
        let t = translate(&json!({"model": "models/m", "input": "x", "config": {"max_output_tokens": 5},
            "response_format": {"type": "text", "mime_type": "application/json", "schema": {"type": "object"}}})).unwrap();
        assert_eq!(t.model, "m");
        let g = t.request.generation_config.unwrap();
        assert_eq!(g.max_output_tokens, Some(5));
        assert_eq!(g.response_mime_type.as_deref(), Some("application/json"));
        assert_eq!(g.response_json_schema, Some(json!({"type": "object"})));
        let legacy = translate(&json!({"model": "m", "input": "x", "response_format": {"type": "object", "properties": {}}})).unwrap();
        assert!(legacy.request.generation_config.unwrap().response_json_schema.is_some());
    }

    #[test]
    fn unsupported_things_are_clear_400s() {
        for body in [
            json!({"model": "m", "input": "x", "stream": true}),
            json!({"model": "m", "input": "x", "previous_interaction_id": "v1_x"}),
            json!({"model": "m", "input": [{"type": "audio", "data": "AA=="}]}),
            json!({"input": "x"}),
        ] {
            assert_eq!(translate(&body).err().unwrap().code(), glimpse_core::Code::InvalidArgument, "{body}");
        }
    }
}

//! Interactions request → generateContent request (docs/gemini-api.md §5.1–5.2): all five `input` forms,
//! `image` items by `data` or `uri`, `system_instruction`, `generation_config` (and `config`, its alias for raw
//! REST callers), `response_format` (current and legacy forms). The typed Gemini request is built directly, so
//! every mistake is reported in the Interactions request's own terms.

use glimpse_core::GlimpseError;
use serde_json::{json, Map, Value};

use crate::gemini::types::{Content, GenerateContentRequest, GenerationConfig, Part};
use crate::http::bare_model_name;
use crate::lenient;

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
        .map(|m| bare_model_name(m).to_string())
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

/// The generateContent request for `steps` (history and this turn's input) and the create request's
/// `system_instruction`, `generation_config` (or `config`) and `response_format`.
pub fn generate_request(object: &Map<String, Value>, steps: &[Value]) -> Result<GenerateContentRequest, GlimpseError> {
    let contents = steps
        .iter()
        .map(|step| {
            let role = if step["type"] == "model_output" { "model" } else { "user" };
            let items = step["content"].as_array().map(Vec::as_slice).unwrap_or_default();
            Ok(Content::new(role, items.iter().map(part).collect::<Result<_, _>>()?))
        })
        .collect::<Result<Vec<_>, GlimpseError>>()?;
    let system_instruction = match str_field(object, "system_instruction", "systemInstruction") {
        None => None,
        Some(Value::String(text)) => Some(Content::instruction(text.clone())),
        Some(_) => return Err(invalid("system_instruction must be a string.")),
    };
    let config = str_field(object, "generation_config", "generationConfig").or_else(|| object.get("config"));
    let (response_mime_type, response_json_schema) = response_format(object)?;
    let generation = GenerationConfig { response_mime_type, response_json_schema, ..generation_config(config)? };
    Ok(GenerateContentRequest {
        contents,
        system_instruction,
        generation_config: Some(generation),
        ..GenerateContentRequest::default()
    })
}

fn string_field(object: &Map<String, Value>, snake: &str, camel: &str) -> Result<Option<String>, GlimpseError> {
    match str_field(object, snake, camel) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{snake} must be a string."))),
    }
}

/// A content item → a Gemini part.
fn part(item: &Value) -> Result<Part, GlimpseError> {
    let object = item.as_object().ok_or_else(|| invalid("Every content item must be an object."))?;
    let kind = object.get("type").and_then(Value::as_str).unwrap_or(if object.contains_key("text") { "text" } else { "" });
    match kind {
        "text" => {
            let text = object.get("text").and_then(Value::as_str).ok_or_else(|| invalid("A text item needs text."))?;
            Ok(Part::text(text))
        }
        "image" => {
            let mime = string_field(object, "mime_type", "mimeType")?;
            let part = match (object.get("data"), object.get("uri")) {
                (Some(Value::String(data)), _) => {
                    let mime = mime.ok_or_else(|| invalid("An image item with data needs its mime_type (e.g. image/png)."))?;
                    Part::inline(mime, data.clone())
                }
                (Some(_), _) => return Err(invalid("An image item's data must be a base64 string.")),
                (None, Some(Value::String(uri))) => Part::file(uri.clone(), mime),
                (None, Some(_)) => return Err(invalid("An image item's uri must be a string.")),
                (None, None) => return Err(invalid("An image item needs data or uri.")),
            };
            Ok(part.at_resolution(string_field(object, "resolution", "resolution")?))
        }
        "document" | "audio" | "video" => Err(invalid(format!("{kind} input is not supported by this server: images and text only."))),
        other => Err(invalid(format!("Unsupported content type: {other:?}"))),
    }
}

fn generation_config(config: Option<&Value>) -> Result<GenerationConfig, GlimpseError> {
    let Some(config) = config else { return Ok(GenerationConfig::default()) };
    let config = config.as_object().ok_or_else(|| invalid("generation_config must be an object."))?;
    let number = |snake: &str, camel: &str| str_field(config, snake, camel);
    let stop_sequences = match number("stop_sequences", "stopSequences") {
        None => None,
        Some(Value::Array(stops)) => Some(
            lenient::strings(stops).ok_or_else(|| invalid("generation_config.stop_sequences must be a list of strings."))?,
        ),
        Some(_) => return Err(invalid("generation_config.stop_sequences must be a list of strings.")),
    };
    // thinking_level / thinking_summaries: the served families have no thinking switch; accepted as a no-op.
    Ok(GenerationConfig {
        temperature: lenient::field(number("temperature", "temperature"), "generation_config.temperature", lenient::opt_f64)?,
        top_p: lenient::field(number("top_p", "topP"), "generation_config.top_p", lenient::opt_f64)?,
        top_k: lenient::field(number("top_k", "topK"), "generation_config.top_k", lenient::opt_u32)?,
        max_output_tokens: lenient::field(
            number("max_output_tokens", "maxOutputTokens"),
            "generation_config.max_output_tokens",
            lenient::opt_u32,
        )?,
        seed: lenient::field(number("seed", "seed"), "generation_config.seed", lenient::opt_i64)?,
        presence_penalty: lenient::field(
            number("presence_penalty", "presencePenalty"),
            "generation_config.presence_penalty",
            lenient::opt_f64,
        )?,
        frequency_penalty: lenient::field(
            number("frequency_penalty", "frequencyPenalty"),
            "generation_config.frequency_penalty",
            lenient::opt_f64,
        )?,
        stop_sequences,
        ..GenerationConfig::default()
    })
}

/// `response_format`: `{type:"text", mime_type, schema}` (or a list of them), or the legacy bare schema with
/// `response_mime_type`. Returns the response MIME type and JSON schema.
fn response_format(object: &Map<String, Value>) -> Result<(Option<String>, Option<Value>), GlimpseError> {
    let legacy_mime = string_field(object, "response_mime_type", "responseMimeType")?;
    let Some(format) = str_field(object, "response_format", "responseFormat") else { return Ok((legacy_mime, None)) };
    let format = match format {
        Value::Array(items) if items.len() == 1 => &items[0],
        Value::Array(_) => return Err(invalid("Only one response_format is supported.")),
        other => other,
    };
    let format = format.as_object().ok_or_else(|| invalid("response_format must be an object."))?;
    match format.get("type").and_then(Value::as_str) {
        Some("text") => {
            let mime = string_field(format, "mime_type", "mimeType")?;
            match format.get("schema") {
                Some(schema) => Ok((mime.or_else(|| Some("application/json".into())), Some(schema.clone()))),
                None => Ok((mime, None)),
            }
        }
        Some(other) if !format.contains_key("properties") => {
            Err(invalid(format!("response_format type {other:?} is not supported: this server answers with text.")))
        }
        // Legacy: the object is the JSON schema itself.
        _ => Ok((legacy_mime.or_else(|| Some("application/json".into())), Some(Value::Object(format.clone())))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(body: Value) -> Result<GenerateContentRequest, GlimpseError> {
        let object = body.as_object().unwrap();
        options(object)?;
        generate_request(object, &input_steps(&object["input"])?)
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

    #[test]
    fn mistakes_are_named_in_the_interactions_terms() {
        let message = |body: Value| translate(body).err().unwrap().to_string();
        let no_mime = json!({"model": "m", "input": [{"type": "image", "data": "iVBORw0KGgo="}]});
        assert_eq!(message(no_mime), "An image item with data needs its mime_type (e.g. image/png).");
        let hot = json!({"model": "m", "input": "x", "generation_config": {"temperature": "hot"}});
        assert_eq!(message(hot), "generation_config.temperature: 'hot' is not a number");
        let stops = json!({"model": "m", "input": "x", "generation_config": {"stop_sequences": [1]}});
        assert_eq!(message(stops), "generation_config.stop_sequences must be a list of strings.");
    }
}

//! OpenAI chat completion request → Gemini generateContent request (docs/gemini-api.md §6.1), built as the typed
//! request the Gemini surface parses, so it goes through the same conversion and limits; every mistake is
//! reported in the OpenAI request's own terms.

use glimpse_core::GlimpseError;
use serde_json::{json, Map, Value};

use crate::gemini::types::{Content, GenerateContentRequest, GenerationConfig, Part};
use crate::http::bare_model_name;
use crate::lenient;

pub struct ChatOptions {
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with `usage` and no choices.
    pub include_usage: bool,
}

fn invalid(message: impl Into<String>) -> GlimpseError {
    GlimpseError::invalid(message)
}

/// `reasoning_effort` values the Gemini OpenAI layer knows.
const REASONING_EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high"];

pub fn options(request: &Map<String, Value>) -> Result<ChatOptions, GlimpseError> {
    let model = request.get("model").and_then(Value::as_str).ok_or_else(|| invalid("model is required."))?;
    let stream = match request.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream must be a boolean.")),
    };
    let include_usage = request.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true);
    Ok(ChatOptions { model: bare_model_name(model).to_string(), stream, include_usage })
}

/// The Gemini request for a chat completion request.
pub fn generate_request(request: &Map<String, Value>) -> Result<GenerateContentRequest, GlimpseError> {
    let messages = match request.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        _ => return Err(invalid("messages must be a non-empty list.")),
    };
    let mut system = Vec::new();
    let mut contents = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let content = message.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => system.push(text_of(content, index)?),
            "user" => contents.push(Content::new("user", parts(content, index)?)),
            "assistant" => {
                if message.get("tool_calls").is_some_and(|c| !c.is_null()) {
                    return Err(invalid("Tool calls are not supported by this server."));
                }
                if !content.is_null() {
                    contents.push(Content::new("model", vec![Part::text(text_of(content, index)?)]));
                }
            }
            "tool" | "function" => return Err(invalid("Tool messages are not supported by this server.")),
            other => return Err(invalid(format!("messages[{index}].role {other:?} is not one of system, developer, user, assistant."))),
        }
    }
    if request.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty()) {
        return Err(invalid("Tools are not supported by this server."));
    }
    let cached_content = match google_extras(request).and_then(|g| g.get("cached_content")) {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.clone()),
        Some(_) => return Err(invalid("extra_body.google.cached_content must be a string.")),
    };
    Ok(GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then(|| Content::instruction(system.join("\n"))),
        generation_config: Some(generation_config(request)?),
        cached_content,
        ..GenerateContentRequest::default()
    })
}

/// A system or assistant message's text: a string or a list of text parts.
fn text_of(content: &Value, index: usize) -> Result<String, GlimpseError> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Array(items) => items
            .iter()
            .map(|item| match (item.get("type").and_then(Value::as_str), item.get("text").and_then(Value::as_str)) {
                (Some("text") | None, Some(text)) => Ok(text.to_string()),
                _ => Err(invalid(format!("messages[{index}] may hold only text."))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.concat()),
        _ => Err(invalid(format!("messages[{index}].content must be a string or a list of parts."))),
    }
}

/// A user message's parts: text and `image_url` (data URL or http(s) URL).
fn parts(content: &Value, index: usize) -> Result<Vec<Part>, GlimpseError> {
    let items = match content {
        Value::String(text) => return Ok(vec![Part::text(text.as_str())]),
        Value::Array(items) if !items.is_empty() => items,
        _ => return Err(invalid(format!("messages[{index}].content must be a string or a non-empty list of parts."))),
    };
    items
        .iter()
        .map(|item| match item.get("type").and_then(Value::as_str) {
            Some("text") => item
                .get("text")
                .and_then(Value::as_str)
                .map(Part::text)
                .ok_or_else(|| invalid(format!("messages[{index}]: a text part needs text."))),
            Some("image_url") => image_part(item.get("image_url").unwrap_or(&Value::Null), index),
            Some(other @ ("input_audio" | "file")) => {
                Err(invalid(format!("{other} parts are not supported by this server: images and text only.")))
            }
            other => Err(invalid(format!("messages[{index}]: unsupported content part type {other:?}."))),
        })
        .collect()
}

fn image_part(image: &Value, index: usize) -> Result<Part, GlimpseError> {
    // Some clients send the URL as a bare string.
    let (url, detail) = match image {
        Value::String(url) => (url.as_str(), None),
        Value::Object(o) => (
            o.get("url").and_then(Value::as_str).unwrap_or(""),
            o.get("detail").and_then(Value::as_str),
        ),
        _ => ("", None),
    };
    let part = if let Some(data_url) = url.strip_prefix("data:") {
        let (header, data) = data_url
            .split_once(',')
            .ok_or_else(|| invalid(format!("messages[{index}]: the image data URL has no ','.")))?;
        let mime = header
            .strip_suffix(";base64")
            .ok_or_else(|| invalid(format!("messages[{index}]: image data URLs must be base64 (data:<mime>;base64,…).")))?;
        Part::inline(mime.to_string(), data.to_string())
    } else if url.starts_with("http://") || url.starts_with("https://") {
        Part::file(url.to_string(), None)
    } else {
        return Err(invalid(format!("messages[{index}]: image_url.url must be a data: URL or an http(s) URL.")));
    };
    let level = match detail {
        Some("low") => Some("MEDIA_RESOLUTION_LOW"),
        Some("high") => Some("MEDIA_RESOLUTION_HIGH"),
        Some("auto") | None => None,
        Some(other) => return Err(invalid(format!("image_url.detail must be low, high or auto, not {other:?}."))),
    };
    Ok(part.at_resolution(level.map(str::to_string)))
}

/// Gemini's own options: `extra_body.google` (as the docs' Python examples send it) or a top-level `google`.
fn google_extras(request: &Map<String, Value>) -> Option<&Map<String, Value>> {
    request
        .get("extra_body")
        .and_then(|e| e.get("google"))
        .or_else(|| request.get("google"))
        .and_then(Value::as_object)
}

fn generation_config(request: &Map<String, Value>) -> Result<GenerationConfig, GlimpseError> {
    if let Some(n) = request.get("n").filter(|n| !n.is_null()) {
        if n.as_u64() != Some(1) {
            return Err(invalid("n must be 1: this server returns one choice."));
        }
    }
    let (max_name, max) = match request.get("max_completion_tokens").filter(|v| !v.is_null()) {
        Some(max) => ("max_completion_tokens", Some(max)),
        None => ("max_tokens", request.get("max_tokens")),
    };
    let stop_sequences = match request.get("stop") {
        None | Some(Value::Null) => None,
        Some(Value::String(stop)) => Some(vec![stop.clone()]),
        Some(Value::Array(stops)) => {
            Some(lenient::strings(stops).ok_or_else(|| invalid("stop must be a string or a list of strings."))?)
        }
        Some(_) => return Err(invalid("stop must be a string or a list of strings.")),
    };
    let (response_mime_type, response_json_schema) = response_format(request)?;
    Ok(GenerationConfig {
        max_output_tokens: lenient::field(max, max_name, lenient::opt_u32)?,
        temperature: lenient::field(request.get("temperature"), "temperature", lenient::opt_f64)?,
        top_p: lenient::field(request.get("top_p"), "top_p", lenient::opt_f64)?,
        seed: lenient::field(request.get("seed"), "seed", lenient::opt_i64)?,
        presence_penalty: lenient::field(request.get("presence_penalty"), "presence_penalty", lenient::opt_f64)?,
        frequency_penalty: lenient::field(request.get("frequency_penalty"), "frequency_penalty", lenient::opt_f64)?,
        stop_sequences,
        response_mime_type,
        response_json_schema,
        thinking_config: thinking_config(request)?,
        ..GenerationConfig::default()
    })
}

/// Thinking: `reasoning_effort` or Gemini's `thinking_config` (not both), passed on as Gemini's thinkingConfig.
fn thinking_config(request: &Map<String, Value>) -> Result<Option<Value>, GlimpseError> {
    let thinking = google_extras(request).and_then(|g| g.get("thinking_config")).cloned();
    match request.get("reasoning_effort").filter(|v| !v.is_null()) {
        Some(_) if thinking.is_some() => {
            Err(invalid("reasoning_effort and extra_body.google.thinking_config cannot both be set."))
        }
        Some(effort) => {
            let effort = effort.as_str().filter(|e| REASONING_EFFORTS.contains(e)).ok_or_else(|| {
                invalid(format!("reasoning_effort must be one of {}.", REASONING_EFFORTS.join(", ")))
            })?;
            Ok(Some(if effort == "none" { json!({"thinkingBudget": 0}) } else { json!({"thinkingLevel": effort}) }))
        }
        None => Ok(thinking),
    }
}

/// `{"type":"text"}`, `{"type":"json_object"}` or `{"type":"json_schema","json_schema":{name, strict, schema}}`:
/// the response MIME type and JSON schema.
fn response_format(request: &Map<String, Value>) -> Result<(Option<String>, Option<Value>), GlimpseError> {
    let Some(format) = request.get("response_format").filter(|v| !v.is_null()) else { return Ok((None, None)) };
    let json = Some("application/json".to_string());
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok((None, None)),
        Some("json_object") => Ok((json, None)),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .ok_or_else(|| invalid("response_format.json_schema.schema is required."))?;
            Ok((json, Some(schema.clone())))
        }
        other => Err(invalid(format!("response_format.type {other:?} is not one of text, json_object, json_schema."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(body: Value) -> Result<GenerateContentRequest, GlimpseError> {
        generate_request(body.as_object().unwrap())
    }

    #[test]
    fn the_captured_request_maps_to_gemini() {
        let body = json!({"model": "gemini-3-flash-preview",
            "messages": [{"role": "system", "content": "terse"},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]},
                {"role": "assistant", "content": "A cat."},
                {"role": "user", "content": "Sure?"}],
            "max_tokens": 200, "n": 1, "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": true, "schema": {"type": "object"}}},
            "seed": 3, "stop": ["END"], "temperature": 0.2, "top_p": 0.9});
        let r = translate(body).unwrap();
        assert_eq!(r.contents.iter().map(|c| (c.role.clone().unwrap(), c.parts.len())).collect::<Vec<_>>(),
            vec![("user".into(), 3), ("model".into(), 1), ("user".into(), 1)]);
        let image = &r.contents[0].parts[1];
        assert_eq!(image.inline_data.as_ref().unwrap().mime_type.as_deref(), Some("image/png"));
        assert!(image.media_resolution.is_some());
        assert_eq!(r.contents[0].parts[2].file_data.as_ref().unwrap().file_uri, "https://example.com/cat.jpg");
        let g = r.generation_config.unwrap();
        assert_eq!((g.max_output_tokens, g.seed, g.stop_sequences.clone()), (Some(200), Some(3), Some(vec!["END".to_string()])));
        assert_eq!(g.response_json_schema, Some(json!({"type": "object"})));
        assert_eq!(g.thinking_config, Some(json!({"thinkingLevel": "low"})));
        assert_eq!(r.system_instruction.unwrap().parts[0].text.as_deref(), Some("terse"));
    }

    #[test]
    fn max_completion_tokens_wins_and_json_object_is_json_mode() {
        let r = translate(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 9, "max_completion_tokens": 4, "response_format": {"type": "json_object"}})).unwrap();
        let g = r.generation_config.unwrap();
        assert_eq!(g.max_output_tokens, Some(4));
        assert_eq!(g.response_mime_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn unsupported_requests_are_400s() {
        for body in [
            json!({"model": "m", "messages": []}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}),
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "max"}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low",
                   "extra_body": {"google": {"thinking_config": {"thinking_budget": 5}}}}),
        ] {
            assert_eq!(translate(body.clone()).err().unwrap().code(), glimpse_core::Code::InvalidArgument, "{body}");
        }
    }

    #[test]
    fn mistakes_are_named_in_the_openai_terms() {
        let message = |extra: Value| {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            translate(body).err().unwrap().to_string()
        };
        assert_eq!(message(json!({"temperature": "hot"})), "temperature: 'hot' is not a number");
        assert_eq!(message(json!({"max_completion_tokens": -3})), "max_completion_tokens: -3 is out of range");
        assert_eq!(message(json!({"stop": ["a", 2]})), "stop must be a string or a list of strings.");
    }
}

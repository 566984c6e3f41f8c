//! The `/chat/completions` request body: the prepared prompt's messages with each image, already at its planned
//! size, as a lossless PNG data URL where the client put it, and the client's sampling options.

use base64::Engine as _;
use glimpse_backend_mistralrs::{GenerationDefaults, PreparedPrompt};
use glimpse_core::{GlimpseError, OutputConstraint, SamplingOptions};
use image::DynamicImage;
use serde_json::{json, Map, Value};

/// Messages in OpenAI's chat format: a string where a message has no image, else typed parts in the client's
/// order (`text` and `image_url`), split on the family's image placeholder.
pub(crate) fn messages(prepared: &PreparedPrompt, placeholder: &str, images: &[DynamicImage]) -> Result<Vec<Value>, GlimpseError> {
    let mut urls = images.iter().map(png_data_url);
    let mut out = Vec::with_capacity(prepared.messages.len());
    for (role, text) in &prepared.messages {
        let role = role.to_string();
        if !text.contains(placeholder) {
            out.push(json!({"role": role, "content": text}));
            continue;
        }
        let mut parts = Vec::new();
        for (n, piece) in text.split(placeholder).enumerate() {
            if n > 0 {
                let url = urls.next().ok_or_else(|| GlimpseError::Engine("more image placeholders than images".into()))??;
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            if !piece.is_empty() {
                parts.push(json!({"type": "text", "text": piece}));
            }
        }
        out.push(json!({"role": role, "content": parts}));
    }
    Ok(out)
}

/// PNG keeps the planned pixels exactly (a JPEG would move them, and the engine's answer with them); the fast
/// compression level, because the bytes only cross a datacenter link.
fn png_data_url(image: &DynamicImage) -> Result<String, GlimpseError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let rgb = image.to_rgb8();
    let mut png = Vec::with_capacity(rgb.as_raw().len() / 2);
    let encoder = PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Adaptive);
    rgb.write_with_encoder(encoder).map_err(|e| GlimpseError::Engine(format!("PNG encoding failed: {e}")))?;
    Ok(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png)))
}

/// The request body. Options the client left unset fall back to the model folder's generation_config.json (as
/// in-process), and only then to the engine's own defaults (they are left out).
pub(crate) fn chat_request(
    model: &str,
    messages: Vec<Value>,
    sampling: &SamplingOptions,
    defaults: &GenerationDefaults,
    max_tokens: u32,
    constraint: &OutputConstraint,
) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    body.insert("max_tokens".into(), json!(max_tokens));
    let temperature = sampling.temperature.or(match defaults.do_sample {
        Some(false) => Some(0.0),
        _ => defaults.temperature,
    });
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(key.into(), value);
        }
    };
    put("temperature", temperature.map(Value::from));
    put("top_p", sampling.top_p.or(defaults.top_p).map(Value::from));
    put("top_k", sampling.top_k.or(defaults.top_k).map(Value::from));
    put("seed", sampling.seed.map(Value::from));
    put("presence_penalty", sampling.presence_penalty.map(Value::from));
    put("frequency_penalty", sampling.frequency_penalty.map(Value::from));
    put("stop", (!sampling.stop_sequences.is_empty()).then(|| json!(sampling.stop_sequences)));
    put("response_format", response_format(constraint));
    Value::Object(body)
}

/// Constrained decoding through `response_format` (every engine listed in the README takes a JSON schema
/// there). A choice list becomes a schema of one string out of the list; [`unquote_choice`] takes the quotes off.
fn response_format(constraint: &OutputConstraint) -> Option<Value> {
    let schema = match constraint {
        OutputConstraint::None => return None,
        OutputConstraint::JsonSchema(schema) => schema.clone(),
        OutputConstraint::Choice(options) => json!({"type": "string", "enum": options}),
    };
    Some(json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": true}}))
}

/// The answer to a choice-list request as the client expects it: the option itself, not its JSON string.
pub(crate) fn unquote_choice(text: String) -> String {
    serde_json::from_str::<String>(text.trim()).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_left_unset_are_left_out_and_choices_become_a_string_schema() {
        let sampling = SamplingOptions { seed: Some(7), stop_sequences: vec!["END".into()], ..Default::default() };
        let defaults = GenerationDefaults { do_sample: Some(false), ..Default::default() };
        let choice = OutputConstraint::Choice(vec!["cat".into(), "dog".into()]);
        let body = chat_request("m", Vec::new(), &sampling, &defaults, 32, &choice);
        assert_eq!(body["temperature"], json!(0.0));
        assert_eq!(body["seed"], json!(7));
        assert_eq!(body["stop"], json!(["END"]));
        assert!(body.get("top_p").is_none() && body.get("top_k").is_none());
        assert_eq!(body["response_format"]["json_schema"]["schema"]["enum"], json!(["cat", "dog"]));
        assert_eq!(unquote_choice("\"dog\"".into()), "dog");
        assert_eq!(unquote_choice("dog".into()), "dog");
    }
}

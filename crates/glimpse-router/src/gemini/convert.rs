//! Gemini request → `glimpse_core` request.
//!
//! Limits are checked on the raw request first (image count, inline bytes estimated from base64 lengths), so a
//! request over a limit costs no decoding; only then are images decoded, on the blocking pool.

use std::sync::Arc;

use glimpse_core::media::{self, ImageFormat};
use glimpse_core::{
    GenerateRequest, GlimpseError, ImageInput, MediaResolution, OutputConstraint, Part, Prompt, RequestLimits, Role,
    SamplingOptions, Turn,
};
use serde_json::{json, Map, Value};

use super::types::{self, Content, GenerateContentRequest, GenerationConfig, PartMediaResolution};
use crate::lenient;
use crate::remote_media::RemoteMedia;

const MAX_STOP_SEQUENCES: usize = 5;

pub async fn convert_generate_request(
    request: GenerateContentRequest,
    limits: &RequestLimits,
    remote: &RemoteMedia<'_>,
) -> Result<GenerateRequest, GlimpseError> {
    let config = request.generation_config.unwrap_or_default();
    let sampling = sampling_options(&config)?;
    let constraint = output_constraint(&config)?;
    let media_resolution = match &config.media_resolution {
        Some(level) => Some(parse_resolution(level)?),
        None => None,
    };
    let system = match request.system_instruction {
        Some(content) => Some(system_text(content)?),
        None => None,
    };
    let turns = convert_contents(request.contents, limits, remote).await?;
    Ok(GenerateRequest { prompt: Prompt { system, turns, media_resolution }, sampling, constraint, caller: None, priority: Default::default() })
}

/// Converts `contents` (also used by countTokens).
pub async fn convert_contents(
    contents: Vec<Content>,
    limits: &RequestLimits,
    remote: &RemoteMedia<'_>,
) -> Result<Vec<Turn>, GlimpseError> {
    if contents.is_empty() {
        return Err(GlimpseError::invalid("* GenerateContentRequest.contents: contents is not specified"));
    }
    // Decoding megabytes of base64 runs on the parsing pool, as parsing the body did.
    let inline: usize = contents.iter().flat_map(|c| &c.parts).filter_map(|p| p.inline_data.as_ref()).map(|b| b.data.len()).sum();
    let planned_limits = limits.clone();
    let mut plan = crate::body::off_runtime_if_large(inline, move || plan_contents(contents, &planned_limits)).await??;
    load_remote(&mut plan, remote).await?;
    let image_limits = limits.image;
    let turns = glimpse_core::priority::spawn_compute("image header task failed", move || probe_plan(plan, &image_limits)).await?;
    limits.check_request_pixels(&turns)?;
    Ok(turns)
}

/// A part whose image bytes are still unchecked (or, for a reference, not yet loaded).
enum PlannedPart {
    Text(String),
    Image { bytes: Vec<u8>, format: Option<ImageFormat>, resolution: Option<MediaResolution>, field: String },
    Reference { uri: String, resolution: Option<MediaResolution>, field: String },
}

/// Loads File API files and URLs, one after another (a request's references share the per-request limits).
async fn load_remote(plan: &mut [PlannedTurn], remote: &RemoteMedia<'_>) -> Result<(), GlimpseError> {
    for turn in plan.iter_mut() {
        for part in turn.parts.iter_mut() {
            if let PlannedPart::Reference { uri, resolution, field } = part {
                let loaded = remote.load(uri).await?;
                *part = PlannedPart::Image {
                    bytes: loaded.bytes,
                    format: loaded.format,
                    resolution: *resolution,
                    field: std::mem::take(field),
                };
            }
        }
    }
    Ok(())
}

struct PlannedTurn {
    role: Role,
    parts: Vec<PlannedPart>,
}

/// Validates structure and limits, and base64-decodes inline data; no image is decoded yet.
fn plan_contents(contents: Vec<Content>, limits: &RequestLimits) -> Result<Vec<PlannedTurn>, GlimpseError> {
    let mut image_count = 0usize;
    let mut inline_bytes = 0usize;
    for content in &contents {
        for part in &content.parts {
            if let Some(blob) = &part.inline_data {
                image_count += 1;
                inline_bytes += lenient::decoded_len_estimate(&blob.data);
            } else if part.file_data.is_some() {
                image_count += 1;
            }
        }
    }
    if image_count > limits.max_images {
        return Err(GlimpseError::invalid(format!(
            "Too many images in request: {image_count} > {}.",
            limits.max_images
        )));
    }
    // The estimate can exceed the true size by 3 bytes per image; only refuse when the exact size is over.
    if inline_bytes > limits.max_inline_bytes {
        let exact: usize = contents
            .iter()
            .flat_map(|c| c.parts.iter())
            .filter_map(|p| p.inline_data.as_ref())
            .map(|b| b.data.trim_end_matches('=').chars().filter(|c| !c.is_ascii_whitespace()).count() * 3 / 4)
            .sum();
        if exact > limits.max_inline_bytes {
            return Err(GlimpseError::PayloadTooLarge { limit: limits.max_inline_bytes });
        }
    }

    let mut turns = Vec::with_capacity(contents.len());
    for (ci, content) in contents.into_iter().enumerate() {
        let role = parse_role(content.role.as_deref())?;
        if content.parts.is_empty() {
            return Err(GlimpseError::invalid(format!(
                "* GenerateContentRequest.contents[{ci}].parts: contents.parts must not be empty."
            )));
        }
        let mut parts = Vec::with_capacity(content.parts.len());
        for (pi, part) in content.parts.into_iter().enumerate() {
            if part.thought == Some(true) {
                continue; // thought summaries from earlier turns are not model input
            }
            if let Some(planned) = plan_part(part, ci, pi)? {
                parts.push(planned);
            }
        }
        turns.push(PlannedTurn { role, parts });
    }
    Ok(turns)
}

fn plan_part(part: types::Part, ci: usize, pi: usize) -> Result<Option<PlannedPart>, GlimpseError> {
    let resolution = match &part.media_resolution {
        Some(PartMediaResolution::Level(level)) => Some(parse_resolution(level)?),
        Some(PartMediaResolution::Object { level: Some(level), .. }) => Some(parse_resolution(level)?),
        _ => None,
    };
    if let Some(text) = part.text {
        return Ok(Some(PlannedPart::Text(text)));
    }
    if let Some(blob) = part.inline_data {
        let field = format!("contents[{ci}].parts[{pi}].inline_data");
        let mime = blob
            .mime_type
            .ok_or_else(|| GlimpseError::invalid(format!("* GenerateContentRequest.{field}.mime_type: required")))?;
        let format = media::parse_mime(&mime)?;
        let bytes = lenient::decode_base64(&blob.data).map_err(|e| {
            GlimpseError::invalid(format!("Invalid value at '{field}.data' (TYPE_BYTES), Base64 decoding failed: {e}"))
        })?;
        return Ok(Some(PlannedPart::Image { bytes, format: Some(format), resolution, field }));
    }
    if let Some(file) = part.file_data {
        let field = format!("contents[{ci}].parts[{pi}].file_data");
        if file.file_uri.trim().is_empty() {
            return Err(GlimpseError::invalid(format!("* GenerateContentRequest.{field}.file_uri: required")));
        }
        return Ok(Some(PlannedPart::Reference { uri: file.file_uri, resolution, field }));
    }
    if part.function_call.is_some()
        || part.function_response.is_some()
        || part.executable_code.is_some()
        || part.code_execution_result.is_some()
    {
        return Err(GlimpseError::invalid("Function calling and code execution are not supported by this server."));
    }
    // A part that only carries metadata (e.g. a bare mediaResolution) contributes nothing.
    Ok(None)
}

/// Checks every image from its header (format, size limits, orientation); pixels are decoded by the engine, at
/// the size it needs, only when it generates.
fn probe_plan(plan: Vec<PlannedTurn>, limits: &media::ImageLimits) -> Result<Vec<Turn>, GlimpseError> {
    plan.into_iter()
        .map(|turn| {
            let parts = turn
                .parts
                .into_iter()
                .map(|part| match part {
                    PlannedPart::Text(text) => Ok(Part::Text(text)),
                    PlannedPart::Image { bytes, format, resolution, field } => {
                        let source = media::ImageSource::probe(bytes, format, limits).map_err(|e| {
                            GlimpseError::invalid(format!("* GenerateContentRequest.{field}: {e}"))
                        })?;
                        Ok(Part::Image(ImageInput { source: Arc::new(source), resolution }))
                    }
                    PlannedPart::Reference { field, .. } => {
                        Err(GlimpseError::Engine(format!("{field} was not loaded before decoding")))
                    }
                })
                .collect::<Result<Vec<_>, GlimpseError>>()?;
            Ok(Turn { role: turn.role, parts })
        })
        .collect()
}

fn parse_role(role: Option<&str>) -> Result<Role, GlimpseError> {
    match role.map(|r| r.trim().to_ascii_lowercase()) {
        None => Ok(Role::User),
        Some(r) if r.is_empty() || r == "user" => Ok(Role::User),
        Some(r) if r == "model" => Ok(Role::Model),
        Some(r) => Err(GlimpseError::invalid(format!("Please use a valid role: user, model. Got: {r}"))),
    }
}

fn parse_resolution(level: &str) -> Result<MediaResolution, GlimpseError> {
    MediaResolution::parse(level).ok_or_else(|| {
        GlimpseError::invalid(format!("Invalid value for mediaResolution: \"{level}\""))
    })
}

pub fn system_text(content: Content) -> Result<String, GlimpseError> {
    let mut text = String::new();
    for part in content.parts {
        match part.text {
            Some(t) => text.push_str(&t),
            None => return Err(GlimpseError::invalid("systemInstruction may only contain text parts.")),
        }
    }
    Ok(text)
}

fn sampling_options(config: &GenerationConfig) -> Result<SamplingOptions, GlimpseError> {
    if let Some(t) = config.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(GlimpseError::invalid(format!("temperature must be in [0.0, 2.0], got {t}")));
        }
    }
    if let Some(p) = config.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(GlimpseError::invalid(format!("topP must be in [0.0, 1.0], got {p}")));
        }
    }
    if let Some(n) = config.candidate_count {
        if n > 1 {
            return Err(GlimpseError::invalid(format!(
                "candidateCount must be 1 on this server (got {n}): multiple candidates are not supported."
            )));
        }
    }
    let stop_sequences = config.stop_sequences.clone().unwrap_or_default();
    if stop_sequences.len() > MAX_STOP_SEQUENCES {
        return Err(GlimpseError::invalid(format!(
            "stopSequences accepts at most {MAX_STOP_SEQUENCES} sequences, got {}",
            stop_sequences.len()
        )));
    }
    if let Some(modalities) = &config.response_modalities {
        if let Some(other) = modalities.iter().find(|m| !m.eq_ignore_ascii_case("TEXT")) {
            return Err(GlimpseError::invalid(format!(
                "Response modality {other} is not supported: this server only generates TEXT."
            )));
        }
    }
    Ok(SamplingOptions {
        temperature: config.temperature,
        top_p: config.top_p,
        top_k: config.top_k,
        seed: config.seed.map(|s| s as u64),
        max_output_tokens: config.max_output_tokens.filter(|&n| n > 0),
        stop_sequences,
        presence_penalty: config.presence_penalty.map(|v| v as f32),
        frequency_penalty: config.frequency_penalty.map(|v| v as f32),
    })
}

fn output_constraint(config: &GenerationConfig) -> Result<OutputConstraint, GlimpseError> {
    let mime = config.response_mime_type.as_deref().map(|m| m.trim().to_ascii_lowercase());
    if config.response_schema.is_some() && config.response_json_schema.is_some() {
        return Err(GlimpseError::invalid(
            "responseSchema and responseJsonSchema cannot both be set; use one of them.",
        ));
    }
    match mime.as_deref() {
        None | Some("") | Some("text/plain") => {
            if config.response_schema.is_some() || config.response_json_schema.is_some() {
                return Err(GlimpseError::invalid(
                    "responseSchema requires responseMimeType to be application/json or text/x.enum.",
                ));
            }
            Ok(OutputConstraint::None)
        }
        Some("application/json") => {
            let schema = match (&config.response_schema, &config.response_json_schema) {
                (Some(s), _) => openapi_to_json_schema(s)?,
                (_, Some(s)) => s.clone(),
                _ => json!({}),
            };
            glimpse_core::output_schema::check_json_schema(&schema)?;
            Ok(OutputConstraint::JsonSchema(schema))
        }
        Some("text/x.enum") => {
            let values = config
                .response_schema
                .as_ref()
                .and_then(|s| s.get("enum"))
                .and_then(Value::as_array)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| GlimpseError::invalid("text/x.enum needs a responseSchema with an enum."))?;
            Ok(OutputConstraint::Choice(values.iter().filter_map(Value::as_str).map(String::from).collect()))
        }
        Some(other) => Err(GlimpseError::invalid(format!(
            "Unsupported response mime type: {other}. Use text/plain, application/json or text/x.enum."
        ))),
    }
}

/// Gemini's OpenAPI-subset `Schema` → JSON Schema for the constrained decoder.
pub fn openapi_to_json_schema(schema: &Value) -> Result<Value, GlimpseError> {
    let Value::Object(obj) = schema else {
        return Err(GlimpseError::invalid("responseSchema must be an object."));
    };
    let mut out = Map::new();
    let nullable = obj.get("nullable").and_then(Value::as_bool).unwrap_or(false);
    for (key, value) in obj {
        match key.as_str() {
            "type" => {
                let t = value
                    .as_str()
                    .ok_or_else(|| GlimpseError::invalid("responseSchema.type must be a string."))?
                    .to_ascii_lowercase();
                let t = t.strip_prefix("type_").unwrap_or(&t).to_string();
                if !["string", "number", "integer", "boolean", "array", "object", "null"].contains(&t.as_str()) {
                    return Err(GlimpseError::invalid(format!("Unsupported responseSchema type: {value}")));
                }
                out.insert("type".into(), if nullable && t != "null" { json!([t, "null"]) } else { json!(t) });
            }
            "properties" => {
                let props = value
                    .as_object()
                    .ok_or_else(|| GlimpseError::invalid("responseSchema.properties must be an object."))?;
                let mut converted = Map::new();
                let order: Vec<String> = obj
                    .get("propertyOrdering")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                    .unwrap_or_default();
                for name in order.iter().filter(|n| props.contains_key(*n)) {
                    converted.insert(name.clone(), openapi_to_json_schema(&props[name])?);
                }
                for (name, prop) in props.iter().filter(|(n, _)| !order.contains(n)) {
                    converted.insert(name.clone(), openapi_to_json_schema(prop)?);
                }
                out.insert("properties".into(), Value::Object(converted));
                // Gemini's Schema has no additionalProperties: an object has exactly the listed properties.
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            "items" => {
                out.insert("items".into(), openapi_to_json_schema(value)?);
            }
            "anyOf" => {
                let alts = value
                    .as_array()
                    .ok_or_else(|| GlimpseError::invalid("responseSchema.anyOf must be a list."))?
                    .iter()
                    .map(openapi_to_json_schema)
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert("anyOf".into(), Value::Array(alts));
            }
            "minItems" | "maxItems" | "minLength" | "maxLength" | "minProperties" | "maxProperties" => {
                let n = match value {
                    Value::String(s) => s.parse::<u64>().ok(),
                    Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
                    _ => None,
                }
                .ok_or_else(|| GlimpseError::invalid(format!("responseSchema.{key} must be an integer.")))?;
                out.insert(key.clone(), json!(n));
            }
            "enum" | "required" | "minimum" | "maximum" | "pattern" | "title" | "description" | "format" => {
                out.insert(key.clone(), value.clone());
            }
            // Schema annotations with no effect on decoding.
            _ => {}
        }
    }
    if let Some(Value::String(format)) = out.get("format") {
        // Gemini's `format: enum` marks a string enum; JSON Schema has no such format.
        if format == "enum" {
            out.remove("format");
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_captured_pydantic_schema() {
        let schema = json!({"type":"ARRAY","title":"Placeholder","items":{"type":"OBJECT","properties":{
            "label":{"type":"STRING"},"box_2d":{"type":"ARRAY","items":{"type":"INTEGER"},"maxItems":"4"},
            "mask":{"type":"STRING","nullable":true}},"required":["box_2d","label"],
            "propertyOrdering":["box_2d","label","mask"]}});
        let out = openapi_to_json_schema(&schema).unwrap();
        assert_eq!(out["type"], "array");
        let item = &out["items"];
        assert_eq!(item["properties"]["box_2d"]["maxItems"], 4);
        assert_eq!(item["properties"]["mask"]["type"], json!(["string", "null"]));
        let keys: Vec<&String> = item["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["box_2d", "label", "mask"]);
    }

    #[test]
    fn rejects_two_schemas() {
        let config = GenerationConfig {
            response_mime_type: Some("application/json".into()),
            response_schema: Some(json!({"type":"STRING"})),
            response_json_schema: Some(json!({"type":"string"})),
            ..Default::default()
        };
        assert!(output_constraint(&config).is_err());
    }

    #[tokio::test]
    async fn file_references_without_a_file_store_get_the_real_apis_error() {
        let remote = RemoteMedia { files: None, fetcher: None, project: "p" };
        let err = remote.load("https://generativelanguage.googleapis.com/v1beta/files/abc123").await.err().unwrap();
        assert_eq!(err.to_string(), "You do not have permission to access the File abc123 or it may not exist.");
    }
}

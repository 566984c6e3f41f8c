//! Gemini request bodies, after key normalisation to camelCase. Unknown fields are ignored (newer SDKs send
//! fields this server does not implement); enums arrive as strings and are parsed case-insensitively later.

use serde::Deserialize;
use serde_json::Value;

use crate::lenient;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    #[serde(default)]
    pub contents: Vec<Content>,
    pub system_instruction: Option<Content>,
    pub generation_config: Option<GenerationConfig>,
    /// Accepted and not applied (the served models have no safety classifiers); still type-checked.
    #[serde(default)]
    #[allow(dead_code)]
    pub safety_settings: Vec<Value>,
    pub cached_content: Option<String>,
}

/// countTokens takes either `{contents}` or `{generateContentRequest: {...}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensRequest {
    #[serde(default)]
    pub contents: Vec<Content>,
    pub generate_content_request: Option<GenerateContentRequest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    pub role: Option<String>,
    #[serde(default)]
    pub parts: Vec<Part>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    pub text: Option<String>,
    pub inline_data: Option<Blob>,
    pub file_data: Option<FileData>,
    pub media_resolution: Option<PartMediaResolution>,
    pub thought: Option<bool>,
    pub function_call: Option<Value>,
    pub function_response: Option<Value>,
    pub executable_code: Option<Value>,
    pub code_execution_result: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    pub mime_type: Option<String>,
    #[serde(default)]
    pub data: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    /// The stored file's own type is what counts; the client's copy is parsed, not trusted.
    #[allow(dead_code)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub file_uri: String,
}

/// Per-part resolution: `{level, numTokens?}`; some clients send the bare level string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PartMediaResolution {
    Level(String),
    Object {
        level: Option<String>,
        /// Parsed for its type; the level decides the token budget.
        #[serde(default, rename = "numTokens", deserialize_with = "lenient::opt_u32")]
        #[allow(dead_code)]
        num_tokens: Option<u32>,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub temperature: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub top_p: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub top_k: Option<u32>,
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub candidate_count: Option<u32>,
    #[serde(default, deserialize_with = "lenient::opt_u32")]
    pub max_output_tokens: Option<u32>,
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub seed: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub presence_penalty: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub frequency_penalty: Option<f64>,
    pub response_mime_type: Option<String>,
    pub response_schema: Option<Value>,
    pub response_json_schema: Option<Value>,
    pub response_modalities: Option<Vec<String>>,
    pub media_resolution: Option<String>,
    /// Accepted with no effect: none of the served families has a thinking switch.
    #[allow(dead_code)]
    pub thinking_config: Option<Value>,
}

/// Constructors for the Interactions and OpenAI translations, which build requests directly (their clients'
/// mistakes are reported in their own terms before anything reaches the Gemini conversion).
impl Content {
    pub fn new(role: &str, parts: Vec<Part>) -> Content {
        Content { role: Some(role.to_string()), parts }
    }

    /// A system instruction: one text part, no role.
    pub fn instruction(text: String) -> Content {
        Content { role: None, parts: vec![Part::text(text)] }
    }
}

impl Part {
    pub fn text(text: impl Into<String>) -> Part {
        Part { text: Some(text.into()), ..Part::default() }
    }

    /// Base64 `data` of an image of type `mime_type`.
    pub fn inline(mime_type: String, data: String) -> Part {
        Part { inline_data: Some(Blob { mime_type: Some(mime_type), data }), ..Part::default() }
    }

    /// An image by URI (a File API URI or an http(s) URL).
    pub fn file(file_uri: String, mime_type: Option<String>) -> Part {
        Part { file_data: Some(FileData { mime_type, file_uri }), ..Part::default() }
    }

    /// With a per-part `media_resolution` level (`MEDIA_RESOLUTION_LOW` …).
    pub fn at_resolution(self, level: Option<String>) -> Part {
        Part { media_resolution: level.map(PartMediaResolution::Level), ..self }
    }
}

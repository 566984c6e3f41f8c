//! Gemini response bodies (proto JSON: lowerCamelCase, zero/empty fields omitted).

use glimpse_core::{FinishReason, ModelInfo, PromptTokens, Usage};
use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    pub candidates: Vec<Candidate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    pub model_version: String,
    pub response_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub content: ContentOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<&'static str>,
    pub index: u32,
}

#[derive(Debug, Serialize)]
pub struct ContentOut {
    pub role: &'static str,
    pub parts: Vec<TextPart>,
}

#[derive(Debug, Serialize)]
pub struct TextPart {
    pub text: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModalityTokenCount {
    pub modality: &'static str,
    pub token_count: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    pub prompt_token_count: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub candidates_token_count: u32,
    pub total_token_count: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub cached_content_token_count: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompt_tokens_details: Vec<ModalityTokenCount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates_tokens_details: Vec<ModalityTokenCount>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Per-modality prompt counts, omitting modalities with no tokens.
pub fn modality_details(prompt: PromptTokens) -> Vec<ModalityTokenCount> {
    [("TEXT", prompt.text), ("IMAGE", prompt.image)]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(modality, token_count)| ModalityTokenCount { modality, token_count })
        .collect()
}

impl From<Usage> for UsageMetadata {
    fn from(usage: Usage) -> Self {
        UsageMetadata {
            prompt_token_count: usage.prompt.total(),
            candidates_token_count: usage.output,
            total_token_count: usage.prompt.total() + usage.output,
            cached_content_token_count: usage.cached_prompt,
            prompt_tokens_details: modality_details(usage.prompt),
            candidates_tokens_details: if usage.output > 0 {
                vec![ModalityTokenCount { modality: "TEXT", token_count: usage.output }]
            } else {
                Vec::new()
            },
        }
    }
}

pub fn finish_reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "STOP",
        FinishReason::MaxTokens => "MAX_TOKENS",
        FinishReason::Other => "OTHER",
    }
}

impl GenerateContentResponse {
    /// One candidate with `text`; `finish` and `usage` are set on the last (or only) chunk.
    pub fn text(
        text: String,
        finish: Option<FinishReason>,
        usage: Option<Usage>,
        model_version: &str,
        response_id: &str,
    ) -> Self {
        GenerateContentResponse {
            candidates: vec![Candidate {
                content: ContentOut { role: "model", parts: vec![TextPart { text }] },
                finish_reason: finish.map(finish_reason_name),
                index: 0,
            }],
            usage_metadata: usage.map(UsageMetadata::from),
            model_version: model_version.to_string(),
            response_id: response_id.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensResponse {
    pub total_tokens: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub cached_content_token_count: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompt_tokens_details: Vec<ModalityTokenCount>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelResource {
    pub name: String,
    pub base_model_id: String,
    pub version: &'static str,
    pub display_name: String,
    pub description: String,
    pub input_token_limit: u32,
    pub output_token_limit: u32,
    pub supported_generation_methods: Vec<&'static str>,
    pub temperature: f64,
    pub max_temperature: f64,
    pub top_p: f64,
    pub top_k: u32,
    pub thinking: bool,
}

impl ModelResource {
    /// `name` is what the client addresses the model as (its id or an alias).
    pub fn new(name: &str, info: &ModelInfo, note: &str) -> Self {
        ModelResource {
            name: format!("models/{name}"),
            base_model_id: info.id.clone(),
            version: "001",
            display_name: info.display_name.clone(),
            description: format!("{}{note}", info.description),
            input_token_limit: info.input_token_limit,
            output_token_limit: info.output_token_limit,
            supported_generation_methods: vec![
                "generateContent",
                "streamGenerateContent",
                "countTokens",
                "batchGenerateContent",
                "createCachedContent",
            ],
            temperature: 1.0,
            max_temperature: 2.0,
            top_p: 0.95,
            top_k: 64,
            thinking: false,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListModelsResponse {
    pub models: Vec<ModelResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

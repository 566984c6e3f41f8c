//! [`UpstreamEngine`]: the [`Engine`] trait on a model an OpenAI-compatible engine serves.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use glimpse_backend_mistralrs::{no_mask_model, to_gemini_detections, GenerationDefaults, LocalProcessor};
use glimpse_core::grounding::{self, Grounded, MaskModel};
use glimpse_core::media::PixelCache;
use glimpse_core::{Engine, GenerateRequest, GenerationStream, GlimpseError, ModelInfo, OutputConstraint, Prompt, PromptTokens};

use crate::body::{chat_request, messages, unquote_choice};
use crate::failure;

/// One model served by an upstream engine.
#[derive(Clone)]
pub struct UpstreamConfig {
    /// What clients call the model.
    pub name: String,
    /// The engine's OpenAI-compatible base URL, e.g. `http://10.0.0.5:8000/v1`.
    pub base_url: url::Url,
    /// The id the engine knows the model by.
    pub upstream_model: String,
    /// Sent as `Authorization: Bearer …`.
    pub api_key: Option<String>,
    /// Upper bound on output tokens per request (also the advertised `outputTokenLimit`).
    pub max_output_tokens: u32,
    /// Requests sent to the engine at once; more wait in Glimpse's admission queue. The engine batches them.
    pub max_concurrent: usize,
    /// Longest wait for the engine's next byte (connecting included) before the request fails with 504.
    pub read_timeout: Duration,
    /// Detection prompts get the family's box schema and their boxes rewritten into Gemini's `box_2d`.
    pub grounding: bool,
    /// Send schemas and choice lists as `response_format` (constrained decoding). Off for an engine that cannot
    /// constrain: the model's own answer is then parsed (detections) or passed on as written.
    pub structured_output: bool,
    pub mask_model: Option<Arc<dyn MaskModel>>,
    pub pixel_cache: Arc<PixelCache>,
}

pub struct UpstreamEngine {
    processor: Arc<LocalProcessor>,
    defaults: GenerationDefaults,
    config: UpstreamConfig,
    client: reqwest::Client,
    info: ModelInfo,
}

/// How long `/readyz` waits for the engine's `GET /models`.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

impl UpstreamEngine {
    /// Reads the processor folder; the engine is not contacted (it may start after Glimpse: `/readyz` says when
    /// it answers).
    pub fn new(processor_dir: &Path, config: UpstreamConfig) -> anyhow::Result<UpstreamEngine> {
        let processor = LocalProcessor::open(processor_dir)?;
        let client = reqwest::Client::builder()
            // Engines are reached directly: environment proxies are for the outside world.
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(config.read_timeout)
            .build()?;
        let folder = &processor.folder;
        let context = folder.max_position_embeddings;
        let info = ModelInfo {
            id: config.name.clone(),
            display_name: format!("{} ({} on an upstream engine)", config.upstream_model, folder.family.name()),
            description: format!(
                "{} model {} served by an OpenAI-compatible engine; images and tokens prepared by Glimpse.",
                folder.family.name(),
                config.upstream_model
            ),
            family: folder.family.name().to_string(),
            input_token_limit: context,
            output_token_limit: config.max_output_tokens.min(context),
            concurrency: config.max_concurrent,
        };
        let defaults = GenerationDefaults::from_generation_config(&folder.generation_config);
        Ok(UpstreamEngine { processor: Arc::new(processor), defaults, config, client, info })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url.as_str().trim_end_matches('/'))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }
}

#[async_trait]
impl Engine for UpstreamEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn count_tokens(&self, prompt: &Prompt) -> Result<PromptTokens, GlimpseError> {
        self.processor.count(&self.processor.prepare(prompt)?)
    }

    async fn ready(&self) -> Result<(), GlimpseError> {
        let request = self.authorized(self.client.get(self.endpoint("models")).timeout(READY_TIMEOUT));
        let name = &self.info.id;
        let response = request.send().await.map_err(|e| failure::transport(name, &e))?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(failure::status(name, status, &response.bytes().await.unwrap_or_default()));
        }
        Ok(())
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerationStream, GlimpseError> {
        let prompt = &request.prompt;
        let grounded = Grounded::of(prompt).filter(|_| self.config.grounding && prompt.subject_image().is_some());
        let masks = if grounded == Some(Grounded::Boxes) && grounding::wants_masks(prompt) {
            Some(self.config.mask_model.clone().ok_or_else(no_mask_model)?)
        } else {
            None
        };
        let prepared = Arc::new(self.processor.prepare(prompt)?);
        let prompt_tokens = self.processor.count(&prepared)?;
        let max_tokens = self.info.output_budget(prompt_tokens, request.sampling.max_output_tokens)?;
        let convention = self.processor.family().box_convention();
        let subject = prompt.subject_image().filter(|_| grounded.is_some());
        let geometry = subject.and_then(|(index, _)| prepared.image_geometry(index));
        let constraint = if self.config.structured_output {
            request.constraint.clone().or_detection_schema(geometry.zip(grounded).map(|(image, kind)| convention.schema(kind, image)))
        } else {
            OutputConstraint::None
        };
        let images = {
            let (prepared, cache) = (prepared.clone(), self.config.pixel_cache.clone());
            glimpse_core::priority::spawn_compute("image preparation failed", move || prepared.render_images(&cache)).await?
        };
        let messages = messages(&prepared, self.processor.family().image_placeholder(), &images)?;
        drop(images);
        let body = chat_request(&self.config.upstream_model, messages, &request.sampling, &self.defaults, max_tokens, &constraint);
        let body = serde_json::to_vec(&body).map_err(|e| GlimpseError::Engine(e.to_string()))?;
        let http = self
            .authorized(self.client.post(self.endpoint("chat/completions")))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let name = &self.info.id;
        let response = http.send().await.map_err(|e| failure::transport(name, &e))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.bytes().await.unwrap_or_default();
            return Err(failure::status(name, status, &body));
        }
        let stream = crate::stream::events(response, name.clone(), self.processor.clone(), prompt_tokens);
        Ok(match (geometry.zip(grounded), &constraint) {
            (Some((geometry, kind)), _) => {
                let masks = masks.zip(subject.map(|(_, input)| input.source.clone()));
                to_gemini_detections(stream, convention, kind, geometry, masks)
            }
            (None, OutputConstraint::Choice(_)) => grounding::buffer_and_convert(stream, |text| async move { Ok(unquote_choice(text)) }),
            (None, _) => stream,
        })
    }
}

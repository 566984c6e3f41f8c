//! [`MistralRsEngine`]: the [`Engine`] trait on a mistralrs multimodal model.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use either::Either;
use futures::StreamExt;
use glimpse_core::grounding::{self, BoxConvention, ImageGeometry, MaskModel};
use glimpse_core::media::{ImageSource, PixelCache};
use glimpse_core::{
    Engine, FinishReason, GenerateRequest, GenerationEvent, GenerationStream, GlimpseError, ModelInfo, OutputConstraint,
    Prompt, PromptTokens, Usage,
};
use indexmap::IndexMap;
use mistralrs::{
    Constraint, IsqType, MessageContent, Model, ModelDType, MultimodalModelBuilder, NormalRequest, Request, RequestMessage,
    Response,
};
use mistralrs_core::TokenizationRequest;
use tempfile::TempDir;
use tokio::sync::mpsc;

use crate::model_folder::ModelFolder;
use crate::prompt_builder::{prepare, PreparedPrompt};
use crate::sampling::{sampling_params, GenerationDefaults};

#[derive(Clone)]
pub struct LoadOptions {
    /// The name clients address the model by; default: the folder's name.
    pub name: Option<String>,
    /// Run on CPU even when a GPU build finds a device.
    pub force_cpu: bool,
    /// Sequences the engine batches together.
    pub max_num_seqs: usize,
    /// Upper bound on output tokens per request (also the advertised `outputTokenLimit`).
    pub max_output_tokens: u32,
    /// Where the staged model folder is written.
    pub staging_root: PathBuf,
    /// Weight and activation dtype; `None` picks float32 on CPU (mistralrs's own "auto" picks bf16 there,
    /// which is slower on most CPUs and costs accuracy) and mistralrs's choice on a GPU.
    pub dtype: Option<ModelDType>,
    /// In-situ quantisation of the weights at load time (e.g. Q8_0, Q4K), for CPUs short of memory or speed.
    pub isq: Option<IsqType>,
    /// Detection prompts (`box_2d`) get the family's native box schema and their boxes rewritten into Gemini's
    /// format (see `glimpse_core::grounding`); off: answers pass through as the model wrote them.
    pub grounding: bool,
    /// Fills `mask` for segmentation prompts; without one they are refused with a clear error.
    pub mask_model: Option<Arc<dyn MaskModel>>,
    /// Images at their planned sizes, shared with the server's other models (`--image-cache-bytes`).
    pub pixel_cache: Arc<PixelCache>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            name: None,
            force_cpu: false,
            max_num_seqs: 16,
            max_output_tokens: 8192,
            staging_root: std::env::temp_dir().join("glimpse-staged"),
            dtype: None,
            isq: None,
            grounding: true,
            mask_model: None,
            pixel_cache: Arc::new(PixelCache::new(0)),
        }
    }
}

pub struct MistralRsEngine {
    pub(crate) inner: Arc<Inner>,
    info: ModelInfo,
}

pub(crate) struct Inner {
    folder: ModelFolder,
    /// Removed from disk when the engine is dropped.
    staged: TempDir,
    options: LoadOptions,
    defaults: GenerationDefaults,
    model: RwLock<Arc<Model>>,
    reloading: AtomicBool,
    /// The id of the family's image token (what usage counts as IMAGE), looked up once at load.
    image_token_id: u32,
}

async fn build_model(staged: &Path, options: &LoadOptions) -> anyhow::Result<Model> {
    // The hub is never reachable from a model folder; make sure nothing tries.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let mut builder = MultimodalModelBuilder::new(staged.to_string_lossy())
        .with_dtype(options.dtype.unwrap_or(if options.force_cpu || !cfg!(feature = "cuda") {
            ModelDType::F32
        } else {
            ModelDType::Auto
        }))
        .with_max_num_seqs(options.max_num_seqs)
        // mistralrs 0.8.1's prefix cache reuses a cached prompt without its images: an identical second
        // request with an image was answered as if it had none. Off until that is fixed upstream.
        .with_prefix_cache_n(None);
    if options.force_cpu {
        builder = builder.with_force_cpu();
    }
    if let Some(isq) = options.isq {
        builder = builder.with_isq(isq);
    }
    builder.build().await
}

impl MistralRsEngine {
    pub async fn load(dir: &Path, options: LoadOptions) -> anyhow::Result<Self> {
        let folder = ModelFolder::open(dir)?;
        let staged = folder.stage(&options.staging_root)?;
        let model = build_model(staged.path(), &options).await?;
        let image_token = folder.family.image_token();
        let image_token_id = match model.tokenize(Either::Right(image_token.to_string()), None, false, false, None).await?[..] {
            [id] => id,
            _ => anyhow::bail!("the tokenizer has no single token for the image token {image_token}"),
        };
        let defaults = GenerationDefaults::from_generation_config(&folder.generation_config);
        let context = folder.max_position_embeddings;
        let info = ModelInfo {
            id: options.name.clone().unwrap_or_else(|| folder.id.clone()),
            display_name: format!("{} (local {})", folder.id, folder.family.name()),
            description: format!(
                "Local {} model served from {} by mistralrs{}.",
                folder.family.name(),
                folder.dir.display(),
                options.isq.map(|q| format!(", weights quantised in place to {q:?}")).unwrap_or_default()
            ),
            family: folder.family.name().to_string(),
            input_token_limit: context,
            output_token_limit: options.max_output_tokens.min(context),
        };
        let inner = Inner {
            folder,
            staged,
            options,
            defaults,
            model: RwLock::new(Arc::new(model)),
            reloading: AtomicBool::new(false),
            image_token_id,
        };
        Ok(MistralRsEngine { inner: Arc::new(inner), info })
    }

    /// Whether the grounding adapter handles this prompt: it is on, the prompt asks for `box_2d` and has an image.
    fn is_detection(&self, prompt: &Prompt) -> bool {
        self.inner.options.grounding && grounding::is_detection_prompt(prompt) && prompt.images().next().is_some()
    }

    /// Messages and image plans; no pixel is decoded.
    pub(crate) fn prepare(&self, prompt: &Prompt) -> Result<PreparedPrompt, GlimpseError> {
        prepare(prompt, &self.inner.folder.family)
    }

    /// The prompt's images at their planned sizes, off the async threads (decoding and resizing are CPU work).
    pub(crate) async fn render_images(&self, prepared: &Arc<PreparedPrompt>) -> Result<Vec<image::DynamicImage>, GlimpseError> {
        if prepared.plans.is_empty() {
            return Ok(Vec::new());
        }
        let (prepared, inner) = (prepared.clone(), self.inner.clone());
        tokio::task::spawn_blocking(move || prepared.render_images(&inner.options.pixel_cache))
            .await
            .map_err(|e| GlimpseError::Engine(format!("image preparation failed: {e}")))?
    }

    /// Counts the prompt as the engine will see it: the chat template applied, then each image placeholder
    /// expanded the way the family's processor expands it, then tokenized again (which is what mistralrs's
    /// input processors do).
    async fn count_prepared(&self, prepared: &PreparedPrompt) -> Result<PromptTokens, GlimpseError> {
        let model = self.inner.model();
        let failed = |e| self.inner.engine_failure(format!("tokenization failed: {e}"));
        let family = &self.inner.folder.family;
        let ids = self.inner.tokenize_messages(prepared.engine_messages()).await?;
        if prepared.plans.is_empty() {
            return Ok(PromptTokens { text: ids.len() as u32, image: 0 });
        }
        let templated = model.detokenize(ids, false).await.map_err(failed)?;
        let placeholder = family.image_placeholder();
        let pieces: Vec<&str> = templated.split(placeholder).collect();
        if pieces.len() != prepared.plans.len() + 1 {
            return Err(GlimpseError::Engine(format!(
                "the chat template placed {} image placeholders for {} images",
                pieces.len() - 1,
                prepared.plans.len()
            )));
        }
        let mut expanded = String::with_capacity(templated.len());
        for (piece, plan) in pieces.iter().zip(&prepared.plans) {
            expanded.push_str(piece);
            expanded.push_str(&family.expand_placeholder(plan));
        }
        expanded.push_str(pieces[pieces.len() - 1]);
        let ids = model.tokenize(Either::Right(expanded), None, false, false, None).await.map_err(failed)?;
        let image = ids.iter().filter(|t| **t == self.inner.image_token_id).count() as u32;
        Ok(PromptTokens { text: ids.len() as u32 - image, image })
    }
}

impl Inner {
    pub(crate) async fn submit(self: &Arc<Self>, request: Request) -> Result<(), GlimpseError> {
        let model = self.model();
        let sender = model.inner().get_sender(None).map_err(|e| self.engine_failure(e.to_string()))?;
        sender.send(request).await.map_err(|_| self.engine_failure("the engine thread is gone".into()))
    }

    /// The chat template applied to `messages` and tokenized by the engine's own processor: the same path a
    /// generation request takes (mistralrs's `Model::tokenize` accepts only plain-string messages).
    async fn tokenize_messages(self: &Arc<Self>, messages: Vec<IndexMap<String, MessageContent>>) -> Result<Vec<u32>, GlimpseError> {
        let (response, mut answer) = tokio::sync::mpsc::channel(1);
        let request = Request::Tokenize(TokenizationRequest {
            text: Either::Left(messages),
            tools: None,
            add_generation_prompt: true,
            add_special_tokens: false,
            enable_thinking: None,
            reasoning_effort: None,
            response,
        });
        self.submit(request).await?;
        match answer.recv().await {
            Some(Ok(ids)) => Ok(ids),
            Some(Err(e)) => Err(GlimpseError::Engine(format!("tokenization failed: {e}"))),
            None => Err(self.engine_failure("the engine dropped a tokenization request".into())),
        }
    }

    fn model(&self) -> Arc<Model> {
        match self.model.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The engine thread is gone (mistralrs ends it on a panic): reload the model in the background once, and
    /// tell this caller to retry.
    fn engine_failure(self: &Arc<Self>, detail: String) -> GlimpseError {
        tracing::error!(%detail, "engine failure; reloading the model");
        if !self.reloading.swap(true, Ordering::SeqCst) {
            let inner = self.clone();
            tokio::spawn(async move {
                match build_model(inner.staged.path(), &inner.options).await {
                    Ok(model) => {
                        if let Ok(mut slot) = inner.model.write() {
                            *slot = Arc::new(model);
                        }
                        tracing::info!("model reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "model reload failed"),
                }
                inner.reloading.store(false, Ordering::SeqCst);
            });
        }
        GlimpseError::Unavailable(format!("The model engine failed ({detail}) and is being restarted; retry the request."))
    }
}

#[async_trait]
impl Engine for MistralRsEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn count_tokens(&self, prompt: &Prompt) -> Result<PromptTokens, GlimpseError> {
        let prepared = self.prepare(prompt)?;
        self.count_prepared(&prepared).await
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerationStream, GlimpseError> {
        // Checked before any work: a segmentation prompt needs a mask model.
        let detection = self.is_detection(&request.prompt);
        let masks = if detection && grounding::wants_masks(&request.prompt) {
            Some(self.inner.options.mask_model.clone().ok_or_else(no_mask_model)?)
        } else {
            None
        };
        let prepared = Arc::new(self.prepare(&request.prompt)?);
        let prompt_tokens = self.count_prepared(&prepared).await?;
        let limit = self.info.input_token_limit;
        if prompt_tokens.total() >= limit {
            return Err(GlimpseError::PromptTooLong { count: prompt_tokens.total(), limit });
        }
        let room = limit - prompt_tokens.total();
        let max_len = request.sampling.max_output_tokens.unwrap_or(self.info.output_token_limit).min(self.info.output_token_limit).min(room);
        let params = sampling_params(&request.sampling, &self.inner.defaults, max_len as usize);
        let convention = self.inner.folder.family.box_convention();
        let geometry = prepared.last_image_geometry().filter(|_| detection);
        let constraint = match (request.constraint, geometry) {
            // The native form, so the answer always parses and its convention is known.
            (OutputConstraint::None, Some(image)) => OutputConstraint::JsonSchema(convention.detection_schema(image)),
            (OutputConstraint::JsonSchema(schema), Some(image)) if schema == serde_json::json!({}) => {
                OutputConstraint::JsonSchema(convention.detection_schema(image))
            }
            (other, _) => other,
        };
        let constraint = match constraint {
            OutputConstraint::None => Constraint::None,
            OutputConstraint::JsonSchema(schema) => Constraint::JsonSchema(bounded_whitespace_json(schema)),
            OutputConstraint::Choice(options) => Constraint::Regex(OutputConstraint::choice_regex(&options)),
        };
        let image_tokens = prepared.image_tokens();
        let images = self.render_images(&prepared).await?;
        let (tx, rx) = mpsc::channel(64);
        self.inner.submit(engine_request(&prepared, images, params, constraint, tx, EngineOutput::Stream)).await?;
        let stream = response_stream(rx, self.inner.clone(), prompt_tokens, image_tokens);
        Ok(match geometry {
            Some(geometry) => {
                let masks = masks.zip(request.prompt.images().last().map(|input| input.source.clone()));
                to_gemini_detections(stream, convention, geometry, masks)
            }
            None => stream,
        })
    }
}

fn no_mask_model() -> GlimpseError {
    GlimpseError::FailedPrecondition(
        "This prompt asks for segmentation masks, and this server has no mask model: start it with \
         --mask-model <SAM or MobileSAM folder>, ask for boxes only (box_2d), or serve with --no-grounding to get \
         the model's raw answer."
            .into(),
    )
}

/// The grounding adapter on a detection answer: native boxes → Gemini's, plus a mask per box from `masks`
/// (run on a blocking thread: a SAM image encoder takes seconds on a CPU).
fn to_gemini_detections(
    stream: GenerationStream,
    convention: BoxConvention,
    geometry: ImageGeometry,
    masks: Option<(Arc<dyn MaskModel>, Arc<ImageSource>)>,
) -> GenerationStream {
    grounding::buffer_and_convert(stream, move |text| async move {
        let Some(answer) = grounding::to_gemini_answer(&text, convention, geometry) else { return Ok(text) };
        let Some((model, source)) = masks else { return Ok(answer) };
        tokio::task::spawn_blocking(move || grounding::add_masks(&answer, &source.decode()?, model.as_ref()))
            .await
            .map_err(|e| GlimpseError::Engine(format!("mask task failed: {e}")))?
    })
}

/// `--isq` values as mistralrs spells them (`q4_0`, `q8_0`, `q4k`, `hqq8`, `4` for "best 4-bit here", …).
pub fn parse_isq(value: &str) -> Result<IsqType, String> {
    mistralrs_core::parse_isq_value(value, None)
}

/// `--dtype` values: `auto`, `f32`, `f16`, `bf16`.
pub fn parse_dtype(value: &str) -> Result<ModelDType, String> {
    value.parse()
}

/// Whitespace the JSON grammar allows between two tokens. llguidance's default allows any amount, and a weak
/// model can fill its whole budget with newlines; none at all (what this was first) forces models that learned
/// `{"key": [1, 2]}` (Qwen-VL's grounding answers, most JSON in training data) off their own tokens, and their
/// answers fall apart after the first separator. Up to two characters per gap keeps `": "`, `", "` and Qwen's
/// `[\n\t{` layout, and bounds what a weak model can add.
const JSON_WHITESPACE: &str = r"[\x20\x0A\x0D\x09]{1,2}";

fn bounded_whitespace_json(mut schema: serde_json::Value) -> serde_json::Value {
    if let serde_json::Value::Object(map) = &mut schema {
        map.entry("x-guidance").or_insert_with(|| serde_json::json!({"whitespace_pattern": JSON_WHITESPACE}));
    }
    schema
}

/// What the engine should send back for a request.
pub(crate) enum EngineOutput {
    /// Streamed text chunks.
    Stream,
    /// One final response carrying the log-probability of each sampled token.
    Logprobs,
    /// The raw logits of the first generated position.
    RawLogits,
}

pub(crate) fn engine_request(
    prepared: &PreparedPrompt,
    images: Vec<image::DynamicImage>,
    sampling_params: mistralrs::SamplingParams,
    constraint: Constraint,
    response: mpsc::Sender<Response>,
    output: EngineOutput,
) -> Request {
    let messages = prepared.engine_messages();
    let message = if images.is_empty() {
        RequestMessage::Chat { messages, enable_thinking: None, reasoning_effort: None }
    } else {
        RequestMessage::MultimodalChat {
            images,
            audios: Vec::new(),
            videos: Vec::new(),
            messages,
            enable_thinking: None,
            reasoning_effort: None,
        }
    };
    Request::Normal(Box::new(NormalRequest {
        messages: message,
        sampling_params,
        response,
        return_logprobs: matches!(output, EngineOutput::Logprobs),
        is_streaming: matches!(output, EngineOutput::Stream),
        id: 0,
        constraint,
        suffix: None,
        tools: None,
        tool_choice: None,
        logits_processors: None,
        return_raw_logits: matches!(output, EngineOutput::RawLogits),
        web_search_options: None,
        model_id: None,
        truncate_sequence: false,
    }))
}

/// Engine responses → Glimpse events. A channel that closes before the final chunk means the engine thread
/// died with this request; the model is reloaded for the next one.
fn response_stream(
    rx: mpsc::Receiver<Response>,
    inner: Arc<Inner>,
    counted: PromptTokens,
    image_tokens: u32,
) -> GenerationStream {
    struct State {
        rx: mpsc::Receiver<Response>,
        inner: Arc<Inner>,
        counted: PromptTokens,
        image_tokens: u32,
        generated: u32,
        queued: Vec<Result<GenerationEvent, GlimpseError>>,
        finished: bool,
    }
    let state = State { rx, inner, counted, image_tokens, generated: 0, queued: Vec::new(), finished: false };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if !st.queued.is_empty() {
                let event = st.queued.remove(0);
                return Some((event, st));
            }
            if st.finished {
                return None;
            }
            let Some(response) = st.rx.recv().await else {
                st.finished = true;
                let err = st.inner.engine_failure("the engine stopped while answering".into());
                return Some((Err(err), st));
            };
            match response {
                Response::Chunk(chunk) => {
                    for choice in chunk.choices {
                        if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                            st.queued.push(Ok(GenerationEvent::Text(text)));
                        }
                        st.generated += 1;
                        if let Some(reason) = choice.finish_reason {
                            let usage = match &chunk.usage {
                                Some(u) => Usage {
                                    prompt: PromptTokens {
                                        text: (u.prompt_tokens as u32).saturating_sub(st.image_tokens),
                                        image: st.image_tokens,
                                    },
                                    output: u.completion_tokens as u32,
                                },
                                None => Usage { prompt: st.counted, output: st.generated },
                            };
                            let finish = match reason.as_str() {
                                "stop" => FinishReason::Stop,
                                "length" => FinishReason::MaxTokens,
                                _ => FinishReason::Other,
                            };
                            st.queued.push(Ok(GenerationEvent::Done { finish, usage }));
                            st.finished = true;
                        }
                    }
                }
                Response::Done(done) => {
                    let text = done.choices.first().and_then(|c| c.message.content.clone()).unwrap_or_default();
                    if !text.is_empty() {
                        st.queued.push(Ok(GenerationEvent::Text(text)));
                    }
                    let usage = Usage { prompt: st.counted, output: done.usage.completion_tokens as u32 };
                    st.queued.push(Ok(GenerationEvent::Done { finish: FinishReason::Stop, usage }));
                    st.finished = true;
                }
                Response::ValidationError(e) => {
                    st.finished = true;
                    return Some((Err(GlimpseError::InvalidArgument(e.to_string())), st));
                }
                Response::ModelError(message, _) => {
                    st.finished = true;
                    return Some((Err(GlimpseError::Engine(message)), st));
                }
                Response::InternalError(e) => {
                    st.finished = true;
                    return Some((Err(GlimpseError::Engine(e.to_string())), st));
                }
                _ => {
                    st.finished = true;
                    return Some((Err(GlimpseError::Engine("unexpected engine response".into())), st));
                }
            }
        }
    })
    .boxed()
}

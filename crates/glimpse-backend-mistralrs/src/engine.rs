//! [`MistralRsEngine`]: the [`Engine`] trait on a mistralrs multimodal model. This file loads it and runs a
//! generation's steps in order; each step lives in its own module: [`crate::counting`] (prompt tokens),
//! [`crate::constraint`] (what decoding is held to), [`crate::request`] (the engine request),
//! [`crate::response`] (engine responses as a stream), [`crate::detections`] (the grounding adapter) and
//! [`crate::supervisor`] (submitting, and reloading a model whose engine thread died).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use either::Either;
use glimpse_core::grounding::{self, Grounded, MaskModel};
use glimpse_core::media::PixelCache;
use glimpse_core::{Engine, GenerateRequest, GenerationStream, GlimpseError, ModelInfo, Prompt, PromptTokens};
use mistralrs::{IsqType, Model, ModelDType};
use tempfile::TempDir;
use tokio::sync::mpsc;

use crate::constraint::engine_constraint;
use crate::detections::{no_mask_model, to_gemini_detections};
use crate::model_folder::ModelFolder;
use crate::prompt_builder::{prepare, PreparedPrompt};
use crate::request::{engine_request, EngineOutput};
use crate::response::response_stream;
use crate::sampling::{sampling_params, GenerationDefaults};
use crate::supervisor::build_model;

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
    /// Finished sequences whose KV cache the engine keeps for a later prompt with the same beginning (a
    /// `cachedContent`, a conversation's next turn, one photo asked several questions); 0 keeps none. Only
    /// families whose prefix reuse is verified use it (see `Family::reuses_prefixes`).
    pub prefix_cache_entries: usize,
    /// On a GPU, the share of the card's memory that the weights and the paged KV cache fill together
    /// (mistralrs's PagedAttention: concurrent requests are batched continuously, each taking cache blocks as it
    /// grows); 0 turns paged attention off. Unused on CPU, where mistralrs has no paged attention.
    pub gpu_memory_fraction: f32,
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
            prefix_cache_entries: 16,
            gpu_memory_fraction: DEFAULT_GPU_MEMORY_FRACTION,
        }
    }
}

pub struct MistralRsEngine {
    pub(crate) inner: Arc<Inner>,
    info: ModelInfo,
}

/// What the engine's parts share: the model (replaced when it is reloaded) and what it was loaded from.
pub(crate) struct Inner {
    pub(crate) folder: ModelFolder,
    /// Removed from disk when the engine is dropped.
    pub(crate) staged: TempDir,
    pub(crate) options: LoadOptions,
    pub(crate) defaults: GenerationDefaults,
    pub(crate) model: RwLock<Arc<Model>>,
    pub(crate) reloading: AtomicBool,
    /// The id of the family's image token (what usage counts as IMAGE), looked up once at load.
    pub(crate) image_token_id: u32,
}

impl MistralRsEngine {
    pub async fn load(dir: &Path, options: LoadOptions) -> anyhow::Result<Self> {
        let folder = ModelFolder::open(dir)?;
        let staged = folder.stage(&options.staging_root)?;
        let model = build_model(staged.path(), &options, &folder.family).await?;
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
            concurrency: options.max_num_seqs,
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

    /// What the grounding adapter makes of this prompt's answer, if anything: it is on, the prompt asks for boxes
    /// or points and has an image.
    fn grounded(&self, prompt: &Prompt) -> Option<Grounded> {
        Grounded::of(prompt).filter(|_| self.inner.options.grounding && prompt.subject_image().is_some())
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
        glimpse_core::priority::spawn_compute("image preparation failed", move || prepared.render_images(&inner.options.pixel_cache))
            .await
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
        let grounded = self.grounded(&request.prompt);
        let masks = if grounded == Some(Grounded::Boxes) && grounding::wants_masks(&request.prompt) {
            Some(self.inner.options.mask_model.clone().ok_or_else(no_mask_model)?)
        } else {
            None
        };
        let prepared = Arc::new(self.prepare(&request.prompt)?);
        let prompt_tokens = self.count_prepared(&prepared).await?;
        let max_len = self.info.output_budget(prompt_tokens, request.sampling.max_output_tokens)?;
        let params = sampling_params(&request.sampling, &self.inner.defaults, max_len as usize);
        let convention = self.inner.folder.family.box_convention();
        let subject = request.prompt.subject_image().filter(|_| grounded.is_some());
        let geometry = subject.and_then(|(index, _)| prepared.image_geometry(index));
        let constraint = engine_constraint(request.constraint, geometry.zip(grounded).map(|(image, kind)| convention.schema(kind, image)));
        let image_tokens = prepared.image_tokens();
        let images = self.render_images(&prepared).await?;
        let (tx, rx) = mpsc::channel(64);
        self.inner.submit(engine_request(&prepared, images, params, constraint, tx, EngineOutput::Stream)).await?;
        let stream = response_stream(rx, self.inner.clone(), prompt_tokens, image_tokens);
        Ok(match geometry.zip(grounded) {
            Some((geometry, kind)) => {
                let masks = masks.zip(subject.map(|(_, input)| input.source.clone()));
                to_gemini_detections(stream, convention, kind, geometry, masks)
            }
            None => stream,
        })
    }
}

/// `--isq` values as mistralrs spells them (`q4_0`, `q8_0`, `q4k`, `hqq8`, `4` for "best 4-bit here", …).
pub fn parse_isq(value: &str) -> Result<IsqType, String> {
    mistralrs_core::parse_isq_value(value, None)
}

/// `--dtype` values: `auto`, `f32`, `f16`, `bf16`.
pub fn parse_dtype(value: &str) -> Result<ModelDType, String> {
    value.parse()
}

/// What `--gpu-memory-fraction` defaults to: the KV cache takes what the weights leave of 85% of the card, the
/// rest is for activations (a 1920×1080 image's vision tower) and the CUDA context.
pub const DEFAULT_GPU_MEMORY_FRACTION: f32 = 0.85;

/// `--gpu-memory-fraction`: a share of the GPU's memory, 0 (paged attention off) to 1.
pub fn parse_gpu_memory_fraction(value: &str) -> Result<f32, String> {
    match value.parse::<f32>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{value} is not a fraction between 0 and 1")),
    }
}


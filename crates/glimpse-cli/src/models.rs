//! Which models a `glimpse` command loads: `--model [NAME=]DIR|owner/name[@rev]|toolkit|shapes` (repeatable
//! for serve), `[[model]]` tables of a config file, `--alias ALIAS[=NAME]`, one shared mask model. With no
//! model at all, the built-in toolkit answers.

use glimpse_core::admission::AdmissionConfig;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use glimpse_backend_mistralrs::{LoadOptions, MistralRsEngine};
use glimpse_core::media::PixelCache;
use glimpse_backend_toolkit::{salient::SalientMasks, ToolkitEngine};
use glimpse_backend_upstream::{UpstreamConfig, UpstreamEngine};
use glimpse_core::grounding::MaskModel;
use glimpse_core::{Engine, ModelRegistry};
use glimpse_masks::SamMasks;

use crate::config::{ServeConfig, Upstream};
use crate::hub::{self, HubId};
use crate::ModelArgs;

/// Where a model's files are.
#[derive(Debug, Clone)]
pub enum ModelSource {
    Folder(PathBuf),
    /// A model in the local Hugging Face cache.
    Hub(HubId),
    /// The built-in toolkit (`toolkit`): detector, classifier, OCR and masks on packaged weights.
    Toolkit,
    /// `shapes`: the bundled Qwen2.5-VL trained on synthetic scenes (`models/shapes`), loaded like any
    /// downloaded Qwen2.5-VL folder.
    Shapes,
}

/// The source name of the built-in toolkit, and the `--mask-model` value that selects its ISNet masks.
pub const TOOLKIT: &str = "toolkit";
pub const ISNET_MASKS: &str = "isnet";
/// The source name of the bundled self-test model.
pub const SHAPES: &str = "shapes";

/// Where the bundled `shapes` model is: `GLIMPSE_SHAPES_DIR`, else `models/shapes` beside the workspace the
/// binary was built from, else `models/shapes` under the current directory.
pub fn shapes_model_dir() -> PathBuf {
    glimpse_core::bundled_model_dir(SHAPES, "GLIMPSE_SHAPES_DIR")
}

impl ModelSource {
    /// An existing folder (relative to `base`) wins; otherwise `owner/name[@rev]` is a hub id; anything else is
    /// a folder, whose absence the loader reports.
    pub fn parse(s: &str, base: &Path) -> Result<ModelSource, String> {
        if s.is_empty() {
            return Err("empty model folder".into());
        }
        let path = base.join(s);
        if path.is_dir() {
            return Ok(ModelSource::Folder(path));
        }
        if s == TOOLKIT {
            return Ok(ModelSource::Toolkit);
        }
        if s == SHAPES {
            return Ok(ModelSource::Shapes);
        }
        Ok(s.parse().map(ModelSource::Hub).unwrap_or(ModelSource::Folder(path)))
    }

    /// The folder to load, and the name the model gets unless it is given one.
    fn locate(&self) -> anyhow::Result<(PathBuf, Option<String>)> {
        match self {
            ModelSource::Folder(dir) if !dir.is_dir() => anyhow::bail!("{}", no_such_model(dir)),
            ModelSource::Folder(dir) => Ok((dir.clone(), None)),
            ModelSource::Hub(id) => Ok((hub::resolve(id)?, Some(id.default_name()))),
            ModelSource::Toolkit => Ok((glimpse_backend_toolkit::default_model_dir(), Some(TOOLKIT.to_string()))),
            ModelSource::Shapes => Ok((shapes_model_dir(), Some(SHAPES.to_string()))),
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Folder(dir) => write!(f, "the model folder {}", dir.display()),
            ModelSource::Hub(id) => write!(f, "{id} from the Hugging Face cache"),
            ModelSource::Toolkit => write!(f, "the built-in toolkit"),
            ModelSource::Shapes => write!(f, "the bundled shapes model"),
        }
    }
}

/// `SOURCE` or `NAME=SOURCE`: the name clients use (default: the folder's or the repository's name).
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: Option<String>,
    pub source: ModelSource,
}

impl FromStr for ModelSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let base = Path::new("");
        match s.split_once('=') {
            Some((name, source)) if !name.is_empty() && !name.contains('/') && !source.is_empty() => {
                Ok(ModelSpec { name: Some(name.to_string()), source: ModelSource::parse(source, base)? })
            }
            _ => Ok(ModelSpec { name: None, source: ModelSource::parse(s, base)? }),
        }
    }
}

/// One model to load with the switches that apply to it.
struct Plan {
    spec: ModelSpec,
    aliases: Vec<String>,
    isq: Option<glimpse_backend_mistralrs::IsqType>,
    dtype: Option<glimpse_backend_mistralrs::ModelDType>,
    max_output_tokens: u32,
    /// Set when another engine runs the model (`spec` is then its processor folder).
    upstream: Option<Upstream>,
}

impl Plan {
    fn from_args(spec: &ModelSpec, args: &ModelArgs) -> Plan {
        Plan {
            spec: spec.clone(),
            aliases: Vec::new(),
            isq: args.isq,
            dtype: args.dtype,
            max_output_tokens: args.max_output_tokens,
            upstream: None,
        }
    }
}

/// `ALIAS` (for the first model) or `ALIAS=NAME`.
#[derive(Debug, Clone)]
pub struct AliasSpec {
    pub alias: String,
    pub target: Option<String>,
}

impl FromStr for AliasSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((alias, target)) if !alias.is_empty() && !target.is_empty() => {
                Ok(AliasSpec { alias: alias.to_string(), target: Some(target.to_string()) })
            }
            None if !s.is_empty() => Ok(AliasSpec { alias: s.to_string(), target: None }),
            _ => Err(format!("invalid alias {s:?}: use ALIAS or ALIAS=MODEL_NAME")),
        }
    }
}

/// `--mask-model`: a SAM / MobileSAM folder, or `isnet` for the toolkit's ISNet masks.
fn load_mask_model(dir: Option<&PathBuf>) -> anyhow::Result<Option<Arc<dyn MaskModel>>> {
    let Some(dir) = dir else { return Ok(None) };
    if dir.as_os_str() == ISNET_MASKS && !dir.is_dir() {
        let toolkit_dir = glimpse_backend_toolkit::default_model_dir();
        let runtime = glimpse_backend_toolkit::Runtime::choose(&toolkit_dir).context("choosing the toolkit's runtime")?;
        let masks = SalientMasks::load(runtime, &toolkit_dir).context("loading the ISNet mask model")?;
        return Ok(Some(Arc::new(masks)));
    }
    let masks = SamMasks::load(dir).map_err(anyhow::Error::msg).context("loading the mask model")?;
    Ok(Some(Arc::new(masks)))
}

async fn load_engine(
    plan: &Plan,
    args: &ModelArgs,
    masks: Option<Arc<dyn MaskModel>>,
    pixel_cache: Arc<PixelCache>,
) -> anyhow::Result<Arc<dyn Engine>> {
    let (dir, default_name) = plan.spec.source.locate()?;
    if let ModelSource::Toolkit = plan.spec.source {
        let name = plan.spec.name.clone().or(default_name);
        let engine = tokio::task::spawn_blocking(move || ToolkitEngine::load(&dir, name)).await?
            .context("loading the built-in toolkit (its models are in models/toolkit; GLIMPSE_TOOLKIT_DIR moves them)")?;
        tracing::info!(model = %engine.info().id, "toolkit loaded");
        return Ok(Arc::new(engine));
    }
    let name = plan.spec.name.clone().or(default_name);
    if let Some(upstream) = &plan.upstream {
        let config = UpstreamConfig {
            name: name.unwrap_or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())),
            base_url: upstream.base_url.clone(),
            upstream_model: upstream.model.clone(),
            api_key: upstream.api_key.clone(),
            max_output_tokens: plan.max_output_tokens,
            max_concurrent: upstream.max_concurrent,
            read_timeout: upstream.read_timeout,
            grounding: !args.no_grounding,
            structured_output: upstream.structured_output,
            mask_model: masks,
            pixel_cache,
        };
        let engine = UpstreamEngine::new(&dir, config).with_context(|| format!("reading the processor of {}", plan.spec.source))?;
        tracing::info!(model = %engine.info().id, upstream = %upstream.base_url, "model on an upstream engine");
        return Ok(Arc::new(engine));
    }
    glimpse_backend_mistralrs::set_encoder_cache_bytes(args.encoder_cache_bytes);
    let options = LoadOptions {
        name,
        force_cpu: args.cpu,
        max_output_tokens: plan.max_output_tokens,
        grounding: !args.no_grounding,
        mask_model: masks,
        pixel_cache,
        isq: plan.isq,
        dtype: plan.dtype,
        prefix_cache_entries: args.prefix_cache_entries,
        gpu_memory_fraction: args.gpu_memory_fraction,
        ..Default::default()
    };
    let engine = MistralRsEngine::load(&dir, options).await.with_context(|| format!("loading {}", plan.spec.source))?;
    tracing::info!(model = %engine.info().id, "model loaded");
    Ok(Arc::new(engine))
}

/// Why `--model SOURCE` names nothing, with the closest name Glimpse knows (a built-in model or a cached hub id)
/// when there is one close enough to be a typo.
fn no_such_model(dir: &Path) -> String {
    let given = dir.to_string_lossy();
    let cached = hub::list().unwrap_or_default().into_iter().map(|m| m.id.repo);
    let closest = [TOOLKIT.to_string(), SHAPES.to_string()]
        .into_iter()
        .chain(cached)
        .map(|name| (strsim::levenshtein(&given.to_lowercase(), &name.to_lowercase()), name))
        .filter(|(distance, name)| *distance <= (name.len() / 4).max(2))
        .min();
    match closest {
        Some((_, name)) => format!("--model {given}: there is no such model folder; did you mean {name}?"),
        None => format!(
            "--model {given}: there is no such model folder (a model is a folder, a hub id fetched with `glimpse pull`, \
             {TOOLKIT} or {SHAPES}; `glimpse models list` shows them)"
        ),
    }
}

/// The built-in models, for `glimpse models list`.
pub fn builtin() -> Vec<hub::BuiltinModel> {
    let shown = |folder: PathBuf| std::fs::canonicalize(&folder).unwrap_or(folder);
    vec![
        hub::BuiltinModel {
            name: TOOLKIT,
            serves_as: "built-in toolkit",
            folder: shown(glimpse_backend_toolkit::default_model_dir()),
        },
        hub::BuiltinModel { name: SHAPES, serves_as: "qwen2_5_vl (bundled)", folder: shown(shapes_model_dir()) },
    ]
}

/// The toolkit, which answers when no model is named.
fn toolkit_spec() -> ModelSpec {
    ModelSpec { name: None, source: ModelSource::Toolkit }
}

/// The one model of `glimpse ask` (the toolkit when none is named).
pub async fn single(args: &ModelArgs) -> anyhow::Result<Arc<dyn Engine>> {
    let spec = match args.model.as_slice() {
        [spec] => spec.clone(),
        [] => toolkit_spec(),
        _ => anyhow::bail!("this command takes exactly one --model"),
    };
    let masks = load_mask_model(args.mask_model.as_ref())?;
    load_engine(&Plan::from_args(&spec, args), args, masks, Arc::new(PixelCache::new(0))).await
}

/// Every `--model`, then every `[[model]]` of the config file, with their aliases. Names must be unique; an
/// alias must name a loaded model.
pub async fn registry(
    args: &ModelArgs,
    aliases: &[AliasSpec],
    config: Option<&ServeConfig>,
    admission: AdmissionConfig,
) -> anyhow::Result<ModelRegistry> {
    let mut plans: Vec<Plan> = args.model.iter().map(|spec| Plan::from_args(spec, args)).collect();
    for model in config.map(|c| c.models.as_slice()).unwrap_or_default() {
        plans.push(Plan {
            spec: model.spec.clone(),
            aliases: model.aliases.clone(),
            isq: model.isq.or(args.isq),
            dtype: model.dtype.or(args.dtype),
            max_output_tokens: model.max_output_tokens.unwrap_or(args.max_output_tokens),
            upstream: model.upstream.clone(),
        });
    }
    if plans.is_empty() {
        plans.push(Plan::from_args(&toolkit_spec(), args));
    }
    let masks = load_mask_model(args.mask_model.as_ref().or(config.and_then(|c| c.mask_model.as_ref())))?;
    // One budget for every model: the cache is keyed by the image's bytes and the planned size.
    let pixel_cache = Arc::new(PixelCache::new(args.image_cache_bytes));
    let mut engines = Vec::new();
    let mut own_aliases = Vec::new();
    for plan in &plans {
        let started = std::time::Instant::now();
        let engine = load_engine(plan, args, masks.clone(), pixel_cache.clone()).await?;
        metrics::gauge!("glimpse_model_load_seconds", "model" => engine.info().id.clone())
            .set(started.elapsed().as_secs_f64());
        if engines.iter().any(|e: &Arc<dyn Engine>| e.info().id == engine.info().id) {
            anyhow::bail!("two models are named {:?}: give them names with --model NAME=DIR", engine.info().id);
        }
        own_aliases.push(plan.aliases.clone());
        engines.push(engine);
    }
    let ids: Vec<String> = engines.iter().map(|e| e.info().id.clone()).collect();
    for alias in aliases {
        if let Some(target) = alias.target.as_ref().filter(|t| !ids.contains(t)) {
            anyhow::bail!("--alias {}={target}: no model is named {target:?} (models: {})", alias.alias, ids.join(", "));
        }
    }
    let mut registry = ModelRegistry::with_admission(admission);
    for (index, engine) in engines.into_iter().enumerate() {
        let id = engine.info().id.clone();
        let mut mine: Vec<String> = aliases
            .iter()
            .filter(|a| a.target.as_deref().map_or(index == 0, |t| t == id))
            .map(|a| a.alias.clone())
            .collect();
        mine.extend(own_aliases[index].iter().cloned());
        registry.add(engine, &mine);
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let named: ModelSpec = "fast=/models/qwen".parse().unwrap();
        assert_eq!(named.name.as_deref(), Some("fast"));
        assert!(matches!(named.source, ModelSource::Folder(dir) if dir == PathBuf::from("/models/qwen")));
        let plain: ModelSpec = "/data/a=b/qwen".parse().unwrap();
        assert!(plain.name.is_none());
        assert!(matches!(plain.source, ModelSource::Folder(dir) if dir == PathBuf::from("/data/a=b/qwen")));
        let hub: ModelSpec = "q=Qwen/Qwen2.5-VL-3B-Instruct@main".parse().unwrap();
        assert!(matches!(hub.source, ModelSource::Hub(id) if id.repo == "Qwen/Qwen2.5-VL-3B-Instruct"));
        // An existing folder wins over the hub-id reading of the same string.
        let dir = std::env::temp_dir();
        let existing = ModelSource::parse(dir.file_name().unwrap().to_str().unwrap(), dir.parent().unwrap()).unwrap();
        assert!(matches!(existing, ModelSource::Folder(_)));
        let alias: AliasSpec = "gemini-2.0-flash=fast".parse().unwrap();
        assert_eq!((alias.alias.as_str(), alias.target.as_deref()), ("gemini-2.0-flash", Some("fast")));
        assert!("=x".parse::<AliasSpec>().is_err());
        assert!(matches!("toolkit".parse::<ModelSpec>().unwrap().source, ModelSource::Toolkit));
        assert!(matches!("shapes".parse::<ModelSpec>().unwrap().source, ModelSource::Shapes));
    }
}

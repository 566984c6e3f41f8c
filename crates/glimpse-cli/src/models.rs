//! Which models a `glimpse` command loads: `--model [NAME=]DIR` (repeatable for serve), `--alias ALIAS[=NAME]`,
//! one shared mask model.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use glimpse_backend_mistralrs::{LoadOptions, MistralRsEngine};
use glimpse_core::grounding::MaskModel;
use glimpse_core::{Engine, ModelRegistry};
use glimpse_masks::SamMasks;

use crate::ModelArgs;

/// `DIR` or `NAME=DIR`: the name clients use (default: the folder's name).
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: Option<String>,
    pub dir: PathBuf,
}

impl FromStr for ModelSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((name, dir)) if !name.is_empty() && !name.contains('/') && !dir.is_empty() => {
                Ok(ModelSpec { name: Some(name.to_string()), dir: dir.into() })
            }
            _ if s.is_empty() => Err("empty model folder".into()),
            _ => Ok(ModelSpec { name: None, dir: s.into() }),
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

fn load_mask_model(args: &ModelArgs) -> anyhow::Result<Option<Arc<dyn MaskModel>>> {
    let Some(dir) = &args.mask_model else { return Ok(None) };
    let masks = SamMasks::load(dir).map_err(anyhow::Error::msg).context("loading the mask model")?;
    Ok(Some(Arc::new(masks)))
}

async fn load_engine(spec: &ModelSpec, args: &ModelArgs, masks: Option<Arc<dyn MaskModel>>) -> anyhow::Result<Arc<dyn Engine>> {
    let options = LoadOptions {
        name: spec.name.clone(),
        force_cpu: args.cpu,
        max_output_tokens: args.max_output_tokens,
        grounding: !args.no_grounding,
        mask_model: masks,
        isq: args.isq,
        dtype: args.dtype,
        ..Default::default()
    };
    let engine = MistralRsEngine::load(&spec.dir, options)
        .await
        .with_context(|| format!("loading the model folder {}", spec.dir.display()))?;
    tracing::info!(model = %engine.info().id, "model loaded");
    Ok(Arc::new(engine))
}

/// The one model of `glimpse ask`.
pub async fn single(args: &ModelArgs) -> anyhow::Result<Arc<dyn Engine>> {
    match args.model.as_slice() {
        [spec] => load_engine(spec, args, load_mask_model(args)?).await,
        _ => anyhow::bail!("this command takes exactly one --model"),
    }
}

/// Every `--model`, with its aliases. Names must be unique; an alias must name a loaded model.
pub async fn registry(args: &ModelArgs, aliases: &[AliasSpec]) -> anyhow::Result<ModelRegistry> {
    let masks = load_mask_model(args)?;
    let mut engines = Vec::new();
    for spec in &args.model {
        let engine = load_engine(spec, args, masks.clone()).await?;
        if engines.iter().any(|e: &Arc<dyn Engine>| e.info().id == engine.info().id) {
            anyhow::bail!("two models are named {:?}: give them names with --model NAME=DIR", engine.info().id);
        }
        engines.push(engine);
    }
    let ids: Vec<String> = engines.iter().map(|e| e.info().id.clone()).collect();
    for alias in aliases {
        if let Some(target) = alias.target.as_ref().filter(|t| !ids.contains(t)) {
            anyhow::bail!("--alias {}={target}: no model is named {target:?} (models: {})", alias.alias, ids.join(", "));
        }
    }
    let mut registry = ModelRegistry::new();
    for (index, engine) in engines.into_iter().enumerate() {
        let id = engine.info().id.clone();
        let mine: Vec<String> = aliases
            .iter()
            .filter(|a| a.target.as_deref().map_or(index == 0, |t| t == id))
            .map(|a| a.alias.clone())
            .collect();
        registry.add(engine, &mine);
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let named: ModelSpec = "fast=models/qwen".parse().unwrap();
        assert_eq!((named.name.as_deref(), named.dir), (Some("fast"), PathBuf::from("models/qwen")));
        let plain: ModelSpec = "/data/a=b/qwen".parse().unwrap();
        assert_eq!((plain.name, plain.dir), (None, PathBuf::from("/data/a=b/qwen")));
        let alias: AliasSpec = "gemini-2.0-flash=fast".parse().unwrap();
        assert_eq!((alias.alias.as_str(), alias.target.as_deref()), ("gemini-2.0-flash", Some("fast")));
        assert!("=x".parse::<AliasSpec>().is_err());
    }
}

//! `glimpse serve --config FILE`: the models a server loads, their names, aliases and load switches, in one
//! TOML file instead of a long command line.
//!
//! ```toml
//! mask_model = "models/sam-vit-base"      # optional, shared by every model
//!
//! [[model]]
//! name = "qwen"                           # what clients say (default: folder or repo name)
//! model = "Qwen/Qwen2.5-VL-3B-Instruct"   # a folder, or a hub id from the local cache (`glimpse pull`)
//! aliases = ["gemini-2.5-flash", "gemini-3-flash-preview"]
//! isq = "q4k"                             # optional, per model
//! dtype = "bf16"                          # optional, per model
//! max_output_tokens = 4096                # optional, per model
//! ```
//!
//! Relative folders are relative to the file, so a config and its models can move together.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::models::{ModelSource, ModelSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    mask_model: Option<PathBuf>,
    #[serde(default, rename = "model")]
    models: Vec<ModelTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelTable {
    name: Option<String>,
    model: String,
    #[serde(default)]
    aliases: Vec<String>,
    isq: Option<String>,
    dtype: Option<String>,
    max_output_tokens: Option<u32>,
}

/// A config file, read and checked.
#[derive(Debug)]
pub struct ServeConfig {
    pub mask_model: Option<PathBuf>,
    pub models: Vec<ConfiguredModel>,
}

/// One `[[model]]`: what to load, and the switches that override the command line's for it.
#[derive(Debug)]
pub struct ConfiguredModel {
    pub spec: ModelSpec,
    pub aliases: Vec<String>,
    pub isq: Option<glimpse_backend_mistralrs::IsqType>,
    pub dtype: Option<glimpse_backend_mistralrs::ModelDType>,
    pub max_output_tokens: Option<u32>,
}

impl ServeConfig {
    pub fn read(path: &Path) -> anyhow::Result<ServeConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("in the config file {}", path.display()))
    }

    fn parse(text: &str, base: &Path) -> anyhow::Result<ServeConfig> {
        let file: ConfigFile = toml::from_str(text)?;
        let mut models = Vec::new();
        for (n, table) in file.models.into_iter().enumerate() {
            let context = || format!("[[model]] number {} ({})", n + 1, table.model);
            if table.name.as_deref().is_some_and(|name| name.is_empty() || name.contains('/')) {
                anyhow::bail!("{}: a name must be non-empty and hold no '/'", context());
            }
            let isq = table.isq.as_deref().map(glimpse_backend_mistralrs::parse_isq).transpose().map_err(anyhow::Error::msg).with_context(context)?;
            let dtype =
                table.dtype.as_deref().map(glimpse_backend_mistralrs::parse_dtype).transpose().map_err(anyhow::Error::msg).with_context(context)?;
            let source = ModelSource::parse(&table.model, base).map_err(anyhow::Error::msg).with_context(context)?;
            models.push(ConfiguredModel {
                spec: ModelSpec { name: table.name, source },
                aliases: table.aliases,
                isq,
                dtype,
                max_output_tokens: table.max_output_tokens,
            });
        }
        let mask_model = file.mask_model.map(|p| if p.is_relative() { base.join(p) } else { p });
        Ok(ServeConfig { mask_model, models })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_with_paths_relative_to_the_file() {
        let base = std::env::temp_dir();
        let text = r#"
            mask_model = "sam"
            [[model]]
            name = "fast"
            model = "Qwen/Qwen2.5-VL-3B-Instruct@v2"
            aliases = ["gemini-2.0-flash"]
            isq = "q8_0"
            [[model]]
            model = "."
            dtype = "f32"
            max_output_tokens = 64
        "#;
        let config = ServeConfig::parse(text, &base).unwrap();
        assert_eq!(config.mask_model, Some(base.join("sam")));
        let [fast, local] = config.models.as_slice() else { panic!("two models expected") };
        assert_eq!(fast.spec.name.as_deref(), Some("fast"));
        assert!(matches!(&fast.spec.source, ModelSource::Hub(id) if id.revision == "v2"));
        assert_eq!(fast.aliases, ["gemini-2.0-flash"]);
        assert!(fast.isq.is_some() && fast.dtype.is_none());
        assert!(matches!(&local.spec.source, ModelSource::Folder(dir) if dir == &base.join(".")));
        assert_eq!(local.max_output_tokens, Some(64));
    }

    #[test]
    fn mistakes_are_named() {
        let base = Path::new("/");
        let unknown = ServeConfig::parse("[[model]]\nmodel = \"x\"\nquant = \"q4k\"\n", base).unwrap_err();
        assert!(format!("{unknown:#}").contains("quant"), "{unknown:#}");
        let isq = ServeConfig::parse("[[model]]\nmodel = \"/m\"\nisq = \"q99\"\n", base).unwrap_err();
        assert!(format!("{isq:#}").contains("number 1"), "{isq:#}");
    }
}

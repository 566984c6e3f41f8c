//! `glimpse serve --config FILE`, resolved: the tables `glimpse-config` read and checked, with their folders
//! and hub ids located (relative folders are relative to the file, so a config and its models can move
//! together) and their engine switches parsed by the engine's own parsers. The file's format is documented in
//! `glimpse-config`.

use std::path::{Path, PathBuf};

use anyhow::Context;
pub use glimpse_config::Upstream;

use crate::models::{ModelSource, ModelSpec};

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
    /// Where the model runs when another engine serves it (then `spec` is its processor folder).
    pub upstream: Option<Upstream>,
}

impl ServeConfig {
    pub fn read(path: &Path) -> anyhow::Result<ServeConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .with_context(|| format!("in the config file {}", path.display()))
    }

    fn parse(text: &str, base: &Path) -> anyhow::Result<ServeConfig> {
        let file = glimpse_config::ConfigFile::parse(text)?;
        let mut models = Vec::new();
        for table in file.models {
            let label = table.label.clone();
            let isq = table.isq.as_deref().map(glimpse_backend_mistralrs::parse_isq).transpose().map_err(anyhow::Error::msg).with_context(|| label.clone())?;
            let dtype =
                table.dtype.as_deref().map(glimpse_backend_mistralrs::parse_dtype).transpose().map_err(anyhow::Error::msg).with_context(|| label.clone())?;
            let source = ModelSource::parse(&table.source, base).map_err(anyhow::Error::msg).with_context(|| label.clone())?;
            models.push(ConfiguredModel {
                spec: ModelSpec { name: table.name, source },
                aliases: table.aliases,
                isq,
                dtype,
                max_output_tokens: table.max_output_tokens,
                upstream: table.upstream,
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
    fn an_upstream_table_loads_its_processor() {
        let text = "[[model]]\nupstream = \"http://10.0.0.5:8000/v1\"\nprocessor = \"Qwen/Qwen2.5-VL-7B-Instruct\"\n";
        let config = ServeConfig::parse(text, &std::env::temp_dir()).unwrap();
        let [qwen] = config.models.as_slice() else { panic!("one model expected") };
        assert!(qwen.upstream.is_some());
        assert!(matches!(&qwen.spec.source, ModelSource::Hub(id) if id.repo == "Qwen/Qwen2.5-VL-7B-Instruct"));
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

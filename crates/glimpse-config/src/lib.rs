//! `glimpse serve --config FILE`: the models a server loads, their names, aliases and load switches, in one
//! TOML file instead of a long command line. This crate reads the file and checks every table; resolving a
//! table's folder or hub id and its engine switches (`isq`, `dtype`) is the command line's
//! (`glimpse-cli/src/config.rs`). It is its own crate so the fuzz targets can reach the parser without an engine.
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
//!
//! [[model]]                               # a model another engine serves (vLLM, SGLang, llama-server, Ollama)
//! name = "qwen-cluster"
//! upstream = "http://10.0.0.5:8000/v1"    # the engine's OpenAI-compatible base URL
//! upstream_model = "Qwen/Qwen2.5-VL-7B-Instruct"   # the id the engine knows it by (default: processor)
//! upstream_api_key_env = "VLLM_API_KEY"   # optional: the environment variable holding its key
//! processor = "Qwen/Qwen2.5-VL-7B-Instruct"        # folder or hub id: config, tokenizer, chat template and
//!                                         # preprocessor config (weights not needed)
//! max_concurrent = 64                     # optional: requests sent to the engine at once
//! upstream_timeout_seconds = 120          # optional: longest wait for the engine's next byte
//! structured_output = false               # optional: the engine cannot constrain decoding to a JSON schema
//! ```

use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    mask_model: Option<PathBuf>,
    #[serde(default, rename = "model")]
    models: Vec<ModelTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelTable {
    name: Option<String>,
    model: Option<String>,
    upstream: Option<String>,
    upstream_model: Option<String>,
    upstream_api_key_env: Option<String>,
    processor: Option<String>,
    max_concurrent: Option<usize>,
    upstream_timeout_seconds: Option<u64>,
    structured_output: Option<bool>,
    #[serde(default)]
    aliases: Vec<String>,
    isq: Option<String>,
    dtype: Option<String>,
    max_output_tokens: Option<u32>,
}

/// A config file, read and checked; paths are as written (relative ones are the reader's to resolve).
#[derive(Debug)]
pub struct ConfigFile {
    pub mask_model: Option<PathBuf>,
    pub models: Vec<ModelConfig>,
}

/// One checked `[[model]]` table.
#[derive(Debug)]
pub struct ModelConfig {
    pub name: Option<String>,
    /// What to load: `model`, or for an upstream model its `processor` (a folder or hub id).
    pub source: String,
    pub aliases: Vec<String>,
    /// The engine switches as written; the command line parses them with the engine's own parsers.
    pub isq: Option<String>,
    pub dtype: Option<String>,
    pub max_output_tokens: Option<u32>,
    /// Where the model runs when another engine serves it.
    pub upstream: Option<Upstream>,
    /// How errors name this table: `[[model]] number N (source)`.
    pub label: String,
}

/// A `[[model]]` served by an OpenAI-compatible engine.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub base_url: url::Url,
    pub model: String,
    pub api_key: Option<String>,
    pub max_concurrent: usize,
    pub read_timeout: std::time::Duration,
    pub structured_output: bool,
}

/// Requests sent to an engine at once unless the table says otherwise: engines batch what they get, and vLLM's
/// and SGLang's own schedulers handle far more; the admission queue holds the rest.
const UPSTREAM_CONCURRENCY: usize = 64;
const UPSTREAM_TIMEOUT_SECONDS: u64 = 300;

impl ModelTable {
    /// What this table loads: `model`, or for an upstream model its `processor`.
    fn source(&self) -> anyhow::Result<&str> {
        match (&self.model, &self.processor, &self.upstream) {
            (Some(model), None, None) => Ok(model),
            (None, Some(processor), Some(_)) => Ok(processor),
            (_, None, Some(_)) => anyhow::bail!(
                "a model on an upstream engine needs `processor`: a folder or hub id with its config, tokenizer, \
                 chat template and preprocessor config (no weights), which Glimpse prepares images and counts tokens with"
            ),
            (_, Some(_), None) => anyhow::bail!("`processor` goes with `upstream`; a local model is named by `model`"),
            (Some(_), Some(_), Some(_)) => anyhow::bail!("give `processor` for an upstream model, not `model`"),
            (None, None, None) => anyhow::bail!("each [[model]] needs `model` (or `upstream` and `processor`)"),
        }
    }

    fn upstream(&self) -> anyhow::Result<Option<Upstream>> {
        let Some(url) = &self.upstream else {
            let upstream_only = [self.upstream_model.is_some(), self.upstream_api_key_env.is_some(), self.upstream_timeout_seconds.is_some(), self.structured_output.is_some()];
            if upstream_only.contains(&true) {
                anyhow::bail!("upstream_model, upstream_api_key_env, upstream_timeout_seconds and structured_output go with `upstream`");
            }
            return Ok(None);
        };
        let base_url = url::Url::parse(url).with_context(|| format!("upstream = {url:?} is not a URL"))?;
        if !matches!(base_url.scheme(), "http" | "https") {
            anyhow::bail!("upstream = {url:?}: the engine's base URL must be http or https");
        }
        let api_key = match &self.upstream_api_key_env {
            Some(var) => Some(std::env::var(var).with_context(|| format!("upstream_api_key_env = {var:?}: the variable is not set"))?),
            None => None,
        };
        Ok(Some(Upstream {
            base_url,
            model: self.upstream_model.clone().or_else(|| self.processor.clone()).unwrap_or_default(),
            api_key,
            max_concurrent: self.max_concurrent.unwrap_or(UPSTREAM_CONCURRENCY).max(1),
            read_timeout: std::time::Duration::from_secs(self.upstream_timeout_seconds.unwrap_or(UPSTREAM_TIMEOUT_SECONDS)),
            structured_output: self.structured_output.unwrap_or(true),
        }))
    }

    fn check(self, label: String) -> anyhow::Result<ModelConfig> {
        if self.name.as_deref().is_some_and(|name| name.is_empty() || name.contains('/')) {
            anyhow::bail!("a name must be non-empty and hold no '/'");
        }
        let source = self.source()?.to_string();
        let upstream = self.upstream()?;
        if upstream.is_some() && (self.isq.is_some() || self.dtype.is_some()) {
            anyhow::bail!("isq and dtype are the upstream engine's to choose");
        }
        if upstream.is_none() && self.max_concurrent.is_some() {
            anyhow::bail!("max_concurrent goes with `upstream`");
        }
        Ok(ModelConfig {
            name: self.name,
            source,
            aliases: self.aliases,
            isq: self.isq,
            dtype: self.dtype,
            max_output_tokens: self.max_output_tokens,
            upstream,
            label,
        })
    }
}

impl ConfigFile {
    /// Parses and checks a config file's text; errors name the table they are about.
    pub fn parse(text: &str) -> anyhow::Result<ConfigFile> {
        let file: RawFile = toml::from_str(text)?;
        let mut models = Vec::new();
        for (n, table) in file.models.into_iter().enumerate() {
            let label = format!(
                "[[model]] number {} ({})",
                n + 1,
                table.model.as_deref().or(table.upstream.as_deref()).unwrap_or_default()
            );
            models.push(table.check(label.clone()).with_context(|| label)?);
        }
        Ok(ConfigFile { mask_model: file.mask_model, models })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_tables_name_the_engine_and_the_processor() {
        std::env::set_var("GLIMPSE_TEST_UPSTREAM_KEY", "secret");
        let text = r#"
            [[model]]
            name = "qwen"
            upstream = "http://10.0.0.5:8000/v1"
            upstream_api_key_env = "GLIMPSE_TEST_UPSTREAM_KEY"
            processor = "Qwen/Qwen2.5-VL-7B-Instruct"
            aliases = ["gemini-2.5-flash"]
        "#;
        let config = ConfigFile::parse(text).unwrap();
        let [qwen] = config.models.as_slice() else { panic!("one model expected") };
        let upstream = qwen.upstream.as_ref().expect("upstream");
        assert_eq!(upstream.base_url.as_str(), "http://10.0.0.5:8000/v1");
        assert_eq!(upstream.model, "Qwen/Qwen2.5-VL-7B-Instruct");
        assert_eq!(upstream.api_key.as_deref(), Some("secret"));
        assert_eq!(qwen.source, "Qwen/Qwen2.5-VL-7B-Instruct");
        for (table, complaint) in [
            ("upstream = \"http://h/v1\"\n", "processor"),
            ("upstream = \"ftp://h/v1\"\nprocessor = \"p\"\n", "http or https"),
            ("model = \"m\"\nupstream_model = \"x\"\n", "go with `upstream`"),
            ("upstream = \"http://h/v1\"\nprocessor = \"p\"\nupstream_api_key_env = \"GLIMPSE_TEST_UNSET_KEY\"\n", "not set"),
            ("name = \"a/b\"\nmodel = \"m\"\n", "no '/'"),
            ("upstream = \"http://h/v1\"\nprocessor = \"p\"\nisq = \"q4k\"\n", "upstream engine's to choose"),
        ] {
            let error = ConfigFile::parse(&format!("[[model]]\n{table}")).unwrap_err();
            assert!(format!("{error:#}").contains(complaint), "{table}: {error:#}");
            assert!(format!("{error:#}").contains("number 1"), "{table}: {error:#}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let unknown = ConfigFile::parse("[[model]]\nmodel = \"x\"\nquant = \"q4k\"\n").unwrap_err();
        assert!(format!("{unknown:#}").contains("quant"), "{unknown:#}");
    }
}

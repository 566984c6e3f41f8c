//! [`LocalProcessor`]: a model's processor without its weights (config, tokenizer, chat template and
//! preprocessor config), for a model that another engine runs. It plans images and counts prompt tokens exactly
//! as the in-process engine does, so that a model behind an upstream engine answers countTokens and usage the
//! same way, and its boxes are converted with the sizes the model really saw.

use std::path::Path;

use glimpse_core::{GlimpseError, Prompt, PromptTokens};
use mistralrs_core::ChatTemplate;
use mistralrs_core::apply_chat_template_to;
use tokenizers::Tokenizer;

use crate::family::Family;
use crate::model_folder::{FolderError, ModelFolder};
use crate::prompt_builder::{prepare, PreparedPrompt};

pub struct LocalProcessor {
    pub folder: ModelFolder,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    image_token_id: u32,
}

impl LocalProcessor {
    /// Reads a model folder that may hold no weights. The chat template is `chat_template.jinja` where the folder
    /// has one (transformers' own precedence), else tokenizer_config.json's, else `chat_template.json`'s.
    pub fn open(dir: &Path) -> Result<LocalProcessor, FolderError> {
        let folder = ModelFolder::open_processor(dir)?;
        let read = |name: &str| {
            let path = folder.dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| FolderError::Io { path, source })
        };
        let mut template: ChatTemplate = serde_json::from_str(&read("tokenizer_config.json")?)
            .map_err(|source| FolderError::Json { path: folder.dir.join("tokenizer_config.json"), source })?;
        let literal = |text: String| Some(mistralrs_core::ChatTemplateValue(either::Either::Left(text)));
        if folder.dir.join("chat_template.jinja").is_file() {
            template.chat_template = literal(read("chat_template.jinja")?);
        } else if !template.has_chat_template() && folder.dir.join("chat_template.json").is_file() {
            let path = folder.dir.join("chat_template.json");
            let file: serde_json::Value =
                serde_json::from_str(&read("chat_template.json")?).map_err(|source| FolderError::Json { path, source })?;
            template.chat_template = file.get("chat_template").and_then(|t| t.as_str()).map(str::to_string).and_then(literal);
        }
        let tokenizer_path = folder.dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| FolderError::Unsupported(format!("{} cannot be read as a tokenizer: {e}", tokenizer_path.display())))?;
        let image_token = folder.family.image_token();
        let image_token_id = tokenizer
            .token_to_id(image_token)
            .ok_or_else(|| FolderError::Unsupported(format!("the tokenizer has no single token for the image token {image_token}")))?;
        Ok(LocalProcessor { folder, tokenizer, template, image_token_id })
    }

    pub fn family(&self) -> &Family {
        &self.folder.family
    }

    /// Messages and image plans; no pixel is decoded.
    pub fn prepare(&self, prompt: &Prompt) -> Result<PreparedPrompt, GlimpseError> {
        prepare(prompt, &self.folder.family)
    }

    /// The prompt tokens the model consumes: the chat template applied, each image placeholder expanded as the
    /// family's processor expands it, then tokenized (what [`crate::MistralRsEngine`] counts, without an engine).
    pub fn count(&self, prepared: &PreparedPrompt) -> Result<PromptTokens, GlimpseError> {
        let template = self.template.chat_template.as_ref().ok_or_else(|| GlimpseError::Engine("the model has no chat template".into()))?;
        let rendered = apply_chat_template_to(
            prepared.engine_messages(),
            true,
            None,
            None,
            template,
            self.template.bos_tok(),
            self.template.eos_tok(),
            self.template.unk_tok(),
            Vec::new(),
        )
        .map_err(|e| GlimpseError::invalid(format!("The model's chat template cannot render this conversation: {e}")))?;
        let expanded = self.folder.family.expand_placeholders(&rendered, &prepared.plans)?;
        let ids = self.encode(&expanded)?;
        let image = ids.iter().filter(|t| **t == self.image_token_id).count() as u32;
        Ok(PromptTokens { text: ids.len() as u32 - image, image })
    }

    /// Tokens of a model's answer (usage, where the engine reports none).
    pub fn count_text(&self, text: &str) -> Result<u32, GlimpseError> {
        Ok(self.encode(text)?.len() as u32)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, GlimpseError> {
        let encoding = self.tokenizer.encode_fast(text, false).map_err(|e| GlimpseError::Engine(format!("tokenization failed: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }
}

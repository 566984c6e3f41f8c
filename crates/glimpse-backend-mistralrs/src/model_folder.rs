//! A local Hugging Face model folder, checked before the engine sees it.
//!
//! mistralrs panics (and loses its engine thread) on several folder mistakes, so the files it needs are
//! checked here with messages that name the file. The engine is then pointed at a *staged* copy: symlinks to
//! the weights and tokenizer, plus a rewritten `preprocessor_config.json` whose pixel limits are wide open,
//! because Glimpse resizes each image to the request's own budget before the engine sees it.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

use crate::family::Family;

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("model folder {0} does not exist or is not a directory")]
    NotADirectory(PathBuf),
    #[error("model folder {dir} has no {file}: a Hugging Face model folder needs config.json, tokenizer.json, tokenizer_config.json (with a chat_template), preprocessor_config.json and *.safetensors weights")]
    Missing { dir: PathBuf, file: &'static str },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{0}")]
    Unsupported(String),
}

#[derive(Debug, Clone)]
pub struct ModelFolder {
    pub dir: PathBuf,
    /// The folder's name: the id clients can always address the model by.
    pub id: String,
    pub family: Family,
    pub max_position_embeddings: u32,
    pub generation_config: Value,
    preprocessor_config: Value,
}

fn read_json(path: &Path) -> Result<Value, FolderError> {
    let text = fs::read_to_string(path).map_err(|source| FolderError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|source| FolderError::Json { path: path.to_path_buf(), source })
}

/// A file the folder may leave out: Null when absent.
fn read_optional_json(path: &Path) -> Result<Value, FolderError> {
    if path.is_file() {
        read_json(path)
    } else {
        Ok(Value::Null)
    }
}

impl ModelFolder {
    pub fn open(dir: &Path) -> Result<Self, FolderError> {
        Self::read(dir, true)
    }

    /// A folder for the processor only (a model another engine runs): the same files, weights not needed.
    pub fn open_processor(dir: &Path) -> Result<Self, FolderError> {
        Self::read(dir, false)
    }

    fn read(dir: &Path, weights: bool) -> Result<Self, FolderError> {
        if !dir.is_dir() {
            return Err(FolderError::NotADirectory(dir.to_path_buf()));
        }
        for file in ["config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"] {
            if !dir.join(file).is_file() {
                return Err(FolderError::Missing { dir: dir.to_path_buf(), file });
            }
        }
        let has_weights = fs::read_dir(dir)
            .map_err(|source| FolderError::Io { path: dir.to_path_buf(), source })?
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"));
        if weights && !has_weights {
            return Err(FolderError::Missing { dir: dir.to_path_buf(), file: "*.safetensors" });
        }
        let tokenizer_config = read_json(&dir.join("tokenizer_config.json"))?;
        // The processor reads `chat_template.jinja` too (`LocalProcessor::open`); the engine's loader does not.
        let has_template = dir.join("chat_template.json").is_file() || (!weights && dir.join("chat_template.jinja").is_file());
        if tokenizer_config.get("chat_template").is_none() && !has_template {
            return Err(FolderError::Missing { dir: dir.to_path_buf(), file: "chat_template (in tokenizer_config.json)" });
        }
        let config = read_json(&dir.join("config.json"))?;
        let preprocessor_config = read_json(&dir.join("preprocessor_config.json"))?;
        let generation_config = read_optional_json(&dir.join("generation_config.json"))?;
        let processor_config = read_optional_json(&dir.join("processor_config.json"))?;
        let family = Family::detect(&config, &preprocessor_config, &processor_config).map_err(FolderError::Unsupported)?;
        let max_position_embeddings = config
            .get("max_position_embeddings")
            .or_else(|| config.pointer("/text_config/max_position_embeddings"))
            .and_then(Value::as_u64)
            .unwrap_or(32768) as u32;
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let id = canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        Ok(ModelFolder { dir: canonical, id, family, max_position_embeddings, generation_config, preprocessor_config })
    }

    /// Builds the staged folder under `root`. Each load gets a folder of its own, removed when the returned handle
    /// is dropped with the engine: it was named by model and process only, so two engines of one model in a
    /// process (the parity tests load them side by side) deleted each other's files while loading.
    pub fn stage(&self, root: &Path) -> Result<TempDir, FolderError> {
        fs::create_dir_all(root).map_err(|source| FolderError::Io { path: root.to_path_buf(), source })?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", self.id))
            .tempdir_in(root)
            .map_err(|source| FolderError::Io { path: root.to_path_buf(), source })?;
        let staged = dir.path();
        let entries = fs::read_dir(&self.dir).map_err(|source| FolderError::Io { path: self.dir.clone(), source })?;
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            if name == "preprocessor_config.json" {
                continue;
            }
            let target = staged.join(&name);
            symlink(&entry.path(), &target).map_err(|source| FolderError::Io { path: target.clone(), source })?;
        }
        let widened = self.family.widen_preprocessor(self.preprocessor_config.clone());
        let path = staged.join("preprocessor_config.json");
        let text = serde_json::to_string_pretty(&widened).unwrap_or_default();
        fs::write(&path, text).map_err(|source| FolderError::Io { path, source })?;
        Ok(dir)
    }
}

#[cfg(unix)]
fn symlink(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(src, dst)
}

#[cfg(not(unix))]
fn symlink(src: &Path, dst: &Path) -> std::io::Result<()> {
    fs::copy(src, dst).map(|_| ())
}

//! What can go wrong in the toolkit, mapped once onto the server's error type.

use glimpse_core::GlimpseError;

#[derive(Debug, thiserror::Error)]
pub enum ToolkitError {
    #[error("the toolkit model file {0} is missing (run scripts/setup-deps.sh, which fetches the optional ones)")]
    Missing(String),
    #[error("cannot load {file}: {reason}")]
    Load { file: String, reason: String },
    #[error("{model} failed: {reason}")]
    Run { model: String, reason: String },
    #[error("cannot read {file}: {reason}")]
    Labels { file: String, reason: String },
}

impl From<ToolkitError> for GlimpseError {
    fn from(e: ToolkitError) -> Self {
        match e {
            ToolkitError::Missing(_) => GlimpseError::FailedPrecondition(e.to_string()),
            _ => GlimpseError::Engine(e.to_string()),
        }
    }
}

//! Label files that ship beside the models.

use std::path::Path;

use crate::error::ToolkitError;

/// Non-empty lines of a text file, trimmed.
pub(crate) fn read_lines(path: &Path) -> Result<Vec<String>, ToolkitError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ToolkitError::Labels { file: path.display().to_string(), reason: e.to_string() })?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

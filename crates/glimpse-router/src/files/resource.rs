//! The File resource (docs/gemini-api.md §4.3) as JSON.

use glimpse_files::record::rfc3339;
use glimpse_files::{FileRecord, FileSource, FileState};
use serde_json::{json, Value};

/// `uri` is where a client can send the file back: `{public base}{prefix}/{version}/files/{id}`.
pub fn file_json(file: &FileRecord, api_base: &str, version: &str) -> Value {
    let mut value = json!({
        "name": format!("files/{}", file.id),
        "mimeType": file.mime_type,
        "sizeBytes": file.size_bytes.to_string(),
        "createTime": rfc3339(file.create_ms),
        "updateTime": rfc3339(file.update_ms),
        "expirationTime": rfc3339(file.expire_ms),
        "sha256Hash": file.sha256_base64,
        "uri": format!("{api_base}/{version}/files/{}", file.id),
        "state": file.state.as_str(),
        "source": file.source.as_str(),
    });
    if file.source == FileSource::Generated {
        value["downloadUri"] = json!(format!("{api_base}/download/{version}/files/{}:download?alt=media", file.id));
    }
    if let Some(name) = &file.display_name {
        value["displayName"] = json!(name);
    }
    if file.state == FileState::Failed {
        value["error"] = json!({"code": 3, "message": file.error.clone().unwrap_or_default()});
    }
    value
}

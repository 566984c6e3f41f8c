//! Rows: a stored file and an upload in progress.

use chrono::{DateTime, SecondsFormat, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Active,
    Failed,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Active => "ACTIVE",
            FileState::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> FileState {
        if s == "ACTIVE" {
            FileState::Active
        } else {
            FileState::Failed
        }
    }
}

/// Where a file's bytes came from: a client's upload, or the server (a batch job's results), which only the
/// latter may be downloaded (the File API's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSource {
    Uploaded,
    Generated,
}

impl FileSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FileSource::Uploaded => "UPLOADED",
            FileSource::Generated => "GENERATED",
        }
    }

    pub fn parse(s: Option<&str>) -> FileSource {
        if s == Some("GENERATED") {
            FileSource::Generated
        } else {
            FileSource::Uploaded
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub id: String,
    /// The project (API key) that owns the file; no other project can see it.
    pub project: String,
    pub display_name: Option<String>,
    pub mime_type: String,
    pub size_bytes: u64,
    /// Base64 of the SHA-256 digest, as the File resource's `sha256Hash`.
    pub sha256_base64: String,
    pub create_ms: i64,
    pub update_ms: i64,
    pub expire_ms: i64,
    pub state: FileState,
    /// Why the file is FAILED.
    pub error: Option<String>,
    /// Where the bytes are in the blob store; `None` for a FAILED file (its bytes are not kept).
    pub blob_key: Option<String>,
    pub source: FileSource,
}

impl FileRecord {
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_ms <= now_ms
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UploadSession {
    pub id: String,
    pub project: String,
    pub file_id: String,
    pub display_name: Option<String>,
    pub mime_type: Option<String>,
    /// `X-Goog-Upload-Header-Content-Length` (or the body's `sizeBytes`), when the client declared one.
    pub declared_size: Option<u64>,
    pub received: u64,
    pub create_ms: i64,
}

/// A stored interaction (Interactions API with `store: true`): its own turn's input and output steps as the
/// JSON the API answers with; a conversation is the chain of `previous_id`s.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionRecord {
    pub id: String,
    pub project: String,
    pub previous_id: Option<String>,
    pub create_ms: i64,
    pub expire_ms: i64,
    /// The `Interaction` resource (with `user_input` steps), serialised.
    pub body: String,
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// RFC 3339 in UTC with microseconds and `Z`, the File API's timestamp form.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// RFC 3339 in UTC to the second (`YYYY-MM-DDThh:mm:ssZ`), the Interactions API's timestamp form.
pub fn rfc3339_seconds(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(super::rfc3339(1_767_225_600_123), "2026-01-01T00:00:00.123000Z");
        assert_eq!(super::rfc3339_seconds(1_767_225_600_123), "2026-01-01T00:00:00Z");
    }
}

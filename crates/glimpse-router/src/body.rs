//! Reading a JSON request body under the size cap, with Google-format errors for every failure.

use axum::body::Body;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::json_keys;

/// Reads at most `limit` bytes; a larger body is refused with 413 before it is buffered.
pub async fn read_limited(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::body_too_large(limit))
}

/// Parses a Gemini (proto-JSON) body: keys normalised to camelCase outside free-form maps, then typed.
pub fn parse_gemini<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::invalid("Request contains an invalid argument: the request body is empty."));
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))?;
    json_keys::normalize_gemini(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        ApiError::invalid(format!("Invalid JSON payload received. Invalid value at '{}': {}", e.path(), e.inner()))
    })
}

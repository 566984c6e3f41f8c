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
    gemini_from_value(parse_json(bytes)?)
}

/// Any JSON request body (Gemini, Interactions, OpenAI), with the Google error for empty or broken JSON.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::invalid("Request contains an invalid argument: the request body is empty."));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))
}

/// A JSON object body read under the size cap (the Interactions and OpenAI requests).
pub async fn read_json_object(body: Body, limit: usize) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    match parse_json(&read_limited(body, limit).await?)? {
        serde_json::Value::Object(object) => Ok(object),
        _ => Err(ApiError::invalid("The request body must be a JSON object.")),
    }
}

/// A Gemini request held as JSON, typed (keys normalised first).
pub(crate) fn gemini_from_value<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, ApiError> {
    json_keys::normalize_gemini(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        ApiError::invalid(format!("Invalid JSON payload received. Invalid value at '{}': {}", e.path(), e.inner()))
    })
}

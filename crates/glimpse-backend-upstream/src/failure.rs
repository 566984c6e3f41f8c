//! What a client is told when the engine fails: Google's statuses, the engine's own message where it is about
//! the request (its 4xx), and never the engine's address or internals (those go to the log).

use glimpse_core::GlimpseError;
use serde_json::Value;

/// A transport failure: the engine did not answer, or stopped answering.
pub(crate) fn transport(model: &str, error: &reqwest::Error) -> GlimpseError {
    tracing::warn!(model, error = %error, "upstream engine request failed");
    if error.is_timeout() {
        GlimpseError::DeadlineExceeded(format!("The engine serving model {model} did not answer in time."))
    } else {
        GlimpseError::Unavailable(format!("The engine serving model {model} cannot be reached; try again later."))
    }
}

/// An HTTP error answer from the engine. A request the engine refuses (400, 413, 422: too long a prompt, a schema
/// it cannot compile) is the client's to fix, with the engine's message; 429 is the engine's queue being full,
/// passed on so the client backs off; anything else (401/403/404: Glimpse's configuration; 5xx: the engine) is
/// 503 for the client, with the details logged.
pub(crate) fn status(model: &str, status: reqwest::StatusCode, body: &[u8]) -> GlimpseError {
    let message = engine_message(body);
    tracing::warn!(model, status = status.as_u16(), message = %message, "upstream engine refused a request");
    match status.as_u16() {
        400 | 413 | 422 => GlimpseError::invalid(format!("The engine serving model {model} refused the request: {message}")),
        429 => GlimpseError::Overloaded(format!("The engine serving model {model} is busy; retry shortly.")),
        _ => GlimpseError::Unavailable(format!(
            "The engine serving model {model} failed (HTTP {}); try again later.",
            status.as_u16()
        )),
    }
}

/// `{"error": {"message": …}}` (OpenAI, vLLM, llama-server), `{"error": "…"}` (Ollama), `{"message": …}`, or
/// the body's first line; cut short, as it is echoed to a client.
pub(crate) fn engine_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message").or_else(|| v.get("error").filter(|e| e.is_string())).or_else(|| v.get("message"))
        })
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| text.lines().next().unwrap_or_default().to_string());
    let mut message: String = message.chars().take(300).collect();
    if message.trim().is_empty() {
        message = "no reason given".into();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_messages_are_found_in_each_engines_shape() {
        assert_eq!(engine_message(br#"{"error":{"message":"prompt too long","code":400}}"#), "prompt too long");
        assert_eq!(engine_message(br#"{"error":"model not found"}"#), "model not found");
        assert_eq!(engine_message(b"Bad Request\nmore"), "Bad Request");
        assert_eq!(engine_message(b""), "no reason given");
        let refused = status("qwen", reqwest::StatusCode::BAD_REQUEST, br#"{"error":{"message":"bad schema"}}"#);
        assert!(matches!(&refused, GlimpseError::InvalidArgument(m) if m.contains("bad schema")));
        assert!(matches!(status("qwen", reqwest::StatusCode::INTERNAL_SERVER_ERROR, b"trace"), GlimpseError::Unavailable(m) if !m.contains("trace")));
        assert!(matches!(status("qwen", reqwest::StatusCode::TOO_MANY_REQUESTS, b""), GlimpseError::Overloaded(_)));
    }
}

//! The CachedContent resource as JSON, and its expiry (`ttl` as a proto Duration, or `expireTime`).

use glimpse_files::caches::CacheRecord;
use glimpse_files::record::rfc3339;
use serde_json::{json, Value};

use crate::error::ApiError;

/// Gemini's default time to live for a cache: one hour.
pub const DEFAULT_TTL_MS: i64 = 3600 * 1000;

pub fn cache_json(cache: &CacheRecord) -> Value {
    let mut value = json!({
        "name": format!("cachedContents/{}", cache.id),
        "model": cache.model,
        "createTime": rfc3339(cache.create_ms),
        "updateTime": rfc3339(cache.update_ms),
        "expireTime": rfc3339(cache.expire_ms),
        "usageMetadata": {"totalTokenCount": cache.token_count},
    });
    if let Some(name) = &cache.display_name {
        value["displayName"] = json!(name);
    }
    value
}

/// The expiry a create or update body asks for: `ttl` ("3600s", "1.5s") from `now_ms`, or `expireTime` (RFC
/// 3339); `None` when it names neither. Both at once, a malformed value or a time in the past is 400.
pub fn expiry(body: &Value, now_ms: i64) -> Result<Option<i64>, ApiError> {
    let given = |key: &str| body.get(key).filter(|v| !v.is_null());
    match (given("ttl"), given("expireTime")) {
        (Some(_), Some(_)) => Err(ApiError::invalid("Set either ttl or expireTime, not both.")),
        (Some(ttl), None) => {
            let seconds = ttl
                .as_str()
                .and_then(|s| s.trim().strip_suffix('s'))
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e11)
                .ok_or_else(|| ApiError::invalid(format!("Invalid ttl {ttl}: expected a positive duration such as \"3600s\".")))?;
            Ok(Some(now_ms + (seconds * 1000.0) as i64))
        }
        (None, Some(time)) => {
            let at = time
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .ok_or_else(|| ApiError::invalid(format!("Invalid expireTime {time}: expected an RFC 3339 timestamp.")))?
                .timestamp_millis();
            if at <= now_ms {
                return Err(ApiError::invalid("expireTime must be in the future."));
            }
            Ok(Some(at))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_reads_ttl_and_expire_time_as_upstream() {
        assert_eq!(expiry(&json!({"ttl": "300s"}), 1000).unwrap(), Some(301_000));
        assert_eq!(expiry(&json!({"ttl": "1.5s"}), 0).unwrap(), Some(1500));
        assert_eq!(expiry(&json!({"expireTime": "2030-01-01T00:00:00Z"}), 0).unwrap(), Some(1_893_456_000_000));
        assert_eq!(expiry(&json!({}), 0).unwrap(), None);
        for bad in [json!({"ttl": "300"}), json!({"ttl": "-5s"}), json!({"ttl": 300}), json!({"expireTime": "soon"}),
                    json!({"ttl": "5s", "expireTime": "2030-01-01T00:00:00Z"}), json!({"expireTime": "2000-01-01T00:00:00Z"})] {
            assert!(expiry(&bad, 1_950_000_000_000).is_err(), "{bad}");
        }
    }
}

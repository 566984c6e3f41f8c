//! API keys. Each key is a project: files and stored interactions are visible only to the key that made
//! them. Keys come from `x-goog-api-key`, `?key=` or `Authorization: Bearer` (docs/gemini-api.md §1.3).
//!
//! "Open" mode accepts any key (for local use); it still keeps each key's files apart, and a request without
//! a key gets the shared project `local`.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use glimpse_core::Code;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

pub enum Auth {
    Open,
    /// key → project
    Keys(HashMap<String, String>),
}

/// Who is calling: the project whose files the request may use.
#[derive(Debug, Clone)]
pub struct Caller {
    pub project: String,
}

/// A stable project name for a key that does not reveal the key (it names blob folders and database rows).
pub fn project_for_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("k{}", digest.iter().take(10).map(|b| format!("{b:02x}")).collect::<String>())
}

impl Auth {
    pub fn with_keys(keys: impl IntoIterator<Item = String>) -> Auth {
        Auth::Keys(
            keys.into_iter()
                .map(|key| {
                    let project = project_for_key(&key);
                    (key, project)
                })
                .collect(),
        )
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Auth::Open)
    }

    pub fn authenticate(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Caller, ApiError> {
        let key = presented_key(headers, query);
        match (self, key) {
            (Auth::Open, Some(key)) => Ok(Caller { project: project_for_key(&key) }),
            (Auth::Open, None) => Ok(Caller { project: "local".into() }),
            (Auth::Keys(keys), Some(key)) => match keys.get(&key) {
                Some(project) => Ok(Caller { project: project.clone() }),
                None => Err(invalid_key()),
            },
            (Auth::Keys(_), None) => Err(unregistered_caller()),
        }
    }
}

fn presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(key) = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim().to_string()).filter(|k| !k.is_empty());
    }
    if let Some(key) = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes()).find(|(name, _)| name == "key").map(|(_, v)| v.into_owned())
    }) {
        return Some(key).filter(|k| !k.is_empty());
    }
    let auth = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string()).filter(|k| !k.is_empty())
}

fn invalid_key() -> ApiError {
    let mut err = ApiError::new(Code::InvalidArgument, "API key not valid. Please pass a valid API key.");
    err.details.push(json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"}
    }));
    err
}

/// Middleware on every keyed route: puts the [`Caller`] in the request's extensions, or answers the Google auth
/// error. No query string or path shape exempts a request; the one route that may go without a key (an upload's
/// continuation) has its own layer, [`upload_caller`].
pub async fn require_caller(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match state.auth.authenticate(request.headers(), request.uri().query()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

/// The credential of a resumable upload's continuation: the `upload_id` of the URL this server handed out in
/// `X-Goog-Upload-URL`. The Python SDK sends no API key on chunks, so the id (unguessable, ~206 bits) is what
/// authorises them; the upload handler accepts it only for an upload that exists and is unfinished, and acts as
/// that upload's project.
#[derive(Debug, Clone)]
pub struct UploadContinuation(pub String);

/// Middleware on the upload route (`POST /upload/{v}/files`) only. A start request needs a key like any other;
/// a continuation carries [`UploadContinuation`] instead, plus a [`Caller`] when it also presents a key (the JS
/// SDK does), which must then be valid.
pub async fn upload_caller(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let continuation = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes()).find(|(name, _)| name == "upload_id").map(|(_, v)| v.into_owned())
    });
    let Some(upload_id) = continuation else {
        return require_caller(State(state), request, next).await;
    };
    if presented_key(request.headers(), request.uri().query()).is_some() {
        match state.auth.authenticate(request.headers(), request.uri().query()) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
            }
            Err(err) => return err.into_response(),
        }
    }
    request.extensions_mut().insert(UploadContinuation(upload_id));
    next.run(request).await
}

fn unregistered_caller() -> ApiError {
    ApiError::new(
        Code::PermissionDenied,
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    )
}

/// Handlers take the caller as an extractor: a route that somehow ran without the auth layer answers the
/// Google auth error, never axum's "missing extension" 500.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(unregistered_caller)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for UploadContinuation {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<UploadContinuation>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn keys_map_to_separate_projects() {
        let auth = Auth::with_keys(["alpha".to_string(), "beta".to_string()]);
        let a = auth.authenticate(&headers(&[("x-goog-api-key", "alpha")]), None).unwrap();
        let b = auth.authenticate(&HeaderMap::new(), Some("key=beta")).unwrap();
        let a2 = auth.authenticate(&headers(&[("authorization", "Bearer alpha")]), None).unwrap();
        assert_ne!(a.project, b.project);
        assert_eq!(a.project, a2.project);
        assert!(!a.project.contains("alpha"));
    }

    #[test]
    fn missing_and_unknown_keys_get_googles_errors() {
        let auth = Auth::with_keys(["alpha".to_string()]);
        let missing = auth.authenticate(&HeaderMap::new(), None).unwrap_err();
        assert_eq!((missing.http_status, missing.code), (403, Code::PermissionDenied));
        let wrong = auth.authenticate(&headers(&[("x-goog-api-key", "nope")]), None).unwrap_err();
        assert_eq!((wrong.http_status, wrong.code), (400, Code::InvalidArgument));
        assert_eq!(wrong.to_json()["error"]["details"][0]["reason"], "API_KEY_INVALID");
    }

    #[test]
    fn open_mode_accepts_anything_but_keeps_keys_apart() {
        let auth = Auth::Open;
        let a = auth.authenticate(&headers(&[("x-goog-api-key", "one")]), None).unwrap();
        let b = auth.authenticate(&headers(&[("x-goog-api-key", "two")]), None).unwrap();
        assert_ne!(a.project, b.project);
        assert_eq!(auth.authenticate(&HeaderMap::new(), None).unwrap().project, "local");
    }
}

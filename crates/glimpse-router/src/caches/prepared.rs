//! A cache's contents ready to prepend: parsed, images checked and held (decoded on demand through the pixel
//! cache), kept in memory per replica up to a byte budget, least recently used first out. The database holds
//! the cache itself, so a replica that never saw it, or evicted it, prepares it again from there.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use glimpse_core::{Engine, GenerateRequest, GlimpseError, Part, Prompt, Turn};
use hashlink::LinkedHashMap;
use serde_json::{json, Value};

use super::cache_id;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::gemini::types::Content;
use crate::remote_media::RemoteMedia;
use crate::AppState;

/// What a cache adds to a request: its system instruction and its turns.
#[derive(Debug, Clone)]
pub struct PreparedPrompt {
    pub system: Option<String>,
    pub turns: Vec<Turn>,
}

impl PreparedPrompt {
    pub fn as_prompt(&self) -> Prompt {
        Prompt { system: self.system.clone(), turns: self.turns.clone(), media_resolution: None }
    }

    /// Image bytes held (what the memory budget counts).
    fn bytes(&self) -> usize {
        let images = self.turns.iter().flat_map(|turn| &turn.parts).filter_map(|part| match part {
            Part::Image(image) => Some(image.source.bytes().len()),
            Part::Text(_) => None,
        });
        images.sum::<usize>() + 1024
    }
}

/// The stored form of a cache's contents with every `fileData` reference replaced by the bytes it names
/// (`inlineData`), so that the cache keeps what it was made of after the file expires or the URL changes.
pub async fn inline_references(contents: Option<Value>, remote: &RemoteMedia<'_>) -> Result<Value, ApiError> {
    let mut contents = match contents {
        None | Some(Value::Null) => return Ok(json!([])),
        Some(contents @ Value::Array(_)) => contents,
        Some(_) => return Err(ApiError::invalid("contents must be a list of Content.")),
    };
    for content in contents.as_array_mut().into_iter().flatten() {
        let Some(parts) = content.get_mut("parts").and_then(Value::as_array_mut) else { continue };
        for part in parts {
            let Some(reference) = part.get("fileData").filter(|d| d.is_object()) else { continue };
            let uri = reference.get("fileUri").and_then(Value::as_str).unwrap_or_default().to_string();
            let declared = reference.get("mimeType").and_then(Value::as_str).map(str::to_string);
            let loaded = remote.load(&uri).await?;
            let mime = loaded.format.map(|f| f.mime().to_string()).or(declared).unwrap_or_else(|| "application/octet-stream".into());
            let data = base64::engine::general_purpose::STANDARD.encode(&loaded.bytes);
            if let Some(part) = part.as_object_mut() {
                part.remove("fileData");
                part.insert("inlineData".into(), json!({"mimeType": mime, "data": data}));
            }
        }
    }
    Ok(contents)
}

/// Parses and checks a stored cache body (`{"contents", "systemInstruction"}`): the images' headers are read
/// and the request limits applied, as for any request.
pub async fn prepare(stored: &Value, state: &AppState) -> Result<PreparedPrompt, ApiError> {
    let contents: Vec<Content> = crate::body::gemini_from_value(stored.get("contents").cloned().unwrap_or(json!([])))?;
    let system: Option<Content> = crate::body::gemini_from_value(stored.get("systemInstruction").cloned().unwrap_or(Value::Null))?;
    if contents.is_empty() && system.is_none() {
        return Err(ApiError::invalid("A CachedContent needs contents or a systemInstruction."));
    }
    let system = system.map(crate::gemini::system_text).transpose()?;
    let turns = if contents.is_empty() {
        Vec::new()
    } else {
        // Every reference was inlined when the cache was made: nothing is loaded from elsewhere here.
        let inline_only = RemoteMedia { files: None, fetcher: None, project: "" };
        crate::gemini::convert_contents(contents, &state.limits, &inline_only).await?
    };
    Ok(PreparedPrompt { system, turns })
}

/// Prepared caches of this replica, by id, within a byte budget.
pub struct PreparedCaches {
    capacity_bytes: usize,
    entries: Mutex<(LinkedHashMap<String, Arc<PreparedPrompt>>, usize)>,
}

impl PreparedCaches {
    pub fn new(capacity_bytes: usize) -> PreparedCaches {
        PreparedCaches { capacity_bytes, entries: Mutex::new((LinkedHashMap::new(), 0)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (LinkedHashMap<String, Arc<PreparedPrompt>>, usize)> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn insert(&self, id: &str, prompt: PreparedPrompt) -> Arc<PreparedPrompt> {
        let prompt = Arc::new(prompt);
        let size = prompt.bytes();
        if size > self.capacity_bytes {
            return prompt;
        }
        let mut guard = self.lock();
        let (map, bytes) = &mut *guard;
        if let Some(old) = map.insert(id.to_string(), prompt.clone()) {
            *bytes -= old.bytes();
        }
        *bytes += size;
        while *bytes > self.capacity_bytes {
            let Some((_, evicted)) = map.pop_front() else { break };
            *bytes -= evicted.bytes();
        }
        prompt
    }

    fn get(&self, id: &str) -> Option<Arc<PreparedPrompt>> {
        self.lock().0.to_back(id).cloned()
    }

    pub fn remove(&self, id: &str) {
        let mut guard = self.lock();
        let (map, bytes) = &mut *guard;
        if let Some(old) = map.remove(id) {
            *bytes -= old.bytes();
        }
    }
}

impl Default for PreparedCaches {
    fn default() -> Self {
        PreparedCaches::new(256 * 1024 * 1024)
    }
}

/// Puts the cache `name` in front of `request` for `engine`: its system instruction and turns. The cache must
/// be the caller's, unexpired, and made for the same model (400 otherwise, as upstream). Returns the cache's
/// token count (`cachedContentTokenCount`).
pub async fn apply_cached_content(
    state: &AppState,
    caller: &Caller,
    engine: &Arc<dyn Engine>,
    name: &str,
    request: &mut GenerateRequest,
) -> Result<u32, ApiError> {
    let store = super::store(state)?;
    let id = cache_id(name)?;
    let record = store.cache(&caller.project, id, false).await?;
    let same_model = state.registry.resolve(&record.model).is_some_and(|cached| cached.info().id == engine.info().id);
    if !same_model {
        return Err(GlimpseError::invalid(format!(
            "Model used by GenerateContent request (models/{}) and CachedContent ({}) has to be the same.",
            engine.info().id,
            record.model
        ))
        .into());
    }
    let prepared = match state.prepared_caches.get(id) {
        Some(prepared) => prepared,
        None => {
            let stored = store.cache(&caller.project, id, true).await?;
            let body: Value = serde_json::from_str(&stored.body)
                .map_err(|e| GlimpseError::Storage(format!("cached content {id} is unreadable: {e}")))?;
            state.prepared_caches.insert(id, prepare(&body, state).await?)
        }
    };
    request.prompt.system = prepared.system.clone();
    let own = std::mem::take(&mut request.prompt.turns);
    request.prompt.turns = prepared.turns.iter().cloned().chain(own).collect();
    Ok(u32::try_from(record.token_count).unwrap_or(u32::MAX))
}

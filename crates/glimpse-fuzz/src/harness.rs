//! The server a fuzz target talks to: Glimpse's real router (authentication, body budget, parsers, the File
//! API on SQLite and a blob folder, error mapping) in this process, over an engine that decodes every image it
//! is given and answers a few words. Requests go through `tower::ServiceExt::oneshot`, so one costs what the
//! router costs, without sockets.
//!
//! Every answer is checked for what a client must never see, whatever it sent: a 5xx (an input is never the
//! server's fault, and this engine never fails), an error that is not Google's envelope with the HTTP status
//! as its `code`, or a server path or panic message in the body.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use futures::stream;
use glimpse_core::media::ImageLimits;
use glimpse_core::{
    Engine, FinishReason, GenerateRequest, GenerationEvent, GenerationStream, GlimpseError, ModelInfo, ModelRegistry,
    Part, Prompt, PromptTokens, RequestLimits, Usage,
};
use glimpse_files::{FileStore, FileStoreConfig};
use glimpse_router::auth::Auth;
use glimpse_router::{app, AppState};
use tower::ServiceExt;

/// The model every target's requests name (also reachable as `gemini-2.5-flash`, the name the seeds use).
pub const MODEL: &str = "echo";

/// Per-image limits small enough that an image within them decodes in milliseconds and a few megabytes: the
/// fuzzer's allocation limit then catches any decoder that allocates from an unchecked header.
pub const IMAGE_LIMITS: ImageLimits = ImageLimits { max_pixels: 1 << 20, max_side: 4096 };

/// An engine that decodes each image at a small planned size, as a model's processor would, and says "ok".
struct Echo {
    info: ModelInfo,
}

fn images(prompt: &Prompt) -> impl Iterator<Item = &glimpse_core::ImageInput> {
    prompt.turns.iter().flat_map(|t| &t.parts).filter_map(|p| if let Part::Image(i) = p { Some(i) } else { None })
}

#[async_trait]
impl Engine for Echo {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn count_tokens(&self, prompt: &Prompt) -> Result<PromptTokens, GlimpseError> {
        let text: usize = prompt
            .turns
            .iter()
            .flat_map(|t| &t.parts)
            .map(|p| if let Part::Text(t) = p { t.len() / 4 + 1 } else { 0 })
            .sum();
        Ok(PromptTokens { text: text.min(u32::MAX as usize) as u32, image: images(prompt).count() as u32 })
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerationStream, GlimpseError> {
        for image in images(&request.prompt) {
            let source = &image.source;
            source.pixels(source.width().min(48), source.height().min(48))?;
        }
        let usage = Usage { prompt: self.count_tokens(&request.prompt).await?, output: 1, cached_prompt: 0 };
        let events = vec![Ok(GenerationEvent::Text("ok".into())), Ok(GenerationEvent::Done { finish: FinishReason::Stop, usage })];
        Ok(Box::pin(stream::iter(events)))
    }
}

pub struct Server {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    data_dir: PathBuf,
}

/// What came back.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The process's one server (a fuzzer calls a target millions of times; the database and router are built once).
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

impl Server {
    fn start() -> Server {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        // GLIMPSE_FUZZ_DATA: where the File API's database and blobs go (scripts/fuzz.sh puts it under out/);
        // else a fresh folder in the temp dir, removed by `Server::remove_data`.
        let data_dir = std::env::var_os("GLIMPSE_FUZZ_DATA").map(PathBuf::from).unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
            std::env::temp_dir().join(format!("glimpse-fuzz-{}-{nanos}", std::process::id()))
        });
        let config = FileStoreConfig {
            data_dir: data_dir.clone(),
            database_url: None,
            blob_url: None,
            max_file_bytes: 64 * 1024 * 1024,
            project_quota_bytes: 1 << 40,
            ttl: Duration::from_secs(3600),
            interaction_ttl: Duration::from_secs(3600),
        };
        let files = runtime.block_on(FileStore::open(config)).expect("the fuzz file store opens");
        let info = ModelInfo {
            id: MODEL.into(),
            display_name: "Echo".into(),
            description: String::new(),
            family: "fuzz".into(),
            input_token_limit: 1 << 20,
            output_token_limit: 64,
            concurrency: 4,
        };
        let mut registry = ModelRegistry::new();
        registry.add(Arc::new(Echo { info }), &["gemini-2.5-flash".to_string()]);
        let limits = RequestLimits { image: IMAGE_LIMITS, max_request_pixels: 8 << 20, ..RequestLimits::default() };
        let router = app(AppState {
            registry: Arc::new(registry),
            limits: Arc::new(limits),
            auth: Arc::new(Auth::Open),
            files: Some(Arc::new(files)),
            fetcher: None,
            public_url: Some("http://127.0.0.1:9".into()),
            path_prefix: String::new(),
            metrics: None,
            draining: Arc::default(),
            body_budget: None,
            body_read_timeout: None,
            prepared_caches: Arc::default(),
            cache_min_tokens: 0,
            batch_wakeup: Arc::default(),
            batch_share: 1,
        });
        Server { runtime, router, data_dir }
    }

    /// Sends one request and checks the answer (see the module's doc); panics, so the fuzzer reports it, when
    /// a check fails.
    pub fn call(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        self.call_within(&[], method, uri, headers, body)
    }

    /// [`Server::call`] for one request of a sequence whose whole input is `sequence`: what an earlier request
    /// sent (a resumable upload's display name) may come back in a later answer (the finalized file).
    pub fn call_within(&self, sequence: &[u8], method: &str, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut request = Request::builder().method(method).uri(uri).header("x-goog-api-key", "fuzz");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        // Everything the request carried (path, header values, body) may come back in an error's message.
        let mut sent = String::from_utf8_lossy(&body).into_owned();
        sent.push('\n');
        sent.push_str(&String::from_utf8_lossy(sequence));
        for piece in std::iter::once(uri).chain(headers.iter().map(|(_, value)| *value)) {
            sent.push('\n');
            sent.push_str(piece);
        }
        let Ok(request) = request.body(Body::from(body)) else { return Answer { status: 0, headers: HeaderMap::new(), body: Vec::new() } };
        let answer = self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.expect("the router answers");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("the body is readable");
            Answer { status, headers, body: body.to_vec() }
        });
        self.check(uri, &answer, &sent);
        if std::env::var_os("GLIMPSE_FUZZ_SHOW").is_some() {
            eprintln!("{method} {uri} -> {} {}", answer.status, String::from_utf8_lossy(&answer.body[..answer.body.len().min(160)]));
        }
        answer
    }

    fn check(&self, uri: &str, answer: &Answer, sent: &str) {
        // A stream's error is its last event, after a 200; only what it shows is checked.
        let text = String::from_utf8_lossy(&answer.body);
        assert!(answer.status < 500, "{uri} answered {}: {text}", answer.status);
        // What the request itself carried may come back (a display name, a field name, a header's value), also
        // lowercased (an unknown upload command is echoed so).
        let data_dir = self.data_dir.to_string_lossy();
        let markers = [data_dir.as_ref(), env!("CARGO_MANIFEST_DIR"), "panicked at", "stack backtrace"];
        let sent = sent.to_lowercase();
        for leak in markers.into_iter().filter(|m| !sent.contains(&m.to_lowercase())) {
            assert!(!text.contains(leak), "{uri} answered {} showing {leak:?}: {text}", answer.status);
        }
        if answer.status >= 400 {
            let envelope = answer.json().unwrap_or_else(|| panic!("{uri} answered {} without JSON: {text}", answer.status));
            let error = &envelope["error"];
            assert!(error["message"].is_string(), "{uri}: an error without a message: {text}");
            if uri.contains("/interactions") {
                // The Interactions API's own shape: a lowercase string code (interactions/error.rs).
                assert!(error["code"].as_str().is_some_and(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')), "{uri}: {text}");
            } else {
                assert_eq!(error["code"].as_u64(), Some(u64::from(answer.status)), "{uri}: not a Google envelope: {text}");
                assert!(error["status"].is_string(), "{uri}: not a Google envelope: {text}");
            }
        }
    }

    /// Deletes what an answer says was made (a file, a cache, a batch job, a stored interaction), so a long
    /// run's database stays small.
    pub fn delete_made(&self, answer: &Answer) {
        let Some(json) = answer.json() else { return };
        let made = [&json["file"]["name"], &json["name"]]
            .into_iter()
            .filter_map(|n| n.as_str())
            .find(|n| ["files/", "cachedContents/", "batches/"].iter().any(|kind| n.starts_with(kind)))
            .map(str::to_string)
            .or_else(|| json["id"].as_str().filter(|id| id.starts_with("v1_")).map(|id| format!("interactions/{id}")));
        if let Some(name) = made.filter(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))) {
            self.call("DELETE", &format!("/v1beta/{name}"), &[], Vec::new());
        }
    }

    /// Removes the File API's folder (the short pass calls it when it is done; a fuzzer never returns).
    pub fn remove_data(&self) {
        if std::env::var_os("GLIMPSE_FUZZ_DATA").is_none() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

//! The router as a client meets it, without a model: `app()` driven with `tower::ServiceExt::oneshot` over
//! engines that play a script (a clean answer with empty deltas, an answer cut off, a failure mid-stream, a
//! failure before any output). Checks the error mapping of every surface and the stream driver's guarantees:
//! no empty chunk, and every stream ends with its finish or an error, never silently.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::stream;
use glimpse_core::{
    Engine, FinishReason, GenerateRequest, GenerationEvent, GenerationStream, GlimpseError, ModelInfo, ModelRegistry,
    Prompt, PromptTokens, RequestLimits, Usage,
};
use glimpse_router::auth::Auth;
use glimpse_router::{app, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

/// What a scripted engine's stream does.
#[derive(Clone, Copy)]
enum Script {
    /// "Hel", "", "lo", then Done.
    Answer,
    /// "Hel", then the stream ends without Done.
    CutShort,
    /// "Hel", then an engine failure whose text carries a backtrace.
    FailMidway,
    /// A failure before the first token.
    FailAtStart,
}

struct Scripted {
    info: ModelInfo,
    script: Script,
}

fn scripted(id: &str, script: Script) -> Arc<dyn Engine> {
    let info = ModelInfo {
        id: id.into(),
        display_name: id.into(),
        description: String::new(),
        family: "stub".into(),
        input_token_limit: 1000,
        output_token_limit: 100,
        concurrency: 4,
    };
    Arc::new(Scripted { info, script })
}

#[async_trait]
impl Engine for Scripted {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn count_tokens(&self, _prompt: &Prompt) -> Result<PromptTokens, GlimpseError> {
        Ok(PromptTokens { text: 3, image: 0 })
    }

    async fn generate(&self, _request: GenerateRequest) -> Result<GenerationStream, GlimpseError> {
        let text = |t: &str| Ok(GenerationEvent::Text(t.into()));
        let done = Ok(GenerationEvent::Done {
            finish: FinishReason::Stop,
            usage: Usage { prompt: PromptTokens { text: 3, image: 0 }, output: 2, cached_prompt: 0 },
        });
        let events = match self.script {
            Script::Answer => vec![text("Hel"), text(""), text("lo"), done],
            Script::CutShort => vec![text("Hel")],
            Script::FailMidway => {
                vec![text("Hel"), Err(GlimpseError::Engine("shape mismatch\n   0: candle_core::bt".into()))]
            }
            Script::FailAtStart => return Err(GlimpseError::Unavailable("The engine is restarting.".into())),
        };
        Ok(Box::pin(stream::iter(events)))
    }
}

fn router() -> axum::Router {
    let mut registry = ModelRegistry::new();
    registry.add(scripted("answer", Script::Answer), &[]);
    registry.add(scripted("cut", Script::CutShort), &[]);
    registry.add(scripted("fail", Script::FailMidway), &[]);
    registry.add(scripted("busy", Script::FailAtStart), &[]);
    app(AppState {
        registry: Arc::new(registry),
        limits: Arc::new(RequestLimits { max_inline_bytes: 30_000, ..RequestLimits::default() }),
        auth: Arc::new(Auth::Open),
        files: None,
        fetcher: None,
        public_url: None,
        path_prefix: String::new(),
        metrics: None,
        draining: Arc::default(),
        body_budget: None,
        body_read_timeout: None,
        prepared_caches: Arc::default(),
        cache_min_tokens: 0,
        batch_wakeup: Arc::default(),
        batch_share: 1,
    })
}

struct Answer {
    status: StatusCode,
    request_id: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `data:` payloads of an SSE body, parsed.
    fn events(&self) -> Vec<Value> {
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad event ({e}): {d}")))
            .collect()
    }
}

async fn call(method: &str, uri: &str, body: Value) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-goog-api-key", "k")
        .header("content-type", "application/json")
        .body(if body.is_null() { Body::empty() } else { Body::from(body.to_string()) })
        .unwrap();
    let response = router().oneshot(request).await.unwrap();
    let status = response.status();
    let request_id = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Answer { status, request_id, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

fn hello() -> Value {
    json!({"contents": [{"parts": [{"text": "hi"}]}]})
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn interaction(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "input": "hi"})
}

#[tokio::test]
async fn a_clean_stream_has_no_empty_chunk_and_ends_with_its_finish() {
    let gemini = call("POST", "/v1beta/models/answer:streamGenerateContent?alt=sse", hello()).await;
    let chunks = gemini.events();
    let texts: Vec<&str> =
        chunks.iter().map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Hel", "lo"]);
    assert_eq!(chunks.last().unwrap()["candidates"][0]["finishReason"], "STOP");

    let openai = call("POST", "/v1beta/openai/chat/completions", chat("answer", true)).await;
    assert!(openai.body.trim_end().ends_with("data: [DONE]"), "{}", openai.body);
    let chunks = openai.events();
    let deltas: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(deltas, ["", "Hel", "lo"]); // the role chunk, then the text

    let interactions = call("POST", "/v1beta/interactions", interaction("answer", true)).await;
    let events = interactions.events();
    let kinds: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["interaction.created", "step.start", "step.delta", "step.delta", "step.stop", "interaction.completed"]);
}

#[tokio::test]
async fn a_stream_cut_short_ends_with_an_error_on_every_surface() {
    let gemini = call("POST", "/v1beta/models/cut:streamGenerateContent?alt=sse", hello()).await;
    let last = gemini.events().pop().unwrap();
    assert_eq!((last["error"]["code"].as_i64(), last["error"]["status"].as_str()), (Some(500), Some("INTERNAL")));
    assert!(last["error"]["message"].as_str().unwrap().contains("stopped before finishing"), "{last}");

    let openai = call("POST", "/v1beta/openai/chat/completions", chat("cut", true)).await;
    assert_eq!(openai.events().pop().unwrap()["error"]["status"], "INTERNAL");
    assert!(!openai.body.contains("[DONE]"));

    let interactions = call("POST", "/v1beta/interactions", interaction("cut", true)).await;
    let last = interactions.events().pop().unwrap();
    assert_eq!((last["event_type"].as_str(), last["error"]["code"].as_str()), (Some("error"), Some("api_error")));
}

#[tokio::test]
async fn a_failure_mid_stream_shows_its_first_line_and_the_request_id() {
    let gemini = call("POST", "/v1beta/models/fail:streamGenerateContent?alt=sse", hello()).await;
    assert_eq!(gemini.status, StatusCode::OK); // the stream had started
    let message = gemini.events().pop().unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert_eq!(message, format!("shape mismatch (request id {})", gemini.request_id));
    assert!(!gemini.body.contains("candle_core"));

    let unary = call("POST", "/v1beta/models/fail:generateContent", hello()).await;
    assert_eq!(unary.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(unary.json()["error"]["message"], format!("shape mismatch (request id {})", unary.request_id));
}

#[tokio::test]
async fn a_failure_before_any_output_is_a_plain_http_error() {
    for (uri, body) in [
        ("/v1beta/models/busy:streamGenerateContent?alt=sse", hello()),
        ("/v1beta/models/busy:generateContent", hello()),
        ("/v1beta/openai/chat/completions", chat("busy", true)),
    ] {
        let answer = call("POST", uri, body).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(answer.json()["error"]["status"], "UNAVAILABLE", "{uri}");
    }
    let interactions = call("POST", "/v1beta/interactions", interaction("busy", true)).await;
    assert_eq!(interactions.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(interactions.json()["error"]["code"], "service_unavailable");
}

#[tokio::test]
async fn an_unknown_model_is_named_in_each_surfaces_terms() {
    let gemini = call("POST", "/v1beta/models/nope:generateContent", hello()).await;
    assert_eq!(gemini.status, StatusCode::NOT_FOUND);
    assert!(gemini.json()["error"]["message"].as_str().unwrap().starts_with("models/nope is not found for API version v1beta"));
    let interactions = call("POST", "/v1beta/interactions", interaction("nope", false)).await;
    assert_eq!((interactions.status, interactions.json()["error"]["code"].clone()), (StatusCode::NOT_FOUND, json!("model_not_found")));
    let openai = call("GET", "/v1beta/openai/models/nope", Value::Null).await;
    assert_eq!(openai.json()["error"]["status"], "NOT_FOUND");
}

#[tokio::test]
async fn versions_methods_and_sizes_are_refused_in_the_google_envelope() {
    for (method, uri) in [("GET", "/v2/models"), ("POST", "/v9/interactions"), ("GET", "/v1beta/nothing")] {
        let answer = call(method, uri, hello()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(answer.json()["error"]["message"].is_string(), "{uri}: {}", answer.body);
    }
    let wrong_method = call("DELETE", "/v1beta/models", Value::Null).await;
    assert_eq!((wrong_method.status.as_u16(), wrong_method.json()["error"]["status"].clone()), (405, json!("UNIMPLEMENTED")));
    let big = json!({"contents": [{"parts": [{"text": "x".repeat(5 * 1024 * 1024)}]}]});
    let too_large = call("POST", "/v1beta/models/answer:generateContent", big).await;
    assert_eq!((too_large.status.as_u16(), too_large.json()["error"]["status"].clone()), (413, json!("INVALID_ARGUMENT")));
    assert!(!too_large.request_id.is_empty());
}

#[tokio::test]
async fn list_calls_read_page_size_one_way() {
    let page = call("GET", "/v1beta/models?pageSize=2.0", Value::Null).await.json();
    assert_eq!(page["models"].as_array().unwrap().len(), 2);
    assert_eq!(page["nextPageToken"], "2");
    let bad = call("GET", "/v1beta/models?pageSize=many", Value::Null).await;
    assert_eq!((bad.status, bad.json()["error"]["message"].clone()), (StatusCode::BAD_REQUEST, json!("Invalid pageSize: many")));
}

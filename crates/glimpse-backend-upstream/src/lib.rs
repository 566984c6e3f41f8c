//! Glimpse in front of an inference engine that already runs the model: vLLM, SGLang, llama.cpp's
//! `llama-server`, Ollama, or any server with an OpenAI-compatible `/chat/completions`.
//!
//! Glimpse keeps everything around the forward pass: it plans and resizes images with the model family's own
//! processor (read from a local folder with config, tokenizer, chat template and preprocessor config; no
//! weights), so the engine's processor leaves each image as it is and boxes convert exactly; it counts tokens
//! locally; it sends detection prompts with the family's box-list schema as `response_format` and rewrites the
//! answer into Gemini's `box_2d` (with masks from `--mask-model`). The engine does the generating, batching and
//! parallelism; Glimpse replicas stay stateless.

mod body;
mod engine;
mod failure;
mod stream;

pub use engine::{UpstreamConfig, UpstreamEngine};

//! `glimpse`: serve the Gemini API on a local vision-language model, or ask one question from the shell.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use glimpse_backend_mistralrs::{LoadOptions, MistralRsEngine};
use glimpse_core::engine::collect;
use glimpse_core::media::{self, ImageLimits};
use glimpse_core::{
    Engine, GenerateRequest, ImageInput, ModelRegistry, OutputConstraint, Part, Prompt, RequestLimits, Role,
    SamplingOptions, Turn,
};
use glimpse_router::AppState;

#[derive(Parser)]
#[command(name = "glimpse", version, about = "A self-hosted image-understanding server that speaks the Gemini API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Gemini API (v1, v1beta, v1alpha) on a local model.
    Serve(ServeArgs),
    /// Ask one question about one image and print the answer.
    Ask(AskArgs),
}

#[derive(Args)]
struct ModelArgs {
    /// A local Hugging Face model folder (config.json, *.safetensors, tokenizer.json, preprocessor_config.json).
    #[arg(long, env = "GLIMPSE_MODEL")]
    model: PathBuf,
    /// Run on CPU even if a GPU is available.
    #[arg(long)]
    cpu: bool,
    /// Maximum output tokens per request (and the advertised outputTokenLimit).
    #[arg(long, default_value_t = 8192)]
    max_output_tokens: u32,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value = "127.0.0.1", env = "GLIMPSE_HOST")]
    host: String,
    #[arg(long, default_value_t = 8080, env = "GLIMPSE_PORT")]
    port: u16,
    /// Model names that map to the loaded model (e.g. gemini-3-flash-preview). Without any alias every model
    /// name maps to it; with aliases, other names are 404 NOT_FOUND.
    #[arg(long = "alias")]
    aliases: Vec<String>,
    /// Serve the API under this path prefix (e.g. /gemini).
    #[arg(long, default_value = "")]
    path_prefix: String,
    /// Decoded bytes of inline images allowed in one request.
    #[arg(long, default_value_t = 20 * 1024 * 1024)]
    max_inline_bytes: usize,
    /// Images allowed in one request.
    #[arg(long, default_value_t = 3600)]
    max_images: usize,
    /// Decoded pixels allowed per image (decompression bombs are refused before decoding).
    #[arg(long, default_value_t = 100_000_000)]
    max_image_pixels: u64,
}

#[derive(Args)]
struct AskArgs {
    /// The image file (PNG, JPEG, WEBP, HEIC/HEIF).
    image: PathBuf,
    /// The question or instruction.
    prompt: String,
    #[command(flatten)]
    model: ModelArgs,
    /// Output tokens to generate at most.
    #[arg(long)]
    max_tokens: Option<u32>,
}

async fn load_engine(args: &ModelArgs) -> anyhow::Result<Arc<dyn Engine>> {
    let options = LoadOptions { force_cpu: args.cpu, max_output_tokens: args.max_output_tokens, ..Default::default() };
    let engine = MistralRsEngine::load(&args.model, options)
        .await
        .with_context(|| format!("loading the model folder {}", args.model.display()))?;
    Ok(Arc::new(engine))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let engine = load_engine(&args.model).await?;
    tracing::info!(model = %engine.info().id, "model loaded");
    let mut registry = ModelRegistry::new();
    registry.add(engine, &args.aliases);
    let limits = RequestLimits {
        max_inline_bytes: args.max_inline_bytes,
        max_images: args.max_images,
        image: ImageLimits { max_pixels: args.max_image_pixels, ..ImageLimits::default() },
    };
    let state = AppState { registry: Arc::new(registry), limits: Arc::new(limits) };
    let app = glimpse_router::app(state, &args.path_prefix);
    let addr: SocketAddr = format!("{}:{}", args.host, args.port).parse().context("invalid --host/--port")?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    eprintln!("glimpse: serving the Gemini API on http://{addr}{} (v1, v1beta, v1alpha)", args.path_prefix);
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

async fn ask(args: AskArgs) -> anyhow::Result<()> {
    let image = read_image(&args.image)?;
    let engine = load_engine(&args.model).await?;
    let prompt = Prompt {
        system: None,
        turns: vec![Turn { role: Role::User, parts: vec![Part::Image(image), Part::Text(args.prompt)] }],
        media_resolution: None,
    };
    let sampling = SamplingOptions { max_output_tokens: args.max_tokens, ..Default::default() };
    let request = GenerateRequest { prompt, sampling, constraint: OutputConstraint::None };
    let (text, _, _) = collect(engine.generate(request).await?).await?;
    println!("{text}");
    Ok(())
}

fn read_image(path: &Path) -> anyhow::Result<ImageInput> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let decoded = media::decode_image(&bytes, None, &ImageLimits::default())?;
    Ok(ImageInput { image: Arc::new(decoded.image), format: decoded.format, resolution: None })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,mistralrs_core=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Ask(args) => ask(args).await,
    }
}

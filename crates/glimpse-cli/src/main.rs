//! `glimpse`: serve the Gemini API on a local vision-language model, or ask one question from the shell.

/// mimalloc, as text-embeddings-inference uses: under 200 clients at once (scripts/bench/load.py) glibc's
/// per-thread arenas took the server to 1.6-1.9 GB, mimalloc to 0.93 GB, at the same speed (shapes and toolkit
/// answers within 2%).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod annotate;
mod config;
mod hub;
mod listener;
mod models;
mod ops;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use glimpse_core::collect;
use glimpse_core::media::{self, ImageLimits};
use glimpse_core::{
    GenerateRequest, ImageInput, OutputConstraint, Part, Prompt, RequestLimits, Role,
    SamplingOptions, Turn,
};
use glimpse_backend_mistralrs::LoadOptions;
use glimpse_fetch::{FetchConfig, Fetcher};
use glimpse_files::{FileStore, FileStoreConfig};
use glimpse_core::admission::AdmissionConfig;
use glimpse_router::auth::Auth;
use glimpse_router::body_budget::BodyBudget;
use glimpse_router::AppState;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "glimpse", version, about = "A self-hosted image-understanding server that speaks the Gemini API")]
#[command(after_help = "Examples:
  glimpse serve                 the Gemini API and its playground on http://127.0.0.1:8080
  glimpse ask photo.jpg \"What is in this picture?\"
  glimpse pull Qwen/Qwen2.5-VL-3B-Instruct && glimpse serve --model Qwen/Qwen2.5-VL-3B-Instruct
  glimpse models list

`glimpse <command> --help` tells more.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Gemini API (v1, v1beta, v1alpha) on a local model.
    #[command(after_help = "Examples:
  glimpse serve                                          the built-in toolkit on http://127.0.0.1:8080
  glimpse serve --model shapes                           the bundled shapes model
  glimpse serve --model Qwen/Qwen2.5-VL-3B-Instruct      a model fetched with `glimpse pull`
  glimpse serve --model qwen=/models/Qwen2.5-VL-3B-Instruct --alias gemini-2.5-flash
  glimpse serve --host 0.0.0.0 --api-key-file keys.txt   on every interface, with API keys")]
    Serve(ServeArgs),
    /// Ask one question about one image and print the answer.
    #[command(after_help = "Examples:
  glimpse ask photo.jpg \"How many horses are there?\"
  glimpse ask photo.jpg \"Detect the all of the prominent items in the image. The box_2d should be [ymin, xmin, ymax, xmax] normalized to 0-1000.\" --annotate boxes.png
  glimpse ask --model shapes scene.png \"Describe this image.\"")]
    Ask(AskArgs),
    /// Download a model folder from the Hugging Face hub into the local cache (resumable).
    #[command(after_help = "Examples:
  glimpse pull Qwen/Qwen2.5-VL-3B-Instruct
  glimpse pull HuggingFaceTB/SmolVLM-256M-Instruct@main
  glimpse pull --processor-only Qwen/Qwen2.5-VL-7B-Instruct   for a model that vLLM or llama-server runs")]
    Pull(PullArgs),
    /// The built-in models and those in the local Hugging Face cache.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List the built-in models and the cached ones, their size, and whether (as which family) Glimpse can
    /// serve them.
    List,
}

#[derive(Args)]
struct PullArgs {
    /// The model repository, owner/name (optionally @revision).
    repo: hub::HubId,
    /// A branch, tag or commit (overrides an @revision in the id).
    #[arg(long)]
    revision: Option<String>,
    /// The hub or a mirror (default: HF_ENDPOINT, else https://huggingface.co).
    #[arg(long)]
    endpoint: Option<String>,
    /// Download every file of the repository, not only configs, tokenizer and safetensors weights.
    #[arg(long)]
    all_files: bool,
    /// Only what Glimpse prepares requests with (configs, tokenizer, chat template), not the weights: for a
    /// model that an upstream engine (vLLM, SGLang, llama-server, Ollama) runs; name it as `processor`.
    #[arg(long, conflicts_with = "all_files")]
    processor_only: bool,
    /// Bytes per ranged request; an interrupted download resumes from the last complete range.
    #[arg(long, default_value_t = 10_000_000)]
    chunk_bytes: usize,
    /// Ranged requests of one file in flight at once.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

#[derive(Args)]
struct ModelArgs {
    /// A local Hugging Face model folder (config.json, *.safetensors, tokenizer.json, preprocessor_config.json),
    /// a hub id in the local cache (owner/name[@revision], see `glimpse pull`), `toolkit` (the built-in
    /// detector / classifier / OCR) or `shapes` (the bundled Qwen2.5-VL trained on synthetic shapes), as SOURCE
    /// or NAME=SOURCE (clients then say NAME; default: the folder's or
    /// repository's name). Without one, the built-in toolkit answers.
    #[arg(long = "model", env = "GLIMPSE_MODEL")]
    model: Vec<models::ModelSpec>,
    /// Run on CPU even if a GPU is available.
    #[arg(long)]
    cpu: bool,
    /// Maximum output tokens per request (and the advertised outputTokenLimit).
    #[arg(long, default_value_t = LoadOptions::default().max_output_tokens)]
    max_output_tokens: u32,
    /// Pass detection answers through as the model writes them, instead of constraining them to the family's
    /// box format and rewriting the boxes into Gemini's box_2d (0–1000, ymin first).
    #[arg(long)]
    no_grounding: bool,
    /// Quantise the weights in place when loading (q8_0, q4_0, q4k, q6k, hqq8, … as mistralrs names them).
    #[arg(long, value_parser = glimpse_backend_mistralrs::parse_isq)]
    isq: Option<glimpse_backend_mistralrs::IsqType>,
    /// Weight and activation dtype: auto, f32, f16, bf16 (default: f32 on CPU, the engine's choice on a GPU).
    #[arg(long, value_parser = glimpse_backend_mistralrs::parse_dtype)]
    dtype: Option<glimpse_backend_mistralrs::ModelDType>,
    /// A SAM or MobileSAM folder (config.json + model.safetensors) that fills `mask` for segmentation prompts,
    /// or `isnet` for the built-in toolkit's ISNet masks.
    #[arg(long, env = "GLIMPSE_MASK_MODEL")]
    mask_model: Option<PathBuf>,
    /// Bytes of decoded images, at the sizes models use, kept for later requests with the same image bytes
    /// (least recently used first out); 0 keeps none.
    #[arg(long, env = "GLIMPSE_IMAGE_CACHE_BYTES", default_value_t = 256 * 1024 * 1024)]
    image_cache_bytes: usize,
    /// Bytes of vision-encoder output each model keeps for images it has already seen (the same image in a
    /// later request skips the vision tower); 0 keeps none.
    #[arg(long, env = "GLIMPSE_ENCODER_CACHE_BYTES", default_value_t = 512 * 1024 * 1024)]
    encoder_cache_bytes: usize,
    /// Finished answers whose attention state (KV cache) each model keeps, so that a prompt beginning the same
    /// way (a cachedContent, the next turn of a conversation) prefills only what is new; 0 keeps none. Used by
    /// Qwen2.5-VL models.
    #[arg(long, env = "GLIMPSE_PREFIX_CACHE_ENTRIES", default_value_t = 16)]
    prefix_cache_entries: usize,
    /// On a GPU: the share of the card's memory that a model's weights and its paged KV cache fill together
    /// (PagedAttention batches concurrent requests continuously); with several models on one card, give each its
    /// share; 0 turns paged attention off. Unused on CPU.
    #[arg(long, env = "GLIMPSE_GPU_MEMORY_FRACTION", value_parser = glimpse_backend_mistralrs::parse_gpu_memory_fraction,
          default_value_t = glimpse_backend_mistralrs::DEFAULT_GPU_MEMORY_FRACTION)]
    gpu_memory_fraction: f32,
}

#[derive(Args)]
#[command(mut_arg("model", |arg| {
    let help = arg.get_long_help().or(arg.get_help()).map(ToString::to_string).unwrap_or_default();
    arg.long_help(format!("{}. Repeat it to serve several models.", help.trim_end_matches('.')))
}))]
struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A TOML file of [[model]] tables (model, name, aliases, isq, dtype, max_output_tokens) and mask_model,
    /// loaded after any --model.
    #[arg(long, env = "GLIMPSE_CONFIG")]
    config: Option<PathBuf>,
    /// The address to listen on: 127.0.0.1 (this machine only), 0.0.0.0 or :: (every interface; then API
    /// keys are required unless --open), or a host name.
    #[arg(long, default_value = "127.0.0.1", env = "GLIMPSE_HOST")]
    host: String,
    /// The port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080, env = "GLIMPSE_PORT")]
    port: u16,
    /// Another name for a model, e.g. gemini-3-flash-preview (the first model) or gemini-2.0-flash=NAME.
    /// With one model and no alias every model name maps to it; otherwise unknown names are 404 NOT_FOUND.
    #[arg(long = "alias")]
    aliases: Vec<models::AliasSpec>,
    /// Serve the API under this path prefix (e.g. /gemini).
    #[arg(long, default_value = "")]
    path_prefix: String,
    /// Decoded bytes of inline images allowed in one request.
    #[arg(long, default_value_t = RequestLimits::default().max_inline_bytes)]
    max_inline_bytes: usize,
    /// Images allowed in one request.
    #[arg(long, default_value_t = RequestLimits::default().max_images)]
    max_images: usize,
    /// Decoded pixels allowed per image (decompression bombs are refused before decoding).
    #[arg(long, default_value_t = ImageLimits::default().max_pixels)]
    max_image_pixels: u64,
    /// Decoded pixels allowed for all images of one request together (read from their headers).
    #[arg(long, default_value_t = RequestLimits::default().max_request_pixels)]
    max_request_pixels: u64,
    #[command(flatten)]
    keys: KeyArgs,
    #[command(flatten)]
    files: FileArgs,
    #[command(flatten)]
    fetch: FetchArgs,
    /// The URL clients reach this server at (e.g. https://glimpse.example.com behind a proxy). Upload URLs and
    /// file URIs are built from it; default: the Host of each request.
    #[arg(long, env = "GLIMPSE_PUBLIC_URL")]
    public_url: Option<String>,
    #[command(flatten)]
    ops: OpsArgs,
    #[command(flatten)]
    admission: AdmissionArgs,
}

#[derive(Args)]
struct AdmissionArgs {
    /// Generations each model works on at once (default: what its engine batches: 16 sequences for a
    /// vision-language model, one per core for the toolkit).
    #[arg(long, env = "GLIMPSE_MAX_CONCURRENT")]
    max_concurrent: Option<usize>,
    /// Requests that may wait for a model beyond those it works on; more are answered 429 at once.
    #[arg(long, env = "GLIMPSE_MAX_QUEUE", default_value_t = AdmissionConfig::default().max_queue)]
    max_queue: usize,
    /// Generations one API key may have running or waiting per model; its further requests wait in a line of
    /// their own, so one key cannot starve the others (default: no per-key line).
    #[arg(long, env = "GLIMPSE_MAX_CONCURRENT_PER_KEY")]
    max_concurrent_per_key: Option<usize>,
    /// Generations batch jobs may have running at once per model; they start only while no interactive
    /// request waits (default: one, which keeps interactive latency on a CPU; raise it on a GPU, where batching
    /// adds throughput).
    #[arg(long, env = "GLIMPSE_MAX_BATCH_CONCURRENT")]
    max_batch_concurrent: Option<usize>,
    /// Seconds a request may wait for its model before it is answered 429.
    #[arg(long, env = "GLIMPSE_MAX_QUEUE_WAIT", default_value_t = AdmissionConfig::default().max_wait.as_secs_f64())]
    max_queue_wait: f64,
    /// Seconds one generation may take from its arrival to its last token; then it is stopped and answered
    /// 504 DEADLINE_EXCEEDED (an error event in a stream that has started).
    #[arg(long, env = "GLIMPSE_REQUEST_TIMEOUT", default_value_t = AdmissionConfig::default().request_timeout.as_secs_f64())]
    request_timeout: f64,
    /// Bytes of request bodies the server reads and works on at once; over it, 429 before the body is read
    /// (default: a quarter of the machine's memory).
    #[arg(long, env = "GLIMPSE_MAX_INFLIGHT_BYTES")]
    max_inflight_bytes: Option<u64>,
    /// Seconds a client may take to send a request's line and headers, and may send nothing while its body
    /// is unfinished; then its connection is closed (a body cut short is answered 408 first). 0: no limit. An
    /// upload chunk cut this way can be resent: the upload goes on from its last acknowledged offset.
    #[arg(long, env = "GLIMPSE_READ_TIMEOUT", default_value_t = 30.0)]
    read_timeout: f64,
}

impl AdmissionArgs {
    fn config(&self) -> anyhow::Result<AdmissionConfig> {
        let seconds = |value: f64, flag: &str| {
            anyhow::ensure!(value.is_finite() && value >= 0.0, "{flag} must be a number of seconds");
            Ok(Duration::from_secs_f64(value))
        };
        Ok(AdmissionConfig {
            max_concurrent: self.max_concurrent,
            max_queue: self.max_queue,
            max_wait: seconds(self.max_queue_wait, "--max-queue-wait")?,
            request_timeout: seconds(self.request_timeout, "--request-timeout")?,
            max_concurrent_per_key: self.max_concurrent_per_key,
            max_batch_concurrent: self.max_batch_concurrent,
        })
    }

    /// `--read-timeout`; `None` when 0 (no limit).
    fn read_timeout(&self) -> anyhow::Result<Option<Duration>> {
        anyhow::ensure!(self.read_timeout.is_finite() && self.read_timeout >= 0.0, "--read-timeout must be a number of seconds");
        Ok((self.read_timeout > 0.0).then(|| Duration::from_secs_f64(self.read_timeout)))
    }

    fn inflight_bytes(&self) -> u64 {
        self.max_inflight_bytes.unwrap_or_else(|| ops::memory_bytes().map_or(2 << 30, |total| total / 4))
    }
}

#[derive(Args)]
struct OpsArgs {
    /// Serve Prometheus `/metrics` on this address (e.g. 0.0.0.0:9090) instead of the API listener.
    #[arg(long, env = "GLIMPSE_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// On SIGTERM or Ctrl-C: seconds in-flight requests (streams included) may take to finish while `/readyz`
    /// answers 503 and no new connection is accepted; then the process exits.
    #[arg(long, env = "GLIMPSE_DRAIN_SECONDS", default_value_t = 30)]
    drain_seconds: u64,
}

#[derive(Args)]
struct KeyArgs {
    /// An API key clients may use; each key is a project whose files other keys cannot see. Repeatable.
    #[arg(long = "api-key", env = "GLIMPSE_API_KEYS", value_delimiter = ',')]
    api_keys: Vec<String>,
    /// A file with one API key per line (blank lines and # comments ignored).
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Accept any API key (each key still gets its own files). The default when no key is configured and the
    /// server listens on loopback only.
    #[arg(long)]
    open: bool,
}

#[derive(Args)]
struct FileArgs {
    /// Where uploaded files, stored interactions and their database live.
    #[arg(long, env = "GLIMPSE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Metadata database (sqlite://… or postgres://…); default: SQLite in the data folder.
    #[arg(long, env = "GLIMPSE_DATABASE_URL")]
    database_url: Option<String>,
    /// Where file bytes live: s3://bucket[/prefix] (credentials, region and endpoint from the usual AWS_*
    /// variables; AWS_ENDPOINT + AWS_ALLOW_HTTP=true for MinIO and other S3-compatible stores), gs://…, az://…
    /// or file:///path; default: `blobs/` in the data folder. Replicas share one database and one blob store.
    #[arg(long, env = "GLIMPSE_BLOB_URL")]
    blob_url: Option<String>,
    /// Largest file one upload may hold.
    #[arg(long, default_value_t = FileStoreConfig::DEFAULT_MAX_FILE_BYTES)]
    max_file_bytes: u64,
    /// Bytes of files one project (API key) may keep at once.
    #[arg(long, default_value_t = FileStoreConfig::DEFAULT_PROJECT_QUOTA_BYTES)]
    project_quota_bytes: u64,
    /// Seconds an uploaded file lives (the Gemini API keeps files 48 hours).
    #[arg(long, default_value_t = FileStoreConfig::DEFAULT_TTL.as_secs())]
    file_ttl_seconds: u64,
    /// Seconds a stored interaction lives (`previous_interaction_id` works this long; Gemini: 55 days).
    #[arg(long, default_value_t = FileStoreConfig::DEFAULT_INTERACTION_TTL.as_secs())]
    interaction_ttl_seconds: u64,
    /// The fewest prompt tokens a cached content may hold (Gemini's minimum on its Flash models is 1,024).
    #[arg(long, env = "GLIMPSE_CACHE_MIN_TOKENS", default_value_t = 1024)]
    cache_min_tokens: u32,
    /// Bytes of images this replica keeps of cached contents, parsed and ready to prepend (least recently used
    /// first out; an evicted cache is read again from the database).
    #[arg(long, env = "GLIMPSE_CACHE_MEMORY_BYTES", default_value_t = 256 * 1024 * 1024)]
    cache_memory_bytes: usize,
}

#[derive(Args)]
struct FetchArgs {
    /// Refuse http(s) image URLs in requests.
    #[arg(long)]
    no_url_fetch: bool,
    /// A network (CIDR) that URL fetching may reach despite the SSRF guard, e.g. 10.0.0.0/8. Repeatable.
    #[arg(long = "fetch-allow")]
    fetch_allow: Vec<ipnet::IpNet>,
    /// Largest image fetched from a URL.
    #[arg(long, default_value_t = FetchConfig::default().max_bytes)]
    max_fetch_bytes: u64,
    /// Fetch image URLs through this http:// forward proxy (HTTP CONNECT; `http://user:password@host:port`
    /// for a proxy that wants Basic authentication). Glimpse resolves and checks each host first and tunnels
    /// to the checked address. HTTP_PROXY / HTTPS_PROXY in the environment are never used for image URLs.
    #[arg(long, env = "GLIMPSE_FETCH_PROXY")]
    fetch_proxy: Option<String>,
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
    /// Answer in JSON (constrained decoding); detection prompts (box_2d) answer in Gemini's box format anyway.
    #[arg(long)]
    json: bool,
    /// Write the image with the answer's boxes, labels and masks drawn on it to this PNG file.
    #[arg(long, value_name = "OUT.png")]
    annotate: Option<PathBuf>,
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let render_metrics = ops::install_metrics()?;
    let config = args.config.as_deref().map(config::ServeConfig::read).transpose()?;
    let admission = args.admission.config()?;
    // The port first: a port in use is reported at once, not after minutes of loading models. Connections that
    // arrive while the models load wait in the listen queue.
    let addrs = listen_addrs(&args.host, args.port).await?;
    let auth = auth(&args.keys, &addrs)?;
    let listener = bind_first(&addrs).await?;
    let registry = models::registry(&args.model, &args.aliases, config.as_ref(), admission).await?;
    let limits = RequestLimits {
        max_inline_bytes: args.max_inline_bytes,
        max_images: args.max_images,
        image: ImageLimits { max_pixels: args.max_image_pixels, ..ImageLimits::default() },
        max_request_pixels: args.max_request_pixels,
    };
    let files = open_file_store(&args.files).await?;
    glimpse_files::sweeper::spawn(files.clone());
    let fetcher = if args.fetch.no_url_fetch {
        None
    } else {
        let config = FetchConfig {
            max_bytes: args.fetch.max_fetch_bytes,
            allow: args.fetch.fetch_allow.clone(),
            proxy: args.fetch.fetch_proxy.clone(),
            ..Default::default()
        };
        Some(Arc::new(Fetcher::new(config)?))
    };
    let state = AppState {
        registry: Arc::new(registry),
        limits: Arc::new(limits),
        auth: Arc::new(auth),
        files: Some(files),
        fetcher,
        public_url: args.public_url.clone(),
        path_prefix: args.path_prefix.trim_end_matches('/').to_string(),
        metrics: if args.ops.metrics_addr.is_some() { None } else { Some(render_metrics.clone()) },
        draining: Arc::default(),
        body_budget: Some(BodyBudget::new(args.admission.inflight_bytes())),
        body_read_timeout: args.admission.read_timeout()?,
        prepared_caches: Arc::new(glimpse_router::caches::PreparedCaches::new(args.files.cache_memory_bytes)),
        cache_min_tokens: args.files.cache_min_tokens,
        batch_wakeup: Arc::default(),
        batch_share: admission.max_batch_concurrent.unwrap_or(1),
    };
    glimpse_router::batches::runner::spawn(state.clone());
    if let Some(metrics_addr) = &args.ops.metrics_addr {
        ops::serve_ops(metrics_addr, AppState { metrics: Some(render_metrics), ..state.clone() }).await?;
    }
    let draining = state.draining.clone();
    let app = glimpse_router::app(state);
    let addr = listener.local_addr()?;
    let prefix = args.path_prefix.trim_end_matches('/');
    eprintln!("glimpse: serving the Gemini API on http://{addr}{prefix} (v1, v1beta, v1alpha)");
    eprintln!("glimpse: playground at http://{addr}{prefix}/");
    let drain = Duration::from_secs(args.ops.drain_seconds);
    let header_timeout = args.admission.read_timeout()?;
    listener::serve(listener, app, header_timeout, ops::drain_on_signal(draining, drain)).await;
    eprintln!("glimpse: drained, exiting");
    Ok(())
}

/// What `--host` names: an IP address (IPv6 with or without brackets: `::`, `[::]`) or a host name, which is
/// resolved (`localhost` → 127.0.0.1 and ::1).
async fn listen_addrs(host: &str, port: u16) -> anyhow::Result<Vec<SocketAddr>> {
    let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .with_context(|| format!("--host {host} is neither an IP address nor a name that resolves"))?
        .collect();
    anyhow::ensure!(!addrs.is_empty(), "--host {host} resolves to no address");
    Ok(addrs)
}

/// Binds the first of `addrs` that can be bound (a name may resolve to an address family this machine lacks).
async fn bind_first(addrs: &[SocketAddr]) -> anyhow::Result<tokio::net::TcpListener> {
    let mut last = None;
    for addr in addrs {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                anyhow::bail!("{addr} is already in use (another glimpse?): choose another with --port, or --port 0 for any free one")
            }
            Err(e) => last = Some(anyhow::Error::new(e).context(format!("binding {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no address to bind")))
}

/// API keys from flags, env and file; without any, open mode, which a server gets by default only when every
/// address its `--host` stands for is loopback.
fn auth(args: &KeyArgs, addrs: &[SocketAddr]) -> anyhow::Result<Auth> {
    let mut keys: Vec<String> = args.api_keys.iter().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect();
    if let Some(path) = &args.api_key_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        keys.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string));
    }
    if args.open {
        return Ok(Auth::Open);
    }
    if !keys.is_empty() {
        eprintln!("glimpse: {} API key(s) configured", keys.len());
        return Ok(Auth::with_keys(keys));
    }
    if addrs.iter().all(|a| a.ip().is_loopback()) {
        return Ok(Auth::Open);
    }
    let listed: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    anyhow::bail!(
        "refusing to serve on {} without API keys: pass --api-key / --api-key-file (or GLIMPSE_API_KEYS), \
         or --open to accept any key",
        listed.join(", ")
    )
}

fn default_data_dir() -> PathBuf {
    match (std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME")) {
        (Some(xdg), _) if !xdg.is_empty() => PathBuf::from(xdg).join("glimpse"),
        (_, Some(home)) => PathBuf::from(home).join(".local/share/glimpse"),
        _ => PathBuf::from("glimpse-data"),
    }
}

async fn open_file_store(args: &FileArgs) -> anyhow::Result<Arc<FileStore>> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let config = FileStoreConfig {
        data_dir: data_dir.clone(),
        database_url: args.database_url.clone(),
        blob_url: args.blob_url.clone(),
        max_file_bytes: args.max_file_bytes,
        project_quota_bytes: args.project_quota_bytes,
        ttl: Duration::from_secs(args.file_ttl_seconds),
        interaction_ttl: Duration::from_secs(args.interaction_ttl_seconds),
    };
    let store = FileStore::open(config).await.with_context(|| format!("opening the file store in {}", data_dir.display()))?;
    Ok(Arc::new(store))
}

async fn ask(args: AskArgs) -> anyhow::Result<()> {
    let image = read_image(&args.image)?;
    let source = image.source.clone();
    let engine = models::single(&args.model).await?;
    let prompt = Prompt {
        system: None,
        turns: vec![Turn { role: Role::User, parts: vec![Part::Image(image), Part::Text(args.prompt)] }],
        media_resolution: None,
    };
    let sampling = SamplingOptions { max_output_tokens: args.max_tokens, ..Default::default() };
    let constraint = if args.json { OutputConstraint::JsonSchema(serde_json::json!({})) } else { OutputConstraint::None };
    let request = GenerateRequest { prompt, sampling, constraint, caller: None, priority: Default::default() };
    let (text, _, _) = collect(engine.generate(request).await?).await?;
    println!("{text}");
    if let Some(out) = &args.annotate {
        let drawn = annotate::annotate(&source.decode()?, &text)?;
        drawn.save(out).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("glimpse: wrote {}", out.display());
    }
    Ok(())
}

async fn pull(args: PullArgs) -> anyhow::Result<()> {
    let mut id = args.repo;
    if let Some(revision) = args.revision {
        id.revision = revision;
    }
    let options = hub::PullOptions {
        endpoint: args.endpoint,
        all_files: args.all_files,
        processor_only: args.processor_only,
        chunk_bytes: args.chunk_bytes,
        connections: args.connections,
    };
    let folder = hub::pull(&id, &options).await?;
    if args.processor_only {
        match glimpse_backend_mistralrs::LocalProcessor::open(&folder) {
            Ok(processor) => eprintln!(
                "glimpse: the processor of {id} is ready ({}): name it as `processor` in a [[model]] with `upstream`",
                processor.family().name()
            ),
            Err(reason) => eprintln!("glimpse: {id} was downloaded, but Glimpse cannot use it as a processor: {reason}"),
        }
        println!("{}", folder.display());
        return Ok(());
    }
    match glimpse_backend_mistralrs::ModelFolder::open(&folder) {
        Ok(model) => eprintln!("glimpse: {id} is ready ({}): glimpse serve --model {id}", model.family.name()),
        Err(reason) => eprintln!("glimpse: {id} was downloaded, but Glimpse cannot serve it: {reason}"),
    }
    println!("{}", folder.display());
    Ok(())
}

fn read_image(path: &Path) -> anyhow::Result<ImageInput> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(ImageInput::new(media::ImageSource::probe(bytes, None, &ImageLimits::default())?))
}

/// User errors (a flag, a file, a port) print one line and exit 1; RUST_BACKTRACE, which many developer shells
/// set, still gives backtraces for panics (bugs) but not for these.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("glimpse: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,mistralrs_core=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files and collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Ask(args) => ask(args).await,
        Command::Pull(args) => pull(args).await,
        Command::Models { command: ModelsCommand::List } => hub::print_list(&models::builtin(), &hub::list()?),
    }
}

//! Models from the Hugging Face hub: `glimpse pull`, `glimpse models list`, and `--model owner/name[@revision]`
//! resolved from the local cache.
//!
//! The cache is the hub's own layout (`models--owner--name/{blobs,refs,snapshots}`), in the same place Python's
//! `huggingface_hub` puts it, so a model downloaded by either tool is found by the other. Serving never
//! downloads: a missing model is an error that names the `glimpse pull` command, so a server start cannot hang
//! on, or silently depend on, a network.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use hf_hub::api::tokio::ApiBuilder;
use hf_hub::api::RepoInfo;
use hf_hub::{Cache, Repo, RepoType};

/// `owner/name` or `owner/name@revision` (a branch, tag or commit; default `main`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    pub repo: String,
    pub revision: String,
}

impl FromStr for HubId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (repo, revision) = match s.split_once('@') {
            Some((repo, revision)) if !revision.is_empty() => (repo, revision),
            Some(_) => return Err(format!("{s:?}: empty revision after '@'")),
            None => (s, "main"),
        };
        let valid_part = |p: &str| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match repo.split_once('/') {
            Some((owner, name)) if valid_part(owner) && valid_part(name) => {
                Ok(HubId { repo: repo.to_string(), revision: revision.to_string() })
            }
            _ => Err(format!("{s:?} is not a Hugging Face model id (owner/name, optionally @revision)")),
        }
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.revision.as_str() {
            "main" => write!(f, "{}", self.repo),
            revision => write!(f, "{}@{revision}", self.repo),
        }
    }
}

impl HubId {
    /// The name clients address a hub model by unless told otherwise: the part after the owner (a model name in
    /// a URL path cannot hold a '/').
    pub fn default_name(&self) -> String {
        self.repo.rsplit('/').next().unwrap_or(&self.repo).to_string()
    }

    fn repo(&self) -> Repo {
        Repo::with_revision(self.repo.clone(), RepoType::Model, self.revision.clone())
    }
}

/// The cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`, as huggingface_hub
/// resolves it.
pub fn cache() -> anyhow::Result<Cache> {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE").filter(|d| !d.is_empty()) {
        return Ok(Cache::new(dir.into()));
    }
    if std::env::var_os("HF_HOME").is_some_and(|d| !d.is_empty()) {
        return Ok(Cache::from_env());
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(Cache::new(PathBuf::from(home).join(".cache/huggingface/hub"))),
        None => bail!("no Hugging Face cache folder: set HF_HOME or HF_HUB_CACHE"),
    }
}

fn repo_dir(cache: &Cache, id: &HubId) -> PathBuf {
    cache.path().join(id.repo().folder_name())
}

/// The cached snapshot folder of `id`, or an error that says how to get it.
pub fn resolve(id: &HubId) -> anyhow::Result<PathBuf> {
    let cache = cache()?;
    let dir = repo_dir(&cache, id);
    let commit = match std::fs::read_to_string(dir.join("refs").join(&id.revision)) {
        Ok(commit) => commit.trim().to_string(),
        // A commit hash needs no ref.
        Err(_) => id.revision.clone(),
    };
    let snapshot = dir.join("snapshots").join(&commit);
    if !snapshot.join("config.json").is_file() {
        bail!(
            "{id} is not a local folder and is not in the Hugging Face cache ({}): download it with \
             `glimpse pull {id}`, or pass the path of a model folder",
            cache.path().display()
        );
    }
    Ok(snapshot)
}

/// Settings of one `glimpse pull`.
pub struct PullOptions {
    /// The hub (or a mirror); default `HF_ENDPOINT` or https://huggingface.co.
    pub endpoint: Option<String>,
    /// Every file of the repository, not only what a model folder needs.
    pub all_files: bool,
    /// The processor only (configs, tokenizer, chat template; no weights): for a model another engine runs.
    pub processor_only: bool,
    /// Bytes per ranged request: the resume granularity of an interrupted download.
    pub chunk_bytes: usize,
    /// Ranged requests of one file in flight at once.
    pub connections: usize,
}

/// Files a model folder needs: configs, tokenizer and chat template, safetensors weights. Other weight formats
/// (`.bin`, `.gguf`, `.onnx`), pictures and READMEs are left on the hub unless `--all-files`.
fn is_model_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".json", ".safetensors", ".jinja", ".model", ".tiktoken", ".txt"].iter().any(|ext| lower.ends_with(ext))
        && !lower.contains('/')
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Downloads the model folder `id` into the cache, resuming partial files, and returns the snapshot folder.
pub async fn pull(id: &HubId, options: &PullOptions) -> anyhow::Result<PathBuf> {
    if offline() {
        bail!("HF_HUB_OFFLINE is set, so nothing is downloaded: unset it to pull {id}");
    }
    let cache = cache()?;
    let endpoint = options
        .endpoint
        .clone()
        .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| "https://huggingface.co".to_string());
    let endpoint = endpoint.trim_end_matches('/').to_string();
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()).or_else(|| cache.token());
    let api = ApiBuilder::from_cache(cache.clone())
        .with_endpoint(endpoint.clone())
        .with_token(token)
        .with_chunk_size(Some(options.chunk_bytes.max(1)))
        .with_max_files(options.connections.max(1))
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .build()
        .context("setting up the hub client")?;
    let remote = api.repo(id.repo());
    let info = repo_info(remote.info_request(), id, &endpoint).await?;
    let files: Vec<String> = info
        .siblings
        .into_iter()
        .map(|s| s.rfilename)
        .filter(|name| options.all_files || is_model_file(name))
        .filter(|name| !(options.processor_only && name.to_ascii_lowercase().ends_with(".safetensors")))
        .collect();
    if !files.iter().any(|f| f == "config.json") {
        bail!("{id} at {endpoint} has no config.json: it is not a model folder Glimpse can load");
    }
    let pinned = HubId { repo: id.repo.clone(), revision: info.sha.clone() };
    let snapshot = repo_dir(&cache, id).join("snapshots").join(&info.sha);
    for (n, file) in files.iter().enumerate() {
        if snapshot.join(file).exists() {
            eprintln!("glimpse: [{}/{}] {file}: already complete", n + 1, files.len());
            continue;
        }
        // Pinned to the commit the listing came from, so every file is of the same revision.
        let path = api
            .repo(pinned.repo())
            .download(file)
            .await
            .with_context(|| format!("downloading {file} of {id} from {endpoint} (run the same command again to resume)"))?;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        eprintln!("glimpse: [{}/{}] {file}: {}", n + 1, files.len(), human_bytes(bytes));
    }
    cache.repo(id.repo()).create_ref(&info.sha).context("writing the cache ref")?;
    Ok(snapshot)
}

async fn repo_info(request: reqwest::RequestBuilder, id: &HubId, endpoint: &str) -> anyhow::Result<RepoInfo> {
    let response = request.timeout(Duration::from_secs(30)).send().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the Hugging Face hub at {endpoint} ({}): check the network, set HF_ENDPOINT or --endpoint \
             to a mirror, or copy the model folder here and pass its path to --model",
            root_cause(&e)
        )
    })?;
    match response.status().as_u16() {
        200 => response.json().await.with_context(|| format!("reading the file list of {id} from {endpoint}")),
        401 | 403 | 404 => bail!(
            "{id} was not found at {endpoint} (HTTP {}): check the name and revision; a gated or private model \
             needs HF_TOKEN",
            response.status().as_u16()
        ),
        status => bail!("the hub at {endpoint} answered HTTP {status} for {id}"),
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// One model folder in the cache.
pub struct CachedModel {
    pub id: HubId,
    pub folder: PathBuf,
    /// Bytes of the snapshot's files (blobs shared between snapshots count in each).
    pub bytes: u64,
    /// The family Glimpse would serve it as, or why it cannot.
    pub family: Result<String, String>,
}

/// Every snapshot a ref points at, in every `models--*` folder of the cache, sorted by id.
pub fn list() -> anyhow::Result<Vec<CachedModel>> {
    let cache = cache()?;
    let Ok(entries) = std::fs::read_dir(cache.path()) else { return Ok(Vec::new()) };
    let mut models = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let folder_name = entry.file_name().to_string_lossy().into_owned();
        let Some(repo) = folder_name.strip_prefix("models--").map(|r| r.replacen("--", "/", 1)) else { continue };
        for (revision, commit) in refs(&entry.path().join("refs")) {
            let folder = entry.path().join("snapshots").join(&commit);
            if !folder.is_dir() {
                continue;
            }
            let family = glimpse_backend_mistralrs::ModelFolder::open(&folder)
                .map(|f| f.family.name().to_string())
                .map_err(|e| e.to_string());
            models.push(CachedModel { id: HubId { repo: repo.clone(), revision }, bytes: folder_bytes(&folder), folder, family });
        }
    }
    models.sort_by(|a, b| (&a.id.repo, &a.id.revision).cmp(&(&b.id.repo, &b.id.revision)));
    Ok(models)
}

/// `refs/<name>` files (names may hold '/', e.g. `refs/pr/1`) and the commits they point at.
fn refs(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let (Ok(name), Ok(commit)) = (path.strip_prefix(dir), std::fs::read_to_string(&path)) {
                found.push((name.to_string_lossy().into_owned(), commit.trim().to_string()));
            }
        }
    }
    found
}

fn folder_bytes(folder: &Path) -> u64 {
    std::fs::read_dir(folder)
        .map(|entries| entries.filter_map(Result::ok).filter_map(|e| std::fs::metadata(e.path()).ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// A model that comes with Glimpse (`toolkit`, `shapes`): its name, what it serves as, and its folder.
pub struct BuiltinModel {
    pub name: &'static str,
    pub serves_as: &'static str,
    pub folder: PathBuf,
}

/// The `glimpse models list` table: the built-in models, then the cache's.
pub fn print_list(builtin: &[BuiltinModel], models: &[CachedModel]) -> anyhow::Result<()> {
    let cache = cache()?;
    let names: Vec<String> = builtin.iter().map(|b| b.name.to_string()).chain(models.iter().map(|m| m.id.to_string())).collect();
    let width = names.iter().map(String::len).max().unwrap_or(5).max(5);
    println!("{:width$}  {:>9}  {:24}  FOLDER", "MODEL", "SIZE", "SERVES AS");
    for model in builtin {
        let (size, folder) = if model.folder.is_dir() {
            (human_bytes(folder_bytes(&model.folder)), model.folder.display().to_string())
        } else {
            ("-".to_string(), format!("{} (missing: scripts/setup-deps.sh puts it there)", model.folder.display()))
        };
        println!("{:width$}  {:>9}  {:24}  {folder}", model.name, size, model.serves_as);
    }
    for model in models {
        let family = match &model.family {
            Ok(family) => family.clone(),
            Err(_) => "not servable".to_string(),
        };
        println!("{:width$}  {:>9}  {:24}  {}", model.id.to_string(), human_bytes(model.bytes), family, model.folder.display());
        if let Err(reason) = &model.family {
            println!("{:width$}  {:>9}  ({reason})", "", "");
        }
    }
    if models.is_empty() {
        println!("\nno models in the Hugging Face cache ({}); `glimpse pull owner/name` downloads one", cache.path().display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_parse() {
        let id: HubId = "Qwen/Qwen2.5-VL-3B-Instruct".parse().unwrap();
        assert_eq!((id.repo.as_str(), id.revision.as_str()), ("Qwen/Qwen2.5-VL-3B-Instruct", "main"));
        assert_eq!(id.default_name(), "Qwen2.5-VL-3B-Instruct");
        let pinned: HubId = "org/m@v1.0".parse().unwrap();
        assert_eq!((pinned.revision.as_str(), pinned.to_string().as_str()), ("v1.0", "org/m@v1.0"));
        for bad in ["model", "/abs/path", "./rel/x", "a/b/c", "org/m@", "../x"] {
            assert!(bad.parse::<HubId>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn model_files_are_selected() {
        for keep in ["config.json", "model-00001-of-00002.safetensors", "chat_template.jinja", "merges.txt", "tokenizer.model"] {
            assert!(is_model_file(keep), "{keep}");
        }
        for skip in ["pytorch_model.bin", "model.gguf", "README.md", "onnx/model.json", "demo.png"] {
            assert!(!is_model_file(skip), "{skip}");
        }
    }
}

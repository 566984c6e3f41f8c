//! Submitting work to the engine thread, and what happens when that thread is gone: mistralrs ends it on a
//! panic, so the model is built again in the background (once, however many requests notice) and callers are
//! told to retry.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use glimpse_core::GlimpseError;
use mistralrs::{MemoryGpuConfig, Model, ModelDType, MultimodalModelBuilder, PagedAttentionMetaBuilder, Request};

use crate::engine::{Inner, LoadOptions};
use crate::family::Family;

pub(crate) async fn build_model(staged: &Path, options: &LoadOptions, family: &Family) -> anyhow::Result<Model> {
    // The hub is never reachable from a model folder; make sure nothing tries.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let mut builder = MultimodalModelBuilder::new(staged.to_string_lossy())
        .with_dtype(options.dtype.unwrap_or(if options.force_cpu || !cfg!(feature = "cuda") {
            ModelDType::F32
        } else {
            ModelDType::Auto
        }))
        .with_max_num_seqs(options.max_num_seqs)
        // mistralrs 0.8.1's prefix cache gave the tokens after a cached image prompt positions as if the prompt
        // began there (answered as if it had no image); vendor change 12 fixes that for Qwen2.5-VL only.
        .with_prefix_cache_n((family.reuses_prefixes() && options.prefix_cache_entries > 0).then_some(options.prefix_cache_entries));
    if options.force_cpu {
        builder = builder.with_force_cpu();
    } else if options.gpu_memory_fraction > 0.0 {
        // A no-op in builds without a GPU backend (mistralrs checks `paged_attn_supported`).
        let paged = PagedAttentionMetaBuilder::default()
            .with_gpu_memory(MemoryGpuConfig::Utilization(options.gpu_memory_fraction))
            .build()?;
        builder = builder.with_paged_attn(paged);
    }
    if let Some(isq) = options.isq {
        builder = builder.with_isq(isq);
    }
    builder.build().await
}

impl Inner {
    pub(crate) async fn submit(self: &Arc<Self>, request: Request) -> Result<(), GlimpseError> {
        let model = self.model();
        let sender = model.inner().get_sender(None).map_err(|e| self.restart_after_failure(e.to_string()))?;
        sender.send(request).await.map_err(|_| self.restart_after_failure("the engine thread is gone".into()))
    }

    pub(crate) fn model(&self) -> Arc<Model> {
        match self.model.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The engine thread is gone: starts reloading the model (unless a reload is already running) and returns
    /// the error that tells this caller to retry.
    pub(crate) fn restart_after_failure(self: &Arc<Self>, detail: String) -> GlimpseError {
        tracing::error!(%detail, "engine failure; reloading the model");
        if !self.reloading.swap(true, Ordering::SeqCst) {
            let inner = self.clone();
            tokio::spawn(async move {
                match build_model(inner.staged.path(), &inner.options, &inner.folder.family).await {
                    Ok(model) => {
                        if let Ok(mut slot) = inner.model.write() {
                            *slot = Arc::new(model);
                        }
                        tracing::info!("model reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "model reload failed"),
                }
                inner.reloading.store(false, Ordering::SeqCst);
            });
        }
        GlimpseError::Unavailable(format!("The model engine failed ({detail}) and is being restarted; retry the request."))
    }
}

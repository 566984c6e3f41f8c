//! Metrics of every model's work, through the `metrics` facade (the server installs a Prometheus recorder;
//! without one these calls cost nothing): generations in flight, the wait before the engine accepts a request,
//! time to first token, total generation time, and tokens in (by modality) and out. The registry wraps every
//! engine in [`Metered`], so no backend and no front door has to remember to.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;
use metrics::{counter, gauge, histogram};

use crate::engine::{Engine, GenerationEvent, GenerationStream, ModelInfo, PromptTokens};
use crate::error::GlimpseError;
use crate::prompt::{GenerateRequest, Prompt};

/// Describes the metrics (their help text on `/metrics`); call once after installing a recorder.
pub fn describe() {
    metrics::describe_gauge!(
        "glimpse_generations_in_flight",
        "Generations a model has accepted: waiting for a slot (glimpse_queue_depth) or running."
    );
    metrics::describe_histogram!(
        "glimpse_queue_wait_seconds",
        metrics::Unit::Seconds,
        "From a generation request reaching its model until the engine accepted it (image preparation included)."
    );
    metrics::describe_histogram!("glimpse_time_to_first_token_seconds", metrics::Unit::Seconds, "Until the first output text.");
    metrics::describe_histogram!("glimpse_generation_seconds", metrics::Unit::Seconds, "Until the last output token.");
    metrics::describe_counter!("glimpse_prompt_tokens_total", "Prompt tokens consumed, by modality.");
    metrics::describe_counter!("glimpse_output_tokens_total", "Output tokens generated.");
    metrics::describe_counter!("glimpse_images_decoded_total", "Images decoded to a model's planned size.");
    metrics::describe_counter!("glimpse_image_cache_hits_total", "Images at a planned size served from the pixel cache.");
    metrics::describe_histogram!("glimpse_pixel_path_seconds", metrics::Unit::Seconds, "Decoding one image to its planned size.");
}

pub struct Metered {
    inner: Arc<dyn Engine>,
}

impl Metered {
    pub fn wrap(inner: Arc<dyn Engine>) -> Arc<dyn Engine> {
        Arc::new(Metered { inner })
    }
}

/// Counts a generation in flight for as long as it lives (its stream may be dropped early: a client gone).
struct InFlight(String);

impl InFlight {
    fn start(model: &str) -> InFlight {
        gauge!("glimpse_generations_in_flight", "model" => model.to_string()).increment(1.0);
        InFlight(model.to_string())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("glimpse_generations_in_flight", "model" => self.0.clone()).decrement(1.0);
    }
}

#[async_trait]
impl Engine for Metered {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    async fn count_tokens(&self, prompt: &Prompt) -> Result<PromptTokens, GlimpseError> {
        self.inner.count_tokens(prompt).await
    }

    async fn ready(&self) -> Result<(), GlimpseError> {
        self.inner.ready().await
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerationStream, GlimpseError> {
        let model = self.inner.info().id.clone();
        let in_flight = InFlight::start(&model);
        let start = Instant::now();
        let stream = self.inner.generate(request).await?;
        histogram!("glimpse_queue_wait_seconds", "model" => model.clone()).record(start.elapsed().as_secs_f64());
        let mut first = true;
        let metered = stream.map(move |event| {
            let _keep = &in_flight;
            match &event {
                Ok(GenerationEvent::Text(_)) if first => {
                    first = false;
                    histogram!("glimpse_time_to_first_token_seconds", "model" => model.clone())
                        .record(start.elapsed().as_secs_f64());
                }
                Ok(GenerationEvent::Done { usage, .. }) => {
                    histogram!("glimpse_generation_seconds", "model" => model.clone()).record(start.elapsed().as_secs_f64());
                    let text = usage.prompt.text as u64;
                    counter!("glimpse_prompt_tokens_total", "model" => model.clone(), "modality" => "TEXT").increment(text);
                    let image = usage.prompt.image as u64;
                    counter!("glimpse_prompt_tokens_total", "model" => model.clone(), "modality" => "IMAGE").increment(image);
                    counter!("glimpse_output_tokens_total", "model" => model.clone()).increment(usage.output as u64);
                }
                _ => {}
            }
            event
        });
        Ok(Box::pin(metered))
    }
}

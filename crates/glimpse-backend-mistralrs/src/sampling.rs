//! Client sampling options + the model's generation_config.json → the engine's sampling parameters.
//!
//! What the client leaves unset comes from the model folder (Qwen-VL ships greedy defaults), and only then
//! from Gemini's documented default (temperature 1.0). Temperature 0 means greedy.

use glimpse_core::SamplingOptions;
use mistralrs::{SamplingParams, StopTokens};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationDefaults {
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_k: Option<u32>,
    pub top_p: Option<f64>,
    pub repetition_penalty: Option<f32>,
}

impl GenerationDefaults {
    pub fn from_generation_config(config: &Value) -> Self {
        GenerationDefaults {
            do_sample: config.get("do_sample").and_then(Value::as_bool),
            temperature: config.get("temperature").and_then(Value::as_f64),
            top_k: config.get("top_k").and_then(Value::as_u64).map(|k| k as u32),
            top_p: config.get("top_p").and_then(Value::as_f64),
            repetition_penalty: config.get("repetition_penalty").and_then(Value::as_f64).map(|p| p as f32),
        }
    }
}

pub fn sampling_params(options: &SamplingOptions, defaults: &GenerationDefaults, max_len: usize) -> SamplingParams {
    let temperature = options.temperature.unwrap_or(match defaults.do_sample {
        Some(false) => 0.0,
        _ => defaults.temperature.unwrap_or(1.0),
    });
    let greedy = temperature <= 0.0;
    let mut params = SamplingParams::neutral();
    if greedy {
        // mistralrs 0.8.1 documents `temperature: None` as argmax, but `add_request` replaces it with 1.0
        // and samples the whole distribution. Top-k 1 at temperature 1 is exact argmax, and the log-probs it
        // reports are the model's own.
        params.temperature = Some(1.0);
        params.top_k = Some(1);
    } else {
        params.temperature = Some(temperature);
        params.top_k = options.top_k.or(defaults.top_k).map(|k| k as usize);
        params.top_p = options.top_p.or(defaults.top_p);
    }
    params.presence_penalty = options.presence_penalty;
    params.frequency_penalty = options.frequency_penalty;
    params.repetition_penalty = defaults.repetition_penalty.filter(|&p| p != 1.0);
    if !options.stop_sequences.is_empty() {
        params.stop_toks = Some(StopTokens::Seqs(options.stop_sequences.clone()));
    }
    params.max_len = Some(max_len);
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_model_defaults_apply_when_client_sets_nothing() {
        let defaults = GenerationDefaults { do_sample: Some(false), ..Default::default() };
        let p = sampling_params(&SamplingOptions::default(), &defaults, 10);
        assert_eq!((p.temperature, p.top_k, p.top_p), (Some(1.0), Some(1), None));
        assert_eq!(p.max_len, Some(10));
    }

    #[test]
    fn client_temperature_wins() {
        let defaults = GenerationDefaults { do_sample: Some(false), top_k: Some(1), ..Default::default() };
        let options = SamplingOptions { temperature: Some(0.7), top_k: Some(40), ..Default::default() };
        let p = sampling_params(&options, &defaults, 10);
        assert_eq!(p.temperature, Some(0.7));
        assert_eq!(p.top_k, Some(40));
    }

    #[test]
    fn gemini_default_is_temperature_one() {
        let p = sampling_params(&SamplingOptions::default(), &GenerationDefaults::default(), 10);
        assert_eq!(p.temperature, Some(1.0));
    }
}

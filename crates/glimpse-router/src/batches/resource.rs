//! A batch job as the API shows it: a long-running `Operation` whose `metadata` is the `GenerateContentBatch`
//! (the SDKs read the job from `metadata`), with `response` set once it is done.

use glimpse_files::batches::{BatchRecord, BatchResult, BatchStats};
use glimpse_files::record::rfc3339;
use glimpse_files::FileStore;
use serde_json::{json, Value};

use crate::error::ApiError;

const BATCH_TYPE: &str = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch";
const OUTPUT_TYPE: &str = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput";

/// Results read from the database per page when building inline output.
const PAGE: usize = 1000;

/// `output` is the job's results (see [`output`]), when it is done and they are wanted.
pub fn operation_json(batch: &BatchRecord, stats: BatchStats, output: Option<Value>) -> Value {
    let name = format!("batches/{}", batch.id);
    // int64 fields are strings in proto JSON.
    let mut metadata = json!({
        "@type": BATCH_TYPE,
        "name": name,
        "model": batch.model,
        "state": batch.state.as_str(),
        "createTime": rfc3339(batch.create_ms),
        "updateTime": rfc3339(batch.update_ms),
        "batchStats": {
            "requestCount": stats.requests.to_string(),
            "successfulRequestCount": stats.succeeded.to_string(),
            "failedRequestCount": stats.failed.to_string(),
            "pendingRequestCount": stats.pending.to_string(),
        },
    });
    if let Some(display_name) = &batch.display_name {
        metadata["displayName"] = json!(display_name);
    }
    if let Some(end) = batch.end_ms {
        metadata["endTime"] = json!(rfc3339(end));
    }
    if let Some(file) = &batch.input_file {
        metadata["inputConfig"] = json!({"fileName": format!("files/{file}")});
    }
    let mut operation = json!({"name": name, "done": batch.state.is_done()});
    if let Some(output) = output {
        metadata["output"] = output.clone();
        let mut response = output;
        response["@type"] = json!(OUTPUT_TYPE);
        operation["response"] = response;
    }
    if let Some(error) = &batch.error {
        operation["error"] = json!({"code": glimpse_core::Code::Internal.number(), "message": error});
    }
    operation["metadata"] = metadata;
    operation
}

/// A finished job's results: `{"responsesFile": "files/…"}` for a job made from a file, else every finished
/// request's `{"response" | "error", "metadata"}` in order (`inlinedResponses`). `None` while it runs.
pub async fn output(store: &FileStore, batch: &BatchRecord) -> Result<Option<Value>, ApiError> {
    if !batch.state.is_done() {
        return Ok(None);
    }
    if let Some(file) = &batch.responses_file {
        return Ok(Some(json!({"responsesFile": format!("files/{file}")})));
    }
    if batch.input_file.is_some() {
        return Ok(None);
    }
    let mut responses = Vec::new();
    let mut from = 0;
    loop {
        let page = store.batch_db().batch_results(&batch.id, from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.index + 1;
        responses.extend(page.iter().filter_map(inline_response));
    }
    Ok(Some(json!({"inlinedResponses": {"inlinedResponses": responses}})))
}

/// `{"response": …}` or `{"error": …}`; `None` for a request that never ran (a cancelled job's).
fn outcome_json(result: &BatchResult) -> Option<Value> {
    Some(match result.outcome.as_ref()? {
        Ok(response) => json!({"response": parse_stored(response)}),
        Err(status) => json!({"error": parse_stored(status)}),
    })
}

/// One inline result, with its request's `metadata`.
fn inline_response(result: &BatchResult) -> Option<Value> {
    let mut entry = outcome_json(result)?;
    if let Some(metadata) = &result.metadata {
        entry["metadata"] = parse_stored(metadata);
    }
    Some(entry)
}

/// One line of a results file: `{"key", "response" | "error"}`; `None` for a request that never ran.
pub fn results_line(result: &BatchResult) -> Option<String> {
    let mut line = outcome_json(result)?;
    if let Some(key) = &result.key {
        line["key"] = json!(key);
    }
    Some(format!("{line}\n"))
}

/// JSON this server stored itself.
fn parse_stored(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!(text))
}

//! A batch's requests as they enter the database: inline (`inputConfig.requests.requests[]`, checked when the
//! job is made) or the lines of a JSONL file (`{"key", "request"}` each, read by the runner; a line that is not
//! such an object becomes that request's error, not the job's).

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use glimpse_core::{Code, GlimpseError};
use glimpse_files::batches::NewBatchRequest;
use glimpse_files::db::Db;
use serde_json::{json, Value};

use crate::error::ApiError;

/// Requests written to the database per transaction while a file is read.
const PAGE: usize = 500;

/// `{"requests": [{"request": {...}, "metadata": {...}}, ...]}` (or the list itself).
pub fn inline_requests(value: &Value) -> Result<Vec<NewBatchRequest>, ApiError> {
    let items = value.get("requests").unwrap_or(value).as_array().ok_or_else(|| {
        ApiError::invalid("batch.inputConfig.requests.requests must be a list of {request, metadata}.")
    })?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let request = item.get("request").filter(|r| r.is_object()).ok_or_else(|| {
                ApiError::invalid(format!("batch.inputConfig.requests.requests[{index}].request must be a GenerateContentRequest."))
            })?;
            let metadata = item.get("metadata").filter(|m| !m.is_null());
            let key = metadata.and_then(|m| m.get("key")).and_then(Value::as_str).map(str::to_string);
            Ok(NewBatchRequest {
                key,
                metadata: metadata.map(Value::to_string),
                request: Some(request.to_string()),
                failure: None,
            })
        })
        .collect()
}

/// One JSONL line (`number` from 1) as a request.
fn line_request(number: u64, line: &[u8]) -> NewBatchRequest {
    let failed = |message: String| NewBatchRequest {
        failure: Some(json!({"code": Code::InvalidArgument.number(), "message": message}).to_string()),
        ..NewBatchRequest::default()
    };
    let mut value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(e) => return failed(format!("Line {number} of the input file is not valid JSON: {e}")),
    };
    crate::json_keys::normalize_gemini(&mut value);
    let key = value.get("key").and_then(Value::as_str).map(str::to_string);
    match value.get("request").filter(|r| r.is_object()) {
        Some(request) => NewBatchRequest { key, metadata: None, request: Some(request.to_string()), failure: None },
        None => NewBatchRequest { key, ..failed(format!("Line {number} of the input file has no \"request\" object.")) },
    }
}

/// Reads a JSONL file into job `id`'s requests, page by page (constant memory whatever the file's size; a line
/// longer than `max_line` bytes is that request's error). Returns how many requests it holds.
pub async fn read_file<S>(db: &Db, id: &str, mut body: S, max_line: usize) -> Result<u64, GlimpseError>
where
    S: Stream<Item = Result<Bytes, GlimpseError>> + Unpin,
{
    let mut lines = LineSplitter { buffer: BytesMut::new(), scanned: 0, max_line, skipping: false, number: 0 };
    let mut page = Vec::with_capacity(PAGE);
    let mut count = 0u64;
    let flush = |page: &mut Vec<NewBatchRequest>, count: &mut u64| {
        let first = *count;
        *count += page.len() as u64;
        (first, std::mem::take(page))
    };
    while let Some(piece) = body.next().await {
        lines.buffer.extend_from_slice(&piece?);
        while let Some(request) = lines.next_line(false) {
            page.push(request);
            if page.len() == PAGE {
                let (first, full) = flush(&mut page, &mut count);
                db.add_batch_requests(id, first, &full).await?;
            }
        }
    }
    if let Some(request) = lines.next_line(true) {
        page.push(request);
    }
    let (first, rest) = flush(&mut page, &mut count);
    db.add_batch_requests(id, first, &rest).await?;
    Ok(count)
}

/// Splits bytes into lines, skipping blank ones, cutting off (and failing) lines over `max_line`.
struct LineSplitter {
    buffer: BytesMut,
    /// Bytes of `buffer` already searched for a newline (a long line arrives in many pieces: each byte is
    /// looked at once, not once per piece).
    scanned: usize,
    max_line: usize,
    /// Inside a line that was too long, until its newline.
    skipping: bool,
    number: u64,
}

impl LineSplitter {
    /// The next whole line's request; at the `end` of the input, also the last line without a newline.
    fn next_line(&mut self, end: bool) -> Option<NewBatchRequest> {
        loop {
            let newline = self.buffer[self.scanned..].iter().position(|&b| b == b'\n').map(|at| self.scanned + at);
            self.scanned = self.buffer.len();
            let line = match newline {
                Some(at) => {
                    let line = self.buffer.split_to(at);
                    self.buffer.advance(1);
                    self.scanned = 0;
                    line
                }
                None if end && !self.buffer.is_empty() => {
                    self.scanned = 0;
                    self.buffer.split()
                }
                None => {
                    if self.buffer.len() > self.max_line && !self.skipping {
                        self.skipping = true;
                        self.number += 1;
                        self.buffer.clear();
                        self.scanned = 0;
                        return Some(too_long(self.number, self.max_line));
                    }
                    if self.skipping {
                        self.buffer.clear();
                        self.scanned = 0;
                    }
                    return None;
                }
            };
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.number += 1;
            if line.len() > self.max_line {
                return Some(too_long(self.number, self.max_line));
            }
            return Some(line_request(self.number, &line));
        }
    }
}

fn too_long(number: u64, max_line: usize) -> NewBatchRequest {
    NewBatchRequest {
        failure: Some(
            json!({"code": Code::InvalidArgument.number(), "message": format!("Line {number} of the input file is longer than {max_line} bytes.")})
                .to_string(),
        ),
        ..NewBatchRequest::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[&[u8]], max_line: usize) -> Vec<NewBatchRequest> {
        let mut lines = LineSplitter { buffer: BytesMut::new(), scanned: 0, max_line, skipping: false, number: 0 };
        let mut out = Vec::new();
        for piece in input {
            lines.buffer.extend_from_slice(piece);
            while let Some(request) = lines.next_line(false) {
                out.push(request);
            }
        }
        out.extend(lines.next_line(true));
        out
    }

    #[test]
    fn lines_split_across_pieces_keep_their_keys_and_bad_lines_fail_alone() {
        let good = br#"{"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}"#;
        let requests = split(&[&good[..20], &good[20..], b"\n\nnot json\n{\"key\": \"c\"}\n", good], 1000);
        assert_eq!(requests.len(), 4);
        assert_eq!(requests[0].key.as_deref(), Some("a"));
        assert!(requests[0].failure.is_none() && requests[0].request.as_deref().unwrap().contains("hi"));
        assert!(requests[1].failure.as_deref().unwrap().contains("Line 2 of the input file is not valid JSON"));
        assert_eq!(requests[2].key.as_deref(), Some("c"));
        assert!(requests[2].failure.as_deref().unwrap().contains("no \\\"request\\\""));
        assert!(requests[3].failure.is_none(), "the last line needs no newline");
    }

    #[test]
    fn a_line_over_the_limit_fails_and_the_next_line_still_runs() {
        let long = format!("{{\"key\": \"x\", \"pad\": \"{}\"}}\n", "p".repeat(300));
        let good = "{\"key\": \"b\", \"request\": {}}\n";
        let requests = split(&[&long.as_bytes()[..150], &long.as_bytes()[150..], good.as_bytes()], 100);
        assert_eq!(requests.len(), 2);
        assert!(requests[0].failure.as_deref().unwrap().contains("longer than 100 bytes"));
        assert_eq!(requests[1].key.as_deref(), Some("b"));
    }
}

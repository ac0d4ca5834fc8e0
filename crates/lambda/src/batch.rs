//! The fan-out events: a batch of S3 objects per invocation, each transcribed through the
//! router's `/invocations` and its result written beside the others.
//!
//! - **Step Functions Distributed Map** with an `ItemBatcher`: `{"Items": [{"Key", "Size",
//!   "Etag", …}], "BatchInput": {"bucket", "output"}}` → `{"results": [record…], "failed": N}`.
//! - **S3 Batch Operations** (`LambdaInvoke`, schema 2.0 and 1.0): `{"invocationSchemaVersion",
//!   "invocationId", "job": {"userArguments": {"output"}}, "tasks": [{"taskId", "s3Bucket" |
//!   "s3BucketArn", "s3Key"}]}` → `{"invocationSchemaVersion", "treatMissingKeysAs",
//!   "invocationId", "results": [{"taskId", "resultCode", "resultString"}]}`.
//! - **SQS carrying S3 event notifications**, with `ReportBatchItemFailures`: `{"Records":
//!   [{"messageId", "body": "<S3 event>", "eventSource": "aws:sqs"}]}` →
//!   `{"batchItemFailures": [{"itemIdentifier"}]}`.
//!
//! Each file's result goes to `{output}/{key with its extension replaced by .json}`; `output`
//! comes from the event, else `HARKEN_OUTPUT_URI`. Failures are split by whether a retry can
//! help: a corrupt or missing file fails for good (recorded, not retried: an SQS message is not
//! returned to the queue for it, S3 Batch gets `PermanentFailure`); throttling, a busy function
//! or S3 trouble is temporary (SQS redelivers, S3 Batch retries `TemporaryFailure`).

use bytes::Bytes;
use harken_artifacts::objects;
use harken_batch::{ErrorBody, Record, Status};
use harken_core::ErrorKind;
use serde_json::{Value, json};

use crate::{Handler, MAX_S3_AUDIO_BYTES};

/// Environment variable naming the default output prefix of fan-out events.
pub const OUTPUT_ENV: &str = "HARKEN_OUTPUT_URI";

/// One file's outcome and whether retrying could change it.
struct Outcome {
    record: Record,
    transient: bool,
}

fn default_output() -> Option<String> {
    std::env::var(OUTPUT_ENV).ok().filter(|o| !o.trim().is_empty())
}

fn failed(audio: &str, kind: ErrorKind, message: String) -> Outcome {
    let transient =
        matches!(kind, ErrorKind::Overloaded | ErrorKind::Timeout | ErrorKind::Unavailable);
    let mut record = Record::failed(
        &harken_batch::Input {
            audio: audio.to_owned(),
            uri: audio.to_owned(),
            rel: String::new(),
            id: None,
            language: None,
            size: None,
            validator: None,
        },
        ErrorBody::new(kind, message),
    );
    record.t = now();
    Outcome { record, transient }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Handler {
    /// Fetch `s3://bucket/key`, transcribe it, write its JSON result below `output`.
    async fn transcribe_object(&self, bucket: &str, key: &str, output: Option<&str>) -> Outcome {
        let audio = format!("s3://{bucket}/{key}");
        let started = std::time::Instant::now();
        let bytes = match objects::read(&audio, MAX_S3_AUDIO_BYTES).await {
            Ok(b) => b,
            Err(e) => {
                let kind = if e.is_transient() { ErrorKind::Unavailable } else { e.kind() };
                return failed(&audio, kind, format!("{e}"));
            }
        };
        let fetch_seconds = started.elapsed().as_secs_f64();
        let request = http::Request::post("/invocations?response_format=json")
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        let Ok(request) = request else {
            return failed(&audio, ErrorKind::Internal, "could not build the request".into());
        };
        let t0 = std::time::Instant::now();
        let response = harken_server::call(&self.router, request).await;
        let seconds = t0.elapsed().as_secs_f64();
        let status = response.status();
        let body = response.into_body();
        let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = parsed["error"]["message"].as_str().unwrap_or("transcription failed");
            let kind = match status.as_u16() {
                503 => ErrorKind::Overloaded,
                504 => ErrorKind::Timeout,
                413 => ErrorKind::TooLarge,
                415 => ErrorKind::UnsupportedMedia,
                404 => ErrorKind::NotFound,
                400..=499 => ErrorKind::InvalidInput,
                _ => ErrorKind::Internal,
            };
            return failed(&audio, kind, message.to_owned());
        }
        let written = match output {
            Some(prefix) => {
                let target = objects::join(prefix, &harken_batch::result_name(key, "json"));
                if let Err(e) = objects::write(&target, Bytes::from(body.to_vec())).await {
                    return failed(
                        &audio,
                        ErrorKind::Unavailable,
                        format!("writing the result: {e}"),
                    );
                }
                Some(target)
            }
            None => None,
        };
        Outcome {
            record: Record {
                id: None,
                audio,
                status: Status::Ok,
                text: parsed["text"].as_str().map(str::to_owned),
                language: parsed["language"].as_str().map(str::to_owned),
                duration: parsed["duration"].as_f64(),
                seconds: Some(seconds),
                fetch_seconds: Some(fetch_seconds),
                output: written,
                error: None,
                input_version: None,
                settings: None,
                t: now(),
            },
            transient: false,
        }
    }

    /// A Distributed Map batch (`ItemBatcher`): every item, one after another (an environment
    /// runs one transcription at a time).
    pub(crate) async fn map_batch(&self, event: Value) -> Value {
        let input = &event["BatchInput"];
        let Some(bucket) = input["bucket"].as_str() else {
            return json!({"results": [], "failed": 0, "error": "BatchInput.bucket is missing"});
        };
        let output = input["output"].as_str().map(str::to_owned).or_else(default_output);
        let items = event["Items"].as_array().cloned().unwrap_or_default();
        let mut results = Vec::with_capacity(items.len());
        let mut failed_n = 0;
        for item in &items {
            let Some(key) = item["Key"].as_str() else {
                failed_n += 1;
                results.push(json!({"status": "error", "error": {"code": "invalid_input", "message": "an item without Key"}, "item": item}));
                continue;
            };
            let o = self.transcribe_object(bucket, key, output.as_deref()).await;
            if o.record.status == Status::Error {
                failed_n += 1;
            }
            log(&o);
            results.push(serde_json::to_value(&o.record).unwrap_or(Value::Null));
        }
        json!({"results": results, "failed": failed_n})
    }

    /// An S3 Batch Operations `LambdaInvoke` (schema 2.0 or 1.0).
    pub(crate) async fn s3_batch(&self, event: Value) -> Value {
        let version = event["invocationSchemaVersion"].as_str().unwrap_or("1.0").to_owned();
        let output = event["job"]["userArguments"]["output"]
            .as_str()
            .map(str::to_owned)
            .or_else(default_output);
        let tasks = event["tasks"].as_array().cloned().unwrap_or_default();
        let mut results = Vec::with_capacity(tasks.len());
        for task in &tasks {
            let task_id = task["taskId"].clone();
            let bucket = task["s3Bucket"].as_str().map(str::to_owned).or_else(|| {
                task["s3BucketArn"]
                    .as_str()
                    .map(|a| a.trim_start_matches("arn:aws:s3:::").to_owned())
            });
            let (Some(bucket), Some(key)) = (bucket, task["s3Key"].as_str()) else {
                results.push(json!({"taskId": task_id, "resultCode": "PermanentFailure", "resultString": "task without s3Bucket/s3BucketArn and s3Key"}));
                continue;
            };
            // S3 Batch Operations URL-encodes keys in the manifest it generates.
            let key = percent_decode(key);
            let o = self.transcribe_object(&bucket, &key, output.as_deref()).await;
            log(&o);
            let (code, text) = match (&o.record.status, o.transient) {
                (Status::Ok, _) => (
                    "Succeeded",
                    o.record
                        .output
                        .clone()
                        .unwrap_or_else(|| o.record.text.clone().unwrap_or_default()),
                ),
                (Status::Error, true) => ("TemporaryFailure", error_text(&o.record)),
                (Status::Error, false) => ("PermanentFailure", error_text(&o.record)),
            };
            results.push(json!({"taskId": task_id, "resultCode": code, "resultString": text}));
        }
        json!({
            "invocationSchemaVersion": version,
            "treatMissingKeysAs": "PermanentFailure",
            "invocationId": event["invocationId"].clone(),
            "results": results,
        })
    }

    /// SQS messages carrying S3 event notifications, answered with the messages to retry.
    pub(crate) async fn sqs(&self, event: Value) -> Value {
        let output = default_output();
        let mut failures = Vec::new();
        for message in event["Records"].as_array().cloned().unwrap_or_default() {
            let id = message["messageId"].clone();
            let body: Value = match message["body"].as_str().map(serde_json::from_str) {
                Some(Ok(b)) => b,
                _ => {
                    // Not an S3 notification: retrying will not change it; the DLQ is the place.
                    tracing::warn!(message_id = %id, "SQS message body is not an S3 event");
                    failures.push(json!({"itemIdentifier": id}));
                    continue;
                }
            };
            if body["Event"] == "s3:TestEvent" {
                continue;
            }
            let mut retry = false;
            for r in body["Records"].as_array().cloned().unwrap_or_default() {
                let (Some(bucket), Some(key)) =
                    (r["s3"]["bucket"]["name"].as_str(), r["s3"]["object"]["key"].as_str())
                else {
                    continue;
                };
                // S3 notifications URL-encode keys, with `+` for spaces.
                let key = percent_decode(&key.replace('+', " "));
                let Some(out) = output.as_deref() else {
                    tracing::error!("SQS event but no {OUTPUT_ENV}: nowhere to write results");
                    retry = true;
                    continue;
                };
                let o = self.transcribe_object(bucket, &key, Some(out)).await;
                log(&o);
                if o.record.status == Status::Error {
                    if o.transient {
                        retry = true;
                    } else {
                        // A bad file fails for good: its error is written where its result
                        // would be, and the message is done.
                        let target =
                            objects::join(out, &harken_batch::result_name(&key, "error.json"));
                        let line = serde_json::to_vec(&o.record).unwrap_or_default();
                        if objects::write(&target, Bytes::from(line)).await.is_err() {
                            retry = true;
                        }
                    }
                }
            }
            if retry {
                failures.push(json!({"itemIdentifier": id}));
            }
        }
        json!({"batchItemFailures": failures})
    }
}

fn error_text(r: &Record) -> String {
    r.error.as_ref().map_or_else(String::new, |e| format!("{}: {}", e.code, e.message))
}

fn log(o: &Outcome) {
    match &o.record.error {
        None => {
            tracing::info!(audio = %o.record.audio, seconds = o.record.seconds, output = o.record.output.as_deref(), "transcribed")
        }
        Some(e) => {
            tracing::warn!(audio = %o.record.audio, code = %e.code, error = %e.message, transient = o.transient, "file failed")
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_decoded() {
        assert_eq!(percent_decode("calls/a%20b.wav"), "calls/a b.wav");
        assert_eq!(percent_decode("x%2"), "x%2");
        assert_eq!(percent_decode("%C3%A9t%C3%A9.mp3"), "été.mp3");
    }
}

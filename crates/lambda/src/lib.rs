//! Harken on AWS Lambda: one handler for every event a function receives.
//!
//! - **HTTP events** (API Gateway REST v1 and HTTP v2, Function URLs, ALB) go through
//!   `lambda_http`'s conversion into an HTTP request, then through the very router of
//!   `harken serve` ([`harken_server::call`]): same routes, limits, errors and metrics. Binary
//!   bodies arrive base64-encoded; a body that claims to be base64 and is not gets a 400.
//! - **Direct invocations** (`{"audio_base64": …}` or `{"audio_s3_uri": "s3://…"}` for audio past
//!   the 6 MB payload limit, plus `language`, `task`, `response_format`, `word_timestamps`, `hotwords`)
//!   become a raw-audio `POST /invocations`; the answer is `{"statusCode", "contentType",
//!   "body"}` with `body` parsed when it is JSON.
//! - **Keep-warm pings** (EventBridge `Scheduled Event`s and `{"warmup": true}`) are answered
//!   without touching the engine and counted.
//!
//! Client errors are returned as ordinary results with a status code, never as function errors:
//! Lambda retries asynchronous invocations that fail, and a bad request will not get better.
//! Loading the model (the init phase) is the binary's job; this crate gets a ready router.

mod batch;

pub use batch::OUTPUT_ENV;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use harken_core::ErrorKind;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Service};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest audio object fetched for `audio_s3_uri`, bytes.
pub const MAX_S3_AUDIO_BYTES: u64 = 512 << 20;

/// Counters a function reports in its logs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Keep-warm pings answered.
    pub warmups: AtomicU64,
    /// HTTP events handled.
    pub http: AtomicU64,
    /// Direct invocations handled.
    pub direct: AtomicU64,
    /// Fan-out batches handled (Step Functions, S3 Batch Operations, SQS).
    pub batches: AtomicU64,
}

/// What kind of event arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A keep-warm ping: from an EventBridge schedule or a `{"warmup": true}` payload.
    Warmup(&'static str),
    /// A direct invocation with audio in the payload or on S3.
    Direct,
    /// A Step Functions Distributed Map batch (`Items` + `BatchInput`).
    MapBatch,
    /// An S3 Batch Operations `LambdaInvoke` (`invocationSchemaVersion` + `tasks`).
    S3Batch,
    /// SQS messages (`Records` from `aws:sqs`), S3 event notifications in their bodies.
    Sqs,
    /// Anything else is taken for an HTTP event (API Gateway, Function URL, ALB).
    Http,
}

/// Classify an event by its shape.
pub fn classify(event: &Value) -> EventKind {
    if event.get("warmup").and_then(Value::as_bool) == Some(true) {
        return EventKind::Warmup("payload");
    }
    if event.get("source").and_then(Value::as_str) == Some("aws.events")
        && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
    {
        return EventKind::Warmup("schedule");
    }
    if event.get("audio_base64").is_some() || event.get("audio_s3_uri").is_some() {
        return EventKind::Direct;
    }
    if event.get("Items").is_some_and(Value::is_array) && event.get("BatchInput").is_some() {
        return EventKind::MapBatch;
    }
    if event.get("invocationSchemaVersion").is_some()
        && event.get("tasks").is_some_and(Value::is_array)
    {
        return EventKind::S3Batch;
    }
    if event["Records"]
        .as_array()
        .is_some_and(|r| !r.is_empty() && r.iter().all(|m| m["eventSource"] == "aws:sqs"))
    {
        return EventKind::Sqs;
    }
    EventKind::Http
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Direct {
    audio_base64: Option<String>,
    audio_s3_uri: Option<String>,
    language: Option<String>,
    task: Option<String>,
    response_format: Option<String>,
    #[serde(default)]
    word_timestamps: bool,
    #[serde(default)]
    hotwords: Vec<String>,
}

/// The function's handler: cheap to clone, shared by every invocation of an environment.
#[derive(Clone)]
pub struct Handler {
    router: harken_server::Router,
    stats: Arc<Stats>,
}

impl Handler {
    /// A handler serving `router` (from [`harken_server::router`]).
    pub fn new(router: harken_server::Router) -> Self {
        Handler { router, stats: Arc::new(Stats::default()) }
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Handle one event. Errors are reserved for failures of the handler itself.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
        let (payload, context) = event.into_parts();
        match classify(&payload) {
            EventKind::Warmup(source) => {
                let n = self.stats.warmups.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::info!(source, warmups = n, request_id = %context.request_id, "keep-warm ping");
                Ok(json!({"warm": true, "source": source, "warmups": n}))
            }
            EventKind::Direct => {
                self.stats.direct.fetch_add(1, Ordering::Relaxed);
                Ok(self.direct(payload).await)
            }
            EventKind::MapBatch => {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                Ok(self.map_batch(payload).await)
            }
            EventKind::S3Batch => {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                Ok(self.s3_batch(payload).await)
            }
            EventKind::Sqs => {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                Ok(self.sqs(payload).await)
            }
            EventKind::Http => {
                self.stats.http.fetch_add(1, Ordering::Relaxed);
                self.http(payload, context).await
            }
        }
    }

    async fn direct(&self, payload: Value) -> Value {
        let d: Direct = match serde_json::from_value(payload) {
            Ok(d) => d,
            Err(e) => {
                return error_envelope(
                    ErrorKind::InvalidInput,
                    &format!("invalid direct invocation: {e}"),
                );
            }
        };
        let audio = match (&d.audio_base64, &d.audio_s3_uri) {
            (Some(b64), None) => match base64::engine::general_purpose::STANDARD.decode(b64.trim())
            {
                Ok(a) => Bytes::from(a),
                Err(e) => {
                    return error_envelope(
                        ErrorKind::InvalidInput,
                        &format!("audio_base64 is not valid base64: {e}"),
                    );
                }
            },
            (None, Some(uri)) => match harken_artifacts::read_object(uri, MAX_S3_AUDIO_BYTES).await
            {
                Ok(a) => a,
                Err(e) => return error_envelope(e.kind(), &format!("audio_s3_uri: {e}")),
            },
            _ => {
                return error_envelope(
                    ErrorKind::InvalidInput,
                    "give exactly one of audio_base64 and audio_s3_uri",
                );
            }
        };
        let mut query = Vec::new();
        for (k, v) in
            [("language", &d.language), ("task", &d.task), ("response_format", &d.response_format)]
        {
            if let Some(v) = v {
                query.push(format!("{k}={}", urlencode(v)));
            }
        }
        if d.word_timestamps {
            query.push("word_timestamps=true".into());
        }
        if !d.hotwords.is_empty() {
            query.push(format!("hotwords={}", urlencode(&d.hotwords.join(","))));
        }
        let uri = if query.is_empty() {
            "/invocations".to_owned()
        } else {
            format!("/invocations?{}", query.join("&"))
        };
        let request = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(audio);
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                return error_envelope(ErrorKind::InvalidInput, &format!("invalid option: {e}"));
            }
        };
        let response = harken_server::call(&self.router, request).await;
        envelope(response)
    }

    async fn http(
        &self,
        mut payload: Value,
        context: lambda_runtime::Context,
    ) -> Result<Value, lambda_runtime::Error> {
        let bad_base64 = payload.get("isBase64Encoded").and_then(Value::as_bool) == Some(true)
            && payload
                .get("body")
                .and_then(Value::as_str)
                .is_some_and(|b| base64::engine::general_purpose::STANDARD.decode(b).is_err());
        if bad_base64 {
            // lambda_http panics on such a body; answer 400 from an empty request instead.
            payload["body"] = Value::Null;
            payload["isBase64Encoded"] = Value::Bool(false);
        }
        let request: LambdaRequest = match serde_json::from_value(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "event is neither an HTTP event, a direct invocation nor a keep-warm ping");
                return Ok(error_envelope(
                    ErrorKind::InvalidInput,
                    "unrecognised event: expected an API Gateway, Function URL or ALB event, {\"audio_base64\": …}, {\"audio_s3_uri\": …} or {\"warmup\": true}",
                ));
            }
        };
        let router = self.router.clone();
        let service = lambda_http::service_fn(move |req: lambda_http::Request| {
            let router = router.clone();
            async move {
                let response = if bad_base64 {
                    json_error(
                        ErrorKind::InvalidInput,
                        "the event body is marked isBase64Encoded but is not valid base64",
                    )
                } else {
                    harken_server::call(&router, to_bytes_request(req)).await
                };
                Ok::<_, Infallible>(response.map(http_body_util::Full::new))
            }
        });
        let mut adapter: Adapter<'_, _, _> = Adapter::from(service);
        // lambda_http builds the request URI with `Url::parse(..).unwrap()` from the event's
        // Host header and path, so a malformed one (found by the `lambda_event` fuzz target:
        // `"host": "a>b"`) panics inside the conversion. Refuse such an event with 400.
        let event = LambdaEvent::new(request, context);
        let converted =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| adapter.call(event)));
        let Ok(pending) = converted else {
            tracing::warn!("HTTP event with a malformed Host header or path");
            let info = harken_api::ErrorInfo::of(ErrorKind::InvalidInput);
            let body = json!({"error": {"message": "the event's Host header or path does not form a valid URL", "type": info.openai_type, "code": info.code}});
            // The proxy-integration response shape every HTTP event source accepts.
            return Ok(json!({
                "statusCode": info.status,
                "headers": {"content-type": "application/json"},
                "body": body.to_string(),
                "isBase64Encoded": false,
            }));
        };
        let response = pending.await?;
        Ok(serde_json::to_value(response)?)
    }
}

/// The HTTP request for the router. API Gateway REST events carry the stage in the path
/// (`/prod/invocations`); the router's routes are stage-free, so the event's raw path is used.
fn to_bytes_request(req: lambda_http::Request) -> http::Request<Bytes> {
    use lambda_http::RequestExt as _;
    let raw = req.raw_http_path().to_owned();
    let mut req = req;
    if !raw.is_empty() && raw != req.uri().path() {
        let pq = match req.uri().query() {
            Some(q) => format!("{raw}?{q}"),
            None => raw,
        };
        if let Ok(pq) = http::uri::PathAndQuery::try_from(pq) {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(pq);
            if let Ok(uri) = http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req.map(|body| match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(s) => Bytes::from(s),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    })
}

/// An error response in the server's shape, from the one `ErrorKind` table of `harken-api`.
fn json_error(kind: ErrorKind, message: &str) -> http::Response<Bytes> {
    let info = harken_api::ErrorInfo::of(kind);
    let body = json!({"error": {"message": message, "type": info.openai_type, "code": info.code}});
    http::Response::builder()
        .status(info.status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap_or_default()
}

fn error_envelope(kind: ErrorKind, message: &str) -> Value {
    envelope(json_error(kind, message))
}

/// `{"statusCode", "contentType", "body"}` for a direct invocation; JSON bodies are embedded
/// as JSON, others as a string.
fn envelope(response: http::Response<Bytes>) -> Value {
    let status = response.status().as_u16();
    let ctype = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let bytes = response.into_body();
    let body = if ctype.starts_with("application/json") {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    json!({"statusCode": status, "contentType": ctype, "body": body})
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Check that the variables Lambda sets are present, before any work: the runtime client
/// (`lambda_runtime`) would panic on a missing one. Returns what is missing.
pub fn check_environment() -> Result<(), String> {
    let mut missing = Vec::new();
    for var in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    ] {
        if std::env::var(var).map_or(true, |v| v.is_empty()) {
            missing.push(var);
        }
    }
    if let Ok(m) = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        && !m.is_empty()
        && m.parse::<i32>().is_err()
    {
        return Err(format!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE={m:?} is not a whole number of MB"));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not in a Lambda environment: {} not set (Lambda sets them; to run locally use a Runtime API emulator, e.g. tests/lambda/runtime_api.py or `cargo lambda watch`)",
            missing.join(", ")
        ))
    }
}

/// Serve events from the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`) until the environment is
/// shut down.
pub async fn run(handler: Handler) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move { handler.handle(event).await }
    }))
    .await
}

/// Tell the Runtime API that initialisation failed (`POST /runtime/init/error`), so Lambda
/// reports the cause instead of a timeout. Best effort: the process exits either way.
pub async fn report_init_error(error_type: &str, message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else { return };
    // Real Lambda sets `host:port`; emulators may include a scheme and a path prefix.
    let base = if api.starts_with("http://") { api } else { format!("http://{api}") };
    let url = format!("{}/2018-06-01/runtime/init/error", base.trim_end_matches('/'));
    let body = json!({"errorType": error_type, "errorMessage": message, "stackTrace": []});
    let result = reqwest::Client::new()
        .post(&url)
        .header("Lambda-Runtime-Function-Error-Type", error_type)
        .json(&body)
        .send()
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, url, "could not report the init error to the Runtime API");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_classified_by_shape() {
        assert_eq!(classify(&json!({"warmup": true})), EventKind::Warmup("payload"));
        assert_eq!(
            classify(
                &json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
            ),
            EventKind::Warmup("schedule")
        );
        assert_eq!(classify(&json!({"audio_base64": "AAAA"})), EventKind::Direct);
        assert_eq!(classify(&json!({"audio_s3_uri": "s3://b/k"})), EventKind::Direct);
        assert_eq!(classify(&json!({"warmup": false, "version": "2.0"})), EventKind::Http);
        assert_eq!(
            classify(&json!({"Items": [{"Key": "a.wav"}], "BatchInput": {"bucket": "b"}})),
            EventKind::MapBatch
        );
        assert_eq!(
            classify(&json!({"invocationSchemaVersion": "2.0", "tasks": []})),
            EventKind::S3Batch
        );
        assert_eq!(
            classify(&json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]})),
            EventKind::Sqs
        );
        assert_eq!(classify(&json!({"Records": []})), EventKind::Http);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(urlencode("en"), "en");
        assert_eq!(urlencode("a b&c=d"), "a%20b%26c%3Dd");
    }

    /// Found by the `lambda_event` fuzz target: lambda_http panicked on this Host header.
    #[tokio::test]
    async fn a_host_header_that_is_not_a_url_gets_400_not_a_panic() {
        let fixture =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/lambda/function-url.json");
        let text = std::fs::read_to_string(fixture).unwrap_or_default();
        let mut event: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(event.is_object(), "fixture {fixture} missing");
        event["headers"]["host"] = json!("a>cdefghijklmnop.lambda-url.us-east-1.on.aws");
        event["body"] = Value::Null;
        event["isBase64Encoded"] = json!(false);
        let router = harken_server::Router::new().fallback(|| async { "reached the router" });
        let handler = Handler::new(router);
        let out = handler
            .handle(LambdaEvent::new(event, lambda_runtime::Context::default()))
            .await
            .unwrap_or_else(|e| panic!("handler failed: {e}"));
        assert_eq!(out["statusCode"], 400, "{out}");
        assert!(out["body"].as_str().is_some_and(|b| b.contains("Host header")), "{out}");
    }
}

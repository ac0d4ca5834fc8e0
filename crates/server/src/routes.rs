//! Routes: SageMaker (`/ping`, `/invocations`, `/endpoints/{name}/invocations`), OpenAI
//! (`/v1/audio/transcriptions`, `/v1/audio/translations`, `/v1/models`), operations
//! (`/healthz`, `/metrics`); and the bridge from async handlers to blocking inference.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Extension, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use harken_api::{ResponseFormat, render};
use harken_core::{ErrorKind, Task};
use harken_engine::TranscribeOptions;
use serde::Deserialize;

use crate::{ApiError, AppState};

/// The router for `state`.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let inference = Router::new()
        .route("/invocations", post(invocations))
        .route("/endpoints/{name}/invocations", post(invocations))
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/v1/audio/translations", post(translations))
        .route("/v1/models", get(models))
        .route("/v1/progress/{request_id}", get(progress))
        .route("/v1/realtime", get(crate::realtime::realtime))
        .route("/v1/listen", get(crate::realtime::listen))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    let page = if state.config.web_ui { crate::web::router() } else { Router::new() };
    Router::new()
        .merge(page)
        .route("/ping", get(|| async { StatusCode::OK }))
        .route("/execution-parameters", get(execution_parameters))
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(inference)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), crate::conn::pace_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(ErrorKind::Internal, "a request handler panicked").into_response()
        }))
        .with_state(state)
}

/// The OpenAPI 3.1 description of every route (`crates/server/api/openapi.json`).
const OPENAPI: &str = include_str!("../api/openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found(req: Request) -> ApiError {
    ApiError {
        status: Some(StatusCode::NOT_FOUND),
        code: Some("not_found"),
        ..ApiError::bad_request(format!("no route {} {}", req.method(), req.uri().path()))
    }
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError {
        status: Some(StatusCode::METHOD_NOT_ALLOWED),
        code: Some("method_not_allowed"),
        ..ApiError::bad_request(format!("{} is not allowed on {}", req.method(), req.uri().path()))
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut body = s.metrics.render();
    if let Some(m) = &s.config.model {
        let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        body.push_str(&format!(
            "# HELP harken_model_info The loaded model package.\n# TYPE harken_model_info gauge\nharken_model_info{{package=\"{}\",version=\"{}\",digest=\"{}\"}} 1\n",
            esc(&m.package),
            esc(&m.version),
            esc(&m.digest)
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Give every request an id (the caller's `x-request-id` when it sends one), run it inside a
/// span carrying that id, count and time it, and log it once with its outcome.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    use tracing::Instrument;
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let route = req.uri().path().to_owned();
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let n = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("{:x}-{n}", std::process::id())
        });
    let span = tracing::info_span!("request", request_id = %request_id);
    let start = Instant::now();
    let mut req = req;
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let mut resp = next.run(req).instrument(span.clone()).await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let _entered = span.enter();
    let secs = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    // Label by route pattern, never by raw path: unknown paths must not grow the metric set.
    let label = match route.as_str() {
        "/ping"
        | "/healthz"
        | "/metrics"
        | "/invocations"
        | "/v1/audio/transcriptions"
        | "/v1/audio/translations"
        | "/v1/models"
        | "/"
        | "/ui/app.js"
        | "/ui/app.css"
        | "/openapi.json" => route.as_str(),
        r if r.starts_with("/v1/progress/") => "/v1/progress/{request_id}",
        r if r.starts_with("/endpoints/") && r.ends_with("/invocations") => {
            "/endpoints/{name}/invocations"
        }
        _ => "other",
    };
    s.metrics.observe(label, status, secs);
    // A 503 is the queue working as configured; under a retry storm a warning per refusal would
    // cost more than the refusal itself. /metrics counts them.
    if status >= 500 && status != 503 {
        tracing::warn!(%method, route = label, status, seconds = secs, "request");
    } else {
        tracing::info!(%method, route = label, status, seconds = secs, "request");
    }
    resp
}

/// The id of the request being handled (the caller's `x-request-id`, or one made up).
#[derive(Clone, Debug)]
struct RequestId(String);

/// How far the transcription of request `request_id` has got, while it is in flight; 404 once
/// it has finished (its response carries the result) or when no such request is running.
async fn progress(
    State(s): State<AppState>,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    match s.progress.get(&request_id) {
        Some(status) => Ok(Json(serde_json::json!({
            "request_id": request_id,
            "state": status.state,
            "done_s": status.done_s,
            "total_s": status.total_s,
        }))
        .into_response()),
        None => Err(ApiError {
            status: Some(StatusCode::NOT_FOUND),
            code: Some("not_found"),
            ..ApiError::bad_request(format!("no transcription in flight with id {request_id:?}"))
        }),
    }
}

async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.config.api_key {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same_secret(t.trim(), key));
        if !ok {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

/// Whether `given` equals `key`, in time that depends on neither: both are hashed first, so the
/// comparison runs over 32 bytes whatever their lengths, and the bytes are compared without an
/// early exit.
fn same_secret(given: &str, key: &str) -> bool {
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    let (a, b) = (sha2::Sha256::digest(given.as_bytes()), sha2::Sha256::digest(key.as_bytes()));
    a.as_slice().ct_eq(b.as_slice()).into()
}

async fn models(State(s): State<AppState>) -> impl IntoResponse {
    let mut model = serde_json::json!({
        "id": s.config.model_name, "object": "model", "created": 0, "owned_by": "harken"
    });
    // Extra fields are ignored by OpenAI clients and tell operators which package is live.
    if let Some(m) = &s.config.model {
        model["package"] = serde_json::json!({
            "name": m.package,
            "version": m.version,
            "digest": m.digest,
            "source": m.source,
            "registry_version": m.registry_version,
        });
    }
    Json(serde_json::json!({"object": "list", "data": [model]}))
}

/// One inference request, validated.
struct Job {
    request_id: Option<String>,
    audio: Vec<u8>,
    /// A large body waits in a temporary file instead of `audio` (deleted when dropped).
    spooled: Option<tempfile::TempPath>,
    opts: TranscribeOptions,
    format: ResponseFormat,
    task: Task,
    /// Answer with server-sent events (`transcript.text.delta` per segment, then `done`).
    stream: bool,
}

impl Job {
    /// The audio's length from its headers (0 when they do not say): for the queue metrics.
    fn audio_seconds(&self) -> f64 {
        let probed = match &self.spooled {
            Some(path) => std::fs::File::open(path).ok().and_then(|f| {
                let len = f.metadata().map_or(0, |m| m.len());
                harken_audio::probe_duration(Box::new(f), len)
            }),
            // The headers are at the start; a prefix spares copying the whole body.
            None => harken_audio::probe_duration(
                Box::new(std::io::Cursor::new(
                    self.audio[..self.audio.len().min(1 << 20)].to_vec(),
                )),
                self.audio.len() as u64,
            ),
        };
        probed.unwrap_or(0.0)
    }
}

/// Counts a request's audio as in flight until dropped (whichever way the request ends).
struct AudioGauge {
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    seconds: f64,
}

impl AudioGauge {
    fn new(metrics: &std::sync::Arc<crate::metrics::Metrics>, seconds: f64) -> Self {
        metrics.in_flight_audio(seconds);
        AudioGauge { metrics: metrics.clone(), seconds }
    }
}

impl Drop for AudioGauge {
    fn drop(&mut self) {
        self.metrics.in_flight_audio(-self.seconds);
    }
}

/// A place among the requests admitted (`workers + queue`), or 503 at once. Taken before the
/// body is read: a refused upload costs a response, not a read of up to `max_body_bytes` (a
/// client sending `Expect: 100-continue` never sends it at all).
///
/// The request timeout runs from here, upload included, so a slow uploader cannot hold a place
/// longer than any other request.
fn admit(s: &AppState) -> Result<Admitted, ApiError> {
    let permit = s.admission.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            ErrorKind::Overloaded,
            "server busy: all workers and queue slots are taken; retry shortly",
        )
    })?;
    Ok(Admitted {
        _permit: permit,
        deadline: tokio::time::Instant::now() + s.config.request_timeout,
    })
}

/// A request's place among those admitted, and when its time is up.
struct Admitted {
    _permit: tokio::sync::OwnedSemaphorePermit,
    deadline: tokio::time::Instant,
}

impl Admitted {
    /// Read the body (or form) within the request's time.
    async fn read<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        tokio::time::timeout_at(self.deadline, read).await.map_err(|_| ApiError {
            kind: ErrorKind::InvalidInput,
            message: "the request body was not received within the request timeout".into(),
            code: Some("body_timeout"),
            status: Some(StatusCode::REQUEST_TIMEOUT),
        })?
    }
}

/// Run `job` on a worker (its admission already taken): a worker permit, blocking inference,
/// the request timeout.
async fn run(s: &AppState, admitted: Admitted, job: Job) -> Result<Response, ApiError> {
    let deadline = admitted.deadline;
    let tracked = job.request_id.as_deref().map(|id| s.progress.track(id));
    let audio_s = job.audio_seconds();
    s.metrics.queued(1);
    s.metrics.queued_audio(audio_s);
    let permit = tokio::time::timeout_at(deadline, s.workers.clone().acquire_owned()).await;
    s.metrics.queued(-1);
    s.metrics.queued_audio(-audio_s);
    let permit = match permit {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => return Err(ApiError::new(ErrorKind::Unavailable, "server shutting down")),
        Err(_) => return Err(ApiError::new(ErrorKind::Timeout, "timed out waiting for a worker")),
    };
    let engine = s.engine.clone();
    let metrics = s.metrics.clone();
    metrics.in_flight(1);
    let _in_flight_audio = AudioGauge::new(&metrics, audio_s);
    let Job { audio, spooled, opts, format, task, stream, .. } = job;
    if stream {
        return sse(engine, metrics, permit, tracked, audio, opts, deadline).await;
    }
    let handle = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut report = |p: harken_engine::Progress<'_>| {
            if let Some(t) = &tracked {
                t.update(p.done_s, p.total_s);
            }
        };
        match &spooled {
            Some(path) => engine.transcribe_file(path, &opts, &mut report),
            None => engine.transcribe_bytes(audio, None, &opts, &mut report),
        }
    });
    let result = tokio::time::timeout_at(deadline, handle).await;
    metrics.in_flight(-1);
    let (transcript, _timings) = match result {
        Err(_) => {
            return Err(ApiError::new(
                ErrorKind::Timeout,
                "transcription exceeded the request timeout",
            ));
        }
        Ok(Err(join)) => {
            return Err(ApiError::new(
                ErrorKind::Internal,
                format!("transcription worker failed: {join}"),
            ));
        }
        Ok(Ok(r)) => r?,
    };
    metrics.add_audio_seconds(transcript.duration_s);
    let task = if task == Task::Translate { "translate" } else { "transcribe" };
    let body = render(&transcript, format, None, task);
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// The streaming answer: each segment's text as a `transcript.text.delta` event as soon as its
/// window is decoded, then `transcript.text.done` with the whole text (the transcript the engine
/// returned, not a re-join of what was sent), or an `error` event. The worker permit is held
/// until the transcription ends, whether or not the client is still reading. The audio is
/// decoded before the answer starts, so bad input still gets its 4xx status.
async fn sse(
    engine: std::sync::Arc<harken_engine::Engine>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    permit: tokio::sync::OwnedSemaphorePermit,
    tracked: Option<crate::progress::Tracked>,
    audio: Vec<u8>,
    opts: TranscribeOptions,
    deadline: tokio::time::Instant,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let decoder = engine.clone();
    let decoded = tokio::time::timeout_at(
        deadline,
        tokio::task::spawn_blocking(move || decoder.decode_bytes(audio)),
    )
    .await;
    let audio = match decoded {
        Err(_) => {
            metrics.in_flight(-1);
            return Err(ApiError::new(ErrorKind::Timeout, "decoding exceeded the request timeout"));
        }
        Ok(Err(join)) => {
            metrics.in_flight(-1);
            return Err(ApiError::new(
                ErrorKind::Internal,
                format!("decoding worker failed: {join}"),
            ));
        }
        Ok(Ok(Err(e))) => {
            metrics.in_flight(-1);
            return Err(ApiError::from(e));
        }
        Ok(Ok(Ok(a))) => a,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<serde_json::Value>(256);
    let worker_tx = tx.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut sent = false;
        let mut report = |p: harken_engine::Progress<'_>| {
            if let Some(t) = &tracked {
                t.update(p.done_s, p.total_s);
            }
            for seg in p.segments {
                sent = true;
                // A client that went away only stops the events, not the bookkeeping.
                let _ = worker_tx.blocking_send(serde_json::json!({
                    "type": "transcript.text.delta",
                    "delta": seg.text,
                    "segment_id": format!("seg_{}", seg.id),
                }));
            }
        };
        let r = engine.transcribe(&audio, &opts, &mut report);
        (r, sent)
    });
    tokio::spawn(async move {
        let result = tokio::time::timeout_at(deadline, handle).await;
        metrics.in_flight(-1);
        let event = match result {
            Err(_) => {
                Err(ApiError::new(ErrorKind::Timeout, "transcription exceeded the request timeout"))
            }
            Ok(Err(join)) => Err(ApiError::new(
                ErrorKind::Internal,
                format!("transcription worker failed: {join}"),
            )),
            Ok(Ok((Err(e), _))) => Err(ApiError::from(e)),
            Ok(Ok((Ok((transcript, _)), sent))) => {
                metrics.add_audio_seconds(transcript.duration_s);
                if !sent && !transcript.text.is_empty() {
                    // Engines that finish all at once (CTC, DeepSpeech) send one delta.
                    let _ = tx
                        .send(serde_json::json!({"type": "transcript.text.delta", "delta": transcript.text}))
                        .await;
                }
                Ok(serde_json::json!({"type": "transcript.text.done", "text": transcript.text}))
            }
        };
        let event =
            event.unwrap_or_else(|e| serde_json::json!({"type": "error", "error": e.to_json()}));
        let _ = tx.send(event).await;
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(Event::default().data(v.to_string())), rx))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

fn parse_format(s: &str) -> Result<ResponseFormat, ApiError> {
    ResponseFormat::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "response_format {s:?} is not one of json, text, srt, verbose_json, vtt"
        ))
    })
}

fn options(
    language: Option<String>,
    task: Task,
    word_timestamps: bool,
    prompt: Option<String>,
) -> TranscribeOptions {
    TranscribeOptions {
        language: language.filter(|l| !l.is_empty() && l != "auto"),
        task,
        word_timestamps,
        initial_prompt: prompt.filter(|p| !p.trim().is_empty()),
        ..TranscribeOptions::default()
    }
}

/// Hot words of a request: a comma-separated string or a list; at most 100 words of at most
/// 64 characters.
fn parse_hotwords(items: &[String]) -> Result<Vec<String>, ApiError> {
    let words: Vec<String> = items
        .iter()
        .flat_map(|s| s.split(','))
        .map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty())
        .collect();
    if words.len() > 100 {
        return Err(ApiError::bad_request(format!("{} hotwords; at most 100", words.len())));
    }
    if let Some(w) = words.iter().find(|w| w.chars().count() > 64) {
        return Err(ApiError::bad_request(format!("hotword {w:?} is longer than 64 characters")));
    }
    Ok(words)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvocationJson {
    audio_base64: String,
    #[serde(default)]
    hotwords: Vec<String>,
    language: Option<String>,
    response_format: Option<String>,
    #[serde(default)]
    word_timestamps: bool,
    task: Option<String>,
}

fn format_from_accept(headers: &HeaderMap) -> Result<ResponseFormat, ApiError> {
    let accept =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    for part in accept.split(',') {
        let mime = part.split(';').next().unwrap_or("").trim();
        let f = match mime {
            "application/json" | "*/*" | "" => Some(ResponseFormat::Json),
            "text/plain" => Some(ResponseFormat::Text),
            "text/vtt" => Some(ResponseFormat::Vtt),
            "application/x-subrip" => Some(ResponseFormat::Srt),
            _ => None,
        };
        if let Some(f) = f {
            return Ok(f);
        }
    }
    Err(ApiError {
        status: Some(StatusCode::NOT_ACCEPTABLE),
        code: Some("not_acceptable"),
        ..ApiError::bad_request(format!(
            "Accept {accept:?}: supported are application/json, text/plain, text/vtt, application/x-subrip"
        ))
    })
}

/// Options of a raw-audio `/invocations` request, from the query string (SageMaker passes it
/// through; the Lambda handler uses it for direct invocations).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    language: Option<String>,
    hotwords: Option<String>,
    task: Option<String>,
    response_format: Option<String>,
    #[serde(default)]
    word_timestamps: bool,
}

fn parse_task(task: Option<&str>) -> Result<Task, ApiError> {
    match task {
        None | Some("transcribe") => Ok(Task::Transcribe),
        Some("translate") => Ok(Task::Translate),
        Some(t) => Err(ApiError::bad_request(format!("task {t:?} is not transcribe or translate"))),
    }
}

/// `GET /execution-parameters`: what a SageMaker Batch Transform job may send this container.
async fn execution_parameters(State(s): State<AppState>) -> impl IntoResponse {
    let (concurrent, payload_mb) = match &s.config.batch {
        Some(b) => (b.max_concurrent_transforms, b.max_payload_mb),
        None => (s.config.workers.max(1), (s.config.max_body_bytes >> 20).max(1) as u64),
    };
    Json(serde_json::json!({
        "MaxConcurrentTransforms": concurrent,
        "BatchStrategy": "SINGLE_RECORD",
        "MaxPayloadInMB": payload_mb,
    }))
}

async fn invocations(
    State(s): State<AppState>,
    id: Option<Extension<RequestId>>,
    query: axum::extract::RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let record_errors = s.config.batch.as_ref().is_some_and(|b| b.record_errors);
    match invoke(s, id, query, headers, body).await {
        // In a transform job a 4xx fails the whole job; the bad record is reported in its output
        // line instead. Overload and timeouts keep their 5xx: SageMaker retries those.
        Err(e)
            if record_errors
                && !matches!(
                    e.kind,
                    ErrorKind::Overloaded
                        | ErrorKind::Timeout
                        | ErrorKind::Unavailable
                        | ErrorKind::Internal
                ) =>
        {
            tracing::warn!(code = e.code.unwrap_or(harken_api::ErrorInfo::of(e.kind).code), error = %e.message, "bad record answered 200 (HARKEN_BATCH_ERRORS=record)");
            let mut resp = Json(serde_json::json!({"error": e.to_json()})).into_response();
            resp.headers_mut()
                .insert("x-harken-record-error", axum::http::HeaderValue::from_static("true"));
            Ok(resp)
        }
        other => other,
    }
}

/// Bodies larger than this wait in a temporary file, not in memory: a 1-GB Async Inference
/// payload then costs its decoded audio, not the upload on top of it.
const SPOOL_OVER: usize = 16 << 20;

async fn invoke(
    s: AppState,
    id: Option<Extension<RequestId>>,
    query: axum::extract::RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let admitted = admit(&s)?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let mime = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (bytes, spooled) = if harken_engine::is_audio_media_type(&mime) {
        match admitted.read(read_payload(body, s.config.max_body_bytes)).await? {
            Payload::Memory(b) => (b, None),
            Payload::File(p) => (Bytes::new(), Some(p)),
        }
    } else {
        (admitted.read(read_body(body, s.config.max_body_bytes)).await?, None)
    };
    let job = match mime.as_str() {
        "application/json" => {
            let req: InvocationJson = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
            let audio =
                base64::engine::general_purpose::STANDARD.decode(req.audio_base64.trim()).map_err(
                    |e| ApiError::bad_request(format!("audio_base64 is not valid base64: {e}")),
                )?;
            let task = parse_task(req.task.as_deref())?;
            let format = match &req.response_format {
                Some(f) => parse_format(f)?,
                None => format_from_accept(&headers)?,
            };
            let mut opts = options(req.language, task, req.word_timestamps, None);
            opts.hotwords = parse_hotwords(&req.hotwords)?;
            Job { request_id: None, audio, spooled: None, opts, format, task, stream: false }
        }
        m if harken_engine::is_audio_media_type(m) => {
            let q: RawQuery = match query.0.as_deref() {
                Some(q) if !q.is_empty() => serde_urlencoded_query(q)?,
                _ => RawQuery::default(),
            };
            let task = parse_task(q.task.as_deref())?;
            let format = match &q.response_format {
                Some(f) => parse_format(f)?,
                None => format_from_accept(&headers)?,
            };
            let mut opts = options(q.language, task, q.word_timestamps, None);
            opts.hotwords = parse_hotwords(q.hotwords.as_slice())?;
            Job {
                request_id: None,
                audio: Vec::from(bytes),
                spooled,
                opts,
                format,
                task,
                stream: false,
            }
        }
        other => {
            return Err(ApiError::new(
                ErrorKind::UnsupportedMedia,
                format!(
                    "Content-Type {other:?}: send audio ({}) or application/json",
                    harken_engine::AUDIO_MEDIA_TYPES.join(", ")
                ),
            ));
        }
    };
    let job = Job { request_id: id.map(|Extension(RequestId(r))| r), ..job };
    run(&s, admitted, job).await
}

/// Parse `a=b&c=d` into [`RawQuery`] with axum's own query extractor rules.
fn serde_urlencoded_query(q: &str) -> Result<RawQuery, ApiError> {
    let uri: axum::http::Uri = format!("/?{q}")
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    axum::extract::Query::<RawQuery>::try_from_uri(&uri)
        .map(|axum::extract::Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| too_large(limit))
}

/// A request body: in memory, or in a temporary file past [`SPOOL_OVER`] bytes.
enum Payload {
    Memory(Bytes),
    File(tempfile::TempPath),
}

async fn read_payload(body: Body, limit: usize) -> Result<Payload, ApiError> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let mut stream = body.into_data_stream();
    let mut memory = Vec::new();
    let mut file: Option<(tokio::fs::File, tempfile::TempPath)> = None;
    let spool_err = |e: std::io::Error| {
        ApiError::new(ErrorKind::Internal, format!("could not spool the request body: {e}"))
    };
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| too_large(limit))?;
        // A raw body stream is outside `DefaultBodyLimit`: the limit is kept here.
        total = total.saturating_add(chunk.len());
        if total > limit {
            return Err(too_large(limit));
        }
        if let Some((f, _)) = &mut file {
            f.write_all(&chunk).await.map_err(spool_err)?;
            continue;
        }
        memory.extend_from_slice(&chunk);
        if memory.len() > SPOOL_OVER {
            let (std_file, path) = tempfile::NamedTempFile::with_prefix("harken-body-")
                .map_err(spool_err)?
                .into_parts();
            let mut f = tokio::fs::File::from_std(std_file);
            f.write_all(&memory).await.map_err(spool_err)?;
            memory = Vec::new();
            file = Some((f, path));
        }
    }
    match file {
        Some((mut f, path)) => {
            f.flush().await.map_err(spool_err)?;
            Ok(Payload::File(path))
        }
        None => Ok(Payload::Memory(Bytes::from(memory))),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(ErrorKind::TooLarge, format!("request body exceeds the limit of {limit} bytes"))
}

async fn transcriptions(
    State(s): State<AppState>,
    id: Option<Extension<RequestId>>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    openai(s, id.map(|Extension(RequestId(r))| r), multipart(mp)?, Task::Transcribe).await
}

async fn translations(
    State(s): State<AppState>,
    id: Option<Extension<RequestId>>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    openai(s, id.map(|Extension(RequestId(r))| r), multipart(mp)?, Task::Translate).await
}

/// axum's own rejection of a body that is not multipart, as an OpenAI-shaped error.
fn multipart(mp: Result<Multipart, MultipartRejection>) -> Result<Multipart, ApiError> {
    mp.map_err(|e| {
        ApiError::bad_request(format!(
            "send the request as multipart/form-data with a \"file\" field ({})",
            e.body_text()
        ))
    })
}

/// Most multipart fields in one request: every documented field once, a hundred hot words one per
/// field, and room to spare; past it the request is refused before more parts are read.
const MAX_FIELDS: usize = 256;

async fn openai(
    s: AppState,
    request_id: Option<String>,
    mp: Multipart,
    task: Task,
) -> Result<Response, ApiError> {
    let admitted = admit(&s)?;
    let Form { audio, opts, format, stream } =
        admitted.read(read_form(mp, task, s.config.max_body_bytes)).await?;
    run(&s, admitted, Job { request_id, audio, spooled: None, opts, format, task, stream }).await
}

/// An OpenAI transcription form, read and validated.
pub(crate) struct Form {
    audio: Vec<u8>,
    opts: TranscribeOptions,
    format: ResponseFormat,
    stream: bool,
}

/// Read the fields of an OpenAI transcription or translation form.
pub(crate) async fn read_form(
    mut mp: Multipart,
    task: Task,
    max_body_bytes: usize,
) -> Result<Form, ApiError> {
    let (mut file, mut language, mut prompt, mut format, mut words) =
        (None, None, None, ResponseFormat::Json, false);
    let mut temperature: Option<f32> = None;
    let mut hotwords: Vec<String> = Vec::new();
    let mut stream = false;
    let mut vad = VadFields::default();
    let mut hallucination_silence: Option<f32> = None;
    let mut fields = 0usize;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(_)) if fields == MAX_FIELDS => {
                return Err(ApiError::bad_request(format!(
                    "more than {MAX_FIELDS} multipart fields"
                )));
            }
            Ok(Some(f)) => {
                fields += 1;
                f
            }
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(too_large(max_body_bytes));
            }
            Err(e) => return Err(ApiError::bad_request(format!("malformed multipart body: {e}"))),
        };
        let name = field.name().unwrap_or("").to_owned();
        let data = match field.bytes().await {
            Ok(d) => d,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(too_large(max_body_bytes));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "malformed multipart field {name:?}: {e}"
                )));
            }
        };
        let text = || String::from_utf8_lossy(&data).trim().to_owned();
        match name.as_str() {
            "file" => file = Some(data.to_vec()),
            "language" => language = Some(text()),
            "prompt" => prompt = Some(text()),
            "hotwords" | "hotwords[]" => hotwords.push(text()),
            "response_format" => format = parse_format(&text())?,
            "timestamp_granularities[]" | "timestamp_granularities" => words |= text() == "word",
            "temperature" => {
                let t: f32 = text().parse().map_err(|_| {
                    ApiError::bad_request(format!("temperature {:?} is not a number", text()))
                })?;
                if !(0.0..=1.0).contains(&t) {
                    return Err(ApiError::bad_request(format!("temperature {t} is outside 0–1")));
                }
                temperature = Some(t);
            }
            "stream" => stream = parse_bool("stream", &text())?,
            "hallucination_silence_threshold" => {
                hallucination_silence =
                    Some(parse_num("hallucination_silence_threshold", &text())?);
            }
            n if vad.set(n, &text())? => {}
            "model" => {}
            other => tracing::debug!(field = other, "ignored multipart field"),
        }
    }
    let audio =
        file.ok_or_else(|| ApiError::bad_request("multipart field \"file\" is required"))?;
    // Word timings are reported in verbose_json only, as OpenAI does.
    let words = words && format == ResponseFormat::VerboseJson;
    let mut opts = options(language, task, words, prompt);
    opts.hotwords = parse_hotwords(&hotwords)?;
    // OpenAI: 0 (the default) lets the server raise the temperature as needed; a positive value
    // samples at exactly that temperature.
    if let Some(t) = temperature.filter(|&t| t > 0.0) {
        opts.temperatures = vec![t];
    }
    opts.vad = vad.options()?;
    opts.hallucination_silence_threshold = hallucination_silence;
    // As OpenAI: with stream=true the events carry text whatever response_format says.
    // OpenAI streams transcriptions only; a translation answers as usual.
    let stream = stream && task == Task::Transcribe;
    Ok(Form { audio, opts, format, stream })
}

/// Read a multipart body of `content_type` as a transcription form: the fuzzing entry point.
#[cfg(feature = "fuzzing")]
pub(crate) async fn fuzz_form(content_type: &str, body: Vec<u8>) -> Result<usize, ApiError> {
    use axum::extract::FromRequest;
    let req = Request::post("/v1/audio/transcriptions")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    read_form(mp, Task::Transcribe, usize::MAX).await.map(|f| f.audio.len())
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request(format!("{name} {v:?} is not true or false"))),
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ApiError> {
    v.parse().map_err(|_| ApiError::bad_request(format!("{name} {v:?} is not a number")))
}

/// Voice activity detection fields of a request (speaches' `vad_filter`, faster-whisper's
/// `VadOptions` names).
#[derive(Default)]
struct VadFields {
    filter: Option<bool>,
    opts: harken_engine::VadOptions,
    any: bool,
}

impl VadFields {
    /// Takes field `name` if it is one of ours.
    fn set(&mut self, name: &str, v: &str) -> Result<bool, ApiError> {
        let o = &mut self.opts;
        match name {
            "vad_filter" => self.filter = Some(parse_bool(name, v)?),
            "vad_threshold" => o.threshold = parse_num(name, v)?,
            "vad_neg_threshold" => o.neg_threshold = Some(parse_num(name, v)?),
            "vad_min_speech_duration_ms" => o.min_speech_duration_ms = parse_num(name, v)?,
            "vad_max_speech_duration_s" => o.max_speech_duration_s = parse_num(name, v)?,
            "vad_min_silence_duration_ms" => o.min_silence_duration_ms = parse_num(name, v)?,
            "vad_speech_pad_ms" => o.speech_pad_ms = parse_num(name, v)?,
            _ => return Ok(false),
        }
        self.any |= name != "vad_filter";
        Ok(true)
    }

    fn options(&self) -> Result<Option<harken_engine::VadOptions>, ApiError> {
        if !self.filter.unwrap_or(self.any) {
            return Ok(None);
        }
        self.opts.validate().map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Some(self.opts))
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_by_value_whatever_their_lengths() {
        assert!(same_secret("sk-abc", "sk-abc"));
        assert!(!same_secret("sk-abd", "sk-abc"));
        assert!(!same_secret("sk-ab", "sk-abc"));
        assert!(!same_secret("sk-abcd", "sk-abc"));
        assert!(!same_secret("", "sk-abc"));
    }
}

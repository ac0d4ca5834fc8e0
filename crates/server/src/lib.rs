//! The HTTP front end: SageMaker's bring-your-own-container contract and an OpenAI-compatible
//! transcription API over one shared, loaded [`Engine`].
//!
//! Brief overview: [`router`] builds the axum `Router` for an [`AppState`]; [`serve`] runs it on
//! a listener until a shutdown signal, finishing requests in flight. Inference runs on blocking
//! threads behind two semaphores: an admission bound (`workers + queue`; past it a request gets
//! 503 with `Retry-After` at once) and a worker bound (`workers` transcriptions at a time).
//! `/ping`, `/healthz` and `/metrics` never wait on either. `/` serves the web page (see
//! `web`), which reads a running transcription's progress from `/v1/progress/{request_id}`. Errors map to status codes through
//! `harken_api::ErrorInfo`, the one table.
//!
//! axum types do not appear outside this crate's public API except `Router` itself.

mod conn;
mod error;
mod metrics;
mod progress;
mod realtime;
mod routes;
pub mod sagemaker;
mod web;

use std::sync::Arc;
use std::time::Duration;

use harken_engine::Engine;
use tokio::sync::Semaphore;

pub use axum::Router;
pub use conn::{ConnLimits, serve};
pub use error::ApiError;
pub use metrics::Metrics;
pub use realtime::StreamLimits;
pub use routes::router;

/// Entry points for the fuzz targets (`fuzz/`): the parsers of client input, reachable without
/// a model. Not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Read `body` as a multipart transcription form; the audio's length on success.
    pub async fn multipart_form(content_type: &str, body: Vec<u8>) -> Result<usize, String> {
        crate::routes::fuzz_form(content_type, body).await.map_err(|e| e.message)
    }

    /// Replay Realtime client events (text frames); the number of events answered.
    pub fn realtime_events(frames: &[&str], beta: bool) -> usize {
        crate::realtime::replay_client_events(frames, beta).len()
    }
}

/// Deployment settings of the server.
#[derive(Clone)]
pub struct ServerConfig {
    /// Transcriptions running at once.
    pub workers: usize,
    /// Requests allowed to wait for a worker; beyond `workers + queue`, 503.
    pub queue: usize,
    /// Longest a request may take end to end; past it, 504.
    pub request_timeout: Duration,
    /// Largest accepted request body, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Bearer token required on inference routes; `None` leaves them open.
    pub api_key: Option<String>,
    /// Model name reported by `/v1/models` and accepted in requests.
    pub model_name: String,
    /// Which package is loaded (reported by `/v1/models` and `/metrics`); `None` for a raw
    /// model directory.
    pub model: Option<ModelIdentity>,
    /// Serve the web page at `/` (assets compiled in; `--no-ui` turns it off).
    pub web_ui: bool,
    /// Limits of live transcription (WebSocket).
    pub streams: StreamLimits,
    /// Connection limits: how many, header and body timing (see [`serve`]).
    pub conn: ConnLimits,
    /// Inside a SageMaker Batch Transform job: what `/execution-parameters` offers and how bad
    /// records are answered.
    pub batch: Option<sagemaker::Batch>,
}

/// The identity of the loaded model package: what changes when `HARKEN_MODEL_URI` or a
/// registry alias moves.
#[derive(Debug, Clone, Default)]
pub struct ModelIdentity {
    /// Package name.
    pub package: String,
    /// Package version.
    pub version: String,
    /// `sha256:<hex>` of the package manifest.
    pub digest: String,
    /// The URI it was resolved from (and the chain of resolution).
    pub source: String,
    /// MLflow registry version, for `models:/` URIs.
    pub registry_version: Option<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("workers", &self.workers)
            .field("queue", &self.queue)
            .field("request_timeout", &self.request_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model_name", &self.model_name)
            .field("model", &self.model)
            .field("web_ui", &self.web_ui)
            .field("streams", &self.streams)
            .field("conn", &self.conn)
            .field("batch", &self.batch)
            .finish()
    }
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) admission: Arc<Semaphore>,
    pub(crate) workers: Arc<Semaphore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) progress: progress::Registry,
    pub(crate) streams: Arc<Semaphore>,
}

impl AppState {
    /// State for `engine` under `config`.
    pub fn new(engine: Arc<Engine>, config: ServerConfig) -> Self {
        let metrics = Arc::new(Metrics::default());
        metrics.set_model_load_seconds(engine.load_time().as_secs_f64());
        let streams = Arc::new(Semaphore::new(config.streams.max_streams));
        AppState {
            admission: Arc::new(Semaphore::new(config.workers.max(1) + config.queue)),
            workers: Arc::new(Semaphore::new(config.workers.max(1))),
            engine,
            config: Arc::new(config),
            metrics,
            progress: progress::Registry::default(),
            streams,
        }
    }
}

/// Run one request through `router` and collect the response body: for front ends that are not
/// a socket (the Lambda handler), so they get exactly the routes, limits, errors and metrics
/// of `harken serve`.
pub async fn call(
    router: &Router,
    request: axum::http::Request<axum::body::Bytes>,
) -> axum::http::Response<axum::body::Bytes> {
    use tower::ServiceExt;
    let response = match router.clone().oneshot(request.map(axum::body::Body::from)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    // The router's bodies are in memory already (rendered transcripts, JSON errors).
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    axum::http::Response::from_parts(parts, bytes)
}

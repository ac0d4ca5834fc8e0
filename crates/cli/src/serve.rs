//! `harken serve`: resolve configuration (flags > `HARKEN_*` / SageMaker environment >
//! defaults), load the model once, serve until SIGTERM or Ctrl-C, finish requests in flight.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use harken_server::{AppState, ServerConfig, sagemaker};

use crate::ModelArgs;

/// Flags of `harken serve`.
#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to bind.
    #[arg(long, env = "HARKEN_HOST", default_value = "0.0.0.0")]
    host: String,
    /// Port (default 8080, or SAGEMAKER_BIND_TO_PORT).
    #[arg(long, env = "HARKEN_PORT")]
    port: Option<u16>,
    /// Transcriptions at once (default: cores).
    #[arg(long, env = "HARKEN_WORKERS")]
    workers: Option<usize>,
    /// Requests that may wait for a worker before the server answers 503.
    #[arg(long, env = "HARKEN_QUEUE", default_value_t = 16)]
    queue: usize,
    /// Largest request body, bytes (OpenAI's limit is 25 MB).
    #[arg(long, env = "HARKEN_MAX_BODY_BYTES", default_value_t = 25 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Longest accepted audio, seconds.
    #[arg(long, env = "HARKEN_MAX_AUDIO_SECONDS", default_value_t = 3600.0)]
    max_audio_seconds: f64,
    /// Per-request timeout, seconds.
    #[arg(long, env = "HARKEN_TIMEOUT_SECONDS", default_value_t = 600)]
    timeout_seconds: u64,
    /// Live transcription streams (WebSocket /v1/realtime, /v1/listen) open at once; more are
    /// refused with an error event.
    #[arg(long, env = "HARKEN_MAX_STREAMS", default_value_t = 4)]
    max_streams: usize,
    /// Longest live session, seconds.
    #[arg(long, env = "HARKEN_MAX_STREAM_SECONDS", default_value_t = 3600)]
    max_stream_seconds: u64,
    /// A live session with no client event for this many seconds is closed.
    #[arg(long, env = "HARKEN_STREAM_IDLE_SECONDS", default_value_t = 60)]
    stream_idle_seconds: u64,
    /// Do not serve the web page at `/` (the API routes stay).
    #[arg(long, env = "HARKEN_NO_UI")]
    no_ui: bool,
    /// HTTP connections open at once; past it a connection gets 503 and is closed.
    #[arg(long, env = "HARKEN_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a client may take to send a request's headers (also the keep-alive idle limit).
    #[arg(long, env = "HARKEN_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    header_timeout_seconds: u64,
    /// Seconds a request body may take before the minimum rate applies.
    #[arg(long, env = "HARKEN_BODY_GRACE_SECONDS", default_value_t = 20)]
    body_grace_seconds: u64,
    /// Slowest accepted upload after the grace, bytes per second (408 below it; 0: no limit).
    #[arg(long, env = "HARKEN_BODY_MIN_RATE", default_value_t = 500)]
    body_min_rate: u64,
}

pub(crate) fn run(args: ServeArgs) -> Result<ExitCode> {
    let mut model_args = args.model.clone();
    if model_args.model.is_none() {
        // SageMaker unpacks the model here; outside SageMaker the default model is used.
        let sm = std::env::var(sagemaker::MODEL_DIR_ENV)
            .unwrap_or_else(|_| sagemaker::MODEL_DIR.to_owned());
        if std::path::Path::new(&sm).is_dir() {
            model_args.model = Some(sm);
        }
    }
    let port = match args.port {
        Some(p) => p,
        None => match std::env::var(sagemaker::PORT_ENV) {
            Ok(v) => {
                v.parse().with_context(|| format!("{}={v:?} is not a port", sagemaker::PORT_ENV))?
            }
            Err(_) => sagemaker::PORT,
        },
    };
    let workers =
        args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let batch = sagemaker::Batch::from_env(|k| std::env::var(k).ok(), workers)
        .map_err(anyhow::Error::msg)
        .context("SageMaker Batch Transform settings")?;
    let (max_body_bytes, queue) = match &batch {
        // The job sends up to MaxPayloadInMB per record and MaxConcurrentTransforms at once: both
        // must be accepted, not refused with 413 or 503.
        Some(b) => (
            args.max_body_bytes.max((b.max_payload_mb as usize) << 20),
            args.queue.max(b.max_concurrent_transforms),
        ),
        None => (args.max_body_bytes, args.queue),
    };
    if let Some(b) = &batch {
        tracing::info!(?b, max_body_bytes, queue, "SageMaker Batch Transform mode");
    }
    let config = ServerConfig {
        workers,
        queue,
        request_timeout: Duration::from_secs(args.timeout_seconds),
        max_body_bytes,
        api_key: std::env::var("HARKEN_API_KEY").ok().filter(|k| !k.is_empty()),
        model_name: "whisper-1".into(),
        model: None,
        web_ui: !args.no_ui,
        streams: harken_server::StreamLimits {
            max_streams: args.max_streams,
            max_session: Duration::from_secs(args.max_stream_seconds),
            idle_timeout: Duration::from_secs(args.stream_idle_seconds),
            ..Default::default()
        },
        conn: harken_server::ConnLimits {
            max_connections: args.max_connections,
            header_timeout: Duration::from_secs(args.header_timeout_seconds.max(1)),
            body_grace: Duration::from_secs(args.body_grace_seconds),
            body_min_rate: args.body_min_rate,
        },
        batch,
    };
    let loaded = crate::model::load(&model_args, Some(args.max_audio_seconds))?;
    let config = ServerConfig { model: loaded.identity.clone(), ..config };
    let engine = loaded.engine;
    // Keep the cache lease for the server's lifetime.
    let _lease = loaded.lease;
    tracing::info!(?config, host = %args.host, port, model = %engine.dir().display(), load_seconds = engine.load_time().as_secs_f64(), "starting server");
    let state = AppState::new(Arc::new(engine), config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the runtime")?;
    runtime.block_on(async move {
        let addr = format!("{}:{port}", args.host);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("while binding {addr}"))?;
        eprintln!("harken: listening on http://{}", listener.local_addr()?);
        harken_server::serve(listener, state, shutdown_signal()).await.context("while serving")
    })?;
    tracing::info!("server stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal: finishing requests in flight");
}

//! `harken lambda`: the AWS Lambda custom-runtime entry point (`provided.al2023`). The same
//! binary runs it when invoked as `bootstrap`, so the deployment zip holds one file.
//!
//! Init phase: resolve `HARKEN_MODEL_URI` through the artifact store into `/tmp/harken`, verify,
//! memory-map, load; one structured `model ready` line gives the phases. Then events are served
//! by `harken-lambda` over the router of `harken serve`. A failed init is reported to the Runtime
//! API (`/runtime/init/error`) with its message, then the process exits 2.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use harken_server::{AppState, ServerConfig};

use crate::ModelArgs;

/// Flags of `harken lambda` (all also settable by environment, as a function's configuration).
#[derive(clap::Args, Debug)]
pub(crate) struct LambdaArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Largest request body, bytes (Lambda's synchronous payload limit is 6 MB; larger audio
    /// goes through `audio_s3_uri`).
    #[arg(long, env = "HARKEN_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Longest accepted audio, seconds.
    #[arg(long, env = "HARKEN_MAX_AUDIO_SECONDS", default_value_t = 3600.0)]
    max_audio_seconds: f64,
    /// Per-request timeout, seconds (keep it under the function's timeout).
    #[arg(long, env = "HARKEN_TIMEOUT_SECONDS", default_value_t = 890)]
    timeout_seconds: u64,
}

pub(crate) fn run(args: LambdaArgs) -> Result<ExitCode> {
    let started = Instant::now();
    harken_lambda::check_environment().map_err(|e| anyhow!(e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("while starting the runtime")?;
    let loaded = match crate::model::load(&args.model, Some(args.max_audio_seconds)) {
        Ok(l) => l,
        Err(e) => {
            let message = format!("{e:#}");
            tracing::error!(error = %message, "lambda init failed");
            runtime.block_on(harken_lambda::report_init_error("Harken.InitError", &message));
            return Err(e);
        }
    };
    let config = ServerConfig {
        // Lambda sends one event at a time to an environment.
        workers: 1,
        queue: 1,
        request_timeout: Duration::from_secs(args.timeout_seconds),
        max_body_bytes: args.max_body_bytes,
        // API Gateway / IAM authenticate; a key would have to travel in every event.
        api_key: None,
        model_name: "whisper-1".into(),
        model: loaded.identity.clone(),
        // One event at a time: the page's progress polling could never reach a busy function.
        web_ui: false,
        streams: Default::default(),
        // Lambda hands over whole bodies; there is no socket to pace.
        conn: harken_server::ConnLimits { body_min_rate: 0, ..Default::default() },
        batch: None,
    };
    tracing::info!(
        init_ms = started.elapsed().as_millis() as u64,
        function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        memory_mb = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default(),
        "lambda init complete"
    );
    let _lease = loaded.lease;
    let state = AppState::new(Arc::new(loaded.engine), config);
    let handler = harken_lambda::Handler::new(harken_server::router(state));
    runtime
        .block_on(harken_lambda::run(handler))
        .map_err(|e| anyhow!("{e}"))
        .context("while serving Lambda events")?;
    Ok(ExitCode::SUCCESS)
}

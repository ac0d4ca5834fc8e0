//! Model resolution for every subcommand: `--model` / `HARKEN_MODEL_URI` (a path, an installed
//! name, or a URI the artifact store fetches), the cache configuration from the environment, the
//! progress display for transfers, and thread setup.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use harken_artifacts::{Event, ModelUri, Resolved, Store, StoreConfig};
use harken_engine::{CpuReport, Engine, EngineConfig, Isa, Precision};
use harken_server::ModelIdentity;
use indicatif::{ProgressBar, ProgressStyle};

use crate::ModelArgs;

/// The user's Harken cache directory (`HARKEN_CACHE_DIR`, else `/tmp/harken` on AWS Lambda —
/// the only writable place there — else `$XDG_CACHE_HOME/harken`, else `~/.cache/harken`).
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HARKEN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        return PathBuf::from("/tmp/harken");
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("harken");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("harken")
}

/// Parse `10GB`, `500MB`, `64KiB` or plain bytes.
pub(crate) fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("{s:?} is not a size (e.g. 500MB, 10GB)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("unknown size unit {other:?} in {s:?}"),
    };
    Ok((n * mult) as u64)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"))
}

/// The artifact store as configured by the environment (`HARKEN_CACHE_DIR`,
/// `HARKEN_CACHE_MAX_BYTES`, `HARKEN_OFFLINE`), with progress bars on a terminal.
pub(crate) fn store() -> Result<Store> {
    let max_bytes = match std::env::var("HARKEN_CACHE_MAX_BYTES") {
        Ok(v) if !v.is_empty() => Some(parse_bytes(&v).context("HARKEN_CACHE_MAX_BYTES")?),
        _ => None,
    };
    let cfg = StoreConfig {
        root: cache_dir().join("store"),
        max_bytes,
        offline: env_flag("HARKEN_OFFLINE"),
    };
    let root = cfg.root.clone();
    Store::new(cfg, progress_sink())
        .with_context(|| format!("while opening the model cache in {}", root.display()))
}

/// Progress bars (hidden when stderr is not a terminal) and log events for transfers.
fn progress_sink() -> impl Fn(Event) + Send + Sync + 'static {
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    move |e| {
        let Ok(mut bars) = bars.lock() else { return };
        match e {
            Event::Download { file, total, resume_at } => {
                tracing::info!(file, total, resume_at, "transfer started");
                let bar = ProgressBar::new(total.unwrap_or(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_message(file.clone());
                bar.set_position(resume_at);
                bars.insert(file, bar);
            }
            Event::Bytes { file, done } => {
                if let Some(b) = bars.get(&file) {
                    b.set_position(done);
                }
            }
            Event::Downloaded { file, bytes } => {
                if let Some(b) = bars.remove(&file) {
                    b.finish_and_clear();
                }
                tracing::info!(file, bytes, "transfer done");
            }
            Event::Retry { file, attempt, delay, error } => {
                tracing::warn!(
                    file,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    error,
                    "transfer failed; retrying"
                );
            }
            Event::Waiting { file } => {
                tracing::info!(file, "another process is downloading this file; waiting for it");
            }
            Event::StaleFallback { uri, error } => {
                tracing::warn!(uri, error, "model store unreachable; using the cached copy");
            }
            Event::Evicted { digest, bytes } => tracing::info!(digest, bytes, "evicted from cache"),
            _ => {}
        }
    }
}

/// A single-threaded runtime for the store's async calls from synchronous subcommands.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the I/O runtime")?;
    Ok(rt.block_on(f))
}

/// Turn `--model` into a URI: installed names (`base`, `tiny.en`) map to their directories.
pub(crate) fn model_uri(model: Option<&str>) -> Result<ModelUri> {
    let spec = model.unwrap_or("base");
    let uri = ModelUri::parse(spec)?;
    if let ModelUri::Local(path) = &uri
        && !path.exists()
        && !spec.contains('/')
    {
        let installed = cache_dir().join("models").join(format!("whisper-{spec}"));
        if installed.is_dir() {
            return Ok(ModelUri::Local(installed));
        }
        let hint = match spec {
                "base" | "tiny.en" => format!(
                    "install it with `scripts/install-models.sh {spec}` (from a Harken checkout)"
                ),
                _ => "pass --model with a package, a Whisper directory or a URI (s3://, https://, models:/, runs:/)".to_owned(),
            };
        bail!(
            "model {spec:?} not found (looked for a directory {} and {}); {hint}",
            path.display(),
            installed.display()
        );
    }
    Ok(uri)
}

/// Resolve `--model` to a local directory through the artifact store.
pub(crate) fn resolve(model: Option<&str>) -> Result<Resolved> {
    let uri = model_uri(model)?;
    let store = store()?;
    let resolved =
        block_on(store.resolve(&uri))?.with_context(|| format!("while resolving model {uri}"))?;
    Ok(resolved)
}

/// Apply `--threads` before any compute thread starts.
pub(crate) fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        // candle sizes its matrix-multiply parallelism from RAYON_NUM_THREADS.
        // SAFETY: called from `main`'s thread before any other thread exists.
        #[allow(unsafe_code)] // set_var is unsafe in edition 2024 only because of other threads
        unsafe {
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        }
    }
    Ok(())
}

/// Keep freed memory in the heap instead of returning it to the kernel — from the end of
/// loading on.
///
/// Inference allocates and frees tens of megabytes per layer (attention scores, activations).
/// glibc serves blocks that large with fresh `mmap`s and unmaps them on free, so every layer
/// paid page faults and kernel zeroing: 30% of the process's CPU time was system time. With
/// the thresholds raised, blocks are recycled from the heap.
///
/// Not before loading: the conversion temporaries of loading (f32 copies that are quantized,
/// f16 staging copies) would then stay in the heap, and int8 loading peaked 54 MB higher
/// (base: 343 MB instead of 289 MB, `bench/load-rss.sh`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn tune_allocator() {
    const LIMIT: libc::c_int = 1 << 30;
    // SAFETY: mallopt only adjusts glibc allocator parameters and takes the arena lock itself.
    #[allow(unsafe_code)] // FFI to glibc's allocator tuning; no Rust invariant is involved
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT);
        libc::mallopt(libc::M_TRIM_THRESHOLD, LIMIT);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn tune_allocator() {}

/// Bytes of the model's files: the package's listed files, or every file of a raw directory.
pub(crate) fn model_bytes(resolved: &Resolved) -> u64 {
    match &resolved.package {
        Some(p) => p.total_bytes(),
        None if resolved.dir.is_file() => resolved.dir.metadata().map_or(0, |m| m.len()),
        None => std::fs::read_dir(&resolved.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0),
    }
}

/// Where the Silero VAD model is: `HARKEN_VAD_MODEL`, else the installed copy.
pub(crate) fn vad_path() -> (PathBuf, bool) {
    match std::env::var_os("HARKEN_VAD_MODEL").filter(|p| !p.is_empty()) {
        Some(p) => (PathBuf::from(p), true),
        None => (cache_dir().join("models/silero-vad").join(harken_vad::WEIGHTS_FILE), false),
    }
}

/// The voice activity detector: required when `HARKEN_VAD_MODEL` names it, optional when it
/// is looked for in the install location (requests that ask for VAD then get a clear error).
pub(crate) fn load_vad() -> Result<Option<std::sync::Arc<harken_engine::Silero>>> {
    let (path, explicit) = vad_path();
    if !explicit && !path.exists() {
        tracing::info!(path = %path.display(), "no VAD model installed (scripts/install-models.sh vad)");
        return Ok(None);
    }
    let model = harken_engine::Silero::load(&path).with_context(|| {
        format!("while loading the VAD model {} (HARKEN_VAD_MODEL)", path.display())
    })?;
    Ok(Some(std::sync::Arc::new(model)))
}

/// A loaded engine and where it came from.
pub(crate) struct Loaded {
    pub engine: Engine,
    pub identity: Option<ModelIdentity>,
    /// Holds the cache lease: the package is not evicted while this process runs.
    pub lease: Resolved,
}

/// Resolve, then load; logs one structured line with the phases of the cold start.
pub(crate) fn load(args: &ModelArgs, max_audio_s: Option<f64>) -> Result<Loaded> {
    set_threads(args.threads)?;
    let resolved = resolve(args.model.as_deref())?;
    let precision = if args.precision == "int8" { Precision::Int8 } else { Precision::F32 };
    let isa =
        Isa::select(&args.cpu).context("while choosing the kernel path (--cpu / HARKEN_CPU)")?;
    tracing::info!(
        requested = %args.cpu,
        cpu_path = %isa,
        detected = %Isa::detect(),
        features = %CpuReport::probe(),
        "CPU kernel path"
    );
    let config = EngineConfig {
        precision,
        isa: Some(isa),
        max_audio_s,
        whisper_lm: args.whisper_lm.clone(),
        scorer: args.scorer.clone(),
    };
    let mut engine = match &resolved.package {
        Some(p) => Engine::load_package(p, &config),
        None => Engine::load(&resolved.dir, &config),
    }
    .with_context(|| format!("while loading the model in {}", resolved.dir.display()))?;
    if let Some(vad) = load_vad()? {
        engine.set_vad(vad);
    }
    tune_allocator();
    if engine.is_int8()
        && engine.isa() == Isa::Scalar
        && args.cpu.trim().eq_ignore_ascii_case("auto")
    {
        tracing::warn!(
            "this CPU has no SIMD int8 kernels in this build (x86-64 with AVX2 or AVX-512 only): \
             int8 runs the scalar reference, many times slower; use the f32 model here"
        );
    }
    let identity = resolved.package.as_ref().map(|p| ModelIdentity {
        package: p.flavor().name.clone(),
        version: p.flavor().version.clone(),
        digest: format!("sha256:{}", p.digest()),
        source: resolved.source.clone(),
        registry_version: resolved.registry_version.clone(),
    });
    tracing::info!(
        source = %resolved.source,
        package = identity.as_ref().map_or("-", |i| i.package.as_str()),
        version = identity.as_ref().map_or("-", |i| i.version.as_str()),
        digest = identity.as_ref().map_or("-", |i| i.digest.as_str()),
        cache_hit = resolved.cache_hit,
        downloaded_bytes = resolved.downloaded_bytes,
        resolve_ms = resolved.timings.resolve.as_millis() as u64,
        download_ms = resolved.timings.download.as_millis() as u64,
        verify_ms = resolved.timings.verify.as_millis() as u64,
        load_ms = engine.load_time().as_millis() as u64,
        "model ready"
    );
    Ok(Loaded { engine, identity, lease: resolved })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("1234").ok(), Some(1234));
        assert_eq!(parse_bytes("500MB").ok(), Some(500_000_000));
        assert_eq!(parse_bytes("1.5 GB").ok(), Some(1_500_000_000));
        assert_eq!(parse_bytes("2MiB").ok(), Some(2 * 1024 * 1024));
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5XB").is_err());
    }
}

//! Model resolution for the CLI: flag or `HARKEN_MODEL_URI`, installed names, the default model,
//! and thread setup. Fetching from remote stores is not here yet; local directories only.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use harken_engine::{Engine, EngineConfig, Precision};

use crate::ModelArgs;

/// The user's Harken cache directory (`HARKEN_CACHE_DIR`, else `$XDG_CACHE_HOME/harken`, else
/// `~/.cache/harken`).
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HARKEN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("harken");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("harken")
}

/// Resolve `--model` to a local directory.
pub(crate) fn resolve(model: Option<&str>) -> Result<PathBuf> {
    let spec = model.unwrap_or("base");
    let spec = spec.strip_prefix("file://").unwrap_or(spec);
    if spec.contains("://") || spec.starts_with("models:/") || spec.starts_with("runs:/") {
        bail!(
            "model URI {spec:?}: remote model stores are not supported yet; pass a local model directory"
        );
    }
    let path = PathBuf::from(spec);
    if path.is_dir() {
        return Ok(path);
    }
    let installed = cache_dir().join("models").join(format!("whisper-{spec}"));
    if installed.is_dir() {
        return Ok(installed);
    }
    let hint = match spec {
        "base" | "tiny.en" => {
            format!("install it with `scripts/install-models.sh {spec}` (from a Harken checkout)")
        }
        _ => "pass --model with a CTranslate2 or Hugging Face Whisper directory".to_owned(),
    };
    bail!(
        "model {spec:?} not found (looked for a directory {} and {}); {hint}",
        path.display(),
        installed.display()
    )
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

/// Resolve, then load.
pub(crate) fn load(args: &ModelArgs, max_audio_s: Option<f64>) -> Result<Engine> {
    set_threads(args.threads)?;
    let dir = resolve(args.model.as_deref())?;
    let precision = if args.precision == "int8" { Precision::Q8 } else { Precision::F32 };
    let engine = Engine::load(&dir, &EngineConfig { precision, max_audio_s })
        .with_context(|| format!("while loading the model in {}", dir.display()))?;
    Ok(engine)
}

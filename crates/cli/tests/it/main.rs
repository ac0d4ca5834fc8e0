//! End-to-end tests of the real `harken` binary: formats against golden files, exit codes,
//! malformed input, silence, long audio, word timestamps.
//!
//! Real-model tier: the tests use the installed Whisper base (or `HARKEN_TEST_MODEL`). Without
//! it they print a loud SKIP line, except under `CI=true`, where a missing model fails.

// Test helpers outside #[test] fns: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used)]

mod ctc;
mod deepspeech;
mod e2e;
mod golden;
mod int8;
mod live;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/audio").join(name)
}

pub(crate) fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HARKEN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("harken");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/harken")
}

/// The installed model `name` (`base`, `tiny.en`), or `None` after printing a skip notice.
/// Under `CI=true` a missing model is a failure.
pub(crate) fn model(name: &str) -> Option<PathBuf> {
    let dir = match (name, std::env::var_os("HARKEN_TEST_MODEL")) {
        ("base", Some(d)) => PathBuf::from(d),
        _ => cache_dir().join("models").join(format!("whisper-{name}")),
    };
    if dir.join("model.bin").is_file() || dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    let msg = format!(
        "model {name} is not installed at {} (run scripts/install-models.sh all)",
        dir.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {msg}");
    }
    eprintln!("\n*** SKIP real-model test: {msg} ***\n");
    None
}

/// Run `harken` with `args` and the default log level.
pub(crate) fn harken(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harken"))
        .args(args)
        .env_remove("HARKEN_LOG")
        .env_remove("HARKEN_MODEL_URI")
        .output()
        .expect("the harken binary runs")
}

/// Run `harken transcribe --model MODEL ARGS...`.
pub(crate) fn transcribe(model: &str, args: &[&str]) -> Output {
    let mut all = vec!["transcribe", "--model", model];
    all.extend_from_slice(args);
    harken(&all)
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A 16-bit mono 16-kHz WAV of `samples`.
pub(crate) fn wav16(samples: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut b = Vec::with_capacity(44 + data.len());
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&16_000u32.to_le_bytes());
    b.extend_from_slice(&32_000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    b
}

/// 16-kHz samples of a 16-bit WAV written by [`wav16`] or the fixtures.
pub(crate) fn read_wav16(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).expect("fixture");
    let data = b.windows(4).position(|w| w == b"data").expect("data chunk") + 8;
    b[data..]
        .chunks_exact(2)
        .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
        .collect()
}

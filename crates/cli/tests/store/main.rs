//! The artifact store against real servers, through the real `harken` binary: moto (an
//! S3-protocol server), Python's `http.server`, and an MLflow tracking server with its model
//! registry. Faults: the S3 server killed mid-download, a wrong sha256, a full disk (a tmpfs),
//! two processes pulling at once, archives with escaping entries, failed pushes (S3 parts
//! refused, an MLflow artifact store that cannot write).
//!
//! The servers come from the venv `scripts/install-test-tools.sh` installs (`HARKEN_STORE_VENV`,
//! else `~/.cache/harken/store-venv`). Without it the tests print a loud SKIP line, except under
//! `CI=true`, where they fail.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod mlflow;
mod s3;

pub(crate) use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh moto on a free port with an empty bucket `models`.
pub(crate) fn moto_with_bucket(venv: &Path) -> (Proc, u16) {
    let port = free_port();
    let server = moto(venv, port);
    boto(venv, port, "s3.create_bucket(Bucket='models')");
    (server, port)
}

/// A Python server (`script`, given its port then `args`) on a free port, answering `/`.
pub(crate) fn python_server(venv: &Path, script: &str, args: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let mut child = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_http(port, "/", std::time::Duration::from_secs(30), &mut child);
    (Proc(child), port)
}

/// Run Python from the venv (boto3 set up for the moto on `port`).
pub(crate) fn boto(venv: &Path, port: u16, code: &str) {
    let script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', region_name='us-east-1', aws_access_key_id='t', aws_secret_access_key='t')\n{code}\n"
    );
    let out = Command::new(venv.join("bin/python")).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The `harken` binary with a private cache and S3 settings for the moto on `s3_port`.
pub(crate) fn harken(cache: &Path, s3_port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harken"));
    c.env("HARKEN_CACHE_DIR", cache)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{s3_port}"))
        .env_remove("HARKEN_OFFLINE")
        .env_remove("HARKEN_MODEL_URI")
        .env_remove("HARKEN_CACHE_MAX_BYTES")
        .env("HARKEN_LOG", "info");
    c
}

pub(crate) fn run_ok(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn run_err(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{c:?} should fail with exit 2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panic"), "{err}");
    err
}

/// `harken model pull --json` → the JSON report.
pub(crate) fn pull_json(c: &mut Command, uri: &str) -> serde_json::Value {
    let out = run_ok(c.args(["model", "pull", "--json", uri]));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

/// A synthetic Whisper-shaped directory (not loadable; the store never loads it) of about
/// `mb` MB, packed into `dir/pkg`. Returns (package dir, weights sha256 path in the cache).
/// Two `harken model pull --json uri` processes started together; both must succeed. Their
/// JSON reports, in start order.
pub(crate) fn pull_twice_at_once(cache: &Path, s3_port: u16, uri: &str) -> Vec<serde_json::Value> {
    let spawn = || {
        harken(cache, s3_port)
            .args(["model", "pull", "--json", uri])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect()
}

pub(crate) fn synthetic_package(dir: &Path, mb: usize, version: &str) -> PathBuf {
    let src = dir.join(format!("src-{version}"));
    std::fs::create_dir_all(&src).unwrap();
    // Deterministic, incompressible-enough bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ mb as u64;
    let bytes: Vec<u8> = (0..mb << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(src.join("model.bin"), bytes).unwrap();
    std::fs::write(src.join("tokenizer.json"), b"{\"synthetic\": true}").unwrap();
    std::fs::write(src.join("config.json"), b"{}").unwrap();
    let pkg = dir.join(format!("pkg-{version}"));
    run_ok(Command::new(env!("CARGO_BIN_EXE_harken")).args([
        "model",
        "pack",
        src.to_str().unwrap(),
        "-o",
        pkg.to_str().unwrap(),
        "--name",
        "synthetic",
        "--pkg-version",
        version,
    ]));
    pkg
}

/// Files directly in `dir` (empty when it does not exist).
pub(crate) fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

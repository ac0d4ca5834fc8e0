//! Helpers shared by the CLI's integration-test binaries (`store`, `lambda`): free ports, child
//! processes that die with the test, the real servers' venv, the installed tiny.en model.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The venv with moto, boto3 and mlflow, or `None` after a SKIP notice.
pub(crate) fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("HARKEN_STORE_VENV").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/harken/store-venv")
    });
    if dir.join("bin/moto_server").is_file() && dir.join("bin/mlflow").is_file() {
        return Some(dir);
    }
    let msg =
        format!("no moto/mlflow venv at {} (run scripts/install-test-tools.sh)", dir.display());
    assert!(!ci(), "CI=true: {msg}");
    eprintln!("\n*** SKIP store test: {msg} ***\n");
    None
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when dropped.
pub(crate) struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // A server started as a process-group leader (`process_group(0)`) goes with its
        // workers: MLflow's uvicorn outlived the `mlflow server` process otherwise. For a
        // process that leads no group this finds nothing to kill.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until `url` answers 200 (plain HTTP/1.0 GET, no client library needed).
pub(crate) fn wait_http(port: u16, path: &str, timeout: Duration, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early: {status}");
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\n\r\n");
            let mut buf = [0u8; 12];
            if s.read_exact(&mut buf).is_ok()
                && buf.starts_with(b"HTTP/1.")
                && &buf[9..12] == b"200"
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("server on port {port} did not answer {path} within {timeout:?}");
}

/// A moto S3 server on `port`.
pub(crate) fn moto(venv: &Path, port: u16) -> Proc {
    let mut child = Command::new(venv.join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_http(port, "/moto-api/", Duration::from_secs(60), &mut child);
    Proc(child)
}

/// The installed tiny.en model, or `None` after a SKIP notice (a failure under CI=true).
pub(crate) fn tiny_en() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/harken/models/whisper-tiny.en");
    if dir.join("model.bin").is_file() {
        return Some(dir);
    }
    assert!(!ci(), "CI=true: tiny.en is not installed (scripts/install-models.sh all)");
    eprintln!("\n*** SKIP: tiny.en not installed ***\n");
    None
}

/// Python from the moto venv with boto3 set up as `s3` for the moto on `port`; returns stdout.
pub(crate) fn boto_out(venv: &Path, port: u16, code: &str) -> String {
    let script = format!(
        "import boto3, json\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', region_name='us-east-1', aws_access_key_id='t', aws_secret_access_key='t')\n{code}\n"
    );
    let out = Command::new(venv.join("bin/python")).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

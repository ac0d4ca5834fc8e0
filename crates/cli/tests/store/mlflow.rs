//! A real MLflow tracking server with its model registry: push a package as a model version
//! with an alias, serve `models:/NAME@alias`, move the alias, restart, see the new version; a
//! push that fails marks its run FAILED.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::*;

fn serve(cache: &std::path::Path, mlflow_port: u16, uri: &str) -> (Proc, u16) {
    let port = free_port();
    let mut child = harken(cache, 1)
        .env("MLFLOW_TRACKING_URI", format!("http://127.0.0.1:{mlflow_port}"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--workers",
            "1",
            "--threads",
            "1",
            "--model",
            uri,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_http(port, "/ping", Duration::from_secs(120), &mut child);
    (Proc(child), port)
}

fn get(port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}{path}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {path}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// POST `body` to MLflow's REST `path` (under `/api/2.0/mlflow/`) with plain curl, as an operator
/// would; it must succeed.
fn post_json(tracking: &str, path: &str, body: &str) -> std::process::Output {
    let out = Command::new("curl")
        .args(["-sf", "-X", "POST", "-H", "Content-Type: application/json", "-d", body])
        .arg(format!("{tracking}/api/2.0/mlflow/{path}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "POST {path}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// An MLflow tracking server with its registry in `root/mlflow.db` and proxied artifacts in
/// `root/artifacts`.
fn mlflow_server(venv: &std::path::Path, root: &std::path::Path) -> (Proc, u16) {
    let port = free_port();
    std::fs::create_dir_all(root).unwrap();
    let child = Command::new(venv.join("bin/mlflow"))
        .args([
            "server",
            "--backend-store-uri",
            &format!("sqlite:///{}", root.join("mlflow.db").display()),
            "--artifacts-destination",
            root.join("artifacts").to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--workers",
            "1",
        ])
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut mlflow = Proc(child);
    wait_http(port, "/health", Duration::from_secs(240), &mut mlflow.0);
    (mlflow, port)
}

#[test]
fn registry_alias_moves_the_served_model() {
    let Some(venv) = venv() else { return };
    let Some(tiny) = tiny_en() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mlflow");
    let (_mlflow, port) = mlflow_server(&venv, &root);
    let tracking = format!("http://127.0.0.1:{port}");

    // Two versions of the same weights: identical blobs, different manifests (and digests).
    let mut digests = Vec::new();
    for v in ["1", "2"] {
        let pkg = tmp.path().join(format!("pkg{v}"));
        run_ok(Command::new(env!("CARGO_BIN_EXE_harken")).args([
            "model",
            "pack",
            tiny.to_str().unwrap(),
            "-o",
            pkg.to_str().unwrap(),
            "--name",
            "whisper-tiny.en",
            "--pkg-version",
            v,
        ]));
        let mut push = harken(&tmp.path().join("push-cache"), 1);
        push.env("MLFLOW_TRACKING_URI", &tracking).args([
            "model",
            "push",
            pkg.to_str().unwrap(),
            "models:/asr",
        ]);
        if v == "1" {
            push.args(["--alias", "prod"]);
        }
        let out = run_ok(&mut push);
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("models:/asr/{v}")));
        let inspect = run_ok(Command::new(env!("CARGO_BIN_EXE_harken")).args([
            "model",
            "inspect",
            "--json",
            pkg.to_str().unwrap(),
        ]));
        let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        digests.push(inspect["digest"].as_str().unwrap().to_owned());
    }

    let cache = tmp.path().join("cache");
    let (server, hport) = serve(&cache, port, "models:/asr@prod");
    let models: serde_json::Value = serde_json::from_str(&get(hport, "/v1/models")).unwrap();
    let p = &models["data"][0]["package"];
    assert_eq!(p["version"], "1", "{models}");
    assert_eq!(p["registry_version"], "1");
    assert_eq!(p["digest"], digests[0].as_str());
    assert!(get(hport, "/metrics").contains(&format!(
        "harken_model_info{{package=\"whisper-tiny.en\",version=\"1\",digest=\"{}\"}} 1",
        digests[0]
    )));
    drop(server);

    // Move the alias with a plain REST call, as an operator would.
    post_json(
        &tracking,
        "registered-models/alias",
        r#"{"name":"asr","alias":"prod","version":"2"}"#,
    );

    let (_server, hport) = serve(&cache, port, "models:/asr@prod");
    let models: serde_json::Value = serde_json::from_str(&get(hport, "/v1/models")).unwrap();
    let p = &models["data"][0]["package"];
    assert_eq!(p["version"], "2", "{models}");
    assert_eq!(p["digest"], digests[1].as_str());
    // Version 2 shares every blob with version 1: nothing but its manifest was downloaded.
    let r = pull_json(harken(&cache, 1).env("MLFLOW_TRACKING_URI", &tracking), "models:/asr/2");
    assert_eq!(r["cache_hit"], true);

    // runs:/ URIs resolve through the same registry data.
    let mv = Command::new("curl")
        .args(["-sf", &format!("{tracking}/api/2.0/mlflow/model-versions/get?name=asr&version=1")])
        .output()
        .unwrap();
    let mv: serde_json::Value = serde_json::from_slice(&mv.stdout).unwrap();
    let run_id = mv["model_version"]["run_id"].as_str().unwrap();
    let r = pull_json(
        harken(&cache, 1).env("MLFLOW_TRACKING_URI", &tracking),
        &format!("runs:/{run_id}/model"),
    );
    assert_eq!(r["digest"], digests[0].as_str());

    // MLflow itself accepts the package it stores.
    let art = root.join("artifacts");
    let mlmodel = walk_find(&art, "MLmodel").unwrap();
    let ok = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg("import sys, mlflow; m = mlflow.models.Model.load(sys.argv[1]); assert 'harken' in m.flavors")
        .arg(mlmodel.parent().unwrap())
        .status()
        .unwrap();
    assert!(ok.success(), "mlflow.models.Model.load rejected the package");
}

fn walk_find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = walk_find(&p, name) {
                return Some(f);
            }
        } else if e.file_name() == name {
            return Some(p);
        }
    }
    None
}

/// The artifact store cannot write (a file stands where its directory should be), so the
/// upload fails after the run was created: the run must end FAILED, not stay RUNNING.
#[test]
fn a_failed_push_marks_the_mlflow_run_failed() {
    let Some(venv) = venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mlflow");
    let (_mlflow, port) = mlflow_server(&venv, &root);
    let artifacts = root.join("artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::write(&artifacts, b"not a directory").unwrap();
    let tracking = format!("http://127.0.0.1:{port}");
    let pkg = synthetic_package(tmp.path(), 1, "1");
    let err =
        run_err(harken(&tmp.path().join("cache"), 1).env("MLFLOW_TRACKING_URI", &tracking).args([
            "model",
            "push",
            pkg.to_str().unwrap(),
            "models:/broken",
        ]));
    assert!(err.contains("while pushing"), "{err}");
    let out = post_json(&tracking, "runs/search", r#"{"experiment_ids":["0"]}"#);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["info"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["FAILED"], "{runs}");
}

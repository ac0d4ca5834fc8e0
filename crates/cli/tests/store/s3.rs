//! Push, pull, cache hits, offline mode, concurrent pulls, LRU eviction, lock-file clean-up and
//! failed multipart uploads against moto.

use std::process::Command;

use crate::*;

#[test]
fn push_pull_cache_hit_and_offline() {
    let Some(venv) = venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_moto, port) = moto_with_bucket(&venv);
    let pkg = synthetic_package(tmp.path(), 8, "1");
    let cache = tmp.path().join("cache");

    let out = run_ok(harken(&cache, port).args([
        "model",
        "push",
        pkg.to_str().unwrap(),
        "s3://models/synthetic/v1",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("s3://models/synthetic/v1"));

    let first = pull_json(&mut harken(&cache, port), "s3://models/synthetic/v1");
    let total = std::fs::metadata(pkg.join("model.bin")).unwrap().len();
    assert_eq!(first["cache_hit"], false);
    assert!(first["downloaded_bytes"].as_u64().unwrap() >= total, "{first}");
    let second = pull_json(&mut harken(&cache, port), "s3://models/synthetic/v1");
    assert_eq!(second["cache_hit"], true, "{second}");
    assert_eq!(second["downloaded_bytes"], 0);
    assert_eq!(first["digest"], second["digest"]);

    // The cached package is a real package whose weights are hard links to verified blobs.
    let dir = std::path::PathBuf::from(first["dir"].as_str().unwrap());
    run_ok(Command::new(env!("CARGO_BIN_EXE_harken")).args([
        "model",
        "verify",
        dir.to_str().unwrap(),
    ]));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(dir.join("model.bin")).unwrap().nlink(), 2);

    // Offline: the cached URI works with no network; an unknown one fails clearly.
    let off = pull_json(harken(&cache, 1).env("HARKEN_OFFLINE", "1"), "s3://models/synthetic/v1");
    assert_eq!(off["digest"], first["digest"]);
    let err = run_err(harken(&cache, port).env("HARKEN_OFFLINE", "1").args([
        "model",
        "pull",
        "s3://models/other",
    ]));
    assert!(err.contains("HARKEN_OFFLINE=1"), "{err}");

    // A prefix without a package names the problem.
    let err = run_err(harken(&cache, port).args(["model", "pull", "s3://models/nothing-here"]));
    assert!(err.contains("no MLmodel there"), "{err}");

    // Lock files outlive their use until `gc` removes those nobody holds; it keeps the package.
    assert!(!entries(&cache.join("store/locks")).is_empty());
    run_ok(harken(&cache, port).args(["model", "gc"]));
    assert!(
        entries(&cache.join("store/locks")).is_empty(),
        "idle lock files are removed: {:?}",
        entries(&cache.join("store/locks"))
    );
    assert_eq!(entries(&cache.join("store/packages")).len(), 1);
    let again = pull_json(&mut harken(&cache, port), "s3://models/synthetic/v1");
    assert_eq!(again["cache_hit"], true, "{again}");

    // `ls` lists it with its URI; `gc --all` empties the cache.
    let ls = run_ok(harken(&cache, port).args(["model", "ls", "--json"]));
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(ls[0]["uris"][0], "s3://models/synthetic/v1");
    run_ok(harken(&cache, port).args(["model", "gc", "--all"]));
    assert!(entries(&cache.join("store/blobs/sha256")).is_empty());
    assert!(entries(&cache.join("store/packages")).is_empty());
}

#[test]
fn two_processes_pulling_at_once_download_once() {
    let Some(venv) = venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_moto, port) = moto_with_bucket(&venv);
    let pkg = synthetic_package(tmp.path(), 24, "1");
    let cache = tmp.path().join("cache");
    run_ok(harken(&cache, port).args(["model", "push", pkg.to_str().unwrap(), "s3://models/m"]));
    let total: u64 =
        std::fs::read_dir(&pkg).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum::<u64>()
            - std::fs::metadata(pkg.join("MLmodel")).unwrap().len();

    let reports = pull_twice_at_once(&cache, port, "s3://models/m");
    assert_eq!(reports[0]["digest"], reports[1]["digest"]);
    let downloaded: u64 = reports.iter().map(|r| r["downloaded_bytes"].as_u64().unwrap()).sum();
    assert_eq!(
        downloaded, total,
        "both processes together must download each byte once: {reports:?}"
    );
    assert!(entries(&cache.join("store/tmp")).iter().all(|e| !e.ends_with(".partial")));
}

#[test]
fn size_cap_evicts_least_recently_used() {
    let Some(venv) = venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_moto, port) = moto_with_bucket(&venv);
    let cache = tmp.path().join("cache");
    for v in ["1", "2", "3"] {
        let pkg = synthetic_package(tmp.path(), 4 + v.parse::<usize>().unwrap(), v);
        run_ok(harken(&cache, port).args([
            "model",
            "push",
            pkg.to_str().unwrap(),
            &format!("s3://models/m{v}"),
        ]));
    }
    // Cap at 14 MB: m1 (5.2 MB) and m2 (6.3 MB) fit; pulling m3 (7.3 MB) evicts the oldest, m1.
    let cap = "14MB";
    for v in ["1", "2", "3"] {
        pull_json(
            harken(&cache, port).env("HARKEN_CACHE_MAX_BYTES", cap),
            &format!("s3://models/m{v}"),
        );
    }
    let ls = run_ok(harken(&cache, port).args(["model", "ls", "--json"]));
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let versions: Vec<&str> =
        ls.as_array().unwrap().iter().map(|e| e["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["3", "2"], "{ls}");
}

/// A DeepSpeech model and its scorer, packed, pushed to S3 and transcribed from `s3://`: the
/// same transcript as the files on disk, with the scorer verified and mapped from the cache.
#[test]
fn a_deepspeech_package_loads_from_s3() {
    let Some(venv) = venv() else { return };
    let model = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/harken/deepspeech/armspeech/model.tflite");
    if !model.is_file() {
        assert!(!ci(), "CI=true: armspeech is not installed (scripts/install-deepspeech.sh)");
        eprintln!("\n*** SKIP: armspeech not installed ***\n");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_moto, port) = moto_with_bucket(&venv);
    let cache = tmp.path().join("cache");
    let text =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/deepspeech/armspeech-lm.txt");
    let arpa = tmp.path().join("arm.arpa");
    let scorer = tmp.path().join("arm.scorer");
    run_ok(
        harken(&cache, port)
            .args(["lm", "build"])
            .arg(&text)
            .args(["--order", "3", "-o"])
            .arg(&arpa),
    );
    run_ok(
        harken(&cache, port)
            .args(["lm", "convert"])
            .arg(&arpa)
            .arg("-o")
            .arg(&scorer)
            .arg("--alphabet")
            .arg(&model),
    );
    let pkg = tmp.path().join("pkg");
    run_ok(
        harken(&cache, port)
            .args(["model", "pack"])
            .arg(&model)
            .arg("--scorer")
            .arg(&scorer)
            .arg("-o")
            .arg(&pkg),
    );
    run_ok(harken(&cache, port).args(["model", "push"]).arg(&pkg).arg("s3://models/armspeech/1"));

    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/audio/numbers_16k.wav");
    let local = run_ok(
        harken(&cache, port)
            .args(["transcribe", "--model"])
            .arg(&model)
            .arg("--scorer")
            .arg(&scorer)
            .arg(&clip),
    );
    let remote = run_ok(
        harken(&cache, port).args(["transcribe", "--model", "s3://models/armspeech/1"]).arg(&clip),
    );
    assert!(!local.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&remote.stdout), String::from_utf8_lossy(&local.stdout));
    let log = String::from_utf8_lossy(&remote.stderr);
    assert!(log.contains("DeepSpeech model loaded") && log.contains("arm.scorer"), "{log}");
    // The second start is a cache hit: nothing is downloaded.
    let again = pull_json(&mut harken(&cache, port), "s3://models/armspeech/1");
    assert_eq!(again["cache_hit"], true, "{again}");
}

/// A proxy in front of moto (`argv[2]`) that refuses every UploadPart of a `model.bin` with a
/// 400 and passes everything else (CreateMultipartUpload, AbortMultipartUpload, listings, the
/// small files) through.
const PARTS_REFUSED: &str = r#"
import http.client, http.server, sys
up = int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def relay(self):
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n) if n else None
        if self.command == 'PUT' and '/model.bin?' in self.path and 'partNumber=' in self.path:
            msg = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRequest</Code><Message>part refused by the test proxy</Message></Error>'
            self.send_response(400)
            self.send_header('Content-Type', 'application/xml')
            self.send_header('Content-Length', str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        c = http.client.HTTPConnection('127.0.0.1', up)
        headers = {k: v for k, v in self.headers.items() if k.lower() != 'connection'}
        c.request(self.command, self.path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ('transfer-encoding', 'connection', 'content-length'):
                self.send_header(k, v)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)
    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"#;

/// A push whose parts S3 refuses fails, and aborts its multipart upload: no orphaned upload
/// (whose parts S3 would keep, and bill) is left in the bucket.
#[test]
fn a_failed_multipart_upload_is_aborted() {
    let Some(venv) = venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_moto, port) = moto_with_bucket(&venv);
    let (_proxy, proxy_port) = python_server(&venv, PARTS_REFUSED, &[&port.to_string()]);
    // More than four 16 MiB parts: the refusal surfaces while the file is still being read,
    // before `finish` (which aborts on its own failures) is reached.
    let pkg = synthetic_package(tmp.path(), 96, "1");
    let err = run_err(harken(&tmp.path().join("cache"), proxy_port).args([
        "model",
        "push",
        pkg.to_str().unwrap(),
        "s3://models/big",
    ]));
    assert!(err.contains("part refused by the test proxy"), "{err}");
    boto(
        &venv,
        port,
        "r = s3.list_multipart_uploads(Bucket='models')\nassert not r.get('Uploads'), r.get('Uploads')",
    );
}

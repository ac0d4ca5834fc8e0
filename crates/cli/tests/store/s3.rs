//! Push, pull, cache hits, offline mode, concurrent pulls and LRU eviction against moto.

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

    let spawn = || {
        harken(&cache, port)
            .args(["model", "pull", "--json", "s3://models/m"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let reports: Vec<serde_json::Value> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect();
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

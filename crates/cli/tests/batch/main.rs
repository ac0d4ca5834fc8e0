//! `harken batch` end to end with the real binary and the tiny.en model: a local directory with
//! a corrupt file, resume after SIGTERM, the JSONL worker, and an `s3://` prefix on moto split
//! between two AWS Batch array children.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/audio").join(name)
}

fn harken(model: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harken"));
    c.args(["batch", "--model"]).arg(model).args(["--threads", "1"]);
    c.env_remove("AWS_BATCH_JOB_ARRAY_INDEX").env_remove("HARKEN_MODEL_URI");
    c
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A directory of `n` copies of the numbers clip (and `extra` files).
fn clips(dir: &Path, n: usize, extra: &[(&str, &[u8])]) {
    for i in 0..n {
        std::fs::copy(testdata("numbers_16k.wav"), dir.join(format!("n{i:02}.wav"))).unwrap();
    }
    for (name, bytes) in extra {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn a_directory_with_a_corrupt_file_is_transcribed_and_a_rerun_skips_it_all() {
    let Some(model) = tiny_en() else { return };
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    clips(src.path(), 2, &[("broken.wav", b"RIFF\x10\0\0\0WAVEfmt nonsense")]);
    std::fs::create_dir(src.path().join("deeper")).unwrap();
    std::fs::copy(testdata("speech.flac"), src.path().join("deeper/speech.flac")).unwrap();
    let o = harken(&model).arg(src.path()).arg("--output").arg(out.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "one input failed: exit 2\n{err}");
    assert!(err.contains("3 transcribed, 1 failed"), "{err}");
    let recs = records(&out.path().join("index.jsonl"));
    assert_eq!(recs.len(), 4);
    let broken =
        recs.iter().find(|r| r["audio"].as_str().unwrap().ends_with("broken.wav")).unwrap();
    assert_eq!(broken["status"], "error");
    assert!(
        ["invalid_input", "unsupported_media"].contains(&broken["error"]["code"].as_str().unwrap())
    );
    let n0: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("n00.json")).unwrap())
            .unwrap();
    assert!(n0["text"].as_str().unwrap().contains("Tuesday"), "{n0}");
    assert!(out.path().join("deeper/speech.json").is_file());

    // Again: the three successes are skipped; only the broken file is tried.
    let o = harken(&model).arg(src.path()).arg("--output").arg(out.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("0 transcribed, 1 failed, 3 done earlier"), "{err}");
    assert_eq!(records(&out.path().join("index.jsonl")).len(), 5);
}

#[test]
fn sigterm_finishes_the_file_in_flight_and_a_rerun_does_the_rest() {
    let Some(model) = tiny_en() else { return };
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    clips(src.path(), 8, &[]);
    let index = out.path().join("index.jsonl");
    let mut child = Proc(
        harken(&model)
            .arg(src.path())
            .arg("--output")
            .arg(out.path())
            .args(["--jobs", "1"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while std::fs::read_to_string(&index).map_or(0, |s| s.lines().count()) < 1 {
        assert!(start.elapsed() < Duration::from_secs(120), "no file finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.0.id();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(err.contains("run the same command again"), "{err}");
    let done = records(&index);
    assert!(!done.is_empty() && done.len() < 8, "{} of 8 done", done.len());
    // Every finished file was indexed, and no result exists without its line.
    let results = std::fs::read_dir(out.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(results, done.len());

    let o = harken(&model).arg(src.path()).arg("--output").arg(out.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = records(&index);
    assert_eq!(all.len(), 8, "the rerun did exactly the rest");
    let mut audios: Vec<_> = all.iter().map(|r| r["audio"].as_str().unwrap().to_owned()).collect();
    audios.sort();
    audios.dedup();
    assert_eq!(audios.len(), 8);
}

#[test]
fn the_jsonl_worker_answers_each_request_once() {
    let Some(model) = tiny_en() else { return };
    let good = testdata("numbers_16k.wav");
    let stdin = format!(
        "{}\n{{\"audio\":\"{}\",\"id\":\"two\"}}\n{{\"audio\":\"{}\"}}\nnot-there.wav\n{{broken\n",
        good.display(),
        testdata("speech.ogg").display(),
        testdata("transcripts.tsv").display(),
    );
    let mut child = harken(&model)
        .arg("--jsonl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 5);
    let ok: Vec<_> = recs.iter().filter(|r| r["status"] == "ok").collect();
    assert_eq!(ok.len(), 2);
    assert!(recs.iter().any(|r| r["id"] == "two" && r["status"] == "ok"));
    let codes: Vec<_> = recs.iter().filter_map(|r| r["error"]["code"].as_str()).collect();
    for code in ["unsupported_media", "not_found", "invalid_input"] {
        assert!(codes.contains(&code), "{codes:?}");
    }
}

#[test]
fn an_s3_prefix_split_between_two_array_children() {
    let Some(model) = tiny_en() else { return };
    let Some(venv) = venv() else { return };
    let port = free_port();
    let _server = moto(&venv, port);
    let numbers = testdata("numbers_16k.wav");
    let flac = testdata("speech.flac");
    boto_out(
        &venv,
        port,
        &format!(
            "s3.create_bucket(Bucket='calls')\nfor i in range(4): s3.upload_file('{}', 'calls', f'in/day1/c{{i}}.wav')\ns3.upload_file('{}', 'calls', 'in/day2/s.flac')\ns3.put_object(Bucket='calls', Key='in/readme.txt', Body=b'not audio')",
            numbers.display(),
            flac.display()
        ),
    );
    let child = |shard: u32| {
        let mut c = harken(&model);
        c.args(["s3://calls/in", "--output", "s3://calls/out/", "--jobs", "1"])
            .env("AWS_BATCH_JOB_ARRAY_INDEX", shard.to_string())
            .env("AWS_BATCH_JOB_ARRAY_SIZE", "2")
            .env("AWS_ACCESS_KEY_ID", "t")
            .env("AWS_SECRET_ACCESS_KEY", "t")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .stderr(Stdio::piped());
        c
    };
    let (a, b) = (child(0).spawn().unwrap(), child(1).spawn().unwrap());
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let listing = boto_out(
        &venv,
        port,
        "print(json.dumps(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='calls', Prefix='out/')['Contents'])))",
    );
    let keys: Vec<String> = serde_json::from_str(listing.trim()).unwrap();
    assert_eq!(
        keys,
        [
            "out/day1/c0.json",
            "out/day1/c1.json",
            "out/day1/c2.json",
            "out/day1/c3.json",
            "out/day2/s.json",
            "out/index-00000-of-00002.jsonl",
            "out/index-00001-of-00002.jsonl"
        ]
    );
    let body = boto_out(
        &venv,
        port,
        "print(s3.get_object(Bucket='calls', Key='out/day1/c3.json')['Body'].read().decode())",
    );
    let v: Value = serde_json::from_str(body.trim()).unwrap();
    assert!(v["text"].as_str().unwrap().contains("Tuesday"), "{v}");
    // The whole prefix again, unsharded: all five are found done through the shards' indexes.
    let mut again = child(0);
    again.env_remove("AWS_BATCH_JOB_ARRAY_INDEX");
    let o = again.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("5 done earlier"), "{err}");
}

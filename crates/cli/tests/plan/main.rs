//! `harken plan` on pinned inputs: the reference scenario (250,000 × 20 s, Whisper base measured
//! on 1 and 2 threads, the committed prices file) against a golden report, a scenario where
//! limits fail, JSON output, and bad inputs; a backlog with its simulation, and the check
//! against a local batch run's index.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn here(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plan").join(name)
}

fn prices() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prices/aws-us-east-1.yaml")
}

fn plan(extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harken"))
        .arg("plan")
        .arg("--bench")
        .arg(here("bench-base-1t.json"))
        .arg("--bench")
        .arg(here("bench-base-2t.json"))
        .arg("--prices")
        .arg(prices())
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn reference_scenario_matches_the_golden_report() {
    let out = plan(&["--invocations-per-year", "250000", "--mean-audio-seconds", "20"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let golden = here("reference.txt");
    if std::env::var_os("HARKEN_BLESS").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(text, want, "harken plan output changed (HARKEN_BLESS=1 to accept)");
    for platform in ["Lambda x86_64", "Lambda arm64", "SageMaker real-time", "SageMaker serverless"]
    {
        assert!(text.contains(platform), "{platform}");
    }
    assert!(text.contains("as of 2026-11-28"));
}

#[test]
fn failing_limits_are_named_with_numbers() {
    let out = plan(&[
        "--mean-audio-seconds",
        "600",
        "--p95-audio-seconds",
        "1800",
        "--peak-concurrency",
        "250",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |name: &str| {
        v["rows"].as_array().unwrap().iter().find(|r| r["platform"] == name).unwrap().clone()
    };
    let rt = row("SageMaker real-time");
    assert_eq!(rt["fits"], false);
    let failed: Vec<&str> =
        rt["failed"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(failed.iter().any(|f| f.contains("> 60 s invocation timeout")), "{failed:?}");
    let sl = row("SageMaker serverless");
    assert!(
        sl["failed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("peak concurrency 250 > 200")),
        "{sl}"
    );
    assert_eq!(row("Lambda x86_64")["fits"], true);
    assert!(
        v["recommendation"].as_str().unwrap().starts_with("Lambda")
            || v["recommendation"].as_str().unwrap().starts_with("SageMaker async")
    );
}

#[test]
fn bad_inputs_get_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("prices.yaml");
    std::fs::write(&bad, "version: 1\nas_of: x\n").unwrap();
    for (args, want) in [
        (vec!["--prices".to_owned(), bad.display().to_string()], "prices file"),
        (
            vec!["--region".to_owned(), "eu-west-1".to_owned()],
            "pass --prices with a file for eu-west-1",
        ),
        (vec!["--mean-audio-seconds".to_owned(), "0".to_owned()], "mean audio > 0"),
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_harken"));
        c.arg("plan").arg("--bench").arg(here("bench-base-2t.json")).args(&args);
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_backlog_is_priced_and_simulated_on_every_platform() {
    let out =
        plan(&["--backlog-files", "20000", "--mean-audio-seconds", "300", "--simulate", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["platform"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "Lambda + Step Functions",
            "Lambda + S3 Batch Ops",
            "SageMaker Batch Transform",
            "SageMaker async",
            "AWS Batch on Spot",
            "Ray/Spark cluster"
        ]
    );
    for r in rows {
        for est in [&r["analytic"], &r["simulated"]] {
            assert!(est["wall_s"].as_f64().unwrap() > 0.0, "{r}");
            assert!(est["total"].as_f64().unwrap() > 0.0, "{r}");
            assert!(est["per_1000_audio_hours"].as_f64().unwrap() > 0.0, "{r}");
        }
        assert!(!r["limiting"].as_str().unwrap().is_empty());
        let files = r["simulated"]["outcome"]["succeeded"].as_f64().unwrap()
            + r["simulated"]["outcome"]["failed"].as_f64().unwrap();
        assert_eq!(files, 20000.0);
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("simulated 6 platforms"));

    let out = plan(&["--backlog-files", "20000", "--mean-audio-seconds", "300"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("limiting factor") && text.contains("recommendation: "), "{text}");
    assert!(!text.contains("  simulated"), "{text}");
}

#[test]
fn backlog_flags_need_a_backlog() {
    let out = plan(&["--simulate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backlog-files"));
}

#[test]
fn a_local_run_is_checked_against_the_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.jsonl");
    // Four files on two workers, each taking the next file when it frees: a (3 s) and b (2 s)
    // start; c (2 s with its fetch) follows b, d (2 s) follows a: 5 s of wall time.
    let lines = [
        r#"{"audio":"a.wav","status":"ok","duration":30.0,"seconds":3.0,"t":1003.0}"#,
        r#"{"audio":"b.wav","status":"ok","duration":20.0,"seconds":2.0,"t":1002.0}"#,
        r#"{"audio":"c.wav","status":"ok","duration":10.0,"seconds":1.5,"fetch_seconds":0.5,"t":1004.0}"#,
        r#"{"audio":"d.wav","status":"ok","duration":20.0,"seconds":2.0,"t":1005.0}"#,
        r#"{"audio":"e.wav","status":"error","error":{"code":"invalid_input","message":"x"},"t":1004.0}"#,
    ];
    std::fs::write(&index, lines.join("\n")).unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_harken"))
            .arg("plan")
            .arg("--check-local")
            .arg(&index)
            .args(["--check-workers", "2"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["files"], 4);
    assert_eq!(v["skipped_lines"], 1);
    assert_eq!(v["simulated_wall_s"].as_f64().unwrap(), 5.0);
    assert_eq!(v["measured_wall_s"].as_f64().unwrap(), 5.0); // from the "t" stamps
    let out = run(&["--check-wall-seconds", "4"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("measured   4.0 s wall: simulation +25.0%"), "{text}");
}

//! `harken plan` on pinned inputs: the reference scenario (250,000 × 20 s, Whisper base measured
//! on 1 and 2 threads, the committed prices file) against a golden report, a scenario where
//! limits fail, JSON output, and bad inputs.

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

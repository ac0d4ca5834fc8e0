//! The real binary as a Lambda `bootstrap`, driven through the documented Runtime API
//! (`tests/lambda/runtime_api.py`, an implementation of the 2018-06-01 endpoints) with the event
//! shapes of `testdata/lambda`: API Gateway REST and HTTP APIs, a Function URL, an ALB, direct
//! invocations, keep-warm pings, error events, and an init failure reported to `/init/error`.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

use common::{Proc, boto_out, free_port, tiny_en, venv as store_venv};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Runtime API emulator on a free port.
fn runtime_api() -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("python3")
        .arg(root().join("tests/lambda/runtime_api.py"))
        .arg(port.to_string())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "runtime API emulator did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Proc(child), port)
}

/// The harken binary, started as `bootstrap` (a symlink named so, as in a deployment zip).
fn bootstrap(dir: &Path, api_port: u16, envs: &[(&str, &str)]) -> Proc {
    let link = dir.join("bootstrap");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_harken"), &link).unwrap();
    }
    let mut c = Command::new(&link);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{api_port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "harken")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("HARKEN_CACHE_DIR", dir.join("tmp-harken"))
        .env("HARKEN_THREADS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("bootstrap.log")).unwrap()));
    for (k, v) in envs {
        c.env(k, v);
    }
    Proc(c.spawn().unwrap())
}

/// POST one event through the emulator's control API; returns (result, error, ms).
fn invoke(port: u16, event: &Value) -> (Value, Value, f64) {
    let body = event.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    write!(
        s,
        "POST /test/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let json_start = out.find("\r\n\r\n").unwrap() + 4;
    let v: Value = serde_json::from_str(&out[json_start..]).unwrap();
    (v["result"].clone(), v["error"].clone(), v["ms"].as_f64().unwrap())
}

fn fixture(name: &str, content_type: &str, body: &[u8]) -> Value {
    let text = std::fs::read_to_string(root().join("testdata/lambda").join(name)).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    serde_json::from_str(&text.replace("__CONTENT_TYPE__", content_type).replace("__BODY__", &b64))
        .unwrap()
}

fn audio() -> Vec<u8> {
    std::fs::read(root().join("testdata/audio/numbers_16k.wav")).unwrap()
}

/// The body of an HTTP-event response, decoded.
fn body(result: &Value) -> String {
    let b = result["body"].as_str().unwrap_or_default();
    if result["isBase64Encoded"] == true {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
    } else {
        b.to_owned()
    }
}

#[test]
fn every_event_type_through_the_runtime_api() {
    let Some(model) = tiny_en() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_api, port) = runtime_api();
    let _fn = bootstrap(
        tmp.path(),
        port,
        &[("HARKEN_MODEL_URI", model.to_str().unwrap()), ("HARKEN_MAX_BODY_BYTES", "200000")],
    );
    let wav = audio();

    // API Gateway REST (v1): raw WAV to /invocations, JSON back.
    let (r, err, _) = invoke(port, &fixture("apigw-rest-v1.json", "audio/wav", &wav));
    assert!(err.is_null(), "{err}");
    assert_eq!(r["statusCode"], 200, "{r}");
    let text: Value = serde_json::from_str(&body(&r)).unwrap();
    assert!(text["text"].as_str().unwrap().contains("Tuesday"), "{r}");

    // API Gateway HTTP API (v2): the OpenAI multipart route.
    let boundary = "harkenboundary";
    let mut mp = Vec::new();
    mp.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        )
        .as_bytes(),
    );
    mp.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\nverbose_json\r\n").as_bytes());
    mp.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes());
    mp.extend_from_slice(&wav);
    mp.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ev =
        fixture("apigw-http-v2.json", &format!("multipart/form-data; boundary={boundary}"), &mp);
    let (r, _, _) = invoke(port, &ev);
    assert_eq!(r["statusCode"], 200, "{r}");
    let v: Value = serde_json::from_str(&body(&r)).unwrap();
    assert!(v["segments"].as_array().is_some_and(|s| !s.is_empty()), "{v}");

    // Function URL (v2 payload): subtitles by Accept header.
    let (r, _, _) = invoke(port, &fixture("function-url.json", "audio/wav", &wav));
    assert_eq!(r["statusCode"], 200, "{r}");
    assert!(body(&r).starts_with("WEBVTT"), "{r}");

    // ALB.
    let (r, _, _) = invoke(port, &fixture("alb.json", "audio/wav", &wav));
    assert_eq!(r["statusCode"], 200, "{r}");
    assert!(body(&r).contains("Tuesday"), "{r}");

    // Direct invocation with base64 audio and options.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&wav);
    let (r, _, _) = invoke(
        port,
        &json!({"audio_base64": b64, "response_format": "verbose_json", "language": "en", "word_timestamps": true}),
    );
    assert_eq!(r["statusCode"], 200, "{r}");
    assert!(r["body"]["words"].as_array().is_some_and(|w| w.len() > 3), "{r}");

    // Keep-warm: a schedule and a payload, answered without inference and counted.
    let (r, _, ms_schedule) = invoke(port, &fixture("scheduled-event.json", "", b""));
    assert_eq!(r, json!({"warm": true, "source": "schedule", "warmups": 1}));
    let (r, _, ms_payload) = invoke(port, &json!({"warmup": true}));
    assert_eq!(r["warmups"], 2, "{r}");
    eprintln!("keep-warm round trips: {ms_schedule:.1} ms, {ms_payload:.1} ms");

    // Errors: the right status and a JSON error body, never a function error.
    let mut bad = fixture("apigw-http-v2.json", "audio/wav", &wav);
    bad["body"] = json!("%%% not base64 %%%");
    let (r, err, _) = invoke(port, &bad);
    assert!(err.is_null(), "client errors are results, not function errors: {err}");
    assert_eq!(r["statusCode"], 400, "{r}");
    assert!(body(&r).contains("not valid base64"), "{r}");

    let (r, _, _) = invoke(port, &fixture("apigw-rest-v1.json", "text/plain", b"hello"));
    assert_eq!(r["statusCode"], 415, "{r}");
    assert!(body(&r).contains("\"code\":\"unsupported_media\""), "{r}");

    let big = vec![0u8; 300_000];
    let (r, _, _) = invoke(port, &fixture("apigw-rest-v1.json", "audio/wav", &big));
    assert_eq!(r["statusCode"], 413, "{r}");
    assert!(body(&r).contains("\"code\""), "{r}");

    let (r, _, _) = invoke(port, &json!({"audio_base64": "@@@"}));
    assert_eq!(r["statusCode"], 400, "{r}");
    assert!(r["body"]["error"]["message"].as_str().unwrap().contains("base64"), "{r}");
    let (r, _, _) = invoke(port, &json!({"audio_base64": "AAAA", "audio_s3_uri": "s3://b/k"}));
    assert_eq!(r["statusCode"], 400, "{r}");
    let (r, _, _) = invoke(port, &json!({"something": "else"}));
    assert_eq!(r["statusCode"], 400, "{r}");
    assert!(r["body"]["error"]["message"].as_str().unwrap().contains("unrecognised event"), "{r}");

    // One structured init line with the phases, and the keep-warm pings are logged.
    let log = std::fs::read_to_string(tmp.path().join("bootstrap.log")).unwrap();
    let ready =
        log.lines().find(|l| l.contains("\"model ready\"")).unwrap_or_else(|| panic!("{log}"));
    let ready: Value = serde_json::from_str(ready).unwrap();
    for k in ["resolve_ms", "download_ms", "verify_ms", "load_ms", "cache_hit"] {
        assert!(ready.get(k).is_some(), "{k} missing in {ready}");
    }
    assert!(log.contains("\"lambda init complete\""), "{log}");
    assert_eq!(log.matches("\"keep-warm ping\"").count(), 2, "{log}");
}

#[test]
fn init_failure_is_reported_to_the_runtime_api() {
    let tmp = tempfile::tempdir().unwrap();
    let (_api, port) = runtime_api();
    let mut f = bootstrap(
        tmp.path(),
        port,
        &[
            ("HARKEN_MODEL_URI", "s3://no-such-bucket/model"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = f.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "bootstrap did not give up");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(2));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /test/init-error HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "no init error reported: {out}");
    let v: Value = serde_json::from_str(&out[out.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(v["type"], "Harken.InitError");
    assert_eq!(v["error"]["errorType"], "Harken.InitError");
    let msg = v["error"]["errorMessage"].as_str().unwrap();
    assert!(msg.contains("s3://no-such-bucket/model"), "{msg}");
}

#[test]
fn outside_lambda_it_says_so_instead_of_panicking() {
    let out = Command::new(env!("CARGO_BIN_EXE_harken"))
        .arg("lambda")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not in a Lambda environment") && err.contains("AWS_LAMBDA_RUNTIME_API"),
        "{err}"
    );
    assert!(!err.contains("panic"), "{err}");
}

/// A 16-kHz mono WAV of `seconds`: the two 16-kHz speech fixtures in turn, each followed by
/// 0.7 s of silence (a plain loop of one sentence sends Whisper into its repetition fallback).
fn long_wav(seconds: usize) -> Vec<u8> {
    let a = audio();
    let b = std::fs::read(root().join("testdata/audio/speech_16k_s16.wav")).unwrap();
    let gap = vec![0u8; 16_000 * 2 * 7 / 10];
    let cycle: Vec<u8> = [&a[44..], &gap[..], &b[44..], &gap[..]].concat();
    let want = seconds * 16_000 * 2;
    let data: Vec<u8> = cycle.iter().copied().cycle().take(want).collect();
    let mut w = Vec::with_capacity(44 + data.len());
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

fn ready_line(log: &Path) -> Value {
    let text = std::fs::read_to_string(log).unwrap();
    let line =
        text.lines().find(|l| l.contains("\"model ready\"")).unwrap_or_else(|| panic!("{text}"));
    serde_json::from_str(line).unwrap()
}

/// Cold start from a real S3-protocol server with an empty /tmp, then a second environment on
/// the same /tmp (cache hit), both answering a 12-s clip fetched by `audio_s3_uri`. (The 20-s
/// measurement on recorded speech is `bench/lambda-cold.sh`.)
#[test]
fn cold_start_from_s3_then_warm_cache() {
    let (Some(model), Some(venv)) = (tiny_en(), store_venv()) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let s3 = free_port();
    let moto = common::moto(&venv, s3);
    let endpoint = format!("http://127.0.0.1:{s3}");
    let clip = tmp.path().join("clip.wav");
    std::fs::write(&clip, long_wav(12)).unwrap();
    let py = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1', aws_access_key_id='t', aws_secret_access_key='t')\ns3.create_bucket(Bucket='models')\ns3.upload_file('{}', 'models', 'audio/clip.wav')\n",
        clip.display()
    );
    assert!(Command::new(venv.join("bin/python")).arg("-c").arg(py).status().unwrap().success());
    let aws = [
        ("AWS_ACCESS_KEY_ID", "t"),
        ("AWS_SECRET_ACCESS_KEY", "t"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ];
    let pkg = tmp.path().join("pkg");
    let ok = Command::new(env!("CARGO_BIN_EXE_harken"))
        .args(["model", "pack", model.to_str().unwrap(), "-o", pkg.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new(env!("CARGO_BIN_EXE_harken"))
        .args(["model", "push", pkg.to_str().unwrap(), "s3://models/tiny"])
        .envs(aws)
        .env("HARKEN_CACHE_DIR", tmp.path().join("push-cache"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());

    let mut envs = aws.to_vec();
    envs.push(("HARKEN_MODEL_URI", "s3://models/tiny"));
    let event = json!({"audio_s3_uri": "s3://models/audio/clip.wav", "language": "en", "response_format": "text"});
    let mut ready = Vec::new();
    for round in ["cold", "warm"] {
        let (_api, port) = runtime_api();
        let f = bootstrap(tmp.path(), port, &envs);
        let (first, err, ms1) = invoke(port, &event);
        assert!(err.is_null(), "{err}");
        assert_eq!(first["statusCode"], 200, "{first}");
        assert!(first["body"].as_str().unwrap().to_lowercase().contains("tuesday"), "{first}");
        let (_, _, ms2) = invoke(port, &event);
        drop(f);
        let line = ready_line(&tmp.path().join("bootstrap.log"));
        eprintln!("{round}: init phases {line}; 1st call {ms1:.0} ms, 2nd call {ms2:.0} ms");
        ready.push(line);
    }
    assert_eq!(ready[0]["cache_hit"], false);
    assert!(ready[0]["downloaded_bytes"].as_u64().unwrap() > 70_000_000, "{}", ready[0]);
    assert_eq!(ready[1]["cache_hit"], true, "the second environment finds /tmp filled");
    assert_eq!(ready[1]["downloaded_bytes"], 0);
    assert_eq!(ready[0]["digest"], ready[1]["digest"]);

    // Audio that is not there: a 404 result, not a function error.
    let (_api, port) = runtime_api();
    let _f = bootstrap(tmp.path(), port, &envs);
    let (r, err, _) = invoke(port, &json!({"audio_s3_uri": "s3://models/audio/missing.wav"}));
    assert!(err.is_null(), "{err}");
    assert_eq!(r["statusCode"], 404, "{r}");
    drop(moto);
}

/// The same bootstrap under a real emulator from the registries: `cargo lambda watch
/// --only-lambda-apis` (PyPI `cargo-lambda`), invoked with `cargo lambda invoke`. It deviates
/// from Lambda in details (a `/.rt/<fn>` path in `AWS_LAMBDA_RUNTIME_API`, a fixed deadline
/// header, 200 instead of 202), which the function must tolerate.
#[test]
fn cargo_lambda_emulator_drives_the_bootstrap() {
    let (Some(model), Some(venv)) = (tiny_en(), store_venv()) else { return };
    let cl = venv.join("bin/cargo-lambda");
    assert!(cl.is_file(), "no cargo-lambda in {} (scripts/install-test-tools.sh)", venv.display());
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _watch = Proc(
        Command::new(&cl)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(root())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    venv.join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "cargo lambda watch did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let api = format!("http://127.0.0.1:{port}/.rt/harken");
    let link = tmp.path().join("bootstrap");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_harken"), &link).unwrap();
    let _f = Proc(
        Command::new(&link)
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "harken")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("HARKEN_MODEL_URI", &model)
            .env("HARKEN_CACHE_DIR", tmp.path().join("cache"))
            .env("HARKEN_THREADS", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let invoke = |event: &Value| -> Value {
        let file = tmp.path().join("event.json");
        std::fs::write(&file, event.to_string()).unwrap();
        let out = Command::new(&cl)
            .args([
                "lambda",
                "invoke",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                "harken",
                "--data-file",
            ])
            .arg(&file)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo lambda invoke: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(invoke(&json!({"warmup": true}))["warm"], true);
    let b64 = base64::engine::general_purpose::STANDARD.encode(audio());
    let r = invoke(&json!({"audio_base64": b64, "response_format": "text"}));
    assert_eq!(r["statusCode"], 200, "{r}");
    assert!(r["body"].as_str().unwrap().contains("Tuesday"), "{r}");
    let r = invoke(&fixture("function-url.json", "audio/wav", &audio()));
    assert_eq!(r["statusCode"], 200, "{r}");
    assert!(body(&r).starts_with("WEBVTT"), "{r}");
}

/// A DeepSpeech package (the Coqui model and a scorer) behind the Lambda handler: the
/// client's transcript (golden file) comes back through an API Gateway event.
#[test]
fn a_deepspeech_package_behind_the_handler() {
    let model = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/harken/deepspeech/armspeech/model.tflite");
    if !model.is_file() {
        assert!(
            !common::ci(),
            "CI=true: armspeech is not installed (scripts/install-deepspeech.sh)"
        );
        eprintln!("\n*** SKIP: armspeech not installed ***\n");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(env!("CARGO_BIN_EXE_harken")).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let (arpa, scorer, pkg) =
        (tmp.path().join("a.arpa"), tmp.path().join("a.scorer"), tmp.path().join("pkg"));
    let text = root().join("testdata/deepspeech/armspeech-lm.txt");
    run(&[
        "lm".as_ref(),
        "build".as_ref(),
        text.as_ref(),
        "--order".as_ref(),
        "3".as_ref(),
        "-o".as_ref(),
        arpa.as_ref(),
    ]);
    run(&[
        "lm".as_ref(),
        "convert".as_ref(),
        arpa.as_ref(),
        "-o".as_ref(),
        scorer.as_ref(),
        "--alphabet".as_ref(),
        model.as_ref(),
    ]);
    run(&[
        "model".as_ref(),
        "pack".as_ref(),
        model.as_ref(),
        "--scorer".as_ref(),
        scorer.as_ref(),
        "-o".as_ref(),
        pkg.as_ref(),
    ]);
    let golden =
        std::fs::read_to_string(root().join("testdata/golden/deepspeech-armspeech-scorer.tsv"))
            .unwrap();
    let want = golden
        .lines()
        .find_map(|l| l.strip_prefix("default\tnumbers_16k.wav\t"))
        .unwrap()
        .to_owned();

    let (_api, port) = runtime_api();
    let _fn = bootstrap(tmp.path(), port, &[("HARKEN_MODEL_URI", pkg.to_str().unwrap())]);
    let (r, err, _) = invoke(port, &fixture("apigw-rest-v1.json", "audio/wav", &audio()));
    assert!(err.is_null(), "{err}");
    assert_eq!(r["statusCode"], 200, "{r}");
    let got: Value = serde_json::from_str(&body(&r)).unwrap();
    assert_eq!(got["text"], want.as_str(), "{r}");
}

fn fan_out_event(name: &str, bucket: &str) -> Value {
    let text = std::fs::read_to_string(root().join("testdata/lambda").join(name)).unwrap();
    serde_json::from_str(&text.replace("__BUCKET__", bucket)).unwrap()
}

/// The three fan-out events (Step Functions `ItemBatcher`, S3 Batch Operations 2.0, SQS with S3
/// notifications) through the real bootstrap, with the audio and the results on moto.
#[test]
fn fan_out_events_transcribe_objects_and_report_per_file() {
    let Some(model) = tiny_en() else { return };
    let Some(venv) = store_venv() else { return };
    let s3_port = free_port();
    let _s3 = common::moto(&venv, s3_port);
    let wav = root().join("testdata/audio/numbers_16k.wav");
    boto_out(
        &venv,
        s3_port,
        &format!(
            "s3.create_bucket(Bucket='calls')\ns3.upload_file('{w}', 'calls', 'in/good.wav')\ns3.upload_file('{w}', 'calls', 'in/with space.wav')\ns3.put_object(Bucket='calls', Key='in/broken.wav', Body=b'RIFF\\x24\\x00\\x00\\x00WAVEfmt not a wave file')",
            w = wav.display()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let (_api, port) = runtime_api();
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let _fn = bootstrap(
        dir.path(),
        port,
        &[
            ("HARKEN_MODEL_URI", model.to_str().unwrap()),
            ("HARKEN_OUTPUT_URI", "s3://calls/sqs-out"),
            ("AWS_ACCESS_KEY_ID", "t"),
            ("AWS_SECRET_ACCESS_KEY", "t"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", &endpoint),
        ],
    );

    // Step Functions: one good and one corrupt file in a batch.
    let (result, error, _) =
        invoke(port, &fan_out_event("stepfunctions-itembatcher.json", "calls"));
    assert!(error.is_null(), "{error}");
    assert_eq!(result["failed"], 1, "{result}");
    let results = result["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "ok", "{result}");
    assert_eq!(results[0]["output"], "s3://calls/sfn-out/in/good.json");
    assert!(results[0]["text"].as_str().unwrap().contains("Tuesday"));
    assert_eq!(results[1]["status"], "error");

    // S3 Batch Operations: a URL-encoded key, a missing key, a corrupt file.
    let (result, error, _) = invoke(port, &fan_out_event("s3-batch-operations-2.0.json", "calls"));
    assert!(error.is_null(), "{error}");
    assert_eq!(result["invocationSchemaVersion"], "2.0");
    assert_eq!(result["treatMissingKeysAs"], "PermanentFailure");
    assert_eq!(result["invocationId"], "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo");
    let codes: Vec<_> = result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resultCode"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["Succeeded", "PermanentFailure", "PermanentFailure"], "{result}");
    assert_eq!(result["results"][0]["taskId"], "dGFza2lkZ29lc2hlcmUK");
    assert_eq!(result["results"][0]["resultString"], "s3://calls/s3batch-out/in/with space.json");

    // SQS: good file, corrupt file (recorded, not retried), test event, and a non-JSON body
    // (the only message handed back).
    let (result, error, _) = invoke(port, &fan_out_event("sqs-s3-events.json", "calls"));
    assert!(error.is_null(), "{error}");
    assert_eq!(
        result["batchItemFailures"],
        json!([{"itemIdentifier": "3c4d5e6f-0000-4000-8000-000000000004"}]),
        "{result}"
    );
    let keys = boto_out(
        &venv,
        s3_port,
        "print(json.dumps(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='calls')['Contents'] if not o['Key'].startswith('in/'))))",
    );
    let keys: Vec<String> = serde_json::from_str(keys.trim()).unwrap();
    assert_eq!(
        keys,
        [
            "s3batch-out/in/with space.json",
            "sfn-out/in/good.json",
            "sqs-out/in/broken.error.json",
            "sqs-out/in/with space.json"
        ]
    );
    let err = boto_out(
        &venv,
        s3_port,
        "print(s3.get_object(Bucket='calls', Key='sqs-out/in/broken.error.json')['Body'].read().decode())",
    );
    let err: Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(err["status"], "error");
    assert_eq!(err["audio"], "s3://calls/in/broken.wav");
}

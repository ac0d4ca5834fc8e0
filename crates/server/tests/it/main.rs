//! The server through its router (`oneshot`) and on a real socket, with the real tiny.en model:
//! every route, the error table, auth, limits, overload and graceful shutdown.
//!
//! Real-model tier: without the installed model the tests print a loud SKIP line; under
//! `CI=true` they fail.

// Test helpers outside #[test] fns: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use harken_engine::{Engine, EngineConfig};
use harken_server::{AppState, ServerConfig, router};
use tower::ServiceExt;

mod batch;
mod hostile;

fn engine() -> Option<Arc<Engine>> {
    static ENGINE: OnceLock<Option<Arc<Engine>>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let base =
                std::env::var_os("HARKEN_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/harken")
                });
            let dir = base.join("models/whisper-tiny.en");
            if !dir.join("model.bin").is_file() {
                let msg = format!(
                    "tiny.en not installed at {} (scripts/install-models.sh all)",
                    dir.display()
                );
                assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true: {msg}");
                eprintln!("\n*** SKIP real-model test: {msg} ***\n");
                return None;
            }
            Some(Arc::new(
                Engine::load(
                    &dir,
                    &EngineConfig { max_audio_s: Some(120.0), ..Default::default() },
                )
                .unwrap(),
            ))
        })
        .clone()
}

fn config() -> ServerConfig {
    ServerConfig {
        workers: 1,
        queue: 4,
        request_timeout: Duration::from_secs(60),
        max_body_bytes: 2 * 1024 * 1024,
        api_key: None,
        model_name: "whisper-1".into(),
        model: None,
        web_ui: true,
        streams: Default::default(),
        conn: Default::default(),
        batch: None,
    }
}

fn wav() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/audio/numbers_16k.wav"),
    )
    .unwrap()
}

/// The fixture's speech `times` times over, as one WAV.
fn repeated_wav(times: usize) -> Vec<u8> {
    let one = wav();
    let data = one.windows(4).position(|w| w == b"data").unwrap() + 8;
    let mut long = one.clone();
    for _ in 1..times {
        long.extend_from_slice(&one[data..]);
    }
    let len = (long.len() - data) as u32;
    long[data - 4..data].copy_from_slice(&len.to_le_bytes());
    let riff = (long.len() - 8) as u32;
    long[4..8].copy_from_slice(&riff.to_le_bytes());
    long
}

fn multipart(fields: &[(&str, &str)], file: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = "harkenboundary7d3f";
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some(f) = file {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/x-wav\r\n\r\n")
                .as_bytes(),
        );
        b.extend_from_slice(f);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn post(uri: &str, ctype: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri).header(header::CONTENT_TYPE, ctype).body(Body::from(body)).unwrap()
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(v["error"]["type"].is_string(), "{body}");
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn openai_transcriptions_in_every_format() {
    let Some(e) = engine() else { return };
    let app = router(AppState::new(e, config()));
    for (format, check) in [
        ("json", "\"text\":"),
        ("text", "Tuesday"),
        ("srt", "00:00:00,000 --> "),
        ("vtt", "WEBVTT"),
        ("verbose_json", "\"avg_logprob\""),
    ] {
        let (ct, body) = multipart(
            &[("model", "whisper-1"), ("language", "en"), ("response_format", format)],
            Some(&wav()),
        );
        let (status, _, text) = send(&app, post("/v1/audio/transcriptions", &ct, body)).await;
        assert_eq!(status, StatusCode::OK, "{format}: {text}");
        assert!(text.contains(check), "{format}: {text}");
        assert!(text.to_lowercase().contains("tuesday"), "{format}: {text}");
    }
    // A positive temperature samples at exactly that temperature; nonsense is refused.
    let (ct, body) =
        multipart(&[("response_format", "verbose_json"), ("temperature", "0.4")], Some(&wav()));
    let (status, _, text) = send(&app, post("/v1/audio/transcriptions", &ct, body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!((v["segments"][0]["temperature"].as_f64().unwrap() - 0.4).abs() < 1e-6, "{text}");
    for bad in ["hot", "3"] {
        let (ct, body) = multipart(&[("temperature", bad)], Some(&wav()));
        let (status, _, _) = send(&app, post("/v1/audio/transcriptions", &ct, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // Word timestamps in verbose_json.
    let (ct, body) = multipart(
        &[("response_format", "verbose_json"), ("timestamp_granularities[]", "word")],
        Some(&wav()),
    );
    let (status, _, text) = send(&app, post("/v1/audio/transcriptions", &ct, body)).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v["words"].as_array().unwrap().len() >= 5, "{text}");
}

#[tokio::test]
async fn sagemaker_invocations_raw_json_and_endpoint_path() {
    let Some(e) = engine() else { return };
    let app = router(AppState::new(e, config()));
    let (s, h, t) = send(&app, Request::get("/ping").body(Body::empty()).unwrap()).await;
    assert_eq!((s, t.as_str()), (StatusCode::OK, ""));
    assert!(h.contains_key("x-request-id"));
    let req = Request::get("/ping").header("x-request-id", "abc-123").body(Body::empty()).unwrap();
    let (_, h, _) = send(&app, req).await;
    assert_eq!(h["x-request-id"], "abc-123");
    for (accept, check) in [
        ("application/json", "\"segments\""),
        ("text/plain", "Tuesday"),
        ("text/vtt", "WEBVTT"),
        ("application/x-subrip", "1\n00:00:00,000"),
    ] {
        let req = Request::post("/invocations")
            .header(header::CONTENT_TYPE, "audio/wav")
            .header(header::ACCEPT, accept)
            .body(Body::from(wav()))
            .unwrap();
        let (status, headers, text) = send(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{accept}: {text}");
        assert!(text.contains(check), "{accept}: {text}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(accept.split('/').next().unwrap())
        );
    }
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, wav());
    let body =
        serde_json::json!({"audio_base64": b64, "language": "en", "response_format": "text"})
            .to_string();
    let (status, _, text) = send(
        &app,
        post("/endpoints/asr%2Fprod/invocations", "application/json", body.into_bytes()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.to_lowercase().contains("tuesday"), "{text}");

    // Raw audio with options in the query string; unknown or bad options are 400s.
    let (status, _, text) = send(
        &app,
        post(
            "/invocations?language=en&response_format=srt&word_timestamps=true",
            "audio/wav",
            wav(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.starts_with("1\n00:00:00,000"), "{text}");
    for bad in
        ["/invocations?colour=red", "/invocations?task=sing", "/invocations?word_timestamps=maybe"]
    {
        let (status, _, text) = send(&app, post(bad, "audio/wav", wav())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {text}");
        assert_eq!(error_code(&text), "invalid_input", "{bad}");
    }
}

#[tokio::test]
async fn errors_use_the_table_and_openai_shape() {
    let Some(e) = engine() else { return };
    let mut cfg = config();
    cfg.max_body_bytes = 64 * 1024;
    let app = router(AppState::new(e, cfg));
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post("/invocations", "audio/wav", b"definitely not audio".repeat(20)),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media",
        ),
        (
            post("/invocations", "text/html", b"<html>".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media",
        ),
        (
            post("/invocations", "application/json", b"{\"audio_base64\": \"***\"}".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            post("/invocations", "application/json", b"{\"audio\": 1}".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            post("/invocations", "audio/wav", vec![0u8; 100 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (post("/invocations", "audio/wav", Vec::new()), StatusCode::BAD_REQUEST, "invalid_input"),
        (
            Request::post("/invocations")
                .header(header::CONTENT_TYPE, "audio/wav")
                .header(header::ACCEPT, "image/png")
                .body(Body::from(b"RIFF".to_vec()))
                .unwrap(),
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
        ),
    ];
    for (req, want, code) in cases {
        let uri = req.uri().clone();
        let (status, _, body) = send(&app, req).await;
        assert_eq!(status, want, "{uri}: {body}");
        assert_eq!(error_code(&body), code, "{uri}: {body}");
    }
    let (ct, body) = multipart(&[("model", "whisper-1")], None);
    let (status, _, text) = send(&app, post("/v1/audio/transcriptions", &ct, body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("\\\"file\\\" is required") || text.contains("file"), "{text}");
    let (ct, body) = multipart(&[], Some(&vec![0u8; 100 * 1024]));
    let (status, _, text) = send(&app, post("/v1/audio/transcriptions", &ct, body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
}

#[tokio::test]
async fn malformed_audio_over_http_gives_4xx_and_the_server_stays_healthy() {
    let Some(e) = engine() else { return };
    let app = router(AppState::new(e, config()));
    let good = wav();
    let mut nan = good[..44].to_vec();
    nan[20] = 3; // format tag: IEEE float
    nan[34] = 32; // 32 bits per sample
    nan.extend(std::iter::repeat_n(f32::NAN.to_le_bytes(), 100).flatten());
    let mut zero_ch = good.clone();
    zero_ch[22] = 0;
    let mut zero_rate = good.clone();
    zero_rate[24..28].copy_from_slice(&0u32.to_le_bytes());
    let corpus: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("text", b"this is a text file renamed to .wav\n".repeat(30)),
        ("random", (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
        ("truncated header", good[..20].to_vec()),
        ("truncated data", good[..2_000].to_vec()),
        ("NaN floats", nan),
        ("zero channels", zero_ch),
        ("zero sample rate", zero_rate),
    ];
    for (name, body) in corpus {
        let (status, _, text) =
            send(&app, post("/invocations", "application/octet-stream", body)).await;
        assert!(status.is_client_error(), "{name}: {status} {text}");
        error_code(&text);
    }
    let (status, _, _) = send(&app, Request::get("/ping").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, text) = send(&app, post("/invocations", "audio/wav", good)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[tokio::test]
async fn api_key_guards_inference_but_not_health() {
    let Some(e) = engine() else { return };
    let mut cfg = config();
    cfg.api_key = Some("sk-test".into());
    let app = router(AppState::new(e, cfg));
    for path in ["/ping", "/healthz", "/metrics"] {
        let (s, _, _) = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::OK, "{path}");
    }
    let (s, _, body) = send(&app, Request::get("/v1/models").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "invalid_api_key");
    let req = Request::get("/v1/models")
        .header(header::AUTHORIZATION, "Bearer sk-test")
        .body(Body::empty())
        .unwrap();
    let (s, _, body) = send(&app, req).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("whisper-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_answers_503_at_once_and_metrics_count_it() {
    let Some(e) = engine() else { return };
    let mut cfg = config();
    cfg.queue = 0;
    let app = router(AppState::new(e, cfg));
    // 24 s of speech keeps the single worker busy while the other requests arrive.
    let long = repeated_wav(8);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (app, body) = (app.clone(), long.clone());
        tasks.push(tokio::spawn(async move {
            send(&app, post("/invocations", "audio/wav", body)).await
        }));
    }
    // /ping is answered at once while the worker is busy (SageMaker's health check allows 2 s).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = std::time::Instant::now();
    let (status, _, _) = send(&app, Request::get("/ping").body(Body::empty()).unwrap()).await;
    let ping = t0.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(ping < Duration::from_millis(500), "/ping took {ping:?} with the worker busy");
    let mut ok = 0;
    let mut busy = 0;
    for t in tasks {
        let (status, headers, body) = t.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert!(headers.contains_key(header::RETRY_AFTER));
                assert_eq!(error_code(&body), "overloaded");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
    let (_, _, m) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert!(m.contains("harken_requests_total{route=\"/invocations\",status=\"503\"}"), "{m}");
    assert!(m.contains("harken_audio_seconds_total"), "{m}");
    let (_, _, m2) =
        send(&app, Request::get("/no/such/path/123").body(Body::empty()).unwrap()).await;
    let _ = m2;
    let (_, _, m) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert!(!m.contains("/no/such/path"), "raw paths must not become labels");
}

#[tokio::test]
async fn real_socket_serves_and_shuts_down_gracefully() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(e) = engine() else { return };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(harken_server::serve(listener, AppState::new(e, config()), async {
        let _ = rx.await;
    }));
    let body = wav();
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: {addr}\r\nContent-Type: audio/wav\r\nAccept: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&body).await.unwrap();
    // Ask for shutdown once the request is being processed: it must still complete.
    tokio::time::sleep(Duration::from_millis(150)).await;
    tx.send(()).unwrap();
    let mut resp = String::new();
    sock.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.to_lowercase().contains("tuesday"), "{resp}");
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn hotwords_reach_every_api_and_bad_lists_are_refused() {
    let Some(e) = engine() else { return };
    let app = router(AppState::new(e, config()));
    // OpenAI multipart (comma-separated or repeated fields).
    let (ct, body) =
        multipart(&[("hotwords", "Tuesday, Zubair"), ("hotwords", "Okonkwo")], Some(&wav()));
    let (status, _, text) = send(&app, post("/v1/audio/transcriptions", &ct, body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.to_lowercase().contains("tuesday"), "{text}");
    // SageMaker JSON and raw audio with the option in the query string.
    use base64::Engine as _;
    let json = serde_json::json!({
        "audio_base64": base64::engine::general_purpose::STANDARD.encode(wav()),
        "hotwords": ["Tuesday"],
    });
    let (status, _, text) =
        send(&app, post("/invocations", "application/json", json.to_string().into_bytes())).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, _, text) =
        send(&app, post("/invocations?hotwords=Tuesday,Zubair", "audio/wav", wav())).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // Too many, or absurdly long, hot words: 400 with the reason.
    let many = (0..101).map(|i| format!("w{i}")).collect::<Vec<_>>().join(",");
    let (status, _, text) =
        send(&app, post(&format!("/invocations?hotwords={many}"), "audio/wav", wav())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("at most 100"), "{text}");
    let (ct, body) = multipart(&[("hotwords", &"x".repeat(65))], Some(&wav()));
    let (status, _, text) = send(&app, post("/v1/audio/transcriptions", &ct, body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("longer than 64"), "{text}");
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_can_be_turned_off() {
    let Some(e) = engine() else { return };
    let app = router(AppState::new(e.clone(), config()));
    for (path, ctype, needle) in [
        ("/", "text/html", "<script src=\"/ui/app.js\""),
        ("/ui/app.js", "text/javascript", "/v1/audio/"),
        ("/ui/app.css", "text/css", "#transcript"),
    ] {
        let (status, headers, body) =
            send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with(ctype), "{path}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
        assert!(body.contains(needle), "{path}");
    }
    // Nothing of the page reaches outside the server (works offline, no CDN).
    let (_, _, html) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert!(!html.contains("http://") && !html.contains("https://"), "{html}");
    let off = router(AppState::new(e, ServerConfig { web_ui: false, ..config() }));
    for path in ["/", "/ui/app.js"] {
        let (status, _, _) = send(&off, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} with the page off");
    }
    let (status, _, _) = send(&off, Request::get("/ping").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn progress_is_reported_while_a_request_runs_and_forgotten_after() {
    let Some(e) = engine() else { return };
    let app = router(AppState::new(e, config()));
    // 16 s of speech: long enough to be seen running.
    let long = repeated_wav(5);
    let request = Request::post("/invocations")
        .header(header::CONTENT_TYPE, "audio/wav")
        .header("x-request-id", "progress-test-1")
        .body(Body::from(long))
        .unwrap();
    let task = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, request).await })
    };
    let mut seen = Vec::new();
    while !task.is_finished() {
        let (status, _, body) =
            send(&app, Request::get("/v1/progress/progress-test-1").body(Body::empty()).unwrap())
                .await;
        if status == StatusCode::OK {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            seen.push((v["state"].as_str().unwrap().to_owned(), v["total_s"].as_f64().unwrap()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _, body) = task.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        seen.iter().any(|(state, total)| state == "running" && (*total - 15.9).abs() < 0.2),
        "{seen:?}"
    );
    let (status, _, body) =
        send(&app, Request::get("/v1/progress/progress-test-1").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test]
async fn every_documented_route_exists_and_unknown_ones_get_json_errors() {
    let Some(e) = engine() else { return };
    let app = router(AppState::new(e, config()));
    let (status, headers, body) =
        send(&app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let spec: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 13, "{:?}", paths.keys());
    for (path, ops) in paths {
        let concrete = path.replace("{name}", "ep").replace("{request_id}", "none");
        for method in ops.as_object().unwrap().keys() {
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .body(Body::empty())
                .unwrap();
            let (status, _, body) = send(&app, req).await;
            let documented = ops[method]["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(status.as_str()),
                "{method} {path}: {status} is not documented ({body})"
            );
            assert!(!body.contains("no route"), "{method} {path} is documented but not routed");
        }
    }
    let (status, _, body) =
        send(&app, Request::get("/no/such/route").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let (status, _, body) =
        send(&app, Request::delete("/v1/models").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&body), "method_not_allowed");
    // A transcription request that is not multipart gets the OpenAI error shape, not axum's text.
    let (status, _, body) =
        send(&app, post("/v1/audio/transcriptions", "text/plain", b"x".to_vec())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "invalid_input");
}

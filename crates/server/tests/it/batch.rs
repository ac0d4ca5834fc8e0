//! SageMaker Batch Transform and Async Inference: `/execution-parameters`, bad records answered
//! 200 in record mode, a payload past the spool threshold transcribed from a temporary file,
//! and the queued-audio-seconds gauge.

use super::*;
use harken_server::sagemaker::Batch;

fn batch(record_errors: bool) -> ServerConfig {
    ServerConfig {
        batch: Some(Batch { max_concurrent_transforms: 3, max_payload_mb: 100, record_errors }),
        max_body_bytes: 100 << 20,
        ..config()
    }
}

async fn json(app: &axum::Router, uri: &str) -> serde_json::Value {
    let (status, _, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn execution_parameters_offer_what_the_server_takes() {
    let Some(e) = engine() else { return };
    let plain = router(AppState::new(e.clone(), config()));
    let v = json(&plain, "/execution-parameters").await;
    assert_eq!(v["BatchStrategy"], "SINGLE_RECORD");
    assert_eq!(v["MaxConcurrentTransforms"], config().workers);
    assert_eq!(v["MaxPayloadInMB"], (config().max_body_bytes >> 20).max(1));
    let v = json(&router(AppState::new(e, batch(true))), "/execution-parameters").await;
    assert_eq!(
        (v["MaxConcurrentTransforms"].as_u64(), v["MaxPayloadInMB"].as_u64()),
        (Some(3), Some(100))
    );
}

#[tokio::test]
async fn a_bad_record_is_answered_200_in_record_mode_and_4xx_otherwise() {
    let Some(e) = engine() else { return };
    let garbage = b"RIFF\x24\0\0\0WAVEfmt this is not a wave file at all".to_vec();
    let record = router(AppState::new(e.clone(), batch(true)));
    let (status, headers, body) =
        send(&record, post("/invocations", "audio/wav", garbage.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers.get("x-harken-record-error").unwrap(), "true");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        ["invalid_input", "unsupported_media"].contains(&v["error"]["code"].as_str().unwrap()),
        "{body}"
    );
    // A good record in the same mode is an ordinary transcript.
    let (status, headers, body) = send(&record, post("/invocations", "audio/wav", wav())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("x-harken-record-error").is_none());
    assert!(body.contains("Tuesday"), "{body}");

    let strict = router(AppState::new(e, batch(false)));
    let (status, _, body) = send(&strict, post("/invocations", "audio/wav", garbage)).await;
    assert!(status.is_client_error(), "{status} {body}");
}

/// The numbers clip as 48-kHz stereo float WAV (samples held, channels duplicated), `times`
/// times over: 384 kB per second of audio, so a 48-s file passes the 16-MiB spool threshold.
fn big_float_wav(times: usize) -> Vec<u8> {
    let one = wav();
    let data = one.windows(4).position(|w| w == b"data").unwrap() + 8;
    let pcm: Vec<i16> =
        one[data..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let mut samples = Vec::new();
    for _ in 0..times {
        for s in &pcm {
            let f = f32::from(*s) / 32768.0;
            for _ in 0..6 {
                samples.extend_from_slice(&f.to_le_bytes());
            }
        }
    }
    let mut w = Vec::with_capacity(samples.len() + 44);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&48_000u32.to_le_bytes());
    w.extend_from_slice(&(48_000u32 * 8).to_le_bytes());
    w.extend_from_slice(&8u16.to_le_bytes());
    w.extend_from_slice(&32u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    w.extend_from_slice(&samples);
    w
}

fn gauge(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

#[tokio::test]
async fn a_large_payload_is_spooled_and_queued_audio_is_measured_in_seconds() {
    let Some(e) = engine() else { return };
    let big = big_float_wav(15);
    assert!(big.len() > 16 << 20, "{} bytes", big.len());
    let app = router(AppState::new(e, ServerConfig { workers: 1, ..batch(true) }));
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, post("/invocations", "audio/wav", big)).await }
    });
    // While the big one holds the only worker, a second request waits with its 3.18 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = tokio::spawn({
        let app = app.clone();
        async move { send(&app, post("/invocations", "audio/wav", wav())).await }
    });
    let mut seen = None;
    for _ in 0..200 {
        let (_, _, m) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        if gauge(&m, "harken_queue_depth") >= 1.0 {
            seen = Some((
                gauge(&m, "harken_queued_audio_seconds"),
                gauge(&m, "harken_in_flight_audio_seconds"),
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (queued, in_flight) = seen.expect("the second request never queued");
    assert!((queued - 3.18).abs() < 0.05, "queued audio {queued}");
    assert!((in_flight - 47.7).abs() < 0.5, "in-flight audio {in_flight}");
    let (status, _, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Tuesday"), "{body}");
    assert_eq!(second.await.unwrap().0, StatusCode::OK);
    let (_, _, m) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(gauge(&m, "harken_queued_audio_seconds"), 0.0);
    assert_eq!(gauge(&m, "harken_in_flight_audio_seconds"), 0.0);
}

#[tokio::test]
async fn a_spooled_body_still_meets_the_body_limit() {
    let Some(e) = engine() else { return };
    let big = big_float_wav(15);
    let app = router(AppState::new(e, ServerConfig { max_body_bytes: 17 << 20, ..batch(false) }));
    let (status, _, body) = send(&app, post("/invocations", "audio/wav", big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_code(&body), "too_large");
}

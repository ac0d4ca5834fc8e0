//! harken-vad against faster-whisper's Silero VAD on a recording with pauses
//! (`testdata/vad/vad_pauses_16k.json`, written by `scripts/gen_vad_fixture.py`).

use harken_vad::{
    EndpointOptions, Region, Silero, VadEvent, VadOptions, VadStream, speech_regions,
};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The installed Silero weights, or `None` after a SKIP notice (a failure under `CI=true`).
fn model() -> Option<Silero> {
    let path = std::env::var_os("HARKEN_VAD_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("HARKEN_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/harken")
        });
        cache.join("models/silero-vad").join(harken_vad::WEIGHTS_FILE)
    });
    if !path.exists() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "CI=true: Silero VAD is not installed (scripts/install-models.sh vad)");
        eprintln!("SKIP: {} missing (scripts/install-models.sh vad)", path.display());
        return None;
    }
    Some(Silero::load(&path).expect("weights load"))
}

fn golden() -> serde_json::Value {
    let text =
        std::fs::read_to_string(root().join("testdata/vad/vad_pauses_16k.json")).expect("golden");
    serde_json::from_str(&text).expect("golden json")
}

fn samples() -> Vec<f32> {
    let audio = harken_audio::decode_file(
        &root().join("testdata/audio/vad_pauses_16k.wav"),
        &harken_audio::DecodeOptions::whisper(),
    )
    .expect("decode");
    assert_eq!(audio.sample_rate_hz, 16_000);
    audio.samples
}

#[test]
fn probabilities_match_faster_whisper_chunk_by_chunk() {
    let Some(model) = model() else { return };
    let g = golden();
    let want: Vec<f32> = g["probs"]
        .as_array()
        .expect("probs")
        .iter()
        .map(|v| v.as_f64().expect("f64") as f32)
        .collect();
    let got = model.probs(&samples());
    assert_eq!(got.len(), want.len());
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "largest probability difference {worst}");
    let agree = got.iter().zip(&want).filter(|(a, b)| (**a >= 0.5) == (**b >= 0.5)).count();
    assert_eq!(agree, want.len(), "speech/non-speech decisions differ");
}

#[test]
fn regions_match_faster_whisper_for_each_option_set() {
    let Some(model) = model() else { return };
    let g = golden();
    let audio = samples();
    let probs = model.probs(&audio);
    for (name, case) in g["regions"].as_object().expect("regions") {
        let o = &case["options"];
        let d = VadOptions::default();
        let opts = VadOptions {
            min_silence_duration_ms: o["min_silence_duration_ms"]
                .as_u64()
                .map_or(d.min_silence_duration_ms, |v| v as u32),
            speech_pad_ms: o["speech_pad_ms"].as_u64().map_or(d.speech_pad_ms, |v| v as u32),
            min_speech_duration_ms: o["min_speech_duration_ms"]
                .as_u64()
                .map_or(d.min_speech_duration_ms, |v| v as u32),
            ..d
        };
        let want: Vec<Region> = case["regions"]
            .as_array()
            .expect("list")
            .iter()
            .map(|r| Region {
                start: r["start"].as_u64().expect("start") as usize,
                end: r["end"].as_u64().expect("end") as usize,
            })
            .collect();
        assert_eq!(speech_regions(&probs, audio.len(), &opts), want, "option set {name}");
    }
}

#[test]
fn streaming_in_odd_pieces_finds_both_utterances() {
    let Some(model) = model() else { return };
    let audio = samples();
    let mut stream = VadStream::new(&model, EndpointOptions::default());
    let mut events = Vec::new();
    for piece in audio.chunks(777) {
        events.extend(stream.push(piece));
    }
    events.extend(stream.finish());
    let starts: Vec<u64> = events
        .iter()
        .filter_map(|e| if let VadEvent::SpeechStarted { at } = e { Some(*at) } else { None })
        .collect();
    let stops: Vec<u64> = events
        .iter()
        .filter_map(|e| if let VadEvent::SpeechStopped { at } = e { Some(*at) } else { None })
        .collect();
    assert_eq!((starts.len(), stops.len()), (2, 2), "{events:?}");
    // The first sentence starts near 1.5 s and the second near 1.5 + 2.8 + 2.5 = 6.8 s.
    let s = |at: u64| at as f64 / 16_000.0;
    assert!((s(starts[0]) - 1.2).abs() < 0.4, "{events:?}");
    assert!((s(starts[1]) - 6.5).abs() < 0.5, "{events:?}");
    assert!(s(stops[0]) > 3.8 && s(stops[0]) < 4.6, "{events:?}");
}

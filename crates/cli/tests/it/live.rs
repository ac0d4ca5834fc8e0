//! Voice activity detection, invented text and live captions, through the real binary.
//!
//! The non-speech set is generated here (white noise, a steady tone, a two-tone telephone
//! signal, digital silence, and speech with a 20-s pause of faint noise) so that it needs no
//! shared data; `bench/hallucination.py` runs the larger sox-rendered set with rates.

use crate::{harken, read_wav16, stdout, testdata, transcribe, wav16};

fn vad_model_installed() -> bool {
    let p = crate::cache_dir().join("models/silero-vad/silero_vad_16k_op15.onnx");
    if !p.exists() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true: Silero VAD is not installed"
        );
        eprintln!("SKIP: {} missing (scripts/install-models.sh vad)", p.display());
        return false;
    }
    true
}

/// A deterministic noise source (xorshift), uniform in [-amp, amp].
fn noise(seconds: f32, amp: f32, mut seed: u32) -> Vec<f32> {
    (0..(seconds * 16_000.0) as usize)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

fn tone(seconds: f32, hz: &[f32], amp: f32) -> Vec<f32> {
    (0..(seconds * 16_000.0) as usize)
        .map(|i| {
            hz.iter().map(|f| (i as f32 / 16_000.0 * f * std::f32::consts::TAU).sin()).sum::<f32>()
                * amp
        })
        .collect()
}

fn write(dir: &std::path::Path, name: &str, samples: &[f32]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, wav16(samples)).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn vad_finds_the_two_sentences_and_nothing_in_silence() {
    if !vad_model_installed() {
        return;
    }
    let pauses = testdata("vad_pauses_16k.wav");
    let out =
        harken(&["vad", pauses.to_str().unwrap(), testdata("silence_2s.wav").to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let regions = lines[0]["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2, "{}", lines[0]);
    assert!(
        regions[0]["start"].as_f64().unwrap() > 0.9 && regions[1]["start"].as_f64().unwrap() > 6.0
    );
    assert_eq!(lines[1]["regions"].as_array().unwrap().len(), 0);
}

#[test]
fn vad_keeps_times_on_the_original_recording() {
    if !vad_model_installed() {
        return;
    }
    let Some(m) = crate::model("tiny.en") else { return };
    let pauses = testdata("vad_pauses_16k.wav");
    let out = transcribe(
        &m.to_string_lossy(),
        &["--vad", "--vad-min-silence-ms", "500", "-f", "verbose_json", pauses.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let segs = v["segments"].as_array().unwrap();
    let text = v["text"].as_str().unwrap().to_lowercase();
    assert!(text.contains("tuesday") && text.contains("lazy"), "{text}");
    // Speech starts 1.5 s in: without the map back, the first segment would start at 0.
    assert!(segs[0]["start"].as_f64().unwrap() > 1.0, "{}", segs[0]);
    assert!((v["duration"].as_f64().unwrap() - 11.18).abs() < 0.05);
}

#[test]
fn no_invented_text_on_noise_tones_and_silence_with_vad() {
    if !vad_model_installed() {
        return;
    }
    let Some(m) = crate::model("tiny.en") else { return };
    let dir = tempfile::tempdir().unwrap();
    let speech = read_wav16(&testdata("numbers_16k.wav"));
    let mut paused = speech.clone();
    paused.extend(noise(20.0, 0.003, 7));
    paused.extend(&speech);
    let files = [
        write(dir.path(), "silence.wav", &vec![0.0; 30 * 16_000]),
        write(dir.path(), "white.wav", &noise(30.0, 0.05, 1)),
        write(dir.path(), "tone.wav", &tone(30.0, &[440.0], 0.3)),
        write(dir.path(), "dial.wav", &tone(30.0, &[350.0, 440.0], 0.15)),
        write(dir.path(), "paused.wav", &paused),
    ];
    let out_dir = dir.path().join("out");
    let mut args = vec!["--vad", "-f", "text", "-o", out_dir.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let out = transcribe(&m.to_string_lossy(), &args);
    assert!(out.status.success(), "{out:?}");
    for name in ["silence", "white", "tone", "dial"] {
        let text = std::fs::read_to_string(out_dir.join(format!("{name}.txt"))).unwrap();
        assert!(text.trim().is_empty(), "{name}: invented {text:?}");
    }
    let text = std::fs::read_to_string(out_dir.join("paused.txt")).unwrap().to_lowercase();
    assert_eq!(
        text.matches("tuesday").count(),
        2,
        "both sentences, nothing in the pause: {text:?}"
    );
    let words = text.split_whitespace().count();
    assert!(words <= 16, "two 7-word sentences, at most a word of slack each: {text:?}");
}

#[test]
fn listen_prints_partials_and_finals_as_jsonl() {
    if !vad_model_installed() {
        return;
    }
    let Some(m) = crate::model("tiny.en") else { return };
    let pauses = testdata("vad_pauses_16k.wav");
    let out = harken(&[
        "listen",
        "--model",
        &m.to_string_lossy(),
        "--file",
        pauses.to_str().unwrap(),
        "--fast",
        "--format",
        "jsonl",
    ]);
    assert!(out.status.success(), "{out:?}");
    let events: Vec<serde_json::Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let finals: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "final")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(finals.len(), 2, "{events:?}");
    assert!(finals[1].to_lowercase().contains("tuesday"), "{finals:?}");
    // Per utterance, the partial deltas are a prefix of (or equal to) the final text.
    for (item, fin) in finals.iter().enumerate() {
        let joined: String = events
            .iter()
            .filter(|e| e["type"] == "partial" && e["item"] == item)
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert!(fin.starts_with(joined.trim()), "{joined:?} vs {fin:?}");
    }
    let m2 = harken(&["listen", "--model", &m.to_string_lossy()]);
    assert!(
        !m2.status.success() && crate::stderr(&m2).contains("--file"),
        "no microphone: a clear error"
    );
}

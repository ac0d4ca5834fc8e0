//! Integration tests of `harken-audio` through its public API: every supported encoding of the
//! fixture decodes to the same 16-kHz signal, and a corpus of malformed inputs gives clear
//! errors, never a panic or a hang.

// Test helpers outside #[test] fns: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used)]

mod malformed;
mod mutations;

use std::path::{Path, PathBuf};

use harken_audio::{DecodeOptions, decode_file};

pub(crate) fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/audio").join(name)
}

fn decode(name: &str) -> Vec<f32> {
    let a = decode_file(&testdata(name), &DecodeOptions::whisper())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(a.sample_rate_hz, 16_000);
    a.samples
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// Normalised cross-correlation at the best lag within ±`max_lag` samples.
fn best_correlation(a: &[f32], b: &[f32], max_lag: isize) -> (f32, isize) {
    let n = a.len().min(b.len()) as isize;
    let mut best = (f32::MIN, 0);
    for lag in -max_lag..=max_lag {
        let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
        for i in max_lag..n - max_lag {
            let (x, y) = (a[i as usize] as f64, b[(i + lag) as usize] as f64);
            dot += x * y;
            na += x * x;
            nb += y * y;
        }
        let c = (dot / (na.sqrt() * nb.sqrt()).max(1e-12)) as f32;
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

#[test]
fn every_encoding_decodes_to_the_same_signal() {
    let reference = decode("speech_16k_s16.wav");
    assert_eq!(reference.len(), 44_800, "2.8 s at 16 kHz");
    // Full-length encodings: the whole sentence.
    for (name, min_corr) in [
        ("speech.flac", 0.999),
        ("speech.ogg", 0.95),
        ("speech.mp3", 0.95),
        ("speech.m4a", 0.95),
        ("speech.opus", 0.90),
        ("speech.webm", 0.90),
        ("speech_8k_u8.wav", 0.90),
    ] {
        let x = decode(name);
        let len_diff = (x.len() as isize - reference.len() as isize).abs();
        assert!(len_diff < 2_000, "{name}: {} samples vs {}", x.len(), reference.len());
        let (c, lag) = best_correlation(&reference[..40_000], &x[..40_000.min(x.len())], 40);
        assert!(c > min_corr, "{name}: correlation {c} at lag {lag}");
        // Encoder delay (AAC priming, Opus pre-skip) must be trimmed, or word times drift.
        assert!(lag.abs() <= 8, "{name}: misaligned by {lag} samples");
    }
    // 0.5-s excerpts at other rates, depths and channel counts.
    for name in [
        "speech_44k_stereo_s24.wav",
        "speech_48k_f32.wav",
        "speech_22k_s32.wav",
        "speech_96k_s16.wav",
    ] {
        let x = decode(name);
        assert!((x.len() as isize - 8_000).abs() <= 2, "{name}: {} samples", x.len());
        let (c, lag) = best_correlation(&reference[..8_000], &x, 8);
        assert!(c > 0.98, "{name}: correlation {c} at lag {lag}");
        assert!(lag.abs() <= 1, "{name}: misaligned by {lag} samples");
        let r = rms(&x) / rms(&reference[..8_000]);
        assert!((0.9..1.1).contains(&r), "{name}: level ratio {r}");
    }
}

#[test]
fn a_chromium_media_recorder_file_decodes() {
    // Live WebM: clusters of unknown size, no duration, no cues; 48 kHz Opus. Recorded for
    // 3.6 s by the browser test from a fake microphone playing numbers_16k.wav in a loop.
    let x = decode("numbers_chromium.webm");
    let secs = x.len() as f32 / 16_000.0;
    assert!((3.0..4.5).contains(&secs), "{secs} s");
    let reference = decode("numbers_16k.wav");
    let r = rms(&x) / rms(&reference);
    assert!((0.3..3.0).contains(&r), "level ratio {r}");
}

#[test]
fn digital_silence_decodes_to_zeros() {
    let x = decode("silence_2s.wav");
    assert_eq!(x.len(), 32_000);
    assert!(x.iter().all(|&v| v == 0.0));
}

#[test]
fn duration_limit_is_enforced_while_decoding() {
    let opts = DecodeOptions { target_rate_hz: 16_000, max_duration_s: Some(1.0) };
    let err = decode_file(&testdata("speech_16k_s16.wav"), &opts).unwrap_err();
    assert_eq!(err.kind(), harken_core::ErrorKind::TooLarge, "{err}");
}

#[test]
fn missing_file_is_not_found() {
    let err = decode_file(Path::new("/nonexistent/x.wav"), &DecodeOptions::whisper()).unwrap_err();
    assert_eq!(err.kind(), harken_core::ErrorKind::NotFound);
}

#[test]
fn the_bytes_decide_the_format_not_the_name() {
    let reference = decode("speech.m4a").len();
    for (file, wrong_hint) in
        [("speech.m4a", "wav"), ("speech.webm", "mp3"), ("speech.opus", "m4a")]
    {
        let bytes = std::fs::read(testdata(file)).unwrap();
        let a = harken_audio::decode_bytes(bytes, Some(wrong_hint), &DecodeOptions::whisper())
            .unwrap_or_else(|e| panic!("{file} hinted as {wrong_hint}: {e}"));
        assert!((a.samples.len() as isize - reference as isize).abs() < 2_000, "{file}");
    }
}

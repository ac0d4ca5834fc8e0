//! The log-mel front end against faster-whisper's own `FeatureExtractor` on the same samples
//! (fixture made by `scripts/gen_mel_fixture.py`).

// Test helpers outside #[test] fns: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use harken_features::LogMel;

fn read_f32(name: &str) -> Vec<f32> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/features").join(name);
    let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Tolerance: faster-whisper computes in float32 with numpy's FFT; the mel values are scaled log10
/// magnitudes in roughly [-1, 2], so 1e-3 absolute is about 0.04 dB of power.
const TOLERANCE: f32 = 1e-3;

#[test]
fn matches_faster_whisper_feature_extractor() {
    let pcm = read_f32("speech_16k_s16.pcm.f32");
    let reference = read_f32("speech_16k_s16.mel80.f32");
    // faster-whisper pads 160 zero samples (one hop) and drops the last STFT frame.
    let mel = LogMel::new(80).compute(&pcm, 160);
    assert_eq!(mel.n_frames * 80, reference.len(), "frames: {}", mel.n_frames);
    let mut worst = (0.0f32, 0usize);
    let mut sum = 0.0f64;
    for (i, (a, b)) in mel.data.iter().zip(&reference).enumerate() {
        let d = (a - b).abs();
        sum += f64::from(d);
        if d > worst.0 {
            worst = (d, i);
        }
    }
    let mean = sum / reference.len() as f64;
    assert!(
        worst.0 < TOLERANCE,
        "max |diff| {} at mel {} frame {}",
        worst.0,
        worst.1 / mel.n_frames,
        worst.1 % mel.n_frames
    );
    assert!(mean < 1e-5, "mean |diff| {mean}");
}

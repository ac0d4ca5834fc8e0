//! The `.tflite` reader and the DeepSpeech graph walk: refusals with a reason on malformed
//! files (made up, then the real Coqui STT model truncated and corrupted), and the sizes read
//! from the real model's shapes.

use std::path::{Path, PathBuf};

use harken_model::DeepSpeech;

/// The Coqui STT model `scripts/install-deepspeech.sh` installs, or `None` after a SKIP line
/// (a failure under `CI=true`).
fn armspeech() -> Option<PathBuf> {
    let base = std::env::var_os("HARKEN_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/harken")
    });
    let path = base.join("deepspeech/armspeech/model.tflite");
    if path.is_file() {
        return Some(path);
    }
    let msg = format!("{} not installed (run scripts/install-deepspeech.sh)", path.display());
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true: {msg}");
    eprintln!("\n*** SKIP real-model test: {msg} ***\n");
    None
}

fn load(bytes: &[u8]) -> Result<DeepSpeech, String> {
    DeepSpeech::from_bytes(Path::new("test.tflite"), bytes).map_err(|e| e.to_string())
}

#[test]
fn made_up_files_are_refused_with_a_reason() {
    let short = load(b"TFL3").unwrap_err();
    assert!(short.contains("too short"), "{short}");
    let mut wrong = vec![0u8; 64];
    wrong[4..8].copy_from_slice(b"ONNX");
    let e = load(&wrong).unwrap_err();
    assert!(e.contains("TFL3"), "{e}");
    let mut past = vec![0u8; 64];
    past[..4].copy_from_slice(&1000u32.to_le_bytes());
    past[4..8].copy_from_slice(b"TFL3");
    let e = load(&past).unwrap_err();
    assert!(e.contains("past the end"), "{e}");
}

#[test]
fn the_real_model_gives_its_sizes_and_metadata() {
    let Some(path) = armspeech() else { return };
    let m = DeepSpeech::load(&path).unwrap();
    let d = m.dims();
    assert_eq!(
        (d.n_steps, d.n_context, d.n_features, d.n_cell, d.n_classes),
        (16, 9, 26, 2048, 41)
    );
    let meta = m.metadata();
    assert_eq!((meta.sample_rate, meta.win_len_ms, meta.win_step_ms), (16_000, 32, 20));
    assert_eq!(meta.beam_width, 500);
    assert_eq!(meta.alphabet.len(), 40);
    assert!(meta.alphabet.iter().any(|l| l == " "), "{:?}", meta.alphabet);
    assert!(m.is_int8());
    let p = m.mfcc_params();
    assert_eq!((p.window, p.stride, p.channels, p.coefficients), (512, 320, 40, 26));
    assert_eq!((p.lower_hz, p.upper_hz), (20.0, 8000.0));
}

#[test]
fn truncated_and_corrupted_real_models_are_errors_not_panics() {
    let Some(path) = armspeech() else { return };
    let bytes = std::fs::read(&path).unwrap();
    // Truncations: the flatbuffer's tables sit at both ends of the file.
    let cuts = (0..40).map(|i| bytes.len() * i / 40).chain([8, 100, 4096, bytes.len() - 1]);
    for cut in cuts {
        let r = std::panic::catch_unwind(|| load(&bytes[..cut]));
        match r {
            Ok(Err(_)) => {}
            Ok(Ok(_)) => panic!("a model cut to {cut} bytes loaded"),
            Err(_) => panic!("a model cut to {cut} bytes panicked"),
        }
    }
    // Byte flips in the first and last 64 KiB (tables, vtables, offsets, shapes, metadata):
    // an error or a model, never a panic. A simple xorshift keeps the positions reproducible.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut copy = bytes.clone();
    let (mut errors, mut loaded) = (0, 0);
    for _ in 0..150 {
        let r = next() as usize % (128 * 1024);
        let at = if r < 64 * 1024 { r } else { bytes.len() - 1 - (r - 64 * 1024) };
        let old = copy[at];
        copy[at] ^= (next() as u8) | 1;
        match std::panic::catch_unwind(|| load(&copy)) {
            Ok(Ok(_)) => loaded += 1,
            Ok(Err(_)) => errors += 1,
            Err(_) => panic!("flipping byte {at} panicked"),
        }
        copy[at] = old;
    }
    assert!(errors > 0, "no corruption was noticed ({loaded} loaded)");
}

/// Every input the `deepspeech_model` fuzz target ever crashed on (`fuzz/regressions/`, first
/// byte picks `.tflite` or `.pbmm` as in the target) is refused with an error, not a panic.
#[test]
fn fuzz_regressions_are_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/deepspeech_model");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let Some((&pick, rest)) = bytes.split_first() else { continue };
        let name = if pick & 1 == 0 { "model.tflite" } else { "model.pbmm" };
        assert!(harken_model::DeepSpeech::from_bytes(std::path::Path::new(name), rest).is_err());
        n += 1;
    }
    assert!(n >= 1, "no regression inputs in {}", dir.display());
}

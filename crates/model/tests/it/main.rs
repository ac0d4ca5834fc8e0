//! `harken-model` against the real model files installed by `scripts/install-models.sh`:
//! the CTranslate2 parser on the real `model.bin`, and the Hugging Face safetensors path checked
//! against it by converting tiny.en to HF names and comparing logits.
//!
//! Without the models the tests print a loud SKIP line; under `CI=true` they fail.

// Test helpers outside #[test] fns: a failed unwrap is a failed test, which is the point.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use harken_model::{Ct2Dtype, Ct2File, Precision, Whisper};

fn model(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("HARKEN_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/harken")
    });
    let dir = base.join("models").join(format!("whisper-{name}"));
    if dir.join("model.bin").is_file() {
        return Some(dir);
    }
    let msg = format!(
        "model {name} not installed at {} (run scripts/install-models.sh all)",
        dir.display()
    );
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true: {msg}");
    eprintln!("\n*** SKIP real-model test: {msg} ***\n");
    None
}

#[test]
fn parses_the_real_base_model_bin() {
    let Some(dir) = model("base") else { return };
    let f = Ct2File::open(&dir.join("model.bin")).unwrap();
    assert_eq!(f.spec, "WhisperSpec");
    let names = f.names();
    assert_eq!(names.len(), 212);
    assert_eq!(f.int_scalar("encoder/num_heads"), Some(8));
    // The output projection is an alias of the embedding.
    let (emb, _) = f.var("decoder/embeddings/weight").unwrap();
    assert_eq!(emb.shape, vec![51_865, 512]);
    assert_eq!(emb.dtype, Ct2Dtype::F16);
    let (proj, _) = f.var("decoder/projection/weight").unwrap();
    assert_eq!(proj.range, emb.range);
    // The key-bias slot of every fused projection is zero (Whisper has no k bias).
    let (_, b) = f.var("encoder/layer_0/self_attention/linear_0/bias").unwrap();
    assert!(b[1024..2048].iter().all(|&x| x == 0));
}

/// Split CTranslate2's fused tensors back into Hugging Face `WhisperForConditionalGeneration`
/// names: the inverse of the mapping `harken-model` applies when it reads safetensors.
fn to_hf(f: &Ct2File) -> HashMap<String, Tensor> {
    let mut out = HashMap::new();
    for name in f.names() {
        let (var, bytes) = f.var(name).unwrap();
        if var.shape.is_empty() || var.dtype != Ct2Dtype::F16 {
            continue;
        }
        let t = Tensor::from_raw_buffer(bytes, DType::F16, &var.shape, &Device::Cpu).unwrap();
        let parts: Vec<&str> = name.split('/').collect();
        let side = parts[0];
        let root = format!("model.{side}");
        let wb = |s: &str| match s {
            "gamma" => "weight".to_owned(),
            "beta" => "bias".to_owned(),
            o => o.to_owned(),
        };
        let mut put = |k: String, v: Tensor| {
            out.insert(k, v);
        };
        match &parts[1..] {
            [c @ ("conv1" | "conv2"), w] => put(format!("{root}.{c}.{w}"), t),
            ["position_encodings", _] => put(format!("{root}.embed_positions.weight"), t),
            ["embeddings", _] => put(format!("{root}.embed_tokens.weight"), t),
            ["layer_norm", g] => put(format!("{root}.layer_norm.{}", wb(g)), t),
            [layer, block, rest @ ..] => {
                let p = format!("{root}.layers.{}", &layer["layer_".len()..]);
                let d = var.shape[0];
                match (*block, rest) {
                    ("self_attention", ["layer_norm", g]) => {
                        put(format!("{p}.self_attn_layer_norm.{}", wb(g)), t)
                    }
                    ("attention", ["layer_norm", g]) => {
                        put(format!("{p}.encoder_attn_layer_norm.{}", wb(g)), t)
                    }
                    ("ffn", ["layer_norm", g]) => put(format!("{p}.final_layer_norm.{}", wb(g)), t),
                    ("ffn", ["linear_0", w]) => put(format!("{p}.fc1.{w}"), t),
                    ("ffn", ["linear_1", w]) => put(format!("{p}.fc2.{w}"), t),
                    ("self_attention", ["linear_0", w]) => {
                        let n = d / 3;
                        put(format!("{p}.self_attn.q_proj.{w}"), t.narrow(0, 0, n).unwrap());
                        if *w == "weight" {
                            put(format!("{p}.self_attn.k_proj.weight"), t.narrow(0, n, n).unwrap());
                        }
                        put(format!("{p}.self_attn.v_proj.{w}"), t.narrow(0, 2 * n, n).unwrap());
                    }
                    ("self_attention", ["linear_1", w]) => {
                        put(format!("{p}.self_attn.out_proj.{w}"), t)
                    }
                    ("attention", ["linear_0", w]) => {
                        put(format!("{p}.encoder_attn.q_proj.{w}"), t)
                    }
                    ("attention", ["linear_1", w]) => {
                        let n = d / 2;
                        if *w == "weight" {
                            put(
                                format!("{p}.encoder_attn.k_proj.weight"),
                                t.narrow(0, 0, n).unwrap(),
                            );
                        }
                        put(format!("{p}.encoder_attn.v_proj.{w}"), t.narrow(0, n, n).unwrap());
                    }
                    ("attention", ["linear_2", w]) => {
                        put(format!("{p}.encoder_attn.out_proj.{w}"), t)
                    }
                    other => panic!("unmapped {name}: {other:?}"),
                }
            }
            other => panic!("unmapped {name}: {other:?}"),
        }
    }
    out
}

fn logits(m: &Whisper) -> Vec<f32> {
    let d = m.dims();
    // A deterministic, speech-like-range input: the encoder does not care what it means.
    let mel: Vec<f32> =
        (0..d.n_mels * d.n_mel_frames()).map(|i| ((i as f32 * 0.37).sin() * 0.8) - 0.2).collect();
    let enc = m.encode(&mel).unwrap();
    let mut s = m.decoder(&enc, 1).unwrap();
    // <|startoftranscript|> of tiny.en, then " The".
    s.step(&[&[50_257, 383]], &[0, 1]).unwrap().into_vec()
}

#[test]
fn safetensors_layout_matches_ctranslate2() {
    let Some(dir) = model("tiny.en") else { return };
    let ct2 = Ct2File::open(&dir.join("model.bin")).unwrap();
    let hf = to_hf(&ct2);
    assert!(hf.contains_key("model.decoder.layers.0.encoder_attn.k_proj.weight"));
    assert!(!hf.contains_key("model.encoder.layers.0.self_attn.k_proj.bias"));
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("model.safetensors");
    candle_core::safetensors::save(&hf, &st).unwrap();
    let a = Whisper::load_ct2(&dir.join("model.bin"), Precision::F32).unwrap();
    let b = Whisper::load_safetensors(&st, Some(6), Some(6), Precision::F32).unwrap();
    assert_eq!(a.dims(), b.dims());
    let (la, lb) = (logits(&a), logits(&b));
    let max = la.iter().zip(&lb).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max < 1e-4, "logits differ by {max}");
}

#[test]
fn int8_weights_stay_close_to_f32() {
    let Some(dir) = model("tiny.en") else { return };
    let a = Whisper::load_ct2(&dir.join("model.bin"), Precision::F32).unwrap();
    let b = Whisper::load_ct2(&dir.join("model.bin"), Precision::Q8).unwrap();
    let (la, lb) = (logits(&a), logits(&b));
    let argmax = |v: &[f32]| v.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).map(|(i, _)| i);
    let vocab = la.len() / 2;
    for p in 0..2 {
        assert_eq!(
            argmax(&la[p * vocab..(p + 1) * vocab]),
            argmax(&lb[p * vocab..(p + 1) * vocab]),
            "position {p}"
        );
    }
}

//! Package round trips on a synthetic model directory: pack, open, verify, tamper, reject.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use harken_package::{Error, MLMODEL, PackOptions, Package, pack, parse_manifest};

fn fake_model(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("model.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
    std::fs::write(dir.join("config.json"), br#"{"num_mel_bins": 128}"#).unwrap();
    std::fs::write(dir.join("sub/extra.txt"), b"x").unwrap();
    std::fs::write(dir.join(".hidden"), b"skip me").unwrap();
}

fn packed(tmp: &Path) -> Package {
    fake_model(&tmp.join("src"));
    let opts =
        PackOptions { name: Some("m".into()), created_unix_s: Some(0), ..Default::default() };
    pack(&tmp.join("src"), &tmp.join("pkg"), &opts, &mut |_, _| {}).unwrap()
}

#[test]
fn pack_lists_every_file_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let p = packed(tmp.path());
    let paths: Vec<_> = p.flavor().files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["config.json", "model.bin", "sub/extra.txt", "tokenizer.json"]);
    assert_eq!(p.flavor().frontend.n_mels, 128);
    assert_eq!(p.flavor().family.name(), "whisper");
    p.verify(&mut |_, _| {}).unwrap();
    // Reproducible: the same inputs give the same digest.
    let again = pack(
        &tmp.path().join("src"),
        &tmp.path().join("pkg2"),
        &PackOptions { name: Some("m".into()), created_unix_s: Some(0), ..Default::default() },
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(p.digest(), again.digest());
}

#[test]
fn manifest_is_plain_yaml_without_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let p = packed(tmp.path());
    let text = std::fs::read_to_string(p.dir().join(MLMODEL)).unwrap();
    assert!(!text.contains('!'), "YAML tags break MLflow's safe_load:\n{text}");
    assert!(text.contains("kind: whisper"), "{text}");
}

#[test]
fn tampering_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let p = packed(tmp.path());
    let f = p.dir().join("model.bin");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&f, &bytes).unwrap();
    assert!(matches!(p.verify(&mut |_, _| {}), Err(Error::DigestMismatch { .. })));
    std::fs::write(&f, &bytes[..10]).unwrap();
    assert!(matches!(Package::open(p.dir()), Err(Error::SizeMismatch { .. })));
    std::fs::remove_file(&f).unwrap();
    assert!(matches!(Package::open(p.dir()), Err(Error::Missing { .. })));
}

#[test]
fn bad_manifests_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = packed(tmp.path());
    let good = std::fs::read_to_string(p.dir().join(MLMODEL)).unwrap();
    let cases = [
        (good.replace("schema_version: 1", "schema_version: 9"), "schema_version 9"),
        (good.replace("path: model.bin", "path: ../model.bin"), "not a plain relative path"),
        (good.replace("name: m", "name: m\n    nmae: typo"), "unknown field"),
        (good.replace("weights: model.bin", "weights: other.bin"), "not in files"),
        ("- a list\n".to_owned(), "flavors.harken"),
        (String::new(), "flavors.harken"),
        ("flavors: {harken: [".to_owned(), "not valid YAML"),
    ];
    for (text, want) in cases {
        let err = parse_manifest(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(want), "{want:?} not in {err:?}");
    }
}

#[test]
fn other_flavors_and_keys_survive_a_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let p = packed(tmp.path());
    let text = std::fs::read_to_string(p.dir().join(MLMODEL)).unwrap();
    let text = format!("{text}mlflow_version: 3.1.0\nsignature: {{inputs: '[]'}}\n")
        .replace("flavors:\n", "flavors:\n  python_function: {loader_module: x}\n");
    let m = parse_manifest(text.as_bytes()).unwrap();
    assert!(m.flavors.other.contains_key("python_function"));
    assert!(m.other.contains_key("mlflow_version"));
}

/// Deterministic mutants of a real manifest (byte flips, truncations, splices): parsing returns
/// `Ok` or an error, never panics.
#[test]
fn mutated_manifests_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let p = packed(tmp.path());
    let good = std::fs::read(p.dir().join(MLMODEL)).unwrap();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..2000 {
        let mut m = good.clone();
        match i % 4 {
            0 => {
                let at = next() as usize % m.len();
                m[at] = next() as u8;
            }
            1 => m.truncate(next() as usize % m.len()),
            2 => {
                let at = next() as usize % m.len();
                let from = next() as usize % good.len();
                m.splice(at..at, good[from..].iter().take(40).copied());
            }
            _ => {
                for _ in 0..8 {
                    let at = next() as usize % m.len();
                    m[at] = b"{}[]:-!&*\n '\""[next() as usize % 13];
                }
            }
        }
        let r = std::panic::catch_unwind(|| parse_manifest(&m).map(|_| ()));
        assert!(r.is_ok(), "mutant {i} panicked:\n{}", String::from_utf8_lossy(&m));
    }
}

/// A CTC model directory: a safetensors file whose header names an 80-mel first convolution,
/// an alphabet, an LM and a trie (contents are not parsed by packing).
fn fake_ctc_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let header =
        r#"{"encoder/conv1/weight":{"dtype":"F32","shape":[2,80,3],"data_offsets":[0,1920]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header.as_bytes());
    st.extend_from_slice(&[0u8; 1920]);
    std::fs::write(dir.join("acoustic.safetensors"), st).unwrap();
    std::fs::write(dir.join("alphabet.txt"), " \na\nb\n").unwrap();
    std::fs::write(dir.join("lm.bin"), b"lm").unwrap();
    std::fs::write(dir.join("vocab.trie"), b"trie").unwrap();
    std::fs::write(dir.join("encoder.json"), r#"{"package":"whisper-base","weights_sha256":"ab"}"#)
        .unwrap();
}

#[test]
fn ctc_directories_pack_as_the_ctc_family() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ctc");
    fake_ctc_model(&src);
    let opts = PackOptions {
        decoding: harken_package::Decoding {
            lm_alpha: Some(0.7),
            lm_beta: Some(1.5),
            ..Default::default()
        },
        ..PackOptions::default()
    };
    let pkg = pack(&src, &tmp.path().join("pkg"), &opts, &mut |_, _| {}).unwrap();
    let f = pkg.flavor();
    assert_eq!(f.frontend.n_mels, 80);
    match &f.family {
        harken_package::Family::Ctc { acoustic_model, encoder, alphabet, language_model, trie } => {
            assert_eq!(acoustic_model, "acoustic.safetensors");
            assert_eq!(alphabet, "alphabet.txt");
            assert_eq!(language_model.as_deref(), Some("lm.bin"));
            assert_eq!(trie.as_deref(), Some("vocab.trie"));
            assert_eq!(encoder.as_ref().map(|e| e.package.as_str()), Some("whisper-base"));
        }
        other => panic!("family {other:?}"),
    }
    pkg.verify(&mut |_, _| {}).unwrap();
    // Tuning rewrites the defaults and nothing else; the package still verifies.
    let before = pkg.digest().to_owned();
    let tuned = pkg
        .set_decoding(harken_package::Decoding { lm_alpha: Some(0.4), ..f.decoding.clone() })
        .unwrap();
    assert_eq!(tuned.flavor().decoding.lm_alpha, Some(0.4));
    assert_eq!(tuned.flavor().decoding.lm_beta, Some(1.5));
    assert_ne!(tuned.digest(), before);
    tuned.verify(&mut |_, _| {}).unwrap();
    // Without an alphabet it is not a model.
    std::fs::remove_file(src.join("alphabet.txt")).unwrap();
    let err =
        pack(&src, &tmp.path().join("pkg2"), &PackOptions::default(), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("alphabet.txt"), "{err}");
}

#[test]
fn deepspeech_files_pack_as_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("output_graph.tflite");
    let scorer = tmp.path().join("kenlm.scorer");
    std::fs::write(&model, vec![3u8; 5000]).unwrap();
    std::fs::write(&scorer, vec![4u8; 700]).unwrap();
    let opts = PackOptions { created_unix_s: Some(0), ..Default::default() };
    let out = tmp.path().join("pkg");
    let p = harken_package::pack_deepspeech(&model, Some(&scorer), 40, &out, &opts, &mut |_, _| {})
        .unwrap();
    let f = p.flavor();
    assert_eq!(f.name, "deepspeech-output_graph");
    assert_eq!(
        f.family,
        harken_package::Family::Deepspeech {
            acoustic_model: "output_graph.tflite".into(),
            scorer: Some("kenlm.scorer".into()),
        }
    );
    assert_eq!(f.frontend.n_mels, 40);
    p.verify(&mut |_, _| {}).unwrap();
    let yaml = std::fs::read_to_string(out.join(MLMODEL)).unwrap();
    assert!(yaml.contains("kind: deepspeech"), "{yaml}");
    assert_eq!(parse_manifest(yaml.as_bytes()).unwrap().flavors.harken.family, f.family);

    // Wrong kinds of file, and a missing clip: errors, and no directory left behind.
    let bad = tmp.path().join("bad");
    let e = harken_package::pack_deepspeech(&scorer, None, 40, &bad, &opts, &mut |_, _| {});
    assert!(matches!(e, Err(Error::NotAModel { .. })), "{e:?}");
    let e = harken_package::pack_deepspeech(&model, Some(&model), 40, &bad, &opts, &mut |_, _| {});
    assert!(matches!(e, Err(Error::NotAModel { .. })), "{e:?}");
    let clip = PackOptions {
        self_test: vec![(tmp.path().join("missing.wav"), "x".into())],
        ..opts.clone()
    };
    let e = harken_package::pack_deepspeech(&model, None, 40, &bad, &clip, &mut |_, _| {});
    assert!(e.is_err());
    assert!(!bad.exists());
    // A manifest whose family names a file it does not list is refused.
    let broken = yaml.replace("scorer: kenlm.scorer", "scorer: other.scorer");
    assert!(parse_manifest(broken.as_bytes()).is_err());
}

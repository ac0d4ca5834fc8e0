//! Golden files: the exact output of each format for a fixture, reviewed when it changes.
//! Regenerate with `HARKEN_BLESS=1 cargo test -p harken-cli --release` and read the diff.
//! Floats in JSON are compared rounded to 3 decimals: thread scheduling may move the last bits.

use std::path::Path;

use crate::{model, stdout, testdata, transcribe};

fn normalise(format: &str, s: &str) -> String {
    if !format.contains("json") {
        return s.to_owned();
    }
    fn round(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let x = n.as_f64().unwrap_or(0.0);
                *v = serde_json::json!((x * 1000.0).round() / 1000.0);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(round),
            serde_json::Value::Object(o) => o.values_mut().for_each(round),
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(s).expect("valid JSON");
    round(&mut v);
    serde_json::to_string_pretty(&v).expect("serialises") + "\n"
}

fn check(name: &str, format: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    let actual = normalise(format, actual);
    if std::env::var_os("HARKEN_BLESS").is_some() {
        std::fs::write(&path, &actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("missing golden {}; run with HARKEN_BLESS=1 to create it", path.display())
    });
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

#[test]
fn every_format_matches_its_golden_file() {
    let Some(m) = model("base") else { return };
    let m = m.to_string_lossy();
    let wav = testdata("numbers_16k.wav");
    let wav = wav.to_string_lossy();
    for (format, name) in [
        ("text", "numbers.txt"),
        ("json", "numbers.json"),
        ("verbose_json", "numbers.verbose.json"),
        ("srt", "numbers.srt"),
        ("vtt", "numbers.vtt"),
    ] {
        let o = transcribe(&m, &["--threads", "2", "--language", "en", "--format", format, &wav]);
        assert!(o.status.success(), "{format}: {}", String::from_utf8_lossy(&o.stderr));
        check(name, format, &stdout(&o));
    }
    let o = transcribe(
        &m,
        &["--threads", "2", "--language", "en", "--format", "json", "--word-timestamps", &wav],
    );
    assert!(o.status.success());
    check("numbers.words.json", "json", &stdout(&o));
}

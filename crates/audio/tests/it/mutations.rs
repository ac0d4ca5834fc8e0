//! A deterministic mutation fuzzer over the fixture files: bit flips, overwritten runs, cut and
//! duplicated ranges, in every container. Each mutant must decode or fail with an error, quickly,
//! without a panic escaping. (`cargo fuzz` needs a nightly toolchain the machines do not have;
//! this replays the same idea on stable in every test run.)

use std::time::{Duration, Instant};

use harken_audio::{DecodeOptions, decode_bytes};

use crate::testdata;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(src: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = src.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => {
                // Headers live in the first bytes: hit them more often.
                let i = rng.below(b.len().min(128));
                b[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(b.len());
                let n = rng.below(64).min(b.len() - i);
                for x in &mut b[i..i + n] {
                    *x = rng.next() as u8;
                }
            }
            3 => {
                let cut = rng.below(b.len());
                b.truncate(cut.max(1));
            }
            _ => {
                let i = rng.below(b.len());
                let n = rng.below(512).min(b.len() - i);
                let chunk = b[i..i + n].to_vec();
                let at = rng.below(b.len());
                b.splice(at..at, chunk);
            }
        }
        if b.is_empty() {
            break;
        }
    }
    b
}

#[test]
fn mutated_fixtures_never_panic_or_hang() {
    let fixtures = [
        ("speech_16k_s16.wav", "wav"),
        ("speech_44k_stereo_s24.wav", "wav"),
        ("speech_48k_f32.wav", "wav"),
        ("speech.flac", "flac"),
        ("speech.mp3", "mp3"),
        ("speech.ogg", "ogg"),
        ("speech.m4a", "m4a"),
        ("speech.opus", "opus"),
        ("speech.webm", "webm"),
        ("numbers_chromium.webm", "webm"),
    ];
    let per_fixture = 150;
    let mut rng = Rng(0x00c0_ffee);
    let mut slowest = Duration::ZERO;
    let (mut ok, mut err, mut contained, mut contained_mkv) = (0, 0, 0, 0);
    for (name, ext) in fixtures {
        let src = std::fs::read(testdata(name)).unwrap();
        for _ in 0..per_fixture {
            let m = mutate(&src, &mut rng);
            let t = Instant::now();
            let r =
                std::panic::catch_unwind(|| decode_bytes(m, Some(ext), &DecodeOptions::whisper()));
            slowest = slowest.max(t.elapsed());
            match r {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => {
                    err += 1;
                    if e.to_string().contains("failed on malformed data") {
                        // symphonia 0.5's Matroska reader `expect`s on some damage (fixed by
                        // its 0.6 rewrite); those panics are contained and counted apart.
                        if ext == "webm" { contained_mkv += 1 } else { contained += 1 }
                    }
                    assert!(!e.to_string().contains('\n'), "{e}");
                }
                Err(_) => panic!("a panic escaped decode_bytes on a mutant of {name}"),
            }
        }
    }
    eprintln!(
        "mutants: {ok} decoded, {err} rejected ({contained} + {contained_mkv} Matroska decoder panics contained), slowest {slowest:?}"
    );
    assert!(slowest < Duration::from_secs(5), "slowest mutant took {slowest:?}");
    assert_eq!(
        contained, 0,
        "decoder panics were contained; find the input and reject it before the decoder"
    );
    assert!(contained_mkv < per_fixture / 2, "{contained_mkv} Matroska panics");
    assert_eq!(ok + err, fixtures.len() * per_fixture);
}

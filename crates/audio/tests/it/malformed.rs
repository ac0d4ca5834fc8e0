//! The malformed-input corpus: each case is built here from bytes, so the corpus documents
//! itself. Every case must return an error with a one-line message (or, where noted, decode the
//! intact part), within a few seconds, without panicking.

use std::time::{Duration, Instant};

use harken_audio::{DecodeOptions, decode_bytes};
use harken_core::ErrorKind;

use crate::testdata;

/// A canonical PCM WAV: `format` tag, channels, rate, bits, data bytes; sizes may be overridden.
struct Wav {
    format: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data: Vec<u8>,
    fmt_size: Option<u32>,
    data_size: Option<u32>,
    riff_size: Option<u32>,
}

impl Wav {
    fn pcm16(samples: &[i16]) -> Self {
        Wav {
            format: 1,
            channels: 1,
            rate: 16_000,
            bits: 16,
            data: samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
            fmt_size: None,
            data_size: None,
            riff_size: None,
        }
    }

    fn float32(samples: &[f32]) -> Self {
        Wav {
            format: 3,
            bits: 32,
            data: samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
            ..Wav::pcm16(&[])
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let block = self.channels.wrapping_mul(self.bits / 8);
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&self.riff_size.unwrap_or(36 + self.data.len() as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&self.fmt_size.unwrap_or(16).to_le_bytes());
        b.extend_from_slice(&self.format.to_le_bytes());
        b.extend_from_slice(&self.channels.to_le_bytes());
        b.extend_from_slice(&self.rate.to_le_bytes());
        b.extend_from_slice(&self.rate.wrapping_mul(u32::from(block)).to_le_bytes());
        b.extend_from_slice(&block.to_le_bytes());
        b.extend_from_slice(&self.bits.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&self.data_size.unwrap_or(self.data.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.data);
        b
    }
}

fn tone(n: usize) -> Vec<i16> {
    (0..n).map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16).collect()
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

#[derive(Debug)]
enum Expect {
    /// An error of this kind.
    Err(ErrorKind),
    /// Any error kind but `Internal`.
    AnyErr,
    /// Decodes (the intact part, or a valid edge case) to this many samples at 16 kHz, ±2.
    Samples(usize),
}

fn cases() -> Vec<(&'static str, Vec<u8>, Option<&'static str>, Expect)> {
    let good = Wav::pcm16(&tone(16_000)).bytes();
    let mp3 = std::fs::read(testdata("speech.mp3")).expect("fixture");
    let flac = std::fs::read(testdata("speech.flac")).expect("fixture");
    let ogg = std::fs::read(testdata("speech.ogg")).expect("fixture");
    let m4a = std::fs::read(testdata("speech.m4a")).expect("fixture");
    let opus = std::fs::read(testdata("speech.opus")).expect("fixture");
    let webm = std::fs::read(testdata("speech.webm")).expect("fixture");
    // The M4A's `moov` box (sample tables, codec config) comes after `mdat`: cut it off.
    let moov_at = m4a.windows(4).position(|w| w == b"moov").expect("moov") - 4;
    let mut m4a_bad_moov_size = m4a.clone();
    m4a_bad_moov_size[moov_at..moov_at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    let mut m4a_garbage_mdat = m4a.clone();
    m4a_garbage_mdat[64..8_000].copy_from_slice(&noise(7_936, 11));
    // Opus's identification header ("OpusHead") claims 0 channels.
    let mut opus_zero_channels = opus.clone();
    let head = opus.windows(8).position(|w| w == b"OpusHead").expect("OpusHead");
    opus_zero_channels[head + 9] = 0;
    let mut opus_garbage_audio = opus.clone();
    let n = opus.len() - 1_500;
    opus_garbage_audio[1_500..].copy_from_slice(&noise(n, 12));
    let mut webm_garbage_clusters = webm.clone();
    let n = webm.len() - 600;
    webm_garbage_clusters[600..].copy_from_slice(&noise(n, 13));
    // An EBML header whose DocType says WebM, and nothing after it.
    let webm_header_only = webm[..40].to_vec();
    let mut mp3_garbage_middle = mp3.clone();
    let mid = mp3.len() / 2;
    mp3_garbage_middle[mid..mid + 2_000].copy_from_slice(&noise(2_000, 7));
    // An MP3 frame header (MPEG-1 layer III, 128 kb/s, 44.1 kHz) followed by garbage, repeated.
    let mut mp3_garbage_frames = Vec::new();
    for i in 0..50 {
        mp3_garbage_frames.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        mp3_garbage_frames.extend_from_slice(&noise(413, i));
    }
    vec![
        ("empty file", Vec::new(), Some("wav"), Expect::Err(ErrorKind::InvalidInput)),
        ("truncated header", good[..20].to_vec(), Some("wav"), Expect::AnyErr),
        ("header only, no data chunk", good[..36].to_vec(), Some("wav"), Expect::AnyErr),
        ("truncated data", good[..1_044].to_vec(), Some("wav"), Expect::AnyErr),
        (
            "fmt chunk size wrong",
            Wav { fmt_size: Some(1_000), ..Wav::pcm16(&tone(100)) }.bytes(),
            Some("wav"),
            Expect::AnyErr,
        ),
        (
            "zero channels",
            Wav { channels: 0, ..Wav::pcm16(&tone(100)) }.bytes(),
            Some("wav"),
            Expect::AnyErr,
        ),
        (
            "zero sample rate",
            Wav { rate: 0, ..Wav::pcm16(&tone(100)) }.bytes(),
            Some("wav"),
            Expect::AnyErr,
        ),
        (
            "absurd sample rate 4 GHz",
            Wav { rate: 4_000_000_000, ..Wav::pcm16(&tone(100)) }.bytes(),
            Some("wav"),
            Expect::AnyErr,
        ),
        (
            "sample rate 1 Hz",
            Wav { rate: 1, ..Wav::pcm16(&tone(100)) }.bytes(),
            Some("wav"),
            Expect::AnyErr,
        ),
        (
            "huge declared data size",
            Wav {
                data_size: Some(0xFFFF_FFF0),
                riff_size: Some(0xFFFF_FFF8),
                ..Wav::pcm16(&tone(1_000))
            }
            .bytes(),
            Some("wav"),
            Expect::AnyErr,
        ),
        (
            "65535 channels",
            Wav { channels: 65_535, ..Wav::pcm16(&tone(100)) }.bytes(),
            Some("wav"),
            Expect::AnyErr,
        ),
        (
            "7 bits per sample",
            Wav { bits: 7, ..Wav::pcm16(&tone(100)) }.bytes(),
            Some("wav"),
            Expect::AnyErr,
        ),
        (
            "unknown format tag",
            Wav { format: 0x1234, ..Wav::pcm16(&tone(100)) }.bytes(),
            Some("wav"),
            Expect::AnyErr,
        ),
        (
            "NaN float samples",
            Wav::float32(&[0.0, f32::NAN, 0.5]).bytes(),
            Some("wav"),
            Expect::Err(ErrorKind::InvalidInput),
        ),
        (
            "infinite float samples",
            Wav::float32(&[0.0, f32::INFINITY, 0.5]).bytes(),
            Some("wav"),
            Expect::Err(ErrorKind::InvalidInput),
        ),
        (
            "text renamed .wav",
            b"This is a text file, not audio.\n".repeat(20),
            Some("wav"),
            Expect::Err(ErrorKind::UnsupportedMedia),
        ),
        ("random bytes", noise(50_000, 42), Some("wav"), Expect::AnyErr),
        ("random bytes, no hint", noise(50_000, 43), None, Expect::AnyErr),
        ("MP3 frame headers with garbage bodies", mp3_garbage_frames, Some("mp3"), Expect::AnyErr),
        ("FLAC cut in half", flac[..flac.len() / 2].to_vec(), Some("flac"), Expect::AnyErr),
        ("OGG cut inside its headers", ogg[..200].to_vec(), Some("ogg"), Expect::AnyErr),
        ("M4A cut before its moov box", m4a[..moov_at].to_vec(), Some("m4a"), Expect::AnyErr),
        ("M4A with a moov size past the end", m4a_bad_moov_size, Some("m4a"), Expect::AnyErr),
        ("M4A with garbage AAC frames", m4a_garbage_mdat, Some("m4a"), Expect::AnyErr),
        ("M4A cut after 100 bytes", m4a[..100].to_vec(), None, Expect::AnyErr),
        ("Ogg Opus with zero channels", opus_zero_channels, Some("opus"), Expect::AnyErr),
        ("Ogg Opus cut inside its headers", opus[..120].to_vec(), Some("opus"), Expect::AnyErr),
        ("Ogg Opus with garbage pages", opus_garbage_audio, Some("opus"), Expect::AnyErr),
        ("WebM with garbage clusters", webm_garbage_clusters, Some("webm"), Expect::AnyErr),
        ("WebM EBML header only", webm_header_only, None, Expect::AnyErr),
        // symphonia 0.5's Matroska reader panics here (contained: an error, not a crash).
        ("WebM cut in half", webm[..webm.len() / 2].to_vec(), Some("webm"), Expect::AnyErr),
        // Valid edge cases: decoded, not rejected.
        ("one-sample file", Wav::pcm16(&[1000]).bytes(), Some("wav"), Expect::Samples(1)),
        ("empty data chunk", Wav::pcm16(&[]).bytes(), Some("wav"), Expect::Samples(0)),
        (
            "MP3 with a garbage middle (intact frames decode)",
            mp3_garbage_middle,
            Some("mp3"),
            Expect::Samples(45_000),
        ),
    ]
}

#[test]
fn malformed_corpus_gives_clear_errors_without_panics() {
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (name, bytes, hint, expect) in cases {
        let start = Instant::now();
        let result =
            std::panic::catch_unwind(|| decode_bytes(bytes, hint, &DecodeOptions::whisper()));
        let took = start.elapsed();
        let Ok(result) = result else {
            failures.push(format!("{name}: PANIC"));
            continue;
        };
        if took > Duration::from_secs(5) {
            failures.push(format!("{name}: took {took:?}"));
        }
        match (&expect, &result) {
            (Expect::Err(kind), Err(e)) if e.kind() == *kind => {}
            (Expect::AnyErr, Err(e)) if e.kind() != ErrorKind::Internal => {}
            (Expect::Samples(n), Ok(a))
                if (a.samples.len() as isize - *n as isize).abs() <= 2
                    || (*n > 1000 && a.samples.len() > n * 3 / 4) => {}
            _ => failures.push(format!(
                "{name}: expected {expect:?}, got {:?}",
                result.as_ref().map(|a| a.samples.len())
            )),
        }
        if let Err(e) = &result {
            let msg = e.to_string();
            if msg.contains('\n') || msg.is_empty() {
                failures.push(format!("{name}: message not one line: {msg:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every input the `audio_decode` fuzz target ever crashed on (`fuzz/regressions/audio_decode`,
/// first byte the file-name hint as in the target) decodes to a value, never a panic.
#[test]
fn fuzz_regressions_decode_to_a_value() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/audio_decode");
    let hints = [
        None,
        Some("wav"),
        Some("mp3"),
        Some("flac"),
        Some("ogg"),
        Some("opus"),
        Some("m4a"),
        Some("mp4"),
        Some("webm"),
        Some("mkv"),
        Some("aac"),
        Some("caf"),
    ];
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let Some((&pick, rest)) = bytes.split_first() else { continue };
        let opts = DecodeOptions { target_rate_hz: 16_000, max_duration_s: Some(120.0) };
        let _ = decode_bytes(rest.to_vec(), hints[usize::from(pick) % hints.len()], &opts);
        n += 1;
    }
    assert!(n >= 1, "no regression inputs in {}", dir.display());
}

//! Every container and codec Harken decodes, through the same entry point as uploads: the first
//! byte picks the file-name hint (or raw PCM / G.711), the rest is the file.
#![no_main]
use harken_audio::{DecodeOptions, RawFormat, decode_bytes, decode_raw};
use libfuzzer_sys::fuzz_target;

const HINTS: [Option<&str>; 12] = [
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

// Harken catches panics raised inside this crate on purpose.
fuzz_target!(init: harken_fuzz::tolerate_caught_panics_in("/symphonia-"), |data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    match pick {
        250..=252 => {
            let format = [RawFormat::Pcm16, RawFormat::Mulaw, RawFormat::Alaw][usize::from(pick - 250)];
            let mut out = Vec::new();
            decode_raw(rest, format, &mut out);
        }
        _ => {
            let opts = DecodeOptions { target_rate_hz: 16_000, max_duration_s: Some(120.0) };
            let _ = decode_bytes(rest.to_vec(), HINTS[usize::from(pick) % HINTS.len()], &opts);
        }
    }
});

//! The live-transcription protocol: client events (one text frame a line, first byte picks the
//! API dialect), session updates and the audio they carry, as `/v1/realtime` handles them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&dialect, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let frames: Vec<&str> = text.split('\n').collect();
    harken_server::fuzzing::realtime_events(&frames, dialect & 1 == 1);
});

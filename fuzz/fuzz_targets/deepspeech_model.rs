//! DeepSpeech / Coqui STT acoustic models (`.tflite` flatbuffers, `.pbmm` protobuf), as
//! `--model x.tflite` loads them; the first byte picks the file name.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let name = if pick & 1 == 0 { "model.tflite" } else { "model.pbmm" };
    let _ = harken_model::DeepSpeech::from_bytes(std::path::Path::new(name), rest);
});

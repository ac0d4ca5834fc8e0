//! The OpenAI transcription form: multipart framing (multer through axum) and every field's
//! validation, as `/v1/audio/transcriptions` reads it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else { return };
    let _ = rt.block_on(harken_server::fuzzing::multipart_form(
        "multipart/form-data; boundary=b",
        data.to_vec(),
    ));
});

//! Alphabet files: Harken's text form and DeepSpeech's serialized one.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(a) = harken_ctc::Alphabet::parse(text)
    {
        let _ = a.encode("hello world");
        let _ = a.decode(&[0, 1, 2, 3, 1000]);
        let _ = harken_ctc::Alphabet::parse(&a.to_file_text());
    }
    let _ = harken_model::deepspeech::parse_alphabet(data);
});

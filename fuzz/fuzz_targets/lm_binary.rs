//! Harken's binary LM format (what is memory-mapped at load), opened and then queried, since a
//! file can pass the header checks and still point outside itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = harken_lm::Model::from_bytes(data.to_vec()) {
        let _ = harken_lm::evaluate(&m, "the cat sat on the mat </s> <unk> a");
    }
});

//! CMU Sphinx binary language models (DMP), as `harken lm convert` reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harken_lm::sphinx::read(data);
});

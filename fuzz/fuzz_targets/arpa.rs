//! ARPA n-gram files, as `harken lm build/convert` reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = harken_lm::arpa::read(data) {
        let _ = harken_lm::Model::from_tables(&t, data.len() % 2 == 0);
    }
});

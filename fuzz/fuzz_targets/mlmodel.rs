//! The package manifest (MLmodel YAML), as `harken package`, the cache and every loader read it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = harken_package::parse_manifest(data);
});

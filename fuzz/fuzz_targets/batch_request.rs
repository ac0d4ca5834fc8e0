//! Manifest and JSONL-worker request lines: any line either parses or is refused, and an input's
//! result name never leaves the output (no leading `/`, no `.` or `..` component).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let Some(Ok(request)) = harken_batch::parse_request(line) else { return };
    for base in [None, Some("/data/manifests"), Some("s3://bucket/prefix")] {
        let input = request.clone().into_input(base);
        assert!(!input.rel.is_empty());
        assert!(!input.rel.starts_with('/'), "{:?}", input.rel);
        assert!(
            input.rel.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
            "{:?}",
            input.rel
        );
        let name = harken_batch::result_name(&input.rel, "json");
        assert!(name.ends_with(".json") && !name.starts_with('/'));
    }
});

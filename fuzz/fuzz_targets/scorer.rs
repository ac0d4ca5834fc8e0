//! DeepSpeech / Coqui `.scorer` files (KenLM binary + trie header + OpenFST const FST), opened,
//! verified and walked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = harken_ctc::Scorer::from_bytes(data.to_vec()) {
        let _ = s.fst().verify();
        let labels: Vec<String> =
            " abcdefghijklmnopqrstuvwxyz'".chars().map(String::from).collect();
        let _ = s.vocabulary(&labels, 64);
        let _ = s.check_alphabet(&labels);
    }
});

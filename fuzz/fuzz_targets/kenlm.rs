//! KenLM binary files (probing and trie, quantized or not), opened and queried.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(lm) = harken_lm::KenLm::from_bytes(data.to_vec()) {
        let mut state = lm.begin_sentence();
        for w in ["the", "cat", "</s>", "a", "zzz"] {
            let (_, next) = lm.score(&state, lm.index(w));
            state = next;
        }
        let _ = lm.vocabulary();
    }
});

//! The vocabulary trie file of a CTC package, opened and walked.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = harken_ctc::VocabTrie::from_bytes(data) {
        let _ = t.contains(&[1, 2, 3]);
        for c in t.children(0).take(64) {
            let _ = t.is_word(c);
            let _ = t.child(c, 1);
        }
    }
});

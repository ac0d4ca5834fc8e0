//! KenLM binaries: the writer against `build_binary`'s bytes, the reader against `query`'s
//! numbers (bit for bit), and damaged files.
//!
//! Goldens made by KenLM's tools are committed under `crates/lm/testdata/kenlm/` (README
//! there), so every comparison runs everywhere. With the tools installed
//! (`scripts/install-kenlm.sh`, or `HARKEN_KENLM_BIN=<dir>`), the goldens are also checked
//! against the live tools and more models are compared: `lmplz` models of orders 2 to 6 from
//! `testdata/lm/train.txt`, pruned ones (with "blank" n-grams), one without `<unk>`, one
//! spelling it `<UNK>`, and, when present, the CMU Sphinx US English trigram filtered to this
//! repository's vocabulary (`HARKEN_SPHINX_ARPA`, default `/work/shared/lm/…`).
//! `HARKEN_KENLM_REGENERATE=1` rewrites the goldens with the live tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use harken_lm::arpa::{self, Tables};
use harken_lm::kenlm::{KenLm, ModelType, QuantBits, TrieOptions, write_trie};

use crate::testdata;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kenlm").join(name)
}

/// `build_binary` flag sets, by the tag golden files are named with; the data structure is
/// `probing` for tags starting so, `trie` otherwise.
const FLAGS: &[(&str, &[&str])] = &[
    ("trie", &[]),
    ("trie-v", &["-v"]),
    ("q8", &["-q", "8"]),
    ("q8-v", &["-q", "8", "-v"]),
    ("a255", &["-a", "255"]),
    ("a255-q8", &["-a", "255", "-q", "8"]),
    ("a255-q8-v", &["-a", "255", "-q", "8", "-v"]),
    ("q4-b6-a3", &["-q", "4", "-b", "6", "-a", "3"]),
    ("q9-b7-a0-u", &["-q", "9", "-b", "7", "-a", "0", "-u", "-7.5"]),
    ("probing", &[]),
    ("probing-p3-v", &["-p", "3", "-v"]),
];

fn structure(tag: &str) -> &'static str {
    if tag.starts_with("probing") { "probing" } else { "trie" }
}

/// Committed goldens: each ARPA with the flag sets its binaries were built with.
const GOLDENS: &[(&str, &[&str])] = &[
    (
        "toy-4gram-pruned",
        &["trie", "trie-v", "q8", "q8-v", "a255", "a255-q8", "a255-q8-v", "q4-b6-a3", "probing"],
    ),
    ("lm2", &["trie", "trie-v", "q8", "a255-q8-v", "a255"]),
    (
        "lm3-pruned-nounk",
        &["trie", "q8-v", "a255-q8", "a255-q8-v", "q4-b6-a3", "q9-b7-a0-u", "probing-p3-v"],
    ),
    ("lm5-pruned", &["trie-v", "a255", "a255-q8-v"]),
];

/// The query golden of a binary: scores depend on the ARPA, the quantization and `-u` only.
fn query_golden(name: &str, tag: &str) -> PathBuf {
    let o = options(flags(tag));
    let mut key = match o.quantize {
        None if structure(tag) == "probing" => "probing".to_owned(),
        None => "float".to_owned(),
        Some(q) => format!("q{}-b{}", q.prob, q.backoff),
    };
    if o.unknown_log10 != -100.0 {
        key += "-u";
    }
    golden(&format!("{name}.{key}.query"))
}

fn flags(tag: &str) -> &'static [&'static str] {
    FLAGS.iter().find(|f| f.0 == tag).map(|f| f.1).unwrap_or_else(|| panic!("no flags {tag}"))
}

/// The options `build_binary` reads from these flags.
fn options(flags: &[&str]) -> TrieOptions {
    let mut o = TrieOptions::plain();
    let mut backoff_bits = None;
    let mut it = flags.iter();
    while let Some(f) = it.next() {
        let mut value = || *it.next().unwrap();
        match *f {
            "-q" => {
                let b: u8 = value().parse().unwrap();
                o.quantize = Some(QuantBits { prob: b, backoff: backoff_bits.unwrap_or(b) });
            }
            "-b" => {
                let b: u8 = value().parse().unwrap();
                backoff_bits = Some(b);
                if let Some(q) = &mut o.quantize {
                    q.backoff = b;
                }
            }
            "-a" => o.pointer_bits = Some(value().parse().unwrap()),
            "-u" => o.unknown_log10 = value().parse().unwrap(),
            "-v" => o.include_vocab = false,
            // Probing's hash-table size; no trie option.
            "-p" => {
                value();
            }
            other => panic!("flag {other}"),
        }
    }
    o
}

/// KenLM's tools, where `scripts/install-kenlm.sh` puts them (or `HARKEN_KENLM_BIN`).
fn kenlm_tools() -> Option<PathBuf> {
    let dir = match std::env::var_os("HARKEN_KENLM_BIN") {
        Some(d) => PathBuf::from(d),
        None => {
            let cache =
                std::env::var_os("HARKEN_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| {
                            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                                .join(".cache")
                        })
                        .join("harken")
                });
            cache.join("kenlm/bin")
        }
    };
    if ["build_binary", "query", "lmplz"].iter().all(|t| dir.join(t).is_file()) {
        Some(dir)
    } else {
        // The goldens still ran; only the live cross-check is missing.
        eprintln!(
            "\n*** SKIP live KenLM checks: no build_binary/query/lmplz in {} (scripts/install-kenlm.sh); the committed goldens were compared ***\n",
            dir.display()
        );
        None
    }
}

fn build_binary(tools: &Path, tag: &str, arpa: &Path, out: &Path) {
    let flags = flags(tag);
    let o = Command::new(tools.join("build_binary"))
        .args(flags)
        .arg(structure(tag))
        .arg(arpa)
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "build_binary {flags:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// `query -v word` on `sentences`: KenLM's per-word output.
fn query(tools: &Path, bin: &Path, sentences: &str) -> String {
    let mut child = Command::new(tools.join("query"))
        .args(["-v", "word"])
        .arg(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = sentences.to_owned();
    let feeder = std::thread::spawn(move || {
        std::io::Write::write_all(&mut stdin, text.as_bytes()).unwrap();
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(o.status.success(), "query {}", bin.display());
    String::from_utf8(o.stdout).unwrap()
}

/// Score `sentences` as `query` does (`<s>` context, `</s>` at the end of each line) and
/// check every word against `query`'s output `expected`: same id, same n-gram length, same
/// `f32` (KenLM prints the shortest text that reads back to its float, so equal parses mean
/// equal bits). Returns the words compared.
fn check_scores(m: &KenLm, sentences: &str, expected: &str, what: &str) -> usize {
    let mut tokens = expected.split(['\t', '\n']).filter(|s| !s.is_empty());
    let mut n = 0;
    for line in sentences.lines() {
        let mut state = m.begin_sentence();
        for w in line.split_whitespace().chain(["</s>"]) {
            let t = tokens.next().unwrap_or_else(|| panic!("{what}: query output ends early"));
            let (word, rest) = t.rsplit_once('=').unwrap();
            assert_eq!(word, w, "{what}");
            let mut f = rest.split(' ');
            let id: u32 = f.next().unwrap().parse().unwrap();
            let len: u8 = f.next().unwrap().parse().unwrap();
            let prob: f32 = f.next().unwrap().parse().unwrap();
            let ours = if w == "</s>" { m.end_sentence_id() } else { m.index(w) };
            let (r, next) = m.full_score(&state, ours);
            assert_eq!(
                (ours, r.ngram_length, r.log10_prob.to_bits()),
                (id, len, prob.to_bits()),
                "{what}: {w:?} in {line:?}: ours {} vs query {prob}",
                r.log10_prob
            );
            assert_eq!(m.score(&state, ours).0.to_bits(), r.log10_prob.to_bits());
            state = next;
            n += 1;
        }
    }
    assert!(tokens.next().is_none(), "{what}: query printed more words");
    n
}

fn read_arpa(path: &Path) -> Tables {
    arpa::read(arpa::open(path).unwrap()).unwrap()
}

fn write(t: &Tables, o: &TrieOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let n = write_trie(t, o, &mut out).unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

fn sentences() -> String {
    std::fs::read_to_string(golden("sentences.txt")).unwrap()
}

/// A deterministic pruning that keeps every context but drops other n-grams of the middle
/// and highest orders, so that suffixes go missing and KenLM must insert blanks (as with
/// SRILM-pruned models). `drop_unk` also removes `<unk>`.
fn prune_keeping_contexts(t: &Tables, drop_permille: u64, seed: u64, drop_unk: bool) -> Tables {
    let order = t.order();
    let mut x = seed | 1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % 1000
    };
    let unk = t.vocab.iter().position(|w| w == "<unk>").map(|i| i as u32);
    let has_unk = |g: &[u32]| drop_unk && unk.is_some_and(|u| g.contains(&u));
    let mut keep: Vec<Vec<bool>> = (1..=order)
        .map(|k| {
            (0..t.count(k))
                .map(|i| {
                    let g: &[u32] =
                        if k == 1 { &[i as u32][..] } else { &t.ids[k - 1][i * k..(i + 1) * k] };
                    !has_unk(g) && (k == 1 || rand() >= drop_permille)
                })
                .collect()
        })
        .collect();
    for k in (3..=order).rev() {
        let (lower, upper) = keep.split_at_mut(k - 1);
        let (ctx_ids, ids) = (&t.ids[k - 2], &t.ids[k - 1]);
        for (i, _) in upper[0].iter().enumerate().filter(|(_, kept)| **kept) {
            let ctx = &ids[i * k..i * k + k - 1];
            let n = k - 1;
            let j = {
                let (mut lo, mut hi) = (0, ctx_ids.len() / n);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if &ctx_ids[mid * n..(mid + 1) * n] < ctx { lo = mid + 1 } else { hi = mid }
                }
                lo
            };
            assert_eq!(&ctx_ids[j * n..(j + 1) * n], ctx, "every context is an n-gram");
            lower[k - 2][j] = true;
        }
    }
    // Renumber without dropped unigrams (only <unk> can be).
    let new_id: Vec<u32> = {
        let mut next = 0u32;
        keep[0]
            .iter()
            .map(|&k| {
                let id = next;
                next += u32::from(k);
                id
            })
            .collect()
    };
    let mut out = Tables {
        vocab: Vec::new(),
        ids: vec![Vec::new(); order],
        prob: vec![Vec::new(); order],
        backoff: vec![Vec::new(); order - 1],
    };
    for k in 1..=order {
        for (i, _) in keep[k - 1].iter().enumerate().filter(|(_, kept)| **kept) {
            if k == 1 {
                out.vocab.push(t.vocab[i].clone());
            } else {
                let g = &t.ids[k - 1][i * k..(i + 1) * k];
                out.ids[k - 1].extend(g.iter().map(|&w| new_id[w as usize]));
            }
            out.prob[k - 1].push(t.prob[k - 1][i]);
            if k < order {
                out.backoff[k - 1].push(t.backoff[k - 1][i]);
            }
        }
    }
    out
}

const TOY: &str = "\\data\\
ngram 1=7
ngram 2=6
ngram 3=4
ngram 4=2

\\1-grams:
-1.5\t</s>
-99\t<s>\t-0.4
-1.1\ta\t-0.5
-1.2\tb\t-0.25
-1.3\tc\t-0.3
-1.4\td\t-0.125
-1.6\te

\\2-grams:
-0.5\t<s> a\t-0.2
-0.6\ta b\t-0.15
-0.7\tb a
-0.8\tc d\t-0.1
-0.9\td </s>
-0.4\ta c\t0

\\3-grams:
-0.3\t<s> a b\t-0.05
-0.35\ta b c\t-0.07
-0.45\ta c d
-0.33\t<s> a c\t0

\\4-grams:
-0.1\t<s> a b c
-0.2\ta b c e

\\end\\
";

/// Rewrite the committed ARPAs and goldens with the live tools.
fn regenerate(tools: &Path) {
    let dir = golden("");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(golden("toy-4gram-pruned.arpa"), TOY).unwrap();
    let head: String = std::fs::read_to_string(testdata("train.txt"))
        .unwrap()
        .lines()
        .take(12)
        .map(|l| format!("{l}\n"))
        .collect();
    let lmplz = |order: usize| -> Tables {
        let mut child = Command::new(tools.join("lmplz"))
            .args(["-o", &order.to_string(), "--discount_fallback", "-S", "64M"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let text = head.clone();
        let feeder =
            std::thread::spawn(move || std::io::Write::write_all(&mut stdin, text.as_bytes()));
        let o = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        arpa::read(o.stdout.as_slice()).unwrap()
    };
    let save = |name: &str, t: &Tables| {
        let mut out = Vec::new();
        arpa::write(t, &mut out).unwrap();
        std::fs::write(golden(&format!("{name}.arpa")), out).unwrap();
    };
    save("lm2", &lmplz(2));
    save("lm3-pruned-nounk", &prune_keeping_contexts(&lmplz(3), 500, 7, true));
    save("lm5-pruned", &prune_keeping_contexts(&lmplz(5), 400, 11, false));
    let text = sentences();
    for (name, tags) in GOLDENS {
        for tag in *tags {
            let bin = golden(&format!("{name}.{tag}.bin"));
            build_binary(tools, tag, &golden(&format!("{name}.arpa")), &bin);
            std::fs::write(query_golden(name, tag), query(tools, &bin, &text)).unwrap();
        }
    }
    eprintln!("regenerated the KenLM goldens in {}", dir.display());
}

/// The writer reproduces every committed `build_binary` output byte for byte; with the tools
/// present, the goldens are also what today's `build_binary` writes.
#[test]
fn kenlm_writer_matches_golden_binaries() {
    let tools = kenlm_tools();
    if let Some(tools) = &tools
        && std::env::var_os("HARKEN_KENLM_REGENERATE").is_some()
    {
        regenerate(tools);
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut files = 0;
    for (name, tags) in GOLDENS {
        let arpa_path = golden(&format!("{name}.arpa"));
        let t = read_arpa(&arpa_path);
        for tag in *tags {
            let want = std::fs::read(golden(&format!("{name}.{tag}.bin"))).unwrap();
            if structure(tag) == "trie" {
                let ours = write(&t, &options(flags(tag)));
                assert!(
                    ours == want,
                    "{name} {tag}: {} vs golden {} bytes",
                    ours.len(),
                    want.len()
                );
            }
            if let Some(tools) = &tools {
                let live = tmp.path().join("live.bin");
                build_binary(tools, tag, &arpa_path, &live);
                assert!(std::fs::read(&live).unwrap() == want, "{name} {tag}: golden is stale");
            }
            files += 1;
        }
    }
    assert_eq!(files, 24);
}

/// The reader's scores equal `query`'s, recorded in the goldens, for every word of
/// `sentences.txt` on every golden binary (mapped from disk): ids, n-gram lengths, bits.
#[test]
fn kenlm_scores_match_golden_query_output() {
    let tools = kenlm_tools();
    let text = sentences();
    let mut words = 0;
    for (name, tags) in GOLDENS {
        for tag in *tags {
            let bin = golden(&format!("{name}.{tag}.bin"));
            let m = KenLm::open(&bin).unwrap();
            let expected = std::fs::read_to_string(query_golden(name, tag)).unwrap();
            words += check_scores(&m, &text, &expected, &format!("{name} {tag}"));
            if let Some(tools) = &tools {
                assert_eq!(query(tools, &bin, &text), expected, "{name} {tag}: stale query golden");
            }
            let o = options(flags(tag));
            if structure(tag) == "trie" {
                assert_eq!(m.model_type(), o.model_type());
            } else {
                assert_eq!(m.model_type(), ModelType::Probing);
                assert!(m.to_tables().is_err(), "probing models keep no n-gram words");
            }
            assert_eq!(m.quantization(), o.quantize);
            assert_eq!(m.has_vocabulary(), o.include_vocab);
            let len = std::fs::metadata(&bin).unwrap().len();
            if o.include_vocab {
                let words = m.vocabulary().unwrap().unwrap();
                let strings: u64 = words.iter().map(|w| w.len() as u64 + 1).sum();
                assert_eq!(m.end_of_search() + strings, len);
                for (id, w) in words.iter().enumerate() {
                    assert_eq!(m.index(w), id as u32, "{name} {tag}: {w}");
                }
            } else {
                assert_eq!(m.end_of_search(), len, "{name} {tag}");
            }
        }
    }
    assert!(words > 2000, "{words}");
}

/// A pruned model gets blank n-grams (its header counts exceed the ARPA's), a model without
/// `<unk>` gets one (log10 -100, or `-u`), and state minimisation keeps only words that can
/// extend.
#[test]
fn kenlm_blanks_unk_and_states() {
    let t = read_arpa(&golden("toy-4gram-pruned.arpa"));
    let m = KenLm::from_bytes(write(&t, &TrieOptions::plain())).unwrap();
    // Blanks: "b c" (context of "a b c", a suffix of "<s> a b c"), "c e" and "b c e"
    // (suffixes of "a b c e").
    assert_eq!(m.counts(), &[8, 6 + 2, 4 + 1, 2]);
    assert_eq!(m.order(), 4);
    assert_eq!(m.index("<unk>"), 0);
    assert_eq!(m.index("zebra"), 0);
    let (unk, s) = m.score(&m.null_context(), 0);
    assert_eq!(unk, -100.0);
    // KenLM gives the <unk> it adds a back-off of +0, which counts as extending.
    assert_eq!(s.words(), &[0]);
    let with_u = TrieOptions { unknown_log10: -7.5, ..TrieOptions::plain() };
    let mu = KenLm::from_bytes(write(&t, &with_u)).unwrap();
    assert_eq!(mu.score(&mu.null_context(), 0).0, -7.5);
    // "e" ends no longer n-gram, has no back-off: the state after it is empty.
    let (_, s) = m.score(&m.begin_sentence(), m.index("e"));
    assert!(s.is_empty());
    // "<s> a b c" is the longest n-gram: found in full.
    let mut st = m.begin_sentence();
    for w in ["a", "b", "c"] {
        let (r, next) = m.full_score(&st, m.index(w));
        st = next;
        if w == "c" {
            assert_eq!((r.log10_prob, r.ngram_length), (-0.1, 4));
        }
    }
    // After "a b c", "e" hits the 4-gram "a b c e".
    assert_eq!(st.words().len(), 3);
    let (r, _) = m.full_score(&st, m.index("e"));
    assert_eq!((r.log10_prob, r.ngram_length), (-0.2, 4));
    // States hold the words that can still extend, most recent first.
    let s1 = m.score(&m.score(&m.null_context(), m.index("a")).1, m.index("b")).1;
    assert_eq!(s1.words(), &[m.index("b"), m.index("a")]);
    let s2 = m.score(&m.score(&m.begin_sentence(), m.index("a")).1, m.index("b")).1;
    assert_eq!(s2.words(), &[m.index("b"), m.index("a"), m.index("<s>")]);
    assert_ne!(s1, s2);
    // "d </s>" extends nowhere and has no back-off: whatever came before, nothing is left.
    let after_d = m.score(&m.score(&s2, m.index("d")).1, m.end_sentence_id()).1;
    assert_eq!(after_d, m.null_context());
}

/// Tables read back from a binary describe the same model: written again they give the
/// same bytes (a complete model with `<unk>`), or the same scores (pruned: blanks come back as
/// ordinary n-grams).
#[test]
fn kenlm_tables_round_trip() {
    let text = sentences();
    let bin = std::fs::read(golden("lm2.trie.bin")).unwrap();
    let m = KenLm::from_bytes(bin.clone()).unwrap();
    let t = m.to_tables().unwrap();
    assert!(write(&t, &TrieOptions::plain()) == bin);
    let original = read_arpa(&golden("lm2.arpa"));
    assert_eq!(t.vocab, original.vocab);
    assert_eq!(t.ids, original.ids);
    for name in ["toy-4gram-pruned", "lm5-pruned"] {
        let bin = std::fs::read(golden(&format!("{name}.trie-v.bin"))).unwrap();
        let m = KenLm::from_bytes(bin).unwrap();
        // Without vocabulary strings, name the ids from the ARPA's words.
        let words = read_arpa(&golden(&format!("{name}.arpa"))).vocab;
        let mut by_id = vec![String::new(); m.vocab_size() as usize];
        by_id[0] = "<unk>".into();
        for w in &words {
            by_id[m.index(w) as usize] = w.clone();
        }
        let t = m.to_tables_with(&|id| by_id.get(id as usize).cloned()).unwrap();
        assert_eq!(t.count(1), m.counts()[0] as usize);
        let again = KenLm::from_bytes(write(&t, &TrieOptions::plain())).unwrap();
        assert_eq!(again.counts(), m.counts());
        for line in text.lines() {
            let (mut a, mut b) = (m.begin_sentence(), again.begin_sentence());
            for w in line.split_whitespace() {
                let (pa, na) = m.score(&a, m.index(w));
                let (pb, nb) = again.score(&b, again.index(w));
                assert_eq!(pa.to_bits(), pb.to_bits(), "{name}: {w} in {line}");
                (a, b) = (na, nb);
            }
        }
    }
    // Files without strings need the words.
    let novocab = KenLm::open(&golden("lm2.trie-v.bin")).unwrap();
    assert!(novocab.vocabulary().unwrap().is_none());
    assert!(novocab.to_tables().is_err());
}

/// Live: `lmplz` models of orders 2 to 6, pruned and `<unk>` variants, and the Sphinx
/// trigram filtered down, each written with every flag set by both `build_binary` and
/// [`write_trie`] (same bytes) and scored by both `query` and [`KenLm`] (same bits).
#[test]
fn kenlm_writer_and_reader_match_live_kenlm() {
    let Some(tools) = kenlm_tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let train = std::fs::read_to_string(testdata("train.txt")).unwrap();
    let heldout = std::fs::read_to_string(testdata("heldout.txt")).unwrap();
    let sentences: String =
        heldout.lines().chain(train.lines().take(40)).map(|l| format!("{l}\n")).collect();
    let mut models: Vec<(String, Tables)> = Vec::new();
    for order in 2..=6 {
        let o = Command::new(tools.join("lmplz"))
            .args(["-o", &order.to_string(), "--discount_fallback", "-S", "64M"])
            .stdin(std::fs::File::open(testdata("train.txt")).unwrap())
            .stderr(Stdio::null())
            .output()
            .unwrap();
        let t = arpa::read(o.stdout.as_slice()).unwrap();
        models.push((format!("lmplz-{order}"), t.clone()));
        if order > 2 {
            models.push((
                format!("pruned-{order}"),
                prune_keeping_contexts(&t, 500, order as u64, false),
            ));
            models
                .push((format!("pruned-nounk-{order}"), prune_keeping_contexts(&t, 300, 99, true)));
        }
    }
    // `<UNK>` is KenLM's other spelling of the unknown word.
    let mut text = Vec::new();
    arpa::write(&models[1].1, &mut text).unwrap();
    let upper = String::from_utf8(text).unwrap().replace("\t<unk>", "\t<UNK>");
    models.push(("upper-unk-3".into(), arpa::read(upper.as_bytes()).unwrap()));
    let sphinx = std::env::var_os("HARKEN_SPHINX_ARPA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/lm/en-us-sphinx-3gram.arpa.gz"));
    if sphinx.is_file() {
        let full = read_arpa(&sphinx);
        let mut keep: std::collections::HashSet<String> =
            train.split_whitespace().map(str::to_owned).collect();
        keep.extend(["<s>", "</s>", "<unk>"].map(String::from));
        let small = harken_lm::prune::filter_vocabulary(&full, &keep).unwrap();
        assert!(small.count(1) > 1000 && small.count(3) > 100_000);
        models.push(("sphinx-filtered-3".into(), small));
    } else {
        eprintln!(
            "\n*** SKIP the Sphinx trigram in the live KenLM check: no {} ***\n",
            sphinx.display()
        );
    }
    let (mut files, mut written, mut words) = (0, 0, 0);
    for (name, t) in &models {
        let arpa_path = tmp.path().join(format!("{name}.arpa"));
        let mut text = Vec::new();
        arpa::write(t, &mut text).unwrap();
        std::fs::write(&arpa_path, &text).unwrap();
        // The model as KenLM reads the text (Harken's ARPA writer prints shortest floats).
        let t = read_arpa(&arpa_path);
        for (tag, fl) in FLAGS {
            if name.starts_with("sphinx") && !["trie", "a255-q8-v", "probing"].contains(tag) {
                continue;
            }
            let bin = tmp.path().join(format!("{name}.{tag}.bin"));
            build_binary(&tools, tag, &arpa_path, &bin);
            let want = std::fs::read(&bin).unwrap();
            if structure(tag) == "trie" {
                let ours = write(&t, &options(fl));
                assert!(
                    ours == want,
                    "{name} {tag}: {} vs build_binary's {} bytes",
                    ours.len(),
                    want.len()
                );
                written += 1;
            }
            let m = KenLm::open(&bin).unwrap();
            words += check_scores(
                &m,
                &sentences,
                &query(&tools, &bin, &sentences),
                &format!("{name} {tag}"),
            );
            files += 1;
        }
    }
    eprintln!(
        "live KenLM: {written} tries written byte-identical; {words} scores on {files} binaries (probing included) bit-identical"
    );
}

/// KenLM's refusals are the writer's: a missing context, missing sentence markers, positive
/// log probabilities.
#[test]
fn kenlm_writer_refuses_what_build_binary_refuses() {
    let bad_context = TOY.replace("-0.45\ta c d\n", "-0.45\te c d\n");
    let t = arpa::read(bad_context.as_bytes()).unwrap();
    let err = write_trie(&t, &TrieOptions::plain(), &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("context"), "{err}");
    let no_bos = "\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-1\ta\t-0.5\n-1\t</s>\n\n\\2-grams:\n-0.5\ta </s>\n\n\\end\\\n";
    let err =
        write_trie(&arpa::read(no_bos.as_bytes()).unwrap(), &TrieOptions::plain(), &mut Vec::new())
            .unwrap_err()
            .to_string();
    assert!(err.contains("<s>"), "{err}");
    let positive = TOY.replace("-1.6\te", "0.5\te");
    let err = write_trie(
        &arpa::read(positive.as_bytes()).unwrap(),
        &TrieOptions::plain(),
        &mut Vec::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("positive"), "{err}");
    let unigram_only = "\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n\n\\end\\\n";
    assert!(
        write_trie(
            &arpa::read(unigram_only.as_bytes()).unwrap(),
            &TrieOptions::plain(),
            &mut Vec::new()
        )
        .is_err()
    );
    if let Some(tools) = kenlm_tools() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("bad.arpa");
        std::fs::write(&p, &bad_context).unwrap();
        let o = Command::new(tools.join("build_binary"))
            .arg("trie")
            .arg(&p)
            .arg(tmp.path().join("bad.bin"))
            .output()
            .unwrap();
        assert!(!o.status.success(), "build_binary accepted a missing context");
    }
}

/// DeepSpeech scorers append their word trie after a `-v` binary: the model still opens, scores
/// the same and says where its own bytes end. Models are shared across threads.
#[test]
fn kenlm_scorer_style_trailing_data() {
    fn shared<T: Send + Sync>(_: &T) {}
    let bin = std::fs::read(golden("lm5-pruned.a255-q8-v.bin")).unwrap();
    let plain = KenLm::from_bytes(bin.clone()).unwrap();
    let mut scorer = bin.clone();
    scorer.extend_from_slice(b"EIRENE trie bytes follow");
    let m = KenLm::from_bytes(scorer).unwrap();
    shared(&m);
    assert_eq!(m.end_of_search(), bin.len() as u64);
    assert!(!m.has_vocabulary());
    for line in sentences().lines() {
        let (mut a, mut b) = (plain.begin_sentence(), m.begin_sentence());
        for w in line.split_whitespace() {
            let (pa, na) = plain.score(&a, plain.index(w));
            let (pb, nb) = m.score(&b, m.index(w));
            assert_eq!(pa.to_bits(), pb.to_bits());
            assert_eq!(na, nb);
            (a, b) = (na, nb);
        }
    }
    assert_eq!(harken_lm::KenState::default(), m.null_context());
}

/// Not KenLM, another version, an unfinished build, a probing model, truncation: typed errors.
#[test]
fn kenlm_reader_refuses_foreign_and_truncated_files() {
    let good = std::fs::read(golden("lm5-pruned.a255-q8-v.bin")).unwrap();
    assert!(harken_lm::is_kenlm(&good));
    let msg = |b: Vec<u8>| KenLm::from_bytes(b).unwrap_err().to_string();
    assert!(msg(b"\\data\\\nngram 1=3\n".to_vec()).contains("not a KenLM binary"));
    let mut v4 = good.clone();
    v4[49] = b'4';
    assert!(msg(v4).contains("version 4"));
    let mut incomplete = b"mmap lm http://kheafield.com/code incomplete\n".to_vec();
    incomplete.resize(200, 0);
    assert!(msg(incomplete).contains("did not finish"));
    let mut rest = good.clone();
    rest[96] = 1;
    assert!(msg(rest).contains("RestProbing"));
    let m = KenLm::from_bytes(good.clone()).unwrap();
    let end = m.end_of_search() as usize;
    assert_eq!(end, good.len());
    assert_eq!(m.pointer_compression_bits(), Some(255));
    for cut in [0, 10, 88, 107, 150, 1000, end / 2, end - 1] {
        let e = KenLm::from_bytes(good[..cut].to_vec()).unwrap_err();
        assert!(
            matches!(e, harken_lm::Error::KenLmTruncated { .. } | harken_lm::Error::KenLm { .. }),
            "cut {cut}: {e}"
        );
    }
    assert!(msg(good[..end - 1].to_vec()).contains("truncated"));
    assert_eq!(ModelType::QuantArrayTrie, m.model_type());
}

/// Every truncation of a valid file is refused or (inside the vocabulary strings) loads and
/// works; thousands of byte mutations never make opening, scoring or exporting panic.
#[test]
fn kenlm_damaged_files_never_panic() {
    let text = sentences();
    for name in [
        "toy-4gram-pruned.a255-q8.bin",
        "lm5-pruned.trie-v.bin",
        "lm3-pruned-nounk.q4-b6-a3.bin",
        "lm3-pruned-nounk.probing-p3-v.bin",
    ] {
        let good = std::fs::read(golden(name)).unwrap();
        let end = KenLm::from_bytes(good.clone()).unwrap().end_of_search() as usize;
        for cut in 0..good.len() {
            match KenLm::from_bytes(good[..cut].to_vec()) {
                Ok(m) => {
                    assert!(cut >= end, "{name}: cut at {cut} < {end} opened");
                    let _ = m.to_tables();
                }
                Err(_) => assert!(cut < end + 6, "{name}: cut at {cut} refused"),
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..3000 {
            let mut m = good.clone();
            for j in 0..(1 + i % 4) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Most mutations land after the header, where the data is.
                let at = if j == 0 && i % 5 == 0 { x as usize % 160 } else { x as usize % m.len() };
                m[at] ^= (x >> 32) as u8 | 1;
            }
            let r = std::panic::catch_unwind(|| {
                if let Ok(model) = KenLm::from_bytes(m) {
                    for line in text.lines() {
                        let mut st = model.begin_sentence();
                        for w in line.split_whitespace() {
                            st = model.score(&st, model.index(w)).1;
                        }
                    }
                    let v = model.vocab_size();
                    let _ = model.to_tables_with(&|id| (id < v).then(|| format!("w{id}")));
                    let _ = model.to_tables();
                }
            });
            assert!(r.is_ok(), "{name}: mutant {i} panicked");
        }
    }
}

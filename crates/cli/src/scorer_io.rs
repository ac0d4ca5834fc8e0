//! `.scorer` packages and bare KenLM binaries in `harken lm`: reading them as n-gram tables,
//! writing a scorer (KenLM `-a 255 -q 8 -v` trie + DeepSpeech's vocabulary trie) from any
//! model, and the `info` / `eval` views of them.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use harken_ctc::scorer::{self, Scorer, TrieHeader};
use harken_lm::kenlm::{KenLm, TrieOptions};

/// DeepSpeech 0.9.3's English scorer defaults, used when nothing else gives α and β.
const DEFAULT_ALPHA: f64 = 0.931_289_039_105_002;
const DEFAULT_BETA: f64 = 1.183_413_758_151_028_4;

/// Options for reading and writing `.scorer` packages.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ScorerArgs {
    /// The model's alphabet: an `alphabet.txt` (DeepSpeech form) or the `.tflite` model
    /// itself. Needed to write an alphabet-mode `.scorer`, and to read the words of one whose
    /// KenLM part has no vocabulary strings.
    #[arg(long)]
    pub(crate) alphabet: Option<PathBuf>,
    /// Scorer vocabulary (words separated by white space), as `generate_scorer_package
    /// --vocab`: the words the decoder may spell. Default: the source scorer's, else every word
    /// of the model.
    #[arg(long = "scorer-vocab")]
    pub(crate) vocab: Option<PathBuf>,
    /// Default LM weight α written into the scorer (default: the source scorer's, else
    /// DeepSpeech 0.9.3's).
    #[arg(long = "default-alpha")]
    pub(crate) alpha: Option<f64>,
    /// Default word bonus β written into the scorer.
    #[arg(long = "default-beta")]
    pub(crate) beta: Option<f64>,
    /// Write a UTF-8 ("bytes output mode") scorer: bytes as labels, code points as words.
    #[arg(long)]
    pub(crate) utf8: bool,
}

/// Whether `path` is a KenLM binary (bare or a scorer package).
pub(crate) fn is_kenlm(path: &Path) -> bool {
    scorer::is_kenlm_file(path)
}

/// Whether `path` names a scorer to write.
pub(crate) fn is_scorer_output(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("scorer"))
}

/// Output labels from an `alphabet.txt` or a `.tflite` model.
pub(crate) fn read_labels(path: &Path) -> Result<Vec<String>> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tflite")) {
        let m = harken_model::DeepSpeech::load(path)
            .with_context(|| format!("while reading the alphabet of {}", path.display()))?;
        return Ok(m.metadata().alphabet.clone());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("while reading {}", path.display()))?;
    // DeepSpeech's form: one label per line, `#` starts a comment, `\#` is a literal `#`.
    let labels: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| if l == "\\#" { "#".to_owned() } else { l.to_owned() })
        .collect();
    if labels.is_empty() {
        bail!("{}: no labels", path.display());
    }
    Ok(labels)
}

fn read_words(path: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("while reading {}", path.display()))?
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// The words a KenLM file's ids stand for: its own strings, else found by hashing the
/// candidates (`--scorer-vocab`, the scorer's trie spelled with `--alphabet`).
fn id_names(lm: &KenLm, path: &Path, args: &ScorerArgs) -> Result<HashMap<u32, String>> {
    if let Some(v) = lm.vocabulary()? {
        return Ok(v.into_iter().enumerate().map(|(i, w)| (i as u32, w)).collect());
    }
    let mut candidates: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    if let Some(v) = &args.vocab {
        candidates.extend(read_words(v)?);
    }
    if let Ok(s) = Scorer::open(path) {
        let labels = match &args.alphabet {
            Some(a) => read_labels(a)?,
            None if s.header().utf8 => Vec::new(),
            None if args.vocab.is_none() => bail!(
                "{}: its KenLM part has no word strings (built with -v); give --alphabet (the \
                 model's alphabet.txt or .tflite) to read them from its trie, or --scorer-vocab",
                path.display()
            ),
            None => Vec::new(),
        };
        candidates.extend(s.vocabulary(&labels, usize::MAX));
    } else if args.vocab.is_none() {
        bail!(
            "{}: a KenLM binary without word strings; give --scorer-vocab with its words",
            path.display()
        );
    }
    let mut names = HashMap::new();
    for w in candidates {
        let id = lm.index(&w);
        if id != 0 || w == "<unk>" {
            names.entry(id).or_insert(w);
        }
    }
    let missing = lm.vocab_size() as usize - names.len().min(lm.vocab_size() as usize);
    if missing > 0 {
        eprintln!(
            "note: {missing} of {} LM words have no string among the candidates; their n-grams are left out",
            lm.vocab_size()
        );
    }
    Ok(names)
}

/// The n-gram tables of a KenLM binary or scorer.
pub(crate) fn read_tables(path: &Path, args: &ScorerArgs) -> Result<harken_lm::Tables> {
    let lm = KenLm::open(path).with_context(|| format!("while opening {}", path.display()))?;
    let names = id_names(&lm, path, args)?;
    Ok(lm.to_tables_with(&|id| names.get(&id).cloned())?)
}

/// The α/β and mode a written scorer gets: flags, else those of the source scorer, else
/// DeepSpeech's defaults.
fn header_for(args: &ScorerArgs, source: Option<&Path>) -> TrieHeader {
    let src = source.and_then(|p| Scorer::open(p).ok()).map(|s| s.header());
    TrieHeader {
        utf8: args.utf8 || src.is_some_and(|h| h.utf8),
        alpha: args.alpha.or(src.map(|h| h.alpha)).unwrap_or(DEFAULT_ALPHA),
        beta: args.beta.or(src.map(|h| h.beta)).unwrap_or(DEFAULT_BETA),
    }
}

/// The vocabulary of a written scorer: `--scorer-vocab`, else the source scorer's, else every
/// word of `tables`.
fn scorer_words(
    args: &ScorerArgs,
    source: Option<&Path>,
    labels: &[String],
    tables: &harken_lm::Tables,
) -> Result<Vec<String>> {
    if let Some(v) = &args.vocab {
        return read_words(v);
    }
    if let Some(s) = source.and_then(|p| Scorer::open(p).ok()) {
        return Ok(s.vocabulary(labels, usize::MAX));
    }
    Ok(tables.vocab.clone())
}

/// Write `tables` as a scorer package at `output` (under a temporary name, renamed when
/// complete). `source` is the model the tables came from, for its α, β and vocabulary.
pub(crate) fn write_scorer(
    tables: &harken_lm::Tables,
    output: &Path,
    args: &ScorerArgs,
    source: Option<&Path>,
) -> Result<u64> {
    let header = header_for(args, source);
    let labels = match (&args.alphabet, header.utf8) {
        (Some(a), _) => read_labels(a)?,
        (None, true) => Vec::new(),
        (None, false) => bail!(
            "writing a .scorer needs the model's alphabet: --alphabet alphabet.txt or \
             --alphabet model.tflite (or --utf8 for a bytes-output model)"
        ),
    };
    let words = scorer_words(args, source, &labels, tables)?;
    let lm_words: std::collections::HashSet<&str> =
        tables.vocab.iter().map(String::as_str).collect();
    let seqs = scorer::dictionary_words(&words, &labels, header.utf8);
    let in_lm = words.iter().filter(|w| lm_words.contains(w.as_str())).count();
    write_atomically(output, |out| {
        let mut buf = std::io::BufWriter::new(out);
        let lm_bytes = harken_lm::kenlm::write_trie(tables, &TrieOptions::deepspeech(), &mut buf)?;
        let trie = scorer::write_trie(&mut buf, lm_bytes, header, seqs.clone())?;
        buf.flush()?;
        Ok(lm_bytes + trie)
    })
    .inspect(|_| {
        eprintln!(
            "scorer: {} vocabulary words ({} spelled with the alphabet, {in_lm} in the LM), α {} β {}, {} mode",
            words.len(),
            seqs.len(),
            header.alpha,
            header.beta,
            if header.utf8 { "UTF-8" } else { "alphabet" }
        );
    })
}

/// A bare KenLM binary built with `-v` becomes a scorer by appending the trie to its bytes,
/// unchanged: what `generate_scorer_package` does.
pub(crate) fn append_trie(input: &Path, output: &Path, args: &ScorerArgs) -> Result<u64> {
    let lm = KenLm::open(input).with_context(|| format!("while opening {}", input.display()))?;
    let end = lm.end_of_search();
    let header = header_for(args, Some(input));
    let labels = match &args.alphabet {
        Some(a) => read_labels(a)?,
        None if header.utf8 => Vec::new(),
        None => bail!("writing a .scorer needs --alphabet (alphabet.txt or the .tflite model)"),
    };
    // With --scorer-vocab the n-gram tables are never needed: reading them costs the whole
    // model's size in memory (GBs for a full English LM) for nothing.
    let words = match &args.vocab {
        Some(v) => read_words(v)?,
        None => scorer_words(args, Some(input), &labels, &read_tables(input, args)?)?,
    };
    let seqs = scorer::dictionary_words(&words, &labels, header.utf8);
    let head = lm.bytes().get(..end as usize).context("KenLM file shorter than its search")?;
    write_atomically(output, |out| {
        let mut buf = std::io::BufWriter::new(out);
        buf.write_all(head)?;
        let trie = scorer::write_trie(&mut buf, end, header, seqs)?;
        buf.flush()?;
        Ok(end + trie)
    })
}

/// Whether `input` is a bare KenLM binary whose bytes a scorer can start with as they are.
pub(crate) fn is_bare_kenlm_without_strings(input: &Path) -> bool {
    is_kenlm(input)
        && Scorer::open(input).is_err()
        && KenLm::open(input).is_ok_and(|lm| {
            !lm.has_vocabulary()
                && lm.model_type() == harken_lm::kenlm::ModelType::QuantArrayTrie
                && lm.bytes().len() as u64 == lm.end_of_search()
        })
}

fn write_atomically(output: &Path, fill: impl FnOnce(std::fs::File) -> Result<u64>) -> Result<u64> {
    let tmp = output.with_extension("tmp-write");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("while creating {}", tmp.display()))?;
    match fill(file) {
        Ok(n) => {
            std::fs::rename(&tmp, output)
                .with_context(|| format!("while writing {}", output.display()))?;
            Ok(n)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `harken lm info` for a KenLM binary or scorer.
pub(crate) fn info(path: &Path, args: &ScorerArgs, verify: bool) -> Result<()> {
    let t0 = std::time::Instant::now();
    let lm = KenLm::open(path).with_context(|| format!("while opening {}", path.display()))?;
    let scorer = Scorer::open(path).ok();
    let load = t0.elapsed();
    let counts = lm.counts();
    let total: u64 = counts.iter().sum();
    let file_bytes = std::fs::metadata(path)?.len();
    println!("model      {}", path.display());
    println!(
        "format     {}",
        if scorer.is_some() { "DeepSpeech scorer package (KenLM + trie)" } else { "KenLM binary" }
    );
    println!("order      {}", lm.order());
    println!(
        "n-grams    {} (total {total})",
        counts.iter().map(ToString::to_string).collect::<Vec<_>>().join(" / ")
    );
    println!(
        "vocabulary {} (strings {})",
        lm.vocab_size(),
        if lm.has_vocabulary() { "included" } else { "not included" }
    );
    println!("kenlm      {:?}, search ends at byte {}", lm.model_type(), lm.end_of_search());
    match lm.quantization() {
        Some(q) => println!("quantized  {}-bit probabilities, {}-bit back-offs", q.prob, q.backoff),
        None => println!("quantized  no (f32)"),
    }
    if let Some(b) = lm.pointer_compression_bits() {
        println!("pointers   compressed (-a {b})");
    }
    println!("bytes      {file_bytes} ({:.2} per n-gram)", file_bytes as f64 / total.max(1) as f64);
    if let Some(s) = &scorer {
        let h = s.header();
        println!(
            "trie       {} states, {} arcs, {} mode, α {} β {}",
            s.fst().num_states(),
            s.fst().num_arcs(),
            if h.utf8 { "UTF-8" } else { "alphabet" },
            h.alpha,
            h.beta
        );
        if verify {
            s.fst().verify()?;
            println!("trie check ok");
        }
        if let Some(a) = &args.alphabet {
            let labels = read_labels(a)?;
            s.check_alphabet(&labels)?;
            println!("alphabet   matches {} ({} labels)", a.display(), labels.len());
        }
    }
    println!("load       {:.3} ms (mapped)", load.as_secs_f64() * 1000.0);
    Ok(())
}

/// `harken lm eval` on a KenLM binary or scorer, scored by the reader the decoder uses.
pub(crate) fn eval(path: &Path, text: &str, per_word: bool) -> Result<()> {
    let lm = KenLm::open(path).with_context(|| format!("while opening {}", path.display()))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut sum, mut sum_iv, mut words, mut oov, mut sentences) =
        (0f64, 0f64, 0usize, 0usize, 0usize);
    let t0 = std::time::Instant::now();
    for line in text.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.is_empty() {
            continue;
        }
        sentences += 1;
        let mut state = lm.begin_sentence();
        let mut scores = Vec::with_capacity(toks.len() + 1);
        for t in toks.iter().copied().map(Some).chain([None]) {
            let id = t.map_or(lm.end_sentence_id(), |w| lm.index(w));
            let (p, next) = lm.score(&state, id);
            state = next;
            scores.push(p);
            sum += f64::from(p);
            if t.is_some() {
                words += 1;
            }
            if id == 0 {
                oov += 1;
            } else {
                sum_iv += f64::from(p);
            }
        }
        if per_word {
            let s: Vec<String> = scores.iter().map(|p| format!("{p:.6}")).collect();
            writeln!(out, "{}", s.join(" "))?;
        }
    }
    if per_word {
        return Ok(());
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = (words + sentences) as f64;
    writeln!(
        out,
        "sentences  {sentences}   words {words}   OOV {oov} ({:.2}%)",
        oov as f64 * 100.0 / words.max(1) as f64
    )?;
    writeln!(
        out,
        "perplexity {:.3} (incl. OOV)   {:.3} (excl. OOV)",
        10f64.powf(-sum / n.max(1.0)),
        10f64.powf(-sum_iv / (n - oov as f64).max(1.0))
    )?;
    writeln!(out, "queries    {} in {secs:.3} s: {:.0} per second", n as u64, n / secs.max(1e-9))?;
    Ok(())
}

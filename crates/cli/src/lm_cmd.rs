//! `harken lm …`: convert ARPA to the binary format, inspect, evaluate.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use harken_lm::{Model, arpa};

/// Subcommands of `harken lm`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum LmCommand {
    /// Estimate a model from text (interpolated modified Kneser-Ney, as KenLM's lmplz).
    Build(BuildArgs),
    /// Shrink a model to a byte budget by relative-entropy (Stolcke) pruning.
    Prune(PruneArgs),
    /// Keep only n-grams over a word list (as KenLM's filter).
    Filter(FilterArgs),
    /// Convert an ARPA model (plain or gzip) to the binary format, or a binary back to ARPA.
    Convert(ConvertArgs),
    /// Orders, n-gram counts, bytes and quantization of a model.
    Info(InfoArgs),
    /// Perplexity (with and without OOVs), OOV rate and query throughput on a text.
    Eval(EvalArgs),
    /// Build a CTC vocabulary trie from a model's vocabulary or a word list.
    Trie(TrieArgs),
    /// Search the LM weight α and word bonus β of a CTC package on a dev manifest.
    Tune(TuneArgs),
    /// Draw random sentences from a model (synthetic corpora of a known distribution).
    Sample(SampleArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct SampleArgs {
    /// Model file (ARPA, ARPA.gz or binary).
    model: PathBuf,
    /// Sentences to draw.
    #[arg(long, default_value_t = 1000)]
    sentences: u64,
    /// Seed: the same seed draws the same text.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Longest sentence, in words.
    #[arg(long, default_value_t = 100)]
    max_words: usize,
    /// Output file (default: standard output).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

fn sample(a: &SampleArgs) -> Result<()> {
    let m = Model::load(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    let tables = m.to_tables();
    let mut sampler = harken_lm::sample::Sampler::new(&tables, a.seed);
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = if a.output.is_some() && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(a.sentences)
    } else {
        indicatif::ProgressBar::hidden()
    };
    for _ in 0..a.sentences {
        writeln!(out, "{}", sampler.sentence(a.max_words).join(" "))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.flush()?;
    Ok(())
}

#[derive(clap::Args, Debug)]
pub(crate) struct TuneArgs {
    /// CTC package directory.
    model: PathBuf,
    /// Dev manifest: JSON lines with `audio` (relative to the manifest) and `text`.
    #[arg(long)]
    manifest: PathBuf,
    /// α values tried.
    #[arg(long, value_delimiter = ',', default_value = "0.2,0.35,0.5,0.75,1.0,1.5")]
    alphas: Vec<f32>,
    /// β values tried.
    #[arg(long, value_delimiter = ',', default_value = "0,0.5,1,2,3")]
    betas: Vec<f32>,
    /// Beam width during the search.
    #[arg(long, default_value_t = 32)]
    beam: usize,
    /// Write the best α/β into the package's MLmodel.
    #[arg(long)]
    write: bool,
}

/// Words for WER: lowercase, punctuation dropped (apostrophes kept inside words), "and"
/// dropped, as the team's reference normalisation does for text without digits.
fn wer_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_owned())
        .filter(|w| !w.is_empty() && w != "and")
        .collect()
}

fn tune(a: &TuneArgs) -> Result<()> {
    let pkg = harken_package::Package::open(&a.model)
        .with_context(|| format!("opening package {}", a.model.display()))?;
    let engine =
        harken_engine::Engine::load_package(&pkg, &harken_engine::EngineConfig::default())?;
    let base = a.manifest.parent().unwrap_or(std::path::Path::new("."));
    let text = std::fs::read_to_string(&a.manifest)
        .with_context(|| format!("reading {}", a.manifest.display()))?;
    let mut items = Vec::new();
    let bar = indicatif::ProgressBar::new(text.lines().count() as u64);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let (Some(audio), Some(reference)) = (v["audio"].as_str(), v["text"].as_str()) else {
            continue;
        };
        bar.inc(1);
        if reference.trim().is_empty() {
            continue;
        }
        let pcm =
            harken_audio::decode_file(&base.join(audio), &harken_audio::DecodeOptions::whisper())
                .with_context(|| format!("decoding {audio}"))?;
        let (lp, _) = engine.ctc_posteriors(&pcm).context("--model is not a CTC package")??;
        items.push((lp, wer_words(reference)));
    }
    bar.finish_and_clear();
    let words: usize = items.iter().map(|i| i.1.len()).sum();
    let mut best: Option<(f32, f32, usize)> = None;
    println!("alpha  beta   WER");
    for &alpha in &a.alphas {
        for &beta in &a.betas {
            let opts = harken_engine::TranscribeOptions {
                lm: harken_engine::LmOptions {
                    alpha: Some(alpha),
                    beta: Some(beta),
                    beam: Some(a.beam),
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut edits = 0;
            for (lp, reference) in &items {
                let hyp = engine.ctc_decode(lp, &opts)?;
                edits += harken_ctc::edit_distance(&wer_words(&hyp), reference);
            }
            println!("{alpha:5.2} {beta:5.2} {:6.2}%", 100.0 * edits as f64 / words.max(1) as f64);
            if best.is_none_or(|b| edits < b.2) {
                best = Some((alpha, beta, edits));
            }
        }
    }
    let Some((alpha, beta, edits)) = best else { anyhow::bail!("no α/β values given") };
    println!(
        "best: alpha {alpha} beta {beta}: WER {:.2}% over {} utterances, {words} words",
        100.0 * edits as f64 / words.max(1) as f64,
        items.len()
    );
    if a.write {
        let mut d = pkg.flavor().decoding.clone();
        d.lm_alpha = Some(alpha);
        d.lm_beta = Some(beta);
        let new = pkg.set_decoding(d)?;
        println!("wrote lm_alpha/lm_beta into {} → {}", a.model.display(), new.label());
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub(crate) struct TrieArgs {
    /// A language model (its vocabulary is used) or, with `--words`, a word list (one a line).
    input: PathBuf,
    /// Read `input` as a word list.
    #[arg(long)]
    words: bool,
    /// Alphabet file (default: English letters, apostrophe and space).
    #[arg(long)]
    alphabet: Option<PathBuf>,
    /// Output trie file.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ConvertArgs {
    /// Input model (ARPA, ARPA.gz, CMU Sphinx .lm.bin or binary).
    input: PathBuf,
    /// Output: `.arpa` writes ARPA, anything else the binary format.
    #[arg(short, long)]
    output: PathBuf,
    /// Quantize probabilities and back-offs of orders ≥ 2 to 8 bits.
    #[arg(long)]
    quantize: bool,
    /// Add n-gram hash indexes to the binary: one probe per lookup instead of a binary search,
    /// for 8 more bytes per n-gram.
    #[arg(long)]
    hash_index: bool,
    /// Memory for sorting an ARPA model's records (e.g. 500MB); beyond it they are sorted on
    /// disk, so a model larger than memory converts.
    #[arg(short = 'S', long, default_value = "1GB")]
    memory: String,
    /// Directory for the temporary sorted files (default: the system's temporary directory).
    #[arg(short = 'T', long)]
    temp_dir: Option<PathBuf>,
    #[command(flatten)]
    scorer: crate::scorer_io::ScorerArgs,
}

#[derive(clap::Args, Debug)]
pub(crate) struct BuildArgs {
    /// Training text: one sentence per line, tokens separated by spaces.
    corpus: PathBuf,
    /// Order.
    #[arg(long, default_value_t = 3)]
    order: usize,
    /// Output: `.arpa` writes ARPA, anything else the binary format.
    #[arg(short, long)]
    output: PathBuf,
    /// Quantize the binary to 8 bits.
    #[arg(long)]
    quantize: bool,
    /// Count thresholds per order, as `lmplz --prune` (e.g. `0 1 1` drops singleton bigrams
    /// and trigrams; the last value repeats for higher orders).
    #[arg(long, num_args = 1.., value_name = "COUNT")]
    prune: Vec<u64>,
    /// Memory for n-gram records (e.g. 500MB, 4GB); beyond it they are sorted on disk, so
    /// text larger than memory still builds. The vocabulary and the finished model come on top.
    #[arg(short = 'S', long, default_value = "1GB")]
    memory: String,
    /// Directory for the temporary sorted files (default: the system's temporary directory).
    #[arg(short = 'T', long)]
    temp_dir: Option<PathBuf>,
    /// Add n-gram hash indexes to the binary (faster lookups, 8 more bytes per n-gram).
    #[arg(long)]
    hash_index: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct PruneArgs {
    /// Input model (ARPA, ARPA.gz or binary).
    input: PathBuf,
    /// Largest binary size, e.g. 200MB.
    #[arg(long)]
    max_bytes: String,
    /// Output: `.arpa` writes ARPA, anything else the binary format.
    #[arg(short, long)]
    output: PathBuf,
    /// Budget and output for the 8-bit quantized binary.
    #[arg(long)]
    quantize: bool,
    /// First keep only the N most probable words (the rest become `<unk>`, which takes their
    /// probability): for budgets smaller than the unigrams alone.
    #[arg(long, value_name = "N")]
    max_vocab: Option<usize>,
    #[command(flatten)]
    scorer: crate::scorer_io::ScorerArgs,
}

#[derive(clap::Args, Debug)]
pub(crate) struct FilterArgs {
    /// Input model (ARPA, ARPA.gz or binary).
    input: PathBuf,
    /// Word list: words separated by white space.
    #[arg(long)]
    vocab: PathBuf,
    /// Output: `.arpa` writes ARPA, anything else the binary format.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    scorer: crate::scorer_io::ScorerArgs,
}

#[derive(clap::Args, Debug)]
pub(crate) struct InfoArgs {
    /// Model file.
    model: PathBuf,
    /// Also check the binary's checksum (reads the whole file).
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    scorer: crate::scorer_io::ScorerArgs,
}

#[derive(clap::Args, Debug)]
pub(crate) struct EvalArgs {
    /// Model file.
    model: PathBuf,
    /// Text, one sentence per line, tokens separated by spaces.
    text: PathBuf,
    /// Print every token's log10 probability (one line per sentence).
    #[arg(long)]
    per_word: bool,
    #[command(flatten)]
    scorer: crate::scorer_io::ScorerArgs,
}

/// The tables of any model file (a `.scorer` or KenLM binary through `scorer`).
fn read_tables(
    path: &std::path::Path,
    scorer: &crate::scorer_io::ScorerArgs,
) -> Result<harken_lm::Tables> {
    Ok(if crate::scorer_io::is_kenlm(path) {
        crate::scorer_io::read_tables(path, scorer)?
    } else if harken_lm::is_binary(path) {
        Model::open(path)?.to_tables()
    } else {
        arpa::read(arpa::open(path)?)
            .with_context(|| format!("while reading {}", path.display()))?
    })
}

/// ARPA when the output ends in `.arpa`, a DeepSpeech scorer package when it ends in
/// `.scorer`, else the binary format. `source` is the input model (for a scorer's α, β and
/// vocabulary). Returns bytes written.
fn write_model(
    tables: &harken_lm::Tables,
    quantize: bool,
    output: &std::path::Path,
    scorer: &crate::scorer_io::ScorerArgs,
    source: &std::path::Path,
) -> Result<u64> {
    if crate::scorer_io::is_scorer_output(output) {
        let source = crate::scorer_io::is_kenlm(source).then_some(source);
        return crate::scorer_io::write_scorer(tables, output, scorer, source);
    }
    stream_model(output, quantize, false, |sink| Ok(harken_lm::sink::feed(tables, sink)?))
}

/// Write a model into `output` through a sink chosen by its extension (`.arpa`: ARPA, else the
/// binary format), as `fill` produces it: under a temporary name, renamed when complete and
/// removed on failure, so a failed run never leaves a partial model under the real name.
fn stream_model<T>(
    output: &std::path::Path,
    quantize: bool,
    hash_index: bool,
    fill: impl FnOnce(&mut dyn harken_lm::sink::Sink) -> Result<T>,
) -> Result<T> {
    if crate::scorer_io::is_scorer_output(output) {
        anyhow::bail!(
            "{}: write the model as ARPA or binary first, then `harken lm convert MODEL {} --alphabet …` makes the scorer",
            output.display(),
            output.display()
        );
    }
    let tmp = output.with_extension("tmp-write");
    let written = (|| -> Result<T> {
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("while creating {}", tmp.display()))?;
        let out = std::io::BufWriter::new(file);
        let mut sink: Box<dyn harken_lm::sink::Sink> =
            if output.extension().is_some_and(|e| e == "arpa") {
                Box::new(harken_lm::sink::ArpaSink::new(out))
            } else {
                Box::new(harken_lm::BinarySink::new(out, quantize, hash_index)?)
            };
        fill(sink.as_mut())
    })();
    match written {
        Ok(v) => {
            std::fs::rename(&tmp, output)
                .with_context(|| format!("while writing {}", output.display()))?;
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

pub(crate) fn run(cmd: LmCommand) -> Result<ExitCode> {
    match cmd {
        LmCommand::Build(a) => {
            let t0 = Instant::now();
            let f = std::fs::File::open(&a.corpus)
                .with_context(|| format!("while opening {}", a.corpus.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                indicatif::ProgressBar::new(len)
            } else {
                indicatif::ProgressBar::hidden()
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:24} [{bar:30}] {bytes}/{total_bytes} {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let memory = usize::try_from(crate::model::parse_bytes(&a.memory)?)
                .context("--memory is larger than this machine's address space")?;
            let progress = |stage: &str| {
                bar.set_message(stage.to_owned());
                tracing::debug!(stage, elapsed_s = t0.elapsed().as_secs_f64(), "lm build");
            };
            let opts = harken_lm::build::BuildOptions {
                order: a.order,
                prune: a.prune.clone(),
                memory,
                temp_dir: a.temp_dir.clone().unwrap_or_else(std::env::temp_dir),
                progress: Some(&progress),
            };
            let text = std::io::BufReader::new(bar.wrap_read(f));
            let report = stream_model(&a.output, a.quantize, a.hash_index, |sink| {
                Ok(harken_lm::build::build_into(text, &opts, sink)?)
            })
            .with_context(|| format!("while building {}", a.output.display()))?;
            bar.finish_and_clear();
            let bytes = std::fs::metadata(&a.output)?.len();
            let counts: Vec<String> = report.counts.iter().map(ToString::to_string).collect();
            let d: Vec<String> = report
                .discounts
                .iter()
                .map(|d| format!("{:.3}/{:.3}/{:.3}", d.d[0], d.d[1], d.d[2]))
                .collect();
            println!(
                "{} → {}: order {}, n-grams {}, discounts {}, {bytes} bytes, {:.1} s; {} sorted runs on disk, {} temporary bytes",
                a.corpus.display(),
                a.output.display(),
                report.counts.len(),
                counts.join("/"),
                d.join(" "),
                t0.elapsed().as_secs_f64(),
                report.runs,
                report.temp_bytes,
            );
        }
        LmCommand::Tune(a) => tune(&a)?,
        LmCommand::Sample(a) => sample(&a)?,
        LmCommand::Trie(a) => {
            let alphabet = match &a.alphabet {
                Some(p) => harken_ctc::Alphabet::parse(
                    &std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                )?,
                None => harken_ctc::Alphabet::english(),
            };
            let words: Vec<String> = if a.words {
                std::fs::read_to_string(&a.input)
                    .with_context(|| format!("reading {}", a.input.display()))?
                    .lines()
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty())
                    .collect()
            } else {
                let m = harken_lm::Model::load(&a.input)
                    .with_context(|| format!("loading {}", a.input.display()))?;
                (0..m.vocab_size() as u32)
                    .map(|i| m.word(i).to_owned())
                    .filter(|w| !matches!(w.as_str(), "<s>" | "</s>" | "<unk>"))
                    .collect()
            };
            let (trie, skipped) =
                harken_ctc::VocabTrie::from_words(&alphabet, words.iter().map(String::as_str));
            let bytes = trie.to_bytes();
            std::fs::write(&a.output, &bytes)
                .with_context(|| format!("writing {}", a.output.display()))?;
            println!(
                "{}: {} words, {} nodes, {} bytes; {skipped} words skipped (characters outside the alphabet)",
                a.output.display(),
                trie.len(),
                trie.nodes(),
                bytes.len()
            );
        }
        LmCommand::Prune(a) => {
            let max = crate::model::parse_bytes(&a.max_bytes)?;
            let mut tables = read_tables(&a.input, &a.scorer)?;
            // A scorer's KenLM part is quantized to 8 bits: budget it as Harken's quantized
            // binary, which is no smaller than KenLM's bit-packed trie.
            let quantize = a.quantize || crate::scorer_io::is_scorer_output(&a.output);
            let before = harken_lm::prune::binary_size(&tables, quantize);
            let t0 = Instant::now();
            if let Some(n) = a.max_vocab {
                tables = harken_lm::prune::shrink_vocabulary(&tables, n)?;
            }
            let pruned = harken_lm::prune::prune_to_bytes(&tables, max, quantize)?;
            let bytes = write_model(&pruned, a.quantize, &a.output, &a.scorer, &a.input)?;
            let counts: Vec<String> =
                (1..=pruned.order()).map(|k| pruned.count(k).to_string()).collect();
            println!(
                "{} → {}: {before} → {} binary bytes (budget {max}), n-grams {}, {:.1} s; wrote {bytes} bytes",
                a.input.display(),
                a.output.display(),
                harken_lm::prune::binary_size(&pruned, quantize),
                counts.join("/"),
                t0.elapsed().as_secs_f64()
            );
        }
        LmCommand::Filter(a) => {
            let words = std::fs::read_to_string(&a.vocab)
                .with_context(|| format!("while reading {}", a.vocab.display()))?;
            let keep: std::collections::HashSet<String> =
                words.split_whitespace().map(str::to_owned).collect();
            let tables = read_tables(&a.input, &a.scorer)?;
            let filtered = harken_lm::prune::filter_vocabulary(&tables, &keep)?;
            let bytes = write_model(&filtered, false, &a.output, &a.scorer, &a.input)?;
            println!(
                "{} → {}: vocabulary {} → {}, {bytes} bytes",
                a.input.display(),
                a.output.display(),
                tables.vocab.len(),
                filtered.vocab.len()
            );
        }
        LmCommand::Convert(a) if crate::scorer_io::is_scorer_output(&a.output) => {
            let t0 = Instant::now();
            let bytes = if crate::scorer_io::is_bare_kenlm_without_strings(&a.input) {
                crate::scorer_io::append_trie(&a.input, &a.output, &a.scorer)?
            } else {
                let tables = read_tables(&a.input, &a.scorer)?;
                write_model(&tables, true, &a.output, &a.scorer, &a.input)?
            };
            println!(
                "{} → {}: scorer package, {bytes} bytes, {:.1} s",
                a.input.display(),
                a.output.display(),
                t0.elapsed().as_secs_f64()
            );
        }
        LmCommand::Convert(a) => {
            let t0 = Instant::now();
            let memory = usize::try_from(crate::model::parse_bytes(&a.memory)?)
                .context("--memory is larger than this machine's address space")?;
            let temp_dir = a.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
            let counts = stream_model(&a.output, a.quantize, a.hash_index, |sink| {
                if crate::scorer_io::is_kenlm(&a.input) {
                    let t = crate::scorer_io::read_tables(&a.input, &a.scorer)?;
                    harken_lm::sink::feed(&t, sink)?;
                    return Ok((1..=t.order()).map(|k| t.count(k)).collect());
                }
                if harken_lm::is_binary(&a.input) {
                    let m = Model::open(&a.input)?;
                    m.write_to(sink)?;
                    return Ok(m.counts());
                }
                if harken_lm::sphinx::is_sphinx(&a.input) {
                    let (t, report) = harken_lm::sphinx::read_file(&a.input)
                        .with_context(|| format!("while reading {}", a.input.display()))?;
                    if report.records != report.header_counts || report.repeats_dropped > 0 {
                        eprintln!(
                            "note: CMU Sphinx header counts {:?}, records linked {:?}, {} repeated n-grams dropped (first kept)",
                            report.header_counts, report.records, report.repeats_dropped
                        );
                    }
                    harken_lm::sink::feed(&t, sink)?;
                    return Ok((1..=t.order()).map(|k| t.count(k)).collect());
                }
                // ARPA streams through: records sorted within --memory, into the sink.
                harken_lm::arpa::read_into(arpa::open(&a.input)?, sink, memory, &temp_dir)
                    .with_context(|| format!("while reading {}", a.input.display()))
            })?;
            let bytes = std::fs::metadata(&a.output)?.len();
            let total: usize = counts.iter().sum();
            let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
            println!(
                "{} → {}: order {}, n-grams {}, {bytes} bytes ({:.1} bytes/n-gram), {:.1} s",
                a.input.display(),
                a.output.display(),
                counts.len(),
                counts.join("/"),
                bytes as f64 / total.max(1) as f64,
                t0.elapsed().as_secs_f64()
            );
        }
        LmCommand::Info(a) if crate::scorer_io::is_kenlm(&a.model) => {
            crate::scorer_io::info(&a.model, &a.scorer, a.verify)?;
        }
        LmCommand::Info(a) => {
            let t0 = Instant::now();
            let m = Model::load(&a.model)?;
            let load = t0.elapsed();
            if a.verify {
                m.verify()?;
            }
            let counts = m.counts();
            let total: usize = counts.iter().sum();
            println!("model      {}", a.model.display());
            println!("order      {}", m.order());
            println!(
                "n-grams    {} (total {total})",
                counts.iter().map(ToString::to_string).collect::<Vec<_>>().join(" / ")
            );
            println!("vocabulary {}", m.vocab_size());
            println!(
                "bytes      {} ({:.2} per n-gram)",
                m.bytes(),
                m.bytes() as f64 / total.max(1) as f64
            );
            println!(
                "quantized  {}",
                if m.quantized() { "8-bit (orders ≥ 2)" } else { "no (f32)" }
            );
            println!(
                "lookups    {}",
                if m.hash_indexed() { "n-gram hash index" } else { "binary search" }
            );
            println!("load       {:.3} ms", load.as_secs_f64() * 1000.0);
            if a.verify {
                println!("checksum   ok");
            }
        }
        LmCommand::Eval(a) => {
            let text = std::fs::read_to_string(&a.text)
                .with_context(|| format!("while reading {}", a.text.display()))?;
            if crate::scorer_io::is_kenlm(&a.model) {
                crate::scorer_io::eval(&a.model, &text, a.per_word)?;
                return Ok(ExitCode::SUCCESS);
            }
            let m = Model::load(&a.model)?;
            if a.per_word {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                for line in text.lines() {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    if words.is_empty() {
                        continue;
                    }
                    let scores: Vec<String> =
                        m.score_sentence(&words).iter().map(|(p, _)| format!("{p:.6}")).collect();
                    writeln!(out, "{}", scores.join(" "))?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let t0 = Instant::now();
            let e = harken_lm::evaluate(&m, &text);
            let secs = t0.elapsed().as_secs_f64();
            let queries = e.words + e.sentences;
            println!(
                "sentences  {}   words {}   OOV {} ({:.2}%)",
                e.sentences,
                e.words,
                e.oov,
                e.oov_rate() * 100.0
            );
            println!(
                "perplexity {:.3} (incl. OOV)   {:.3} (excl. OOV)",
                e.perplexity(),
                e.perplexity_no_oov()
            );
            println!(
                "queries    {queries} in {:.3} s: {:.0} per second",
                secs,
                queries as f64 / secs.max(1e-9)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

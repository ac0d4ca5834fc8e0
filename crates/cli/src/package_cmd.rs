//! `harken model …`: build, inspect, verify, push and pull packages; list and clean the cache.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use harken_artifacts::ModelUri;
use harken_package::{Decoding, PackOptions, Package};
use indicatif::{ProgressBar, ProgressStyle};

/// Subcommands of `harken model`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ModelCommand {
    /// Build a package from a CTranslate2 or Hugging Face Whisper directory, a CTC model
    /// directory, or a DeepSpeech / Coqui STT `.tflite` model (with `--scorer`).
    Pack(PackArgs),
    /// Write an int8 copy of a Whisper directory (model.int8.safetensors: 8-bit linear layers,
    /// memory-mapped and used in place at load) beside its tokenizer and config.
    Quantize(QuantizeArgs),
    /// Show a package's manifest (a directory or any model URI).
    Inspect(InspectArgs),
    /// Check every file's sha256; `--self-test` also transcribes the package's clips.
    Verify(VerifyArgs),
    /// Upload a package to s3://BUCKET/PREFIX, a directory, or models:/NAME (MLflow registry).
    Push(PushArgs),
    /// Fetch a model URI into the cache and print where it is.
    Pull(PullArgs),
    /// List the packages in the cache.
    Ls(LsArgs),
    /// Remove unused content from the cache; with --max-bytes, evict least-recently-used packages.
    Gc(GcArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct PackArgs {
    /// Source model directory, or a DeepSpeech / Coqui STT `.tflite` file (a directory holding
    /// one `.tflite` and at most one `.scorer` works too).
    src: PathBuf,
    /// The `.scorer` package to ship with a `.tflite` model (checked against its alphabet).
    #[arg(long)]
    scorer: Option<PathBuf>,
    /// Output package directory (must not exist or be empty).
    #[arg(short, long)]
    output: PathBuf,
    /// Package name (default: the source directory's name).
    #[arg(long)]
    name: Option<String>,
    /// Package version (default 1).
    #[arg(long = "pkg-version")]
    pkg_version: Option<String>,
    /// Default beam width recorded in the package.
    #[arg(long)]
    beam: Option<u32>,
    /// Default language recorded in the package.
    #[arg(long)]
    language: Option<String>,
    /// Default LM weight α recorded in the package (CTC models, LM fusion).
    #[arg(long)]
    lm_alpha: Option<f32>,
    /// Default word bonus β recorded in the package.
    #[arg(long)]
    lm_beta: Option<f32>,
    /// A self-test clip and its expected text, as AUDIO=TEXT (repeatable).
    #[arg(long = "self-test", value_name = "AUDIO=TEXT")]
    self_test: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct QuantizeArgs {
    /// Source Whisper directory (CTranslate2 or Hugging Face), or an installed name.
    src: String,
    /// Output directory (must not exist or be empty).
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(clap::Args, Debug)]
pub(crate) struct InspectArgs {
    /// Package directory or model URI.
    model: String,
    /// Print the manifest as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct VerifyArgs {
    /// Package directory or model URI.
    model: String,
    /// Also transcribe the self-test clips and compare with the expected text.
    #[arg(long)]
    self_test: bool,
    /// Compute threads for the self-test.
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct PushArgs {
    /// Package directory.
    package: PathBuf,
    /// Destination: s3://BUCKET/PREFIX, a directory, or models:/NAME.
    uri: String,
    /// For models:/NAME: point this alias at the new version.
    #[arg(long)]
    alias: Option<String>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct PullArgs {
    /// Model URI.
    uri: String,
    /// Print a JSON report.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct LsArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct GcArgs {
    /// Evict least-recently-used packages until the cache holds at most this (e.g. 2GB).
    #[arg(long)]
    max_bytes: Option<String>,
    /// Evict every package not in use.
    #[arg(long, conflicts_with = "max_bytes")]
    all: bool,
}

pub(crate) fn run(cmd: ModelCommand) -> Result<ExitCode> {
    match cmd {
        ModelCommand::Pack(a) => pack(a),
        ModelCommand::Quantize(a) => quantize(a),
        ModelCommand::Inspect(a) => inspect(a),
        ModelCommand::Verify(a) => verify(a),
        ModelCommand::Push(a) => push(a),
        ModelCommand::Pull(a) => pull(a),
        ModelCommand::Ls(a) => ls(a),
        ModelCommand::Gc(a) => gc(a),
    }
}

fn bytes_bar(total: u64, msg: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(msg.to_owned());
    bar
}

fn quantize(a: QuantizeArgs) -> Result<ExitCode> {
    let resolved = crate::model::resolve(Some(&a.src))?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("quantizing {} to int8", resolved.dir.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let started = std::time::Instant::now();
    let report = harken_engine::quantize_model_dir(&resolved.dir, &a.output)
        .with_context(|| format!("while quantizing {}", resolved.dir.display()))?;
    spinner.finish_and_clear();
    println!(
        "{}: {} matrices in int8, {} tensors kept in f32, {:.1} MB, {:.1} s",
        a.output.join("model.int8.safetensors").display(),
        report.quantized,
        report.kept,
        report.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn pack(a: PackArgs) -> Result<ExitCode> {
    let mut self_test = Vec::new();
    for s in &a.self_test {
        let Some((audio, text)) = s.split_once('=') else {
            bail!("--self-test {s:?}: expected AUDIO=TEXT");
        };
        self_test.push((PathBuf::from(audio), text.to_owned()));
    }
    let created_unix_s = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.parse().ok());
    let opts = PackOptions {
        name: a.name,
        version: a.pkg_version,
        decoding: Decoding {
            beam_size: a.beam,
            language: a.language,
            lm_alpha: a.lm_alpha,
            lm_beta: a.lm_beta,
        },
        self_test,
        created_unix_s,
    };
    let bar = bytes_bar(0, "pack");
    let mut progress = |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let pkg = match deepspeech_sources(&a.src, a.scorer.as_deref())? {
        Some((model, scorer)) => {
            let n_mels = check_deepspeech(&model, scorer.as_deref())?;
            harken_package::pack_deepspeech(
                &model,
                scorer.as_deref(),
                n_mels,
                &a.output,
                &opts,
                &mut progress,
            )
        }
        None if a.scorer.is_some() => {
            bail!("--scorer goes with a DeepSpeech / Coqui STT .tflite model")
        }
        None => harken_package::pack(&a.src, &a.output, &opts, &mut progress),
    }
    .with_context(|| format!("while packing {}", a.src.display()))?;
    bar.finish_and_clear();
    println!("{}  {}", pkg.label(), pkg.dir().display());
    Ok(ExitCode::SUCCESS)
}

/// The `.tflite` model and `.scorer` to pack when `src` is a DeepSpeech model: the file
/// itself, or a directory holding exactly one `.tflite` (and at most one `.scorer`).
fn deepspeech_sources(
    src: &std::path::Path,
    scorer: Option<&std::path::Path>,
) -> Result<Option<(PathBuf, Option<PathBuf>)>> {
    let has_ext = |p: &std::path::Path, e: &str| {
        p.extension().is_some_and(|x| x.eq_ignore_ascii_case(e)) && p.is_file()
    };
    if has_ext(src, "tflite") {
        return Ok(Some((src.to_owned(), scorer.map(ToOwned::to_owned))));
    }
    if !src.is_dir() {
        return Ok(None);
    }
    let mut models = Vec::new();
    let mut scorers = Vec::new();
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let p = entry.with_context(|| format!("reading {}", src.display()))?.path();
        if has_ext(&p, "tflite") {
            models.push(p);
        } else if has_ext(&p, "scorer") {
            scorers.push(p);
        }
    }
    match (models.as_slice(), scorers.as_slice()) {
        ([], _) => Ok(None),
        ([m], []) => Ok(Some((m.clone(), scorer.map(ToOwned::to_owned)))),
        ([m], [s]) => {
            Ok(Some((m.clone(), Some(scorer.map_or_else(|| s.clone(), ToOwned::to_owned)))))
        }
        ([_], _) if scorer.is_some() => {
            let (m, s) = (models[0].clone(), scorer.map(ToOwned::to_owned));
            Ok(Some((m, s)))
        }
        ([_], _) => bail!(
            "{} holds {} .scorer files; name the one to ship with --scorer",
            src.display(),
            scorers.len()
        ),
        _ => bail!(
            "{} holds {} .tflite models; pass the one to pack as the source",
            src.display(),
            models.len()
        ),
    }
}

/// Open the model and the scorer as `serve` would, so that a package never ships a pair
/// that does not load (a scorer made for another alphabet); returns the filterbank size.
fn check_deepspeech(model: &std::path::Path, scorer: Option<&std::path::Path>) -> Result<u32> {
    let m = harken_model::DeepSpeech::load(model)
        .with_context(|| format!("while reading {}", model.display()))?;
    if let Some(s) = scorer {
        let sc = harken_ctc::Scorer::open(s)
            .with_context(|| format!("while reading {}", s.display()))?;
        sc.check_alphabet(&m.metadata().alphabet)
            .with_context(|| format!("{} does not fit {}", s.display(), model.display()))?;
    }
    u32::try_from(m.mfcc_params().channels).context("filterbank size")
}

/// A local package directory, or a URI pulled through the cache.
fn open_any(model: &str) -> Result<(Package, Option<harken_artifacts::Resolved>)> {
    let path = std::path::Path::new(model);
    if path.is_dir() {
        return Ok((Package::open(path)?, None));
    }
    let resolved = crate::model::resolve(Some(model))?;
    let pkg = resolved.package.clone().with_context(|| {
        format!("{model} is a raw model directory, not a package (run `harken model pack`)")
    })?;
    Ok((pkg, Some(resolved)))
}

fn inspect(a: InspectArgs) -> Result<ExitCode> {
    let (pkg, _r) = open_any(&a.model)?;
    let f = pkg.flavor();
    if a.json {
        let files: Vec<_> = f
            .files
            .iter()
            .map(|e| serde_json::json!({"path": e.path, "size": e.size, "sha256": e.sha256}))
            .collect();
        let out = serde_json::json!({
            "name": f.name, "version": f.version, "family": f.family.name(),
            "digest": format!("sha256:{}", pkg.digest()), "dir": pkg.dir(),
            "bytes": pkg.total_bytes(), "files": files,
            "frontend": {"sample_rate_hz": f.frontend.sample_rate_hz, "n_mels": f.frontend.n_mels},
            "decoding": {"beam_size": f.decoding.beam_size, "lm_alpha": f.decoding.lm_alpha, "lm_beta": f.decoding.lm_beta, "language": f.decoding.language},
            "self_test": f.self_test.iter().map(|t| serde_json::json!({"audio": t.audio, "text": t.text})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("package   {} {}", f.name, f.version);
    println!("family    {}", f.family.name());
    println!("digest    sha256:{}", pkg.digest());
    println!("dir       {}", pkg.dir().display());
    println!("frontend  {} Hz, {} mel bins", f.frontend.sample_rate_hz, f.frontend.n_mels);
    if let Some(b) = f.decoding.beam_size {
        println!("beam      {b}");
    }
    println!("files     {} ({} bytes)", f.files.len(), pkg.total_bytes());
    for e in &f.files {
        println!("  {:>12}  {}  {}", e.size, &e.sha256[..16], e.path);
    }
    for t in &f.self_test {
        println!("self-test {} → {:?}", t.audio, t.text);
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let (pkg, _r) = open_any(&a.model)?;
    let bar = bytes_bar(pkg.total_bytes(), "sha256");
    pkg.verify(&mut |done, _| bar.set_position(done))?;
    bar.finish_and_clear();
    println!(
        "ok   {} files, {} bytes match the manifest",
        pkg.flavor().files.len(),
        pkg.total_bytes()
    );
    if !a.self_test {
        return Ok(ExitCode::SUCCESS);
    }
    let tests = &pkg.flavor().self_test;
    if tests.is_empty() {
        bail!(
            "--self-test: the package has no self-test clips (add them with `harken model pack --self-test AUDIO=TEXT`)"
        );
    }
    crate::model::set_threads(a.threads)?;
    let engine =
        harken_engine::Engine::load_package(&pkg, &harken_engine::EngineConfig::default())?;
    crate::model::tune_allocator();
    let mut failed = 0;
    for t in tests {
        let opts = harken_engine::TranscribeOptions {
            beam_size: pkg.flavor().decoding.beam_size.map_or(5, |b| b as usize),
            language: pkg.flavor().decoding.language.clone(),
            ..harken_engine::TranscribeOptions::default()
        };
        let (tr, _) = engine.transcribe_file(&pkg.path(&t.audio), &opts, &mut |_| {})?;
        let wer = word_error_rate(&t.text, &tr.text);
        let max = t.max_wer.unwrap_or(0.0);
        let ok = wer <= max + 1e-6;
        failed += usize::from(!ok);
        println!(
            "{} {}: WER {:.1}% (max {:.1}%)\n     expected: {}\n     got:      {}",
            if ok { "ok  " } else { "FAIL" },
            t.audio,
            wer * 100.0,
            max * 100.0,
            t.text.trim(),
            tr.text.trim()
        );
    }
    if failed > 0 {
        bail!("{failed} of {} self-test clips failed", tests.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Word error rate after lower-casing and dropping punctuation.
fn word_error_rate(reference: &str, hypothesis: &str) -> f32 {
    let norm = |s: &str| -> Vec<String> {
        s.to_lowercase()
            .chars()
            .map(|c| if c.is_alphanumeric() || c == '\'' || c.is_whitespace() { c } else { ' ' })
            .collect::<String>()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let (r, h) = (norm(reference), norm(hypothesis));
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f32 / r.len() as f32
}

fn push(a: PushArgs) -> Result<ExitCode> {
    let pkg = Package::open(&a.package)
        .with_context(|| format!("while opening {}", a.package.display()))?;
    // Never publish bytes that do not match their manifest.
    let bar = bytes_bar(pkg.total_bytes(), "sha256");
    pkg.verify(&mut |done, _| bar.set_position(done))?;
    bar.finish_and_clear();
    // `models:/NAME` has no version yet: the registry assigns one.
    let uri = match a.uri.strip_prefix("models:/") {
        Some(name) if !name.is_empty() && !name.contains(['/', '@']) => ModelUri::MlflowModel {
            name: name.to_owned(),
            selector: harken_artifacts::Selector::Latest,
        },
        _ => ModelUri::parse(&a.uri)?,
    };
    if a.alias.is_some() && !matches!(uri, ModelUri::MlflowModel { .. }) {
        bail!("--alias applies to models:/NAME (the MLflow registry) only");
    }
    let store = crate::model::store()?;
    let report = crate::model::block_on(store.push(&pkg, &uri, a.alias.as_deref()))?
        .with_context(|| format!("while pushing {} to {}", pkg.label(), a.uri))?;
    println!("{}  {}", pkg.label(), report.uri);
    if let Some(alias) = &a.alias {
        println!("alias {alias} → version {}", report.registry_version.as_deref().unwrap_or("?"));
    }
    Ok(ExitCode::SUCCESS)
}

fn pull(a: PullArgs) -> Result<ExitCode> {
    let r = crate::model::resolve(Some(&a.uri))?;
    if a.json {
        let p = r.package.as_ref();
        let out = serde_json::json!({
            "uri": a.uri,
            "dir": r.dir,
            "source": r.source,
            "name": p.map(|p| p.flavor().name.clone()),
            "version": p.map(|p| p.flavor().version.clone()),
            "digest": p.map(|p| format!("sha256:{}", p.digest())),
            "registry_version": r.registry_version,
            "cache_hit": r.cache_hit,
            "downloaded_bytes": r.downloaded_bytes,
            "resolve_ms": r.timings.resolve.as_millis() as u64,
            "download_ms": r.timings.download.as_millis() as u64,
        });
        println!("{out}");
    } else {
        let label =
            r.package.as_ref().map_or_else(|| "(raw model directory)".to_owned(), Package::label);
        println!(
            "{label}  {}  ({})",
            r.dir.display(),
            if r.cache_hit {
                "cached".to_owned()
            } else {
                format!("downloaded {} bytes", r.downloaded_bytes)
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn ls(a: LsArgs) -> Result<ExitCode> {
    let store = crate::model::store()?;
    let entries = store.list()?;
    if a.json {
        let v: Vec<_> = entries
            .iter()
            .map(|e| {
                let used = e.last_used.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                serde_json::json!({"digest": format!("sha256:{}", e.digest), "name": e.name, "version": e.version,
                    "family": e.family, "bytes": e.bytes, "last_used_unix_s": used, "uris": e.uris, "in_use": e.in_use})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<24} {:<10} {:>12}  {:<6} uris",
        "digest", "name", "version", "bytes", "in use"
    );
    for e in &entries {
        println!(
            "{:<14} {:<24} {:<10} {:>12}  {:<6} {}",
            &e.digest[..12],
            e.name,
            e.version,
            e.bytes,
            if e.in_use { "yes" } else { "" },
            e.uris.join(", ")
        );
    }
    println!(
        "{} packages, {} bytes of content in {}",
        entries.len(),
        store.blob_bytes(),
        store.root().display()
    );
    Ok(ExitCode::SUCCESS)
}

fn gc(a: GcArgs) -> Result<ExitCode> {
    let store = crate::model::store()?;
    let max = match (&a.max_bytes, a.all) {
        (Some(s), _) => Some(crate::model::parse_bytes(s)?),
        (None, true) => Some(0),
        (None, false) => None,
    };
    let r = store.gc(max, None)?;
    println!(
        "removed {} packages, {} temporary files; freed {} bytes; {} bytes kept",
        r.packages_removed, r.temp_removed, r.bytes_freed, r.bytes_kept
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::word_error_rate;

    #[test]
    fn wer_ignores_case_and_punctuation() {
        assert_eq!(word_error_rate("Hello, world.", "hello world"), 0.0);
        assert!((word_error_rate("a b c d", "a x c") - 0.5).abs() < 1e-6);
        assert_eq!(word_error_rate("", ""), 0.0);
    }
}

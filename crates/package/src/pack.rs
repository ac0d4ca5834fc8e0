//! Building a package from a CTranslate2 or Hugging Face Whisper directory, or from a CTC
//! model directory (`acoustic.safetensors`, `alphabet.txt`, optional `lm.bin` / `lm.arpa`,
//! `vocab.trie` and `encoder.json`, the last naming the Whisper package the encoder came from),
//! or from a DeepSpeech / Coqui STT `.tflite` model and its `.scorer`, kept as they are.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::manifest::{
    Decoding, EncoderRef, Family, FileEntry, Flavors, Frontend, HarkenFlavor, MlModel,
    SCHEMA_VERSION, SelfTest, WeightsFormat,
};
use crate::{Error, Hasher, MLMODEL, Package, Result};

/// What to put into a package besides the model's own files.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Package name (default: the source directory's name).
    pub name: Option<String>,
    /// Package version (default `1`).
    pub version: Option<String>,
    /// Decoding defaults.
    pub decoding: Decoding,
    /// Self-test clips: audio file and expected text. Copied under `selftest/`.
    pub self_test: Vec<(PathBuf, String)>,
    /// `utc_time_created` as Unix seconds (default: now; pass `SOURCE_DATE_EPOCH` for
    /// reproducible packages).
    pub created_unix_s: Option<u64>,
}

/// Copy the Whisper model in `src` into a new package directory `out` (which must not exist or
/// be empty), hashing every file on the way, and write its `MLmodel`. `progress(done, total)`
/// reports bytes copied.
pub fn pack(
    src: &Path,
    out: &Path,
    opts: &PackOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Package> {
    let not_model = |detail: &str| Error::NotAModel { dir: src.to_owned(), detail: detail.into() };
    if !src.is_dir() {
        return Err(not_model("not a directory"));
    }
    let is_ctc = src.join(CTC_ACOUSTIC).is_file();
    let (weights, format) = if is_ctc {
        if !src.join("alphabet.txt").is_file() {
            return Err(not_model("a CTC model needs alphabet.txt beside acoustic.safetensors"));
        }
        (CTC_ACOUSTIC, WeightsFormat::Safetensors)
    } else if src.join("model.int8.safetensors").is_file() {
        ("model.int8.safetensors", WeightsFormat::HarkenInt8)
    } else if src.join("model.bin").is_file() {
        ("model.bin", WeightsFormat::Ctranslate2)
    } else if src.join("model.safetensors").is_file() {
        ("model.safetensors", WeightsFormat::Safetensors)
    } else {
        return Err(not_model(
            "no model.bin (CTranslate2), model.safetensors (Hugging Face) or acoustic.safetensors (CTC) inside",
        ));
    };
    if !is_ctc && !src.join("tokenizer.json").is_file() {
        return Err(not_model("no tokenizer.json inside"));
    }
    if src.join(MLMODEL).exists() {
        return Err(not_model("it is already a package (has an MLmodel)"));
    }
    // (relative path in package, source path)
    let mut sources: Vec<(String, PathBuf)> = Vec::new();
    collect(src, "", &mut sources)?;
    let (files, self_test) = copy_sources(out, opts, sources, progress)?;
    let has = |name: &str| files.iter().any(|f| f.path == name);
    let family = if is_ctc {
        let encoder = std::fs::read(src.join("encoder.json"))
            .ok()
            .map(|b| serde_json::from_slice::<EncoderRef>(&b))
            .transpose()
            .map_err(|e| not_model(&format!("encoder.json: {e}")))?;
        Family::Ctc {
            acoustic_model: weights.into(),
            encoder,
            alphabet: "alphabet.txt".into(),
            language_model: ["lm.bin", "lm.arpa", "lm.arpa.gz"]
                .into_iter()
                .find(|n| has(n))
                .map(Into::into),
            trie: has("vocab.trie").then(|| "vocab.trie".into()),
        }
    } else {
        Family::Whisper {
            weights: weights.into(),
            format,
            tokenizer: "tokenizer.json".into(),
            config: has("config.json").then(|| "config.json".into()),
            generation_config: has("generation_config.json")
                .then(|| "generation_config.json".into()),
        }
    };
    let n_mels =
        if is_ctc { safetensors_n_mels(&src.join(CTC_ACOUSTIC)) } else { detect_n_mels(src) };
    let frontend = Frontend { sample_rate_hz: 16_000, n_mels };
    write_manifest(src, out, opts, family, frontend, files, self_test)
}

/// Copy a DeepSpeech 0.9 / Coqui STT model as its authors ship it — the `.tflite` file and
/// optionally a `.scorer` — into a new package directory `out`, with their names kept.
/// `n_mels` is the model's filterbank size (the caller reads it from the graph; this crate
/// does not parse models).
pub fn pack_deepspeech(
    model: &Path,
    scorer: Option<&Path>,
    n_mels: u32,
    out: &Path,
    opts: &PackOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Package> {
    let name_of = |p: &Path, ext: &str| -> Result<String> {
        let bad = |detail: &str| Error::NotAModel { dir: p.to_owned(), detail: detail.into() };
        if !p.is_file() {
            return Err(bad("not a file"));
        }
        let name = p.file_name().and_then(|n| n.to_str()).ok_or_else(|| bad("not a UTF-8 name"))?;
        if !name.to_ascii_lowercase().ends_with(ext) {
            return Err(bad(&format!("expected a {ext} file")));
        }
        Ok(name.to_owned())
    };
    let model_name = name_of(model, ".tflite")?;
    let mut sources = vec![(model_name.clone(), model.to_owned())];
    let scorer_name = match scorer {
        Some(p) => {
            let n = name_of(p, ".scorer")?;
            if n == model_name {
                return Err(Error::NotAModel {
                    dir: p.to_owned(),
                    detail: "the scorer and the model have the same name".into(),
                });
            }
            sources.push((n.clone(), p.to_owned()));
            Some(n)
        }
        None => None,
    };
    let (files, self_test) = copy_sources(out, opts, sources, progress)?;
    let family = Family::Deepspeech { acoustic_model: model_name, scorer: scorer_name };
    let frontend = Frontend { sample_rate_hz: 16_000, n_mels };
    let mut opts = opts.clone();
    if opts.name.is_none() {
        opts.name = model.file_stem().and_then(|n| n.to_str()).map(|n| format!("deepspeech-{n}"));
    }
    write_manifest(model, out, &opts, family, frontend, files, self_test)
}

/// Copy `sources` (relative path in the package, source path) and the self-test clips into
/// `out`, which must not exist or be empty, hashing every byte on the way.
fn copy_sources(
    out: &Path,
    opts: &PackOptions,
    mut sources: Vec<(String, PathBuf)>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Vec<FileEntry>, Vec<SelfTest>)> {
    if out.exists() && std::fs::read_dir(out).map_err(|e| Error::io(out, e))?.next().is_some() {
        return Err(Error::NotAModel {
            dir: out.to_owned(),
            detail: "output directory exists and is not empty".into(),
        });
    }

    for (i, (audio, _)) in opts.self_test.iter().enumerate() {
        let name = audio.file_name().and_then(|n| n.to_str()).ok_or_else(|| Error::NotAModel {
            dir: audio.clone(),
            detail: "self-test clip needs a UTF-8 file name".into(),
        })?;
        sources.push((format!("selftest/{i:02}-{name}"), audio.clone()));
    }
    sources.sort();

    // Every source must be there before anything is written: a missing self-test clip must
    // not leave half a package behind.
    let mut total = 0u64;
    for (rel, from) in &sources {
        crate::check_relative(rel)?;
        total += std::fs::metadata(from).map_err(|e| Error::io(from, e))?.len();
    }
    let existed = out.exists();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut done = 0u64;
    let mut files = Vec::with_capacity(sources.len());
    let copied = sources.iter().try_for_each(|(rel, from)| {
        let to = rel.split('/').fold(out.to_owned(), |p, c| p.join(c));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let (size, sha256) = copy_hashing(from, &to, &mut |n| progress(done + n, total))?;
        done += size;
        files.push(FileEntry { path: rel.clone(), size, sha256 });
        Ok(())
    });
    if let Err(e) = copied {
        // The directory was empty or new: nothing of the user's is removed.
        if existed {
            let _ = std::fs::read_dir(out).map(|rd| {
                rd.flatten().for_each(|e| {
                    let _ = std::fs::remove_dir_all(e.path())
                        .or_else(|_| std::fs::remove_file(e.path()));
                })
            });
        } else {
            let _ = std::fs::remove_dir_all(out);
        }
        return Err(e);
    }

    let self_test = opts
        .self_test
        .iter()
        .zip(sources.iter().filter(|(r, _)| r.starts_with("selftest/")))
        .map(|((_, text), (rel, _))| SelfTest {
            audio: rel.clone(),
            text: text.clone(),
            max_wer: None,
        })
        .collect();
    Ok((files, self_test))
}

/// Write `MLmodel` for the copied `files` and open the finished package.
fn write_manifest(
    src: &Path,
    out: &Path,
    opts: &PackOptions,
    family: Family,
    frontend: Frontend,
    files: Vec<FileEntry>,
    self_test: Vec<SelfTest>,
) -> Result<Package> {
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => src
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "whisper".into()),
    };
    let flavor = HarkenFlavor {
        schema_version: SCHEMA_VERSION,
        name,
        version: opts.version.clone().unwrap_or_else(|| "1".into()),
        family,
        frontend,
        decoding: opts.decoding.clone(),
        files,
        self_test,
    };
    let created = opts.created_unix_s.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    // A UUID derived from the contents keeps `pack` reproducible.
    let mut h = Hasher::new();
    for f in &flavor.files {
        h.update(f.sha256.as_bytes());
    }
    let u = h.finish();
    let uuid = format!("{}-{}-{}-{}-{}", &u[0..8], &u[8..12], &u[12..16], &u[16..20], &u[20..32]);
    let mlmodel = MlModel {
        artifact_path: Some("model".into()),
        flavors: Flavors { harken: flavor, other: BTreeMap::new() },
        model_uuid: Some(uuid),
        utc_time_created: Some(format_utc(created)),
        other: BTreeMap::new(),
    };
    let yaml = serde_norway::to_string(&mlmodel)
        .map_err(|e| Error::Manifest { detail: format!("serialising MLmodel: {e}") })?;
    let path = out.join(MLMODEL);
    std::fs::write(&path, yaml.as_bytes()).map_err(|e| Error::io(&path, e))?;
    Package::open(out)
}

/// Every regular, non-hidden file under `dir`, recursively, as (`/`-joined relative path, path).
fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::NotAModel {
                dir: entry.path(),
                detail: "file names must be UTF-8".into(),
            });
        };
        if name.starts_with('.') {
            continue;
        }
        let rel = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") };
        let ty = entry.file_type().map_err(|e| Error::io(&entry.path(), e))?;
        // Follow symlinks (Hugging Face caches are symlink farms) by asking for metadata.
        let meta = std::fs::metadata(entry.path()).map_err(|e| Error::io(&entry.path(), e))?;
        if meta.is_dir() && !ty.is_symlink() {
            collect(&entry.path(), &rel, out)?;
        } else if meta.is_file() {
            out.push((rel, entry.path()));
        }
    }
    Ok(())
}

fn copy_hashing(from: &Path, to: &Path, progress: &mut dyn FnMut(u64)) -> Result<(u64, String)> {
    let mut input = std::fs::File::open(from).map_err(|e| Error::io(from, e))?;
    let mut output = std::fs::File::create(to).map_err(|e| Error::io(to, e))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| Error::io(from, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(|e| Error::io(to, e))?;
        n_total += n as u64;
        progress(n_total);
    }
    output.sync_all().map_err(|e| Error::io(to, e))?;
    Ok((n_total, hasher.finish()))
}

/// Mel bins from the model's configs (`num_mel_bins` in a Hugging Face config,
/// `feature_size` in a preprocessor config); 80 otherwise, as all Whisper models before large-v3.
/// The acoustic model file of a CTC model directory.
const CTC_ACOUSTIC: &str = "acoustic.safetensors";

/// Mel bins of a CTC acoustic model: the input channels of its first convolution, read from
/// the safetensors header (8-byte length, then JSON) without loading any tensor.
fn safetensors_n_mels(path: &Path) -> u32 {
    let read = || -> Option<u32> {
        let mut f = std::fs::File::open(path).ok()?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).ok()?;
        let len = usize::try_from(u64::from_le_bytes(len)).ok().filter(|&l| l < 100 << 20)?;
        let mut header = vec![0u8; len];
        f.read_exact(&mut header).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&header).ok()?;
        let shape = v.get("encoder/conv1/weight")?.get("shape")?.as_array()?;
        shape.get(1)?.as_u64().and_then(|n| u32::try_from(n).ok())
    };
    read().unwrap_or(80)
}

fn detect_n_mels(src: &Path) -> u32 {
    let read = |name: &str, key: &str| -> Option<u32> {
        let bytes = std::fs::read(src.join(name)).ok()?;
        let v: serde_norway::Value = serde_norway::from_slice(&bytes).ok()?;
        v.get(key)?.as_u64().and_then(|n| u32::try_from(n).ok())
    };
    read("config.json", "num_mel_bins")
        .or_else(|| read("preprocessor_config.json", "feature_size"))
        .unwrap_or(80)
}

/// `YYYY-MM-DD HH:MM:SS.000000`, MLflow's `utc_time_created` format.
fn format_utc(unix_s: u64) -> String {
    let days = i64::try_from(unix_s / 86_400).unwrap_or(0);
    let secs = unix_s % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.000000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00.000000");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00.000000");
        assert_eq!(format_utc(1_795_867_200), "2026-11-28 12:00:00.000000");
    }
}

//! A Whisper model directory on local disk: which weight format it holds and the decoding
//! metadata beside the weights.
//!
//! Two layouts are recognised. CTranslate2 (faster-whisper): `model.bin`, `config.json` with
//! `alignment_heads`, `suppress_ids`, `suppress_ids_begin`, `lang_ids`, and `tokenizer.json`.
//! Hugging Face: `model.safetensors`, `config.json` with the architecture (head counts,
//! `suppress_tokens`, `begin_suppress_tokens`), optional `generation_config.json`
//! (`alignment_heads`), and `tokenizer.json`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// Which weight file a directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsFormat {
    /// CTranslate2 `model.bin`.
    Ct2(PathBuf),
    /// Hugging Face `model.safetensors`.
    SafeTensors(PathBuf),
    /// Harken's int8 `model.int8.safetensors`.
    Int8(PathBuf),
}

/// Everything read from a model directory except the weights themselves.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The directory.
    pub dir: PathBuf,
    /// The weights file and its format.
    pub weights: WeightsFormat,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `(decoder layer, head)` pairs whose cross-attention follows the audio.
    pub alignment_heads: Vec<(usize, usize)>,
    /// Tokens never produced (non-speech symbols).
    pub suppress: Vec<u32>,
    /// Tokens not allowed first.
    pub suppress_at_begin: Vec<u32>,
    /// Head counts from a Hugging Face config.
    pub heads: (Option<usize>, Option<usize>),
}

#[derive(Deserialize, Default)]
struct Config {
    alignment_heads: Option<Vec<(usize, usize)>>,
    suppress_ids: Option<Vec<u32>>,
    suppress_tokens: Option<Vec<u32>>,
    suppress_ids_begin: Option<Vec<u32>>,
    begin_suppress_tokens: Option<Vec<u32>>,
    encoder_attention_heads: Option<usize>,
    decoder_attention_heads: Option<usize>,
}

fn read_config(path: &Path) -> Result<Option<Config>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::ModelDir {
            dir: path.parent().unwrap_or(path).to_owned(),
            detail: format!("{} is not valid JSON: {e}", path.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::ModelDir { dir: path.to_owned(), detail: e.to_string() }),
    }
}

impl ModelDir {
    /// The files a package manifest names (the manifest, not file-name guessing, decides which
    /// file is the weights).
    pub fn from_package(package: &harken_package::Package) -> Result<Self> {
        let dir = package.dir();
        let err = |detail: String| Error::ModelDir { dir: dir.to_owned(), detail };
        let harken_package::Family::Whisper {
            weights,
            format,
            tokenizer,
            config,
            generation_config,
        } = &package.flavor().family
        else {
            return Err(err(format!(
                "package {} is a {} model; this build runs Whisper packages only",
                package.label(),
                package.flavor().family.name()
            )));
        };
        let weights = match format {
            harken_package::WeightsFormat::Ctranslate2 => WeightsFormat::Ct2(package.path(weights)),
            harken_package::WeightsFormat::Safetensors => {
                WeightsFormat::SafeTensors(package.path(weights))
            }
            harken_package::WeightsFormat::HarkenInt8 => WeightsFormat::Int8(package.path(weights)),
        };
        let read = |p: &Option<String>| match p {
            Some(p) => read_config(&package.path(p)),
            None => Ok(None),
        };
        let config = read(config)?.unwrap_or_default();
        let generation = read(generation_config)?.unwrap_or_default();
        Ok(Self::from_configs(dir, weights, package.path(tokenizer), config, generation))
    }

    fn from_configs(
        dir: &Path,
        weights: WeightsFormat,
        tokenizer: PathBuf,
        config: Config,
        generation: Config,
    ) -> Self {
        let alignment_heads =
            config.alignment_heads.or(generation.alignment_heads).unwrap_or_default();
        let suppress = config
            .suppress_ids
            .or(config.suppress_tokens)
            .or(generation.suppress_tokens)
            .unwrap_or_default();
        let suppress_at_begin = config
            .suppress_ids_begin
            .or(config.begin_suppress_tokens)
            .or(generation.begin_suppress_tokens)
            .unwrap_or_default();
        ModelDir {
            dir: dir.to_owned(),
            weights,
            tokenizer,
            alignment_heads,
            suppress,
            suppress_at_begin,
            heads: (config.encoder_attention_heads, config.decoder_attention_heads),
        }
    }

    /// Inspect `dir`. Fails with a message naming the missing file when it is not a model.
    pub fn open(dir: &Path) -> Result<Self> {
        let err = |detail: String| Error::ModelDir { dir: dir.to_owned(), detail };
        if !dir.is_dir() {
            return Err(err("not a directory".into()));
        }
        // An int8 file beside float weights is what `harken model quantize` wrote for them.
        let weights = if dir.join("model.int8.safetensors").is_file() {
            WeightsFormat::Int8(dir.join("model.int8.safetensors"))
        } else if dir.join("model.bin").is_file() {
            WeightsFormat::Ct2(dir.join("model.bin"))
        } else if dir.join("model.safetensors").is_file() {
            WeightsFormat::SafeTensors(dir.join("model.safetensors"))
        } else {
            return Err(err(
                "no model.int8.safetensors (Harken int8), model.bin (CTranslate2) or model.safetensors (Hugging Face) inside".into(),
            ));
        };
        let tokenizer = dir.join("tokenizer.json");
        if !tokenizer.is_file() {
            return Err(err("no tokenizer.json inside".into()));
        }
        let config = read_config(&dir.join("config.json"))?.unwrap_or_default();
        let generation = read_config(&dir.join("generation_config.json"))?.unwrap_or_default();
        Ok(Self::from_configs(dir, weights, tokenizer, config, generation))
    }
}

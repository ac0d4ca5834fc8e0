//! The `MLmodel` file: MLflow's YAML model metadata with Harken's fields in a `harken` flavor.
//!
//! MLflow reads the top level (`flavors`, `model_uuid`, `utc_time_created`, …) and ignores
//! flavors it does not know, so `mlflow.models.Model.load(dir)` accepts a Harken package and the
//! registry stores it like any other model. Harken reads only its own flavor, strictly
//! (`deny_unknown_fields`, `schema_version`): a typo in a manifest is an error, not a silently
//! ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole `MLmodel` document. Unknown top-level keys (MLflow adds its own over time) are kept
/// so that a round trip through Harken does not drop them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MlModel {
    /// MLflow's artifact path inside the run (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_path: Option<String>,
    /// Flavors; Harken's is `harken`, others are preserved untouched.
    pub flavors: Flavors,
    /// MLflow model UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uuid: Option<String>,
    /// Creation time, `YYYY-MM-DD HH:MM:SS.ffffff` UTC as MLflow writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_time_created: Option<String>,
    /// Any other top-level keys.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

/// The `flavors` mapping.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Flavors {
    /// Harken's flavor.
    pub harken: HarkenFlavor,
    /// Other flavors (for example `python_function`), preserved.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

/// Everything Harken needs to know about a package.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HarkenFlavor {
    /// Manifest schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Package name, e.g. `whisper-base`.
    pub name: String,
    /// Package version chosen by its author (free-form, e.g. `1` or `2026-11-28`).
    pub version: String,
    /// The model family and which file plays which part.
    pub family: Family,
    /// Audio front end the model was trained with.
    pub frontend: Frontend,
    /// Decoding defaults (a request may override them).
    #[serde(default)]
    pub decoding: Decoding,
    /// Every file of the package except `MLmodel` itself, sorted by path.
    pub files: Vec<FileEntry>,
    /// Clips to transcribe after installation, with the expected text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_test: Vec<SelfTest>,
}

/// The model family, with the role of each artifact. Paths are relative to the package root and
/// must appear in [`HarkenFlavor::files`]. Internally tagged (`family: {kind: whisper, …}`):
/// an externally tagged enum would become a YAML tag (`!whisper`), which MLflow's
/// `yaml.safe_load` rejects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Family {
    /// An encoder-decoder Whisper model.
    Whisper {
        /// The weights file (`model.bin` or `model.safetensors`).
        weights: String,
        /// Layout of the weights.
        format: WeightsFormat,
        /// `tokenizer.json`.
        tokenizer: String,
        /// `config.json` (suppressed tokens, alignment heads, architecture), when present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<String>,
        /// Hugging Face `generation_config.json`, when present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation_config: Option<String>,
    },
    /// A DeepSpeech-style CTC model: acoustic model, alphabet, n-gram LM, vocabulary trie.
    Ctc {
        /// The acoustic network (emits one distribution over the alphabet per frame).
        acoustic_model: String,
        /// Encoder the acoustic head runs on, when the acoustic model is a head over another
        /// package's encoder (name and sha256 of that package's weights).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoder: Option<EncoderRef>,
        /// One symbol per line; the CTC blank is implicit (last index).
        alphabet: String,
        /// n-gram language model (ARPA or Harken binary), optional.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language_model: Option<String>,
        /// Vocabulary trie restricting the beam to known words, optional.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trie: Option<String>,
    },
    /// A DeepSpeech 0.9 / Coqui STT model as its authors ship it: the `.tflite` acoustic model
    /// (alphabet, sample rate, window and beam width inside) and optionally a `.scorer`
    /// package (KenLM binary + vocabulary FST + α/β), both used as they are.
    Deepspeech {
        /// The `.tflite` acoustic model.
        acoustic_model: String,
        /// The `.scorer` package, optional (decoding without one is the client's without
        /// `--scorer`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scorer: Option<String>,
    },
}

impl Family {
    /// `whisper`, `ctc` or `deepspeech`.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Whisper { .. } => "whisper",
            Family::Ctc { .. } => "ctc",
            Family::Deepspeech { .. } => "deepspeech",
        }
    }

    /// Every path this family names (all must be listed in `files`).
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Family::Whisper { weights, tokenizer, config, generation_config, .. } => {
                let mut v = vec![weights.as_str(), tokenizer.as_str()];
                v.extend(config.as_deref());
                v.extend(generation_config.as_deref());
                v
            }
            Family::Ctc { acoustic_model, alphabet, language_model, trie, .. } => {
                let mut v = vec![acoustic_model.as_str(), alphabet.as_str()];
                v.extend(language_model.as_deref());
                v.extend(trie.as_deref());
                v
            }
            Family::Deepspeech { acoustic_model, scorer } => {
                let mut v = vec![acoustic_model.as_str()];
                v.extend(scorer.as_deref());
                v
            }
        }
    }
}

/// Weight layouts of a Whisper model.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WeightsFormat {
    /// CTranslate2 `model.bin` (faster-whisper's format).
    Ctranslate2,
    /// Hugging Face `model.safetensors`.
    Safetensors,
    /// Harken's int8 `model.int8.safetensors` (`harken model quantize`): packed 8-bit linear
    /// layers used in place.
    HarkenInt8,
}

/// A reference to the encoder a CTC head runs on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EncoderRef {
    /// Package name of the encoder, e.g. `whisper-base`.
    pub package: String,
    /// sha256 of that package's weights file.
    pub weights_sha256: String,
}

/// Audio front end.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    /// Sample rate the model expects, Hz.
    pub sample_rate_hz: u32,
    /// Mel bins of the log-mel features.
    pub n_mels: u32,
}

/// Decoding defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Decoding {
    /// Beam width (1 = greedy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beam_size: Option<u32>,
    /// Language-model weight α (CTC and LM fusion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm_alpha: Option<f32>,
    /// Word-insertion bonus β.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm_beta: Option<f32>,
    /// Default language code for multilingual models (`None`: detect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// One file of the package.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the package root, `/`-separated.
    pub path: String,
    /// Size, bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the contents.
    pub sha256: String,
}

/// A self-test clip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelfTest {
    /// Audio path relative to the package root (listed in `files`).
    pub audio: String,
    /// Expected transcript.
    pub text: String,
    /// Largest word error rate accepted against `text` (0 = exact words), default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wer: Option<f32>,
}

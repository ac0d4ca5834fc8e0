//! `harken model quantize`: a float Whisper directory → an int8 one, whose
//! `model.int8.safetensors` the engine then maps and multiplies in place.

use std::path::Path;

use harken_model::{FloatWeights, Int8Report};

use crate::model_dir::{ModelDir, WeightsFormat};
use crate::{Error, Result};

/// Files copied beside the weights when present (decoding metadata and tokenizer).
const COMPANIONS: [&str; 4] =
    ["config.json", "generation_config.json", "tokenizer.json", "vocabulary.txt"];

/// Quantize the Whisper model in `src` into the new directory `out` (which must not exist or be
/// empty): `model.int8.safetensors` plus the tokenizer and configuration files.
pub fn quantize_model_dir(src: &Path, out: &Path) -> Result<Int8Report> {
    let md = ModelDir::open(src)?;
    let weights = match &md.weights {
        WeightsFormat::Ct2(p) => FloatWeights::Ct2(p),
        WeightsFormat::SafeTensors(p) => FloatWeights::SafeTensors {
            path: p,
            encoder_heads: md.heads.0,
            decoder_heads: md.heads.1,
        },
        WeightsFormat::Int8(_) => {
            return Err(Error::ModelDir {
                dir: src.to_owned(),
                detail: "the model is already int8".into(),
            });
        }
    };
    let io = |detail: String| Error::ModelDir { dir: out.to_owned(), detail };
    if out.exists() && std::fs::read_dir(out).map_err(|e| io(e.to_string()))?.next().is_some() {
        return Err(io("output directory exists and is not empty".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| io(e.to_string()))?;
    let report = harken_model::write_int8(weights, &out.join("model.int8.safetensors"))?;
    for name in COMPANIONS {
        let from = src.join(name);
        if from.is_file() {
            std::fs::copy(&from, out.join(name)).map_err(|e| io(format!("copying {name}: {e}")))?;
        }
    }
    Ok(report)
}

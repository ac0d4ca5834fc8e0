//! Weight sources: CTranslate2 `model.bin` and Hugging Face `model.safetensors`, behind one
//! naming scheme.
//!
//! The Whisper module asks for tensors by CTranslate2 name (`encoder/layer_0/ffn/linear_0/weight`)
//! because CTranslate2 already stores attention projections fused (q|k|v and k|v), which is the
//! layout the module computes with. The safetensors source maps each name to the Hugging Face
//! `WhisperForConditionalGeneration` names and fuses on the fly; the mapping follows the
//! CTranslate2 4.8.5 converter (`converters/transformers.py`, `BartLoader.set_attention`,
//! `utils.fuse_linear`): fused rows in q, k, v order, zero bias in the k slot.

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::ct2::{Ct2Dtype, Ct2File};
use crate::{Error, Result};

/// Where weights come from.
pub(crate) enum Source {
    Ct2(Ct2File),
    Hf {
        st: MmapedSafetensors,
        path: PathBuf,
    },
    /// Harken's int8 file (`crate::int8file`): packed linear layers, used in place.
    Int8(crate::int8file::Int8File),
    /// A safetensors file with CTranslate2 names (Harken's CTC acoustic models).
    Native {
        st: MmapedSafetensors,
        path: PathBuf,
    },
}

impl Source {
    pub(crate) fn open_ct2(path: &Path) -> Result<Self> {
        Ok(Source::Ct2(Ct2File::open(path)?))
    }

    pub(crate) fn open_safetensors(path: &Path) -> Result<Self> {
        let (st, path) = map_safetensors(path)?;
        Ok(Source::Hf { st, path })
    }

    pub(crate) fn open_int8(path: &Path) -> Result<Self> {
        Ok(Source::Int8(crate::int8file::Int8File::open(path)?))
    }

    /// The packed int8 matrix `name`, when the source stores it so.
    pub(crate) fn packed(&self, name: &str) -> Result<Option<crate::int8file::MappedPacked>> {
        match self {
            Source::Int8(f) => f.packed(name),
            _ => Ok(None),
        }
    }

    pub(crate) fn open_native(path: &Path) -> Result<Self> {
        let (st, path) = map_safetensors(path)?;
        Ok(Source::Native { st, path })
    }

    /// Whether the source holds tensor `name` (CTranslate2 name).
    pub(crate) fn has(&self, name: &str) -> bool {
        match self {
            Source::Ct2(f) => f.var(name).is_some(),
            Source::Hf { .. } => self.get(name).is_ok(),
            Source::Native { st, .. } => st.get(name).is_ok(),
            Source::Int8(f) => f.has(name),
        }
    }

    /// A scalar integer stored in the file (CTranslate2 only).
    pub(crate) fn int_scalar(&self, name: &str) -> Option<i64> {
        match self {
            Source::Ct2(f) => f.int_scalar(name),
            Source::Int8(f) => f.int_scalar(name),
            Source::Hf { .. } | Source::Native { .. } => None,
        }
    }

    /// The raw half-precision bits and shape of `name` when the file stores it as f16
    /// (CTranslate2 only; `None` otherwise, and the caller uses [`Source::get`]).
    pub(crate) fn get_f16(&self, name: &str) -> Option<(Vec<u16>, Vec<usize>)> {
        match self {
            Source::Ct2(f) => {
                let (var, bytes) = f.var(name)?;
                (var.dtype == Ct2Dtype::F16).then(|| {
                    let bits =
                        bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
                    f.release(var);
                    (bits, var.shape.clone())
                })
            }
            Source::Hf { .. } | Source::Native { .. } | Source::Int8(_) => None,
        }
    }

    /// The tensor with CTranslate2 name `name`, as f32 on the CPU.
    pub(crate) fn get(&self, name: &str) -> Result<Tensor> {
        match self {
            Source::Ct2(f) => {
                let (var, bytes) = f
                    .var(name)
                    .ok_or_else(|| Error::Weights { detail: format!("missing tensor {name}") })?;
                let dtype = match var.dtype {
                    Ct2Dtype::F32 => DType::F32,
                    Ct2Dtype::F16 => DType::F16,
                    Ct2Dtype::BF16 => DType::BF16,
                    other => {
                        return Err(Error::Weights {
                            detail: format!(
                                "tensor {name} is {other:?}; int8-quantized CTranslate2 models are not supported, use a float16 or float32 conversion"
                            ),
                        });
                    }
                };
                let t = Tensor::from_raw_buffer(bytes, dtype, &var.shape, &Device::Cpu)?
                    .to_dtype(DType::F32)?;
                f.release(var);
                Ok(t)
            }
            Source::Hf { st, path } => hf_get(st, path, name),
            Source::Native { st, path } => hf_load(st, path, name),
            Source::Int8(f) => f.get(name),
        }
    }
}

fn map_safetensors(path: &Path) -> Result<(MmapedSafetensors, PathBuf)> {
    if !path.exists() {
        return Err(Error::Io {
            path: path.into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    // SAFETY: read-only map of a model artifact that is never modified while loaded.
    #[allow(unsafe_code)] // memory-mapping is the point: weights are never read twice
    let st = unsafe { MmapedSafetensors::new(path) }
        .map_err(|e| Error::Format { path: path.into(), detail: e.to_string() })?;
    Ok((st, path.to_owned()))
}

fn hf_load(st: &MmapedSafetensors, path: &Path, name: &str) -> Result<Tensor> {
    let t = st.load(name, &Device::Cpu).map_err(|_| Error::Weights {
        detail: format!("missing tensor {name} in {}", path.display()),
    })?;
    Ok(t.to_dtype(DType::F32)?)
}

fn hf_get(st: &MmapedSafetensors, path: &Path, name: &str) -> Result<Tensor> {
    let parts: Vec<&str> = name.split('/').collect();
    let load = |n: &str| hf_load(st, path, n);
    let unknown = || Error::Weights { detail: format!("no Hugging Face mapping for {name}") };
    let (side, rest) = match parts.as_slice() {
        [side, rest @ ..] => (*side, rest),
        _ => return Err(unknown()),
    };
    let root = format!("model.{side}");
    match rest {
        ["conv1" | "conv2", wb] => load(&format!("{root}.{}.{wb}", rest[0])),
        ["position_encodings", "encodings"] => load(&format!("{root}.embed_positions.weight")),
        ["embeddings", "weight"] => load(&format!("{root}.embed_tokens.weight")),
        ["layer_norm", gb] => load(&format!("{root}.layer_norm.{}", suffix(gb))),
        [layer, block, part @ ..] if layer.starts_with("layer_") => {
            let l = &layer["layer_".len()..];
            let p = format!("{root}.layers.{l}");
            let (attn, ln) = match *block {
                "self_attention" => ("self_attn", "self_attn_layer_norm"),
                "attention" => ("encoder_attn", "encoder_attn_layer_norm"),
                "ffn" => ("", "final_layer_norm"),
                _ => return Err(unknown()),
            };
            match (*block, part) {
                (_, ["layer_norm", gb]) => load(&format!("{p}.{ln}.{}", suffix(gb))),
                ("ffn", ["linear_0", wb]) => load(&format!("{p}.fc1.{wb}")),
                ("ffn", ["linear_1", wb]) => load(&format!("{p}.fc2.{wb}")),
                ("self_attention", ["linear_0", wb]) => {
                    fuse(&load, &format!("{p}.{attn}"), &["q", "k", "v"], wb)
                }
                ("self_attention", ["linear_1", wb]) => load(&format!("{p}.{attn}.out_proj.{wb}")),
                ("attention", ["linear_0", wb]) => load(&format!("{p}.{attn}.q_proj.{wb}")),
                ("attention", ["linear_1", wb]) => {
                    fuse(&load, &format!("{p}.{attn}"), &["k", "v"], wb)
                }
                ("attention", ["linear_2", wb]) => load(&format!("{p}.{attn}.out_proj.{wb}")),
                _ => Err(unknown()),
            }
        }
        _ => Err(unknown()),
    }
}

fn suffix(wb: &str) -> &str {
    match wb {
        "gamma" => "weight",
        "beta" => "bias",
        other => other,
    }
}

/// Concatenate the q/k/v projections along the output rows; k has no bias in Whisper.
fn fuse(
    load: &dyn Fn(&str) -> Result<Tensor>,
    prefix: &str,
    projs: &[&str],
    wb: &str,
) -> Result<Tensor> {
    let mut parts = Vec::with_capacity(projs.len());
    for p in projs {
        let name = format!("{prefix}.{p}_proj.{wb}");
        let t = match load(&name) {
            Ok(t) => t,
            Err(_) if *p == "k" && wb == "bias" => {
                let v = load(&format!("{prefix}.v_proj.bias"))?;
                v.zeros_like()?
            }
            Err(e) => return Err(e),
        };
        parts.push(t);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

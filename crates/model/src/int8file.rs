//! Harken's int8 Whisper weights file (`model.int8.safetensors`): the linear layers and the
//! token embedding stored already quantized and packed in the kernels' n16k4 layout, memory-mapped
//! and multiplied in place. Loading does no quantization and makes no second copy of them.
//!
//! The container is safetensors (so any safetensors reader can list it) with CTranslate2 tensor
//! names, and `__metadata__` `{"format": "harken-whisper-int8", "version": "1", "layout":
//! "n16k4"}`. A quantized matrix `P` (`n × k`) is four tensors: `P` (I8, `[n_pad/16, k_pad/4,
//! 16, 4]`), `P_scale` (F32, `[n_pad]`), `P_sum` (I32, `[n_pad]`: per-row sums of the int8
//! values) and `P_dims` (I32, `[n, k]`). Everything else (biases, norms, convolutions,
//! positions) is F32; `encoder/num_heads` and `decoder/num_heads` are I32 scalars.
//! Why safetensors rather than CTranslate2's own int8 `model.bin`: CTranslate2 stores int8 rows
//! unpacked, which every kernel would have to repack at load (a copy), and its int8 layout is
//! an implementation detail of one library version.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use harken_kernels::int8::{PackedMatrix, PackedRef, padded_k, padded_n};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, TensorView};

use crate::weights::Source;
use crate::{Error, Result};

/// The `format` value of the file's metadata.
pub const INT8_FORMAT: &str = "harken-whisper-int8";
const VERSION: &str = "1";

/// A parsed, memory-mapped int8 weights file.
pub(crate) struct Int8File {
    path: PathBuf,
    map: Arc<Mmap>,
    meta: Metadata,
    data_start: usize,
}

/// A packed matrix that lives in the map.
pub(crate) struct MappedPacked {
    map: Arc<Mmap>,
    data: Range<usize>,
    scales: Range<usize>,
    sums: Range<usize>,
    n: usize,
    k: usize,
}

impl MappedPacked {
    pub(crate) fn view(&self) -> PackedRef<'_> {
        let m: &[u8] = &self.map;
        // The ranges, their alignment and the lengths were checked when the file was opened.
        let data: &[i8] = bytemuck::cast_slice(&m[self.data.clone()]);
        let scales: &[f32] = bytemuck::cast_slice(&m[self.scales.clone()]);
        let sums: &[i32] = bytemuck::cast_slice(&m[self.sums.clone()]);
        PackedRef::new(data, scales, sums, self.n, self.k)
            .expect("invariant: layout validated in Int8File::packed")
    }
}

/// A quantized weight, mapped from the file or quantized at load from a float model.
pub(crate) enum Int8Weight {
    Owned(PackedMatrix),
    Mapped(MappedPacked),
}

impl Int8Weight {
    pub(crate) fn view(&self) -> PackedRef<'_> {
        match self {
            Int8Weight::Owned(p) => p.view(),
            Int8Weight::Mapped(m) => m.view(),
        }
    }
}

impl Int8File {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file =
            std::fs::File::open(path).map_err(|source| Error::Io { path: path.into(), source })?;
        // SAFETY: read-only private map of a model artifact Harken never writes while loaded.
        #[allow(unsafe_code)] // memory-mapping is the point: weights are used in place
        let map = unsafe { Mmap::map(&file) }
            .map_err(|source| Error::Io { path: path.into(), source })?;
        let fmt = |detail: String| Error::Format { path: path.into(), detail };
        let (header, meta) = safetensors::SafeTensors::read_metadata(&map)
            .map_err(|e| fmt(format!("not a safetensors file: {e}")))?;
        let info = meta.metadata().as_ref();
        let get = |k: &str| info.and_then(|m| m.get(k)).map(String::as_str);
        if get("format") != Some(INT8_FORMAT) {
            return Err(fmt(format!(
                "metadata format is {:?}, expected {INT8_FORMAT:?}",
                get("format")
            )));
        }
        if get("version") != Some(VERSION) || get("layout") != Some("n16k4") {
            return Err(fmt(format!(
                "unsupported int8 file version {:?} / layout {:?} (this build reads version {VERSION}, n16k4)",
                get("version"),
                get("layout")
            )));
        }
        Ok(Int8File { path: path.to_owned(), map: Arc::new(map), meta, data_start: 8 + header })
    }

    fn raw(&self, name: &str) -> Option<(Dtype, &[usize], Range<usize>)> {
        let i = self.meta.info(name)?;
        let (a, b) = i.data_offsets;
        Some((i.dtype, &i.shape, self.data_start + a..self.data_start + b))
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.meta.info(name).is_some()
    }

    pub(crate) fn int_scalar(&self, name: &str) -> Option<i64> {
        let (dt, _, r) = self.raw(name)?;
        let b = self.map.get(r)?;
        (dt == Dtype::I32 && b.len() == 4)
            .then(|| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }

    pub(crate) fn get(&self, name: &str) -> Result<Tensor> {
        let (dt, shape, r) = self.raw(name).ok_or_else(|| Error::Weights {
            detail: format!("missing tensor {name} in {}", self.path.display()),
        })?;
        let dtype = match dt {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            other => {
                return Err(Error::Weights {
                    detail: format!("tensor {name} is {other:?}, expected F32 or F16"),
                });
            }
        };
        Ok(Tensor::from_raw_buffer(&self.map[r], dtype, shape, &Device::Cpu)?
            .to_dtype(DType::F32)?)
    }

    /// The packed matrix `name`, if the file holds one.
    pub(crate) fn packed(&self, name: &str) -> Result<Option<MappedPacked>> {
        let Some((dt, _, data)) = self.raw(name) else { return Ok(None) };
        let bad = |detail: String| Error::Format {
            path: self.path.clone(),
            detail: format!("{name}: {detail}"),
        };
        let part = |suffix: &str, want: Dtype| {
            let (d, _, r) = self
                .raw(&format!("{name}_{suffix}"))
                .ok_or_else(|| bad(format!("no {name}_{suffix}")))?;
            if d != want {
                return Err(bad(format!("{suffix} is {d:?}, expected {want:?}")));
            }
            Ok(r)
        };
        if dt != Dtype::I8 {
            return Err(bad(format!("packed weight is {dt:?}, expected I8")));
        }
        let (scales, sums, dims) =
            (part("scale", Dtype::F32)?, part("sum", Dtype::I32)?, part("dims", Dtype::I32)?);
        let d: &[i32] =
            bytemuck::try_cast_slice(&self.map[dims]).map_err(|e| bad(format!("dims: {e}")))?;
        let [n, k] = d else { return Err(bad("dims must hold [n, k]".into())) };
        let (n, k) = (usize::try_from(*n).unwrap_or(0), usize::try_from(*k).unwrap_or(0));
        let mp = MappedPacked { map: self.map.clone(), data, scales, sums, n, k };
        // Validate alignment and lengths once, so `view` cannot fail later.
        let m: &[u8] = &self.map;
        let s: std::result::Result<&[f32], _> = bytemuck::try_cast_slice(&m[mp.scales.clone()]);
        let u: std::result::Result<&[i32], _> = bytemuck::try_cast_slice(&m[mp.sums.clone()]);
        match (s, u) {
            (Ok(s), Ok(u)) => {
                PackedRef::new(bytemuck::cast_slice(&m[mp.data.clone()]), s, u, n, k)
                    .map_err(|e| bad(e.to_string()))?;
            }
            _ => return Err(bad("scales or sums are not 4-byte aligned in the file".into())),
        }
        Ok(Some(mp))
    }
}

/// Where `write_int8` reads the float model from.
#[derive(Debug, Clone, Copy)]
pub enum FloatWeights<'a> {
    /// A CTranslate2 `model.bin`.
    Ct2(&'a Path),
    /// A Hugging Face `model.safetensors` with its head counts from `config.json`.
    SafeTensors {
        /// The file.
        path: &'a Path,
        /// Encoder heads.
        encoder_heads: Option<usize>,
        /// Decoder heads.
        decoder_heads: Option<usize>,
    },
}

/// What `write_int8` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Int8Report {
    /// Matrices quantized.
    pub quantized: usize,
    /// Tensors kept in f32.
    pub kept: usize,
    /// Bytes of the file.
    pub bytes: u64,
}

/// Quantize a float Whisper model into an int8 weights file at `out` (written whole, then
/// renamed into place).
pub fn write_int8(src: FloatWeights<'_>, out: &Path) -> Result<Int8Report> {
    let (source, heads) = match src {
        FloatWeights::Ct2(p) => {
            let s = Source::open_ct2(p)?;
            let h = |side: &str| s.int_scalar(&format!("{side}/num_heads")).map(|h| h as usize);
            let heads = (h("encoder"), h("decoder"));
            (s, heads)
        }
        FloatWeights::SafeTensors { path, encoder_heads, decoder_heads } => {
            (Source::open_safetensors(path)?, (encoder_heads, decoder_heads))
        }
    };
    let names = tensor_names(&source);
    enum Out {
        Bytes(Dtype, Vec<usize>, Vec<u8>),
    }
    let mut tensors: Vec<(String, Out)> = Vec::new();
    let (mut quantized, mut kept) = (0, 0);
    for name in names {
        let t = source.get(&name)?;
        if is_packed(&name) {
            let (n, k) = t.dims2()?;
            let w = t.flatten_all()?.to_vec1::<f32>()?;
            let p = PackedMatrix::quantize(&w, n, k)
                .map_err(|e| Error::Weights { detail: format!("{name}: {e}") })?;
            let v = p.view();
            let (np, kp) = (padded_n(n), padded_k(k));
            tensors.push((
                name.clone(),
                Out::Bytes(
                    Dtype::I8,
                    vec![np / 16, kp / 4, 16, 4],
                    bytemuck::cast_slice(v.data()).to_vec(),
                ),
            ));
            tensors.push((
                format!("{name}_scale"),
                Out::Bytes(Dtype::F32, vec![np], bytemuck::cast_slice(v.scales()).to_vec()),
            ));
            tensors.push((
                format!("{name}_sum"),
                Out::Bytes(Dtype::I32, vec![np], bytemuck::cast_slice(v.sums()).to_vec()),
            ));
            let dims = [n as i32, k as i32];
            tensors.push((
                format!("{name}_dims"),
                Out::Bytes(Dtype::I32, vec![2], bytemuck::cast_slice(&dims).to_vec()),
            ));
            quantized += 1;
        } else {
            let shape = t.dims().to_vec();
            let v = t.flatten_all()?.to_vec1::<f32>()?;
            tensors.push((name, Out::Bytes(Dtype::F32, shape, bytemuck::cast_slice(&v).to_vec())));
            kept += 1;
        }
    }
    for (side, h) in [("encoder", heads.0), ("decoder", heads.1)] {
        if let Some(h) = h {
            let v = [h as i32];
            tensors.push((
                format!("{side}/num_heads"),
                Out::Bytes(Dtype::I32, vec![], bytemuck::cast_slice(&v).to_vec()),
            ));
        }
    }
    let views = tensors
        .iter()
        .map(|(n, Out::Bytes(dt, shape, b))| {
            TensorView::new(*dt, shape.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Weights { detail: format!("{n}: {e}") })
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> =
        [("format", INT8_FORMAT), ("version", VERSION), ("layout", "n16k4")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let tmp = out.with_extension("safetensors.partial");
    safetensors::serialize_to_file(views, Some(meta), &tmp)
        .map_err(|e| Error::Format { path: tmp.clone(), detail: e.to_string() })?;
    std::fs::rename(&tmp, out).map_err(|source| Error::Io { path: out.into(), source })?;
    let bytes =
        std::fs::metadata(out).map_err(|source| Error::Io { path: out.into(), source })?.len();
    Ok(Int8Report { quantized, kept, bytes })
}

/// Whether tensor `name` is stored packed: every linear weight, and the token embedding (which
/// is also the output projection).
pub(crate) fn is_packed(name: &str) -> bool {
    name == "decoder/embeddings/weight" || (name.ends_with("/weight") && name.contains("/linear_"))
}

/// Every tensor the Whisper network reads, by CTranslate2 name.
fn tensor_names(src: &Source) -> Vec<String> {
    let mut v: Vec<String> = [
        "encoder/conv1/weight",
        "encoder/conv1/bias",
        "encoder/conv2/weight",
        "encoder/conv2/bias",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let lnorm = |p: &str| [format!("{p}/gamma"), format!("{p}/beta")];
    let linear = |p: &str| [format!("{p}/weight"), format!("{p}/bias")];
    v.push("encoder/position_encodings/encodings".into());
    v.extend(lnorm("encoder/layer_norm"));
    for l in 0..crate::whisper::count_layers(src, "encoder") {
        let p = format!("encoder/layer_{l}");
        v.extend(lnorm(&format!("{p}/self_attention/layer_norm")));
        v.extend(linear(&format!("{p}/self_attention/linear_0")));
        v.extend(linear(&format!("{p}/self_attention/linear_1")));
        v.extend(lnorm(&format!("{p}/ffn/layer_norm")));
        v.extend(linear(&format!("{p}/ffn/linear_0")));
        v.extend(linear(&format!("{p}/ffn/linear_1")));
    }
    v.push("decoder/embeddings/weight".into());
    v.push("decoder/position_encodings/encodings".into());
    v.extend(lnorm("decoder/layer_norm"));
    for l in 0..crate::whisper::count_layers(src, "decoder") {
        let p = format!("decoder/layer_{l}");
        v.extend(lnorm(&format!("{p}/self_attention/layer_norm")));
        v.extend(linear(&format!("{p}/self_attention/linear_0")));
        v.extend(linear(&format!("{p}/self_attention/linear_1")));
        v.extend(lnorm(&format!("{p}/attention/layer_norm")));
        for i in 0..3 {
            v.extend(linear(&format!("{p}/attention/linear_{i}")));
        }
        v.extend(lnorm(&format!("{p}/ffn/layer_norm")));
        v.extend(linear(&format!("{p}/ffn/linear_0")));
        v.extend(linear(&format!("{p}/ffn/linear_1")));
    }
    v
}

//! CTC acoustic models: a frozen Whisper encoder with a small trained head that emits one
//! distribution over an alphabet (plus blank) per encoder frame (20 ms).
//!
//! File form: one safetensors file holding the encoder's tensors under their CTranslate2 names
//! (`encoder/...`, copied bit for bit from the Whisper weights they came from) and the head as
//! `ctc_head/layer_{i}/weight` `[out, in]` and `/bias` `[out]`, f32, GELU between layers. The
//! last layer's width is the number of classes.

use std::path::Path;

use candle_core::{D, Device, Module, Tensor};

use crate::weights::Source;
use crate::whisper::{Encoder, GeluErf};
use crate::{Ct2Dtype, Ct2File, Error, Isa, Precision, Result};

/// One dense layer of a CTC head, row-major `[out][in]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadLayer {
    /// Weights, `out × in` values.
    pub weight: Vec<f32>,
    /// Bias, `out` values.
    pub bias: Vec<f32>,
    /// Input width.
    pub inputs: usize,
}

impl HeadLayer {
    /// Output width.
    pub fn outputs(&self) -> usize {
        self.bias.len()
    }
}

/// A loaded CTC acoustic model.
pub struct CtcAcoustic {
    enc: Encoder,
    head: Vec<(Tensor, Tensor)>,
    classes: usize,
    isa: Isa,
}

impl std::fmt::Debug for CtcAcoustic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtcAcoustic")
            .field("encoder", &self.enc.dims())
            .field("head_layers", &self.head.len())
            .field("classes", &self.classes)
            .finish()
    }
}

impl CtcAcoustic {
    /// Memory-map and load an acoustic model file.
    pub fn load(path: &Path, precision: Precision) -> Result<Self> {
        let src = Source::open_native(path)?;
        let (enc, dims) = Encoder::load(&src, None, precision)?;
        let mut head = Vec::new();
        while src.has(&format!("ctc_head/layer_{}/weight", head.len())) {
            let p = format!("ctc_head/layer_{}", head.len());
            let w = src.get(&format!("{p}/weight"))?;
            let b = src.get(&format!("{p}/bias"))?;
            let (out, inp) = w.dims2()?;
            // Stored transposed, `[in, out]`: the previous layer's width is its second dim.
            let want_in = head
                .last()
                .map_or(dims.n_audio_state, |(w, _): &(Tensor, Tensor)| w.dim(1).unwrap_or(0));
            if inp != want_in || b.dims1()? != out {
                return Err(Error::Weights {
                    detail: format!("{p}: shape {out}×{inp} does not follow a width of {want_in}"),
                });
            }
            head.push((w.t()?.contiguous()?, b));
        }
        let Some((w, _)) = head.last() else {
            return Err(Error::Weights {
                detail: format!("{} holds no ctc_head layers", path.display()),
            });
        };
        let classes = w.dim(1)?;
        Ok(CtcAcoustic { enc, head, classes, isa: Isa::detect() })
    }

    /// Choose the kernel path (default: the best this CPU runs).
    pub fn set_isa(&mut self, isa: Isa) {
        self.isa = isa;
    }

    /// The kernel path in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Mel bins the encoder takes.
    pub fn n_mels(&self) -> usize {
        self.enc.dims().n_mels
    }

    /// Mel frames in one window (3000 for 30 s).
    pub fn n_mel_frames(&self) -> usize {
        self.enc.dims().n_audio_ctx * 2
    }

    /// Output frames per window (1500).
    pub fn n_frames(&self) -> usize {
        self.enc.dims().n_audio_ctx
    }

    /// Encoder width.
    pub fn width(&self) -> usize {
        self.enc.dims().n_audio_state
    }

    /// Output classes (alphabet + blank).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Log-posteriors of one 30-s window: `[n_frames()][classes()]` row-major.
    pub fn log_probs(&self, mel: &[f32]) -> Result<Vec<f32>> {
        let enc = self.enc.forward(mel, self.isa)?;
        let x = enc.tensor().squeeze(0)?;
        self.head_forward(&x)
    }

    /// Run only the head on encoder features `[frames][width()]`.
    pub fn head_log_probs(&self, features: &[f32]) -> Result<Vec<f32>> {
        let w = self.width();
        if features.is_empty() || !features.len().is_multiple_of(w) {
            return Err(Error::Input { detail: format!("features are not rows of {w}") });
        }
        let x = Tensor::from_slice(features, (features.len() / w, w), &Device::Cpu)?;
        self.head_forward(&x)
    }

    fn head_forward(&self, x: &Tensor) -> Result<Vec<f32>> {
        let mut x = x.clone();
        for (i, (w, b)) in self.head.iter().enumerate() {
            x = x.matmul(w)?.broadcast_add(b)?;
            if i + 1 < self.head.len() {
                x = GeluErf.forward(&x)?;
            }
        }
        let lp = candle_nn::ops::log_softmax(&x, D::Minus1)?;
        Ok(lp.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// Read the `ctc_head/...` layers of a head or acoustic model file.
pub fn read_ctc_head(path: &Path) -> Result<Vec<HeadLayer>> {
    let src = Source::open_native(path)?;
    let mut out = Vec::new();
    while src.has(&format!("ctc_head/layer_{}/weight", out.len())) {
        let p = format!("ctc_head/layer_{}", out.len());
        let w = src.get(&format!("{p}/weight"))?;
        let (_, inputs) = w.dims2()?;
        out.push(HeadLayer {
            weight: w.flatten_all()?.to_vec1::<f32>()?,
            bias: src.get(&format!("{p}/bias"))?.to_vec1::<f32>()?,
            inputs,
        });
    }
    if out.is_empty() {
        return Err(Error::Weights {
            detail: format!("{} holds no ctc_head layers", path.display()),
        });
    }
    Ok(out)
}

/// Write the head alone (a few MB: what training produces and the repository keeps).
pub fn write_ctc_head(head: &[HeadLayer], out: &Path) -> Result<u64> {
    serialize(Vec::new(), head, out)
}

/// Write an acoustic model file: the encoder tensors of the CTranslate2 Whisper weights at
/// `whisper` (bit for bit) and `head`. Returns the bytes written.
pub fn write_ctc_acoustic(whisper: &Path, head: &[HeadLayer], out: &Path) -> Result<u64> {
    use safetensors::tensor::Dtype;
    let ct2 = Ct2File::open(whisper)?;
    let mut views: Vec<(String, Dtype, Vec<usize>, &[u8])> = Vec::new();
    let bad = |detail: String| Error::Weights { detail };
    for name in ct2.names() {
        if !name.starts_with("encoder/") {
            continue;
        }
        let Some((var, bytes)) = ct2.var(name) else { continue };
        let dtype = match var.dtype {
            Ct2Dtype::F32 => Dtype::F32,
            Ct2Dtype::F16 => Dtype::F16,
            Ct2Dtype::BF16 => Dtype::BF16,
            _ => continue, // scalars such as num_heads; the width says it
        };
        views.push((name.to_owned(), dtype, var.shape.clone(), bytes));
    }
    if views.is_empty() {
        return Err(bad(format!("{} holds no encoder tensors", whisper.display())));
    }
    serialize(views, head, out)
}

type RawTensor<'a> = (String, safetensors::tensor::Dtype, Vec<usize>, &'a [u8]);

fn serialize(encoder: Vec<RawTensor<'_>>, head: &[HeadLayer], out: &Path) -> Result<u64> {
    use safetensors::tensor::{Dtype, TensorView};
    let bad = |detail: String| Error::Weights { detail };
    let mut views: Vec<(String, TensorView<'_>)> = Vec::new();
    for (name, dtype, shape, bytes) in encoder {
        let view = TensorView::new(dtype, shape, bytes).map_err(|e| bad(format!("{name}: {e}")))?;
        views.push((name, view));
    }
    let raw: Vec<(Vec<u8>, Vec<u8>)> = head
        .iter()
        .map(|l| {
            let w = l.weight.iter().flat_map(|v| v.to_le_bytes()).collect();
            let b = l.bias.iter().flat_map(|v| v.to_le_bytes()).collect();
            (w, b)
        })
        .collect();
    for (i, (l, (w, b))) in head.iter().zip(&raw).enumerate() {
        if l.weight.len() != l.outputs() * l.inputs {
            return Err(bad(format!("head layer {i}: weight is not {}×{}", l.outputs(), l.inputs)));
        }
        let p = format!("ctc_head/layer_{i}");
        views.push((
            format!("{p}/weight"),
            TensorView::new(Dtype::F32, vec![l.outputs(), l.inputs], w)
                .map_err(|e| bad(e.to_string()))?,
        ));
        views.push((
            format!("{p}/bias"),
            TensorView::new(Dtype::F32, vec![l.outputs()], b).map_err(|e| bad(e.to_string()))?,
        ));
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "harken-ctc-acoustic/1".to_string());
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| bad(e.to_string()))?;
    std::fs::write(out, &bytes).map_err(|source| Error::Io { path: out.into(), source })?;
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_files_round_trip_and_bad_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let head = vec![
            HeadLayer {
                weight: (0..6).map(|i| i as f32).collect(),
                bias: vec![0.5, -0.5, 1.0],
                inputs: 2,
            },
            HeadLayer { weight: vec![1.0; 3], bias: vec![2.0], inputs: 3 },
        ];
        let p = tmp.path().join("head.safetensors");
        write_ctc_head(&head, &p).unwrap();
        assert_eq!(read_ctc_head(&p).unwrap(), head);
        // A head file has no encoder: loading it as an acoustic model is a clear error.
        let err = CtcAcoustic::load(&p, Precision::F32).unwrap_err().to_string();
        assert!(err.contains("encoder"), "{err}");
        // A weight that does not match its shape is refused at write time.
        let bad = vec![HeadLayer { weight: vec![1.0; 5], bias: vec![0.0; 3], inputs: 2 }];
        assert!(write_ctc_head(&bad, &tmp.path().join("bad.safetensors")).is_err());
        std::fs::write(tmp.path().join("junk.safetensors"), b"not safetensors").unwrap();
        assert!(read_ctc_head(&tmp.path().join("junk.safetensors")).is_err());
    }
}

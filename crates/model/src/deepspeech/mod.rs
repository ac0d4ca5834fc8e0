//! DeepSpeech 0.9 / Coqui STT 1.x acoustic models, read from their `.tflite` files as they are
//! and run without TensorFlow.
//!
//! The exported graph is fixed in shape but not in size: three clipped-ReLU dense layers, one
//! LSTM cell unrolled over `n_steps` frames, a clipped-ReLU dense layer, the output layer and a
//! softmax, plus two side graphs — the MFCC front end (`input_samples` → `mfccs`, TFLite's
//! `AudioSpectrogram` and `Mfcc` custom ops) and `metadata_*` outputs (sample rate, window,
//! beam width, the serialized alphabet). [`DeepSpeech::load`] finds each layer by the graph's
//! structure — which operator reads which tensor — and takes every size from the tensors'
//! shapes; a graph of another shape is refused with the reason.
//!
//! int8 ("hybrid") fully-connected layers are computed as TFLite computes them: each input
//! row quantized on the fly to int8 with TFLite's rounding, exact int32 products with the
//! file's int8 weights, then `bias + acc · (s_x · s_w)` — on Harken's int8 kernels
//! (`harken_kernels::int8::matmul_tflite`), bit-identical to TFLite's arithmetic. Dequantizing
//! the weights and multiplying in f32 instead flips frame decisions. f32 layers multiply in f32.

mod tflite;

use std::path::{Path, PathBuf};

use harken_kernels::Isa;
use harken_kernels::int8::{self, PackedMatrix};
use rayon::prelude::*;

use tflite::{DType, Graph, Op, Tensor};

use crate::ops::dot;
use crate::{Error, Result};

/// What the model's `metadata_*` outputs say.
#[derive(Debug, Clone, PartialEq)]
pub struct DsMetadata {
    /// `metadata_version` (the graph version; the 0.9 client needs ≥ 6).
    pub version: i32,
    /// Samples per second the model takes.
    pub sample_rate: u32,
    /// Feature window, milliseconds.
    pub win_len_ms: i32,
    /// Feature step, milliseconds (one output frame per step).
    pub win_step_ms: i32,
    /// The beam width the model was exported with (the client's default).
    pub beam_width: u32,
    /// Label `i`'s text (UTF-8), in label order.
    pub alphabet: Vec<String>,
    /// `metadata_language` (Coqui STT models), when present.
    pub language: Option<String>,
}

/// Sizes, all from the tensors' shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DsDims {
    /// Frames per acoustic-model call (`input_node` dim 1).
    pub n_steps: usize,
    /// Context frames each side of a frame.
    pub n_context: usize,
    /// MFCC coefficients per frame.
    pub n_features: usize,
    /// LSTM state size.
    pub n_cell: usize,
    /// Output classes (the alphabet + blank).
    pub n_classes: usize,
}

impl DsDims {
    /// Values per time step of `input_node`: `(2·n_context + 1) · n_features`.
    pub fn feats_per_step(&self) -> usize {
        (2 * self.n_context + 1) * self.n_features
    }
}

/// The MFCC front end's parameters, from the `AudioSpectrogram` and `Mfcc` ops' options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MfccParams {
    /// The `Mfcc` op's sample rate input.
    pub sample_rate: u32,
    /// Samples per analysis window (`input_samples`' length).
    pub window: usize,
    /// Samples between windows (the spectrogram op's own stride).
    pub stride: usize,
    /// Whether the spectrogram is a power spectrum (the only form supported).
    pub magnitude_squared: bool,
    /// Lowest mel filter edge, Hz.
    pub lower_hz: f64,
    /// Highest mel filter edge, Hz.
    pub upper_hz: f64,
    /// Mel channels.
    pub channels: usize,
    /// DCT coefficients per frame.
    pub coefficients: usize,
}

/// A fully-connected layer's weights, as the file stores them.
enum Weights {
    Int8(PackedMatrix),
    /// An LSTM's int8 weights as two matrices: the columns that multiply the frame and those
    /// that multiply `h` (see [`SplitStep`]).
    Int8Split(PackedMatrix, PackedMatrix),
    F32 {
        w: Vec<f32>,
        n: usize,
        k: usize,
    },
}

impl Weights {
    fn n(&self) -> usize {
        match self {
            Weights::Int8(p) | Weights::Int8Split(p, _) => p.view().n(),
            Weights::F32 { n, .. } => *n,
        }
    }
    fn k(&self) -> usize {
        match self {
            Weights::Int8(p) => p.view().k(),
            Weights::Int8Split(a, b) => a.view().k() + b.view().k(),
            Weights::F32 { k, .. } => *k,
        }
    }

    /// `y = x · Wᵀ + b` for `m` rows of `x`.
    fn apply(&self, isa: Isa, x: &[f32], m: usize, bias: &[f32], y: &mut [f32]) -> Result<()> {
        match self {
            Weights::Int8(p) => int8::matmul_tflite(isa, x, m, p.view(), Some(bias), y)
                .map_err(|e| Error::Input { detail: e.to_string() }),
            // Only the LSTM's weights are split, and it multiplies them through `SplitStep`.
            Weights::Int8Split(..) => {
                Err(Error::Input { detail: "split weights are multiplied per half".into() })
            }
            Weights::F32 { w, n, k } => {
                let (n, k) = (*n, *k);
                y.par_chunks_mut(n).zip(x.par_chunks(k)).for_each(|(yr, xr)| {
                    for ((o, wr), &b) in yr.iter_mut().zip(w.chunks_exact(k)).zip(bias) {
                        *o = dot(xr, wr) + b;
                    }
                });
                Ok(())
            }
        }
    }
}

/// A dense layer: `min(relu(x·Wᵀ + b), clip)`.
struct Dense {
    w: Weights,
    bias: Vec<f32>,
    relu: bool,
    clip: Option<f32>,
}

impl Dense {
    fn forward(&self, isa: Isa, x: &[f32], m: usize) -> Result<Vec<f32>> {
        let mut y = vec![0f32; m * self.w.n()];
        self.w.apply(isa, x, m, &self.bias, &mut y)?;
        if self.relu || self.clip.is_some() {
            for v in &mut y {
                if self.relu {
                    *v = v.max(0.0);
                }
                if let Some(c) = self.clip {
                    *v = v.min(c);
                }
            }
        }
        Ok(y)
    }
}

/// The LSTM cell: `[x, h] · Wᵀ + b` split into four gates.
struct Lstm {
    /// int8 weights are split (`Weights::Int8Split`) when the frame's part ends on a rounding
    /// block: see [`SplitStep`].
    w: Weights,
    bias: Vec<f32>,
    /// Which quarter of the product feeds the input gate, the candidate, the forget gate and
    /// the output gate (TensorFlow's `LSTMCell` order is 0, 1, 2, 3).
    gates: [usize; 4],
    forget_bias: f32,
}

/// The LSTM's state between calls: cell and hidden vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmState {
    /// Cell state.
    pub c: Vec<f32>,
    /// Hidden state (the cell's output).
    pub h: Vec<f32>,
}

/// A loaded DeepSpeech / Coqui STT acoustic model.
pub struct DeepSpeech {
    path: PathBuf,
    meta: DsMetadata,
    dims: DsDims,
    mfcc: MfccParams,
    pre: Vec<Dense>,
    lstm: Lstm,
    post: Vec<Dense>,
    out: Dense,
    softmax_beta: f32,
    int8: bool,
    isa: Isa,
}

impl std::fmt::Debug for DeepSpeech {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeepSpeech")
            .field("path", &self.path)
            .field("dims", &self.dims)
            .field("int8", &self.int8)
            .field("isa", &self.isa)
            .finish_non_exhaustive()
    }
}

fn fmt_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Format { path: path.to_owned(), detail: detail.into() }
}

/// The graph and the file's bytes, with helpers that turn a surprise into an error.
struct Reader<'a> {
    g: &'a Graph,
    bytes: &'a [u8],
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, detail: impl Into<String>) -> Error {
        fmt_err(self.path, detail)
    }

    fn io(&self, name: &str) -> Result<usize> {
        self.g.io(name).ok_or_else(|| {
            self.err(format!(
                "no tensor {name:?} among the graph's inputs and outputs (not a DeepSpeech / Coqui STT model)"
            ))
        })
    }

    fn tensor(&self, t: i32) -> Result<&'a Tensor> {
        usize::try_from(t)
            .ok()
            .and_then(|t| self.g.tensors.get(t))
            .ok_or_else(|| self.err(format!("tensor {t} does not exist")))
    }

    /// The constant bytes behind tensor `t`, following shape-only ops (the `metadata_*`
    /// outputs are RESHAPEs of constants).
    fn const_bytes(&self, t: usize) -> Result<&'a [u8]> {
        let mut t = t;
        for _ in 0..8 {
            let tensor = &self.g.tensors[t];
            if !tensor.data.is_empty() {
                return Ok(&self.bytes[tensor.data.clone()]);
            }
            match self.g.producer(t) {
                Some((_, op)) if op.code == Op::RESHAPE && op.input(0).is_some() => {
                    t = op.input(0).unwrap_or(t);
                }
                _ => break,
            }
        }
        Err(self.err(format!("tensor {:?} is not a constant", self.g.tensors[t].name)))
    }

    fn const_i32(&self, name: &str) -> Result<i32> {
        let b = self.const_bytes(self.io(name)?)?;
        if b.len() < 4 {
            return Err(self.err(format!("{name} holds {} bytes", b.len())));
        }
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn const_f32_scalar(&self, t: i32) -> Result<f32> {
        let tensor = self.tensor(t)?;
        if tensor.dtype != DType::F32 || tensor.numel() != 1 {
            return Err(self.err(format!("{:?} is not an f32 scalar", tensor.name)));
        }
        let b = self.const_bytes(t as usize)?;
        if b.len() < 4 {
            return Err(self.err(format!("{:?} holds {} bytes", tensor.name, b.len())));
        }
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// String 0 of a TFLite string tensor: `count, offsets[count + 1], bytes`.
    fn const_string(&self, name: &str) -> Result<Vec<u8>> {
        let b = self.const_bytes(self.io(name)?)?;
        let word = |i: usize| -> Option<usize> {
            let s = b.get(4 * i..4 * i + 4)?;
            usize::try_from(i32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok()
        };
        let bad = || self.err(format!("{name} is not a well-formed string tensor"));
        let count = word(0).ok_or_else(bad)?;
        if count < 1 {
            return Err(bad());
        }
        let (start, end) = (word(1).ok_or_else(bad)?, word(2).ok_or_else(bad)?);
        b.get(start..end).map(<[u8]>::to_vec).ok_or_else(bad)
    }

    /// A fully-connected op's weights and bias.
    fn fc(&self, op: &Op) -> Result<(Weights, Vec<f32>)> {
        self.fc_split(op, None)
    }

    /// [`Reader::fc`]; int8 weights are packed as two matrices, the last `split_last`
    /// columns apart, when both parts are whole blocks of 8 (TFLite's rounding blocks).
    fn fc_split(&self, op: &Op, split_last: Option<usize>) -> Result<(Weights, Vec<f32>)> {
        let Some(w_index) = op.input(1) else {
            return Err(self.err("a FULLY_CONNECTED op without weights"));
        };
        let w = &self.g.tensors[w_index];
        if w.shape.len() != 2 || w.shape[0] <= 0 || w.shape[1] <= 0 {
            return Err(self.err(format!("weights {:?} have shape {:?}", w.name, w.shape)));
        }
        let (n, k) = (w.shape[0] as usize, w.shape[1] as usize);
        let data = self.const_bytes(w_index)?;
        let need = |bytes_per: usize| -> Result<()> {
            if n.checked_mul(k).and_then(|v| v.checked_mul(bytes_per)) == Some(data.len()) {
                Ok(())
            } else {
                Err(self.err(format!(
                    "weights {:?} ({n}×{k}) hold {} bytes, expected {}",
                    w.name,
                    data.len(),
                    n as u128 * k as u128 * bytes_per as u128
                )))
            }
        };
        let weights = match w.dtype {
            DType::I8 | DType::U8 => {
                need(1)?;
                if op.fc_asymmetric {
                    return Err(self.err("asymmetric input quantization is not supported"));
                }
                let scales = match (w.scale.len(), w.zero_point.iter().all(|&z| z == 0)) {
                    (1, true) => vec![w.scale[0]; n],
                    (len, true) if len == n => w.scale.clone(),
                    _ => {
                        return Err(self.err(format!(
                            "weights {:?}: {} scales / zero points {:?}, expected symmetric int8",
                            w.name,
                            w.scale.len(),
                            w.zero_point
                        )));
                    }
                };
                if w.dtype == DType::U8 {
                    // uint8 weights carry a zero point of 128 in older converters.
                    return Err(self.err(format!("uint8 weights {:?} are not supported", w.name)));
                }
                let q: &[i8] = bytemuck::cast_slice(data);
                let err = |e: int8::LayoutError| self.err(e.to_string());
                match split_last.filter(|&c| c < k && c % 8 == 0 && (k - c) % 8 == 0) {
                    Some(c) => Weights::Int8Split(
                        PackedMatrix::from_int8_columns(q, &scales, n, k, 0..k - c).map_err(err)?,
                        PackedMatrix::from_int8_columns(q, &scales, n, k, k - c..k).map_err(err)?,
                    ),
                    None => Weights::Int8(PackedMatrix::from_int8(q, &scales, n, k).map_err(err)?),
                }
            }
            DType::F32 => {
                need(4)?;
                let w = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                Weights::F32 { w: w.collect(), n, k }
            }
            other => return Err(self.err(format!("weights {:?} of type {other:?}", w.name))),
        };
        let bias = match op.inputs.get(2) {
            Some(&b) if b >= 0 => {
                let t = self.tensor(b)?;
                let bytes = self.const_bytes(b as usize)?;
                if t.dtype != DType::F32 || bytes.len() != 4 * n {
                    return Err(self.err(format!("bias {:?} does not hold {n} f32 values", t.name)));
                }
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }
            _ => vec![0f32; n],
        };
        Ok((weights, bias))
    }

    /// The single consumer of tensor `t`.
    fn only_consumer(&self, t: usize) -> Option<&'a Op> {
        let mut c = self.g.consumers(t);
        let first = c.next()?;
        c.next().is_none().then_some(first.1)
    }

    /// A dense layer: the FC op, then an optional `MINIMUM` with a constant. Returns the layer
    /// and the tensor that carries its output.
    fn dense(&self, op: &Op) -> Result<(Dense, usize)> {
        let (w, bias) = self.fc(op)?;
        let relu = match op.fused_activation {
            0 => false,
            1 => true,
            a => return Err(self.err(format!("fused activation {a} is not supported"))),
        };
        let mut out = op.output();
        let mut clip = None;
        if let Some(next) = self.only_consumer(out).filter(|o| o.code == Op::MINIMUM) {
            let other = next.inputs.iter().copied().find(|&i| i as usize != out);
            let other = other.ok_or_else(|| self.err("a MINIMUM with one input"))?;
            clip = Some(self.const_f32_scalar(other)?);
            out = next.output();
        }
        Ok((Dense { w, bias, relu, clip }, out))
    }

    /// Dense layers from tensor `cur` on, through shape-only RESHAPEs, until a tensor is not
    /// read by exactly one FULLY_CONNECTED or RESHAPE op: the layers and the op that ended the
    /// walk (`None` when the tensor has no single reader).
    fn dense_chain(&self, mut cur: usize, place: &str) -> Result<(Vec<Dense>, Option<&'a Op>)> {
        let mut layers = Vec::new();
        loop {
            match self.only_consumer(cur) {
                Some(op) if op.code == Op::FULLY_CONNECTED => {
                    let (d, out) = self.dense(op)?;
                    layers.push(d);
                    cur = out;
                }
                Some(op) if op.code == Op::RESHAPE => cur = op.output(),
                stop => return Ok((layers, stop)),
            }
            if layers.len() > 16 {
                return Err(self.err(format!("more than 16 dense layers {place}")));
            }
        }
    }

    fn options_map(&self, op: &Op) -> Result<flexbuffers::MapReader<&'a [u8]>> {
        let bytes = &self.bytes[op.custom_options.clone()];
        flexbuffers::Reader::get_root(bytes)
            .and_then(|r| r.get_map())
            .map_err(|e| self.err(format!("options of {}: {e}", op.name())))
    }
}

fn opt_num(m: &flexbuffers::MapReader<&[u8]>, key: &str) -> Option<f64> {
    m.index(key).ok().map(|v| v.as_f64())
}

impl DeepSpeech {
    /// Read the model at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path)
            .map_err(|source| Error::Io { path: path.to_owned(), source })?;
        // SAFETY: the file is mapped read-only and not modified while the model loads; the
        // weights are packed into owned memory before the map is dropped.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|source| Error::Io { path: path.to_owned(), source })?;
        Self::from_bytes(path, &map)
    }

    /// Read a model from the bytes of a `.tflite` file (`path` names it in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let g = Graph::parse(bytes).map_err(|e| fmt_err(path, e.0))?;
        let r = Reader { g: &g, bytes, path };
        let meta = read_metadata(&r)?;
        let input = r.io("input_node")?;
        let c_in = r.io("previous_state_c")?;
        let h_in = r.io("previous_state_h")?;
        let samples = r.io("input_samples")?;
        let logits = r.io("logits")?;
        let mfccs = r.io("mfccs")?;
        let shape = &g.tensors[input].shape;
        if shape.len() != 4 || shape.iter().any(|&d| d <= 0) || shape[2] % 2 == 0 {
            return Err(r.err(format!(
                "input_node has shape {shape:?}, expected [1, steps, 2·context + 1, features]"
            )));
        }
        let n_cell = match g.tensors[c_in].shape.as_slice() {
            [1, c] if *c > 0 => *c as usize,
            s => return Err(r.err(format!("previous_state_c has shape {s:?}"))),
        };
        if g.tensors[h_in].shape != g.tensors[c_in].shape {
            return Err(r.err("previous_state_h and previous_state_c differ in shape"));
        }
        let n_classes = match g.tensors[logits].shape.last() {
            Some(&c) if c > 1 => c as usize,
            _ => return Err(r.err(format!("logits have shape {:?}", g.tensors[logits].shape))),
        };
        let dims = DsDims {
            n_steps: shape[1] as usize,
            n_context: (shape[2] as usize - 1) / 2,
            n_features: shape[3] as usize,
            n_cell,
            n_classes,
        };
        if meta.alphabet.len() + 1 != n_classes {
            return Err(r.err(format!(
                "the alphabet has {} labels + blank, the model emits {n_classes} classes",
                meta.alphabet.len()
            )));
        }

        // Walk the acoustic graph from input_node: dense layers until the LSTM's input
        // concatenation, the LSTM, then dense layers until the softmax.
        // The LSTM's input is sliced per step: several consumers end the first walk.
        let (pre, _) = r.dense_chain(input, "before the LSTM")?;
        let lstm_op = find_lstm_fc(&r, h_in)?;
        let lstm = read_lstm(&r, lstm_op, c_in, n_cell)?;
        // After the LSTM: the layer that reads the concatenation of all steps' outputs.
        let h_out = r.io("new_state_h")?;
        let cur = g
            .consumers(h_out)
            .find(|(_, o)| o.code == Op::CONCATENATION)
            .map(|(_, o)| o.output())
            .ok_or_else(|| r.err("the LSTM's outputs are not concatenated into the next layer"))?;
        let (mut post, stop) = r.dense_chain(cur, "after the LSTM")?;
        let softmax = match stop {
            Some(op) if op.code == Op::SOFTMAX && op.output() == logits => op,
            other => {
                return Err(r.err(format!(
                    "after the LSTM: {} where a dense layer or the softmax was expected",
                    other.map_or("nothing".into(), Op::name)
                )));
            }
        };
        let out = post.pop().ok_or_else(|| r.err("no output layer before the softmax"))?;
        if pre.is_empty() {
            return Err(r.err("no dense layer before the LSTM"));
        }
        // Every size must chain.
        let mut k = dims.feats_per_step();
        for (i, d) in pre.iter().enumerate() {
            if d.w.k() != k {
                return Err(r.err(format!(
                    "dense layer {} takes {} inputs, gets {k}",
                    i + 1,
                    d.w.k()
                )));
            }
            k = d.w.n();
        }
        if lstm.w.k() != k + n_cell || lstm.w.n() != 4 * n_cell {
            return Err(r.err(format!(
                "LSTM weights {}×{}, expected {}×{}",
                lstm.w.n(),
                lstm.w.k(),
                4 * n_cell,
                k + n_cell
            )));
        }
        k = n_cell;
        for d in post.iter().chain(std::iter::once(&out)) {
            if d.w.k() != k {
                return Err(
                    r.err(format!("a layer after the LSTM takes {} inputs, gets {k}", d.w.k()))
                );
            }
            k = d.w.n();
        }
        if k != n_classes {
            return Err(r.err(format!("the output layer has {k} units for {n_classes} classes")));
        }
        let mfcc = read_mfcc(&r, samples, mfccs, meta.sample_rate)?;
        if mfcc.coefficients != dims.n_features {
            return Err(r.err(format!(
                "the MFCC op makes {} coefficients, input_node takes {}",
                mfcc.coefficients, dims.n_features
            )));
        }
        let int8 = matches!(lstm.w, Weights::Int8(_) | Weights::Int8Split(..));
        Ok(DeepSpeech {
            path: path.to_owned(),
            meta,
            dims,
            mfcc,
            pre,
            lstm,
            post,
            out,
            softmax_beta: softmax.softmax_beta,
            int8,
            isa: Isa::detect(),
        })
    }

    /// What the model's metadata outputs say.
    pub fn metadata(&self) -> &DsMetadata {
        &self.meta
    }

    /// Sizes from the tensors' shapes.
    pub fn dims(&self) -> DsDims {
        self.dims
    }

    /// The front end's parameters.
    pub fn mfcc_params(&self) -> MfccParams {
        self.mfcc
    }

    /// The file the model was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the fully-connected layers are int8 (hybrid).
    pub fn is_int8(&self) -> bool {
        self.int8
    }

    /// The kernel path the int8 layers run on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Choose the kernel path (an unsupported one falls back to the scalar reference).
    pub fn set_isa(&mut self, isa: Isa) {
        self.isa = if isa.supported() { isa } else { Isa::Scalar };
    }

    /// A zero LSTM state, as a stream starts with.
    pub fn initial_state(&self) -> LstmState {
        LstmState { c: vec![0.0; self.dims.n_cell], h: vec![0.0; self.dims.n_cell] }
    }

    /// Run `n_frames` (≤ `n_steps`) time steps: `input` holds `n_frames · feats_per_step()`
    /// values. Returns the softmax outputs (`n_frames × n_classes`) and updates `state`.
    pub fn infer(&self, input: &[f32], n_frames: usize, state: &mut LstmState) -> Result<Vec<f32>> {
        let d = self.dims;
        if n_frames == 0 || n_frames > d.n_steps || input.len() != n_frames * d.feats_per_step() {
            return Err(Error::Input {
                detail: format!(
                    "{} values for {n_frames} frames of {} (at most {} frames)",
                    input.len(),
                    d.feats_per_step(),
                    d.n_steps
                ),
            });
        }
        let mut x = input.to_vec();
        for layer in &self.pre {
            x = layer.forward(self.isa, &x, n_frames)?;
        }
        let n_in = x.len() / n_frames;
        let c = d.n_cell;
        let mut hs = Vec::with_capacity(n_frames * c);
        let mut row = vec![0f32; n_in + c];
        let mut g = vec![0f32; 4 * c];
        let l = &self.lstm;
        let mut split = match &l.w {
            Weights::Int8Split(wx, wh) => Some(SplitStep::new(self.isa, &x, n_frames, wx, wh)?),
            _ => None,
        };
        for t in 0..n_frames {
            let frame = &x[t * n_in..(t + 1) * n_in];
            match &mut split {
                Some(s) => s.step(self.isa, t, frame, &state.h, &l.bias, &mut g)?,
                None => {
                    row[..n_in].copy_from_slice(frame);
                    row[n_in..].copy_from_slice(&state.h);
                    l.w.apply(self.isa, &row, 1, &l.bias, &mut g)?;
                }
            }
            let [gi, gj, gf, go] = l.gates.map(|q| &g[q * c..(q + 1) * c]);
            for u in 0..c {
                let i = sigmoid(gi[u]);
                let j = tanh(gj[u]);
                let f = sigmoid(gf[u] + l.forget_bias);
                let cell = f * state.c[u] + i * j;
                state.c[u] = cell;
                state.h[u] = sigmoid(go[u]) * tanh(cell);
            }
            hs.extend_from_slice(&state.h);
        }
        let mut x = hs;
        for layer in &self.post {
            x = layer.forward(self.isa, &x, n_frames)?;
        }
        let mut y = self.out.forward(self.isa, &x, n_frames)?;
        // TFLite's float softmax: Eigen's exp, then a multiplication by the sum's inverse.
        for r in y.chunks_exact_mut(d.n_classes) {
            let max = r.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let mut sum = 0f32;
            for v in r.iter_mut() {
                *v = eigen_exp((*v - max) * self.softmax_beta);
                sum += *v;
            }
            let inv = 1.0 / sum;
            for v in r.iter_mut() {
                *v *= inv;
            }
        }
        Ok(y)
    }
}

/// The LSTM's product `[x_t, h] · Wᵀ` for a batch of frames, split in two.
///
/// TFLite quantizes the row `[x_t, h]` with one scale, `max|[x_t, h]| / 127`. The frame's
/// part `x_t` (clipped-ReLU output, up to 20) almost always holds that maximum, since `h` is a
/// tanh times a sigmoid (below 1): then the scale is known before `h` is, and `x_t · W_xᵀ` for
/// every frame of the batch is one matrix product — its weights read once per batch instead
/// of once per frame — leaving only `h · W_hᵀ` in the recurrence. The integer accumulators of
/// the two parts add up to the whole row's exactly; a frame whose `h` holds the maximum
/// (a silent frame) has its frame part redone with the whole row's range. The weights streamed
/// per frame halve (DeepSpeech 0.9: 16.8 of 33.6 MB).
struct SplitStep<'a> {
    wx: &'a PackedMatrix,
    wh: &'a PackedMatrix,
    /// Each frame's range `max|x_t|` and its accumulators `q(x_t) · W_xᵀ` at that range.
    ranges: Vec<f32>,
    acc_x: Vec<i32>,
    acc_h: Vec<i32>,
    redo: Vec<i32>,
}

impl<'a> SplitStep<'a> {
    fn new(
        isa: Isa,
        x: &[f32],
        n_frames: usize,
        wx: &'a PackedMatrix,
        wh: &'a PackedMatrix,
    ) -> Result<Self> {
        let n = wx.view().n();
        let ranges: Vec<f32> = x
            .chunks_exact(wx.view().k())
            .map(|r| r.iter().fold(0f32, |a, &v| a.max(v.abs())))
            .collect();
        let mut acc_x = vec![0i32; n_frames * n];
        let mut scales = vec![0f32; n_frames];
        int8::matmul_tflite_acc(isa, x, n_frames, &ranges, wx.view(), &mut acc_x, &mut scales)
            .map_err(|e| Error::Input { detail: e.to_string() })?;
        Ok(SplitStep { wx, wh, ranges, acc_x, acc_h: vec![0; n], redo: Vec::new() })
    }

    /// Frame `t`'s gate pre-activations into `g`, as TFLite's hybrid kernel computes them.
    fn step(
        &mut self,
        isa: Isa,
        t: usize,
        frame: &[f32],
        h: &[f32],
        bias: &[f32],
        g: &mut [f32],
    ) -> Result<()> {
        let n = self.acc_h.len();
        let err = |e: harken_kernels::int8::LayoutError| Error::Input { detail: e.to_string() };
        let range_h = h.iter().fold(0f32, |a, &v| a.max(v.abs()));
        let range = self.ranges[t].max(range_h);
        let mut scale = [0f32];
        int8::matmul_tflite_acc(isa, h, 1, &[range], self.wh.view(), &mut self.acc_h, &mut scale)
            .map_err(err)?;
        let acc_x = if range_h <= self.ranges[t] {
            &self.acc_x[t * n..(t + 1) * n]
        } else {
            self.redo.resize(n, 0);
            let mut s = [0f32];
            int8::matmul_tflite_acc(
                isa,
                frame,
                1,
                &[range],
                self.wx.view(),
                &mut self.redo,
                &mut s,
            )
            .map_err(err)?;
            &self.redo[..]
        };
        let sw = self.wh.view().scales();
        for (j, o) in g.iter_mut().enumerate().take(n) {
            // The order of TFLite's epilogue: `acc · (s_x · s_w)`, then the bias.
            *o = (acc_x[j] + self.acc_h[j]) as f32 * (scale[0] * sw[j]) + bias[j];
        }
        Ok(())
    }
}

/// The logistic function as TFLite's float `LOGISTIC` kernel computes it: Eigen's
/// `scalar_logistic_op<float>`, a 9/10-degree rational approximation of `σ(x) − ½` (built
/// without FMA, as the client's library is), `eˣ` below −9. libm's `1/(1+e⁻ˣ)` differs in the
/// last bits, and the LSTM quantizes `[x, h]` as one row: a last-bit difference in `h` can move
/// a value across a rounding boundary and change the transcript.
#[allow(clippy::excessive_precision)] // Eigen's constants, as written there
fn sigmoid(x0: f32) -> f32 {
    if x0 < -9.0 {
        return eigen_exp(x0);
    }
    let x = x0.min(15.643_771_171_569_824_2);
    let x2 = x * x;
    let mut p = x2 * 4.370_310_125_798_01e-11 + 1.156_273_244_599_42e-7;
    p = x2 * p + 6.085_748_646_001_43e-5;
    p = x2 * p + 8.513_771_333_047_01e-3;
    p = x2 * p + 2.482_879_470_615_29e-1;
    p *= x;
    let mut q = x2 * 6.102_473_897_556_81e-13 + 5.761_021_369_934_27e-9;
    q = x2 * q + 6.291_067_850_170_4e-6;
    q = x2 * q + 1.701_988_173_740_94e-3;
    q = x2 * q + 1.168_176_569_044_53e-1;
    q = x2 * q + 9.931_519_210_231_8e-1;
    p / q + 0.5
}

/// `eˣ` as Eigen's `pexp<float>` computes it (Cephes' polynomial on `x − m·ln 2`, no FMA):
/// TFLite's float softmax and the logistic's low branch use it.
#[allow(clippy::excessive_precision)] // Eigen's constants, as written there
fn eigen_exp(x0: f32) -> f32 {
    let x = x0.clamp(-88.723, 88.723);
    let m = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let mut r = m * -0.693_359_375 + x;
    r += m * 2.121_944_4e-4;
    let r2 = r * r;
    let r3 = r2 * r;
    let mut y = 1.987_569_15e-4 * r + 1.398_199_950_7e-3;
    let mut y1 = 4.166_579_589_4e-2 * r + 1.666_666_545_9e-1;
    let y2 = r + 1.0;
    y = y * r + 8.333_451_907_3e-3;
    y1 = y1 * r + 5.000_000_120_1e-1;
    y = y * r3 + y1;
    y = y * r2 + y2;
    // 2^m · y, with m within the exponent range after the clamp.
    let scaled = y * f32::from_bits((((m as i32) + 127).clamp(1, 254) as u32) << 23);
    scaled.max(x0)
}

/// `tanh` as TFLite's float `TANH` kernel computes it: Eigen's `generic_fast_tanh_float`, a
/// 13/6-degree rational approximation clamped to ±7.905 (no FMA), `x` itself below 0.0004.
#[allow(clippy::excessive_precision)] // Eigen's constants, as written there
fn tanh(x0: f32) -> f32 {
    if x0.abs() < 0.0004 {
        return x0;
    }
    let x = x0.clamp(-7.905_311_107_635_498_05, 7.905_311_107_635_498_05);
    let x2 = x * x;
    let mut p = x2 * -2.760_768_477_423_55e-16 + 2.000_187_904_824_77e-13;
    p = x2 * p + -8.604_671_522_137_35e-11;
    p = x2 * p + 5.122_297_090_371_14e-8;
    p = x2 * p + 1.485_722_357_179_79e-5;
    p = x2 * p + 6.372_619_288_754_36e-4;
    p = x2 * p + 4.893_524_558_917_86e-3;
    p *= x;
    let mut q = x2 * 1.198_258_394_667_02e-6 + 1.185_347_056_866_54e-4;
    q = x2 * q + 2.268_434_632_439e-3;
    q = x2 * q + 4.893_525_185_543_85e-3;
    p / q
}

fn read_metadata(r: &Reader<'_>) -> Result<DsMetadata> {
    let version = r.const_i32("metadata_version")?;
    let sample_rate = r.const_i32("metadata_sample_rate")?;
    let win_len_ms = r.const_i32("metadata_feature_win_len")?;
    let win_step_ms = r.const_i32("metadata_feature_win_step")?;
    let beam_width = r.const_i32("metadata_beam_width")?;
    if sample_rate <= 0 || win_len_ms <= 0 || win_step_ms <= 0 || beam_width <= 0 {
        return Err(r.err(format!(
            "metadata: sample rate {sample_rate}, window {win_len_ms} ms, step {win_step_ms} ms, beam {beam_width}"
        )));
    }
    let alphabet = parse_alphabet(&r.const_string("metadata_alphabet")?)
        .map_err(|e| r.err(format!("metadata_alphabet: {e}")))?;
    // Coqui's exporter writes a sentence of instructions when no language was given: only a
    // language tag counts.
    let language = match r.g.io("metadata_language") {
        Some(_) => r
            .const_string("metadata_language")
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .filter(|l| {
                !l.is_empty()
                    && l.len() <= 35
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }),
        None => None,
    };
    Ok(DsMetadata {
        version,
        sample_rate: sample_rate as u32,
        win_len_ms,
        win_step_ms,
        beam_width: beam_width as u32,
        alphabet,
        language,
    })
}

/// DeepSpeech's serialized alphabet: `u16 count`, then per label `u16 label, u16 len, bytes`.
/// Labels must be `0..count` (the client looks each up by number).
pub fn parse_alphabet(b: &[u8]) -> std::result::Result<Vec<String>, String> {
    let u16_at = |p: usize| b.get(p..p + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as usize);
    let count = u16_at(0).ok_or("shorter than its count")?;
    let mut labels: Vec<Option<String>> = vec![None; count];
    let mut p = 2;
    for i in 0..count {
        let label = u16_at(p).ok_or(format!("entry {i} is cut short"))?;
        let len = u16_at(p + 2).ok_or(format!("entry {i} is cut short"))?;
        let text = b.get(p + 4..p + 4 + len).ok_or(format!("entry {i} runs past the end"))?;
        p += 4 + len;
        let text =
            String::from_utf8(text.to_vec()).map_err(|_| format!("label {label} is not UTF-8"))?;
        match labels.get_mut(label) {
            Some(slot) => *slot = Some(text),
            None => return Err(format!("label {label} outside 0..{count}")),
        }
    }
    labels.into_iter().enumerate().map(|(i, l)| l.ok_or(format!("label {i} is missing"))).collect()
}

/// The FC op whose input concatenates a frame with `previous_state_h`: the LSTM's first step.
fn find_lstm_fc<'a>(r: &Reader<'a>, h_in: usize) -> Result<&'a Op> {
    let concat = r
        .g
        .consumers(h_in)
        .find(|(_, o)| o.code == Op::CONCATENATION)
        .map(|(_, o)| o.output())
        .ok_or_else(|| r.err("previous_state_h does not feed a concatenation (no LSTM cell)"))?;
    r.only_consumer(concat)
        .filter(|o| o.code == Op::FULLY_CONNECTED)
        .ok_or_else(|| r.err("the LSTM's concatenated input does not feed a FULLY_CONNECTED op"))
}

/// The LSTM's weights and gate order, from the first step's ops: the FC's output is SPLIT in
/// four; the quarter that goes through TANH is the candidate, the LOGISTIC that multiplies
/// `previous_state_c` is the forget gate, the LOGISTIC that multiplies a TANH of the new cell
/// is the output gate, the remaining one the input gate.
fn read_lstm(r: &Reader<'_>, fc: &Op, c_in: usize, n_cell: usize) -> Result<Lstm> {
    let (w, bias) = r.fc_split(fc, Some(n_cell))?;
    let g = r.g;
    let split = r
        .only_consumer(fc.output())
        .filter(|o| o.code == Op::SPLIT && o.outputs.len() == 4)
        .ok_or_else(|| r.err("the LSTM product is not split into four gates"))?;
    let mut gates = [usize::MAX; 4];
    let mut forget_bias = 0f32;
    for (q, &t) in split.outputs.iter().enumerate() {
        let Some(mut op) = r.only_consumer(t as usize) else {
            return Err(r.err(format!("LSTM gate {q} feeds several ops")));
        };
        let mut bias_here = 0f32;
        if op.code == Op::ADD {
            // TensorFlow adds `forget_bias` before the forget gate's sigmoid.
            let other = op.inputs.iter().copied().find(|&i| i != t).unwrap_or(t);
            bias_here = r.const_f32_scalar(other)?;
            op = r
                .only_consumer(op.output())
                .ok_or_else(|| r.err("an LSTM gate's ADD feeds several ops"))?;
        }
        let role = match op.code {
            Op::TANH => 1,
            Op::LOGISTIC => {
                let s = op.output();
                let mul = r
                    .only_consumer(s)
                    .filter(|o| o.code == Op::MUL)
                    .ok_or_else(|| r.err("an LSTM sigmoid does not feed a MUL"))?;
                let other = mul.inputs.iter().copied().find(|&i| i as usize != s).unwrap_or(-1);
                if other as usize == c_in {
                    2
                } else {
                    // The output gate multiplies tanh(new cell); the input gate multiplies
                    // tanh(a split quarter).
                    let from_split = g
                        .producer(other as usize)
                        .filter(|(_, o)| o.code == Op::TANH)
                        .is_some_and(|(_, o)| {
                            o.input(0).is_some_and(|i| split.outputs.contains(&(i as i32)))
                        });
                    if from_split { 0 } else { 3 }
                }
            }
            _ => return Err(r.err(format!("LSTM gate {q} feeds {}", op.name()))),
        };
        if gates[role] != usize::MAX {
            return Err(r.err("two LSTM quarters play the same role"));
        }
        if role == 2 {
            forget_bias = bias_here;
        }
        gates[role] = q;
    }
    // The split must be along the last axis into equal quarters.
    if g.tensors[split.output()].shape.last().copied() != Some(n_cell as i32) {
        return Err(r.err("the LSTM gates are not n_cell wide"));
    }
    Ok(Lstm { w, bias, gates, forget_bias })
}

fn read_mfcc(r: &Reader<'_>, samples: usize, mfccs: usize, sample_rate: u32) -> Result<MfccParams> {
    let g = r.g;
    // mfccs ← (RESHAPE) ← Mfcc(spectrogram, sample_rate) ← AudioSpectrogram ← (RESHAPE) ← samples
    let mut t = mfccs;
    let mut mfcc_op = None;
    for _ in 0..4 {
        match g.producer(t) {
            Some((_, o)) if o.code == Op::CUSTOM && o.custom == "Mfcc" => {
                mfcc_op = Some(o);
                break;
            }
            Some((_, o)) if o.input(0).is_some() => t = o.input(0).unwrap_or(t),
            _ => break,
        }
    }
    let mfcc_op = mfcc_op.ok_or_else(|| r.err("mfccs is not computed by an Mfcc op"))?;
    let spec_op = g
        .producer(mfcc_op.input(0).ok_or_else(|| r.err("an Mfcc op without input"))?)
        .map(|(_, o)| o)
        .filter(|o| o.code == Op::CUSTOM && o.custom == "AudioSpectrogram")
        .ok_or_else(|| r.err("the Mfcc op does not read an AudioSpectrogram"))?;
    let s = r.options_map(spec_op)?;
    let m = r.options_map(mfcc_op)?;
    let get = |map: &flexbuffers::MapReader<&[u8]>, k: &str| {
        opt_num(map, k).ok_or_else(|| r.err(format!("option {k} is missing")))
    };
    let window = get(&s, "window_size")? as usize;
    let stride = get(&s, "stride")? as usize;
    let magnitude_squared = s.index("magnitude_squared").map(|v| v.as_bool()).unwrap_or(true);
    let sr = match mfcc_op.inputs.get(1) {
        Some(&t) if t >= 0 => {
            let b = r.const_bytes(t as usize)?;
            b.get(..4).map_or(sample_rate, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u32)
        }
        _ => sample_rate,
    };
    let n_samples = g.tensors[samples].numel();
    if !(2..=1 << 16).contains(&window) || stride < 1 || window != n_samples {
        return Err(r.err(format!(
            "spectrogram window {window}, stride {stride}, input_samples holds {n_samples}"
        )));
    }
    let params = MfccParams {
        sample_rate: sr,
        window,
        stride,
        magnitude_squared,
        lower_hz: opt_num(&m, "lower_frequency_limit").unwrap_or(20.0),
        upper_hz: opt_num(&m, "upper_frequency_limit").unwrap_or(4000.0),
        channels: opt_num(&m, "filterbank_channel_count").unwrap_or(40.0) as usize,
        coefficients: opt_num(&m, "dct_coefficient_count").unwrap_or(13.0) as usize,
    };
    if !params.magnitude_squared {
        return Err(r.err("AudioSpectrogram without magnitude_squared is not supported"));
    }
    Ok(params)
}

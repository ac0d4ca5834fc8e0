//! A compact Whisper encoder–decoder on candle-core, CPU first.
//!
//! Owns the network only: convolutional stem, encoder blocks, decoder blocks with a self-attention
//! KV cache that can be reordered between beams, cross-attention keys/values computed once per
//! window, tied output projection, and the cross-attention scores that word alignment needs. It
//! follows OpenAI's `whisper/model.py` (openai/whisper, commit 517a43ec; `AudioEncoder`,
//! `TextDecoder`, `ResidualAttentionBlock`, `MultiHeadAttention.qkv_attention`) with exact
//! erf-GELU. Decoding strategy (which tokens to feed, beams, timestamps) lives in
//! `harken-decode`; this module only turns tokens into logits.
//!
//! Why not `candle_transformers::models::whisper`: it recomputes the whole token prefix at every
//! step (no self-attention cache), re-lays out cross-attention K/V every step and uses tanh GELU;
//! see the team note on candle's Whisper.

use candle_core::quantized::QMatMul;
use candle_core::{D, DType, Device, Module, Tensor};
use harken_kernels::Isa;
use harken_kernels::attention::{self, HalfKv, HeadView};
use harken_kernels::int8::{self, Activation, PackedMatrix};

use crate::int8file::Int8Weight;
use crate::ops::F16Matrix;
use crate::weights::Source;
use crate::{Error, Result};

/// Architecture sizes, read off the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Mel bins of the input (80, or 128 for large-v3).
    pub n_mels: usize,
    /// Encoder positions (1500 = 30 s after the stride-2 stem).
    pub n_audio_ctx: usize,
    /// Encoder width.
    pub n_audio_state: usize,
    /// Encoder attention heads.
    pub n_audio_head: usize,
    /// Encoder blocks.
    pub n_audio_layer: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
    /// Decoder width.
    pub n_text_state: usize,
    /// Decoder attention heads.
    pub n_text_head: usize,
    /// Decoder blocks.
    pub n_text_layer: usize,
    /// Vocabulary size, timestamps included.
    pub n_vocab: usize,
}

impl Dims {
    /// Mel frames one encoder window takes (3000 = 30 s).
    pub fn n_mel_frames(&self) -> usize {
        self.n_audio_ctx * 2
    }
}

/// How linear-layer weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32, converted from the file's f16/f32 at load (the decoder reads f16 weights in place).
    #[default]
    F32,
    /// int8 linear layers and token embedding, one scale per output row, activations quantized
    /// per row on the fly (`harken_kernels::int8`); norms, biases and convolutions stay f32. A
    /// float model is quantized at load; an int8 file (`model.int8.safetensors`) is used in place.
    Int8,
}

/// A linear layer's weight in the form its callers multiply fastest.
enum LinearWeight {
    /// f32 (gemm): for the encoder's 1500-row products.
    Q(QMatMul),
    /// int8, packed for `harken_kernels::int8` (mapped from the file, or quantized at load).
    Int8(Int8Weight),
    /// The file's f16 values, widened in registers: for the decoder's few-row products.
    Half(F16Matrix),
}

struct Linear {
    w: LinearWeight,
    b: Option<Tensor>,
    /// The bias as a slice, for the int8 kernel's epilogue (empty otherwise).
    b_vec: Vec<f32>,
}

/// Which products a layer serves, which decides how its weight is held.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Many rows per call (encoder, cross-attention keys/values).
    Many,
    /// A few rows per call (decoder steps: one per beam).
    Few,
}

impl Linear {
    fn load(
        src: &Source,
        prefix: &str,
        bias: bool,
        precision: Precision,
        rows: Rows,
    ) -> Result<Self> {
        let name = format!("{prefix}/weight");
        let b = if bias { Some(src.get(&format!("{prefix}/bias"))?) } else { None };
        if let Some(w) = int8_weight(src, &name, precision)? {
            let b_vec = match &b {
                Some(b) => b.to_vec1::<f32>()?,
                None => Vec::new(),
            };
            return Ok(Linear { w: LinearWeight::Int8(w), b, b_vec });
        }
        if rows == Rows::Few
            && precision == Precision::F32
            && let Some(h) = half_matrix(src, &name)
        {
            return Ok(Linear { w: LinearWeight::Half(h), b, b_vec: Vec::new() });
        }
        Ok(Linear { w: LinearWeight::Q(QMatMul::Tensor(src.get(&name)?)), b, b_vec: Vec::new() })
    }

    fn forward(&self, x: &Tensor, isa: Isa) -> Result<Tensor> {
        let y = match &self.w {
            LinearWeight::Q(q) => q.forward(x)?,
            LinearWeight::Half(h) => half_matmul(x, h)?,
            LinearWeight::Int8(w) => {
                let bias = (!self.b_vec.is_empty()).then_some(self.b_vec.as_slice());
                return int8_matmul(x, w, bias, Activation::Identity, isa);
            }
        };
        Ok(match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }

    /// `gelu(forward(x))`; the int8 kernel applies GELU while each output block is in cache.
    fn forward_gelu(&self, x: &Tensor, isa: Isa) -> Result<Tensor> {
        if let LinearWeight::Int8(w) = &self.w {
            let bias = (!self.b_vec.is_empty()).then_some(self.b_vec.as_slice());
            return int8_matmul(x, w, bias, Activation::Gelu, isa);
        }
        Ok(self.forward(x, isa)?.apply(&GeluErf)?)
    }
}

fn half_matrix(src: &Source, name: &str) -> Option<F16Matrix> {
    let (bits, shape) = src.get_f16(name)?;
    match shape.as_slice() {
        [n, k] => F16Matrix::new(bits, *n, *k),
        _ => None,
    }
}

/// `x · Wᵀ` with `W` in f16, for `x` of any rank (leading dimensions fold into rows).
fn half_matmul(x: &Tensor, w: &F16Matrix) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let k = dims.last().copied().unwrap_or(0);
    if k != w.cols() {
        return Err(Error::Input {
            detail: format!("matmul: input width {k}, weight width {}", w.cols()),
        });
    }
    let m = x.elem_count() / k.max(1);
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let y = w.matmul(&xs, m);
    if let Some(last) = dims.last_mut() {
        *last = w.rows();
    }
    Ok(Tensor::from_vec(y, dims, x.device())?)
}

/// The int8 form of weight `name`: mapped when the source stores it packed, quantized now when
/// `precision` asks for int8 and the source is float, `None` otherwise.
fn int8_weight(src: &Source, name: &str, precision: Precision) -> Result<Option<Int8Weight>> {
    if let Some(m) = src.packed(name)? {
        return Ok(Some(Int8Weight::Mapped(m)));
    }
    if precision != Precision::Int8 {
        return Ok(None);
    }
    let t = src.get(name)?;
    let (n, k) = t.dims2()?;
    let w = t.flatten_all()?.to_vec1::<f32>()?;
    let p = PackedMatrix::quantize(&w, n, k)
        .map_err(|e| Error::Weights { detail: format!("{name}: {e}") })?;
    Ok(Some(Int8Weight::Owned(p)))
}

/// `x · Wᵀ (+ bias)` with an int8 weight, for `x` of any rank (leading dimensions fold into
/// rows).
fn int8_matmul(
    x: &Tensor,
    w: &Int8Weight,
    bias: Option<&[f32]>,
    act: Activation,
    isa: Isa,
) -> Result<Tensor> {
    let v = w.view();
    let mut dims = x.dims().to_vec();
    let k = dims.last().copied().unwrap_or(0);
    let m = x.elem_count() / k.max(1);
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let mut y = vec![0f32; m * v.n()];
    int8::matmul_act(isa, &xs, m, v, bias, act, &mut y)
        .map_err(|e| Error::Input { detail: e.to_string() })?;
    if let Some(last) = dims.last_mut() {
        *last = v.n();
    }
    Ok(Tensor::from_vec(y, dims, x.device())?)
}

/// Exact erf-GELU through [`crate::ops::gelu_erf`], usable with `Tensor::apply`.
pub(crate) struct GeluErf;

impl Module for GeluErf {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::ops::gelu_erf(x)
    }
}

struct LayerNorm {
    g: Tensor,
    b: Tensor,
}

impl LayerNorm {
    fn load(src: &Source, prefix: &str) -> Result<Self> {
        Ok(LayerNorm {
            g: src.get(&format!("{prefix}/gamma"))?,
            b: src.get(&format!("{prefix}/beta"))?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(x, &self.g, &self.b, 1e-5)?)
    }
}

struct SelfAttention {
    ln: LayerNorm,
    qkv: Linear,
    out: Linear,
    heads: usize,
}

struct CrossAttention {
    ln: LayerNorm,
    q: Linear,
    kv: Linear,
    out: Linear,
    heads: usize,
}

struct Mlp {
    ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn load(src: &Source, p: &str, precision: Precision, rows: Rows) -> Result<Self> {
        Ok(Mlp {
            ln: LayerNorm::load(src, &format!("{p}/ffn/layer_norm"))?,
            fc1: Linear::load(src, &format!("{p}/ffn/linear_0"), true, precision, rows)?,
            fc2: Linear::load(src, &format!("{p}/ffn/linear_1"), true, precision, rows)?,
        })
    }
    fn forward(&self, x: &Tensor, isa: Isa) -> Result<Tensor> {
        let h = self.fc1.forward_gelu(&self.ln.forward(x)?, isa)?;
        self.fc2.forward(&h, isa)
    }
}

struct EncoderBlock {
    attn: SelfAttention,
    mlp: Mlp,
}

struct DecoderBlock {
    attn: SelfAttention,
    cross: CrossAttention,
    mlp: Mlp,
}

/// `[B, T, H·dh]` → `[B, H, T, dh]`, contiguous.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    Ok(x.reshape((b, t, heads, d / heads))?.transpose(1, 2)?.contiguous()?)
}

/// `[B, H, T, dh]` → `[B, T, H·dh]`.
fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, dh) = x.dims4()?;
    Ok(x.transpose(1, 2)?.reshape((b, t, h * dh))?)
}

impl SelfAttention {
    fn load(src: &Source, p: &str, heads: usize, precision: Precision, rows: Rows) -> Result<Self> {
        Ok(SelfAttention {
            ln: LayerNorm::load(src, &format!("{p}/self_attention/layer_norm"))?,
            qkv: Linear::load(src, &format!("{p}/self_attention/linear_0"), true, precision, rows)?,
            out: Linear::load(src, &format!("{p}/self_attention/linear_1"), true, precision, rows)?,
            heads,
        })
    }

    /// Attention of `x` over itself plus the cached past; updates the cache when given one.
    fn forward(
        &self,
        x: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        isa: Isa,
    ) -> Result<Tensor> {
        let h = self.ln.forward(x)?;
        let qkv = self.qkv.forward(&h, isa)?;
        let d = qkv.dim(D::Minus1)? / 3;
        if cache.is_none() {
            // No cache: the encoder's full self-attention, fused so that the T×T scores are
            // never materialised.
            let (b, t, d3) = qkv.dims3()?;
            let dh = d / self.heads;
            let data = qkv.flatten_all()?.to_vec1::<f32>()?;
            let mut out = vec![0f32; b * t * d];
            for (bi, o) in out.chunks_mut(t * d).enumerate() {
                let view =
                    |off| HeadView { data: &data, offset: bi * t * d3 + off, row_stride: d3 };
                let scale = 1.0 / (dh as f32).sqrt();
                attention::attention(
                    isa,
                    view(0),
                    view(d),
                    view(2 * d),
                    t,
                    t,
                    self.heads,
                    dh,
                    scale,
                    o,
                )
                .map_err(|e| Error::Input { detail: e.to_string() })?;
            }
            let y = Tensor::from_vec(out, (b, t, d), qkv.device())?;
            return self.out.forward(&y, isa);
        }
        let q = split_heads(&qkv.narrow(D::Minus1, 0, d)?, self.heads)?;
        let mut k = split_heads(&qkv.narrow(D::Minus1, d, d)?, self.heads)?;
        let mut v = split_heads(&qkv.narrow(D::Minus1, 2 * d, d)?, self.heads)?;
        let n_new = q.dim(2)?;
        let mut past = 0;
        let causal = cache.is_some();
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.as_ref() {
                past = pk.dim(2)?;
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        // Scaling the queries (T×d) is far cheaper than scaling the scores (T×T).
        let scale = 1.0 / ((d / self.heads) as f64).sqrt();
        let mut att = (q * scale)?.matmul(&k.t()?)?;
        if causal && n_new > 1 {
            att = att.broadcast_add(&causal_mask(n_new, past, x.device())?)?;
        }
        let att = crate::ops::softmax_last_dim(&att)?;
        let y = merge_heads(&att.matmul(&v)?)?;
        self.out.forward(&y, isa)
    }
}

fn causal_mask(n_new: usize, past: usize, dev: &Device) -> Result<Tensor> {
    let total = past + n_new;
    let mask: Vec<f32> = (0..n_new)
        .flat_map(|i| (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(mask, (n_new, total), dev)?)
}

/// Cross-attention keys and values of one decoder layer, computed once per window and kept in
/// f16 (`harken_kernels::attention::HalfKv`): every decoder step reads all of them.
struct CrossKv {
    kv: HalfKv,
    d: usize,
}

impl CrossAttention {
    fn load(src: &Source, p: &str, heads: usize, precision: Precision) -> Result<Self> {
        Ok(CrossAttention {
            ln: LayerNorm::load(src, &format!("{p}/attention/layer_norm"))?,
            q: Linear::load(src, &format!("{p}/attention/linear_0"), true, precision, Rows::Few)?,
            kv: Linear::load(src, &format!("{p}/attention/linear_1"), true, precision, Rows::Many)?,
            out: Linear::load(src, &format!("{p}/attention/linear_2"), true, precision, Rows::Few)?,
            heads,
        })
    }

    fn prepare(&self, enc: &Tensor, isa: Isa) -> Result<CrossKv> {
        let kv = self.kv.forward(enc, isa)?;
        let (_, t, d2) = kv.dims3()?;
        let d = d2 / 2;
        let kv = kv.flatten_all()?.to_vec1::<f32>()?;
        let view = |offset| HeadView { data: &kv, offset, row_stride: d2 };
        let kv = HalfKv::new(view(0), view(d), t, self.heads, d / self.heads);
        Ok(CrossKv { kv, d })
    }

    /// Attend from `x` (`[B, n, d]`) to the audio; the keys are shared by every batch row, so
    /// rows are folded into the query length and one matmul serves all beams. Returns the
    /// output and, when asked, the pre-softmax scores `[H, B·n, T_audio]`.
    fn forward(
        &self,
        x: &Tensor,
        kv: &CrossKv,
        want_qk: bool,
        isa: Isa,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (b, n, d) = x.dims3()?;
        if d != kv.d {
            return Err(Error::Input {
                detail: format!("cross-attention width {d}, keys {}", kv.d),
            });
        }
        let q = self.q.forward(&self.ln.forward(x)?, isa)?;
        let dh = d / self.heads;
        let q = q.flatten_all()?.to_vec1::<f32>()?;
        let qv = HeadView { data: &q, offset: 0, row_stride: d };
        let scale = 1.0 / (dh as f32).sqrt();
        let mut y = vec![0f32; b * n * d];
        let shape = |e: attention::ShapeError| Error::Input { detail: e.to_string() };
        attention::attention_half(isa, qv, &kv.kv, b * n, scale, &mut y).map_err(shape)?;
        let qk = if want_qk {
            let s = attention::scores_half(qv, &kv.kv, b * n, scale).map_err(shape)?;
            Some(Tensor::from_vec(s, (self.heads, b * n, kv.kv.len()), x.device())?)
        } else {
            None
        };
        let y = Tensor::from_vec(y, (b, n, d), x.device())?;
        Ok((self.out.forward(&y, isa)?, qk))
    }
}

/// The token embedding table, which Whisper also uses as its output projection.
enum Embedding {
    /// An f32 table for lookups and its f32 or 8-bit copy for the projection.
    Full { table: Tensor, logits: QMatMul },
    /// The file's f16 table, serving both.
    Half(F16Matrix),
    /// One int8 table for both: lookups dequantize a row, the projection multiplies in int8.
    Int8(Int8Weight),
}

impl Embedding {
    fn dims(&self) -> Result<(usize, usize)> {
        Ok(match self {
            Embedding::Full { table, .. } => table.dims2()?,
            Embedding::Half(h) => (h.rows(), h.cols()),
            Embedding::Int8(w) => (w.view().n(), w.view().k()),
        })
    }
}

/// Sizes the encoder alone determines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncoderDims {
    pub(crate) n_mels: usize,
    pub(crate) n_audio_ctx: usize,
    pub(crate) n_audio_state: usize,
    pub(crate) n_audio_head: usize,
    pub(crate) n_audio_layer: usize,
}

/// Whisper's audio encoder: two convolutions, sinusoidal positions, transformer blocks.
pub(crate) struct Encoder {
    dims: EncoderDims,
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    pos: Tensor,
    blocks: Vec<EncoderBlock>,
    ln: LayerNorm,
}

pub(crate) fn count_layers(src: &Source, side: &str) -> usize {
    (0..).take_while(|l| src.has(&format!("{side}/layer_{l}/ffn/layer_norm/gamma"))).count()
}

impl Encoder {
    pub(crate) fn load(
        src: &Source,
        heads: Option<usize>,
        precision: Precision,
    ) -> Result<(Self, EncoderDims)> {
        let conv1 = (src.get("encoder/conv1/weight")?, src.get("encoder/conv1/bias")?);
        let conv2 = (src.get("encoder/conv2/weight")?, src.get("encoder/conv2/bias")?);
        let pos = src.get("encoder/position_encodings/encodings")?;
        let (n_audio_ctx, n_audio_state) = pos.dims2()?;
        let n_mels = conv1.0.dim(1)?;
        let n_audio_layer = count_layers(src, "encoder");
        if n_audio_layer == 0 {
            return Err(Error::Weights { detail: "no encoder layers found".into() });
        }
        // Every Whisper size uses 64-dimensional heads.
        let n_audio_head = heads.unwrap_or(n_audio_state / 64);
        if n_audio_head == 0 || n_audio_state % n_audio_head != 0 {
            return Err(Error::Weights {
                detail: "head count does not divide the model width".into(),
            });
        }
        let blocks = (0..n_audio_layer)
            .map(|l| {
                let p = format!("encoder/layer_{l}");
                Ok(EncoderBlock {
                    attn: SelfAttention::load(src, &p, n_audio_head, precision, Rows::Many)?,
                    mlp: Mlp::load(src, &p, precision, Rows::Many)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let dims = EncoderDims { n_mels, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer };
        let ln = LayerNorm::load(src, "encoder/layer_norm")?;
        Ok((Encoder { dims, conv1, conv2, pos, blocks, ln }, dims))
    }

    pub(crate) fn dims(&self) -> EncoderDims {
        self.dims
    }

    pub(crate) fn forward(&self, mel: &[f32], isa: Isa) -> Result<EncoderOutput> {
        let frames = self.dims.n_audio_ctx * 2;
        if mel.len() != self.dims.n_mels * frames {
            return Err(Error::Input {
                detail: format!(
                    "mel window has {} values, expected {}×{frames}",
                    mel.len(),
                    self.dims.n_mels
                ),
            });
        }
        let x = Tensor::from_slice(mel, (1, self.dims.n_mels, frames), &Device::Cpu)?;
        let conv = |x: &Tensor, (w, b): &(Tensor, Tensor), stride: usize| -> Result<Tensor> {
            let y = x.conv1d(w, 1, stride, 1, 1)?;
            Ok(y.broadcast_add(&b.reshape((1, b.dim(0)?, 1))?)?.apply(&GeluErf)?)
        };
        let x = conv(&x, &self.conv1, 1)?;
        let x = conv(&x, &self.conv2, 2)?;
        let mut x = x.transpose(1, 2)?.broadcast_add(&self.pos)?;
        for b in &self.blocks {
            x = (&x + b.attn.forward(&x, None, isa)?)?;
            x = (&x + b.mlp.forward(&x, isa)?)?;
        }
        Ok(EncoderOutput { x: self.ln.forward(&x)? })
    }
}

/// A loaded Whisper network.
pub struct Whisper {
    dims: Dims,
    enc: Encoder,
    /// Token embeddings, also the (tied) output projection.
    tok_emb: Embedding,
    dec_pos: Tensor,
    dec_blocks: Vec<DecoderBlock>,
    dec_ln: LayerNorm,
    /// The kernel path of the int8 products and the fused attention.
    isa: Isa,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper").field("dims", &self.dims).finish_non_exhaustive()
    }
}

/// The encoder's output for one 30-s window.
pub struct EncoderOutput {
    x: Tensor,
}

impl EncoderOutput {
    /// Encoder positions (1500 for a full window).
    pub fn n_ctx(&self) -> usize {
        self.x.dim(1).unwrap_or(0)
    }

    pub(crate) fn tensor(&self) -> &Tensor {
        &self.x
    }

    /// The output as `[positions][width]` row-major values.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        Ok(self.x.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// Logits for some positions of some batch rows, `[rows][positions][vocab]` flattened.
#[derive(Debug, Clone)]
pub struct Logits {
    data: Vec<f32>,
    positions: usize,
    vocab: usize,
}

impl Logits {
    /// All values, `[row][position][vocab]`.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// The logits of batch row `row` at requested position index `pos`.
    pub fn row(&self, row: usize, pos: usize) -> &[f32] {
        let at = (row * self.positions + pos) * self.vocab;
        &self.data[at..at + self.vocab]
    }
}

/// Cross-attention scores of the alignment heads over one token sequence.
#[derive(Debug, Clone)]
pub struct AlignmentScores {
    /// Pre-softmax scores, `[heads][tokens][audio_ctx]` flattened.
    pub qk: Vec<f32>,
    /// Number of heads in `qk`.
    pub heads: usize,
    /// Number of tokens.
    pub tokens: usize,
    /// Encoder positions.
    pub audio_ctx: usize,
    /// Logits at every token position, `[tokens][vocab]` flattened.
    pub logits: Vec<f32>,
}

impl Whisper {
    /// Load a CTranslate2 `model.bin`.
    pub fn load_ct2(path: &std::path::Path, precision: Precision) -> Result<Self> {
        let src = Source::open_ct2(path)?;
        let heads = |side: &str| src.int_scalar(&format!("{side}/num_heads")).map(|h| h as usize);
        let (eh, dh) = (heads("encoder"), heads("decoder"));
        Self::load(&src, eh, dh, precision)
    }

    /// Load a Hugging Face `model.safetensors`; head counts come from its `config.json`.
    pub fn load_safetensors(
        path: &std::path::Path,
        encoder_heads: Option<usize>,
        decoder_heads: Option<usize>,
        precision: Precision,
    ) -> Result<Self> {
        let src = Source::open_safetensors(path)?;
        Self::load(&src, encoder_heads, decoder_heads, precision)
    }

    fn load(
        src: &Source,
        enc_heads: Option<usize>,
        dec_heads: Option<usize>,
        precision: Precision,
    ) -> Result<Self> {
        let (enc, ed) = Encoder::load(src, enc_heads, precision)?;
        let emb = "decoder/embeddings/weight";
        let tok_emb = if let Some(w) = int8_weight(src, emb, precision)? {
            Embedding::Int8(w)
        } else if let Some(h) = half_matrix(src, emb) {
            Embedding::Half(h)
        } else {
            let t = src.get(emb)?;
            Embedding::Full { table: t.clone(), logits: QMatMul::Tensor(t) }
        };
        let dec_pos = src.get("decoder/position_encodings/encodings")?;
        let (n_vocab, n_text_state) = tok_emb.dims()?;
        let (n_text_ctx, _) = dec_pos.dims2()?;
        let n_text_layer = count_layers(src, "decoder");
        if n_text_layer == 0 {
            return Err(Error::Weights { detail: "no decoder layers found".into() });
        }
        // Every Whisper size uses 64-dimensional heads.
        let n_text_head = dec_heads.unwrap_or(n_text_state / 64);
        if n_text_head == 0 || n_text_state % n_text_head != 0 {
            return Err(Error::Weights {
                detail: "head count does not divide the model width".into(),
            });
        }
        let dims = Dims {
            n_mels: ed.n_mels,
            n_audio_ctx: ed.n_audio_ctx,
            n_audio_state: ed.n_audio_state,
            n_audio_head: ed.n_audio_head,
            n_audio_layer: ed.n_audio_layer,
            n_text_ctx,
            n_text_state,
            n_text_head,
            n_text_layer,
            n_vocab,
        };
        let dec_blocks = (0..n_text_layer)
            .map(|l| {
                let p = format!("decoder/layer_{l}");
                Ok(DecoderBlock {
                    attn: SelfAttention::load(src, &p, n_text_head, precision, Rows::Few)?,
                    cross: CrossAttention::load(src, &p, n_text_head, precision)?,
                    mlp: Mlp::load(src, &p, precision, Rows::Few)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((Whisper {
            dims,
            enc,
            tok_emb,
            dec_pos,
            dec_blocks,
            dec_ln: LayerNorm::load(src, "decoder/layer_norm")?,
            isa: Isa::detect(),
        })
        .with_detected_isa())
    }

    fn with_detected_isa(mut self) -> Self {
        self.isa = self.float_capped(Isa::detect());
        self
    }

    /// Load Harken's int8 weights file (`model.int8.safetensors`, written by
    /// [`crate::write_int8`]): the packed matrices are used in place from the map.
    pub fn load_int8(path: &std::path::Path) -> Result<Self> {
        let src = Source::open_int8(path)?;
        let heads = |side: &str| src.int_scalar(&format!("{side}/num_heads")).map(|h| h as usize);
        let (eh, dh) = (heads("encoder"), heads("decoder"));
        Self::load(&src, eh, dh, Precision::Int8)
    }

    /// Choose the kernel path (default: the best this CPU runs). Paths the CPU lacks fall back
    /// to the scalar reference inside the kernels, so a wrong choice is slow, never unsafe. A
    /// float model stays on AVX-512 where AMX is asked for: AMX's tiles are int8 and bf16, and
    /// `f32` means f32 arithmetic.
    pub fn set_isa(&mut self, isa: Isa) {
        self.isa = self.float_capped(isa);
    }

    fn float_capped(&self, isa: Isa) -> Isa {
        if self.is_int8() { isa } else { isa.min(Isa::Avx512) }
    }

    /// The kernel path in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Whether the linear layers run in int8.
    pub fn is_int8(&self) -> bool {
        matches!(self.tok_emb, Embedding::Int8(_))
    }

    /// Architecture sizes.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// Run the encoder on one window: `mel` is mel-major `[n_mels, n_mel_frames()]`.
    pub fn encode(&self, mel: &[f32]) -> Result<EncoderOutput> {
        self.enc.forward(mel, self.isa)
    }

    /// Start decoding against `enc` with `batch` rows (beams).
    pub fn decoder<'a>(&'a self, enc: &EncoderOutput, batch: usize) -> Result<DecoderSession<'a>> {
        let cross = self
            .dec_blocks
            .iter()
            .map(|b| b.cross.prepare(&enc.x, self.isa))
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderSession {
            model: self,
            cross,
            cache: vec![None; self.dec_blocks.len()],
            batch,
            offset: 0,
        })
    }

    fn embed(&self, tokens: &[&[u32]], offset: usize) -> Result<Tensor> {
        let b = tokens.len();
        let n = tokens.first().map_or(0, |t| t.len());
        if tokens.iter().any(|t| t.len() != n) || n == 0 {
            return Err(Error::Input {
                detail: "every batch row must feed the same, non-zero number of tokens".into(),
            });
        }
        if offset + n > self.dims.n_text_ctx {
            return Err(Error::Input {
                detail: format!(
                    "{} tokens exceed the decoder context of {}",
                    offset + n,
                    self.dims.n_text_ctx
                ),
            });
        }
        let flat: Vec<u32> = tokens.iter().flat_map(|t| t.iter().copied()).collect();
        if let Some(bad) = flat.iter().find(|&&t| t as usize >= self.dims.n_vocab) {
            return Err(Error::Input { detail: format!("token {bad} outside the vocabulary") });
        }
        let x = match &self.tok_emb {
            Embedding::Full { table, .. } => {
                let ids = Tensor::from_vec(flat, b * n, &Device::Cpu)?;
                table.index_select(&ids, 0)?
            }
            Embedding::Half(h) => {
                let mut rows = Vec::with_capacity(flat.len() * h.cols());
                for &t in &flat {
                    h.row_f32(t as usize, &mut rows);
                }
                Tensor::from_vec(rows, (b * n, h.cols()), &Device::Cpu)?
            }
            Embedding::Int8(w) => {
                let v = w.view();
                let mut rows = Vec::with_capacity(flat.len() * v.k());
                for &t in &flat {
                    v.row_f32(t as usize, &mut rows);
                }
                Tensor::from_vec(rows, (b * n, v.k()), &Device::Cpu)?
            }
        };
        let x = x.reshape((b, n, self.dims.n_text_state))?;
        Ok(x.broadcast_add(&self.dec_pos.narrow(0, offset, n)?)?)
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        match &self.tok_emb {
            Embedding::Full { logits, .. } => Ok(logits.forward(x)?),
            Embedding::Half(h) => half_matmul(x, h),
            Embedding::Int8(w) => int8_matmul(x, w, None, Activation::Identity, self.isa),
        }
    }

    /// Cross-attention scores of `heads` (`(layer, head)` pairs) for the whole `tokens`
    /// sequence, with the logits at every position: what word alignment needs.
    pub fn alignment_scores(
        &self,
        enc: &EncoderOutput,
        tokens: &[u32],
        heads: &[(usize, usize)],
    ) -> Result<AlignmentScores> {
        let mut session = self.decoder(enc, 1)?;
        let mut x = self.embed(&[tokens], 0)?;
        let mut layer_qk: Vec<Option<Tensor>> = vec![None; self.dec_blocks.len()];
        for (l, b) in self.dec_blocks.iter().enumerate() {
            x = (&x + b.attn.forward(&x, Some(&mut session.cache[l]), self.isa)?)?;
            let want = heads.iter().any(|&(hl, _)| hl == l);
            let (y, qk) = b.cross.forward(&x, &session.cross[l], want, self.isa)?;
            x = (&x + y)?;
            layer_qk[l] = qk;
            x = (&x + b.mlp.forward(&x, self.isa)?)?;
        }
        let mut ordered = Vec::with_capacity(heads.len());
        for &(l, h) in heads {
            let qk = layer_qk.get(l).and_then(Option::as_ref).ok_or_else(|| Error::Input {
                detail: format!("alignment head ({l}, {h}) outside the decoder"),
            })?;
            ordered.push(qk.get(h)?);
        }
        let audio_ctx = enc.n_ctx();
        let qk = if ordered.is_empty() {
            Vec::new()
        } else {
            Tensor::stack(&ordered, 0)?.flatten_all()?.to_vec1::<f32>()?
        };
        let logits = self.logits(&self.dec_ln.forward(&x)?)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(AlignmentScores { qk, heads: heads.len(), tokens: tokens.len(), audio_ctx, logits })
    }
}

/// Incremental decoding state for one window: cross-attention K/V and the self-attention cache.
pub struct DecoderSession<'a> {
    model: &'a Whisper,
    cross: Vec<CrossKv>,
    cache: Vec<Option<(Tensor, Tensor)>>,
    batch: usize,
    offset: usize,
}

impl DecoderSession<'_> {
    /// Tokens fed so far per row.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Feed `tokens` (one slice per batch row, all the same length) after what was fed before,
    /// and return the logits at the new positions listed in `positions` (indices into the new
    /// tokens).
    pub fn step(&mut self, tokens: &[&[u32]], positions: &[usize]) -> Result<Logits> {
        if tokens.len() != self.batch {
            return Err(Error::Input {
                detail: format!("fed {} rows to a batch of {}", tokens.len(), self.batch),
            });
        }
        let m = self.model;
        let n = tokens.first().map_or(0, |t| t.len());
        if positions.iter().any(|&p| p >= n) {
            return Err(Error::Input { detail: "logit position past the fed tokens".into() });
        }
        let mut x = m.embed(tokens, self.offset)?;
        for (l, b) in m.dec_blocks.iter().enumerate() {
            x = (&x + b.attn.forward(&x, Some(&mut self.cache[l]), m.isa)?)?;
            let (y, _) = b.cross.forward(&x, &self.cross[l], false, m.isa)?;
            x = (&x + y)?;
            x = (&x + b.mlp.forward(&x, m.isa)?)?;
        }
        self.offset += n;
        let idx = Tensor::from_vec(
            positions.iter().map(|&p| p as u32).collect::<Vec<_>>(),
            positions.len(),
            &Device::Cpu,
        )?;
        let x = x.index_select(&idx, 1)?;
        let logits = m.logits(&m.dec_ln.forward(&x)?)?;
        let data = logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Logits { data, positions: positions.len(), vocab: m.dims.n_vocab })
    }

    /// Keep batch rows `rows` (in that order, repeats allowed): beams that survive a step.
    pub fn reorder(&mut self, rows: &[usize]) -> Result<()> {
        if rows.iter().any(|&r| r >= self.batch) {
            return Err(Error::Input { detail: "reorder row outside the batch".into() });
        }
        let idx = Tensor::from_vec(
            rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            rows.len(),
            &Device::Cpu,
        )?;
        for (k, v) in self.cache.iter_mut().flatten() {
            *k = k.index_select(&idx, 0)?;
            *v = v.index_select(&idx, 0)?;
        }
        self.batch = rows.len();
        Ok(())
    }
}

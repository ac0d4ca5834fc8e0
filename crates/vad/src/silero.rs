//! The Silero VAD network (v5/v6, 16 kHz), written out by hand.
//!
//! Why by hand: the network is 310 k parameters — a fixed STFT as a strided convolution, four
//! small convolutions and one LSTM cell per 32 ms chunk — about a hundred lines of arithmetic.
//! An ONNX runtime (tract, onnxruntime) would be a far larger dependency than the model, so the
//! weights are read from the `silero-vad` package's 16 kHz ONNX file (`crate::onnx`) and the
//! graph is this code. (The package's `silero_vad_16k.safetensors` holds older weights than its
//! ONNX and TorchScript models, which give identical results; Harken matches those.)
//!
//! The calling convention is the reference's: each 512-sample chunk is preceded by the last 64
//! samples of the previous chunk (zeros at the start), the LSTM state carries over, and a last
//! short chunk is padded with zeros.

use crate::Error;
use crate::onnx::{Tensor, initializers};
use std::path::Path;

/// Samples per VAD chunk (32 ms at 16 kHz).
pub const CHUNK: usize = 512;
/// Samples of the previous chunk fed in front of each chunk.
pub const CONTEXT: usize = 64;
/// The only sample rate the network takes.
pub const SAMPLE_RATE: u32 = 16_000;
const HIDDEN: usize = 128;
/// Reflection padding on the right of the chunk before the STFT.
const STFT_PAD: usize = 64;
const BINS: usize = 129;

/// A 1-D convolution over a `[channels][len]` row-major input.
#[derive(Debug, Clone)]
struct Conv {
    /// `[out][in][k]`.
    w: Vec<f32>,
    b: Vec<f32>,
    out_ch: usize,
    in_ch: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

impl Conv {
    fn out_len(&self, len: usize) -> usize {
        (len + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Writes `[out_ch][out_len]` into `out`, with `relu` applied when asked.
    fn forward(
        &self,
        x: &[f32],
        len: usize,
        relu: bool,
        out: &mut Vec<f32>,
        col: &mut Vec<f32>,
    ) -> usize {
        let out_len = self.out_len(len);
        out.clear();
        out.resize(self.out_ch * out_len, 0.0);
        col.clear();
        col.resize(self.in_ch * self.k, 0.0);
        let row = self.in_ch * self.k;
        for t in 0..out_len {
            // im2col for one output position, in the weight's [in][k] order.
            for c in 0..self.in_ch {
                for j in 0..self.k {
                    let pos = (t * self.stride + j) as isize - self.pad as isize;
                    col[c * self.k + j] = if pos >= 0 && (pos as usize) < len {
                        x[c * len + pos as usize]
                    } else {
                        0.0
                    };
                }
            }
            for o in 0..self.out_ch {
                let v = self.b[o] + dot(&self.w[o * row..(o + 1) * row], col);
                out[o * out_len + t] = if relu { v.max(0.0) } else { v };
            }
        }
        out_len
    }
}

/// Sixteen independent sums so that the compiler vectorises the loop.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The loaded network. Immutable and `Sync`: one model serves every stream, each with its own
/// [`SileroState`].
#[derive(Debug, Clone)]
pub struct Silero {
    stft: Conv,
    convs: [Conv; 4],
    /// `[4 * HIDDEN][HIDDEN]`, gates in PyTorch's order: input, forget, cell, output.
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    /// `bias_ih + bias_hh`.
    bias: Vec<f32>,
    out_w: Vec<f32>,
    out_b: f32,
}

/// One stream's recurrent state, its 64-sample context and scratch space.
#[derive(Debug, Clone)]
pub struct SileroState {
    h: Vec<f32>,
    c: Vec<f32>,
    context: [f32; CONTEXT],
    input: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    col: Vec<f32>,
    gates: Vec<f32>,
}

impl SileroState {
    /// Forgets everything heard so far, as at the start of a recording.
    pub fn reset(&mut self) {
        self.h.fill(0.0);
        self.c.fill(0.0);
        self.context = [0.0; CONTEXT];
    }
}

impl Default for SileroState {
    fn default() -> Self {
        Self {
            h: vec![0.0; HIDDEN],
            c: vec![0.0; HIDDEN],
            context: [0.0; CONTEXT],
            input: Vec::with_capacity(CONTEXT + CHUNK + STFT_PAD),
            a: Vec::new(),
            b: Vec::new(),
            col: Vec::new(),
            gates: vec![0.0; 4 * HIDDEN],
        }
    }
}

fn take(tensors: &mut Vec<Tensor>, name: &str, shape: &[usize]) -> Result<Vec<f32>, Error> {
    let i = tensors.iter().position(|t| t.name == name).ok_or_else(|| {
        Error::Weights(format!("{name} missing (not the Silero VAD 16 kHz network)"))
    })?;
    let t = tensors.swap_remove(i);
    if t.dims != shape {
        return Err(Error::Weights(format!(
            "{name}: expected shape {shape:?}, found {:?} (not the Silero VAD 16 kHz network)",
            t.dims
        )));
    }
    Ok(t.data)
}

impl Silero {
    /// Reads `silero_vad_16k_op15.onnx` (as shipped in the `silero-vad` Python package).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path)
            .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Self::from_bytes(&bytes)
    }

    /// Parses the ONNX bytes and checks every weight's shape.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut st = initializers(bytes)?;
        let st = &mut st;
        let stft = Conv {
            w: take(st, "model.stft.forward_basis_buffer", &[2 * BINS, 1, 256])?,
            b: vec![0.0; 2 * BINS],
            out_ch: 2 * BINS,
            in_ch: 1,
            k: 256,
            stride: 128,
            pad: 0,
        };
        let mut conv = |i: usize, out_ch, in_ch, k, stride| -> Result<Conv, Error> {
            let name = format!("model.encoder.{i}.reparam_conv");
            Ok(Conv {
                w: take(st, &format!("{name}.weight"), &[out_ch, in_ch, k])?,
                b: take(st, &format!("{name}.bias"), &[out_ch])?,
                out_ch,
                in_ch,
                k,
                stride,
                pad: 1,
            })
        };
        let convs = [
            conv(0, 128, BINS, 3, 1)?,
            conv(1, 64, 128, 3, 2)?,
            conv(2, 64, 64, 3, 2)?,
            conv(3, 128, 64, 3, 1)?,
        ];
        let rnn = "model.decoder.rnn";
        let b_ih = take(st, &format!("{rnn}.bias_ih"), &[4 * HIDDEN])?;
        let b_hh = take(st, &format!("{rnn}.bias_hh"), &[4 * HIDDEN])?;
        Ok(Self {
            stft,
            convs,
            w_ih: take(st, &format!("{rnn}.weight_ih"), &[4 * HIDDEN, HIDDEN])?,
            w_hh: take(st, &format!("{rnn}.weight_hh"), &[4 * HIDDEN, HIDDEN])?,
            bias: b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect(),
            out_w: take(st, "model.decoder.decoder.2.weight", &[1, HIDDEN, 1])?,
            out_b: take(st, "model.decoder.decoder.2.bias", &[1])?[0],
        })
    }

    /// The speech probability of one chunk of up to [`CHUNK`] samples at 16 kHz (a shorter
    /// chunk is padded with zeros), carrying `state` over from the previous chunk.
    pub fn chunk_prob(&self, state: &mut SileroState, chunk: &[f32]) -> f32 {
        let n = chunk.len().min(CHUNK);
        let input = &mut state.input;
        input.clear();
        input.extend_from_slice(&state.context);
        input.extend_from_slice(&chunk[..n]);
        input.resize(CONTEXT + CHUNK, 0.0);
        state.context.copy_from_slice(&input[CHUNK..]);
        // Reflection padding on the right: x[L + j] = x[L - 2 - j].
        let len = input.len();
        for j in 0..STFT_PAD {
            let v = input[len - 2 - j];
            input.push(v);
        }
        let (a, b, col) = (&mut state.a, &mut state.b, &mut state.col);
        let mut t = self.stft.forward(input, input.len(), false, a, col);
        // Magnitude of the (real, imaginary) halves.
        b.clear();
        b.resize(BINS * t, 0.0);
        for (i, m) in b.iter_mut().enumerate() {
            let (re, im) = (a[i], a[BINS * t + i]);
            *m = (re * re + im * im).sqrt();
        }
        for conv in &self.convs {
            t = conv.forward(b, t, true, a, col);
            std::mem::swap(a, b);
        }
        // conv4's output has one time step: the LSTM input is b[..HIDDEN].
        let x = &b[..HIDDEN];
        let gates = &mut state.gates;
        for (g, gate) in gates.iter_mut().enumerate() {
            let r = g * HIDDEN..(g + 1) * HIDDEN;
            *gate = self.bias[g] + dot(&self.w_ih[r.clone()], x) + dot(&self.w_hh[r], &state.h);
        }
        let mut out = self.out_b;
        for j in 0..HIDDEN {
            let i = sigmoid(gates[j]);
            let f = sigmoid(gates[HIDDEN + j]);
            let g = gates[2 * HIDDEN + j].tanh();
            let o = sigmoid(gates[3 * HIDDEN + j]);
            let c = f * state.c[j] + i * g;
            state.c[j] = c;
            let h = o * c.tanh();
            state.h[j] = h;
            out += self.out_w[j] * h.max(0.0);
        }
        debug_assert_eq!(t, 1);
        sigmoid(out)
    }

    /// Per-chunk speech probabilities of a whole recording (16 kHz mono), from a fresh state:
    /// `ceil(len / CHUNK)` values, chunk `i` covering samples `i * CHUNK ..`.
    pub fn probs(&self, samples: &[f32]) -> Vec<f32> {
        let mut state = SileroState::default();
        samples.chunks(CHUNK).map(|c| self.chunk_prob(&mut state, c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_a_plain_sum_at_every_length() {
        for n in [0, 1, 15, 16, 17, 100, 387] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-4, "n={n}");
        }
    }

    #[test]
    fn conv_pads_and_strides_like_torch() {
        // One channel, kernel [1, 2, 3], stride 2, padding 1 over [1, 2, 3, 4]:
        // positions -1..1, 1..3 → [0*1+1*2+2*3, 2*1+3*2+4*3] = [8, 20].
        let c = Conv {
            w: vec![1.0, 2.0, 3.0],
            b: vec![0.5],
            out_ch: 1,
            in_ch: 1,
            k: 3,
            stride: 2,
            pad: 1,
        };
        let (mut out, mut col) = (Vec::new(), Vec::new());
        let n = c.forward(&[1.0, 2.0, 3.0, 4.0], 4, false, &mut out, &mut col);
        assert_eq!(n, 2);
        assert_eq!(out, vec![8.5, 20.5]);
    }

    #[test]
    fn rejects_files_that_are_not_the_network() {
        assert!(matches!(Silero::from_bytes(b"not onnx"), Err(Error::Weights(_))));
    }
}

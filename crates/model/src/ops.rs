//! CPU kernels the encoder spends its time in, where candle's generic versions are slow: a
//! softmax over the last dimension and the exact-erf GELU.
//!
//! candle computes both element by element with libm's `expf`/`erff`; on Whisper base's encoder
//! the 8×1500×1500 attention softmax alone took 38 ms per layer on two cores. These versions use
//! branch-free polynomial `exp` and `erf` that the compiler vectorises, and split rows over
//! rayon's pool. Written by hand because no maintained crate offers vectorised `exp`/`erf` on
//! slices without a C toolchain.
//!
//! Accuracy: `exp` relative error below 3e-6 (the rounding of `x·log2 e` grows with |x|); `erf` absolute error
//! below 1.5e-7 (Abramowitz & Stegun 7.1.26). Both are checked against candle's own ops in the
//! tests below.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2: f32 = std::f32::consts::LN_2;

/// `exp(x)`, for `x` clamped to [-87, 88] (so `exp(-inf)` is 1.6e-38, not 0: irrelevant next
/// to the row maximum's 1, and it keeps the loop free of branches).
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E;
    // Round to nearest with the 1.5·2^23 trick, which vectorises without SSE4.1.
    let n = (t + 12_582_912.0) - 12_582_912.0;
    let y = (t - n) * LN2;
    let p = 1.0
        + y * (1.0
            + y * (0.5
                + y * (1.0 / 6.0 + y * (1.0 / 24.0 + y * (1.0 / 120.0 + y * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

#[inline(always)]
fn erf(z: f32) -> f32 {
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let r = 1.0 - poly * exp_neg(-a * a);
    r.copysign(z)
}

fn contiguous<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("{op}: only f32 is supported") };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "harken-softmax-last-dim"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous(storage, layout, self.name())?;
        let dims = layout.shape().dims();
        let n = dims.last().copied().unwrap_or(1).max(1);
        let mut dst = vec![0.0f32; src.len()];
        dst.par_chunks_mut(n).zip(src.par_chunks(n)).for_each(|(d, s)| {
            // Eight independent lanes let the compiler vectorise the reductions.
            let mut lanes = [f32::NEG_INFINITY; 8];
            let chunks = s.chunks_exact(8);
            let tail = chunks.remainder();
            for c in chunks {
                for i in 0..8 {
                    lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
                }
            }
            let max = tail.iter().chain(&lanes).copied().fold(f32::NEG_INFINITY, f32::max);
            for (o, &x) in d.iter_mut().zip(s) {
                *o = exp_neg(x - max);
            }
            let mut acc = [0.0f32; 8];
            let chunks = d.chunks_exact(8);
            let tail: f32 = chunks.remainder().iter().sum();
            for c in chunks {
                for i in 0..8 {
                    acc[i] += c[i];
                }
            }
            let inv = 1.0 / (acc.iter().sum::<f32>() + tail);
            d.iter_mut().for_each(|o| *o *= inv);
        });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "harken-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous(storage, layout, self.name())?;
        let mut dst = vec![0.0f32; src.len()];
        dst.par_chunks_mut(16_384).zip(src.par_chunks(16_384)).for_each(|(d, s)| {
            for (o, &x) in d.iter_mut().zip(s) {
                *o = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
            }
        });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// Softmax over the last dimension of a contiguous f32 tensor.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Softmax)
}

/// GELU with the exact erf form, as Whisper uses.
pub fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Gelu)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn exp_is_accurate_where_softmax_uses_it() {
        for i in 0..10_000 {
            let x = -(i as f32) * 0.008;
            let (a, b) = (exp_neg(x), x.exp());
            assert!((a - b).abs() <= 3e-6 * b + 1e-12, "{x}: {a} vs {b}");
        }
        assert!(exp_neg(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn softmax_matches_candle() {
        let x =
            (Tensor::randn(0f32, 3.0, (4, 7, 1500), &Device::Cpu).unwrap()).contiguous().unwrap();
        let ours = softmax_last_dim(&x).unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&x).unwrap();
        assert!(max_diff(&ours, &theirs) < 2e-6);
    }

    #[test]
    fn softmax_handles_masked_entries() {
        let x = Tensor::new(&[[0.0f32, f32::NEG_INFINITY, 1.0]], &Device::Cpu).unwrap();
        let y = softmax_last_dim(&x).unwrap().to_vec2::<f32>().unwrap();
        assert!(y[0][1] < 1e-37);
        assert!((y[0][0] + y[0][2] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn gelu_matches_candle_erf_gelu() {
        let x = (Tensor::randn(0f32, 4.0, (3, 4096), &Device::Cpu).unwrap()).contiguous().unwrap();
        let ours = gelu_erf(&x).unwrap();
        let theirs = x.gelu_erf().unwrap();
        assert!(max_diff(&ours, &theirs) < 2e-6, "{}", max_diff(&ours, &theirs));
    }
}

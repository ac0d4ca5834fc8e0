//! CPU kernels the encoder spends its time in, where candle's generic versions are slow: a
//! softmax over the last dimension and the exact-erf GELU.
//!
//! candle computes both element by element with libm's `expf`/`erff`; on Whisper base's encoder
//! the 8×1500×1500 attention softmax alone took 38 ms per layer on two cores. These versions use
//! branch-free polynomial `exp` and `erf` that the compiler vectorises, and split rows over
//! rayon's pool. Written by hand because no maintained crate offers vectorised `exp`/`erf` on
//! slices without a C toolchain. The scalar functions themselves live in `harken-kernels`
//! (`exp`, `gelu`), shared with the int8 kernels' fused GELU and the attention softmax.
//!
//! Accuracy: `exp` relative error below 3e-6 (the rounding of `x·log2 e` grows with |x|); `erf` absolute error
//! below 1.5e-7 (Abramowitz & Stegun 7.1.26). Both are checked against candle's own ops in the
//! tests below.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

// One implementation of each function for the whole engine: the kernels' polynomial `exp`
// and erf-GELU, applied here to candle tensors.
use harken_kernels::{exp as exp_neg, gelu};

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
                *o = gelu(x);
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

/// A weight matrix kept as IEEE half-precision bits, `[n, k]` row-major: exactly what the model
/// file stores, at half the bytes of an f32 copy.
///
/// The decoder multiplies a handful of rows (one per beam) by each weight matrix per token, so it
/// is bound by how many weight bytes it reads; reading f16 and widening in registers halves that
/// traffic without changing a single weight value. Accumulation is f32.
pub(crate) struct F16Matrix {
    bits: Vec<u16>,
    n: usize,
    k: usize,
}

/// Rows of the weight matrix per rayon task.
const ROWS_PER_TASK: usize = 256;

impl F16Matrix {
    pub(crate) fn new(bits: Vec<u16>, n: usize, k: usize) -> Option<Self> {
        (bits.len() == n * k && n > 0 && k > 0).then_some(F16Matrix { bits, n, k })
    }

    pub(crate) fn rows(&self) -> usize {
        self.n
    }

    pub(crate) fn cols(&self) -> usize {
        self.k
    }

    /// Row `i` widened to f32.
    pub(crate) fn row_f32(&self, i: usize, out: &mut Vec<f32>) {
        let row = &self.bits[i * self.k..(i + 1) * self.k];
        out.extend(row.iter().map(|&b| half::f16::from_bits(b).to_f32()));
    }

    /// `x · Wᵀ` for `x` of `m` rows of length `k` (row-major); returns `m × n` row-major.
    pub(crate) fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        debug_assert_eq!(x.len(), m * k);
        // Each task owns a block of weight rows and writes their outputs transposed (`[n][m]`),
        // so tasks write disjoint slices; one transpose at the end restores `[m][n]`.
        let mut out_t = vec![0.0f32; n * m];
        // The kernel crate's AVX2 path requires exactly AVX2, FMA and F16C.
        let avx = harken_kernels::Isa::Avx2.supported() && k.is_multiple_of(8);
        out_t.par_chunks_mut(ROWS_PER_TASK * m).enumerate().for_each(|(task, chunk)| {
            let first = task * ROWS_PER_TASK;
            let mut buf = Vec::with_capacity(k);
            for (r, out) in chunk.chunks_mut(m).enumerate() {
                let row = &self.bits[(first + r) * k..(first + r + 1) * k];
                if avx {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the CPU supports AVX2, FMA and F16C (checked above); `row`, `x`
                    // and `out` have the lengths the kernel indexes (k, m·k, m), and k is a
                    // multiple of 8.
                    #[allow(unsafe_code)] // the one SIMD kernel of the crate
                    unsafe {
                        x86::dot_rows(row, x, m, k, out);
                    }
                } else {
                    buf.clear();
                    buf.extend(row.iter().map(|&b| half::f16::from_bits(b).to_f32()));
                    for (mi, o) in out.iter_mut().enumerate() {
                        *o = dot(&buf, &x[mi * k..(mi + 1) * k]);
                    }
                }
            }
        });
        let mut y = vec![0.0f32; m * n];
        for (j, col) in out_t.chunks(m).enumerate() {
            for (mi, &v) in col.iter().enumerate() {
                y[mi * n + j] = v;
            }
        }
        y
    }
}

/// A dot product the compiler vectorises (eight independent sums).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // SIMD intrinsics; the contract is on `dot_rows`
mod x86 {
    use std::arch::x86_64::*;

    /// `out[r] = Σ_k f16(row[k]) · x[r·k + k]` for `r < m`, four x-rows at a time so the widened
    /// weights are reused from registers.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; `row.len() == k`, `x.len() >= m·k`,
    /// `out.len() >= m`, and `k % 8 == 0`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_rows(row: &[u16], x: &[f32], m: usize, k: usize, out: &mut [f32]) {
        let w = row.as_ptr();
        let xp = x.as_ptr();
        let mut r = 0;
        while r < m {
            let rows = (m - r).min(4);
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut kk = 0;
            while kk < k {
                // SAFETY (all loads): kk + 8 <= k, and row r + i < m, so every read is in bounds.
                let wv = unsafe { _mm256_cvtph_ps(_mm_loadu_si128(w.add(kk).cast::<__m128i>())) };
                for (i, a) in acc.iter_mut().enumerate().take(rows) {
                    let xv = unsafe { _mm256_loadu_ps(xp.add((r + i) * k + kk)) };
                    *a = _mm256_fmadd_ps(wv, xv, *a);
                }
                kk += 8;
            }
            for (i, a) in acc.iter().enumerate().take(rows) {
                out[r + i] = hsum(*a);
            }
            r += rows;
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_hadd_ps(s, s);
        let s = _mm_hadd_ps(s, s);
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod f16_tests {
    use super::*;

    #[test]
    fn f16_matmul_matches_f32_reference() {
        let (m, n, k) = (5, 300, 64);
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin() * 0.5).collect();
        let bits: Vec<u16> = w.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
        let wq: Vec<f32> = bits.iter().map(|&b| half::f16::from_bits(b).to_f32()).collect();
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let mat = F16Matrix::new(bits, n, k).unwrap();
        let y = mat.matmul(&x, m);
        for mi in 0..m {
            for j in 0..n {
                let r: f32 = (0..k).map(|t| x[mi * k + t] * wq[j * k + t]).sum();
                assert!((y[mi * n + j] - r).abs() < 1e-4, "({mi},{j}): {} vs {r}", y[mi * n + j]);
            }
        }
    }
}

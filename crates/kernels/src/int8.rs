//! 8-bit weights and the matrix product that uses them: `y = x · Wᵀ (+ b)` with `W` stored as
//! int8 with one f32 scale per output row, and `x` quantized row by row on the fly (dynamic
//! quantization, as CTranslate2 does for its int8 models).
//!
//! **Weight layout ("n16k4").** `W` (`n × k`, row-major in the model) is stored in panels of
//! [`PANEL_COLS`] output rows; inside a panel, `k` runs in groups of [`K_GROUP`], and each group
//! holds the 4 consecutive values of every one of the 16 rows: 64 bytes. `k` is padded to a
//! multiple of 4 and `n` to a multiple of 16 with zeros. This one layout feeds every path
//! directly: a 64-byte group is one AVX-512 register for `vpdpbusd`, two 32-byte halves for AVX2,
//! and one row of an AMX B tile, so the file's bytes are used in place. Scales and the per-row
//! sums of the int8 values (needed because VNNI multiplies unsigned activations by signed
//! weights) are padded to the same `n`.
//!
//! **Activations.** Each row of `x` gets the scale `max|x| / 127` and is rounded to
//! `q ∈ [-127, 127]`, stored as `q + 128` (a `u8`). The integer products are exact on every
//! path, and the f32 epilogue (`acc · (s_x · s_w) + b`, no fused multiply-add) is written
//! identically, so every path returns bit-identical results: the tests compare for equality.

use rayon::prelude::*;

use crate::Isa;

/// Output rows (columns of `y`) per panel.
pub const PANEL_COLS: usize = 16;
/// Consecutive `k` values stored together.
pub const K_GROUP: usize = 4;
/// Rows of `x` per task when the product is split along `m`: whole pairs of micro-tiles
/// (8-row AVX-512 tiles, 32-row AMX ones).
fn row_chunk(isa: Isa) -> usize {
    if isa == Isa::Amx { 64 } else { 48 }
}
/// Panels per task when the product is split along `n` (few rows of `x`: decoder steps).
const PANEL_CHUNK: usize = 8;
/// Fewer rows than this run on AVX-512 VNNI on the AMX path (measured break-even: 16–24
/// rows of Whisper base's MLP, `kernel_bench`).
const AMX_MIN_ROWS: usize = 16;
/// From this many rows of `x` on, work is split along `m`.
const SPLIT_M_FROM: usize = 64;

/// A shape or layout that does not fit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// Buffer lengths disagree with the stated dimensions.
    #[error("packed int8 matrix {n}×{k}: {what} has {found} values, expected {expected}")]
    Length {
        /// Output rows.
        n: usize,
        /// Inner dimension.
        k: usize,
        /// Which buffer.
        what: &'static str,
        /// Its length.
        found: usize,
        /// The length the layout needs.
        expected: usize,
    },
    /// Input or output lengths disagree with the product's dimensions.
    #[error("int8 matmul: {detail}")]
    Shape {
        /// What disagreed.
        detail: String,
    },
}

/// `Ok` when a buffer has the length the layout needs.
fn check_len(
    n: usize,
    k: usize,
    what: &'static str,
    found: usize,
    expected: usize,
) -> Result<(), LayoutError> {
    if found == expected {
        Ok(())
    } else {
        Err(LayoutError::Length { n, k, what, found, expected })
    }
}

/// `k` rounded up to a whole group.
pub fn padded_k(k: usize) -> usize {
    k.div_ceil(K_GROUP) * K_GROUP
}

/// `n` rounded up to a whole panel.
pub fn padded_n(n: usize) -> usize {
    n.div_ceil(PANEL_COLS) * PANEL_COLS
}

/// An owned packed matrix, as [`PackedMatrix::quantize`] makes it.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    data: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
    n: usize,
    k: usize,
}

impl PackedMatrix {
    /// Quantize `w` (`n × k`, row-major) with one symmetric scale per row (`max|w| / 127`).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Result<Self, LayoutError> {
        if w.len() != n * k {
            return Err(LayoutError::Length {
                n,
                k,
                what: "weights",
                found: w.len(),
                expected: n * k,
            });
        }
        let (np, kp) = (padded_n(n), padded_k(k));
        let mut data = vec![0i8; np * kp];
        let mut scales = vec![0f32; np];
        let mut sums = vec![0i32; np];
        for (i, row) in w.chunks_exact(k.max(1)).enumerate().take(n) {
            let max = row.iter().fold(0f32, |a, &v| a.max(v.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            let inv = 1.0 / scale;
            scales[i] = scale;
            let (panel, c) = (i / PANEL_COLS, i % PANEL_COLS);
            let base = panel * kp * PANEL_COLS;
            let mut sum = 0i32;
            for (kk, &v) in row.iter().enumerate() {
                let q = round_q(v * inv) as i8;
                sum += i32::from(q);
                data[base + (kk / K_GROUP) * PANEL_COLS * K_GROUP + c * K_GROUP + kk % K_GROUP] = q;
            }
            sums[i] = sum;
        }
        Ok(PackedMatrix { data, scales, sums, n, k })
    }

    /// Pack weights that are already int8 (`n × k`, row-major, one scale per row), as a
    /// TFLite file stores them: the values are kept, not requantized.
    pub fn from_int8(q: &[i8], scales: &[f32], n: usize, k: usize) -> Result<Self, LayoutError> {
        Self::from_int8_columns(q, scales, n, k, 0..k)
    }

    /// [`PackedMatrix::from_int8`] of the columns `cols` of every row of `q` (`n × k`): the
    /// input and recurrent halves of an LSTM's weights, packed straight from the file for
    /// [`matmul_tflite_acc`], with no copy of the whole matrix in between.
    pub fn from_int8_columns(
        q: &[i8],
        scales: &[f32],
        n: usize,
        k: usize,
        cols: std::ops::Range<usize>,
    ) -> Result<Self, LayoutError> {
        let check = |what, found, expected| check_len(n, k, what, found, expected);
        check("weights", q.len(), n * k)?;
        check("scales", scales.len(), n)?;
        if cols.start >= cols.end || cols.end > k {
            return Err(LayoutError::Shape {
                detail: format!("columns {cols:?} of a matrix with {k} columns"),
            });
        }
        let (q0, k) = (cols.start, cols.len());
        let stride = q.len() / n.max(1);
        let (np, kp) = (padded_n(n), padded_k(k));
        let mut data = vec![0i8; np * kp];
        let mut padded_scales = vec![0f32; np];
        let mut sums = vec![0i32; np];
        padded_scales[..n].copy_from_slice(scales);
        // One panel per task: a model's worth of weights (50 MB) packs in tens of milliseconds.
        data.par_chunks_mut(kp * PANEL_COLS)
            .zip(sums.par_chunks_mut(PANEL_COLS))
            .enumerate()
            .for_each(|(panel, (out, panel_sums))| {
                for (c, sum) in panel_sums.iter_mut().enumerate() {
                    let i = panel * PANEL_COLS + c;
                    let at = i * stride + q0;
                    let Some(row) = q.get(at..at + k).filter(|_| i < n) else { break };
                    for (g, quad) in row.chunks(K_GROUP).enumerate() {
                        let at = g * PANEL_COLS * K_GROUP + c * K_GROUP;
                        out[at..at + quad.len()].copy_from_slice(quad);
                    }
                    *sum = row.iter().map(|&v| i32::from(v)).sum();
                }
            });
        Ok(PackedMatrix { data, scales: padded_scales, sums, n, k })
    }

    /// A view for [`matmul`].
    pub fn view(&self) -> PackedRef<'_> {
        PackedRef { data: &self.data, scales: &self.scales, sums: &self.sums, n: self.n, k: self.k }
    }
}

/// A packed matrix borrowed from wherever it lives (a memory-mapped file, or a
/// [`PackedMatrix`]).
#[derive(Debug, Clone, Copy)]
pub struct PackedRef<'a> {
    data: &'a [i8],
    scales: &'a [f32],
    sums: &'a [i32],
    n: usize,
    k: usize,
}

impl<'a> PackedRef<'a> {
    /// Check and wrap buffers in the n16k4 layout: `data` has `padded_n(n) · padded_k(k)`
    /// values, `scales` and `sums` `padded_n(n)`.
    pub fn new(
        data: &'a [i8],
        scales: &'a [f32],
        sums: &'a [i32],
        n: usize,
        k: usize,
    ) -> Result<Self, LayoutError> {
        let (np, kp) = (padded_n(n), padded_k(k));
        let check = |what, found, expected| check_len(n, k, what, found, expected);
        check("data", data.len(), np * kp)?;
        check("scales", scales.len(), np)?;
        check("sums", sums.len(), np)?;
        if n == 0 || k == 0 {
            return Err(LayoutError::Shape { detail: format!("empty weight {n}×{k}") });
        }
        Ok(PackedRef { data, scales, sums, n, k })
    }

    /// Output rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Inner dimension.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The packed values (n16k4).
    pub fn data(&self) -> &'a [i8] {
        self.data
    }

    /// Per-row scales, padded to a whole panel.
    pub fn scales(&self) -> &'a [f32] {
        self.scales
    }

    /// Per-row sums of the int8 values, padded to a whole panel.
    pub fn sums(&self) -> &'a [i32] {
        self.sums
    }

    /// The int8 value at row `i`, column `kk`.
    #[inline]
    fn at(&self, i: usize, kk: usize) -> i8 {
        let kp = padded_k(self.k);
        let (panel, c) = (i / PANEL_COLS, i % PANEL_COLS);
        self.data[panel * kp * PANEL_COLS
            + (kk / K_GROUP) * PANEL_COLS * K_GROUP
            + c * K_GROUP
            + kk % K_GROUP]
    }

    /// Row `i` dequantized (`q · scale`), appended to `out`: embedding lookups read the same
    /// bytes the output projection multiplies with.
    pub fn row_f32(&self, i: usize, out: &mut Vec<f32>) {
        let s = self.scales[i];
        out.extend((0..self.k).map(|kk| f32::from(self.at(i, kk)) * s));
    }
}

/// `v` rounded to the nearest integer (ties to even) and clamped to ±127. The 1.5·2²³ trick
/// rounds exactly for |v| < 2²² and, unlike `f32::round` (a libm call on baseline x86-64),
/// vectorises.
#[inline(always)]
fn round_q(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    ((v.clamp(-127.0, 127.0) + MAGIC) - MAGIC).clamp(-127.0, 127.0)
}

/// How a row of activations is rounded to int8. Both use the scale `max|x| / 127`; they differ
/// in the last bit, which decides whether a model's outputs match its reference runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rounding {
    /// `round_half_even(x · (1 / s))`: vectorises; Harken's own int8 weights use it.
    #[default]
    Harken,
    /// TFLite's hybrid rule (`SymmetricQuantizeFloats` as the x86 build runs it):
    /// `x · (127 / max)` rounded half away from zero, in blocks of 8 as `trunc(v ± 0.5)` —
    /// so that a `.tflite` model gives the outputs the TFLite runtime gives.
    TfLite,
}

/// An elementwise function applied to the product, in the same pass (the block is still in
/// cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// None.
    #[default]
    Identity,
    /// Exact (erf) GELU, as Whisper's MLP uses.
    Gelu,
}

/// `x` quantized row by row: `u = round(x / s) + 128`.
pub(crate) struct QuantRows {
    pub(crate) u: Vec<u8>,
    pub(crate) scale: Vec<f32>,
    pub(crate) kp: usize,
}

fn quantize_rows(isa: Isa, x: &[f32], m: usize, k: usize, rounding: Rounding) -> QuantRows {
    quantize_rows_in(isa, x, m, k, rounding, None)
}

/// [`quantize_rows`], each row's range given (`ranges[i]`) instead of its own largest
/// magnitude.
fn quantize_rows_in(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    rounding: Rounding,
    ranges: Option<&[f32]>,
) -> QuantRows {
    let kp = padded_k(k);
    let mut u = vec![128u8; m * kp];
    let mut scale = vec![0f32; m];
    type Row<'a> = (usize, (&'a [f32], (&'a mut [u8], &'a mut f32)));
    let work = |(i, (row, (ur, s))): Row<'_>| {
        let range = ranges.map(|r| r[i]);
        match isa.vector() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: callers pass only paths the CPU supports.
            Isa::Avx512 => unsafe { quantize_row_avx512(row, ur, s, rounding, range) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 => unsafe { quantize_row_avx2(row, ur, s, rounding, range) },
            _ => quantize_row(row, ur, s, rounding, range),
        }
    };
    if m >= SPLIT_M_FROM {
        x.par_chunks(k)
            .zip(u.par_chunks_mut(kp).zip(scale.par_iter_mut()))
            .enumerate()
            .for_each(work);
    } else {
        x.chunks(k).zip(u.chunks_mut(kp).zip(scale.iter_mut())).enumerate().for_each(work);
    }
    QuantRows { u, scale, kp }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn quantize_row_avx512(
    row: &[f32],
    ur: &mut [u8],
    s: &mut f32,
    rounding: Rounding,
    range: Option<f32>,
) {
    quantize_row(row, ur, s, rounding, range);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(
    row: &[f32],
    ur: &mut [u8],
    s: &mut f32,
    rounding: Rounding,
    range: Option<f32>,
) {
    quantize_row(row, ur, s, rounding, range);
}

/// The largest magnitude in `row`, over sixteen running maxima so that the loop vectorises
/// (the result does not depend on the order).
#[inline(always)]
fn max_abs(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v.abs());
        }
    }
    let tail = chunks.remainder().iter().fold(0f32, |a, &v| a.max(v.abs()));
    lanes.iter().fold(tail, |a, &v| a.max(v))
}

/// `v` clamped to ±127, rounded half to even and stored as `q + 128`: `round_q` done in the
/// integer bits of `v + 1.5·2²³`, because float-to-integer casts are saturating in Rust and
/// do not vectorise.
#[inline(always)]
fn biased_u8(v: f32) -> u8 {
    const MAGIC: f32 = 12_582_912.0;
    let q = (v.clamp(-127.0, 127.0) + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    (q + 128) as u8
}

/// One row of activations to `u8` (`q + 128`) with its scale. One portable source compiled
/// once per path, as in `act`: the operations are exact or correctly rounded and never fused,
/// so every path gives the same bytes.
#[inline(always)]
fn quantize_row(row: &[f32], ur: &mut [u8], s: &mut f32, rounding: Rounding, range: Option<f32>) {
    // Not `unwrap_or_else`: a closure would not inherit the caller's target features.
    let max = match range {
        Some(r) => r,
        None => max_abs(row),
    };
    *s = if max > 0.0 { max / 127.0 } else { 1.0 };
    match rounding {
        Rounding::Harken => {
            let inv = 1.0 / *s;
            for (o, &v) in ur.iter_mut().zip(row) {
                *o = biased_u8(v * inv);
            }
        }
        Rounding::TfLite => {
            // An all-zero row quantizes to zeros whatever the scale.
            let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
            // TFLite on x86 runs its NEON tensor utilities through NEON_2_SSE: blocks of 8
            // round as `trunc(v ± 0.5)` (in f32, so a value just under a half can round up),
            // the tail with `round` (half away from zero).
            let vec_end = row.len() / 8 * 8;
            for (i, (o, &v)) in ur.iter_mut().zip(row).enumerate() {
                let x = v * inv;
                let q = if i < vec_end {
                    (x + if x < 0.0 { -0.5 } else { 0.5 }).trunc()
                } else {
                    x.round()
                };
                *o = biased_u8(q);
            }
        }
    }
}

/// Where one block of work writes: rows `rows` of the product, panels `panels`, into `out`
/// with row stride `ldo`, column `col0` of the product at `out[.. + 0]`.
pub(crate) struct Block<'o> {
    pub(crate) rows: std::ops::Range<usize>,
    pub(crate) panels: std::ops::Range<usize>,
    pub(crate) out: &'o mut [f32],
    pub(crate) ldo: usize,
    pub(crate) col0: usize,
    /// Store each exact `i32` accumulator's bits instead of the scaled `f32` result
    /// ([`matmul_tflite_acc`]).
    pub(crate) raw: bool,
}

/// `y = x · Wᵀ + bias` for `x` of `m` rows of `w.k()` values; `y` gets `m × w.n()` values.
/// The work is split over rayon's pool.
pub fn matmul(
    isa: Isa,
    x: &[f32],
    m: usize,
    w: PackedRef<'_>,
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<(), LayoutError> {
    matmul_act(isa, x, m, w, bias, Activation::Identity, y)
}

/// [`matmul`] followed by `act` on every output value.
pub fn matmul_act(
    isa: Isa,
    x: &[f32],
    m: usize,
    w: PackedRef<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) -> Result<(), LayoutError> {
    matmul_with(isa, x, m, w, bias, act, Rounding::Harken, y)
}

/// [`matmul`] with activations rounded as TFLite's hybrid fully-connected layer rounds them
/// ([`Rounding::TfLite`]): with the file's int8 weights, the result equals the TFLite
/// runtime's bit for bit.
pub fn matmul_tflite(
    isa: Isa,
    x: &[f32],
    m: usize,
    w: PackedRef<'_>,
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<(), LayoutError> {
    matmul_with(isa, x, m, w, bias, Activation::Identity, Rounding::TfLite, y)
}

/// The exact `i32` accumulators of [`matmul_tflite`] (`acc[i·n + j] = Σ q(x_i)·w_j`, before any
/// scaling), with row `i` quantized as if its largest magnitude were `ranges[i]` (values
/// beyond it clamp to ±127), and the row's scale `ranges[i] / 127` returned in `scales`.
///
/// TFLite quantizes each input row with one scale. A layer whose row is the concatenation of
/// two parts (an LSTM's `[x, h]`) can multiply the parts by the two halves of its weights
/// separately and add the integers — the sum equals the whole product exactly when both parts
/// were quantized with the whole row's range — which lets the part that does not depend on the
/// recurrence run for many time steps at once. `k` of `w` must be a multiple of 8 for the
/// rounding to match a longer row's (TFLite rounds in blocks of 8).
pub fn matmul_tflite_acc(
    isa: Isa,
    x: &[f32],
    m: usize,
    ranges: &[f32],
    w: PackedRef<'_>,
    acc: &mut [i32],
    scales: &mut [f32],
) -> Result<(), LayoutError> {
    let (n, k) = (w.n, w.k);
    if x.len() != m * k || acc.len() != m * n || ranges.len() != m || scales.len() != m {
        return Err(LayoutError::Shape {
            detail: format!(
                "x has {} values for {m}×{k}, acc {} for {m}×{n}, {} ranges and {} scales for {m} rows",
                x.len(),
                acc.len(),
                ranges.len(),
                scales.len()
            ),
        });
    }
    if m == 0 {
        return Ok(());
    }
    let isa = gemm_path(isa, m);
    let xq = quantize_rows_in(isa, x, m, k, Rounding::TfLite, Some(ranges));
    scales.copy_from_slice(&xq.scale);
    let mut out = vec![0f32; m * n];
    over_panels(m, n, &mut out, |b| block(isa, &xq, w, None, Block { raw: true, ..b }), |_| {});
    for (a, v) in acc.iter_mut().zip(&out) {
        *a = v.to_bits() as i32;
    }
    Ok(())
}

/// The path that multiplies `m` rows: AMX only from [`AMX_MIN_ROWS`] rows on (a decoder step's
/// few beams fill a fraction of a 16-row tile and run faster on AVX-512 VNNI); an unsupported
/// path falls back to the reference.
fn gemm_path(isa: Isa, m: usize) -> Isa {
    match isa {
        _ if !isa.supported() => Isa::Scalar,
        Isa::Amx if m < AMX_MIN_ROWS => Isa::Avx512,
        isa => isa,
    }
}

#[allow(clippy::too_many_arguments)] // private: the public entry points fix most of them
fn matmul_with(
    isa: Isa,
    x: &[f32],
    m: usize,
    w: PackedRef<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    rounding: Rounding,
    y: &mut [f32],
) -> Result<(), LayoutError> {
    let (n, k) = (w.n, w.k);
    if x.len() != m * k || y.len() != m * n || bias.is_some_and(|b| b.len() != n) {
        return Err(LayoutError::Shape {
            detail: format!(
                "x has {} values for {m}×{k}, y {} for {m}×{n}, bias {:?} for {n}",
                x.len(),
                y.len(),
                bias.map(<[f32]>::len)
            ),
        });
    }
    if m == 0 {
        return Ok(());
    }
    let isa = gemm_path(isa, m);
    let xq = quantize_rows(isa, x, m, k, rounding);
    let n_panels = padded_n(n) / PANEL_COLS;
    let run = |b: Block<'_>| block(isa, &xq, w, bias, b);
    if m >= SPLIT_M_FROM {
        let chunk = row_chunk(isa);
        y.par_chunks_mut(chunk * n).enumerate().for_each(|(t, out)| {
            let r0 = t * chunk;
            let rows = r0..(r0 + out.len() / n);
            run(Block { rows, panels: 0..n_panels, out: &mut *out, ldo: n, col0: 0, raw: false });
            crate::act::apply(isa, act, out);
        });
    } else {
        over_panels(m, n, y, run, |out| crate::act::apply(isa, act, out));
    }
    Ok(())
}

/// Few rows: the panels are split over the pool, each task filling its own `m × cols` block
/// (`finish` runs on it, e.g. the activation), then the blocks are copied into `y` (`m × n`).
fn over_panels(
    m: usize,
    n: usize,
    y: &mut [f32],
    run: impl Fn(Block<'_>) + Sync,
    finish: impl Fn(&mut [f32]) + Sync,
) {
    let n_panels = padded_n(n) / PANEL_COLS;
    let parts: Vec<(usize, Vec<f32>)> = (0..n_panels.div_ceil(PANEL_CHUNK))
        .into_par_iter()
        .map(|t| {
            let p0 = t * PANEL_CHUNK;
            let p1 = (p0 + PANEL_CHUNK).min(n_panels);
            let col0 = p0 * PANEL_COLS;
            let cols = (p1 * PANEL_COLS).min(n) - col0;
            let mut out = vec![0f32; m * cols];
            run(Block { rows: 0..m, panels: p0..p1, out: &mut out, ldo: cols, col0, raw: false });
            finish(&mut out);
            (col0, out)
        })
        .collect();
    for (col0, part) in parts {
        let cols = part.len() / m;
        for (r, src) in part.chunks_exact(cols).enumerate() {
            y[r * n + col0..r * n + col0 + cols].copy_from_slice(src);
        }
    }
}

fn block(isa: Isa, xq: &QuantRows, w: PackedRef<'_>, bias: Option<&[f32]>, b: Block<'_>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `matmul` only passes a path the CPU supports; the block's ranges lie inside
        // `xq`, `w` and `out` by construction.
        Isa::Amx => unsafe { crate::amx::int8_block_amx(xq, w, bias, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx512 => unsafe { crate::x86::int8_block_avx512(xq, w, bias, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { crate::x86::int8_block_avx2(xq, w, bias, b) },
        _ => block_scalar(xq, w, bias, b),
    }
}

/// The reference: exact integer dot products, one panel of 16 outputs at a time in the order
/// the packed bytes lie, then the shared epilogue.
fn block_scalar(xq: &QuantRows, w: PackedRef<'_>, bias: Option<&[f32]>, b: Block<'_>) {
    let kp = xq.kp;
    for (ri, r) in b.rows.clone().enumerate() {
        let xr = &xq.u[r * kp..(r + 1) * kp];
        for p in b.panels.clone() {
            let panel = &w.data[p * kp * PANEL_COLS..(p + 1) * kp * PANEL_COLS];
            let mut acc = [0i32; PANEL_COLS];
            for (xg, wg) in xr.chunks_exact(K_GROUP).zip(panel.chunks_exact(K_GROUP * PANEL_COLS)) {
                for (a, wc) in acc.iter_mut().zip(wg.chunks_exact(K_GROUP)) {
                    for (&x, &wv) in xg.iter().zip(wc) {
                        *a += (i32::from(x) - 128) * i32::from(wv);
                    }
                }
            }
            let c0 = p * PANEL_COLS;
            for (j, &a) in acc.iter().enumerate().take(w.n.saturating_sub(c0).min(PANEL_COLS)) {
                let c = c0 + j;
                b.out[ri * b.ldo + c - b.col0] = if b.raw {
                    f32::from_bits(a as u32)
                } else {
                    epilogue(a, xq.scale[r], w.scales[c], bias.map(|b| b[c]))
                };
            }
        }
    }
}

/// `acc · (s_x · s_w) + b`, in the order every path computes it.
#[inline]
pub(crate) fn epilogue(acc: i32, sx: f32, sw: f32, bias: Option<f32>) -> f32 {
    let v = acc as f32 * (sx * sw);
    match bias {
        Some(b) => v + b,
        None => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| ((i as f32 * 0.7311 + seed).sin() * 1.7).powi(3)).collect()
    }

    #[test]
    fn quantized_product_is_close_to_the_float_product() {
        let (m, n, k) = (7, 37, 70);
        let (x, w) = (data(m * k, 0.3), data(n * k, 1.1));
        let p = PackedMatrix::quantize(&w, n, k).unwrap();
        let mut y = vec![0f32; m * n];
        matmul(Isa::Scalar, &x, m, p.view(), None, &mut y).unwrap();
        for r in 0..m {
            for c in 0..n {
                let exact: f32 = (0..k).map(|t| x[r * k + t] * w[c * k + t]).sum();
                let norm: f32 = (0..k).map(|t| (x[r * k + t] * w[c * k + t]).abs()).sum();
                assert!((y[r * n + c] - exact).abs() <= 0.02 * norm + 1e-4, "({r},{c})");
            }
        }
    }

    #[test]
    fn integer_bits_rounding_equals_float_rounding() {
        // `biased_u8` must give the bytes `round_q` gives (the format's definition), ties and
        // clamping included.
        let mut v = -300.0f32;
        while v < 300.0 {
            for x in [v, v + 0.5, v - 0.5, f32::from_bits(v.to_bits() + 1)] {
                assert_eq!(biased_u8(x), (round_q(x) + 128.0) as u8, "{x}");
            }
            v += 0.173;
        }
        for x in [f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e-30, 126.5, -126.5, 127.49] {
            assert_eq!(biased_u8(x), (round_q(x) + 128.0) as u8, "{x}");
        }
    }

    #[test]
    fn row_f32_dequantizes_the_packed_row() {
        let (n, k) = (20, 9);
        let w = data(n * k, 0.0);
        let p = PackedMatrix::quantize(&w, n, k).unwrap();
        for i in 0..n {
            let mut row = Vec::new();
            p.view().row_f32(i, &mut row);
            let max = w[i * k..(i + 1) * k].iter().fold(0f32, |a, v| a.max(v.abs()));
            for (a, b) in row.iter().zip(&w[i * k..(i + 1) * k]) {
                assert!((a - b).abs() <= max / 127.0 * 0.51, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn mismatched_buffers_are_errors() {
        let p = PackedMatrix::quantize(&data(32 * 8, 0.0), 32, 8).unwrap();
        let v = p.view();
        assert!(PackedRef::new(&v.data[1..], v.scales, v.sums, 32, 8).is_err());
        assert!(PackedRef::new(v.data, &v.scales[1..], v.sums, 32, 8).is_err());
        let mut y = vec![0f32; 3];
        assert!(matmul(Isa::Scalar, &[0.0; 8], 1, v, None, &mut y).is_err());
    }
}

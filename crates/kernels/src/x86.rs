//! x86-64 kernels: int8 GEMM micro-kernels for AVX-512 VNNI and AVX2, and the fused attention
//! inner loops. Callers (`int8`, `attention`) only call these on CPUs that report the features.

use std::arch::x86_64::*;

use crate::int8::{Block, K_GROUP, PANEL_COLS, PackedRef, QuantRows};

/// Rows of `x` per AVX-512 micro-tile (8 rows × 2 panels = 16 accumulators).
const MR_512: usize = 8;
/// Rows of `x` per AVX2 micro-tile (2 rows × 4 quarter-panels = 8 accumulators).
const MR_256: usize = 2;

/// One block of the product with `vpdpbusd` on 512-bit registers.
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL/VNNI; `b.rows` lie inside `xq`, `b.panels` inside `w`, and
/// `b.out` holds `b.rows.len()` rows of stride `b.ldo` covering the panels' valid columns.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn int8_block_avx512(
    xq: &QuantRows,
    w: PackedRef<'_>,
    bias: Option<&[f32]>,
    mut b: Block<'_>,
) {
    let mut p = b.panels.start;
    while p < b.panels.end {
        let np = if p + 1 < b.panels.end { 2 } else { 1 };
        let mut r = b.rows.start;
        while r < b.rows.end {
            let mr = (b.rows.end - r).min(MR_512);
            macro_rules! tile {
                ($($m:literal)*) => {
                    match (mr, np) {
                        $(($m, 2) => unsafe { tile512::<$m, 2>(xq, w, bias, &mut b, r, p) },
                          ($m, _) => unsafe { tile512::<$m, 1>(xq, w, bias, &mut b, r, p) },)*
                        _ => unreachable!("mr is in 1..=8"),
                    }
                };
            }
            tile!(1 2 3 4 5 6 7 8);
            r += mr;
        }
        p += np;
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile512<const MR: usize, const NP: usize>(
    xq: &QuantRows,
    w: PackedRef<'_>,
    bias: Option<&[f32]>,
    b: &mut Block<'_>,
    r: usize,
    p: usize,
) {
    let kp = xq.kp;
    let panel_len = kp * PANEL_COLS;
    let groups = kp / K_GROUP;
    // SAFETY: rows r..r+MR and panels p..p+NP are inside the buffers (caller's contract); every
    // offset below stays below (r+MR)·kp in `u` and (p+NP)·panel_len in `data`.
    unsafe {
        let xp = xq.u.as_ptr().add(r * kp);
        let wp = w.data().as_ptr().add(p * panel_len);
        let mut acc = [[_mm512_setzero_si512(); NP]; MR];
        for g in 0..groups {
            let mut wv = [_mm512_setzero_si512(); NP];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(wp.add(j * panel_len + g * 64).cast());
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let xb =
                    _mm512_set1_epi32(xp.add(i * kp + g * K_GROUP).cast::<i32>().read_unaligned());
                for (a, v) in row.iter_mut().zip(&wv) {
                    *a = _mm512_dpbusd_epi32(*a, xb, *v);
                }
            }
        }
        for j in 0..NP {
            let e = Epilogue512::new(w, bias, p + j);
            for (i, row) in acc.iter().enumerate() {
                e.store(xq, b, r + i, row[j]);
            }
        }
    }
}

/// The shared end of every AVX-512-class product (VNNI and AMX): one panel's 16 exact
/// accumulators of one row, corrected for the unsigned activations, scaled, biased and stored —
/// in the order [`crate::int8::epilogue`] computes, so every path gives the same bits.
pub(crate) struct Epilogue512 {
    c0: usize,
    mask: __mmask16,
    comp: __m512i,
    sw: __m512,
    bias: Option<__m512>,
}

impl Epilogue512 {
    /// The constants of panel `panel` of `w`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) fn new(w: PackedRef<'_>, bias: Option<&[f32]>, panel: usize) -> Self {
        let c0 = panel * PANEL_COLS;
        let valid = (w.n() - c0).min(PANEL_COLS);
        let mask: __mmask16 = if valid == PANEL_COLS { 0xFFFF } else { (1u16 << valid) - 1 };
        // SAFETY: sums and scales are padded to whole panels; the bias load is masked to the
        // panel's valid columns, which lie inside the bias (it has `w.n()` values).
        unsafe {
            let comp = _mm512_slli_epi32::<7>(_mm512_loadu_si512(w.sums().as_ptr().add(c0).cast()));
            let sw = _mm512_loadu_ps(w.scales().as_ptr().add(c0));
            let bias = bias.map(|bb| _mm512_maskz_loadu_ps(mask, bb.as_ptr().add(c0)));
            Epilogue512 { c0, mask, comp, sw, bias }
        }
    }

    /// Store row `r` of the product (its accumulators `acc`) into `b`.
    ///
    /// # Safety
    /// Row `r` lies inside `b.rows` and `xq`; `b.out` covers the panel's valid columns.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(crate) unsafe fn store(&self, xq: &QuantRows, b: &mut Block<'_>, r: usize, acc: __m512i) {
        let a = _mm512_sub_epi32(acc, self.comp);
        let at = (r - b.rows.start) * b.ldo + self.c0 - b.col0;
        // SAFETY: the caller's contract; the store is masked to the valid columns.
        unsafe {
            let dst = b.out.as_mut_ptr().add(at);
            if b.raw {
                _mm512_mask_storeu_ps(dst, self.mask, _mm512_castsi512_ps(a));
                return;
            }
            let s = _mm512_mul_ps(_mm512_set1_ps(*xq.scale.get_unchecked(r)), self.sw);
            let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(a), s);
            if let Some(bv) = self.bias {
                v = _mm512_add_ps(v, bv);
            }
            _mm512_mask_storeu_ps(dst, self.mask, v);
        }
    }
}

/// One block of the product with AVX2: weights and activations widened to i16 and multiplied
/// with `vpmaddwd`, which is exact (AVX2's `vpmaddubsw` would saturate at ±32767).
///
/// # Safety
/// The CPU supports AVX2 and FMA; the same bounds as [`int8_block_avx512`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn int8_block_avx2(
    xq: &QuantRows,
    w: PackedRef<'_>,
    bias: Option<&[f32]>,
    mut b: Block<'_>,
) {
    let kp = xq.kp;
    // Signed activations, i16, for the rows of this block.
    let x16: Vec<i16> =
        xq.u[b.rows.start * kp..b.rows.end * kp].iter().map(|&u| i16::from(u) - 128).collect();
    for p in b.panels.clone() {
        let mut r = b.rows.start;
        while r < b.rows.end {
            let mr = (b.rows.end - r).min(MR_256);
            let xr = &x16[(r - b.rows.start) * kp..];
            if mr == 2 {
                // SAFETY: forwarded contract; `xr` holds at least 2 rows of kp values.
                unsafe { tile256::<2>(xr, xq, w, bias, &mut b, r, p) }
            } else {
                // SAFETY: as above, one row.
                unsafe { tile256::<1>(xr, xq, w, bias, &mut b, r, p) }
            }
            r += mr;
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile256<const MR: usize>(
    x16: &[i16],
    xq: &QuantRows,
    w: PackedRef<'_>,
    bias: Option<&[f32]>,
    b: &mut Block<'_>,
    r: usize,
    p: usize,
) {
    let kp = xq.kp;
    let panel_len = kp * PANEL_COLS;
    // SAFETY: as in `tile512`; `x16` holds MR rows of kp values.
    unsafe {
        let xp = x16.as_ptr();
        let wp = w.data().as_ptr().add(p * panel_len);
        let mut acc = [[_mm256_setzero_si256(); 4]; MR];
        for g in 0..kp / K_GROUP {
            let mut xb = [_mm256_setzero_si256(); MR];
            for (i, v) in xb.iter_mut().enumerate() {
                *v =
                    _mm256_set1_epi64x(xp.add(i * kp + g * K_GROUP).cast::<i64>().read_unaligned());
            }
            for q in 0..4 {
                let wq = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(g * 64 + q * 16).cast()));
                for (a, x) in acc.iter_mut().zip(&xb) {
                    a[q] = _mm256_add_epi32(a[q], _mm256_madd_epi16(wq, *x));
                }
            }
        }
        let c0 = p * PANEL_COLS;
        let valid = (w.n() - c0).min(PANEL_COLS);
        let mut bias_pad = [0f32; PANEL_COLS];
        if let Some(bb) = bias {
            bias_pad[..valid].copy_from_slice(&bb[c0..c0 + valid]);
        }
        let sw = [
            _mm256_loadu_ps(w.scales().as_ptr().add(c0)),
            _mm256_loadu_ps(w.scales().as_ptr().add(c0 + 8)),
        ];
        let bv = [_mm256_loadu_ps(bias_pad.as_ptr()), _mm256_loadu_ps(bias_pad.as_ptr().add(8))];
        for (i, a) in acc.iter().enumerate() {
            // Each accumulator holds two partial sums per column: add the pairs, restore order.
            let lo = _mm256_permute4x64_epi64::<0xD8>(_mm256_hadd_epi32(a[0], a[1]));
            let hi = _mm256_permute4x64_epi64::<0xD8>(_mm256_hadd_epi32(a[2], a[3]));
            let sx = _mm256_set1_ps(xq.scale[r + i]);
            let mut vals = [0f32; PANEL_COLS];
            for (h, sums) in [lo, hi].into_iter().enumerate() {
                let v = if b.raw {
                    _mm256_castsi256_ps(sums)
                } else {
                    let v = _mm256_mul_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(sx, sw[h]));
                    if bias.is_some() { _mm256_add_ps(v, bv[h]) } else { v }
                };
                _mm256_storeu_ps(vals.as_mut_ptr().add(h * 8), v);
            }
            let at = (r - b.rows.start + i) * b.ldo + c0 - b.col0;
            b.out[at..at + valid].copy_from_slice(&vals[..valid]);
        }
    }
}

/// Keys per step of [`scores_avx512`]: two registers.
pub(crate) const SCORE_KEYS_512: usize = 32;
/// Query rows per [`scores_avx512`] call.
pub(crate) const SCORE_ROWS_512: usize = 12;
/// Query rows per [`pv_avx512`] call.
pub(crate) const PV_ROWS_512: usize = 6;

/// `s ← exp(s − max s)` over `s`, returning the sum; the same polynomial as the portable
/// `attention::exp`.
///
/// # Safety
/// AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn softmax_avx512(s: &mut [f32]) -> f32 {
    let n = s.len();
    let full = n / 16 * 16;
    let tail_mask: __mmask16 = ((1u32 << (n - full)) - 1) as u16;
    // SAFETY: full loads below `full`, masked loads and stores for the tail.
    unsafe {
        let p = s.as_mut_ptr();
        let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
        for j in (0..full).step_by(16) {
            m = _mm512_max_ps(m, _mm512_loadu_ps(p.add(j)));
        }
        if tail_mask != 0 {
            m = _mm512_mask_max_ps(m, tail_mask, m, _mm512_maskz_loadu_ps(tail_mask, p.add(full)));
        }
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(m));
        let mut sum = _mm512_setzero_ps();
        for j in (0..full).step_by(16) {
            let e = exp512(_mm512_sub_ps(_mm512_loadu_ps(p.add(j)), max));
            _mm512_storeu_ps(p.add(j), e);
            sum = _mm512_add_ps(sum, e);
        }
        if tail_mask != 0 {
            let e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail_mask, p.add(full)), max));
            _mm512_mask_storeu_ps(p.add(full), tail_mask, e);
            sum = _mm512_mask_add_ps(sum, tail_mask, sum, e);
        }
        _mm512_reduce_add_ps(sum)
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn exp512(x: __m512) -> __m512 {
    let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0)), _mm512_set1_ps(88.0));
    let t = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    let y = _mm512_mul_ps(_mm512_sub_ps(t, n), _mm512_set1_ps(std::f32::consts::LN_2));
    let c = |v: f32| _mm512_set1_ps(v);
    let mut p = _mm512_fmadd_ps(y, c(1.0 / 720.0), c(1.0 / 120.0));
    p = _mm512_fmadd_ps(y, p, c(1.0 / 24.0));
    p = _mm512_fmadd_ps(y, p, c(1.0 / 6.0));
    p = _mm512_fmadd_ps(y, p, c(0.5));
    p = _mm512_fmadd_ps(y, p, c(1.0));
    p = _mm512_fmadd_ps(y, p, c(1.0));
    let bits =
        _mm512_slli_epi32::<23>(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)));
    _mm512_mul_ps(p, _mm512_castsi512_ps(bits))
}

/// Query rows per [`scores_avx2`] call.
pub(crate) const SCORE_ROWS_256: usize = 6;
/// Query rows per [`pv_avx2`] call.
pub(crate) const PV_ROWS_256: usize = 2;

/// [`softmax_avx512`] for AVX2.
///
/// # Safety
/// AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn softmax_avx2(s: &mut [f32]) -> f32 {
    let n = s.len();
    let full = n / 8 * 8;
    // SAFETY: vector loads and stores below `full`; the tail is indexed safely.
    unsafe {
        let p = s.as_mut_ptr();
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        for j in (0..full).step_by(8) {
            m = _mm256_max_ps(m, _mm256_loadu_ps(p.add(j)));
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), m);
        let max = lanes.iter().chain(&s[full..]).copied().fold(f32::NEG_INFINITY, f32::max);
        let mv = _mm256_set1_ps(max);
        let mut sum = _mm256_setzero_ps();
        for j in (0..full).step_by(8) {
            let e = exp256(_mm256_sub_ps(_mm256_loadu_ps(p.add(j)), mv));
            _mm256_storeu_ps(p.add(j), e);
            sum = _mm256_add_ps(sum, e);
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        let mut total: f32 = lanes.iter().sum();
        for x in &mut s[full..] {
            *x = crate::attention::exp(*x - max);
            total += *x;
        }
        total
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp256(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0)), _mm256_set1_ps(88.0));
    let t = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    let y = _mm256_mul_ps(_mm256_sub_ps(t, n), _mm256_set1_ps(std::f32::consts::LN_2));
    let c = |v: f32| _mm256_set1_ps(v);
    let mut p = _mm256_fmadd_ps(y, c(1.0 / 720.0), c(1.0 / 120.0));
    p = _mm256_fmadd_ps(y, p, c(1.0 / 24.0));
    p = _mm256_fmadd_ps(y, p, c(1.0 / 6.0));
    p = _mm256_fmadd_ps(y, p, c(0.5));
    p = _mm256_fmadd_ps(y, p, c(1.0));
    p = _mm256_fmadd_ps(y, p, c(1.0));
    let bits =
        _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
    _mm256_mul_ps(p, _mm256_castsi256_ps(bits))
}

// The score and `p·v` micro-kernels, once per register width, for keys and values stored as
// f32 (encoder self-attention) or as f16 bits (decoder cross-attention, `HalfKv`): the element
// type only changes how a vector is loaded.

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load512_f32(p: *const f32) -> __m512 {
    // SAFETY: the caller's kernel reads inside its contract's bounds.
    unsafe { _mm512_loadu_ps(p) }
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load512_f16(p: *const u16) -> __m512 {
    // SAFETY: as above; 16 f16 values are 32 bytes.
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load256_f32(p: *const f32) -> __m256 {
    // SAFETY: as above.
    unsafe { _mm256_loadu_ps(p) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load256_f16(p: *const u16) -> __m256 {
    // SAFETY: as above; 8 f16 values are 16 bytes.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

macro_rules! attention_kernels_512 {
    ($scores:ident, $pv:ident, $t:ty, $load:ident) => {
        /// `scores[i][j] = Σ_e q[i][e]·kt[e][j]` for [`SCORE_ROWS_512`] query rows and every
        /// key, 32 keys per step.
        ///
        /// # Safety
        /// AVX-512F; `q` holds `SCORE_ROWS_512` rows of `dh`, `kt` `dh` rows of `tkp`, `scores`
        /// `SCORE_ROWS_512` rows of `tkp`, and `tkp` is a multiple of 32.
        #[target_feature(enable = "avx512f")]
        pub(crate) unsafe fn $scores(
            q: &[f32],
            kt: &[$t],
            dh: usize,
            tkp: usize,
            scores: &mut [f32],
        ) {
            debug_assert!(
                q.len() >= SCORE_ROWS_512 * dh
                    && kt.len() >= dh * tkp
                    && scores.len() >= SCORE_ROWS_512 * tkp
            );
            // SAFETY: every offset stays inside the lengths in the contract.
            unsafe {
                let (qp, kp, sp) = (q.as_ptr(), kt.as_ptr(), scores.as_mut_ptr());
                for j0 in (0..tkp).step_by(SCORE_KEYS_512) {
                    let mut acc = [[_mm512_setzero_ps(); 2]; SCORE_ROWS_512];
                    for e in 0..dh {
                        let k0 = $load(kp.add(e * tkp + j0));
                        let k1 = $load(kp.add(e * tkp + j0 + 16));
                        for (i, a) in acc.iter_mut().enumerate() {
                            let qv = _mm512_set1_ps(*qp.add(i * dh + e));
                            a[0] = _mm512_fmadd_ps(qv, k0, a[0]);
                            a[1] = _mm512_fmadd_ps(qv, k1, a[1]);
                        }
                    }
                    for (i, a) in acc.iter().enumerate() {
                        _mm512_storeu_ps(sp.add(i * tkp + j0), a[0]);
                        _mm512_storeu_ps(sp.add(i * tkp + j0 + 16), a[1]);
                    }
                }
            }
        }

        /// `out[i][..64] = Σ_j p[i][j]·v_j` for up to [`PV_ROWS_512`] query rows (64-wide
        /// heads), every `v_j` loaded once for all rows; `v_j` is at `offset + j·stride` in `v`.
        ///
        /// # Safety
        /// AVX-512F; `p` holds `rows` rows of stride `tkp` with at least `t_k` values; every
        /// `v_j` (`j < t_k`) has 64 values in `v`; `out` holds `rows` × 64.
        #[target_feature(enable = "avx512f")]
        #[allow(clippy::too_many_arguments)] // one micro-kernel's operands
        pub(crate) unsafe fn $pv(
            p: &[f32],
            tkp: usize,
            rows: usize,
            v: &[$t],
            offset: usize,
            stride: usize,
            t_k: usize,
            out: &mut [f32],
        ) {
            debug_assert!(
                rows <= PV_ROWS_512 && (t_k == 0 || offset + (t_k - 1) * stride + 64 <= v.len())
            );
            // SAFETY: per the contract; rows past `rows` reuse row 0's scores and are not stored.
            unsafe {
                let (pp, vp) = (p.as_ptr(), v.as_ptr().add(offset));
                let mut acc = [[_mm512_setzero_ps(); 4]; PV_ROWS_512];
                let row = |i: usize| if i < rows { i } else { 0 };
                for j in 0..t_k {
                    let vj = vp.add(j * stride);
                    let vv = [$load(vj), $load(vj.add(16)), $load(vj.add(32)), $load(vj.add(48))];
                    for (i, a) in acc.iter_mut().enumerate() {
                        let pv = _mm512_set1_ps(*pp.add(row(i) * tkp + j));
                        for (c, x) in a.iter_mut().zip(&vv) {
                            *c = _mm512_fmadd_ps(pv, *x, *c);
                        }
                    }
                }
                for (i, a) in acc.iter().enumerate().take(rows) {
                    for (c, x) in a.iter().enumerate() {
                        _mm512_storeu_ps(out.as_mut_ptr().add(i * 64 + c * 16), *x);
                    }
                }
            }
        }
    };
}

macro_rules! attention_kernels_256 {
    ($scores:ident, $pv:ident, $t:ty, $load:ident, $features:literal) => {
        /// The AVX2 score kernel: [`SCORE_ROWS_256`] query rows, 16 keys per step (12
        /// accumulators).
        ///
        /// # Safety
        /// The listed features; `q` holds `SCORE_ROWS_256` rows of `dh`, `kt` `dh` rows of
        /// `tkp`, `scores` `SCORE_ROWS_256` rows of `tkp`, and `tkp` is a multiple of 16.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $scores(
            q: &[f32],
            kt: &[$t],
            dh: usize,
            tkp: usize,
            scores: &mut [f32],
        ) {
            debug_assert!(
                q.len() >= SCORE_ROWS_256 * dh
                    && kt.len() >= dh * tkp
                    && scores.len() >= SCORE_ROWS_256 * tkp
            );
            // SAFETY: every offset stays inside the lengths in the contract.
            unsafe {
                let (qp, kp, sp) = (q.as_ptr(), kt.as_ptr(), scores.as_mut_ptr());
                for j0 in (0..tkp).step_by(16) {
                    let mut acc = [[_mm256_setzero_ps(); 2]; SCORE_ROWS_256];
                    for e in 0..dh {
                        let k0 = $load(kp.add(e * tkp + j0));
                        let k1 = $load(kp.add(e * tkp + j0 + 8));
                        for (i, a) in acc.iter_mut().enumerate() {
                            let qv = _mm256_broadcast_ss(&*qp.add(i * dh + e));
                            a[0] = _mm256_fmadd_ps(qv, k0, a[0]);
                            a[1] = _mm256_fmadd_ps(qv, k1, a[1]);
                        }
                    }
                    for (i, a) in acc.iter().enumerate() {
                        _mm256_storeu_ps(sp.add(i * tkp + j0), a[0]);
                        _mm256_storeu_ps(sp.add(i * tkp + j0 + 8), a[1]);
                    }
                }
            }
        }

        /// The AVX2 `p·v` kernel: up to [`PV_ROWS_256`] query rows, the 64 head values in two
        /// halves of 32 (8 accumulators per half).
        ///
        /// # Safety
        /// The listed features; the bounds of the AVX-512 `p·v` kernel with `rows ≤ 2`.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)] // one micro-kernel's operands
        pub(crate) unsafe fn $pv(
            p: &[f32],
            tkp: usize,
            rows: usize,
            v: &[$t],
            offset: usize,
            stride: usize,
            t_k: usize,
            out: &mut [f32],
        ) {
            debug_assert!(
                rows <= PV_ROWS_256 && (t_k == 0 || offset + (t_k - 1) * stride + 64 <= v.len())
            );
            // SAFETY: per the contract; a missing second row reuses row 0's scores and is not
            // stored.
            unsafe {
                let (pp, vp) = (p.as_ptr(), v.as_ptr().add(offset));
                let r1 = if rows > 1 { tkp } else { 0 };
                for half in 0..2 {
                    let mut acc = [[_mm256_setzero_ps(); 4]; PV_ROWS_256];
                    for j in 0..t_k {
                        let vj = vp.add(j * stride + half * 32);
                        let vv =
                            [$load(vj), $load(vj.add(8)), $load(vj.add(16)), $load(vj.add(24))];
                        let p0 = _mm256_broadcast_ss(&*pp.add(j));
                        let p1 = _mm256_broadcast_ss(&*pp.add(r1 + j));
                        for c in 0..4 {
                            acc[0][c] = _mm256_fmadd_ps(p0, vv[c], acc[0][c]);
                            acc[1][c] = _mm256_fmadd_ps(p1, vv[c], acc[1][c]);
                        }
                    }
                    for (i, a) in acc.iter().enumerate().take(rows) {
                        for (c, x) in a.iter().enumerate() {
                            _mm256_storeu_ps(out.as_mut_ptr().add(i * 64 + half * 32 + c * 8), *x);
                        }
                    }
                }
            }
        }
    };
}

attention_kernels_512!(scores_avx512, pv_avx512, f32, load512_f32);
attention_kernels_512!(scores16_avx512, pv16_avx512, u16, load512_f16);
attention_kernels_256!(scores_avx2, pv_avx2, f32, load256_f32, "avx2,fma");
attention_kernels_256!(scores16_avx2, pv16_avx2, u16, load256_f16, "avx2,fma,f16c");

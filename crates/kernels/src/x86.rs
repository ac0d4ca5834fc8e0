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
                let xb = _mm512_set1_epi32(xp.add(i * kp + g * K_GROUP).cast::<i32>().read_unaligned());
                for (a, v) in row.iter_mut().zip(&wv) {
                    *a = _mm512_dpbusd_epi32(*a, xb, *v);
                }
            }
        }
        for j in 0..NP {
            let c0 = (p + j) * PANEL_COLS;
            let valid = (w.n() - c0).min(PANEL_COLS);
            let mask: __mmask16 = if valid == PANEL_COLS { 0xFFFF } else { (1u16 << valid) - 1 };
            let comp = _mm512_slli_epi32::<7>(_mm512_loadu_si512(w.sums().as_ptr().add(c0).cast()));
            let sw = _mm512_loadu_ps(w.scales().as_ptr().add(c0));
            let bv = bias.map(|bb| _mm512_maskz_loadu_ps(mask, bb.as_ptr().add(c0)));
            for (i, row) in acc.iter().enumerate() {
                let a = _mm512_sub_epi32(row[j], comp);
                let s = _mm512_mul_ps(_mm512_set1_ps(xq.scale[r + i]), sw);
                let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(a), s);
                if let Some(bv) = bv {
                    v = _mm512_add_ps(v, bv);
                }
                let at = (r - b.rows.start + i) * b.ldo + c0 - b.col0;
                _mm512_mask_storeu_ps(b.out.as_mut_ptr().add(at), mask, v);
            }
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
                *v = _mm256_set1_epi64x(xp.add(i * kp + g * K_GROUP).cast::<i64>().read_unaligned());
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
        let sw = [_mm256_loadu_ps(w.scales().as_ptr().add(c0)), _mm256_loadu_ps(w.scales().as_ptr().add(c0 + 8))];
        let bv = [_mm256_loadu_ps(bias_pad.as_ptr()), _mm256_loadu_ps(bias_pad.as_ptr().add(8))];
        for (i, a) in acc.iter().enumerate() {
            // Each accumulator holds two partial sums per column: add the pairs, restore order.
            let lo = _mm256_permute4x64_epi64::<0xD8>(_mm256_hadd_epi32(a[0], a[1]));
            let hi = _mm256_permute4x64_epi64::<0xD8>(_mm256_hadd_epi32(a[2], a[3]));
            let sx = _mm256_set1_ps(xq.scale[r + i]);
            let mut vals = [0f32; PANEL_COLS];
            for (h, sums) in [lo, hi].into_iter().enumerate() {
                let mut v = _mm256_mul_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(sx, sw[h]));
                if bias.is_some() {
                    v = _mm256_add_ps(v, bv[h]);
                }
                _mm256_storeu_ps(vals.as_mut_ptr().add(h * 8), v);
            }
            let at = (r - b.rows.start + i) * b.ldo + c0 - b.col0;
            b.out[at..at + valid].copy_from_slice(&vals[..valid]);
        }
    }
}

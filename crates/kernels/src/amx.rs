//! AMX int8 tiles (Sapphire Rapids and later, AWS ml.m7i/c7i): the int8 product on `tdpbusd`.
//!
//! A tile register holds 16 rows of 64 bytes; `tdpbusd` multiplies a 16 × 64 tile of unsigned
//! bytes (A) by a tile of signed bytes laid out as 16 groups of 4 `k` values for each of 16
//! columns (B), adding into 16 × 16 `i32` accumulators. That B layout *is* the n16k4 weight
//! layout: 16 groups of one panel are 1,024 contiguous bytes of the packed matrix, loaded as one
//! tile with a 64-byte stride — no repacking, the file's bytes used in place. The activations
//! (`q + 128`, one row of `kp` bytes per row of `x`) are the A operand, loaded straight from the
//! quantized rows. The micro-kernel keeps four accumulator tiles (`tmm0`–`tmm3`: 32 rows × 32
//! columns), two A tiles (`tmm4`, `tmm5`) and two B tiles (`tmm6`, `tmm7`), and steps `k` by 64.
//!
//! Edges: a block whose rows are not whole tiles, or whose `kp` is not a multiple of 64, has its
//! activations copied into a zero-padded buffer (a zero byte contributes nothing whatever B
//! holds); the last, partial `k` step of each panel is copied into a zero-padded B tile, so no
//! load reaches past the end of the weights. The accumulators end in the AVX-512 epilogue the
//! VNNI path uses, so the results are bit-identical to every other path.
//!
//! Why inline `asm!`: Rust's AMX intrinsics are not stable (`x86_amx_intrinsics`), and no
//! maintained crate offers an int8 AMX product over a caller's layout (candle's AMX path is for
//! its Q4K blocks). The tile registers are invisible to the compiler, which never emits AMX
//! code itself, so tile state may span `asm!` blocks within one call; each call configures the
//! tiles first and releases them last.

use std::arch::asm;
use std::arch::x86_64::*;

use crate::int8::{Block, PANEL_COLS, PackedRef, QuantRows};
use crate::x86::Epilogue512;

/// Rows of a tile.
const TILE_ROWS: usize = 16;
/// Bytes of a tile row: the `k` values one `tdpbusd` consumes.
const TILE_K: usize = 64;
/// Bytes of one B tile: 16 groups of one panel.
const B_TILE: usize = TILE_K * PANEL_COLS;

/// Ask Linux for the large AMX tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`); without it the first tile instruction kills the process. The grant is
/// per process.
pub(crate) fn request_permission() -> bool {
    #[cfg(target_os = "linux")]
    {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: arch_prctl with this code only reads its integer arguments.
        let ret =
            unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) };
        ret == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The 64-byte tile configuration (palette 1): all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn uniform() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&(TILE_K as u16).to_le_bytes());
            c[48 + t] = TILE_ROWS as u8;
        }
        TileConfig(c)
    }
}

/// Four accumulator tiles stored: `[row tile · 2 + panel][16 × 16]`.
#[repr(C, align(64))]
struct Acc([[i32; TILE_ROWS * PANEL_COLS]; 4]);

/// The last, partial `k` step of two panels, zero-padded to whole B tiles.
#[repr(C, align(64))]
struct BTail([[i8; B_TILE]; 2]);

/// One `k` step of the micro-kernel: `nr` row tiles (A at `a0`, `a1`, row stride `lda`) times
/// `np` panels (B at `b0`, `b1`) into the accumulators.
///
/// # Safety
/// Tiles are configured; each A pointer has 16 rows of 64 readable bytes at stride `lda`, each
/// B pointer 1,024 readable bytes.
#[inline(always)]
unsafe fn step(
    nr: usize,
    np: usize,
    a0: *const u8,
    a1: *const u8,
    lda: usize,
    b0: *const i8,
    b1: *const i8,
) {
    // SAFETY: the caller's contract; the instructions read memory and write tile registers only.
    unsafe {
        match (nr, np) {
            (2, 2) => asm!(
                "tileloadd tmm4, [{a0} + {lda}*1]",
                "tileloadd tmm5, [{a1} + {lda}*1]",
                "tileloadd tmm6, [{b0} + {ldb}*1]",
                "tileloadd tmm7, [{b1} + {ldb}*1]",
                "tdpbusd tmm0, tmm4, tmm6",
                "tdpbusd tmm1, tmm4, tmm7",
                "tdpbusd tmm2, tmm5, tmm6",
                "tdpbusd tmm3, tmm5, tmm7",
                a0 = in(reg) a0, a1 = in(reg) a1, b0 = in(reg) b0, b1 = in(reg) b1,
                lda = in(reg) lda, ldb = in(reg) TILE_K,
                options(nostack, readonly, preserves_flags),
            ),
            (2, _) => asm!(
                "tileloadd tmm4, [{a0} + {lda}*1]",
                "tileloadd tmm5, [{a1} + {lda}*1]",
                "tileloadd tmm6, [{b0} + {ldb}*1]",
                "tdpbusd tmm0, tmm4, tmm6",
                "tdpbusd tmm2, tmm5, tmm6",
                a0 = in(reg) a0, a1 = in(reg) a1, b0 = in(reg) b0,
                lda = in(reg) lda, ldb = in(reg) TILE_K,
                options(nostack, readonly, preserves_flags),
            ),
            (_, 2) => asm!(
                "tileloadd tmm4, [{a0} + {lda}*1]",
                "tileloadd tmm6, [{b0} + {ldb}*1]",
                "tileloadd tmm7, [{b1} + {ldb}*1]",
                "tdpbusd tmm0, tmm4, tmm6",
                "tdpbusd tmm1, tmm4, tmm7",
                a0 = in(reg) a0, b0 = in(reg) b0, b1 = in(reg) b1,
                lda = in(reg) lda, ldb = in(reg) TILE_K,
                options(nostack, readonly, preserves_flags),
            ),
            _ => asm!(
                "tileloadd tmm4, [{a0} + {lda}*1]",
                "tileloadd tmm6, [{b0} + {ldb}*1]",
                "tdpbusd tmm0, tmm4, tmm6",
                a0 = in(reg) a0, b0 = in(reg) b0,
                lda = in(reg) lda, ldb = in(reg) TILE_K,
                options(nostack, readonly, preserves_flags),
            ),
        }
    }
}

/// Zero the four accumulator tiles.
///
/// # Safety
/// Tiles are configured.
#[inline(always)]
unsafe fn zero_acc() {
    // SAFETY: writes tile registers only.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem, preserves_flags)
        )
    }
}

/// Store the accumulator tiles into `acc`.
///
/// # Safety
/// Tiles are configured.
#[inline(always)]
unsafe fn store_acc(acc: &mut Acc) {
    let p = acc.0.as_mut_ptr().cast::<i32>();
    let ld = PANEL_COLS * 4;
    let tile = TILE_ROWS * PANEL_COLS;
    // SAFETY: each store writes 16 rows of 64 bytes at stride 64 into its own quarter of `acc`.
    unsafe {
        asm!(
            "tilestored [{c0} + {ld}*1], tmm0",
            "tilestored [{c1} + {ld}*1], tmm1",
            "tilestored [{c2} + {ld}*1], tmm2",
            "tilestored [{c3} + {ld}*1], tmm3",
            c0 = in(reg) p, c1 = in(reg) p.add(tile), c2 = in(reg) p.add(2 * tile),
            c3 = in(reg) p.add(3 * tile), ld = in(reg) ld,
            options(nostack, preserves_flags),
        )
    }
}

/// One block of the product on AMX tiles.
///
/// # Safety
/// [`crate::Isa::Amx`] is supported (AVX-512 F/BW/VL/VNNI, AMX int8, and the process holds the
/// tile-data permission); `b.rows` lie inside `xq`, `b.panels` inside `w`, and `b.out` holds
/// `b.rows.len()` rows of stride `b.ldo` covering the panels' valid columns.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn int8_block_amx(
    xq: &QuantRows,
    w: PackedRef<'_>,
    bias: Option<&[f32]>,
    mut b: Block<'_>,
) {
    let kp = xq.kp;
    let (steps, tail) = (kp / TILE_K, kp % TILE_K);
    let rows = b.rows.len();
    let row_tiles = rows.div_ceil(TILE_ROWS);
    let panel_len = kp * PANEL_COLS;
    // Activations in place when every tile is whole; otherwise a zero-padded copy.
    let padded: Vec<u8>;
    let (a, lda) = if tail == 0 && rows.is_multiple_of(TILE_ROWS) {
        (&xq.u[b.rows.start * kp..b.rows.end * kp], kp)
    } else {
        let lda = kp.div_ceil(TILE_K) * TILE_K;
        let mut buf = vec![0u8; row_tiles * TILE_ROWS * lda];
        for (dst, src) in buf.chunks_exact_mut(lda).zip(xq.u[b.rows.start * kp..].chunks(kp)) {
            dst[..kp].copy_from_slice(src);
        }
        padded = buf;
        (&padded[..], lda)
    };
    let cfg = TileConfig::uniform();
    let mut acc = Acc([[0; TILE_ROWS * PANEL_COLS]; 4]);
    let mut btail = BTail([[0; B_TILE]; 2]);
    // SAFETY: the configuration is a valid palette-1 layout.
    unsafe { asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
    let mut p = b.panels.start;
    while p < b.panels.end {
        let np = if p + 1 < b.panels.end { 2 } else { 1 };
        let wp = |j: usize| &w.data()[(p + j.min(np - 1)) * panel_len..];
        if tail > 0 {
            for (j, t) in btail.0.iter_mut().enumerate().take(np) {
                let src = &wp(j)[steps * B_TILE..panel_len];
                for (d, &s) in t.iter_mut().zip(src) {
                    *d = s;
                }
            }
        }
        let mut t = 0;
        while t < row_tiles {
            let nr = if t + 1 < row_tiles { 2 } else { 1 };
            let a0 = &a[t * TILE_ROWS * lda..];
            let a1 = &a[(t + nr - 1) * TILE_ROWS * lda..];
            let (b0, b1) = (wp(0).as_ptr(), wp(1).as_ptr());
            // SAFETY: A tiles lie inside `a` (whole, padded tiles of `lda` ≥ 64·(steps+1)
            // bytes per row when there is a tail); B tiles inside the panels (steps · 1,024 ≤
            // panel_len) or the padded tail.
            unsafe {
                zero_acc();
                for s in 0..steps {
                    let (o, ob) = (s * TILE_K, s * B_TILE);
                    step(nr, np, a0[o..].as_ptr(), a1[o..].as_ptr(), lda, b0.add(ob), b1.add(ob));
                }
                if tail > 0 {
                    let o = steps * TILE_K;
                    let (t0, t1) = (btail.0[0].as_ptr(), btail.0[1].as_ptr());
                    step(nr, np, a0[o..].as_ptr(), a1[o..].as_ptr(), lda, t0, t1);
                }
                store_acc(&mut acc);
            }
            for ri in 0..nr {
                for j in 0..np {
                    let e = Epilogue512::new(w, bias, p + j);
                    let tile = &acc.0[ri * 2 + j];
                    let r0 = b.rows.start + (t + ri) * TILE_ROWS;
                    for (i, row) in tile.chunks_exact(PANEL_COLS).enumerate() {
                        let r = r0 + i;
                        if r >= b.rows.end {
                            break;
                        }
                        // SAFETY: `row` holds 16 i32; row `r` is inside the block.
                        unsafe { e.store(xq, &mut b, r, _mm512_loadu_si512(row.as_ptr().cast())) };
                    }
                }
            }
            t += nr;
        }
        p += np;
    }
    // SAFETY: returns the tiles to their initial state, so the kernel need not save them.
    unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) };
}

// ---------------------------------------------------------------------------------------------
// Self-attention on bf16 tiles (`tdpbf16ps`): scores and `p·v` with f32 accumulators, softmax in
// f32 on AVX-512. The operands are rounded to bf16 (8 significant bits) once, when packed; the
// sums are exact f32 products of those, so the result differs from the f32 kernels by that
// rounding alone (tested against the reference with a bf16 tolerance; the Whisper accuracy
// measured on the evaluation sets, `docs/performance.md`).
// ---------------------------------------------------------------------------------------------

/// The head width the bf16 kernel serves (every Whisper size).
pub(crate) const ATT_DH: usize = 64;
/// Keys are padded to a multiple of this: one round of the score loop (four blocks of 16).
const ATT_KEY_PAD: usize = 64;
/// Keys per `p·v` step: an A tile of 32 bf16 values.
const PV_KEYS: usize = 32;
/// u16 values in one B tile (16 rows of 32).
const BF16_TILE: usize = 16 * 32;

/// `x` rounded to bf16 (nearest, ties to even), as its bits. Portable integer code, so it
/// vectorises on every path; NaN never reaches here from a finite model.
#[inline(always)]
fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// Keys and values of one self-attention call in bf16, laid out as AMX B tiles.
///
/// Keys, per head, per block of 16 keys: 32 rows (pairs of dimensions) of 16 keys × 2 values —
/// two tiles, dimensions 0–31 and 32–63. Values, per head, per block of 32 keys, per 16
/// dimensions: 16 rows (pairs of keys) of 16 dimensions × 2 values — one tile.
pub(crate) struct Bf16Kv {
    k: Vec<u16>,
    v: Vec<u16>,
    t_k: usize,
    tkp: usize,
}

impl Bf16Kv {
    /// Pack `t_k` keys and values of `heads` heads; `key(j, h)` and `value(j, h)` return the
    /// 64 values of key `j` in head `h`.
    pub(crate) fn new<'a>(
        t_k: usize,
        heads: usize,
        key: impl Fn(usize, usize) -> &'a [f32] + Sync,
        value: impl Fn(usize, usize) -> &'a [f32] + Sync,
    ) -> Self {
        use rayon::prelude::*;
        let tkp = t_k.div_ceil(ATT_KEY_PAD) * ATT_KEY_PAD;
        let per_head = tkp * ATT_DH;
        let mut k = vec![0u16; heads * per_head];
        let mut v = vec![0u16; heads * per_head];
        k.par_chunks_mut(per_head).zip(v.par_chunks_mut(per_head)).enumerate().for_each(
            |(h, (kh, vh))| {
                for j in 0..t_k {
                    let (kb, c) = (j / 16, j % 16);
                    for (e, &x) in key(j, h).iter().enumerate().take(ATT_DH) {
                        kh[(kb * 32 + e / 2) * 32 + c * 2 + e % 2] = bf16(x);
                    }
                    let (vb, pr, t) = (j / PV_KEYS, (j % PV_KEYS) / 2, j % 2);
                    for (e, &x) in value(j, h).iter().enumerate().take(ATT_DH) {
                        vh[((vb * 4 + e / 16) * 16 + pr) * 32 + (e % 16) * 2 + t] = bf16(x);
                    }
                }
            },
        );
        Bf16Kv { k, v, t_k, tkp }
    }
}

/// Attention for query rows `r0..r0 + out.len() / d` of every head, 16 rows per tile;
/// `query(i, h)` returns the 64 values of query `i` in head `h` (unscaled).
///
/// # Safety
/// [`crate::Isa::Amx`] is supported and the CPU has AMX-BF16 (checked with it); `kv` holds
/// `heads` heads; `out` holds whole rows of `heads · 64` values.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn attention_rows_bf16<'a>(
    kv: &Bf16Kv,
    heads: usize,
    scale: f32,
    r0: usize,
    query: impl Fn(usize, usize) -> &'a [f32],
    out: &mut [f32],
) {
    let d = heads * ATT_DH;
    let n_rows = out.len() / d;
    let (t_k, tkp) = (kv.t_k, kv.tkp);
    let nkb = tkp / 16;
    let per_head = tkp * ATT_DH;
    let mut q16 = [0u16; TILE_ROWS * ATT_DH];
    let mut scores = vec![0f32; TILE_ROWS * tkp];
    let mut p16 = vec![0u16; TILE_ROWS * tkp];
    let mut o = Acc([[0; TILE_ROWS * PANEL_COLS]; 4]);
    let cfg = TileConfig::uniform();
    // SAFETY: a valid palette-1 configuration.
    unsafe { asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
    for h in 0..heads {
        let kh = kv.k[h * per_head..].as_ptr();
        let vh = kv.v[h * per_head..].as_ptr();
        let mut i0 = 0;
        while i0 < n_rows {
            let nb = (n_rows - i0).min(TILE_ROWS);
            q16.fill(0);
            for i in 0..nb {
                for (dst, &x) in
                    q16[i * ATT_DH..(i + 1) * ATT_DH].iter_mut().zip(query(r0 + i0 + i, h))
                {
                    *dst = bf16(x * scale);
                }
            }
            // Scores: the query tile stays in tmm4/tmm5 (dimensions 0–31, 32–63) while the keys
            // stream past, four blocks of 16 keys per round (keys pad to 64).
            // SAFETY: tiles are configured; every load and store below stays inside `q16`,
            // `kv.k` (head h: nkb blocks of 2 tiles) and `scores` (16 rows of tkp).
            unsafe {
                let qp = q16.as_ptr();
                asm!(
                    "tileloadd tmm4, [{q} + {ld}*1]",
                    "tileloadd tmm5, [{q1} + {ld}*1]",
                    q = in(reg) qp, q1 = in(reg) qp.add(32), ld = in(reg) ATT_DH * 2,
                    options(nostack, readonly, preserves_flags),
                );
                let sp = scores.as_mut_ptr();
                let lds = tkp * 4;
                let mut kb = 0;
                while kb < nkb {
                    let b = |j: usize| kh.add((kb + j) * 2 * BF16_TILE);
                    let s = |j: usize| sp.add((kb + j) * 16);
                    asm!(
                        "tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3",
                        "tileloadd tmm6, [{b0} + {ldb}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tileloadd tmm7, [{b0} + {ldb}*1 + 1024]",
                        "tdpbf16ps tmm0, tmm5, tmm7",
                        "tileloadd tmm6, [{b1} + {ldb}*1]",
                        "tdpbf16ps tmm1, tmm4, tmm6",
                        "tileloadd tmm7, [{b1} + {ldb}*1 + 1024]",
                        "tdpbf16ps tmm1, tmm5, tmm7",
                        "tileloadd tmm6, [{b2} + {ldb}*1]",
                        "tdpbf16ps tmm2, tmm4, tmm6",
                        "tileloadd tmm7, [{b2} + {ldb}*1 + 1024]",
                        "tdpbf16ps tmm2, tmm5, tmm7",
                        "tileloadd tmm6, [{b3} + {ldb}*1]",
                        "tdpbf16ps tmm3, tmm4, tmm6",
                        "tileloadd tmm7, [{b3} + {ldb}*1 + 1024]",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        "tilestored [{s0} + {lds}*1], tmm0",
                        "tilestored [{s1} + {lds}*1], tmm1",
                        "tilestored [{s2} + {lds}*1], tmm2",
                        "tilestored [{s3} + {lds}*1], tmm3",
                        b0 = in(reg) b(0), b1 = in(reg) b(1), b2 = in(reg) b(2), b3 = in(reg) b(3),
                        s0 = in(reg) s(0), s1 = in(reg) s(1), s2 = in(reg) s(2), s3 = in(reg) s(3),
                        ldb = in(reg) 64usize, lds = in(reg) lds,
                        options(nostack, preserves_flags),
                    );
                    kb += 4;
                }
            }
            // Softmax in f32 over the real keys; probabilities to bf16, padding keys and rows 0.
            let mut inv = [0f32; TILE_ROWS];
            p16.fill(0);
            for i in 0..nb {
                let s = &mut scores[i * tkp..i * tkp + t_k];
                // SAFETY: AVX-512F is enabled in this function.
                inv[i] = 1.0 / unsafe { crate::x86::softmax_avx512(s) };
                for (dst, &x) in p16[i * tkp..i * tkp + t_k].iter_mut().zip(s.iter()) {
                    *dst = bf16(x);
                }
            }
            // p·v: one probability tile (32 keys) times four value tiles (64 dimensions).
            // SAFETY: tiles are configured; loads stay inside `p16` (16 rows of tkp) and
            // `kv.v` (head h: tkp/32 blocks of 4 tiles); stores inside `o`.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem, preserves_flags)
                );
                let ldp = tkp * 2;
                for vb in 0..tkp / PV_KEYS {
                    let vt = vh.add(vb * 4 * BF16_TILE);
                    asm!(
                        "tileloadd tmm4, [{p} + {ldp}*1]",
                        "tileloadd tmm6, [{v} + {ldb}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tileloadd tmm7, [{v} + {ldb}*1 + 1024]",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tileloadd tmm6, [{v} + {ldb}*1 + 2048]",
                        "tdpbf16ps tmm2, tmm4, tmm6",
                        "tileloadd tmm7, [{v} + {ldb}*1 + 3072]",
                        "tdpbf16ps tmm3, tmm4, tmm7",
                        p = in(reg) p16.as_ptr().add(vb * PV_KEYS), ldp = in(reg) ldp,
                        v = in(reg) vt, ldb = in(reg) 64usize,
                        options(nostack, readonly, preserves_flags),
                    );
                }
                store_acc(&mut o);
            }
            for i in 0..nb {
                let row = &mut out[(i0 + i) * d + h * ATT_DH..(i0 + i) * d + (h + 1) * ATT_DH];
                for (db, dst) in row.chunks_exact_mut(PANEL_COLS).enumerate() {
                    for (x, &a) in dst.iter_mut().zip(&o.0[db][i * PANEL_COLS..]) {
                        *x = f32::from_bits(a as u32) * inv[i];
                    }
                }
            }
            i0 += nb;
        }
    }
    // SAFETY: returns the tiles to their initial state.
    unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) };
}

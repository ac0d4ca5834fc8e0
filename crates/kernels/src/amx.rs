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

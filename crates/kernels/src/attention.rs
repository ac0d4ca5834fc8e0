//! Fused softmax attention, `softmax(q·kᵀ·scale)·v` per head, for the encoder's self-attention
//! (1500 × 1500 per head for a 30-s window).
//!
//! The score matrix is never written out in full: queries are taken in blocks of a few rows, their
//! scores against every key (a few tens of KiB) stay in cache while the softmax and the product
//! with `v` consume them, and the block's output is written once. Keys are transposed once per
//! head (`[dh][keys]`) so that each score block is a sequence of broadcast-multiply-adds over 16
//! or 32 keys at a time; `v` is read in place. The inner loops are written over fixed-size arrays
//! that the compiler vectorises inside each path's `#[target_feature]` copy: one source, three
//! instruction sets, and a naive reference ([`reference()`]) to test them against.
//!
//! Accuracy: `exp` is a degree-6 polynomial after range reduction (relative error below 5e-6 on [-87, 0]);
//! paths differ from the reference by rounding only (fused multiply-add on the SIMD paths).

use rayon::prelude::*;

use crate::Isa;

/// Query rows per task: each task writes whole output rows (all heads).
const ROWS_PER_TASK: usize = 32;
/// The AMX path's self-attention runs on bf16 tiles from this many queries on (an encoder's
/// 1,500); fewer stay in f32.
#[cfg(target_arch = "x86_64")]
const BF16_MIN_ROWS: usize = 16;
/// Keys per inner step of the portable score loop.
const KEY_STEP: usize = 16;
/// Transposed keys are padded to a multiple of this (the AVX-512 score loop's step).
const KEY_PAD: usize = 32;
/// The head width every Whisper size uses, which gets the register-blocked `p·v` loop.
const HEAD_DIM: usize = 64;
/// Query rows sharing each `v` row in that loop (4 × 64 accumulators: 16 AVX-512 registers).
const PV_ROWS: usize = 4;

/// One head-interleaved matrix: row `i`, head `h` is
/// `data[offset + i·row_stride + h·dh ..][..dh]` (how a fused q|k|v projection lays them out).
#[derive(Debug, Clone, Copy)]
pub struct HeadView<'a> {
    /// The values.
    pub data: &'a [f32],
    /// Where head 0 of row 0 starts.
    pub offset: usize,
    /// Distance between rows.
    pub row_stride: usize,
}

impl HeadView<'_> {
    #[inline(always)]
    fn row(&self, i: usize, h: usize, dh: usize) -> &[f32] {
        let at = self.offset + i * self.row_stride + h * dh;
        &self.data[at..at + dh]
    }

    fn fits(&self, rows: usize, heads: usize, dh: usize) -> bool {
        rows == 0 || self.offset + (rows - 1) * self.row_stride + heads * dh <= self.data.len()
    }
}

/// A shape that does not fit.
#[derive(Debug, thiserror::Error)]
#[error("attention: {detail}")]
pub struct ShapeError {
    detail: String,
}

/// Self-attention without a mask: `out[i][h·dh..]` = Σⱼ softmax(q_i·k_j·scale) v_j per head `h`,
/// for `t_q` queries and `t_k` keys; `out` is `t_q × heads·dh` row-major. On [`Isa::Amx`] with
/// 64-wide heads and at least 16 queries the products run on bf16 tiles (f32 sums and softmax).
#[allow(clippy::too_many_arguments)] // the shape of one attention call; a struct would only rename them
pub fn attention(
    isa: Isa,
    q: HeadView<'_>,
    k: HeadView<'_>,
    v: HeadView<'_>,
    t_q: usize,
    t_k: usize,
    heads: usize,
    dh: usize,
    scale: f32,
    out: &mut [f32],
) -> Result<(), ShapeError> {
    let d = heads * dh;
    if !q.fits(t_q, heads, dh)
        || !k.fits(t_k, heads, dh)
        || !v.fits(t_k, heads, dh)
        || out.len() != t_q * d
    {
        return Err(ShapeError {
            detail: format!(
                "inputs or output too short for {t_q} queries, {t_k} keys, {heads}×{dh}"
            ),
        });
    }
    if t_q == 0 || d == 0 {
        return Ok(());
    }
    if t_k == 0 {
        out.fill(0.0);
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Amx && dh == crate::amx::ATT_DH && t_q >= BF16_MIN_ROWS && crate::cpu::amx_bf16()
    {
        let kv =
            crate::amx::Bf16Kv::new(t_k, heads, |j, h| k.row(j, h, dh), |j, h| v.row(j, h, dh));
        out.par_chunks_mut(ROWS_PER_TASK * d).enumerate().for_each(|(t, o)| {
            // SAFETY: AMX with bf16 is supported (checked above); `kv` holds `heads` heads and
            // `o` whole rows of `heads · 64`.
            unsafe {
                crate::amx::attention_rows_bf16(
                    &kv,
                    heads,
                    scale,
                    t * ROWS_PER_TASK,
                    |i, h| q.row(i, h, dh),
                    o,
                )
            }
        });
        return Ok(());
    }
    let kt = KeysT::new(k, t_k, heads, dh);
    // Values head-major (`[head][key][dh]`), like the transposed keys: the `p·v` loop then
    // streams one head's values from consecutive memory instead of one 256-byte row per page
    // of the fused q|k|v layout (page walks made `p·v` twice as slow as the scores).
    let mut vh = vec![0f32; heads * t_k * dh];
    vh.par_chunks_mut(t_k * dh).enumerate().for_each(|(h, dst)| {
        for (j, row) in dst.chunks_exact_mut(dh).enumerate() {
            row.copy_from_slice(v.row(j, h, dh));
        }
    });
    let v = ValueRows { data: &vh, offset: 0, row_stride: dh, head_stride: t_k * dh };
    attention_rows(isa, q, &kt, v, t_q, scale, out);
    Ok(())
}

/// Keys transposed per head and zero-padded (`[head][dh][keys rounded up]`): what the score
/// loops read. Cross-attention builds it once per audio window and reuses it every step.
#[derive(Debug, Clone)]
pub struct KeysT {
    data: Vec<f32>,
    t_k: usize,
    tkp: usize,
    heads: usize,
    dh: usize,
}

impl KeysT {
    /// Transpose `t_k` keys of `heads` heads of width `dh` out of `k`.
    ///
    /// # Panics
    /// If `k` is shorter than `t_k` rows of `heads · dh` values (a caller's bug: check with
    /// the same arithmetic first, as [`attention`] does).
    pub fn new(k: HeadView<'_>, t_k: usize, heads: usize, dh: usize) -> KeysT {
        assert!(k.fits(t_k, heads, dh), "KeysT::new: keys shorter than {t_k}×{heads}×{dh}");
        let tkp = t_k.div_ceil(KEY_PAD) * KEY_PAD;
        let mut data = vec![0f32; heads * dh * tkp];
        data.par_chunks_mut((dh * tkp).max(1)).enumerate().for_each(|(h, kh)| {
            for j in 0..t_k {
                for (e, &x) in k.row(j, h, dh).iter().enumerate() {
                    kh[e * tkp + j] = x;
                }
            }
        });
        KeysT { data, t_k, tkp, heads, dh }
    }

    /// Keys.
    pub fn len(&self) -> usize {
        self.t_k
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.t_k == 0
    }
}

/// Cross-attention keys and values kept in f16 for the life of an audio window: keys transposed
/// (`[head][dh][keys rounded up]`), values `[head][key][dh]`. The decoder reads all of them at
/// every step for every layer (36 MB in f32 for Whisper base), which makes the step bound by
/// memory bandwidth; f16 halves the bytes. Rounding a key or value to f16 changes a score by
/// about 1e-3 relative.
#[derive(Debug, Clone)]
pub struct HalfKv {
    kt: Vec<u16>,
    v: Vec<u16>,
    t_k: usize,
    tkp: usize,
    heads: usize,
    dh: usize,
}

impl HalfKv {
    /// Store `t_k` keys and values of `heads` heads of width `dh`.
    ///
    /// # Panics
    /// If `k` or `v` is shorter than `t_k` rows of `heads · dh` values (a caller's bug).
    pub fn new(k: HeadView<'_>, v: HeadView<'_>, t_k: usize, heads: usize, dh: usize) -> HalfKv {
        assert!(
            k.fits(t_k, heads, dh) && v.fits(t_k, heads, dh),
            "HalfKv::new: inputs shorter than {t_k}×{heads}×{dh}"
        );
        let tkp = t_k.div_ceil(KEY_PAD) * KEY_PAD;
        let bits = |x: f32| half::f16::from_f32(x).to_bits();
        let mut kt = vec![0u16; heads * dh * tkp];
        kt.par_chunks_mut((dh * tkp).max(1)).enumerate().for_each(|(h, kh)| {
            for j in 0..t_k {
                for (e, &x) in k.row(j, h, dh).iter().enumerate() {
                    kh[e * tkp + j] = bits(x);
                }
            }
        });
        let mut vs = vec![0u16; heads * t_k * dh];
        vs.par_chunks_mut((t_k * dh).max(1)).enumerate().for_each(|(h, vh)| {
            for (j, row) in vh.chunks_exact_mut(dh.max(1)).enumerate() {
                for (o, &x) in row.iter_mut().zip(v.row(j, h, dh)) {
                    *o = bits(x);
                }
            }
        });
        HalfKv { kt, v: vs, t_k, tkp, heads, dh }
    }

    /// Keys.
    pub fn len(&self) -> usize {
        self.t_k
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.t_k == 0
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        2 * (self.kt.len() + self.v.len())
    }
}

/// Attention of `t_q` queries over a [`HalfKv`] (decoder cross-attention): `out` is
/// `t_q × heads·dh`. Work is split by head.
pub fn attention_half(
    isa: Isa,
    q: HeadView<'_>,
    kv: &HalfKv,
    t_q: usize,
    scale: f32,
    out: &mut [f32],
) -> Result<(), ShapeError> {
    let (t_k, heads, dh, tkp) = (kv.t_k, kv.heads, kv.dh, kv.tkp);
    let d = heads * dh;
    if !q.fits(t_q, heads, dh) || out.len() != t_q * d {
        return Err(ShapeError {
            detail: format!("queries or output too short for {t_q}×{heads}×{dh}"),
        });
    }
    if t_q == 0 || d == 0 {
        return Ok(());
    }
    if t_k == 0 {
        out.fill(0.0);
        return Ok(());
    }
    let isa = if isa.supported() { isa.vector() } else { Isa::Scalar };
    let parts: Vec<Vec<f32>> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let kt = &kv.kt[h * dh * tkp..(h + 1) * dh * tkp];
            let v = &kv.v[h * t_k * dh..(h + 1) * t_k * dh];
            let qh: Vec<f32> =
                (0..t_q).flat_map(|i| q.row(i, h, dh).iter().map(|&x| x * scale)).collect();
            let mut o = vec![0f32; t_q * dh];
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: only paths the CPU supports reach here.
                Isa::Avx512 if dh == HEAD_DIM => unsafe {
                    half_head_avx512(&qh, kt, v, t_q, t_k, tkp, &mut o)
                },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Isa::Avx2 if dh == HEAD_DIM => unsafe {
                    half_head_avx2(&qh, kt, v, t_q, t_k, tkp, &mut o)
                },
                _ => half_head_portable(&qh, kt, v, t_q, t_k, tkp, dh, &mut o),
            }
            o
        })
        .collect();
    for (h, part) in parts.iter().enumerate() {
        for (i, src) in part.chunks_exact(dh).enumerate() {
            out[i * d + h * dh..i * d + (h + 1) * dh].copy_from_slice(src);
        }
    }
    Ok(())
}

/// Pre-softmax scores `q·kᵀ·scale` over a [`HalfKv`], `[head][query][key]` (word alignment).
pub fn scores_half(
    q: HeadView<'_>,
    kv: &HalfKv,
    t_q: usize,
    scale: f32,
) -> Result<Vec<f32>, ShapeError> {
    let (t_k, tkp, dh) = (kv.t_k, kv.tkp, kv.dh);
    if !q.fits(t_q, kv.heads, dh) {
        return Err(ShapeError {
            detail: format!("queries too short for {t_q}×{}×{dh}", kv.heads),
        });
    }
    let mut out = vec![0f32; kv.heads * t_q * t_k];
    for (h, oh) in out.chunks_exact_mut((t_q * t_k).max(1)).enumerate().take(kv.heads) {
        let khead = &kv.kt[h * dh * tkp..(h + 1) * dh * tkp];
        for (i, row) in oh.chunks_exact_mut(t_k.max(1)).enumerate().take(t_q) {
            for (e, &qe) in q.row(i, h, dh).iter().enumerate() {
                let qe = qe * scale;
                for (o, &k) in row.iter_mut().zip(&khead[e * tkp..e * tkp + t_k]) {
                    *o += qe * half::f16::from_bits(k).to_f32();
                }
            }
        }
    }
    Ok(out)
}

/// One head of [`attention_half`], portable: `q` pre-scaled `[t_q][dh]`, `out` `[t_q][dh]`.
#[allow(clippy::too_many_arguments)] // one head's operands
fn half_head_portable(
    q: &[f32],
    kt: &[u16],
    v: &[u16],
    t_q: usize,
    t_k: usize,
    tkp: usize,
    dh: usize,
    out: &mut [f32],
) {
    let mut s = vec![0f32; t_k];
    for i in 0..t_q {
        s.fill(0.0);
        for (e, &qe) in q[i * dh..(i + 1) * dh].iter().enumerate() {
            for (o, &k) in s.iter_mut().zip(&kt[e * tkp..e * tkp + t_k]) {
                *o += qe * half::f16::from_bits(k).to_f32();
            }
        }
        let inv = 1.0 / softmax_unnormalised(&mut s);
        let o = &mut out[i * dh..(i + 1) * dh];
        for (j, &p) in s.iter().enumerate() {
            for (x, &vv) in o.iter_mut().zip(&v[j * dh..(j + 1) * dh]) {
                *x += p * half::f16::from_bits(vv).to_f32();
            }
        }
        o.iter_mut().for_each(|x| *x *= inv);
    }
}

macro_rules! half_head {
    ($(#[$doc:meta])* $name:ident, $features:literal, $qb:expr, $pv_rows:expr, $scores:path, $softmax:path, $pv:path) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(q: &[f32], kt: &[u16], v: &[u16], t_q: usize, t_k: usize, tkp: usize, out: &mut [f32]) {
            const QB: usize = $qb;
            let dh = HEAD_DIM;
            let mut scores = vec![0f32; QB * tkp];
            let mut qb = vec![0f32; QB * dh];
            let mut i0 = 0;
            while i0 < t_q {
                let nb = (t_q - i0).min(QB);
                qb.fill(0.0);
                qb[..nb * dh].copy_from_slice(&q[i0 * dh..(i0 + nb) * dh]);
                // SAFETY: this function's features are enabled; the buffers have the sizes the
                // kernels take (QB rows of dh and tkp, tkp a multiple of 32, t_k rows of 64).
                unsafe {
                    $scores(&qb, kt, dh, tkp, &mut scores);
                    let mut inv = [0f32; QB];
                    for (i, s) in scores.chunks_exact_mut(tkp).take(nb).enumerate() {
                        inv[i] = 1.0 / $softmax(&mut s[..t_k]);
                    }
                    for r in (0..nb).step_by($pv_rows) {
                        let rows = (nb - r).min($pv_rows);
                        $pv(&scores[r * tkp..], tkp, rows, v, 0, dh, t_k, &mut out[(i0 + r) * dh..]);
                    }
                    for (i, o) in out[i0 * dh..(i0 + nb) * dh].chunks_exact_mut(dh).enumerate() {
                        o.iter_mut().for_each(|x| *x *= inv[i]);
                    }
                }
                i0 += nb;
            }
        }
    };
}

half_head!(
    /// AVX-512 head of [`attention_half`].
    half_head_avx512, "avx512f,avx512bw,avx512vl,fma,avx2", crate::x86::SCORE_ROWS_512, crate::x86::PV_ROWS_512,
    crate::x86::scores16_avx512, crate::x86::softmax_avx512, crate::x86::pv16_avx512
);
half_head!(
    /// AVX2 head of [`attention_half`].
    half_head_avx2, "avx2,fma,f16c", crate::x86::SCORE_ROWS_256, crate::x86::PV_ROWS_256,
    crate::x86::scores16_avx2, crate::x86::softmax_avx2, crate::x86::pv16_avx2
);

/// [`attention`] with the keys already transposed: `out` is `t_q × heads·dh`.
pub fn attention_kt(
    isa: Isa,
    q: HeadView<'_>,
    kt: &KeysT,
    v: HeadView<'_>,
    t_q: usize,
    scale: f32,
    out: &mut [f32],
) -> Result<(), ShapeError> {
    let (t_k, heads, dh) = (kt.t_k, kt.heads, kt.dh);
    let d = heads * dh;
    if !q.fits(t_q, heads, dh) || !v.fits(t_k, heads, dh) || out.len() != t_q * d {
        return Err(ShapeError {
            detail: format!(
                "inputs or output too short for {t_q} queries, {t_k} keys, {heads}×{dh}"
            ),
        });
    }
    if t_q == 0 || d == 0 {
        return Ok(());
    }
    if t_k == 0 {
        out.fill(0.0);
        return Ok(());
    }
    attention_rows(isa, q, kt, ValueRows::from(v, dh), t_q, scale, out);
    Ok(())
}

/// The shared body of [`attention`] and [`attention_kt`], shapes checked.
fn attention_rows(
    isa: Isa,
    q: HeadView<'_>,
    kt: &KeysT,
    v: ValueRows<'_>,
    t_q: usize,
    scale: f32,
    out: &mut [f32],
) {
    let (t_k, heads, dh) = (kt.t_k, kt.heads, kt.dh);
    let d = heads * dh;
    let isa = if isa.supported() { isa.vector() } else { Isa::Scalar };
    let run = |job: &Job<'_>, r0: usize, o: &mut [f32]| match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only paths the CPU supports reach here (checked above).
        Isa::Avx512 => unsafe { rows_avx512(job, r0, o) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { rows_avx2(job, r0, o) },
        _ => rows::<4, Plain>(job, r0, o),
    };
    let job = Job { q, v, kt: &kt.data, t_k, tkp: kt.tkp, dh, scale, head0: 0, n_heads: heads };
    if t_q >= ROWS_PER_TASK || heads == 1 {
        out.par_chunks_mut(ROWS_PER_TASK * d)
            .enumerate()
            .for_each(|(t, o)| run(&job, t * ROWS_PER_TASK, o));
    } else {
        // Few queries (decoder steps): one task per head, each into its own buffer.
        let parts: Vec<Vec<f32>> = (0..heads)
            .into_par_iter()
            .map(|h| {
                let mut o = vec![0f32; t_q * dh];
                run(&Job { head0: h, n_heads: 1, ..job }, 0, &mut o);
                o
            })
            .collect();
        for (h, part) in parts.iter().enumerate() {
            for (i, src) in part.chunks_exact(dh).enumerate() {
                out[i * d + h * dh..i * d + (h + 1) * dh].copy_from_slice(src);
            }
        }
    }
}

/// Where the values lie: key `j` of head `h` is `data[offset + j·row_stride + h·head_stride
/// ..][..dh]` (a [`HeadView`] has `head_stride = dh`; [`attention`]'s packed copy `t_k · dh`).
#[derive(Clone, Copy)]
struct ValueRows<'a> {
    data: &'a [f32],
    offset: usize,
    row_stride: usize,
    head_stride: usize,
}

impl<'a> ValueRows<'a> {
    fn from(v: HeadView<'a>, dh: usize) -> Self {
        ValueRows { data: v.data, offset: v.offset, row_stride: v.row_stride, head_stride: dh }
    }

    #[inline(always)]
    fn row(&self, j: usize, h: usize, dh: usize) -> &'a [f32] {
        let at = self.offset + j * self.row_stride + h * self.head_stride;
        &self.data[at..at + dh]
    }
}

/// One call's operands. A task computes heads `head0..head0 + n_heads` of its rows, into an
/// output whose rows hold `n_heads · dh` values.
#[derive(Clone, Copy)]
struct Job<'a> {
    q: HeadView<'a>,
    v: ValueRows<'a>,
    kt: &'a [f32],
    t_k: usize,
    tkp: usize,
    dh: usize,
    scale: f32,
    head0: usize,
    n_heads: usize,
}

/// Multiply-add as each path computes it.
trait Madd {
    fn madd(a: f32, b: f32, c: f32) -> f32;
}

struct Plain;
impl Madd for Plain {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

struct Fused;
impl Madd for Fused {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// A SIMD path: hand-written score, softmax and `p·v` micro-kernels for 64-wide heads (other
/// widths take the portable loops compiled for the same instruction set).
macro_rules! simd_rows {
    ($(#[$doc:meta])* $name:ident, $features:literal, $qb:expr, $pv_rows:expr, $scores:path, $softmax:path, $pv:path) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(job: &Job<'_>, r0: usize, out: &mut [f32]) {
            const QB: usize = $qb;
            if job.dh != HEAD_DIM {
                return rows::<QB, Fused>(job, r0, out);
            }
            let (dh, tkp, t_k) = (HEAD_DIM, job.tkp, job.t_k);
            let d = job.n_heads * dh;
            let n_rows = out.len() / d;
            let mut scores = vec![0f32; QB * tkp];
            let mut qb = vec![0f32; QB * dh];
            let mut acc = vec![0f32; QB * dh];
            for (oh, h) in (job.head0..job.head0 + job.n_heads).enumerate() {
                let kt = &job.kt[h * dh * tkp..(h + 1) * dh * tkp];
                let mut i0 = 0;
                while i0 < n_rows {
                    let nb = (n_rows - i0).min(QB);
                    qb.fill(0.0);
                    for i in 0..nb {
                        for (o, &x) in qb[i * dh..(i + 1) * dh].iter_mut().zip(job.q.row(r0 + i0 + i, h, dh)) {
                            *o = x * job.scale;
                        }
                    }
                    let mut inv = [0f32; QB];
                    // SAFETY: this function's features are enabled; the buffers have the sizes
                    // the kernels take (QB rows of dh and tkp, tkp a multiple of 32, v rows of
                    // 64 inside `v.data`).
                    unsafe {
                        $scores(&qb, kt, dh, tkp, &mut scores);
                        for (i, s) in scores.chunks_exact_mut(tkp).take(nb).enumerate() {
                            inv[i] = 1.0 / $softmax(&mut s[..t_k]);
                        }
                        for r in (0..nb).step_by($pv_rows) {
                            let v = job.v;
                            let rows = (nb - r).min($pv_rows);
                            $pv(&scores[r * tkp..], tkp, rows, v.data, v.offset + h * v.head_stride, v.row_stride, t_k, &mut acc[r * dh..]);
                        }
                    }
                    for i in 0..nb {
                        let o = &mut out[(i0 + i) * d + oh * dh..(i0 + i) * d + (oh + 1) * dh];
                        for (o, &a) in o.iter_mut().zip(&acc[i * dh..(i + 1) * dh]) {
                            *o = a * inv[i];
                        }
                    }
                    i0 += nb;
                }
            }
        }
    };
}

simd_rows!(
    /// AVX-512: 8 query rows per score block, 4 per `p·v` block.
    rows_avx512, "avx512f,avx512bw,avx512vl,fma,avx2", crate::x86::SCORE_ROWS_512, crate::x86::PV_ROWS_512,
    crate::x86::scores_avx512, crate::x86::softmax_avx512, crate::x86::pv_avx512
);
simd_rows!(
    /// AVX2: 6 query rows per score block, 2 per `p·v` block.
    rows_avx2, "avx2,fma", crate::x86::SCORE_ROWS_256, crate::x86::PV_ROWS_256,
    crate::x86::scores_avx2, crate::x86::softmax_avx2, crate::x86::pv_avx2
);

/// Output rows `r0..` (as many as `out` holds), every head, `QB` query rows at a time.
#[inline(always)]
fn rows<const QB: usize, M: Madd>(job: &Job<'_>, r0: usize, out: &mut [f32]) {
    let (dh, tkp) = (job.dh, job.tkp);
    let d = job.n_heads * dh;
    let n_rows = out.len() / d;
    let mut scores = vec![0f32; QB * tkp];
    let mut qb = vec![0f32; QB * dh];
    let mut acc = vec![0f32; QB * dh];
    for (oh, h) in (job.head0..job.head0 + job.n_heads).enumerate() {
        let kt = &job.kt[h * dh * tkp..(h + 1) * dh * tkp];
        let mut i0 = 0;
        while i0 < n_rows {
            let nb = (n_rows - i0).min(QB);
            qb.fill(0.0);
            for i in 0..nb {
                for (o, &x) in
                    qb[i * dh..(i + 1) * dh].iter_mut().zip(job.q.row(r0 + i0 + i, h, dh))
                {
                    *o = x * job.scale;
                }
            }
            score_block::<QB, M>(&qb, kt, dh, tkp, &mut scores);
            let mut inv = [0f32; QB];
            for (i, s) in scores.chunks_exact_mut(tkp).take(nb).enumerate() {
                inv[i] = 1.0 / softmax_unnormalised(&mut s[..job.t_k]);
            }
            if dh == HEAD_DIM {
                for r in (0..nb).step_by(PV_ROWS) {
                    pv_block::<M>(
                        job,
                        h,
                        &scores[r * tkp..],
                        tkp,
                        (nb - r).min(PV_ROWS),
                        &mut acc[r * dh..],
                    );
                }
            } else {
                acc.fill(0.0);
                for i in 0..nb {
                    let p = &scores[i * tkp..i * tkp + job.t_k];
                    let a = &mut acc[i * dh..(i + 1) * dh];
                    for (j, &pj) in p.iter().enumerate() {
                        for (o, &x) in a.iter_mut().zip(job.v.row(j, h, dh)) {
                            *o = M::madd(pj, x, *o);
                        }
                    }
                }
            }
            for i in 0..nb {
                let o = &mut out[(i0 + i) * d + oh * dh..(i0 + i) * d + (oh + 1) * dh];
                for (o, &a) in o.iter_mut().zip(&acc[i * dh..(i + 1) * dh]) {
                    *o = a * inv[i];
                }
            }
            i0 += nb;
        }
    }
}

/// `acc[i][..] = Σ_j p[i][j]·v_j` for `rows ≤ PV_ROWS` rows with 64-wide heads: every `v_j`
/// is loaded once for all the rows, which share it from registers.
#[inline(always)]
fn pv_block<M: Madd>(job: &Job<'_>, h: usize, p: &[f32], tkp: usize, rows: usize, acc: &mut [f32]) {
    let mut a = [[0f32; HEAD_DIM]; PV_ROWS];
    for j in 0..job.t_k {
        let vj: &[f32; HEAD_DIM] = match job.v.row(j, h, HEAD_DIM).try_into() {
            Ok(r) => r,
            Err(_) => return,
        };
        for (i, ai) in a.iter_mut().enumerate() {
            // Rows past `rows` read row 0's scores and are discarded: no branch in the loop.
            let pij = p[if i < rows { i } else { 0 } * tkp + j];
            for (o, &x) in ai.iter_mut().zip(vj) {
                *o = M::madd(pij, x, *o);
            }
        }
    }
    for (i, ai) in a.iter().enumerate().take(rows) {
        acc[i * HEAD_DIM..(i + 1) * HEAD_DIM].copy_from_slice(ai);
    }
}

/// `scores[i][j] = Σ_e qb[i][e]·kt[e][j]` for `QB` rows and every (padded) key.
#[inline(always)]
fn score_block<const QB: usize, M: Madd>(
    qb: &[f32],
    kt: &[f32],
    dh: usize,
    tkp: usize,
    scores: &mut [f32],
) {
    for j0 in (0..tkp).step_by(KEY_STEP) {
        let mut acc = [[0f32; KEY_STEP]; QB];
        for e in 0..dh {
            let kv: &[f32; KEY_STEP] =
                kt[e * tkp + j0..e * tkp + j0 + KEY_STEP].try_into().unwrap_or(&[0.0; KEY_STEP]);
            for (i, a) in acc.iter_mut().enumerate() {
                let qe = qb[i * dh + e];
                for (x, &kk) in a.iter_mut().zip(kv) {
                    *x = M::madd(qe, kk, *x);
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            scores[i * tkp + j0..i * tkp + j0 + KEY_STEP].copy_from_slice(a);
        }
    }
}

/// `s ← exp(s − max s)`, returning the sum.
#[inline(always)]
fn softmax_unnormalised(s: &mut [f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let chunks = s.chunks_exact(16);
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x > *l { x } else { *l };
        }
    }
    let max = lanes.iter().copied().fold(tail, f32::max);
    let mut sums = [0f32; 16];
    let mut chunks = s.chunks_exact_mut(16);
    for c in &mut chunks {
        for (x, acc) in c.iter_mut().zip(sums.iter_mut()) {
            *x = exp(*x - max);
            *acc += *x;
        }
    }
    let mut total: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        total += *x;
    }
    total
}

/// `exp(x)` for `x ≤ 0` (clamped at −87): range reduction to `2ⁿ·e^y`, `|y| ≤ ln 2 / 2`, and a
/// degree-6 Taylor polynomial; branch-free so it vectorises.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E;
    const MAGIC: f32 = 12_582_912.0;
    let big = t + MAGIC;
    let n = big - MAGIC;
    // `n` as an integer from the bits of `big`: `n as i32` is a saturating cast, which does
    // not vectorise (GELU, which calls this, ran one lane at a time).
    let ni = big.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let y = (t - n) * std::f32::consts::LN_2;
    let p = 1.0
        + y * (1.0
            + y * (0.5
                + y * (1.0 / 6.0 + y * (1.0 / 24.0 + y * (1.0 / 120.0 + y * (1.0 / 720.0))))));
    p * f32::from_bits(((ni + 127) as u32) << 23)
}

/// The definition, computed naively with the standard library's `exp`: what the tests compare
/// every path against.
#[allow(clippy::too_many_arguments)] // mirrors `attention`
pub fn reference(
    q: HeadView<'_>,
    k: HeadView<'_>,
    v: HeadView<'_>,
    t_q: usize,
    t_k: usize,
    heads: usize,
    dh: usize,
    scale: f32,
) -> Vec<f32> {
    let d = heads * dh;
    let mut out = vec![0f32; t_q * d];
    for h in 0..heads {
        for i in 0..t_q {
            let s: Vec<f32> = (0..t_k)
                .map(|j| {
                    q.row(i, h, dh).iter().zip(k.row(j, h, dh)).map(|(a, b)| a * b).sum::<f32>()
                        * scale
                })
                .collect();
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            for (j, &p) in e.iter().enumerate() {
                for (o, &x) in
                    out[i * d + h * dh..i * d + (h + 1) * dh].iter_mut().zip(v.row(j, h, dh))
                {
                    *o += p / sum * x;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_on_the_softmax_range() {
        for i in 0..10_000 {
            let x = -(i as f32) * 0.008;
            let (a, b) = (exp(x), x.exp());
            assert!((a - b).abs() <= 5e-6 * b + 1e-38, "{x}: {a} vs {b}");
        }
    }
}

//! Every kernel path this machine can run, against the plain reference.

use harken_kernels::Isa;
use harken_kernels::attention::{self, HeadView};
use harken_kernels::int8::{self, PackedMatrix};

fn data(len: usize, seed: f32) -> Vec<f32> {
    (0..len).map(|i| ((i as f32 * 0.7311 + seed).sin() * 1.7).powi(3)).collect()
}

#[test]
fn the_test_machine_runs_more_than_the_reference() {
    // Not a correctness check: it says in the test log which paths the other tests covered.
    eprintln!("runnable paths: {:?}; detected: {}", Isa::runnable(), Isa::detect());
    assert!(Isa::runnable().contains(&Isa::Scalar));
}

#[test]
fn int8_paths_are_bit_identical_to_the_scalar_reference() {
    // Shapes: partial panels (n % 16 ≠ 0), k not a multiple of 4, both splits (m < 64, m ≥ 64),
    // odd tile tails; AMX: whole 16-row tiles read in place (k a multiple of 64), row tiles in
    // pairs and alone, a partial last k step.
    for &(m, n, k) in &[
        (128, 48, 512),
        (160, 17, 256),
        (5, 100, 512),
        (40, 33, 200),
        (1, 16, 4),
        (5, 37, 70),
        (3, 300, 64),
        (63, 33, 130),
        (64, 16, 8),
        (131, 50, 96),
        (200, 129, 384),
    ] {
        let (x, w) = (data(m * k, 0.3 + m as f32), data(n * k, 1.1 + n as f32));
        let bias = data(n, 2.0);
        let p = PackedMatrix::quantize(&w, n, k).unwrap();
        for b in [None, Some(bias.as_slice())] {
            let mut want = vec![0f32; m * n];
            int8::matmul(Isa::Scalar, &x, m, p.view(), b, &mut want).unwrap();
            let mut want_gelu = vec![0f32; m * n];
            int8::matmul_act(
                Isa::Scalar,
                &x,
                m,
                p.view(),
                b,
                int8::Activation::Gelu,
                &mut want_gelu,
            )
            .unwrap();
            for (g, w) in want_gelu.iter().zip(&want) {
                assert_eq!(g.to_bits(), harken_kernels::gelu(*w).to_bits());
            }
            for isa in Isa::runnable() {
                let mut got = vec![f32::NAN; m * n];
                int8::matmul(isa, &x, m, p.view(), b, &mut got).unwrap();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits(),
                        "{isa} {m}×{n}×{k} bias={} at {i}: {g} vs {w}",
                        b.is_some()
                    );
                }
                int8::matmul_act(isa, &x, m, p.view(), b, int8::Activation::Gelu, &mut got)
                    .unwrap();
                for (i, (g, w)) in got.iter().zip(&want_gelu).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits(),
                        "{isa} gelu {m}×{n}×{k} at {i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

#[test]
fn int8_saturating_inputs_stay_exact() {
    // Every activation and weight at ±127: the worst case for 16-bit intermediate sums.
    let (m, n, k) = (3, 16, 512);
    let x: Vec<f32> = (0..m * k).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
    let w: Vec<f32> = (0..n * k).map(|i| if i % 5 == 0 { -1.0 } else { 1.0 }).collect();
    let p = PackedMatrix::quantize(&w, n, k).unwrap();
    let mut want = vec![0f32; m * n];
    int8::matmul(Isa::Scalar, &x, m, p.view(), None, &mut want).unwrap();
    for r in 0..m {
        for c in 0..n {
            let exact: f32 = (0..k).map(|t| x[r * k + t] * w[c * k + t]).sum();
            assert!((want[r * n + c] - exact).abs() < 1e-3, "{} vs {exact}", want[r * n + c]);
        }
    }
    for isa in Isa::runnable() {
        let mut got = vec![0f32; m * n];
        int8::matmul(isa, &x, m, p.view(), None, &mut got).unwrap();
        assert_eq!(got, want, "{isa}");
    }
}

#[test]
fn attention_paths_match_the_reference() {
    for &(t, heads, dh) in
        &[(1, 1, 64), (7, 2, 64), (45, 3, 64), (100, 2, 32), (70, 1, 8), (333, 6, 64), (64, 2, 64)]
    {
        let d = heads * dh;
        let qkv = data(t * 3 * d, t as f32);
        let view = |off| HeadView { data: &qkv, offset: off, row_stride: 3 * d };
        let (q, k, v) = (view(0), view(d), view(2 * d));
        let scale = 1.0 / (dh as f32).sqrt();
        let want = attention::reference(q, k, v, t, t, heads, dh, scale);
        for isa in Isa::runnable() {
            let mut got = vec![f32::NAN; t * d];
            attention::attention(isa, q, k, v, t, t, heads, dh, scale, &mut got).unwrap();
            if isa == Isa::Amx && dh == 64 && t >= 16 {
                // bf16 tiles: operands carry 8 significant bits, so the error scales with the
                // size of the values mixed, not of each output; a wrong layout or mask would be
                // off by the values' whole magnitude.
                let amax = want.iter().fold(0f32, |a, w| a.max(w.abs()));
                let worst = got.iter().zip(&want).fold(0f32, |a, (g, w)| a.max((g - w).abs()));
                eprintln!("amx bf16 attention t={t} h={heads}: worst error {worst:e} of {amax:e}");
                assert!(worst <= 0.02 * amax, "{isa} t={t} h={heads}: {worst} of {amax}");
                continue;
            }
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 2e-5 * (1.0 + w.abs()),
                    "{isa} t={t} h={heads} dh={dh} at {i}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn attention_rejects_short_buffers() {
    let qkv = vec![0f32; 9];
    let view = HeadView { data: &qkv, offset: 0, row_stride: 3 };
    let mut out = vec![0f32; 4];
    assert!(
        attention::attention(Isa::Scalar, view, view, view, 4, 4, 1, 1, 1.0, &mut out).is_err()
    );
}

#[test]
fn cross_attention_with_prepared_keys_matches_the_reference() {
    // Few queries (beams) against many keys, as in the decoder, keys transposed once.
    let (t_q, t_k, heads, dh) = (5, 301, 4, 64);
    let d = heads * dh;
    let q = data(t_q * d, 0.5);
    let kv = data(t_k * 2 * d, 1.5);
    let qv = HeadView { data: &q, offset: 0, row_stride: d };
    let kview = HeadView { data: &kv, offset: 0, row_stride: 2 * d };
    let vview = HeadView { data: &kv, offset: d, row_stride: 2 * d };
    let want = attention::reference(qv, kview, vview, t_q, t_k, heads, dh, 0.125);
    let kt = attention::KeysT::new(kview, t_k, heads, dh);
    assert_eq!(kt.len(), t_k);
    for isa in Isa::runnable() {
        let mut got = vec![f32::NAN; t_q * d];
        attention::attention_kt(isa, qv, &kt, vview, t_q, 0.125, &mut got).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 2e-5 * (1.0 + w.abs()), "{isa} at {i}: {g} vs {w}");
        }
    }
}

#[test]
fn half_precision_cross_attention_matches_the_reference() {
    // Few queries against many keys stored in f16: the reference sees the same f16-rounded keys
    // and values, so the paths differ by f32 rounding only.
    let round =
        |v: Vec<f32>| -> Vec<f32> { v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect() };
    for &(t_q, t_k, heads, dh) in
        &[(5, 301, 4, 64), (1, 40, 2, 64), (14, 77, 3, 64), (3, 50, 2, 16)]
    {
        let d = heads * dh;
        let q = data(t_q * d, 0.25);
        let kv = round(data(t_k * 2 * d, 2.5));
        let qv = HeadView { data: &q, offset: 0, row_stride: d };
        let kview = HeadView { data: &kv, offset: 0, row_stride: 2 * d };
        let vview = HeadView { data: &kv, offset: d, row_stride: 2 * d };
        let want = attention::reference(qv, kview, vview, t_q, t_k, heads, dh, 0.125);
        let store = attention::HalfKv::new(kview, vview, t_k, heads, dh);
        assert_eq!(
            (store.len(), store.bytes()),
            (t_k, 2 * heads * dh * (t_k.div_ceil(32) * 32 + t_k))
        );
        for isa in Isa::runnable() {
            let mut got = vec![f32::NAN; t_q * d];
            attention::attention_half(isa, qv, &store, t_q, 0.125, &mut got).unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 2e-5 * (1.0 + w.abs()),
                    "{isa} {t_q}×{t_k} at {i}: {g} vs {w}"
                );
            }
        }
        let s = attention::scores_half(qv, &store, t_q, 0.125).unwrap();
        let direct: f32 = (0..dh).map(|e| q[e] * kv[e]).sum::<f32>() * 0.125;
        assert!((s[0] - direct).abs() < 1e-4, "{} vs {direct}", s[0]);
    }
}

/// TFLite's hybrid fully-connected layer, written out plainly: each row of `x` quantized with
/// `x · 127 / max` rounded as TFLite's x86 build rounds (`trunc(v ± 0.5)` in blocks of 8, half
/// away from zero in the tail), exact integer dot products with the int8 weights, then
/// `bias + acc · (s_x · s_w)`.
fn tflite_hybrid_reference(
    x: &[f32],
    m: usize,
    q: &[i8],
    scale: f32,
    n: usize,
    k: usize,
    bias: &[f32],
) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    for r in 0..m {
        let row = &x[r * k..(r + 1) * k];
        let max = row.iter().fold(0f32, |a, v| a.max(v.abs()));
        let (sx, inv) = if max > 0.0 { (max / 127.0, 127.0 / max) } else { (1.0, 0.0) };
        let blocks = k / 8 * 8;
        let xq: Vec<i32> = row
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let x = v * inv;
                let q = if i < blocks { (x + 0.5f32.copysign(x)).trunc() } else { x.round() };
                q.clamp(-127.0, 127.0) as i32
            })
            .collect();
        for c in 0..n {
            let acc: i32 = (0..k).map(|t| xq[t] * i32::from(q[c * k + t])).sum();
            y[r * n + c] = bias[c] + acc as f32 * (sx * scale);
        }
    }
    y
}

#[test]
fn tflite_hybrid_product_is_bit_identical_to_the_plain_rule_on_every_path() {
    // Shapes of a DeepSpeech model in miniature: a batch of frames, one LSTM step (m = 1),
    // k not a multiple of the group, n not a multiple of the panel, and ties (x = ±0.5 steps).
    for &(m, n, k) in &[(16usize, 70usize, 494usize), (1, 130, 96), (3, 17, 5)] {
        let mut x = data(m * k, 0.9);
        x[0] = 0.0;
        if k > 3 {
            // 127/max · x lands exactly on .5 for these: rounding direction matters.
            let max = x[..k].iter().fold(0f32, |a, v| a.max(v.abs()));
            x[1] = max * 0.5 / 127.0;
            x[2] = -max * 2.5 / 127.0;
        }
        let q: Vec<i8> =
            (0..n * k).map(|i| ((i * 37 + 11) % 255) as i16 as i8).map(|v| v.max(-127)).collect();
        let scale = 0.0123f32;
        let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 0.3).collect();
        let want = tflite_hybrid_reference(&x, m, &q, scale, n, k, &bias);
        let p = PackedMatrix::from_int8(&q, &vec![scale; n], n, k).unwrap();
        for isa in Isa::runnable() {
            let mut y = vec![0f32; m * n];
            int8::matmul_tflite(isa, &x, m, p.view(), Some(&bias), &mut y).unwrap();
            assert_eq!(y, want, "{isa} {m}×{n}×{k}");
        }
    }
    // An all-zero row gives the bias.
    let p = PackedMatrix::from_int8(&[1, 2, 3, 4], &[0.5, 0.5], 2, 2).unwrap();
    let mut y = vec![9f32; 2];
    int8::matmul_tflite(Isa::Scalar, &[0.0, 0.0], 1, p.view(), Some(&[0.25, -1.0]), &mut y)
        .unwrap();
    assert_eq!(y, [0.25, -1.0]);
}

#[test]
fn split_rows_add_up_to_the_whole_tflite_product_on_every_path() {
    // An LSTM step: the row is [x, h]; the halves multiplied separately with the whole row's
    // range, their accumulators added, must give matmul_tflite's result bit for bit — with x
    // holding the row's largest value, with h holding it, and with a zero x.
    let (n, k1, k2) = (70usize, 96usize, 40usize);
    let k = k1 + k2;
    let q: Vec<i8> =
        (0..n * k).map(|i| ((i * 53 + 7) % 255) as i16 as i8).map(|v| v.max(-127)).collect();
    let q1: Vec<i8> = q.chunks(k).flat_map(|r| r[..k1].to_vec()).collect();
    let q2: Vec<i8> = q.chunks(k).flat_map(|r| r[k1..].to_vec()).collect();
    let scales: Vec<f32> = (0..n).map(|i| 0.01 + i as f32 * 1e-4).collect();
    let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.02 - 0.5).collect();
    let whole = PackedMatrix::from_int8(&q, &scales, n, k).unwrap();
    let (p1, p2) = (
        PackedMatrix::from_int8_columns(&q, &scales, n, k, 0..k1).unwrap(),
        PackedMatrix::from_int8_columns(&q, &scales, n, k, k1..k).unwrap(),
    );
    // Packing columns of the whole matrix equals packing the columns copied out.
    let copied = PackedMatrix::from_int8(&q2, &scales, n, k2).unwrap();
    assert_eq!(p2.view().data(), copied.view().data());
    assert_eq!(
        p1.view().data(),
        PackedMatrix::from_int8(&q1, &scales, n, k1).unwrap().view().data()
    );
    assert!(PackedMatrix::from_int8_columns(&q, &scales, n, k, k..k + 1).is_err());
    assert!(PackedMatrix::from_int8_columns(&q, &scales, n, k, 3..3).is_err());
    let m = 3;
    let mut x = data(m * k, 0.3);
    for v in &mut x[k..k + k1] {
        *v *= 0.01; // row 1: h holds the largest magnitude
    }
    for v in &mut x[2 * k..2 * k + k1] {
        *v = 0.0; // row 2: x is silent
    }
    for isa in Isa::runnable() {
        let mut want = vec![0f32; m * n];
        int8::matmul_tflite(isa, &x, m, whole.view(), Some(&bias), &mut want).unwrap();
        let ranges: Vec<f32> =
            x.chunks(k).map(|r| r.iter().fold(0f32, |a, v| a.max(v.abs()))).collect();
        let x1: Vec<f32> = x.chunks(k).flat_map(|r| r[..k1].to_vec()).collect();
        let x2: Vec<f32> = x.chunks(k).flat_map(|r| r[k1..].to_vec()).collect();
        let (mut a1, mut a2) = (vec![0i32; m * n], vec![0i32; m * n]);
        let (mut s1, mut s2) = (vec![0f32; m], vec![0f32; m]);
        int8::matmul_tflite_acc(isa, &x1, m, &ranges, p1.view(), &mut a1, &mut s1).unwrap();
        int8::matmul_tflite_acc(isa, &x2, m, &ranges, p2.view(), &mut a2, &mut s2).unwrap();
        assert_eq!(s1, s2);
        let got: Vec<f32> = (0..m * n)
            .map(|i| (a1[i] + a2[i]) as f32 * (s1[i / n] * scales[i % n]) + bias[i % n])
            .collect();
        assert_eq!(got, want, "{isa}");
    }
    // Shapes are checked.
    let mut acc = vec![0i32; 5];
    let e =
        int8::matmul_tflite_acc(Isa::Scalar, &x[..k1], 1, &[1.0], p1.view(), &mut acc, &mut [0.0]);
    assert!(e.is_err());
}

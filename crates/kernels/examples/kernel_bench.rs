//! Times the kernels on Whisper base's encoder shapes, on every path this CPU runs.
//!
//! Run with: cargo run --release -p harken-kernels --example kernel_bench

#![allow(clippy::unwrap_used)] // a benchmark: a failed call should stop it loudly

use std::time::Instant;

use harken_kernels::Isa;
use harken_kernels::attention::{self, HeadView};
use harken_kernels::int8::{self, PackedMatrix};

fn best(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let (t, d, heads) = (1500, 512, 8);
    let data = |len: usize, s: f32| -> Vec<f32> {
        (0..len).map(|i| (i as f32 * 0.7311 + s).sin()).collect()
    };
    let qkv = data(t * 3 * d, 0.0);
    let view = |off| HeadView { data: &qkv, offset: off, row_stride: 3 * d };
    let mut out = vec![0f32; t * d];
    let flops = 4.0 * (t * t * d) as f64;
    for isa in Isa::runnable() {
        let s = best(3, || {
            attention::attention(
                isa,
                view(0),
                view(d),
                view(2 * d),
                t,
                t,
                heads,
                64,
                0.125,
                &mut out,
            )
            .unwrap();
        });
        println!(
            "attention {t}×{t}×{heads}×64  {isa:7} {:7.2} ms  {:6.1} GFLOP/s",
            s * 1e3,
            flops / s / 1e9
        );
    }
    for &(m, n, k) in
        &[(1500, 2048, 512), (1500, 1536, 512), (1500, 512, 2048), (5, 51865, 512), (5, 2048, 512)]
    {
        let x = data(m * k, 0.1);
        let w = PackedMatrix::quantize(&data(n * k, 0.3), n, k).unwrap();
        let mut y = vec![0f32; m * n];
        let ops = 2.0 * (m * n * k) as f64;
        for isa in Isa::runnable() {
            let s = best(5, || int8::matmul(isa, &x, m, w.view(), None, &mut y).unwrap());
            println!(
                "int8 {m:5}×{n:5}×{k:5}  {isa:7} {:7.3} ms  {:7.1} GOP/s",
                s * 1e3,
                ops / s / 1e9
            );
        }
    }
}

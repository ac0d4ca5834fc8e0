//! The CPU kernels Harken's models spend their time in, with the choice of instruction set made
//! once, at run time.
//!
//! Brief overview: [`Isa`] names a kernel path; [`Isa::detect`] finds the best one this CPU can
//! run and [`Isa::select`] checks a requested one (the `HARKEN_CPU` switch the binaries read).
//! [`int8`] holds the 8-bit weight format ([`int8::PackedMatrix`], [`int8::PackedRef`]) and the
//! dynamic-quantization matrix product; [`attention`] the fused softmax attention. Paths: scalar
//! (the reference), AVX2, AVX-512 VNNI, and AMX (int8 tiles for the products, bf16 tiles for
//! the encoder's self-attention; `amx` module). Every path is checked against the plain scalar
//! reference in this crate's tests, on every path the test machine can execute: bit for bit for
//! the int8 products, within rounding for attention (bf16's 8 significant bits on AMX).
//!
//! Pure computation: slices in, slices out, no tensor types, no I/O, no environment. Threads come
//! from rayon's global pool, which the binaries size. Model code passes an [`Isa`] it chose at
//! load and never branches on the instruction set itself.
//!
//! Why hand-written: the crates that were measured do not do the job at this speed. candle 0.11
//! quantizes activations into 32-value blocks (Q8_0) with an f32 scale each and runs a dot
//! product per output element; the `gemm` crate has no int8 path. See `docs/performance.md`.

#![allow(unsafe_code)] // SIMD intrinsics; every unsafe block states the bounds it relies on

mod act;
#[cfg(target_arch = "x86_64")]
mod amx;
pub mod attention;
mod cpu;
pub mod int8;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use act::gelu;
pub use attention::exp;
pub use cpu::{CpuReport, Error, Isa};

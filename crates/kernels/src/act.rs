//! Elementwise activations applied to a block of a product while it is in cache.
//!
//! One portable source compiled once per path (`#[target_feature]` copies of an
//! `#[inline(always)]` loop): the compiler vectorises it to the path's width without fusing
//! multiply-adds, so every path computes bit-identical values.

use crate::Isa;
use crate::int8::Activation;

/// Apply `act` to every value of `v`.
pub(crate) fn apply(isa: Isa, act: Activation, v: &mut [f32]) {
    if act == Activation::Identity {
        return;
    }
    match isa.vector() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: callers pass only paths the CPU supports.
        Isa::Avx512 => unsafe { gelu_avx512(v) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { gelu_avx2(v) },
        _ => gelu_slice(v),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn gelu_avx512(v: &mut [f32]) {
    gelu_slice(v);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(v: &mut [f32]) {
    gelu_slice(v);
}

#[inline(always)]
fn gelu_slice(v: &mut [f32]) {
    for x in v.iter_mut() {
        *x = gelu(*x);
    }
}

/// `x·Φ(x)` with erf from Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let erf = (1.0 - poly * crate::attention::exp(-a * a)).copysign(z);
    0.5 * x * (1.0 + erf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn gelu_matches_its_definition() {
        for i in -600..600 {
            let x = i as f32 * 0.01;
            // Φ(x) from the complementary error function of the standard library's f64 math.
            let want =
                0.5 * f64::from(x) * (1.0 + libm_erf(f64::from(x) / std::f64::consts::SQRT_2));
            assert!((f64::from(super::gelu(x)) - want).abs() < 2e-6, "{x}");
        }
    }

    /// erf by its Taylor series (converges well for |z| < 5), as an independent reference.
    fn libm_erf(z: f64) -> f64 {
        let (mut term, mut sum) = (z, z);
        for n in 1..200 {
            term *= -z * z / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}

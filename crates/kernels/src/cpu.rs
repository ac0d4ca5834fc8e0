//! Instruction-set detection and selection: which kernel path a process runs.

use std::fmt;

/// A kernel path, from the plainest to the fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust, no SIMD intrinsics: the reference every other path is tested against.
    Scalar,
    /// AVX2 + FMA + F16C (Haswell and later; the floor AWS Lambda x86_64 documents).
    Avx2,
    /// AVX-512 F/BW/VL with VNNI (Ice Lake, Cascade Lake, Sapphire Rapids, Zen 4).
    Avx512,
    /// AVX-512 as above plus AMX tiles with int8 (Sapphire Rapids and later: ml.m7i/c7i): the
    /// int8 products run on `tdpbusd`, long self-attention on bf16 tiles (`tdpbf16ps`, when
    /// the CPU has AMX-BF16), everything else on the AVX-512 kernels.
    Amx,
}

/// Why a requested path cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name is not one of `auto`, `amx`, `avx512`, `avx2`, `scalar`.
    #[error("unknown CPU path {name:?}: expected auto, amx, avx512, avx2 or scalar")]
    UnknownName {
        /// The name given.
        name: String,
    },
    /// The CPU lacks a feature the path needs.
    #[error("CPU path {isa} needs {missing}, which this CPU does not report")]
    Unsupported {
        /// The requested path.
        isa: Isa,
        /// The missing feature(s).
        missing: &'static str,
    },
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Isa {
    /// Every path, plainest first.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Amx];

    /// The name `HARKEN_CPU` and `harken bench --json` use.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Amx => "amx",
        }
    }

    /// The path of the vector kernels (attention, activations) that run beside this path's
    /// int8 products: AMX has tiles only for the products.
    pub(crate) fn vector(self) -> Isa {
        match self {
            Isa::Amx => Isa::Avx512,
            isa => isa,
        }
    }

    /// Whether this CPU can run the path. Probed once per process: every product asks, and
    /// CPUID traps to the hypervisor on a virtual machine.
    pub fn supported(self) -> bool {
        static PROBED: std::sync::OnceLock<[bool; Isa::ALL.len()]> = std::sync::OnceLock::new();
        PROBED.get_or_init(|| Isa::ALL.map(|isa| isa.missing().is_none()))[self as usize]
    }

    fn missing(self) -> Option<&'static str> {
        match self {
            Isa::Scalar => None,
            Isa::Avx2 => (!has_avx2()).then_some("avx2, fma and f16c"),
            Isa::Avx512 => (!has_avx512()).then_some("avx512f, avx512bw, avx512vl and avx512vnni"),
            Isa::Amx => (!has_amx()).then_some(
                "avx512 and amx-tile + amx-int8 with the kernel's permission to use tile data",
            ),
        }
    }

    /// The fastest path this CPU runs.
    pub fn detect() -> Isa {
        Isa::ALL.into_iter().rev().find(|i| i.supported()).unwrap_or(Isa::Scalar)
    }

    /// The path for a `HARKEN_CPU` value: `auto` (or empty) detects; a named path must be
    /// supported by this CPU.
    pub fn select(name: &str) -> Result<Isa, Error> {
        let isa = match name.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => return Ok(Isa::detect()),
            "scalar" => Isa::Scalar,
            "avx2" => Isa::Avx2,
            "avx512" => Isa::Avx512,
            "amx" => Isa::Amx,
            _ => return Err(Error::UnknownName { name: name.to_owned() }),
        };
        match isa.missing() {
            None => Ok(isa),
            Some(missing) => Err(Error::Unsupported { isa, missing }),
        }
    }

    /// Every path this CPU can run, plainest first (what the tests iterate over).
    pub fn runnable() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.supported()).collect()
    }
}

/// What the CPU reports, for the start-up log line and `harken bench --json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuReport {
    /// Feature flags relevant to the kernels that the CPU reports, in a fixed order.
    pub features: Vec<&'static str>,
}

impl CpuReport {
    /// Probe the CPU.
    pub fn probe() -> CpuReport {
        let mut features = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            macro_rules! probe {
                ($($f:tt),*) => {$(
                    if std::is_x86_feature_detected!($f) { features.push($f); }
                )*};
            }
            probe!(
                "avx2",
                "fma",
                "f16c",
                "avx512f",
                "avx512bw",
                "avx512vl",
                "avx512vnni",
                "avx512bf16",
                "avx512fp16",
                "avxvnni"
            );
            let (tile, int8, bf16) = amx_bits();
            if tile {
                features.push("amx-tile");
            }
            if int8 {
                features.push("amx-int8");
            }
            if bf16 {
                features.push("amx-bf16");
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                features.push("dotprod");
            }
        }
        CpuReport { features }
    }
}

impl fmt::Display for CpuReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.features.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&self.features.join(" "))
    }
}

/// AMX tile, int8 and bf16 bits of CPUID leaf 7 (EDX 24, 25, 22).
#[cfg(target_arch = "x86_64")]
fn amx_bits() -> (bool, bool, bool) {
    // SAFETY: CPUID is available on every x86-64 CPU; leaf 7 exists when the max leaf is ≥ 7.
    let max = std::arch::x86_64::__cpuid(0).eax;
    if max < 7 {
        return (false, false, false);
    }
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    (edx & (1 << 24) != 0, edx & (1 << 25) != 0, edx & (1 << 22) != 0)
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AMX path also has bf16 tiles (its self-attention kernel); cached like
/// [`Isa::supported`].
pub(crate) fn amx_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static BF16: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *BF16.get_or_init(|| Isa::Amx.supported() && amx_bits().2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn has_amx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let (tile, int8, _) = amx_bits();
        // Linux gives a process the large tile state only on request; asked once, the answer
        // holds for every thread of the process.
        static GRANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        has_avx512() && tile && int8 && *GRANTED.get_or_init(crate::amx::request_permission)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_parses_names_and_refuses_unknown_ones() {
        assert_eq!(Isa::select("scalar").unwrap(), Isa::Scalar);
        assert_eq!(Isa::select("auto").unwrap(), Isa::detect());
        assert_eq!(Isa::select("").unwrap(), Isa::detect());
        assert!(matches!(Isa::select("sse9"), Err(Error::UnknownName { .. })));
        for isa in Isa::ALL {
            assert_eq!(Isa::select(isa.name()).is_ok(), isa.supported(), "{isa}");
        }
    }

    #[test]
    fn detect_picks_a_runnable_path() {
        let best = Isa::detect();
        assert!(best.supported());
        assert!(Isa::runnable().iter().all(|&i| i <= best));
    }
}

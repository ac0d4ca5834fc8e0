//! The primitives KenLM's format is made of: little-endian fields read without trusting the
//! file (an offset past the end reads zeros instead of panicking), bit fields packed at
//! arbitrary bit offsets, the "sign bit means extension" convention for back-offs, and
//! MurmurHash64A, which names vocabulary words.
//!
//! Ported from KenLM `util/bit_packing.hh` and `util/murmur_hash.cc` (commit b9f35777, as the
//! `kenlm` module's docs say). Bit fields are little-endian: a field at bit
//! `b` is the 64-bit word at byte `b / 8`, shifted right by `b % 8`.

/// Bits needed to store every integer in `0..=max` (0 for 0), KenLM's `RequiredBits`.
pub(crate) fn required_bits(max: u64) -> u8 {
    // At most 64, so the cast keeps the value.
    (64 - max.leading_zeros()) as u8
}

/// The mask of the low `bits` bits (`bits` ≤ 63).
pub(crate) fn mask(bits: u8) -> u64 {
    (1u64 << bits) - 1
}

/// The 8 bytes at `at` as a little-endian integer; bytes past the end of `data` read as zero.
#[inline]
pub(crate) fn u64_at(data: &[u8], at: usize) -> u64 {
    if let Some(b) = at.checked_add(8).and_then(|end| data.get(at..end)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        return u64::from_le_bytes(a);
    }
    let mut a = [0u8; 8];
    if let Some(rest) = data.get(at..) {
        a[..rest.len().min(8)].copy_from_slice(&rest[..rest.len().min(8)]);
    }
    u64::from_le_bytes(a)
}

/// The 4 bytes at `at` as a little-endian integer (zero past the end).
#[inline]
pub(crate) fn u32_at(data: &[u8], at: usize) -> u32 {
    // The low half of the 8 bytes at `at`; the cast keeps exactly those bits.
    u64_at(data, at) as u32
}

/// The `f32` at byte `at` (zero past the end).
#[inline]
pub(crate) fn f32_at(data: &[u8], at: usize) -> f32 {
    f32::from_bits(u32_at(data, at))
}

/// A bit field of `bits` ≤ 57 bits at bit offset `bit` (KenLM `ReadInt57`; also serves
/// `ReadInt25`, whose 32-bit read holds the same bits for fields of at most 25 bits).
#[inline]
pub(crate) fn read_bits(data: &[u8], bit: u64, bits: u8) -> u64 {
    let Ok(byte) = usize::try_from(bit >> 3) else { return 0 };
    (u64_at(data, byte) >> (bit & 7)) & mask(bits)
}

/// The 32 bits at bit offset `bit`, as a float (KenLM `ReadFloat32`).
#[inline]
pub(crate) fn read_f32_bits(data: &[u8], bit: u64) -> f32 {
    let Ok(byte) = usize::try_from(bit >> 3) else { return 0.0 };
    // The low 32 bits after the shift are the field.
    f32::from_bits((u64_at(data, byte) >> (bit & 7)) as u32)
}

/// A probability stored in 31 bits without its sign (KenLM `ReadNonPositiveFloat31`): the
/// sign bit is set on reading, so 0 comes back as -0.
#[inline]
pub(crate) fn read_nonpositive_f31(data: &[u8], bit: u64) -> f32 {
    let Ok(byte) = usize::try_from(bit >> 3) else { return 0.0 };
    f32::from_bits(((u64_at(data, byte) >> (bit & 7)) as u32) | SIGN_BIT)
}

/// OR `value` (< 2^`bits`, `bits` ≤ 57) into zeroed memory at bit offset `bit`, as KenLM's
/// `WriteInt57`/`WriteInt25` do. The caller sized `data` so that the 8 bytes at `bit / 8` exist
/// (KenLM pads every bit-packed array by 8 bytes for this).
#[inline]
pub(crate) fn write_bits(data: &mut [u8], bit: u64, value: u64) {
    // Offsets come from layouts sized in memory, so they fit in usize.
    let at = (bit >> 3) as usize;
    let word = u64_at(data, at) | (value << (bit & 7));
    data[at..at + 8].copy_from_slice(&word.to_le_bytes());
}

/// Bit 31 of an `f32`.
pub(crate) const SIGN_BIT: u32 = 0x8000_0000;

/// A back-off that is zero and whose n-gram is no context of a longer one ("no extension"):
/// -0. KenLM tells the two zeros apart by their sign bit (`lm/blank.hh`).
pub(crate) const NO_EXTENSION_BACKOFF: f32 = -0.0;
/// A zero back-off of an n-gram that longer n-grams extend: +0.
pub(crate) const EXTENSION_BACKOFF: f32 = 0.0;

/// Whether an n-gram with this back-off can be extended to the right, so that it must stay
/// in a query's state (every back-off but -0, compared by bits).
#[inline]
pub(crate) fn has_extension(backoff: f32) -> bool {
    backoff.to_bits() != NO_EXTENSION_BACKOFF.to_bits()
}

/// -0 becomes +0 (KenLM `SetExtension`): the n-gram is the context of a longer one.
#[inline]
pub(crate) fn set_extension(backoff: &mut f32) {
    // `==` also matches +0, which is left as it is.
    if *backoff == NO_EXTENSION_BACKOFF {
        *backoff = EXTENSION_BACKOFF;
    }
}

/// MurmurHash64A with seed 0 over the word's bytes: KenLM's vocabulary hash
/// (`lm::ngram::detail::HashForVocab`).
pub fn murmur_hash64a(key: &[u8]) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h: u64 = (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let mut k = u64::from_le_bytes(a);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_fields_round_trip_at_every_offset() {
        let mut mem = vec![0u8; 64 + 8];
        let value = 0x0123_4567_89ab_cdef_u64 & mask(57);
        for i in 0..8u64 {
            write_bits(&mut mem, i * 57, value);
        }
        for i in 0..8u64 {
            assert_eq!(read_bits(&mem, i * 57, 57), value);
        }
        assert_eq!(required_bits(0), 0);
        assert_eq!(required_bits(1), 1);
        assert_eq!(required_bits(255), 8);
        assert_eq!(required_bits(256), 9);
    }

    #[test]
    fn reads_past_the_end_are_zero() {
        let mem = [0xffu8; 3];
        assert_eq!(u64_at(&mem, 1), 0xffff);
        assert_eq!(u64_at(&mem, 100), 0);
        assert_eq!(read_bits(&mem, u64::MAX, 8), 0);
    }

    #[test]
    fn murmur_matches_hashes_build_binary_stored() {
        // Hashes from the sorted vocabularies of `testdata/kenlm/toy-4gram-pruned.trie.bin`
        // and `lm2.trie.bin` (words of 1, 3, 4, 9 and 10 bytes: tail-only and chunked paths).
        for (word, hash) in [
            ("a", 0x0717_17d2_d36b_6b11_u64),
            ("b", 0xea8b_fc7d_922a_2a37),
            ("<s>", 0x0075_8639_bd21_7e70),
            ("</s>", 0x6be0_737d_f1f7_6c0a),
            ("container", 0x1433_72c6_f6f5_a7d4),
            ("timestamps", 0x3f64_8e63_979f_0e06),
        ] {
            assert_eq!(murmur_hash64a(word.as_bytes()), hash, "{word}");
        }
        assert_eq!(murmur_hash64a(b""), 0);
    }
}

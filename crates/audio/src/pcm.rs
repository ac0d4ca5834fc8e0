//! Headerless audio as live protocols send it: 16-bit little-endian PCM and G.711 µ-law /
//! A-law (telephony). Written by hand: G.711 expansion is two short formulas from the ITU
//! standard, and no maintained crate offers just that.

/// A headerless sample format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Signed 16-bit little-endian PCM.
    Pcm16,
    /// G.711 µ-law, 8 bits a sample.
    Mulaw,
    /// G.711 A-law, 8 bits a sample.
    Alaw,
}

impl RawFormat {
    /// Bytes per sample.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            RawFormat::Pcm16 => 2,
            RawFormat::Mulaw | RawFormat::Alaw => 1,
        }
    }
}

fn mulaw(b: u8) -> i16 {
    let b = !b;
    let sign = b & 0x80;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

fn alaw(b: u8) -> i16 {
    let b = b ^ 0x55;
    let sign = b & 0x80;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

/// Appends the samples of `bytes` in `format` to `out` as f32 in [-1, 1]. A trailing odd byte
/// of 16-bit PCM is ignored (the caller keeps it for the next piece).
pub fn decode_raw(bytes: &[u8], format: RawFormat, out: &mut Vec<f32>) {
    let scale = 1.0 / 32768.0;
    match format {
        RawFormat::Pcm16 => {
            out.extend(
                bytes.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) * scale),
            );
        }
        RawFormat::Mulaw => out.extend(bytes.iter().map(|&b| f32::from(mulaw(b)) * scale)),
        RawFormat::Alaw => out.extend(bytes.iter().map(|&b| f32::from(alaw(b)) * scale)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_matches_the_standard_table_at_known_points() {
        // µ-law: 0xFF and 0x7F are the two zeros, 0x00 is the most negative value, 0x80 the most
        // positive (ITU-T G.711 table 2a).
        assert_eq!(mulaw(0xff), 0);
        assert_eq!(mulaw(0x7f), 0);
        assert_eq!(mulaw(0x00), -32124);
        assert_eq!(mulaw(0x80), 32124);
        // A-law: 0xD5 and 0x55 are the smallest magnitudes (±8), 0xAA / 0x2A the largest.
        assert_eq!(alaw(0xd5), 8);
        assert_eq!(alaw(0x55), -8);
        assert_eq!(alaw(0xaa), 32256);
        assert_eq!(alaw(0x2a), -32256);
    }

    #[test]
    fn expansion_is_monotonic_over_each_half() {
        let mu: Vec<i16> = (0x80..=0xffu8).rev().map(mulaw).collect();
        assert!(mu.windows(2).all(|w| w[0] <= w[1]), "µ-law positive half");
        let a: Vec<i16> =
            (0..8u8).flat_map(|e| (0..16u8).map(move |m| (e << 4 | m) ^ 0xd5)).map(alaw).collect();
        assert!(a.windows(2).all(|w| w[0] <= w[1]), "A-law positive half");
    }

    #[test]
    fn pcm16_is_little_endian_and_scaled() {
        let mut out = Vec::new();
        decode_raw(&[0x00, 0x80, 0xff, 0x7f, 0x00, 0x00, 0x01], RawFormat::Pcm16, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], -1.0);
        assert!((out[1] - 32767.0 / 32768.0).abs() < 1e-9);
        assert_eq!(out[2], 0.0);
    }
}

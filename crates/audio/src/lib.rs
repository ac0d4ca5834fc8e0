//! Bytes → [`Audio`]: probe the container, decode the codec, downmix to mono and resample.
//!
//! Brief overview: [`decode_file`] and [`decode_bytes`] take a WAV (8/16/24/32-bit integer,
//! 32-bit float, any channel count), FLAC, MP3, OGG (Vorbis, Opus, FLAC), M4A/MP4 (AAC, ALAC) or
//! WebM/Matroska (Opus, Vorbis, AAC) input and return mono `f32` samples at
//! [`DecodeOptions::target_rate_hz`]. Containers and codecs are symphonia's, except Opus:
//! symphonia has no Opus decoder, so libopus (the reference decoder, bundled and built from
//! source by `symphonia-adapter-libopus`) is registered beside its codecs. Which format a file
//! is decides its content (symphonia's probe reads the magic bytes); a file name or Content-Type
//! is only a hint, so the CLI, the server and the Lambda handler accept the same files.
//! Resampling is rubato's FFT resampler, which is band-limited by construction. Decoding streams: each packet
//! is downmixed and resampled as it arrives, so a one-hour 48 kHz stereo file never exists in
//! memory at its native rate.
//!
//! Every failure is a typed [`Error`]; a damaged packet in the middle of a stream is skipped (as
//! ffmpeg does), but a stream with no decodable packet, a stream cut short of its declared
//! length, and non-finite samples are errors.
//!
//! ```no_run
//! let opts = harken_audio::DecodeOptions::whisper();
//! let audio = harken_audio::decode_file(std::path::Path::new("talk.mp3"), &opts)?;
//! assert_eq!(audio.sample_rate_hz, 16_000);
//! # Ok::<(), harken_audio::Error>(())
//! ```

mod error;
mod mp4;
mod pcm;
mod resample;

pub use pcm::{RawFormat, decode_raw};
pub use resample::Stream as Resampler;

use std::io::Cursor;
use std::path::Path;

pub use error::{Error, Result};
use harken_core::Audio;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

const TRUNCATION_SLACK_FRAMES: u64 = 4096;

/// Float streams may exceed full scale a little; values this large are damage, and they would
/// overflow the resampler's FFT.
const MAX_SAMPLE_MAGNITUDE: f32 = 1000.0;

/// Lowest and highest native sample rates accepted, Hz.
pub const SUPPORTED_RATES_HZ: std::ops::RangeInclusive<u32> = 4_000..=768_000;

/// How to decode: the output rate and optional limits.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Rate of the returned samples, Hz (a model-intrinsic value: 16 000 for Whisper).
    pub target_rate_hz: u32,
    /// Reject audio longer than this many seconds (checked while decoding, so a huge file is
    /// refused without decoding it whole). `None` means no limit.
    pub max_duration_s: Option<f64>,
}

impl DecodeOptions {
    /// 16 kHz output, no duration limit.
    pub fn whisper() -> Self {
        DecodeOptions { target_rate_hz: 16_000, max_duration_s: None }
    }
}

/// Media types (lower case, without parameters) that name audio Harken decodes, as browsers,
/// phones and HTTP clients send them. The bytes still decide: a type here only admits the body
/// to the decoder, whose probe reads the magic bytes.
pub const AUDIO_MEDIA_TYPES: &[&str] = &[
    "application/octet-stream",
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/vnd.wave",
    "audio/flac",
    "audio/x-flac",
    "audio/mpeg",
    "audio/mp3",
    "audio/ogg",
    "audio/opus",
    "audio/vorbis",
    "audio/mp4",
    "audio/m4a",
    "audio/x-m4a",
    "audio/aac",
    "audio/webm",
    "audio/x-matroska",
    "video/mp4",
    "video/webm",
    "video/x-matroska",
];

/// Whether `content_type` (parameters such as `;codecs=opus` allowed) names audio Harken
/// decodes; see [`AUDIO_MEDIA_TYPES`].
pub fn is_audio_media_type(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    AUDIO_MEDIA_TYPES.contains(&mime.as_str())
}

/// Decode the audio file at `path`.
pub fn decode_file(path: &Path, opts: &DecodeOptions) -> Result<Audio> {
    let file =
        std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    let len = file.metadata().map_err(|source| Error::Io { path: path.to_owned(), source })?.len();
    if len == 0 {
        return Err(Error::Empty);
    }
    let ext = path.extension().and_then(|e| e.to_str());
    decode_source(Box::new(file), ext, opts)
}

/// Decode audio held in memory. `ext_hint` (a file extension such as `"mp3"`) only speeds up
/// probing; the content decides.
pub fn decode_bytes(bytes: Vec<u8>, ext_hint: Option<&str>, opts: &DecodeOptions) -> Result<Audio> {
    if bytes.is_empty() {
        return Err(Error::Empty);
    }
    decode_source(Box::new(Cursor::new(bytes)), ext_hint, opts)
}

/// The length of the audio in `source`, seconds, read from its headers without decoding:
/// exact for WAV and FLAC, the container's figure for others. When the headers do not say (a
/// WebM stream, an MP3 without a Xing header), an estimate from the byte count at 128 kbit/s;
/// `None` when the bytes are not audio Harken reads. For metrics and scheduling only.
pub fn probe_duration(source: Box<dyn MediaSource>, byte_len: u64) -> Option<f64> {
    let estimate = byte_len as f64 / 16_000.0;
    let probed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mss = MediaSourceStream::new(source, Default::default());
        let format = symphonia::default::get_probe()
            .format(&Hint::new(), mss, &FormatOptions::default(), &MetadataOptions::default())
            .ok()?
            .format;
        let track = format.tracks().iter().find(|t| t.codec_params.codec != CODEC_TYPE_NULL)?;
        let p = &track.codec_params;
        Some(match (p.n_frames, p.sample_rate) {
            (Some(n), Some(rate)) if rate > 0 => n as f64 / f64::from(rate),
            _ => estimate,
        })
    }));
    probed.ok().flatten()
}

fn decode_source(
    source: Box<dyn MediaSource>,
    ext_hint: Option<&str>,
    opts: &DecodeOptions,
) -> Result<Audio> {
    let mut source = source;
    check_wav_header(&mut source)?;
    let edit = mp4::audio_edit(&mut source);
    // symphonia is defensive but young; a panic on a hostile file must still become an error.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_inner(source, ext_hint, edit, opts)
    }));
    match result {
        Ok(r) => r,
        Err(_) => Err(Error::Corrupt {
            detail: "the container reader or decoder failed on malformed data".into(),
        }),
    }
}

fn decode_inner(
    source: Box<dyn MediaSource>,
    ext_hint: Option<&str>,
    edit: Option<mp4::EditList>,
    opts: &DecodeOptions,
) -> Result<Audio> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext_hint {
        hint.with_extension(ext);
    }
    let fmt_opts = FormatOptions { enable_gapless: true, ..Default::default() };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &fmt_opts, &MetadataOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => Error::Unrecognized { source: Box::new(e) },
            SymError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                Error::Unrecognized { source: Box::new(e) }
            }
            other => Error::Corrupt { detail: other.to_string() },
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or(Error::NoAudioTrack)?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    if let Some(rate) = params.sample_rate {
        check_rate(rate)?;
    }
    if let Some(ch) = params.channels
        && ch.count() == 0
    {
        return Err(Error::InvalidHeader { what: "zero channels".into() });
    }
    // Only lossless codecs declare an exact length; MP3 and Vorbis totals are estimates, and
    // their readers silently resynchronise past damaged bytes.
    let exact_length = {
        use symphonia::core::codecs::*;
        let c = params.codec;
        c == CODEC_TYPE_FLAC
            || [
                CODEC_TYPE_PCM_S8,
                CODEC_TYPE_PCM_U8,
                CODEC_TYPE_PCM_S16LE,
                CODEC_TYPE_PCM_S24LE,
                CODEC_TYPE_PCM_S32LE,
                CODEC_TYPE_PCM_U16LE,
                CODEC_TYPE_PCM_U24LE,
                CODEC_TYPE_PCM_U32LE,
                CODEC_TYPE_PCM_F32LE,
                CODEC_TYPE_PCM_F64LE,
                CODEC_TYPE_PCM_ALAW,
                CODEC_TYPE_PCM_MULAW,
            ]
            .contains(&c)
    };
    let declared_frames = params.n_frames;
    let mut decoder = codecs().make(&params, &DecoderOptions::default()).map_err(|e| match e {
        SymError::Unsupported(what) => Error::UnsupportedCodec { codec: what.to_string() },
        other => Error::Corrupt { detail: other.to_string() },
    })?;

    let mut out = Vec::new();
    let mut resampler: Option<resample::Stream> = None;
    let mut native_rate = 0u32;
    let mut native_frames: u64 = 0;
    let mut good_packets = 0usize;
    let mut bad_packets = 0usize;
    let mut lost_frames: u64 = 0;
    let mut last_decode_error = String::new();
    let mut ended_early = false;
    let mut mono: Vec<f32> = Vec::new();
    let mut sample_buf: Option<SampleBuffer<f32>> = None;
    // Frames of the decoded stream still to drop (priming) and still to keep (before padding).
    let mut trim: Option<mp4::Edit> = None;

    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                ended_early = true;
                break;
            }
            Err(SymError::ResetRequired) => break,
            Err(SymError::DecodeError(e)) => {
                // A damaged container frame; give up on the rest if nothing decodes at all.
                bad_packets += 1;
                last_decode_error = e.to_string();
                if bad_packets > 1000 && good_packets == 0 {
                    break;
                }
                continue;
            }
            Err(e) => {
                if good_packets == 0 {
                    return Err(Error::Corrupt { detail: e.to_string() });
                }
                ended_early = true;
                break;
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(e)) => {
                bad_packets += 1;
                lost_frames += packet.dur;
                last_decode_error = e.to_string();
                continue;
            }
            Err(SymError::IoError(_)) => {
                bad_packets += 1;
                lost_frames += packet.dur;
                continue;
            }
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(Error::Corrupt { detail: e.to_string() }),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count();
        if channels == 0 {
            return Err(Error::InvalidHeader { what: "zero channels".into() });
        }
        if native_rate == 0 {
            check_rate(spec.rate)?;
            native_rate = spec.rate;
            trim = edit.map(|e| e.frames(native_rate));
            if native_rate != opts.target_rate_hz {
                resampler = Some(resample::Stream::new(native_rate, opts.target_rate_hz)?);
            }
            if let Some(n) = declared_frames {
                // Reserve for the declared length, but never trust a header for gigabytes.
                let want =
                    n.saturating_mul(u64::from(opts.target_rate_hz)) / u64::from(native_rate);
                out.reserve(usize::try_from(want.min(16_000 * 60 * 30)).unwrap_or(0));
            }
        } else if spec.rate != native_rate {
            return Err(Error::Corrupt {
                detail: format!(
                    "sample rate changes mid-stream ({native_rate} → {} Hz)",
                    spec.rate
                ),
            });
        }
        if decoded.frames() == 0 {
            good_packets += 1;
            continue;
        }
        let buf = match &mut sample_buf {
            Some(b) if b.capacity() >= decoded.capacity() * channels => b,
            slot => slot.insert(SampleBuffer::<f32>::new(decoded.capacity() as u64, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        let interleaved = buf.samples();
        mono.clear();
        downmix(interleaved, channels, &mut mono);
        if mono.iter().any(|s| !s.is_finite()) {
            return Err(Error::NonFinite);
        }
        if mono.iter().any(|s| s.abs() > MAX_SAMPLE_MAGNITUDE) {
            return Err(Error::OutOfRange { limit: MAX_SAMPLE_MAGNITUDE });
        }
        native_frames += mono.len() as u64;
        good_packets += 1;
        let kept = match &mut trim {
            Some(t) => t.apply(&mono),
            None => &mono[..],
        };
        match &mut resampler {
            Some(r) => r.push(kept, &mut out)?,
            None => out.extend_from_slice(kept),
        }
        if let Some(limit) = opts.max_duration_s
            && native_frames as f64 / f64::from(native_rate) > limit
        {
            return Err(Error::TooLong { limit_ms: (limit * 1000.0) as u64 });
        }
    }

    if good_packets == 0 {
        if bad_packets > 0 {
            return Err(Error::Corrupt { detail: last_decode_error });
        }
        if native_rate == 0 {
            // A valid container with no samples at all (a WAV with an empty data chunk).
            return Ok(Audio { samples: Vec::new(), sample_rate_hz: opts.target_rate_hz });
        }
    }
    // Streams normally end in an end-of-file error too, so compare with the declared length;
    // frames of damaged packets that were skipped do not count as missing, and lossy codecs'
    // priming and padding make a few thousand frames of slack necessary.
    if bad_packets > 0 && bad_packets >= good_packets {
        return Err(Error::Corrupt {
            detail: format!(
                "{bad_packets} of {} packets are damaged ({last_decode_error})",
                bad_packets + good_packets
            ),
        });
    }
    if ended_early
        && exact_length
        && let Some(expected) = declared_frames
        && native_frames + lost_frames + TRUNCATION_SLACK_FRAMES < expected
    {
        return Err(Error::Truncated { expected_frames: expected, got_frames: native_frames });
    }
    if let Some(r) = resampler {
        r.finish(&mut out)?;
    }
    Ok(Audio { samples: out, sample_rate_hz: opts.target_rate_hz })
}

/// symphonia's codecs plus libopus, built once per process.
fn codecs() -> &'static symphonia::core::codecs::CodecRegistry {
    static REGISTRY: std::sync::OnceLock<symphonia::core::codecs::CodecRegistry> =
        std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = symphonia::core::codecs::CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_all::<symphonia_adapter_libopus::OpusDecoder>();
        registry
    })
}

/// Reject WAV headers with zero channels, rate or sample size before symphonia sees them: its
/// reader asserts on some of these instead of returning an error.
fn check_wav_header(source: &mut Box<dyn MediaSource>) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut head = [0u8; 4096];
    let mut n = 0;
    while n < head.len() {
        match source.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    source.seek(SeekFrom::Start(0)).map_err(|e| Error::Corrupt { detail: e.to_string() })?;
    let head = &head[..n];
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Ok(());
    }
    let mut pos = 12;
    while pos + 8 <= head.len() {
        let id = &head[pos..pos + 4];
        let size = u32::from_le_bytes([head[pos + 4], head[pos + 5], head[pos + 6], head[pos + 7]])
            as usize;
        if id == b"fmt " {
            let f = &head[pos + 8..head.len().min(pos + 8 + size.min(40))];
            if f.len() < 16 {
                return Err(Error::InvalidHeader {
                    what: "fmt chunk shorter than 16 bytes".into(),
                });
            }
            let channels = u16::from_le_bytes([f[2], f[3]]);
            let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
            let bits = u16::from_le_bytes([f[14], f[15]]);
            if channels == 0 {
                return Err(Error::InvalidHeader { what: "zero channels".into() });
            }
            if bits == 0 {
                return Err(Error::InvalidHeader { what: "zero bits per sample".into() });
            }
            return check_rate(rate);
        }
        pos = pos.saturating_add(8).saturating_add(size + (size & 1));
    }
    Ok(())
}

fn check_rate(rate: u32) -> Result<()> {
    if SUPPORTED_RATES_HZ.contains(&rate) {
        Ok(())
    } else {
        Err(Error::InvalidHeader {
            what: format!(
                "sample rate {rate} Hz outside {}–{} Hz",
                SUPPORTED_RATES_HZ.start(),
                SUPPORTED_RATES_HZ.end()
            ),
        })
    }
}

/// Average the channels of interleaved frames into `out`.
fn downmix(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels == 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(interleaved.chunks_exact(channels).map(|f| f.iter().sum::<f32>() * scale));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages_channels() {
        let mut out = Vec::new();
        downmix(&[1.0, 0.0, 0.5, 0.5, -1.0, 1.0], 2, &mut out);
        assert_eq!(out, vec![0.5, 0.5, 0.0]);
    }

    #[test]
    fn durations_are_read_from_headers() {
        let rate = 16_000u32;
        let mut wav = Vec::new();
        let data = vec![0u8; (rate * 2 * 3) as usize]; // 3 s of 16-bit mono
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&rate.to_le_bytes());
        wav.extend_from_slice(&(rate * 2).to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
        wav.extend_from_slice(&data);
        let len = wav.len() as u64;
        let d = probe_duration(Box::new(Cursor::new(wav)), len).unwrap();
        assert!((d - 3.0).abs() < 1e-6, "{d}");
        assert_eq!(probe_duration(Box::new(Cursor::new(b"plain text".to_vec())), 10), None);
    }

    #[test]
    fn empty_bytes_are_an_error() {
        assert!(matches!(
            decode_bytes(Vec::new(), None, &DecodeOptions::whisper()),
            Err(Error::Empty)
        ));
    }

    #[test]
    fn browser_media_types_are_audio() {
        for t in ["audio/webm;codecs=opus", "Audio/MP4", "audio/ogg; codecs=\"opus\"", "video/webm"]
        {
            assert!(is_audio_media_type(t), "{t}");
        }
        for t in ["text/plain", "image/png", "audio/", ""] {
            assert!(!is_audio_media_type(t), "{t}");
        }
    }

    #[test]
    fn text_is_not_audio() {
        let err =
            decode_bytes(b"hello, I am not audio".to_vec(), Some("wav"), &DecodeOptions::whisper())
                .unwrap_err();
        assert_eq!(err.kind(), harken_core::ErrorKind::UnsupportedMedia, "{err}");
    }
}

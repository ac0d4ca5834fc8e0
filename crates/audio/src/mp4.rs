//! The edit list of an MP4/M4A audio track: which decoded frames are the recording.
//!
//! AAC encoders prepend priming frames (1024 samples for ffmpeg and most encoders, 2112 for
//! Apple's) and pad the last packet; the container's edit list (`moov/trak/edts/elst`) says
//! where the real audio starts and how long it is. symphonia 0.5 parses `elst` but neither
//! applies nor exposes it, so without this module every M4A transcript starts 23–48 ms late
//! and word times drift by that much. This is the smallest reader that answers the one
//! question: a walk over the box headers (seeking past `mdat`), the `moov` box read into memory
//! only when it is of sane size, and bounds on every length field.

use std::io::{Read, Seek, SeekFrom};

/// The `moov` box of an hour of AAC is under 1 MiB; anything far larger is not worth reading.
const MAX_MOOV_BYTES: u64 = 64 << 20;
/// Top-level boxes visited before giving up (real files have a handful).
const MAX_TOP_LEVEL_BOXES: usize = 64;

/// The part of the decoded stream that is the recording, in the track's native frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edit {
    /// Frames to drop at the start (encoder priming).
    pub(crate) skip: u64,
    /// Frames to keep after those, when the edit says (drops the last packet's padding).
    pub(crate) keep: Option<u64>,
}

impl Edit {
    /// The part of the next decoded `frames` that the edit keeps; advances the edit.
    pub(crate) fn apply<'a>(&mut self, frames: &'a [f32]) -> &'a [f32] {
        let n = frames.len() as u64;
        let skip = self.skip.min(n);
        self.skip -= skip;
        let rest = &frames[skip as usize..];
        match &mut self.keep {
            None => rest,
            Some(keep) => {
                let take = (*keep).min(rest.len() as u64);
                *keep -= take;
                &rest[..take as usize]
            }
        }
    }
}

/// An edit as the file states it, in its own clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EditList {
    media_time: u64,
    media_timescale: u32,
    duration: u64,
    movie_timescale: u32,
}

impl EditList {
    /// The edit in frames of a stream decoded at `native_rate`.
    pub(crate) fn frames(&self, native_rate: u32) -> Edit {
        let scale = |v: u64, from: u32| -> u64 {
            u64::try_from(u128::from(v) * u128::from(native_rate) / u128::from(from))
                .unwrap_or(u64::MAX)
        };
        Edit {
            skip: scale(self.media_time, self.media_timescale),
            keep: (self.duration > 0).then(|| scale(self.duration, self.movie_timescale)),
        }
    }
}

/// The edit list of the first sound track of the MP4 file in `source`; `None` when the file
/// is not MP4, has no edit list, or the list is not a plain trim. Leaves `source` at offset 0.
pub(crate) fn audio_edit<R: Read + Seek>(source: &mut R) -> Option<EditList> {
    let moov = read_moov(source);
    source.seek(SeekFrom::Start(0)).ok()?;
    let moov = moov?;
    let movie_timescale =
        children(&moov).find(|(t, _)| t == b"mvhd").and_then(|(_, b)| timescale(b))?;
    for (kind, trak) in children(&moov) {
        if kind != *b"trak" {
            continue;
        }
        let Some(mdia) = child(trak, b"mdia") else { continue };
        let is_sound = child(mdia, b"hdlr").is_some_and(|h| h.get(8..12) == Some(b"soun"));
        if !is_sound {
            continue;
        }
        let media_timescale = child(mdia, b"mdhd").and_then(timescale)?;
        let elst = child(trak, b"edts").and_then(|e| child(e, b"elst"))?;
        let (media_time, duration) = single_edit(elst)?;
        return Some(EditList { media_time, media_timescale, duration, movie_timescale });
    }
    None
}

/// The payload of the top-level `moov` box, when the file starts like an MP4.
fn read_moov<R: Read + Seek>(source: &mut R) -> Option<Vec<u8>> {
    source.seek(SeekFrom::Start(0)).ok()?;
    let mut pos = 0u64;
    for i in 0..MAX_TOP_LEVEL_BOXES {
        let mut head = [0u8; 16];
        source.seek(SeekFrom::Start(pos)).ok()?;
        source.read_exact(&mut head[..8]).ok()?;
        let kind: [u8; 4] = head[4..8].try_into().ok()?;
        if i == 0 && kind != *b"ftyp" {
            return None;
        }
        let (size, header) = match u32::from_be_bytes(head[..4].try_into().ok()?) {
            0 => return None, // extends to the end of the file: nothing after it
            1 => {
                source.read_exact(&mut head[8..16]).ok()?;
                (u64::from_be_bytes(head[8..16].try_into().ok()?), 16u64)
            }
            n => (u64::from(n), 8u64),
        };
        if size < header {
            return None;
        }
        if kind == *b"moov" {
            let len = size - header;
            if len > MAX_MOOV_BYTES {
                return None;
            }
            let mut body = vec![0u8; usize::try_from(len).ok()?];
            source.read_exact(&mut body).ok()?;
            return Some(body);
        }
        pos = pos.checked_add(size)?;
    }
    None
}

/// The child boxes of a container box's payload: `(type, payload)`; stops at the first box
/// whose size does not fit.
fn children(mut buf: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let size = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?);
        let kind: [u8; 4] = buf.get(4..8)?.try_into().ok()?;
        let (size, header) = match size {
            0 => (buf.len(), 8),
            1 => (usize::try_from(u64::from_be_bytes(buf.get(8..16)?.try_into().ok()?)).ok()?, 16),
            n => (usize::try_from(n).ok()?, 8),
        };
        let body = buf.get(header..size)?;
        buf = &buf[size..];
        Some((kind, body))
    })
}

fn child<'a>(buf: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(buf).find(|(k, _)| k == kind).map(|(_, b)| b)
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The timescale of an `mvhd` or `mdhd` payload (both lay it out the same way); never zero.
fn timescale(b: &[u8]) -> Option<u32> {
    let at = match b.first()? {
        0 => 12,
        1 => 20,
        _ => return None,
    };
    be_u32(b, at).filter(|&t| t > 0)
}

/// `(media_time, segment_duration)` of the one edit that plays media, after any empty edits;
/// `None` for lists that reorder, repeat or change the rate (not a trim).
fn single_edit(b: &[u8]) -> Option<(u64, u64)> {
    let version = *b.first()?;
    let count = be_u32(b, 4)?;
    let entry = if version == 1 { 20 } else { 12 };
    let mut found = None;
    for i in 0..usize::try_from(count).ok()?.min(16) {
        let at = 8 + i * entry;
        let (duration, media_time, rate) = if version == 1 {
            (be_u64(b, at)?, be_u64(b, at + 8)? as i64, be_u32(b, at + 16)?)
        } else {
            (u64::from(be_u32(b, at)?), i64::from(be_u32(b, at + 4)? as i32), be_u32(b, at + 8)?)
        };
        if media_time == -1 {
            continue; // an empty edit: a delay before the media, not part of the decoded stream
        }
        if found.is_some() || rate != 0x0001_0000 || media_time < 0 {
            return None;
        }
        found = Some((media_time as u64, duration));
    }
    if usize::try_from(count).ok()? > 16 {
        return None;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], parts: &[&[u8]]) -> Vec<u8> {
        let body: Vec<u8> = parts.concat();
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend(body);
        out
    }

    /// An MP4 whose sound track's edit list starts at `media_time` and lasts `duration`.
    fn mp4(elst: &[u8]) -> Vec<u8> {
        let mvhd = bx(b"mvhd", &[&[0; 12], &1000u32.to_be_bytes(), &[0; 4]]);
        let mdhd = bx(b"mdhd", &[&[0; 12], &44_100u32.to_be_bytes(), &[0; 4]]);
        let hdlr = bx(b"hdlr", &[&[0; 8], b"soun", &[0; 12]]);
        let mdia = bx(b"mdia", &[&mdhd, &hdlr]);
        let edts = bx(b"edts", &[&bx(b"elst", &[elst])]);
        let trak = bx(b"trak", &[&edts, &mdia]);
        let moov = bx(b"moov", &[&mvhd, &trak]);
        // mdat before moov, as in files that are not "fast start".
        [bx(b"ftyp", &[b"M4A \0\0\0\0"]), bx(b"mdat", &[&[0xAB; 100]]), moov].concat()
    }

    fn entry(duration: u32, media_time: i32) -> Vec<u8> {
        [duration.to_be_bytes(), media_time.to_be_bytes(), 0x0001_0000u32.to_be_bytes()].concat()
    }

    #[test]
    fn priming_and_padding_come_from_the_edit_list() {
        let elst = [&[0u8; 4][..], &1u32.to_be_bytes(), &entry(2800, 1024)].concat();
        let mut c = std::io::Cursor::new(mp4(&elst));
        // 1024 frames at 44.1 kHz are 371 at 16 kHz; 2.8 s of a 1-kHz movie clock.
        let edit = audio_edit(&mut c).map(|e| e.frames(16_000));
        assert_eq!(edit, Some(Edit { skip: 371, keep: Some(44_800) }));
        assert_eq!(c.position(), 0);
    }

    #[test]
    fn empty_edits_are_delays_and_reordering_is_ignored() {
        let delayed =
            [&[0u8; 4][..], &2u32.to_be_bytes(), &entry(50, -1), &entry(0, 2112)].concat();
        let mut c = std::io::Cursor::new(mp4(&delayed));
        let edit = audio_edit(&mut c).map(|e| e.frames(44_100));
        assert_eq!(edit, Some(Edit { skip: 2112, keep: None }));
        let two = [&[0u8; 4][..], &2u32.to_be_bytes(), &entry(50, 0), &entry(50, 100)].concat();
        assert_eq!(audio_edit(&mut std::io::Cursor::new(mp4(&two))), None);
    }

    #[test]
    fn damaged_boxes_give_no_edit_and_no_panic() {
        let elst = [&[0u8; 4][..], &1u32.to_be_bytes(), &entry(2800, 1024)].concat();
        let file = mp4(&elst);
        for cut in 0..file.len() {
            let _ = audio_edit(&mut std::io::Cursor::new(&file[..cut]));
        }
        for at in 0..file.len() {
            for byte in [0x00, 0x01, 0x7F, 0xFF] {
                let mut bad = file.clone();
                bad[at] = byte;
                if let Some(e) = audio_edit(&mut std::io::Cursor::new(bad)) {
                    let _ = e.frames(48_000);
                }
            }
        }
    }

    #[test]
    fn non_mp4_has_no_edit() {
        let mut c = std::io::Cursor::new(b"RIFF\x00\x00\x00\x00WAVEfmt ".to_vec());
        assert_eq!(audio_edit(&mut c), None);
        assert_eq!(c.position(), 0);
    }
}

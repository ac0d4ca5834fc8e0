//! Reader for CTranslate2's `model.bin` (the format faster-whisper ships), memory-mapped.
//!
//! Written by hand because no crate reads it: the layout is CTranslate2 4.x
//! `ctranslate2/specs/model_spec.py::_serialize` (binary version 6). All little-endian:
//! `u32 version | str spec | u32 revision | u32 n_vars | n_vars × {str name | u8 rank |
//! u32 dims[rank] | u8 dtype | u32 nbytes | bytes} | u32 n_aliases | {str alias | str target}`,
//! where a `str` is a `u16` length counting a trailing NUL, then the bytes. The parser only
//! records offsets; tensor bytes stay in the map until a tensor is built from them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::{Error, Result};

/// Element type of a CTranslate2 variable (index order of `model_spec.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    /// IEEE binary32.
    F32,
    /// Signed 8-bit integer (quantized weights or flags).
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Signed 32-bit integer.
    I32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
}

impl Ct2Dtype {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Ct2Dtype::F32,
            1 => Ct2Dtype::I8,
            2 => Ct2Dtype::I16,
            3 => Ct2Dtype::I32,
            4 => Ct2Dtype::F16,
            5 => Ct2Dtype::BF16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Ct2Dtype::I8 => 1,
            Ct2Dtype::I16 | Ct2Dtype::F16 | Ct2Dtype::BF16 => 2,
            Ct2Dtype::F32 | Ct2Dtype::I32 => 4,
        }
    }
}

/// One variable: its shape, type and where its bytes are in the map.
#[derive(Debug, Clone)]
pub struct Ct2Var {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: Ct2Dtype,
    /// Byte range in the file.
    pub range: std::ops::Range<usize>,
}

/// A parsed, memory-mapped `model.bin`.
pub struct Ct2File {
    path: PathBuf,
    map: Mmap,
    /// Model spec name, e.g. `WhisperSpec`.
    pub spec: String,
    vars: HashMap<String, Ct2Var>,
    aliases: HashMap<String, String>,
}

impl std::fmt::Debug for Ct2File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ct2File").field("path", &self.path).field("spec", &self.spec).finish()
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> Error {
        Error::Format { path: self.path.to_owned(), detail: format!("{what} at byte {}", self.pos) }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end =
            end.ok_or_else(|| self.err(&format!("unexpected end of file reading {n} bytes")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String> {
        let n = usize::from(self.u16()?);
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }
}

impl Ct2File {
    /// Map and parse `path`. Fails on anything but binary version 5 or 6, and on any size that
    /// runs past the end of the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            std::fs::File::open(path).map_err(|source| Error::Io { path: path.into(), source })?;
        // SAFETY: the map is read-only and private to this process; the file is a model artifact
        // that Harken never writes while it is loaded (the cache renames new files into place).
        #[allow(unsafe_code)] // memory-mapping is the point: weights are never read twice
        let map = unsafe { Mmap::map(&file) }
            .map_err(|source| Error::Io { path: path.into(), source })?;
        let (spec, vars, aliases) = Self::parse(&map, path)?;
        Ok(Ct2File { path: path.to_owned(), map, spec, vars, aliases })
    }

    #[allow(clippy::type_complexity)] // a one-off tuple of the three parsed tables
    fn parse(
        buf: &[u8],
        path: &Path,
    ) -> Result<(String, HashMap<String, Ct2Var>, HashMap<String, String>)> {
        let mut c = Cursor { buf, pos: 0, path };
        let version = c.u32()?;
        if !(5..=6).contains(&version) {
            return Err(c.err(&format!("unsupported binary version {version} (expected 5 or 6)")));
        }
        let spec = c.string()?;
        let _revision = c.u32()?;
        let n_vars = c.u32()?;
        let mut vars = HashMap::new();
        for _ in 0..n_vars {
            let name = c.string()?;
            let rank = usize::from(c.u8()?);
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(c.u32()? as usize);
            }
            let dtype_id = c.u8()?;
            let dtype = Ct2Dtype::from_id(dtype_id)
                .ok_or_else(|| c.err(&format!("unknown dtype {dtype_id}")))?;
            let nbytes = c.u32()? as usize;
            let elems = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if elems.and_then(|e| e.checked_mul(dtype.size())) != Some(nbytes) {
                return Err(c.err(&format!(
                    "variable {name}: {nbytes} bytes do not match shape {shape:?}"
                )));
            }
            let start = c.pos;
            c.take(nbytes)?;
            vars.insert(name, Ct2Var { shape, dtype, range: start..start + nbytes });
        }
        let mut aliases = HashMap::new();
        if c.pos < buf.len() {
            let n = c.u32()?;
            for _ in 0..n {
                let alias = c.string()?;
                let target = c.string()?;
                aliases.insert(alias, target);
            }
        }
        Ok((spec, vars, aliases))
    }

    /// The variable `name`, following aliases.
    pub fn var(&self, name: &str) -> Option<(&Ct2Var, &[u8])> {
        let name = self.aliases.get(name).map_or(name, String::as_str);
        self.vars.get(name).map(|v| (v, &self.map[v.range.clone()]))
    }

    /// Drop `var`'s pages from this process's resident set once its values have been copied
    /// out. The loader converts every tensor into its own buffer, so without this the whole file
    /// stays resident beside the converted weights and peak RSS while loading is file + copies.
    /// The page cache keeps the pages, so a second process still loads from memory.
    pub fn release(&self, var: &Ct2Var) {
        if var.range.is_empty() {
            return;
        }
        // SAFETY: the map is private and read-only, so MADV_DONTNEED cannot discard data: a
        // later access re-reads the unchanged file. `var.range` was bounds-checked against the
        // map when the file was parsed.
        #[allow(unsafe_code)] // madvise on our own read-only mapping
        let _ = unsafe {
            self.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                var.range.start,
                var.range.len(),
            )
        };
    }

    /// A scalar integer variable (`encoder/num_heads` and the like).
    pub fn int_scalar(&self, name: &str) -> Option<i64> {
        let (v, b) = self.var(name)?;
        match v.dtype {
            Ct2Dtype::I8 => Some(i64::from(b[0] as i8)),
            Ct2Dtype::I16 => Some(i64::from(i16::from_le_bytes([b[0], b[1]]))),
            Ct2Dtype::I32 => Some(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            _ => None,
        }
    }

    /// Names of all variables, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Size of the mapped file, bytes.
    pub fn file_len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend_from_slice(&((v.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }

    fn tiny() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        s(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        s(&mut b, "a/weight");
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(0);
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&1.5f32.to_le_bytes());
        b.extend_from_slice(&(-2.0f32).to_le_bytes());
        s(&mut b, "heads");
        b.push(0);
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&8i16.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        s(&mut b, "b/weight");
        s(&mut b, "a/weight");
        b
    }

    #[test]
    fn parses_variables_scalars_and_aliases() {
        let buf = tiny();
        let (spec, vars, aliases) = Ct2File::parse(&buf, Path::new("x")).unwrap();
        assert_eq!(spec, "WhisperSpec");
        assert_eq!(vars["a/weight"].shape, vec![2, 1]);
        assert_eq!(aliases["b/weight"], "a/weight");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let buf = tiny();
        for n in 0..buf.len() - 1 {
            // Cutting inside the alias table or variable list must fail cleanly.
            let r = Ct2File::parse(&buf[..n], Path::new("x"));
            assert!(r.is_err() || n >= buf.len() - 30, "prefix {n} parsed");
        }
    }

    #[test]
    fn size_mismatch_is_reported() {
        let mut buf = tiny();
        // Corrupt a/weight's nbytes (8 → 9).
        let pos = buf.windows(4).position(|w| w == 8u32.to_le_bytes()).unwrap();
        buf[pos] = 9;
        let err = Ct2File::parse(&buf, Path::new("x")).err().unwrap();
        assert!(err.to_string().contains("do not match shape"), "{err}");
    }
}

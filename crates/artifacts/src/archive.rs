//! Safe extraction of `.tar.gz` (SageMaker's `model.tar.gz`) and `.zip` archives.
//!
//! Every entry name is checked before anything is written: it must be a plain relative path
//! (no `..`, no absolute path, no drive prefix); symbolic links must point inside the archive;
//! hard links, devices and FIFOs are refused. The `tar` and `zip` crates do the decoding; the
//! policy is ours because a model archive comes from wherever the user's URI points.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::uri::ArchiveKind;
use crate::{Error, Result};

/// Refuse archives that expand beyond this (a guard against decompression bombs).
const MAX_EXPANDED_BYTES: u64 = 64 << 30;
/// Refuse archives with more entries than this.
const MAX_ENTRIES: usize = 100_000;

/// Extract `archive` into the empty directory `dest`. `label` names the archive in errors.
pub(crate) fn extract(kind: ArchiveKind, archive: &Path, dest: &Path, label: &str) -> Result<()> {
    match kind {
        ArchiveKind::TarGz => extract_tar_gz(archive, dest, label),
        ArchiveKind::Zip => extract_zip(archive, dest, label),
    }
}

fn unsafe_entry(label: &str, entry: &str, detail: &str) -> Error {
    Error::UnsafeArchive { archive: label.into(), entry: entry.into(), detail: detail.into() }
}

fn archive_err(label: &str, detail: impl ToString) -> Error {
    Error::Archive { archive: label.into(), detail: detail.to_string() }
}

/// The entry's path below `dest`, or an error when it would land elsewhere.
fn safe_join(dest: &Path, name: &str, label: &str) -> Result<Option<PathBuf>> {
    let path = Path::new(name);
    let mut out = dest.to_path_buf();
    let mut depth = 0;
    for c in path.components() {
        match c {
            Component::Normal(p) => {
                out.push(p);
                depth += 1;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(unsafe_entry(label, name, "contains `..`"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(label, name, "is an absolute path"));
            }
        }
    }
    // `./` alone (the archive root) carries no content.
    Ok((depth > 0).then_some(out))
}

/// Refuse an entry at or beneath a symbolic link an earlier entry created: writing through it
/// would land wherever the link points, whatever the entry's own name says.
fn check_not_under_link(links: &[PathBuf], target: &Path, name: &str, label: &str) -> Result<()> {
    if links.iter().any(|l| target.starts_with(l)) {
        return Err(unsafe_entry(label, name, "lies beneath a symbolic link of the same archive"));
    }
    Ok(())
}

/// A symbolic link at `name` pointing to `target` must resolve inside the archive.
fn check_link(name: &str, target: &Path, label: &str) -> Result<()> {
    if target.is_absolute() {
        return Err(unsafe_entry(label, name, "is a symbolic link to an absolute path"));
    }
    // Depth of the link's directory, then walk the target.
    let mut depth: i64 =
        Path::new(name).components().filter(|c| matches!(c, Component::Normal(_))).count() as i64
            - 1;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(unsafe_entry(
                        label,
                        name,
                        "is a symbolic link that points outside the archive",
                    ));
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(label, name, "is a symbolic link to an absolute path"));
            }
        }
    }
    Ok(())
}

fn extract_tar_gz(archive: &Path, dest: &Path, label: &str) -> Result<()> {
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let entries = tar.entries().map_err(|e| archive_err(label, e))?;
    let mut total = 0u64;
    let mut links: Vec<PathBuf> = Vec::new();
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(archive_err(label, format!("more than {MAX_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(|e| archive_err(label, format!("corrupt archive: {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(target) = safe_join(dest, &name, label)? else { continue };
        check_not_under_link(&links, &target, &name, label)?;
        let ty = entry.header().entry_type();
        if ty.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
            continue;
        }
        if ty.is_symlink() {
            let link = entry
                .link_name()
                .map_err(|e| archive_err(label, e))?
                .ok_or_else(|| unsafe_entry(label, &name, "is a symbolic link without a target"))?;
            check_link(&name, &link, label)?;
            links.push(target.clone());
        } else if ty.is_hard_link() {
            return Err(unsafe_entry(
                label,
                &name,
                "is a hard link (not supported in model archives)",
            ));
        } else if !ty.is_file() && ty != tar::EntryType::Continuous {
            // pax/GNU metadata entries are consumed by the iterator; anything else is a device,
            // FIFO or something we do not want in a model.
            return Err(unsafe_entry(label, &name, &format!("has unsupported type {ty:?}")));
        }
        total = total.saturating_add(entry.header().size().unwrap_or(0));
        if total > MAX_EXPANDED_BYTES {
            return Err(archive_err(label, format!("expands beyond {MAX_EXPANDED_BYTES} bytes")));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        entry.set_preserve_permissions(false);
        entry.unpack(&target).map_err(|e| write_err(&target, e, label))?;
    }
    Ok(())
}

fn write_err(target: &Path, e: std::io::Error, label: &str) -> Error {
    if e.kind() == std::io::ErrorKind::StorageFull {
        Error::io(target, e)
    } else {
        archive_err(label, format!("extracting {}: {e}", target.display()))
    }
}

fn extract_zip(archive: &Path, dest: &Path, label: &str) -> Result<()> {
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| archive_err(label, format!("not a readable zip: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(archive_err(label, format!("more than {MAX_ENTRIES} entries")));
    }
    let mut total = 0u64;
    let mut links: Vec<PathBuf> = Vec::new();
    for i in 0..zip.len() {
        let mut entry =
            zip.by_index(i).map_err(|e| archive_err(label, format!("corrupt entry {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| archive_err(label, format!("entry {i} has an unreadable name: {e}")))?
            .into_owned();
        let Some(target) = safe_join(dest, &name, label)? else { continue };
        check_not_under_link(&links, &target, &name, label)?;
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        if entry.is_symlink() {
            let mut link = String::new();
            entry.read_to_string(&mut link).map_err(|e| archive_err(label, e))?;
            check_link(&name, Path::new(&link), label)?;
            std::os::unix::fs::symlink(&link, &target).map_err(|e| Error::io(&target, e))?;
            links.push(target);
            continue;
        }
        total = total.saturating_add(entry.size());
        if total > MAX_EXPANDED_BYTES {
            return Err(archive_err(label, format!("expands beyond {MAX_EXPANDED_BYTES} bytes")));
        }
        let mut out = std::fs::File::create(&target).map_err(|e| Error::io(&target, e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| write_err(&target, e, label))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_stay_inside() {
        let d = Path::new("/x");
        assert_eq!(safe_join(d, "a/b", "t").ok().flatten(), Some(PathBuf::from("/x/a/b")));
        assert_eq!(safe_join(d, "./", "t").ok().flatten(), None);
        assert!(safe_join(d, "../a", "t").is_err());
        assert!(safe_join(d, "a/../../b", "t").is_err());
        assert!(safe_join(d, "/etc/passwd", "t").is_err());
    }

    #[test]
    fn links_must_resolve_inside() {
        assert!(check_link("a/link", Path::new("../b"), "t").is_ok());
        assert!(check_link("link", Path::new("sub/file"), "t").is_ok());
        assert!(check_link("link", Path::new("../b"), "t").is_err());
        assert!(check_link("a/link", Path::new("../../b"), "t").is_err());
        assert!(check_link("link", Path::new("/etc/passwd"), "t").is_err());
    }

    /// Deterministic mutants of a valid tar.gz and zip: extraction fails cleanly or succeeds
    /// inside the destination, never panics.
    #[test]
    fn mutated_archives_never_panic() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let src = tmp.path().join("a.tar.gz");
        {
            let f = std::fs::File::create(&src).unwrap_or_else(|e| panic!("{e}"));
            let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            let mut t = tar::Builder::new(gz);
            for (name, len) in [("model/model.bin", 5000usize), ("model/tokenizer.json", 300)] {
                let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let mut h = tar::Header::new_gnu();
                h.set_size(len as u64);
                h.set_mode(0o644);
                h.set_cksum();
                t.append_data(&mut h, name, data.as_slice()).unwrap_or_else(|e| panic!("{e}"));
            }
            t.into_inner().and_then(|gz| gz.finish()).unwrap_or_else(|e| panic!("{e}"));
        }
        let zip_path = tmp.path().join("a.zip");
        {
            let f = std::fs::File::create(&zip_path).unwrap_or_else(|e| panic!("{e}"));
            let mut z = zip::ZipWriter::new(f);
            z.start_file("model/model.bin", zip::write::SimpleFileOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            std::io::Write::write_all(&mut z, &[3u8; 4000]).unwrap_or_else(|e| panic!("{e}"));
            z.finish().unwrap_or_else(|e| panic!("{e}"));
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for (kind, path) in [(ArchiveKind::TarGz, &src), (ArchiveKind::Zip, &zip_path)] {
            let good = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
            for i in 0..300 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut m = good.clone();
                if i % 3 == 0 {
                    m.truncate(x as usize % m.len());
                } else {
                    for k in 0..(1 + i % 4) {
                        let at = (x as usize).wrapping_add(k * 97) % m.len();
                        m[at] ^= (x >> 8) as u8 | 1;
                    }
                }
                let mutant = tmp.path().join("m");
                std::fs::write(&mutant, &m).unwrap_or_else(|e| panic!("{e}"));
                let dest = tmp.path().join(format!("out{i}"));
                std::fs::create_dir_all(&dest).unwrap_or_else(|e| panic!("{e}"));
                let r = std::panic::catch_unwind(|| {
                    extract(kind, &mutant, &dest, "mutant").map(|_| ())
                });
                assert!(r.is_ok(), "{kind:?} mutant {i} panicked");
                let _ = std::fs::remove_dir_all(&dest);
            }
        }
    }
}

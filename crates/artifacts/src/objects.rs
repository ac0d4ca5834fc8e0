//! Plain objects beside the models: the audio a batch job reads and the results it writes.
//!
//! A location is `s3://BUCKET/KEY`, an `http(s)://` URL (read only) or a local path. Listing
//! walks an S3 prefix or a local directory tree; writing is atomic on both (S3 `PutObject` is;
//! a local file is written to a temporary name and renamed), so a reader never sees half a
//! result and a job stopped mid-write leaves no torn file to be taken for done.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::remote::{Location, s3_store};
use crate::{Error, ModelUri, Result};

/// One object found under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its full location, as [`read`] takes it.
    pub uri: String,
    /// Its key relative to the listed prefix, `/`-separated.
    pub rel: String,
    /// Bytes.
    pub size: u64,
    /// ETag (S3) or modification time (local): changes when the object does.
    pub validator: Option<String>,
}

fn location(uri: &str) -> Result<Location> {
    match ModelUri::parse(uri)? {
        ModelUri::S3 { bucket, key } => Ok(Location::S3 { store: s3_store(&bucket)?, bucket, key }),
        ModelUri::Http(url) => {
            Ok(Location::Http { client: reqwest::Client::new(), url, auth: None })
        }
        ModelUri::Local(p) => Ok(Location::Local(p)),
        _ => Err(Error::BadUri {
            uri: uri.to_owned(),
            detail: "expected s3://BUCKET/KEY, an http(s) URL or a path".into(),
        }),
    }
}

/// True when `uri` names an S3 object or prefix.
pub fn is_s3(uri: &str) -> bool {
    uri.starts_with("s3://")
}

/// Every object under `prefix` (an `s3://BUCKET/PREFIX` or a local directory, walked
/// recursively; hidden files and directories are skipped), sorted by key.
pub async fn list(prefix: &str) -> Result<Vec<ObjectInfo>> {
    let mut out = match location(prefix)? {
        Location::S3 { store, bucket, key } => {
            let key = key.trim_end_matches('/').to_owned();
            let p = (!key.is_empty()).then(|| object_store::path::Path::from(key.as_str()));
            let metas: Vec<_> = store.list(p.as_ref()).try_collect().await.map_err(|e| {
                Error::remote(format!("s3://{bucket}/{key}"), format!("listing: {e}"), true)
            })?;
            metas
                .into_iter()
                .map(|m| {
                    let full = m.location.to_string();
                    let rel = if key.is_empty() {
                        full.clone()
                    } else {
                        full.strip_prefix(&key)
                            .map_or(full.as_str(), |r| r.trim_start_matches('/'))
                            .to_owned()
                    };
                    ObjectInfo {
                        uri: format!("s3://{bucket}/{full}"),
                        rel,
                        size: m.size,
                        validator: m.e_tag.or(Some(m.last_modified.to_rfc3339())),
                    }
                })
                .collect()
        }
        Location::Local(dir) => {
            let mut found = Vec::new();
            walk(&dir, &dir, &mut found)?;
            found
        }
        Location::Http { url, .. } => {
            return Err(Error::BadUri {
                uri: url.to_string(),
                detail: "an HTTP URL cannot be listed; give a manifest of URLs instead".into(),
            });
        }
    };
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ObjectInfo>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound { location: dir.display().to_string(), detail: None }
        } else {
            Error::io(dir, e)
        }
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push(ObjectInfo {
                uri: path.display().to_string(),
                rel,
                size: meta.len(),
                validator: meta.modified().ok().map(|t| local_validator(t, meta.len())),
            });
        }
    }
    Ok(())
}

fn local_validator(t: std::time::SystemTime, len: u64) -> String {
    let ns = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{len}-{ns}")
}

/// Size and validator of one object; `None` when it does not exist.
pub async fn head(uri: &str) -> Result<Option<ObjectInfo>> {
    let loc = location(uri)?;
    match loc.head().await {
        Ok(m) => {
            let validator = match &loc {
                Location::Local(p) => std::fs::metadata(p)
                    .ok()
                    .and_then(|m| m.modified().ok().map(|t| local_validator(t, m.len()))),
                _ => m.validator,
            };
            Ok(Some(ObjectInfo {
                uri: uri.to_owned(),
                rel: uri.rsplit('/').next().unwrap_or(uri).to_owned(),
                size: m.size.unwrap_or(0),
                validator,
            }))
        }
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The bytes of one object, refusing more than `max_bytes`.
pub async fn read(uri: &str, max_bytes: u64) -> Result<Bytes> {
    location(uri)?.get_small(max_bytes).await
}

/// Write `bytes` to `uri` atomically (S3 or a local path; parent directories are created).
pub async fn write(uri: &str, bytes: Bytes) -> Result<()> {
    match location(uri)? {
        Location::S3 { store, bucket, key } => {
            let path = object_store::path::Path::from(key.as_str());
            store.put(&path, PutPayload::from_bytes(bytes)).await.map_err(|e| {
                Error::remote(format!("s3://{bucket}/{key}"), format!("upload: {e}"), true)
            })?;
            Ok(())
        }
        Location::Local(dest) => write_local(&dest, &bytes),
        Location::Http { url, .. } => Err(Error::BadUri {
            uri: url.to_string(),
            detail: "results can be written to s3:// or a local path, not an HTTP URL".into(),
        }),
    }
}

fn write_local(dest: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let name = dest.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp: PathBuf = dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(dest, e)
    })
}

/// `rel` below `prefix`, which is an `s3://` prefix or a local directory.
pub fn join(prefix: &str, rel: &str) -> String {
    if is_s3(prefix) {
        format!("{}/{}", prefix.trim_end_matches('/'), rel.trim_start_matches('/'))
    } else {
        Path::new(prefix).join(rel).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_list_write_head_read() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().display().to_string();
        write(&join(&root, "a/b.txt"), Bytes::from_static(b"hello")).await.unwrap();
        write(&join(&root, "c.txt"), Bytes::from_static(b"x")).await.unwrap();
        std::fs::write(d.path().join(".hidden"), b"no").unwrap();
        let all = list(&root).await.unwrap();
        let rels: Vec<_> = all.iter().map(|o| o.rel.as_str()).collect();
        assert_eq!(rels, ["a/b.txt", "c.txt"]);
        assert_eq!(all[0].size, 5);
        let h = head(&all[0].uri).await.unwrap().unwrap();
        assert_eq!(h.validator, all[0].validator);
        assert_eq!(&read(&all[0].uri, 10).await.unwrap()[..], b"hello");
        assert!(matches!(read(&all[0].uri, 2).await, Err(Error::TooLarge { .. })));
        assert!(head(&join(&root, "missing")).await.unwrap().is_none());
        // No temporary file is left beside the results.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 3);
    }

    #[tokio::test]
    async fn listing_a_missing_directory_is_not_found() {
        assert!(matches!(list("/no/such/dir/harken").await, Err(Error::NotFound { .. })));
    }

    #[test]
    fn joins() {
        assert_eq!(join("s3://b/out/", "x/y.json"), "s3://b/out/x/y.json");
        assert_eq!(join("s3://b", "y.json"), "s3://b/y.json");
        assert_eq!(join("/tmp/o", "y.json"), "/tmp/o/y.json");
    }
}

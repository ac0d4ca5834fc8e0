//! Where bytes come from: an S3 object (through `object_store`), an HTTP(S) URL (through
//! `reqwest`, also used for MLflow's artifact proxy), or a local file. One small interface —
//! head, read a small file, stream from an offset, upload — so the cache's download logic
//! (resume, retry, verify) is written once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{BackoffConfig, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::{Error, Result};

/// A readable (and, for push, writable) location of one file or directory prefix.
#[derive(Clone)]
pub(crate) enum Location {
    S3 { store: Arc<AmazonS3>, bucket: String, key: String },
    Http { client: reqwest::Client, url: url::Url, auth: Option<reqwest::header::HeaderValue> },
    Local(PathBuf),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::S3 { bucket, key, .. } => write!(f, "s3://{bucket}/{key}"),
            Location::Http { url, .. } => write!(f, "{url}"),
            Location::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What a HEAD tells us.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub size: Option<u64>,
    /// ETag or Last-Modified: changes when the object does.
    pub validator: Option<String>,
}

/// An S3 client configured from the standard AWS environment: `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
/// `AWS_ENDPOINT_URL` (S3-compatible servers), else the shared credentials file for
/// `AWS_PROFILE`, else the instance/task role.
pub(crate) fn s3_store(bucket: &str) -> Result<Arc<AmazonS3>> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 2,
        retry_timeout: Duration::from_secs(20),
    });
    if std::env::var("AWS_ACCESS_KEY_ID").is_err()
        && let Some(p) = crate::profile::load()
    {
        b = b.with_access_key_id(p.access_key_id).with_secret_access_key(p.secret_access_key);
        if let Some(t) = p.session_token {
            b = b.with_token(t);
        }
        if std::env::var("AWS_REGION").is_err()
            && std::env::var("AWS_DEFAULT_REGION").is_err()
            && let Some(r) = p.region
        {
            b = b.with_region(r);
        }
    }
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL_S3").or_else(|_| std::env::var("AWS_ENDPOINT_URL"));
    if endpoint.is_ok_and(|e| e.starts_with("http://")) {
        b = b.with_allow_http(true);
    }
    let store = b.build().map_err(|e| {
        Error::remote(format!("s3://{bucket}"), format!("S3 client set-up: {e}"), false)
    })?;
    Ok(Arc::new(store))
}

fn os_err(loc: &Location, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => {
            Error::NotFound { location: loc.to_string(), detail: None }
        }
        object_store::Error::PermissionDenied { source, .. }
        | object_store::Error::Unauthenticated { source, .. } => {
            Error::remote(loc.to_string(), format!("access denied: {source}"), false)
        }
        other => Error::remote(loc.to_string(), other, true),
    }
}

fn http_err(loc: &Location, e: reqwest::Error) -> Error {
    let transient = e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
    Error::remote(loc.to_string(), e, transient)
}

fn status_err(loc: &Location, status: reqwest::StatusCode, body: &str) -> Error {
    if status == reqwest::StatusCode::NOT_FOUND {
        return Error::NotFound { location: loc.to_string(), detail: None };
    }
    let body: String = body.chars().take(300).collect();
    Error::remote(
        loc.to_string(),
        format!("HTTP {status}: {body}"),
        status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS,
    )
}

impl Location {
    /// The location of `rel` below this prefix.
    pub(crate) fn join(&self, rel: &str) -> Location {
        match self {
            Location::S3 { store, bucket, key } => Location::S3 {
                store: Arc::clone(store),
                bucket: bucket.clone(),
                key: if key.is_empty() { rel.to_owned() } else { format!("{key}/{rel}") },
            },
            Location::Http { client, url, auth } => {
                let mut u = url.clone();
                if let Ok(mut segs) = u.path_segments_mut() {
                    segs.pop_if_empty();
                    for s in rel.split('/') {
                        segs.push(s);
                    }
                }
                Location::Http { client: client.clone(), url: u, auth: auth.clone() }
            }
            Location::Local(p) => Location::Local(rel.split('/').fold(p.clone(), |p, c| p.join(c))),
        }
    }

    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: &url::Url,
    ) -> reqwest::RequestBuilder {
        let mut r = client.request(method, url.clone());
        if let Location::Http { auth: Some(a), .. } = self {
            r = r.header(reqwest::header::AUTHORIZATION, a.clone());
        }
        r
    }

    pub(crate) async fn head(&self) -> Result<Meta> {
        match self {
            Location::S3 { store, key, .. } => {
                let m = store
                    .head(&object_store::path::Path::from(key.as_str()))
                    .await
                    .map_err(|e| os_err(self, e))?;
                Ok(Meta {
                    size: Some(m.size),
                    validator: m.e_tag.or(Some(m.last_modified.to_rfc3339())),
                })
            }
            Location::Http { client, url, .. } => {
                let resp = self
                    .request(client, reqwest::Method::HEAD, url)
                    .send()
                    .await
                    .map_err(|e| http_err(self, e))?;
                if !resp.status().is_success() {
                    return Err(status_err(self, resp.status(), ""));
                }
                let h = resp.headers();
                let text = |k: reqwest::header::HeaderName| {
                    h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned)
                };
                Ok(Meta {
                    size: text(reqwest::header::CONTENT_LENGTH).and_then(|s| s.parse().ok()),
                    validator: text(reqwest::header::ETAG)
                        .or_else(|| text(reqwest::header::LAST_MODIFIED)),
                })
            }
            Location::Local(p) => {
                let m = std::fs::metadata(p).map_err(|e| not_found_or_io(p, e))?;
                Ok(Meta {
                    size: Some(m.len()),
                    validator: m.modified().ok().map(|t| format!("{t:?}")),
                })
            }
        }
    }

    /// A whole small file (manifests), refusing more than `limit` bytes.
    pub(crate) async fn get_small(&self, limit: u64) -> Result<Bytes> {
        let mut stream = self.stream_from(0).await?.0;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
            if out.len() as u64 > limit {
                return Err(Error::TooLarge { location: self.to_string(), limit });
            }
        }
        Ok(Bytes::from(out))
    }

    /// Bytes from `offset` to the end. The flag is true when the source ignored the offset and
    /// streams from byte 0.
    pub(crate) async fn stream_from(
        &self,
        offset: u64,
    ) -> Result<(BoxStream<'static, Result<Bytes>>, bool)> {
        match self {
            Location::S3 { store, key, .. } => {
                let opts = GetOptions {
                    range: (offset > 0).then_some(GetRange::Offset(offset)),
                    ..GetOptions::default()
                };
                let r = store
                    .get_opts(&object_store::path::Path::from(key.as_str()), opts)
                    .await
                    .map_err(|e| os_err(self, e))?;
                let loc = self.clone();
                Ok((r.into_stream().map_err(move |e| os_err(&loc, e)).boxed(), false))
            }
            Location::Http { client, url, .. } => {
                let mut req = self.request(client, reqwest::Method::GET, url);
                if offset > 0 {
                    req = req.header(reqwest::header::RANGE, format!("bytes={offset}-"));
                }
                let resp = req.send().await.map_err(|e| http_err(self, e))?;
                let status = resp.status();
                if !status.is_success() {
                    let body = resp.text().await.unwrap_or_default();
                    return Err(status_err(self, status, &body));
                }
                let restarted = offset > 0 && status != reqwest::StatusCode::PARTIAL_CONTENT;
                let loc = self.clone();
                Ok((resp.bytes_stream().map_err(move |e| http_err(&loc, e)).boxed(), restarted))
            }
            Location::Local(p) => {
                use std::io::{Read, Seek};
                let mut f = std::fs::File::open(p).map_err(|e| not_found_or_io(p, e))?;
                f.seek(std::io::SeekFrom::Start(offset)).map_err(|e| Error::io(p, e))?;
                let path = p.clone();
                let stream = futures::stream::try_unfold((f, path), |(mut f, path)| async move {
                    let mut buf = vec![0u8; 1 << 20];
                    let n = f.read(&mut buf).map_err(|e| Error::io(&path, e))?;
                    if n == 0 {
                        return Ok(None);
                    }
                    buf.truncate(n);
                    Ok(Some((Bytes::from(buf), (f, path))))
                });
                Ok((stream.boxed(), false))
            }
        }
    }

    /// Upload the local file `src` here (multipart for large files on S3).
    pub(crate) async fn put_file(
        &self,
        src: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        match self {
            Location::S3 { store, key, .. } => {
                use std::io::Read;
                let path = object_store::path::Path::from(key.as_str());
                let mut f = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
                let upload = store.put_multipart(&path).await.map_err(|e| os_err(self, e))?;
                let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, 16 << 20);
                let mut buf = vec![0u8; 8 << 20];
                let mut done = 0u64;
                let written = async {
                    loop {
                        let n = f.read(&mut buf).map_err(|e| Error::io(src, e))?;
                        if n == 0 {
                            return Ok(());
                        }
                        w.wait_for_capacity(4).await.map_err(|e| os_err(self, e))?;
                        w.write(&buf[..n]);
                        done += n as u64;
                        progress(done);
                    }
                }
                .await;
                if let Err(e) = written {
                    // S3 keeps (and bills) the parts of an upload that is neither completed
                    // nor aborted. `finish` aborts on its own failures; these are ours.
                    if let Err(abort) = w.abort().await {
                        tracing::warn!(location = %self, error = %abort, "could not abort the multipart upload");
                    }
                    return Err(e);
                }
                w.finish().await.map_err(|e| os_err(self, e))?;
                Ok(())
            }
            Location::Http { client, url, .. } => {
                let f = tokio::fs::File::open(src).await.map_err(|e| Error::io(src, e))?;
                let len = f.metadata().await.map_err(|e| Error::io(src, e))?.len();
                let resp = self
                    .request(client, reqwest::Method::PUT, url)
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .body(reqwest::Body::from(f))
                    .send()
                    .await
                    .map_err(|e| http_err(self, e))?;
                if !resp.status().is_success() {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    return Err(status_err(self, status, &body));
                }
                progress(len);
                Ok(())
            }
            Location::Local(dest) => {
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                let n = std::fs::copy(src, dest).map_err(|e| Error::io(dest, e))?;
                progress(n);
                Ok(())
            }
        }
    }
}

fn not_found_or_io(p: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::NotFound { location: p.display().to_string(), detail: None }
    } else {
        Error::io(p, e)
    }
}

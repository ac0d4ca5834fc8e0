//! The MLflow tracking server's REST API (2.0): resolving `models:/…` and `runs:/…` to an
//! artifact location, and registering a package as a model version (`harken model push PKG
//! models:/NAME`). Only the handful of endpoints Harken needs; MLflow has no Rust client.
//!
//! Configuration is MLflow's own: `MLFLOW_TRACKING_URI` (http or https),
//! `MLFLOW_TRACKING_TOKEN` (bearer) or `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`
//! (basic auth).
//!
//! Busy (429, 503) and unreachable servers are retried with backoff, honouring `Retry-After`.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::remote::Location;
use crate::uri::Selector;
use crate::{Error, Result};

/// The longest `Retry-After` honoured; a server asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A failed call and whether it may be repeated.
struct Failure {
    error: Error,
    retry: Retry,
    /// The server's `Retry-After` (delay-seconds form).
    retry_after: Option<Duration>,
}

enum Retry {
    /// The server did not act on the request (busy, or never reached).
    Always,
    /// The server may have acted: repeat only a request that changes nothing.
    IfIdempotent,
    Never,
}

pub(crate) struct Mlflow {
    client: reqwest::Client,
    base: url::Url,
    auth: Option<HeaderValue>,
}

impl Mlflow {
    pub(crate) fn from_env(client: reqwest::Client, for_uri: &str) -> Result<Self> {
        let raw = std::env::var("MLFLOW_TRACKING_URI").map_err(|_| Error::BadUri {
            uri: for_uri.to_owned(),
            detail: "MLflow URIs need MLFLOW_TRACKING_URI (the tracking server, e.g. http://mlflow:5000)".into(),
        })?;
        let base = url::Url::parse(raw.trim_end_matches('/')).map_err(|e| Error::BadUri {
            uri: raw.clone(),
            detail: format!("MLFLOW_TRACKING_URI is not a URL: {e}"),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::BadUri {
                uri: raw,
                detail: "MLFLOW_TRACKING_URI must be an http(s) tracking server".into(),
            });
        }
        let auth = if let Ok(token) = std::env::var("MLFLOW_TRACKING_TOKEN") {
            HeaderValue::from_str(&format!("Bearer {token}")).ok()
        } else if let (Ok(u), Ok(p)) =
            (std::env::var("MLFLOW_TRACKING_USERNAME"), std::env::var("MLFLOW_TRACKING_PASSWORD"))
        {
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            HeaderValue::from_str(&format!("Basic {b64}")).ok()
        } else {
            None
        };
        Ok(Mlflow { client, base, auth })
    }

    fn url(&self, path: &str) -> url::Url {
        let mut u = self.base.clone();
        let joined = format!("{}/{}", u.path().trim_end_matches('/'), path.trim_start_matches('/'));
        u.set_path(&joined);
        u
    }

    fn location(&self) -> String {
        self.base.to_string()
    }

    /// One REST call, retried with backoff when the server is busy or unreachable.
    ///
    /// Retried: HTTP 429 and 503 and failures to connect, whatever the call (the server did not
    /// act on the request), after `Retry-After` when the server sends one (capped at
    /// [`MAX_RETRY_AFTER`]), else after the download backoff (0.5 s doubling). Other 5xx,
    /// timeouts and connections lost mid-request (a pooled connection the server had closed)
    /// are retried only for [`idempotent`] calls: `runs/create` may have taken effect.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.call_once(method.clone(), path, query, body.as_ref()).await {
                Ok(v) => return Ok(v),
                Err(Failure { error, retry, retry_after }) => {
                    let retry = match retry {
                        Retry::Always => true,
                        Retry::IfIdempotent => idempotent(&method, path),
                        Retry::Never => false,
                    };
                    if !retry || attempt >= crate::ATTEMPTS {
                        return Err(error);
                    }
                    let delay = retry_after
                        .map(|d| d.min(MAX_RETRY_AFTER))
                        .unwrap_or(crate::FIRST_BACKOFF * 2u32.pow(attempt - 1));
                    tracing::warn!(path, attempt, ?delay, %error, "MLflow call failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn call_once(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let url = self.url(path);
        let mut req = self.client.request(method, url.clone()).query(query);
        if let Some(a) = &self.auth {
            req = req.header(reqwest::header::AUTHORIZATION, a.clone());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            let transient = e.is_connect() || e.is_timeout();
            Failure {
                error: Error::remote(self.location(), format!("{path}: {e}"), transient),
                retry: if e.is_connect() { Retry::Always } else { Retry::IfIdempotent },
                retry_after: None,
            }
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let message = v.get("message").and_then(Value::as_str).unwrap_or(&text).to_owned();
        let code = v.get("error_code").and_then(Value::as_str).unwrap_or("").to_owned();
        if status == reqwest::StatusCode::NOT_FOUND || code == "RESOURCE_DOES_NOT_EXIST" {
            return Err(Failure {
                error: Error::NotFound {
                    location: format!("{}{path}", self.location()),
                    detail: Some(message),
                },
                retry: Retry::Never,
                retry_after: None,
            });
        }
        let busy = status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::SERVICE_UNAVAILABLE;
        Err(Failure {
            error: Error::Remote {
                location: format!("{}{path}", self.location()),
                detail: format!("HTTP {status} {code}: {message}"),
                transient: busy || status.is_server_error(),
            },
            retry: if busy {
                Retry::Always
            } else if status.is_server_error() {
                Retry::IfIdempotent
            } else {
                Retry::Never
            },
            retry_after,
        })
    }

    /// (version, artifact URI) of a registered model version.
    pub(crate) async fn resolve_model(
        &self,
        name: &str,
        selector: &Selector,
    ) -> Result<(String, String)> {
        let version = match selector {
            Selector::Version(v) => v.clone(),
            Selector::Alias(a) => {
                let v = self
                    .call(
                        reqwest::Method::GET,
                        "api/2.0/mlflow/registered-models/alias",
                        &[("name", name), ("alias", a)],
                        None,
                    )
                    .await?;
                field(&v, &["model_version", "version"])?
            }
            Selector::Latest | Selector::Stage(_) => {
                let stages = match selector {
                    Selector::Stage(s) => json!([s]),
                    _ => json!([]),
                };
                let v = self
                    .call(
                        reqwest::Method::POST,
                        "api/2.0/mlflow/registered-models/get-latest-versions",
                        &[],
                        Some(json!({"name": name, "stages": stages})),
                    )
                    .await?;
                v.get("model_versions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|mv| mv.get("version").and_then(Value::as_str))
                    .max_by_key(|s| s.parse::<u64>().unwrap_or(0))
                    .map(str::to_owned)
                    .ok_or_else(|| Error::NotFound {
                        location: format!("models:/{name}"),
                        detail: Some("no version matches".into()),
                    })?
            }
        };
        let v = self
            .call(
                reqwest::Method::GET,
                "api/2.0/mlflow/model-versions/get-download-uri",
                &[("name", name), ("version", &version)],
                None,
            )
            .await?;
        Ok((version, field(&v, &["artifact_uri"])?))
    }

    /// The artifact URI of `path` in run `run_id`.
    pub(crate) async fn resolve_run(&self, run_id: &str, path: &str) -> Result<String> {
        let v = self
            .call(reqwest::Method::GET, "api/2.0/mlflow/runs/get", &[("run_id", run_id)], None)
            .await?;
        let root = field(&v, &["run", "info", "artifact_uri"])?;
        Ok(if path.is_empty() { root } else { format!("{}/{path}", root.trim_end_matches('/')) })
    }

    /// Where an MLflow artifact URI's bytes can be read.
    pub(crate) fn artifact_location(&self, artifact_uri: &str) -> Result<Location> {
        if let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") {
            // `mlflow-artifacts:/path` or `mlflow-artifacts://host:port/path`: served by the
            // tracking server's artifact proxy.
            let path = match rest.strip_prefix("//") {
                Some(r) => r.split_once('/').map_or("", |(_, p)| p),
                None => rest.trim_start_matches('/'),
            };
            let mut url = self.url("api/2.0/mlflow-artifacts/artifacts");
            if let Ok(mut segs) = url.path_segments_mut() {
                for s in path.split('/').filter(|s| !s.is_empty()) {
                    segs.push(s);
                }
            }
            return Ok(Location::Http {
                client: self.client.clone(),
                url,
                auth: self.auth.clone(),
            });
        }
        if let Some(rest) = artifact_uri.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            return Ok(Location::S3 {
                store: crate::remote::s3_store(bucket)?,
                bucket: bucket.to_owned(),
                key: key.trim_end_matches('/').to_owned(),
            });
        }
        if artifact_uri.starts_with("http://") || artifact_uri.starts_with("https://") {
            let url = url::Url::parse(artifact_uri)
                .map_err(|e| Error::BadUri { uri: artifact_uri.into(), detail: e.to_string() })?;
            return Ok(Location::Http { client: self.client.clone(), url, auth: None });
        }
        let local = artifact_uri.strip_prefix("file://").unwrap_or(artifact_uri);
        if local.starts_with('/') {
            return Ok(Location::Local(local.into()));
        }
        Err(Error::BadUri {
            uri: artifact_uri.to_owned(),
            detail: "MLflow returned an artifact location Harken cannot read (supported: mlflow-artifacts:, s3://, http(s)://, file://)".into(),
        })
    }

    /// Start a run to hold `package`'s files. Returns the run id and the artifact URI the
    /// files go to (`…/model`).
    pub(crate) async fn create_run(
        &self,
        package: &harken_package::Package,
    ) -> Result<(String, String)> {
        let f = package.flavor();
        let run = self
            .call(
                reqwest::Method::POST,
                "api/2.0/mlflow/runs/create",
                &[],
                Some(json!({
                    "experiment_id": "0",
                    "run_name": format!("harken-push-{}-{}", f.name, f.version),
                    "tags": [{"key": "harken.digest", "value": package.digest()}],
                })),
            )
            .await?;
        let run_id = field(&run, &["run", "info", "run_id"])?;
        let artifact_uri = format!(
            "{}/model",
            field(&run, &["run", "info", "artifact_uri"])?.trim_end_matches('/')
        );
        Ok((run_id, artifact_uri))
    }

    /// Set run `run_id`'s status (`FINISHED`, `FAILED`) and its end time.
    pub(crate) async fn set_run_status(&self, run_id: &str, status: &str) -> Result<()> {
        let end_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.call(
            reqwest::Method::POST,
            "api/2.0/mlflow/runs/update",
            &[],
            Some(json!({"run_id": run_id, "status": status, "end_time": end_ms})),
        )
        .await
        .map(|_| ())
    }

    /// Finish run `run_id` (its files uploaded to `artifact_uri`), register them as a new version
    /// of `name`, optionally point `alias` at it. Returns the version.
    pub(crate) async fn register(
        &self,
        name: &str,
        alias: Option<&str>,
        package: &harken_package::Package,
        run_id: &str,
        artifact_uri: &str,
    ) -> Result<String> {
        let f = package.flavor();
        self.set_run_status(run_id, "FINISHED").await?;
        match self
            .call(
                reqwest::Method::POST,
                "api/2.0/mlflow/registered-models/create",
                &[],
                Some(json!({"name": name})),
            )
            .await
        {
            Ok(_) => {}
            Err(Error::Remote { detail, .. }) if detail.contains("RESOURCE_ALREADY_EXISTS") => {}
            Err(e) => return Err(e),
        }
        let mv = self
            .call(
                reqwest::Method::POST,
                "api/2.0/mlflow/model-versions/create",
                &[],
                Some(json!({
                    "name": name,
                    "source": artifact_uri,
                    "run_id": run_id,
                    "description": format!("{} {} (harken package sha256:{})", f.name, f.version, package.digest()),
                    "tags": [
                        {"key": "harken.digest", "value": package.digest()},
                        {"key": "harken.package", "value": f.name},
                        {"key": "harken.version", "value": f.version},
                    ],
                })),
            )
            .await?;
        let version = field(&mv, &["model_version", "version"])?;
        if let Some(alias) = alias {
            self.call(
                reqwest::Method::POST,
                "api/2.0/mlflow/registered-models/alias",
                &[],
                Some(json!({"name": name, "alias": alias, "version": version})),
            )
            .await?;
        }
        Ok(version)
    }
}

/// Whether repeating the call changes nothing more than making it once: every GET, and the
/// POSTs that read (`get-latest-versions`) or set a value (a run's status, an alias).
fn idempotent(method: &reqwest::Method, path: &str) -> bool {
    *method == reqwest::Method::GET
        || [
            "api/2.0/mlflow/registered-models/get-latest-versions",
            "api/2.0/mlflow/runs/update",
            "api/2.0/mlflow/registered-models/alias",
        ]
        .contains(&path)
}

/// A string at `path` in a JSON answer, or an error naming what was missing.
fn field(v: &Value, path: &[&str]) -> Result<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).ok_or_else(|| {
            Error::remote("MLflow", format!("answer has no {}", path.join(".")), false)
        })?;
    }
    match cur {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Error::remote("MLflow", format!("{} is not a string", path.join(".")), false)),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;

    /// A tracking server that answers the first request 429 with `Retry-After: 2`, then
    /// answers `runs/get`. Returns its base URL and the count of requests it saw.
    fn busy_then_ok() -> (url::Url, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let answer = if n == 0 {
                    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                } else {
                    let body = r#"{"run":{"info":{"artifact_uri":"s3://bucket/run/artifacts"}}}"#;
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        (url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(), seen)
    }

    #[test]
    fn too_many_requests_is_retried_after_retry_after() {
        let (base, seen) = busy_then_ok();
        let m = Mlflow { client: reqwest::Client::new(), base, auth: None };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let t = Instant::now();
        let art = rt.block_on(m.resolve_run("abc", "model")).unwrap();
        assert_eq!(art, "s3://bucket/run/artifacts/model");
        assert_eq!(seen.load(Ordering::SeqCst), 2, "one 429, then one retry");
        assert!(
            t.elapsed() >= Duration::from_secs(2),
            "waited {:?}, less than Retry-After",
            t.elapsed()
        );
    }
}

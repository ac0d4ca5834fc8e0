//! Model URIs: what `--model` and `HARKEN_MODEL_URI` accept.

use std::fmt;
use std::path::PathBuf;

use crate::{Error, Result};

/// A parsed model location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelUri {
    /// A local directory (a package, or a raw Whisper directory) or a local archive; also
    /// `file://`.
    Local(PathBuf),
    /// `s3://bucket/key`: a package prefix, or a `.tar.gz`/`.zip` object.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key or prefix, without a trailing `/`.
        key: String,
    },
    /// `http(s)://…`: an archive, or a directory URL holding a package.
    Http(url::Url),
    /// `models:/NAME/VERSION`, `models:/NAME@ALIAS`, `models:/NAME/latest` (MLflow registry).
    MlflowModel {
        /// Registered model name.
        name: String,
        /// Which version.
        selector: Selector,
    },
    /// `runs:/RUN_ID/path` (MLflow run artifacts).
    MlflowRun {
        /// The run.
        run_id: String,
        /// Artifact path inside the run.
        path: String,
    },
}

/// How a registry URI picks a model version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A version number.
    Version(String),
    /// An alias (`@prod`).
    Alias(String),
    /// The newest version.
    Latest,
    /// The newest version in a (legacy) stage such as `Production`.
    Stage(String),
}

impl ModelUri {
    /// Parse a URI or path.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |detail: &str| Error::BadUri { uri: s.to_owned(), detail: detail.to_owned() };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if let Some(rest) = s.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(bad("file:// needs a path"));
            }
            return Ok(ModelUri::Local(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("s3:// needs a bucket: s3://BUCKET/PREFIX"));
            }
            let key = key.trim_end_matches('/');
            if key.split('/').any(|c| c == "..") {
                return Err(bad("s3 keys must not contain `..`"));
            }
            return Ok(ModelUri::S3 { bucket: bucket.to_owned(), key: key.to_owned() });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
            return Ok(ModelUri::Http(url));
        }
        if let Some(rest) = s.strip_prefix("models:/") {
            let rest = rest.trim_start_matches('/');
            if let Some((name, alias)) = rest.split_once('@') {
                if name.is_empty() || alias.is_empty() || alias.contains('/') {
                    return Err(bad("expected models:/NAME@ALIAS"));
                }
                return Ok(ModelUri::MlflowModel {
                    name: name.to_owned(),
                    selector: Selector::Alias(alias.to_owned()),
                });
            }
            let Some((name, v)) = rest.rsplit_once('/') else {
                return Err(bad(
                    "expected models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest",
                ));
            };
            if name.is_empty() || v.is_empty() {
                return Err(bad("expected models:/NAME/VERSION"));
            }
            let selector = if v.bytes().all(|b| b.is_ascii_digit()) {
                Selector::Version(v.to_owned())
            } else if v.eq_ignore_ascii_case("latest") {
                Selector::Latest
            } else {
                Selector::Stage(v.to_owned())
            };
            return Ok(ModelUri::MlflowModel { name: name.to_owned(), selector });
        }
        if let Some(rest) = s.strip_prefix("runs:/") {
            let rest = rest.trim_start_matches('/');
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            if run_id.is_empty() {
                return Err(bad("expected runs:/RUN_ID/PATH"));
            }
            return Ok(ModelUri::MlflowRun {
                run_id: run_id.to_owned(),
                path: path.trim_matches('/').to_owned(),
            });
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(bad(&format!(
                "unsupported scheme {scheme:?}; use a path, file://, s3://, http(s)://, models:/ or runs:/"
            )));
        }
        Ok(ModelUri::Local(PathBuf::from(s)))
    }

    /// Whether resolving this URI needs the network.
    pub fn is_remote(&self) -> bool {
        !matches!(self, ModelUri::Local(_))
    }

    /// Whether the URI can name a different model tomorrow (aliases, stages, `latest`), so a
    /// cached answer must be re-checked when online.
    pub fn is_mutable(&self) -> bool {
        matches!(
            self,
            ModelUri::MlflowModel {
                selector: Selector::Alias(_) | Selector::Latest | Selector::Stage(_),
                ..
            }
        )
    }
}

impl fmt::Display for ModelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelUri::Local(p) => write!(f, "{}", p.display()),
            ModelUri::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            ModelUri::Http(u) => write!(f, "{u}"),
            ModelUri::MlflowModel { name, selector } => match selector {
                Selector::Version(v) => write!(f, "models:/{name}/{v}"),
                Selector::Alias(a) => write!(f, "models:/{name}@{a}"),
                Selector::Latest => write!(f, "models:/{name}/latest"),
                Selector::Stage(s) => write!(f, "models:/{name}/{s}"),
            },
            ModelUri::MlflowRun { run_id, path } => write!(f, "runs:/{run_id}/{path}"),
        }
    }
}

/// Whether a name looks like an archive Harken extracts.
pub(crate) fn archive_kind(name: &str) -> Option<ArchiveKind> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        Some(ArchiveKind::TarGz)
    } else if lower.ends_with(".zip") {
        Some(ArchiveKind::Zip)
    } else {
        None
    }
}

/// Archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArchiveKind {
    TarGz,
    Zip,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let p = |s: &str| ModelUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(p("whisper-base"), ModelUri::Local("whisper-base".into()));
        assert_eq!(p("file:///opt/ml/model"), ModelUri::Local("/opt/ml/model".into()));
        assert_eq!(
            p("s3://b/models/base/"),
            ModelUri::S3 { bucket: "b".into(), key: "models/base".into() }
        );
        assert!(matches!(p("https://h/x/model.tar.gz"), ModelUri::Http(_)));
        assert_eq!(
            p("models:/asr/3"),
            ModelUri::MlflowModel { name: "asr".into(), selector: Selector::Version("3".into()) }
        );
        assert_eq!(
            p("models:/asr@prod"),
            ModelUri::MlflowModel { name: "asr".into(), selector: Selector::Alias("prod".into()) }
        );
        assert_eq!(
            p("models:/asr/latest"),
            ModelUri::MlflowModel { name: "asr".into(), selector: Selector::Latest }
        );
        assert_eq!(
            p("runs:/abc123/model"),
            ModelUri::MlflowRun { run_id: "abc123".into(), path: "model".into() }
        );
        for s in ["models:/asr@prod", "s3://b/k", "runs:/r/model", "models:/a/2"] {
            assert_eq!(p(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_what_it_cannot_fetch() {
        for s in ["", "gs://b/k", "s3:///k", "s3://b/../x", "models:/", "models:/@a", "runs:/"] {
            assert!(ModelUri::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn archive_names() {
        assert_eq!(archive_kind("model.tar.gz"), Some(ArchiveKind::TarGz));
        assert_eq!(archive_kind("M.ZIP"), Some(ArchiveKind::Zip));
        assert_eq!(archive_kind("model"), None);
    }
}

//! Inputs: what a batch reads (a directory, an `s3://` prefix, a manifest), the name each result
//! takes below the output, and the share of the inputs one worker of many processes.

use harken_artifacts::objects;
use serde::Deserialize;

use crate::{Error, Result};

/// File extensions taken for audio when a directory or prefix is listed (a manifest names its
/// inputs and is taken as it is).
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "flac", "mp3", "ogg", "oga", "opus", "m4a", "mp4", "aac", "webm", "mka", "mkv",
];

/// Largest manifest read, bytes (a million lines of URIs is about 100 MB).
const MAX_MANIFEST_BYTES: u64 = 1 << 30;

/// Where the inputs of a batch come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local directory or an `s3://BUCKET/PREFIX`: every audio file below it.
    Prefix(String),
    /// A JSON-lines manifest (local or on S3): one request a line.
    Manifest(String),
}

/// One input of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The input as the user gave it: the key of its record in the index.
    pub audio: String,
    /// Where its bytes are read from.
    pub uri: String,
    /// Its name below the output prefix, before the result's extension replaces its own.
    pub rel: String,
    /// The caller's identifier, echoed in the record.
    pub id: Option<String>,
    /// Spoken language, when the request names one.
    pub language: Option<String>,
    /// Bytes, when known from the listing.
    pub size: Option<u64>,
    /// ETag or modification time, when known: a changed input is transcribed again.
    pub validator: Option<String>,
}

/// One request line: `{"audio": "…", "id": "…", "language": "…"}` or a bare path/URI. Other
/// fields (references, metadata) are allowed and ignored: manifests carry them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Request {
    /// Path or URI of the audio.
    #[serde(alias = "uri")]
    pub audio: String,
    /// Echoed in the result.
    #[serde(default)]
    pub id: Option<String>,
    /// Spoken language code.
    #[serde(default)]
    pub language: Option<String>,
}

/// Parse one request line; `None` for a blank line.
pub fn parse_request(line: &str) -> Option<std::result::Result<Request, String>> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if line.starts_with('{') {
        return Some(serde_json::from_str::<Request>(line).map_err(|e| e.to_string()).and_then(
            |r| {
                if r.audio.trim().is_empty() { Err("`audio` is empty".into()) } else { Ok(r) }
            },
        ));
    }
    if line.starts_with('"') {
        return Some(
            serde_json::from_str::<String>(line).map_err(|e| e.to_string()).map(|audio| Request {
                audio,
                id: None,
                language: None,
            }),
        );
    }
    Some(Ok(Request { audio: line.to_owned(), id: None, language: None }))
}

impl Request {
    /// The input this request names; relative paths resolve against `base` (the manifest's
    /// directory or prefix), if any.
    pub fn into_input(self, base: Option<&str>) -> Input {
        let is_uri = self.audio.contains("://");
        let absolute = is_uri || self.audio.starts_with('/');
        let uri = match base {
            Some(b) if !absolute => objects::join(b, &self.audio),
            _ => self.audio.clone(),
        };
        let rel = match &self.id {
            Some(id) if !id.trim().is_empty() => safe_rel(id),
            _ if !absolute => safe_rel(&self.audio),
            _ => safe_rel(self.audio.split_once("://").map_or(self.audio.as_str(), |(_, r)| r)),
        };
        Input {
            audio: self.audio,
            uri,
            rel,
            id: self.id,
            language: self.language,
            size: None,
            validator: None,
        }
    }
}

/// A relative name that stays below the output: no leading `/`, no `.` or `..` components.
fn safe_rel(s: &str) -> String {
    let parts: Vec<&str> =
        s.split('/').filter(|c| !c.is_empty() && *c != "." && *c != "..").collect();
    if parts.is_empty() { "input".to_owned() } else { parts.join("/") }
}

fn is_audio(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| AUDIO_EXTENSIONS.iter().any(|a| a.eq_ignore_ascii_case(ext)))
}

/// The inputs of `source`, sorted (listing) or in manifest order.
pub async fn list_inputs(source: &Source) -> Result<Vec<Input>> {
    match source {
        Source::Prefix(prefix) => Ok(objects::list(prefix)
            .await?
            .into_iter()
            .filter(|o| is_audio(&o.rel))
            .map(|o| Input {
                audio: o.uri.clone(),
                uri: o.uri,
                rel: o.rel,
                id: None,
                language: None,
                size: Some(o.size),
                validator: o.validator,
            })
            .collect()),
        Source::Manifest(location) => {
            let bytes = objects::read(location, MAX_MANIFEST_BYTES).await?;
            let text = std::str::from_utf8(&bytes).map_err(|e| Error::Manifest {
                location: location.clone(),
                line: 0,
                detail: format!("not UTF-8: {e}"),
            })?;
            let base = match location.rfind('/') {
                Some(i) => location[..i].to_owned(),
                None => ".".to_owned(),
            };
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                match parse_request(line) {
                    None => {}
                    Some(Ok(r)) => out.push(r.into_input(Some(&base))),
                    Some(Err(detail)) => {
                        return Err(Error::Manifest {
                            location: location.clone(),
                            line: i + 1,
                            detail,
                        });
                    }
                }
            }
            Ok(out)
        }
    }
}

/// The share of the inputs one worker of `count` takes: the inputs whose position is
/// `index` modulo `count` (positions in listing or manifest order, so shards are even and every
/// input belongs to exactly one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This worker, from 0.
    pub index: u32,
    /// Workers in all.
    pub count: u32,
}

impl Shard {
    /// Parse `I/N`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("shard {s:?}: expected INDEX/COUNT with INDEX < COUNT"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count).ok_or_else(bad)
    }

    /// A shard, when `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Self> {
        (index < count).then_some(Shard { index, count })
    }

    /// The shard of an AWS Batch array child: `AWS_BATCH_JOB_ARRAY_INDEX` (set by AWS Batch)
    /// out of `AWS_BATCH_JOB_ARRAY_SIZE` (set in the job definition: Batch does not export the
    /// array size). `None` outside an array job.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(index) = get("AWS_BATCH_JOB_ARRAY_INDEX").filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let Some(size) = get("AWS_BATCH_JOB_ARRAY_SIZE").filter(|v| !v.is_empty()) else {
            return Err(Error::Config(
                "AWS_BATCH_JOB_ARRAY_INDEX is set but AWS_BATCH_JOB_ARRAY_SIZE is not: set it to \
                 the array size in the job definition (or pass --shard INDEX/COUNT)"
                    .into(),
            ));
        };
        Shard::parse(&format!("{index}/{size}")).map(Some)
    }

    /// Whether the input at `position` is this shard's.
    pub fn takes(self, position: usize) -> bool {
        position % self.count as usize == self.index as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert!(parse_request("  ").is_none());
        let r = parse_request("s3://b/a.wav").unwrap().unwrap();
        assert_eq!(r.audio, "s3://b/a.wav");
        let r = parse_request(r#"{"audio":"x/y.wav","id":"7","language":"de"}"#).unwrap().unwrap();
        assert_eq!((r.id.as_deref(), r.language.as_deref()), (Some("7"), Some("de")));
        assert_eq!(parse_request(r#""q.wav""#).unwrap().unwrap().audio, "q.wav");
        assert!(parse_request(r#"{"audio":""}"#).unwrap().is_err());
        assert!(parse_request(r#"{"audi":"x"}"#).unwrap().is_err());
        let r = parse_request(r#"{"audio":"a.wav","text":"ref","seconds":3}"#).unwrap().unwrap();
        assert_eq!(r.audio, "a.wav");
        assert!(parse_request("{not json").unwrap().is_err());
    }

    #[test]
    fn inputs_resolve_and_stay_below_the_output() {
        let i = Request { audio: "a/b.wav".into(), id: None, language: None }
            .into_input(Some("/data/m"));
        assert_eq!((i.uri.as_str(), i.rel.as_str()), ("/data/m/a/b.wav", "a/b.wav"));
        let i = Request { audio: "s3://bk/k/c.flac".into(), id: None, language: None }
            .into_input(Some("/data"));
        assert_eq!((i.uri.as_str(), i.rel.as_str()), ("s3://bk/k/c.flac", "bk/k/c.flac"));
        let i = Request {
            audio: "../../etc/x.wav".into(),
            id: Some("../../up".into()),
            language: None,
        }
        .into_input(None);
        assert_eq!(i.rel, "up");
        let i = Request { audio: "/abs/p.wav".into(), id: None, language: None }.into_input(None);
        assert_eq!((i.uri.as_str(), i.rel.as_str()), ("/abs/p.wav", "abs/p.wav"));
    }

    #[test]
    fn shards_partition() {
        let shards: Vec<_> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        for pos in 0..100 {
            assert_eq!(shards.iter().filter(|s| s.takes(pos)).count(), 1);
        }
        assert_eq!(Shard::parse("2/5").unwrap(), Shard { index: 2, count: 5 });
        for bad in ["5/5", "x/2", "1", "1/0"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let env = |k: &str| match k {
            "AWS_BATCH_JOB_ARRAY_INDEX" => Some("3".to_owned()),
            "AWS_BATCH_JOB_ARRAY_SIZE" => Some("4".to_owned()),
            _ => None,
        };
        assert_eq!(Shard::from_env(env).unwrap(), Some(Shard { index: 3, count: 4 }));
        assert!(
            Shard::from_env(|k| (k == "AWS_BATCH_JOB_ARRAY_INDEX").then(|| "1".into())).is_err()
        );
        assert_eq!(Shard::from_env(|_| None).unwrap(), None);
    }

    #[tokio::test]
    async fn a_directory_lists_audio_only_and_a_manifest_resolves_beside_itself() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        for f in ["b.wav", "sub/a.MP3", "notes.txt"] {
            std::fs::write(d.path().join(f), b"x").unwrap();
        }
        let got = list_inputs(&Source::Prefix(d.path().display().to_string())).await.unwrap();
        let rels: Vec<_> = got.iter().map(|i| i.rel.as_str()).collect();
        assert_eq!(rels, ["b.wav", "sub/a.MP3"]);
        assert!(got.iter().all(|i| i.size == Some(1) && i.validator.is_some()));

        let m = d.path().join("m.jsonl");
        std::fs::write(&m, "{\"audio\":\"b.wav\"}\n\nsub/a.MP3\n").unwrap();
        let got = list_inputs(&Source::Manifest(m.display().to_string())).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].uri, d.path().join("b.wav").display().to_string());
        std::fs::write(&m, "b.wav\n{\"audio\": 3}\n").unwrap();
        let err = list_inputs(&Source::Manifest(m.display().to_string())).await.unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}

//! SageMaker's container contract, as named constants (overridable by flags for local runs).

/// Port SageMaker sends traffic to.
pub const PORT: u16 = 8080;
/// Environment variable SageMaker may set to move the port.
pub const PORT_ENV: &str = "SAGEMAKER_BIND_TO_PORT";
/// Directory SageMaker unpacks the model artifact into.
pub const MODEL_DIR: &str = "/opt/ml/model";
/// Environment variable naming the model directory.
pub const MODEL_DIR_ENV: &str = "SM_MODEL_DIR";

/// Set (to `true`) by SageMaker in the containers of a Batch Transform job.
pub const BATCH_ENV: &str = "SAGEMAKER_BATCH";
/// Largest payload the transform job sends, MB.
pub const MAX_PAYLOAD_ENV: &str = "SAGEMAKER_MAX_PAYLOAD_IN_MB";
/// `SINGLE_RECORD` or `MULTI_RECORD`.
pub const STRATEGY_ENV: &str = "SAGEMAKER_BATCH_STRATEGY";
/// Requests the job sends to one container at once.
pub const MAX_CONCURRENT_ENV: &str = "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS";
/// Harken's choice of what a bad record does in a transform job: `record` or `fail`.
pub const ERRORS_ENV: &str = "HARKEN_BATCH_ERRORS";

/// Batch Transform's own payload cap, MB (Async Inference takes up to 1 GB: raise the body
/// limit with `--max-body-bytes` there instead).
pub const DEFAULT_MAX_PAYLOAD_MB: u64 = 100;

/// How the server runs inside a SageMaker Batch Transform job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// What `GET /execution-parameters` offers as `MaxConcurrentTransforms`.
    pub max_concurrent_transforms: usize,
    /// Largest payload, MB: the body limit becomes at least this.
    pub max_payload_mb: u64,
    /// A record the server cannot transcribe (corrupt, unsupported, too long) is answered
    /// `200` with a JSON error body instead of its 4xx: SageMaker fails the whole transform job
    /// on a 4xx, so one bad file in a million would stop the job. Overload and timeouts keep
    /// their 5xx, which SageMaker retries.
    pub record_errors: bool,
}

impl Batch {
    /// The batch settings from the environment (`get` reads a variable), `None` outside a
    /// transform job. `workers` is the default concurrency offered.
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
        workers: usize,
    ) -> Result<Option<Self>, String> {
        let on = get(BATCH_ENV).is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        if !on {
            return Ok(None);
        }
        let number = |name: &str| -> Result<Option<u64>, String> {
            match get(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| format!("{name}={v:?} is not a positive whole number")),
            }
        };
        if let Some(s) = get(STRATEGY_ENV).filter(|s| !s.trim().is_empty())
            && !s.trim().eq_ignore_ascii_case("SINGLE_RECORD")
        {
            return Err(format!(
                "{STRATEGY_ENV}={s:?}: an audio record is a whole file, so only SINGLE_RECORD \
                 (with SplitType None) is supported"
            ));
        }
        let record_errors = match get(ERRORS_ENV).as_deref().map(str::trim) {
            None | Some("") | Some("record") => true,
            Some("fail") => false,
            Some(other) => return Err(format!("{ERRORS_ENV}={other:?}: expected record or fail")),
        };
        Ok(Some(Batch {
            max_concurrent_transforms: number(MAX_CONCURRENT_ENV)?
                .map_or(workers.max(1), |n| n as usize),
            max_payload_mb: number(MAX_PAYLOAD_ENV)?.unwrap_or(DEFAULT_MAX_PAYLOAD_MB),
            record_errors,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn batch_settings_come_from_sagemakers_environment() {
        assert_eq!(Batch::from_env(env(&[]), 4), Ok(None));
        assert_eq!(Batch::from_env(env(&[(BATCH_ENV, "false")]), 4), Ok(None));
        let b = Batch::from_env(env(&[(BATCH_ENV, "true")]), 4).unwrap().unwrap();
        assert_eq!(
            b,
            Batch { max_concurrent_transforms: 4, max_payload_mb: 100, record_errors: true }
        );
        let b = Batch::from_env(
            env(&[
                (BATCH_ENV, "true"),
                (MAX_PAYLOAD_ENV, "6"),
                (MAX_CONCURRENT_ENV, "2"),
                (STRATEGY_ENV, "single_record"),
                (ERRORS_ENV, "fail"),
            ]),
            4,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            b,
            Batch { max_concurrent_transforms: 2, max_payload_mb: 6, record_errors: false }
        );
        for bad in [
            [(BATCH_ENV, "true"), (STRATEGY_ENV, "MULTI_RECORD")],
            [(BATCH_ENV, "true"), (MAX_PAYLOAD_ENV, "0")],
            [(BATCH_ENV, "true"), (ERRORS_ENV, "ignore")],
        ] {
            assert!(Batch::from_env(env(&bad), 4).is_err(), "{bad:?}");
        }
    }
}

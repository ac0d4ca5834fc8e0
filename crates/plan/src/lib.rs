//! The deployment planner: from a model's measured speed and size, a workload, and a dated
//! prices file, decide for each platform whether the deployment fits (naming the limit that
//! fails), its expected latency (warm and cold) and its yearly cost by part.
//!
//! Pure computation: no I/O, no clock. The binary measures (or reads `harken bench --json`)
//! and prints. Every modelling step is explicit and documented in `docs/planning.md`:
//!
//! - **Compute**: a request of `a` seconds takes `ceil(a/30)·E + a·D` seconds at the measured
//!   thread count (`E`: encoder time per 30-s window, `D`: everything else per audio second).
//! - **Scaling to a target**: Amdahl's law with the parallel fraction `p` measured on this
//!   machine (1 thread versus N): `S(n) = 1 / ((1-p) + p/n)`; time on `v` vCPUs is
//!   `time_ref · S(T_ref) / S(v)`. Lambda's vCPUs are `memory / 1,769 MB` (at most 6). This
//!   assumes the target's cores are as fast as this machine's: an estimate.
//! - **Cold starts** without keep-warm: arrivals are Poisson; an invocation is cold when the
//!   previous one came more than `idle_reclaim_s` earlier: fraction `exp(-λ · idle)`.

mod backlog;
mod prices;
pub mod simulate;

use serde::Serialize;

pub use backlog::{
    Backlog, BacklogPlan, BacklogRow, Charge, Estimate, LocalCheck, check_local, plan_backlog,
    render_backlog, render_check,
};
pub use prices::{BUILTIN, Prices};

/// Errors of the planner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The prices file is invalid.
    #[error("prices file: {0}")]
    Prices(String),
    /// An input is out of range.
    #[error("{0}")]
    Input(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

const SECONDS_PER_YEAR: f64 = 365.0 * 24.0 * 3600.0;
const HOURS_PER_YEAR: f64 = 365.0 * 24.0;
const MB: f64 = 1024.0 * 1024.0;

/// What was measured about the model on this machine.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Model label.
    pub model: String,
    /// Threads the timings were taken with.
    pub threads: u32,
    /// Encoder seconds per 30-s window at `threads`.
    pub encoder_s_per_window: f64,
    /// Everything else (decoding, front end) per audio second at `threads`.
    pub other_s_per_audio_s: f64,
    /// Parallel fraction (Amdahl), from 1-thread versus `threads` runs.
    pub parallel_fraction: f64,
    /// Peak resident memory while transcribing, bytes.
    pub peak_rss_bytes: u64,
    /// Model load time, seconds.
    pub load_s: f64,
    /// Bytes of the model package (what is downloaded or bundled).
    pub model_bytes: u64,
    /// Bytes of the `bootstrap` binary (unzipped).
    pub binary_bytes: u64,
    /// Bytes of the package's n-gram LM or DeepSpeech scorer (0: none).
    #[serde(default)]
    pub lm_bytes: u64,
    /// How the figures were obtained.
    pub source: String,
}

/// The traffic to plan for.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Invocations per year.
    pub invocations_per_year: f64,
    /// Mean audio length, seconds.
    pub mean_audio_s: f64,
    /// 95th-percentile audio length, seconds.
    pub p95_audio_s: f64,
    /// Requests in flight at the busiest moment.
    pub peak_concurrency: u32,
    /// Request body bytes per audio second (16-kHz 16-bit WAV: 32,000).
    pub audio_bytes_per_s: f64,
    /// Put API Gateway (HTTP API) in front of Lambda.
    pub api_gateway: bool,
    /// Keep one Lambda environment warm with a 5-minute schedule.
    pub keep_warm: bool,
}

/// One line of yearly cost.
#[derive(Debug, Clone, Serialize)]
pub struct CostPart {
    /// What it pays for.
    pub item: String,
    /// USD (or the prices file's currency) per year.
    pub per_year: f64,
}

/// One platform's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Platform name.
    pub platform: String,
    /// The configuration chosen (memory size, instance type…).
    pub config: String,
    /// Whether the workload fits.
    pub fits: bool,
    /// The limits that fail, with numbers.
    pub failed: Vec<String>,
    /// Warm latency for the mean and the p95 request, seconds.
    pub warm_mean_s: f64,
    /// Warm latency for the p95 request, seconds.
    pub warm_p95_s: f64,
    /// Extra latency of a cold start, seconds (`None`: always on).
    pub cold_extra_s: Option<f64>,
    /// Share of invocations that start cold.
    pub cold_fraction: f64,
    /// Yearly cost by part.
    pub cost: Vec<CostPart>,
    /// Sum of `cost`.
    pub total_per_year: f64,
    /// Caveats.
    pub notes: Vec<String>,
}

/// The planner's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The inputs, echoed.
    pub measurement: Measurement,
    /// The workload, echoed.
    pub workload: Workload,
    /// Date of the prices used.
    pub prices_as_of: String,
    /// Region of the prices.
    pub region: String,
    /// Currency.
    pub currency: String,
    /// One row per platform.
    pub rows: Vec<Row>,
    /// Lambda at every memory size: (arch, MB, warm mean s, total per year).
    pub lambda_ladder: Vec<(String, u32, f64, f64)>,
    /// The recommendation.
    pub recommendation: String,
    /// What would make a failing deployment fit.
    pub suggestions: Vec<String>,
}

impl Measurement {
    fn speedup(&self, n: f64) -> f64 {
        let p = self.parallel_fraction.clamp(0.0, 1.0);
        1.0 / ((1.0 - p) + p / n.max(1e-9))
    }

    /// Factor from time at the measured thread count to time on `vcpus` vCPUs.
    fn time_scale(&self, vcpus: f64) -> f64 {
        if vcpus < 1.0 {
            // Less than one vCPU is a time slice of one core.
            self.speedup(f64::from(self.threads)) / vcpus
        } else {
            self.speedup(f64::from(self.threads)) / self.speedup(vcpus)
        }
    }

    /// Seconds to transcribe `audio_s` on `vcpus` vCPUs (as fast as this machine's cores).
    pub fn seconds(&self, audio_s: f64, vcpus: f64) -> f64 {
        let windows = (audio_s / 30.0).ceil().max(1.0);
        let at_ref = windows * self.encoder_s_per_window + audio_s * self.other_s_per_audio_s;
        at_ref * self.time_scale(vcpus)
    }

    /// The same time model as [`Measurement::seconds`] on `vcpus` vCPUs, as the simulation
    /// takes it; `Service::seconds(a)` equals `seconds(a, vcpus)`.
    pub fn service(&self, vcpus: f64) -> simulate::Service {
        let k = self.time_scale(vcpus);
        simulate::Service {
            window_s: self.encoder_s_per_window * k,
            per_audio_s: self.other_s_per_audio_s * k,
            per_file_s: 0.0,
        }
    }

    /// Parallel fraction from a 1-thread time and a `threads`-thread time of the same work.
    pub fn parallel_fraction_from(t1: f64, tn: f64, threads: u32) -> f64 {
        if threads <= 1 || tn <= 0.0 || t1 <= 0.0 {
            return 0.0;
        }
        let r = t1 / tn;
        ((1.0 - 1.0 / r) / (1.0 - 1.0 / f64::from(threads))).clamp(0.0, 1.0)
    }
}

fn part(item: impl Into<String>, per_year: f64) -> CostPart {
    CostPart { item: item.into(), per_year }
}

fn total(parts: &[CostPart]) -> f64 {
    parts.iter().map(|p| p.per_year).sum()
}

/// Memory an environment needs: peak RSS plus 15% and 64 MB for the runtime (assumption).
fn needed_mb(m: &Measurement) -> f64 {
    m.peak_rss_bytes as f64 / MB * 1.15 + 64.0
}

/// Seconds a new Lambda environment spends in init on `vcpus`: the model's load time (slower
/// below one vCPU) plus its download from S3 when it is not bundled in the zip.
fn lambda_init_s(m: &Measurement, l: &prices::Lambda, vcpus: f64) -> f64 {
    let bundled = m.binary_bytes + m.model_bytes <= l.unzipped_bytes;
    let download = if bundled { 0.0 } else { m.model_bytes as f64 / MB / l.s3_mb_per_s };
    m.load_s * (1.0 / vcpus.min(1.0)) + download
}

/// Plan `w` for `m` under prices `p`.
pub fn plan(m: &Measurement, w: &Workload, p: &Prices) -> Result<Plan> {
    if !(w.invocations_per_year > 0.0 && w.mean_audio_s > 0.0 && w.p95_audio_s >= w.mean_audio_s) {
        return Err(Error::Input(
            "need invocations > 0, mean audio > 0 s and p95 audio >= mean audio".into(),
        ));
    }
    let mut rows = Vec::new();
    let mut ladder = Vec::new();
    let mut suggestions = Vec::new();
    let lambda_arm = lambda_rows(m, w, p, &mut ladder, &mut suggestions);
    rows.extend(lambda_arm);
    rows.push(realtime_row(m, w, p));
    rows.push(serverless_row(m, w, p));
    rows.push(async_row(m, w, p));
    rows.push(container_row(m, w, p));

    let best =
        rows.iter().filter(|r| r.fits).min_by(|a, b| a.total_per_year.total_cmp(&b.total_per_year));
    let recommendation = match best {
        Some(b) => {
            let always_on = rows
                .iter()
                .filter(|r| r.fits && r.cold_extra_s.is_none())
                .min_by(|a, b| a.total_per_year.total_cmp(&b.total_per_year));
            let mut s = format!(
                "{} ({}) at {:.0} {}/year, warm {:.1} s per mean request",
                b.platform, b.config, b.total_per_year, p.currency, b.warm_mean_s
            );
            if let (Some(cold), Some(a)) = (b.cold_extra_s, always_on)
                && a.platform != b.platform
            {
                s.push_str(&format!(
                        "; {:.0}% of requests start cold (+{cold:.1} s). Without cold starts: {} ({}) at {:.0} {}/year",
                        b.cold_fraction * 100.0,
                        a.platform,
                        a.config,
                        a.total_per_year,
                        p.currency
                    ));
            }
            s
        }
        None => "nothing fits; see the suggestions".into(),
    };
    Ok(Plan {
        measurement: m.clone(),
        workload: w.clone(),
        prices_as_of: p.as_of.clone(),
        region: p.region.clone(),
        currency: p.currency.clone(),
        rows,
        lambda_ladder: ladder,
        recommendation,
        suggestions,
    })
}

fn cold_fraction(w: &Workload, idle_s: f64) -> f64 {
    if w.keep_warm {
        return 0.0;
    }
    let rate = w.invocations_per_year / SECONDS_PER_YEAR;
    (-rate * idle_s).exp()
}

fn lambda_rows(
    m: &Measurement,
    w: &Workload,
    p: &Prices,
    ladder: &mut Vec<(String, u32, f64, f64)>,
    suggestions: &mut Vec<String>,
) -> Vec<Row> {
    let l = &p.lambda;
    let need = needed_mb(m);
    let bundle = m.binary_bytes + m.model_bytes;
    let bundled = bundle <= l.unzipped_bytes;
    let mut out = Vec::new();
    for (arch, gb_s) in [("x86_64", l.x86_64_gb_second), ("arm64", l.arm64_gb_second)] {
        let mut best: Option<Row> = None;
        for &mb in &l.memory_sizes_mb {
            let vcpus = (f64::from(mb) / l.mb_per_vcpu).min(l.max_vcpus);
            let gb = f64::from(mb) / 1024.0;
            let warm_mean = m.seconds(w.mean_audio_s, vcpus);
            let warm_p95 = m.seconds(w.p95_audio_s, vcpus);
            let init = lambda_init_s(m, l, vcpus);
            let cold = cold_fraction(w, l.idle_reclaim_s);
            let n = w.invocations_per_year;
            let mut failed = Vec::new();
            if f64::from(mb) < need {
                failed.push(format!("memory {mb} MB < needed {need:.0} MB"));
            }
            if warm_p95 > l.timeout_s {
                failed.push(format!("p95 duration {warm_p95:.0} s > timeout {:.0} s", l.timeout_s));
            }
            if !bundled && m.model_bytes > l.tmp_max_bytes {
                failed.push(format!(
                    "model {:.1} GB > /tmp maximum {:.0} GB",
                    m.model_bytes as f64 / 1e9,
                    l.tmp_max_bytes as f64 / 1e9
                ));
            }
            let mut notes = Vec::new();
            let p95_bytes = w.p95_audio_s * w.audio_bytes_per_s;
            if p95_bytes > l.sync_payload_bytes as f64 {
                notes.push(format!(
                    "p95 request {:.1} MB > 6 MB sync payload: send audio_s3_uri",
                    p95_bytes / MB
                ));
            }
            if init > l.init_budget_s {
                notes.push(format!(
                    "init {init:.1} s > {:.0} s budget: the first request pays it",
                    l.init_budget_s
                ));
            }
            if arch == "arm64" {
                notes.push("arm64 cores assumed as fast as this machine's (not measured)".into());
            }
            notes.push(if bundled {
                format!("model bundled in the zip ({:.0} MB unzipped)", bundle as f64 / MB)
            } else {
                format!("model fetched from S3 at init ({:.0} MB)", m.model_bytes as f64 / MB)
            });
            let mut cost = vec![
                part("compute (GB-s)", n * warm_mean * gb * gb_s),
                part("requests", n / 1e6 * l.per_million_requests),
            ];
            if l.init_billed {
                cost.push(part("cold-start init (GB-s)", n * cold * init * gb * gb_s));
            }
            if w.keep_warm {
                let pings = SECONDS_PER_YEAR / 300.0;
                cost.push(part(
                    "keep-warm pings",
                    pings / 1e6 * l.per_million_requests + pings * 0.001 * gb * gb_s,
                ));
            }
            if w.api_gateway {
                cost.push(part(
                    "API Gateway (HTTP API)",
                    n / 1e6 * p.api_gateway.http_per_million_requests,
                ));
            }
            let row = Row {
                platform: format!("Lambda {arch}"),
                config: format!("{mb} MB ({vcpus:.1} vCPU)"),
                fits: failed.is_empty(),
                failed,
                warm_mean_s: warm_mean,
                warm_p95_s: warm_p95,
                cold_extra_s: Some(init),
                cold_fraction: cold,
                total_per_year: total(&cost),
                cost,
                notes,
            };
            ladder.push((arch.to_owned(), mb, warm_mean, row.total_per_year));
            let better = match &best {
                None => true,
                Some(b) => {
                    (row.fits && !b.fits)
                        || (row.fits == b.fits && row.total_per_year < b.total_per_year)
                }
            };
            if better {
                best = Some(row);
            }
        }
        if let Some(b) = best {
            out.push(b);
        }
    }
    if !bundled {
        suggestions.push(format!(
            "Lambda: binary + model = {:.0} MB exceeds the {:.0} MB unzipped limit; fetch the model from S3 at init (HARKEN_MODEL_URI=s3://…), or use a container image (up to {:.0} GB)",
            bundle as f64 / MB,
            l.unzipped_bytes as f64 / MB,
            l.image_bytes as f64 / 1e9
        ));
    } else if bundle > l.zip_direct_upload_bytes {
        suggestions.push(format!(
            "Lambda: a zip with the model bundled is about {:.0} MB: over the 50 MB direct upload, so deploy it through S3 (SAM does), or keep the zip small and fetch the model at init",
            bundle as f64 / MB
        ));
    }
    if out.iter().any(|r| !r.fits) {
        suggestions.push(
            "int8 weights (HARKEN_PRECISION=int8) lower resident memory and compute; plan again with --precision int8".into(),
        );
    }
    if m.lm_bytes == 0 {
        suggestions.push(
            "language-model rungs: this package has no n-gram LM, so there is no LM size ladder to trade against WER".into(),
        );
    } else {
        suggestions.push(format!(
            "language-model rungs: its LM is {:.1} MB of the {:.0} MB package; `harken lm prune LM --max-bytes N -o SMALLER` (a .scorer stays a .scorer) fits it to a budget, and `harken lm eval` measures each rung",
            m.lm_bytes as f64 / MB,
            m.model_bytes as f64 / MB
        ));
    }
    out
}

fn realtime_row(m: &Measurement, w: &Workload, p: &Prices) -> Row {
    let r = &p.sagemaker_realtime;
    let need = needed_mb(m);
    let mut best: Option<Row> = None;
    for inst in &r.instances {
        // One transcription per 2 vCPUs, each on 2 threads.
        let slots = (inst.vcpus / 2.0).floor().max(1.0);
        let threads = (inst.vcpus / slots).max(1.0);
        let warm_mean = m.seconds(w.mean_audio_s, threads);
        let warm_p95 = m.seconds(w.p95_audio_s, threads);
        let busy_hours = w.invocations_per_year * warm_mean / 3600.0 / slots;
        let by_load = (busy_hours / HOURS_PER_YEAR / 0.7).ceil(); // keep under 70% busy
        let by_peak = (f64::from(w.peak_concurrency) / slots).ceil();
        let count = by_load.max(by_peak).max(f64::from(r.min_instances));
        let mut failed = Vec::new();
        if inst.memory_gib * 1024.0 < need * slots {
            failed.push(format!(
                "memory {:.0} GiB < {:.1} GiB for {slots} workers",
                inst.memory_gib,
                need * slots / 1024.0
            ));
        }
        if warm_p95 > r.timeout_s {
            failed.push(format!(
                "p95 latency {warm_p95:.0} s > {:.0} s invocation timeout",
                r.timeout_s
            ));
        }
        if w.p95_audio_s * w.audio_bytes_per_s > r.payload_bytes as f64 {
            failed.push("p95 request > 6 MB payload".into());
        }
        let cost = vec![part(
            format!("{count:.0} × {} always on", inst.name),
            count * HOURS_PER_YEAR * inst.per_hour,
        )];
        let row = Row {
            platform: "SageMaker real-time".into(),
            config: format!("{count:.0} × {}", inst.name),
            fits: failed.is_empty(),
            failed,
            warm_mean_s: warm_mean,
            warm_p95_s: warm_p95,
            cold_extra_s: None,
            cold_fraction: 0.0,
            total_per_year: total(&cost),
            cost,
            notes: vec![format!(
                "{slots:.0} concurrent requests per instance; autoscaling minimum {}",
                r.min_instances
            )],
        };
        let better = match &best {
            None => true,
            Some(b) => {
                (row.fits && !b.fits)
                    || (row.fits == b.fits && row.total_per_year < b.total_per_year)
            }
        };
        if better {
            best = Some(row);
        }
    }
    // The prices file guarantees a non-empty instance list (checked when parsed).
    best.unwrap_or_else(|| unreachable_row("SageMaker real-time"))
}

fn unreachable_row(platform: &str) -> Row {
    Row {
        platform: platform.into(),
        config: "-".into(),
        fits: false,
        failed: vec!["no configuration in the prices file".into()],
        warm_mean_s: 0.0,
        warm_p95_s: 0.0,
        cold_extra_s: None,
        cold_fraction: 0.0,
        cost: Vec::new(),
        total_per_year: 0.0,
        notes: Vec::new(),
    }
}

fn serverless_row(m: &Measurement, w: &Workload, p: &Prices) -> Row {
    let s = &p.sagemaker_serverless;
    let need = needed_mb(m);
    let mut best: Option<Row> = None;
    for &mb in &s.memory_sizes_mb {
        let vcpus = (f64::from(mb) / s.mb_per_vcpu).min(s.max_vcpus);
        let warm_mean = m.seconds(w.mean_audio_s, vcpus);
        let warm_p95 = m.seconds(w.p95_audio_s, vcpus);
        let gb = f64::from(mb) / 1024.0;
        let n = w.invocations_per_year;
        let cold =
            cold_fraction(&Workload { keep_warm: false, ..w.clone() }, p.lambda.idle_reclaim_s);
        let mut failed = Vec::new();
        if f64::from(mb) < need {
            failed.push(format!("memory {mb} MB < needed {need:.0} MB"));
        }
        if warm_p95 > s.timeout_s {
            failed.push(format!("p95 latency {warm_p95:.0} s > {:.0} s timeout", s.timeout_s));
        }
        if w.p95_audio_s * w.audio_bytes_per_s > s.payload_bytes as f64 {
            failed.push(format!(
                "p95 request {:.1} MB > 4 MB payload",
                w.p95_audio_s * w.audio_bytes_per_s / MB
            ));
        }
        if w.peak_concurrency > s.max_concurrency {
            failed.push(format!("peak concurrency {} > {}", w.peak_concurrency, s.max_concurrency));
        }
        let cost = vec![
            part("compute (GB-s)", n * warm_mean * gb * s.gb_second),
            part("data in/out", n * w.mean_audio_s * w.audio_bytes_per_s / 1e9 * s.data_per_gb),
        ];
        let row = Row {
            platform: "SageMaker serverless".into(),
            config: format!("{mb} MB"),
            fits: failed.is_empty(),
            failed,
            warm_mean_s: warm_mean,
            warm_p95_s: warm_p95,
            cold_extra_s: Some(s.cold_start_s + m.load_s),
            cold_fraction: cold,
            total_per_year: total(&cost),
            cost,
            notes: vec!["vCPU share by memory is an assumption (AWS publishes none)".into()],
        };
        let better = match &best {
            None => true,
            Some(b) => {
                (row.fits && !b.fits)
                    || (row.fits == b.fits && row.total_per_year < b.total_per_year)
            }
        };
        if better {
            best = Some(row);
        }
    }
    best.unwrap_or_else(|| unreachable_row("SageMaker serverless"))
}

fn async_row(m: &Measurement, w: &Workload, p: &Prices) -> Row {
    let a = &p.sagemaker_async;
    let need = needed_mb(m);
    let inst = p
        .sagemaker_realtime
        .instances
        .iter()
        .filter(|i| i.memory_gib * 1024.0 >= need)
        .min_by(|x, y| x.per_hour.total_cmp(&y.per_hour));
    let Some(inst) = inst else { return unreachable_row("SageMaker async") };
    let warm_mean = m.seconds(w.mean_audio_s, inst.vcpus);
    let warm_p95 = m.seconds(w.p95_audio_s, inst.vcpus);
    let n = w.invocations_per_year;
    let cold = cold_fraction(&Workload { keep_warm: false, ..w.clone() }, p.lambda.idle_reclaim_s);
    // Busy time plus one idle period before scale-in after each burst (assumption).
    let hours = n * warm_mean / 3600.0
        + n * cold * (p.lambda.idle_reclaim_s + a.scale_from_zero_s) / 3600.0;
    let hours = hours.min(HOURS_PER_YEAR * f64::from(w.peak_concurrency.max(1)));
    let mut failed = Vec::new();
    if warm_p95 > a.timeout_s {
        failed.push(format!("p95 processing {warm_p95:.0} s > {:.0} s", a.timeout_s));
    }
    let cost =
        vec![part(format!("{} instance-hours (scales to zero)", inst.name), hours * inst.per_hour)];
    Row {
        platform: "SageMaker async".into(),
        config: format!("0–{} × {}", w.peak_concurrency.max(1), inst.name),
        fits: failed.is_empty(),
        failed,
        warm_mean_s: warm_mean,
        warm_p95_s: warm_p95,
        cold_extra_s: Some(a.scale_from_zero_s + m.load_s),
        cold_fraction: cold,
        total_per_year: total(&cost),
        cost,
        notes: vec!["results arrive in S3 (not a synchronous answer); payloads up to 1 GB".into()],
    }
}

fn container_row(m: &Measurement, w: &Workload, p: &Prices) -> Row {
    let c = &p.container;
    let vcpus_per_replica = 2.0;
    let warm_mean = m.seconds(w.mean_audio_s, vcpus_per_replica);
    let warm_p95 = m.seconds(w.p95_audio_s, vcpus_per_replica);
    let busy = w.invocations_per_year * warm_mean / 3600.0;
    let replicas = (busy / HOURS_PER_YEAR / 0.7)
        .ceil()
        .max(f64::from(w.peak_concurrency))
        .max(f64::from(c.min_replicas));
    let mem_gib = needed_mb(m) / 1024.0;
    let cost = vec![
        part(
            format!("{replicas:.0} replica(s) × {vcpus_per_replica:.0} vCPU always on"),
            replicas * vcpus_per_replica * HOURS_PER_YEAR * c.per_vcpu_hour,
        ),
        part("memory", replicas * mem_gib * HOURS_PER_YEAR * c.per_gib_hour),
    ];
    Row {
        platform: "Container (k8s/EC2)".into(),
        config: format!("{replicas:.0} × {vcpus_per_replica:.0} vCPU / {mem_gib:.1} GiB"),
        fits: true,
        failed: Vec::new(),
        warm_mean_s: warm_mean,
        warm_p95_s: warm_p95,
        cold_extra_s: None,
        cold_fraction: 0.0,
        total_per_year: total(&cost),
        cost,
        notes: vec!["node, cluster and load-balancer costs not included".into()],
    }
}

/// The plan as a text report.
pub fn render(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let m = &plan.measurement;
    let w = &plan.workload;
    let _ = writeln!(
        o,
        "workload  {:.0} invocations/year, mean {:.0} s, p95 {:.0} s audio, peak {} concurrent{}{}",
        w.invocations_per_year,
        w.mean_audio_s,
        w.p95_audio_s,
        w.peak_concurrency,
        if w.api_gateway { ", behind API Gateway" } else { "" },
        if w.keep_warm { ", keep-warm on" } else { "" },
    );
    let _ = writeln!(
        o,
        "model     {}: {}{:.3} s per audio second at {} threads; parallel fraction {:.2}; peak RSS {:.0} MB; load {:.2} s; package {:.0} MB",
        m.model,
        if m.encoder_s_per_window > 0.0 {
            format!("{:.2} s encoder per 30-s window + ", m.encoder_s_per_window)
        } else {
            String::new()
        },
        m.other_s_per_audio_s,
        m.threads,
        m.parallel_fraction,
        m.peak_rss_bytes as f64 / MB,
        m.load_s,
        m.model_bytes as f64 / MB
    );
    let _ = writeln!(o, "measured  {}", m.source);
    let _ = writeln!(
        o,
        "prices    {} {}, as of {} (estimates; see docs/planning.md)",
        plan.region, plan.currency, plan.prices_as_of
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<22} {:<26} {:<5} {:>9} {:>9} {:>14} {:>12}",
        "platform", "configuration", "fits", "warm mean", "warm p95", "cold start", "per year"
    );
    for r in &plan.rows {
        let cold = match r.cold_extra_s {
            Some(c) => format!("+{c:.1} s ({:.0}%)", r.cold_fraction * 100.0),
            None => "always on".into(),
        };
        let _ = writeln!(
            o,
            "{:<22} {:<26} {:<5} {:>8.1}s {:>8.1}s {:>14} {:>12.2}",
            r.platform,
            r.config,
            if r.fits { "yes" } else { "NO" },
            r.warm_mean_s,
            r.warm_p95_s,
            cold,
            r.total_per_year
        );
    }
    let _ = writeln!(o);
    for r in &plan.rows {
        let parts: Vec<String> =
            r.cost.iter().map(|c| format!("{} {:.2}", c.item, c.per_year)).collect();
        let _ = writeln!(o, "{}: {}", r.platform, parts.join(" + "));
        for f in &r.failed {
            let _ = writeln!(o, "  does not fit: {f}");
        }
        for n in &r.notes {
            let _ = writeln!(o, "  note: {n}");
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "Lambda by memory size (MB: warm mean s, per year):");
    for arch in ["x86_64", "arm64"] {
        let cells: Vec<String> = plan
            .lambda_ladder
            .iter()
            .filter(|l| l.0 == arch)
            .map(|(_, mb, t, c)| format!("{mb}: {t:.1} s, {c:.0}"))
            .collect();
        let _ = writeln!(o, "  {arch:<7} {}", cells.join(" | "));
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "recommendation: {}", plan.recommendation);
    for s in &plan.suggestions {
        let _ = writeln!(o, "suggestion: {s}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amdahl_round_trip() {
        let p = Measurement::parallel_fraction_from(2.0, 1.2, 2);
        assert!((p - 0.8).abs() < 1e-9, "{p}");
        assert_eq!(Measurement::parallel_fraction_from(1.0, 1.0, 1), 0.0);
        assert_eq!(Measurement::parallel_fraction_from(1.0, 2.0, 4), 0.0);
    }

    #[test]
    fn builtin_prices_parse() {
        let p = Prices::builtin();
        assert_eq!(p.version, 1);
        assert!(p.lambda.memory_sizes_mb.contains(&1769));
        let b = p.backlog.expect("the built-in file prices backlogs");
        assert_eq!(b.lambda.concurrency_limit, 1000);
        assert!(!b.ec2.instances.is_empty());
    }

    #[test]
    fn prices_without_a_backlog_section_still_parse() {
        let head = BUILTIN.split("\nbacklog:").next().unwrap_or_default();
        let p = Prices::parse(head).expect("parses");
        assert!(p.backlog.is_none());
    }

    #[test]
    fn service_is_the_same_time_model() {
        let m = Measurement {
            model: "m".into(),
            threads: 2,
            encoder_s_per_window: 0.39,
            other_s_per_audio_s: 0.04,
            parallel_fraction: 0.7,
            peak_rss_bytes: 0,
            load_s: 0.1,
            model_bytes: 0,
            binary_bytes: 0,
            lm_bytes: 0,
            source: String::new(),
        };
        for (a, v) in [(20.0, 1.0), (300.0, 2.0), (301.0, 5.8), (5.0, 0.5)] {
            let want = m.seconds(a, v);
            assert!((m.service(v).seconds(a) - want).abs() < 1e-12 * want, "{a} s on {v}");
        }
    }
}

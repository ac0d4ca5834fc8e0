//! Planning a one-off backlog: `n` files of audio already in S3, pushed through each batch
//! platform as fast as its limits allow (or sized to a deadline). For every platform it
//! states the configuration, the workers the limits allow, the time to finish, the total cost
//! by part, the cost per 1,000 hours of audio and the limiting factor.
//!
//! Each platform is reduced to a [`Scenario`] (how many workers, how they start, how fast
//! each file goes) and a list of rates (what each dispatch, file, function-second or
//! instance-second costs). The closed-form [`simulate::estimate`] and, on request, the
//! event-by-event [`simulate::simulate`] turn the scenario into an [`Outcome`]; the same rates
//! price both, so the two columns differ only where the run differs from its averages.
//!
//! It also checks the simulation against a finished local run ([`check_local`]).

use std::fmt::Write as _;

use serde::Serialize;

use crate::prices::{self, Ec2Instance, Instance};
use crate::simulate::{
    self, Arrivals, Backoff, Capacity, Files, Functions, Instances, ListedFile, Outcome, Scenario,
    Service,
};
use crate::{Error, MB, Measurement, Prices, Result, lambda_init_s, needed_mb};

/// The backlog to plan.
#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    /// Files to transcribe.
    pub files: u64,
    /// Mean audio length, seconds.
    pub mean_audio_s: f64,
    /// Spread of audio lengths: the σ of a log-normal around the mean (0: all equal).
    pub audio_sigma: f64,
    /// Bytes of audio per second as stored (16-kHz 16-bit WAV: 32,000).
    pub audio_bytes_per_s: f64,
    /// Probability that one attempt at a file fails.
    pub failure_rate: f64,
    /// Retries of a failed file before it is recorded as failed.
    pub max_retries: u32,
    /// Finish within this many seconds: instance counts and Lambda memory are sized to it.
    pub deadline_s: Option<f64>,
    /// Run the Ray/Spark cluster's worker nodes on Spot (AWS Batch always runs on Spot).
    pub spot_cluster: bool,
    /// Lambda concurrency instead of the prices file's account quota.
    pub lambda_concurrency: Option<u32>,
    /// Ray/Spark worker nodes instead of sizing the cluster.
    pub cluster_nodes: Option<u32>,
    /// Also run the simulation.
    pub simulate: bool,
    /// Seed of the simulation.
    pub seed: u64,
}

/// One part of a platform's cost.
#[derive(Debug, Clone, Serialize)]
pub struct Charge {
    /// What it pays for.
    pub item: String,
    /// Amount in the prices file's currency.
    pub amount: f64,
}

/// Time and cost of a run, from the estimate or the simulation.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Seconds from the start until the last file is done.
    pub wall_s: f64,
    /// Cost by part.
    pub cost: Vec<Charge>,
    /// Sum of `cost`.
    pub total: f64,
    /// `total` per 1,000 hours of audio in the backlog.
    pub per_1000_audio_hours: f64,
    /// Counts behind it: retries, cold starts, throttles, interruptions, peak concurrency.
    pub outcome: Outcome,
}

/// One platform's answer.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogRow {
    /// Platform name.
    pub platform: String,
    /// Configuration chosen.
    pub config: String,
    /// Files (or Lambda invocations) in progress at once at full scale.
    pub workers: u32,
    /// Files per dispatch (Step Functions ItemBatcher; 1 elsewhere).
    pub files_per_dispatch: u32,
    /// Mean seconds one worker spends on one file.
    pub file_s: f64,
    /// Whether every limit holds.
    pub fits: bool,
    /// The limits that fail, with numbers.
    pub failed: Vec<String>,
    /// What bounds the time.
    pub limiting: String,
    /// Whether the estimate finishes by the deadline (`None`: no deadline).
    pub meets_deadline: Option<bool>,
    /// The closed-form estimate.
    pub analytic: Estimate,
    /// The simulation (`None` unless asked for).
    pub simulated: Option<Estimate>,
    /// Caveats.
    pub notes: Vec<String>,
}

/// The answer for a backlog.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogPlan {
    /// The measurement, echoed.
    pub measurement: Measurement,
    /// The backlog, echoed.
    pub backlog: Backlog,
    /// Date of the prices used.
    pub prices_as_of: String,
    /// Region of the prices.
    pub region: String,
    /// Currency.
    pub currency: String,
    /// Hours of audio in the backlog (expected).
    pub audio_hours: f64,
    /// One row per platform.
    pub rows: Vec<BacklogRow>,
    /// The cheapest and the fastest that fit (and meet the deadline, if one is given).
    pub recommendation: String,
}

/// What a cost line is counted in.
#[derive(Debug, Clone, Copy)]
enum Basis {
    Job,
    Dispatch,
    File,
    FileAttempt,
    Succeeded,
    FunctionSecond,
    InstanceSecond,
    WallSecond,
    AttemptAudioSecond,
}

#[derive(Debug, Clone)]
struct Rate {
    item: String,
    basis: Basis,
    per_unit: f64,
}

fn rate(item: impl Into<String>, basis: Basis, per_unit: f64) -> Rate {
    Rate { item: item.into(), basis, per_unit }
}

fn price(rates: &[Rate], o: &Outcome) -> Estimate {
    let mut cost: Vec<Charge> = Vec::new();
    for r in rates {
        let units = match r.basis {
            Basis::Job => 1.0,
            Basis::Dispatch => o.tasks,
            Basis::File => o.files,
            Basis::FileAttempt => o.file_attempts,
            Basis::Succeeded => o.succeeded,
            Basis::FunctionSecond => o.busy_s + o.init_s,
            Basis::InstanceSecond => o.instance_s,
            Basis::WallSecond => o.wall_s,
            Basis::AttemptAudioSecond => o.attempt_audio_s,
        };
        match cost.iter_mut().find(|c| c.item == r.item) {
            Some(c) => c.amount += units * r.per_unit,
            None => cost.push(Charge { item: r.item.clone(), amount: units * r.per_unit }),
        }
    }
    let total = cost.iter().map(|c| c.amount).sum();
    let hours = o.audio_s / 3600.0;
    Estimate {
        wall_s: o.wall_s,
        cost,
        total,
        per_1000_audio_hours: if hours > 0.0 { total / hours * 1000.0 } else { 0.0 },
        outcome: o.clone(),
    }
}

/// A platform configuration before the choice among them.
struct Candidate {
    platform: &'static str,
    config: String,
    workers: u32,
    batch: u32,
    file_s: f64,
    failed: Vec<String>,
    limiting: String,
    notes: Vec<String>,
    scenario: Scenario,
    rates: Vec<Rate>,
    est: Estimate,
    /// Seconds before the first file starts (start-up), for the limiting-factor line.
    startup_s: f64,
}

/// Context shared by the platform builders.
struct Ctx<'a> {
    m: &'a Measurement,
    bl: &'a Backlog,
    p: &'a Prices,
    bp: &'a prices::Backlog,
    need_mb: f64,
}

impl Ctx<'_> {
    /// Seconds per audio second to fetch the audio from S3.
    fn download_per_audio_s(&self) -> f64 {
        self.bl.audio_bytes_per_s / (self.p.lambda.s3_mb_per_s * MB)
    }

    fn service(&self, vcpus: f64, per_file_s: f64) -> Service {
        let mut s = self.m.service(vcpus);
        s.per_audio_s += self.download_per_audio_s();
        s.per_file_s += per_file_s;
        s
    }

    fn files(&self, service: Service) -> Files {
        Files::Drawn {
            count: self.bl.files,
            mean_audio_s: self.bl.mean_audio_s,
            sigma: self.bl.audio_sigma,
            service,
        }
    }

    fn scenario(&self, files: Files, batch: u32, capacity: Capacity) -> Scenario {
        Scenario {
            files,
            arrivals: Arrivals::Backlog,
            batch_files: batch,
            capacity,
            failure_rate: self.bl.failure_rate,
            max_retries: self.bl.max_retries,
            seed: self.bl.seed,
        }
    }

    fn s3_rates(&self) -> Vec<Rate> {
        let s3 = &self.bp.s3;
        vec![
            rate("S3 GET (audio)", Basis::FileAttempt, s3.get_per_thousand / 1000.0),
            rate("S3 PUT (transcripts)", Basis::Succeeded, s3.put_per_thousand / 1000.0),
        ]
    }

    #[allow(clippy::too_many_arguments)] // one call per platform; a struct would only rename them
    fn candidate(
        &self,
        platform: &'static str,
        config: String,
        workers: u32,
        scenario: Scenario,
        rates: Vec<Rate>,
        failed: Vec<String>,
        limiting: String,
        notes: Vec<String>,
        startup_s: f64,
    ) -> Candidate {
        let st = scenario.files.stats();
        let est = price(&rates, &simulate::estimate(&scenario));
        Candidate {
            platform,
            config,
            workers,
            batch: scenario.batch_files,
            file_s: st.mean_service_s,
            failed,
            limiting,
            notes,
            scenario,
            rates,
            est,
            startup_s,
        }
    }
}

/// Plan backlog `bl` for `m` under prices `p`.
pub fn plan_backlog(m: &Measurement, bl: &Backlog, p: &Prices) -> Result<BacklogPlan> {
    let Some(bp) = &p.backlog else {
        return Err(Error::Prices(
            "no `backlog` section: this prices file cannot plan a backlog (see deploy/prices/aws-us-east-1.yaml)".into(),
        ));
    };
    if !(bl.files > 0 && bl.mean_audio_s > 0.0) {
        return Err(Error::Input("need backlog files > 0 and mean audio > 0 s".into()));
    }
    if !(0.0..1.0).contains(&bl.failure_rate) || !(0.0..=3.0).contains(&bl.audio_sigma) {
        return Err(Error::Input("need 0 <= failure rate < 1 and 0 <= audio sigma <= 3".into()));
    }
    if bl.deadline_s.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        return Err(Error::Input("need a deadline > 0 hours".into()));
    }
    if bl.lambda_concurrency == Some(0) || bl.cluster_nodes == Some(0) {
        return Err(Error::Input("need Lambda concurrency and cluster nodes >= 1".into()));
    }
    let cx = Ctx { m, bl, p, bp, need_mb: needed_mb(m) };
    let groups = [
        lambda_candidates(&cx, Via::StepFunctions),
        lambda_candidates(&cx, Via::S3Batch),
        sagemaker_candidates(&cx, Sm::Transform),
        sagemaker_candidates(&cx, Sm::Async),
        ec2_candidates(&cx, Ec2Use::Batch),
        ec2_candidates(&cx, Ec2Use::Cluster),
    ];
    let mut rows = Vec::new();
    for group in groups {
        let Some(c) = choose(group, bl.deadline_s) else { continue };
        rows.push(row(c, bl));
    }
    let audio_hours = rows.first().map_or(0.0, |r| r.analytic.outcome.audio_s / 3600.0);
    let recommendation = recommend(&rows, bl, &p.currency);
    Ok(BacklogPlan {
        measurement: m.clone(),
        backlog: bl.clone(),
        prices_as_of: p.as_of.clone(),
        region: p.region.clone(),
        currency: p.currency.clone(),
        audio_hours,
        rows,
        recommendation,
    })
}

/// Configurations costing at most this much more than the cheapest count as "as cheap".
const NEAR_CHEAPEST: f64 = 1.05;

/// Pick one configuration of a platform: among those that fit, the cheapest that meets the
/// deadline, else the fastest; without a deadline, the fastest of those within 5% of the
/// cheapest (on throughput platforms the cost of the work barely depends on the instance
/// size, but the time at a fixed instance count does).
fn choose(cands: Vec<Candidate>, deadline_s: Option<f64>) -> Option<Candidate> {
    let fits = cands.iter().any(|c| c.failed.is_empty());
    let pool: Vec<Candidate> = cands.into_iter().filter(|c| c.failed.is_empty() || !fits).collect();
    let cheapest = |v: Vec<Candidate>| {
        v.into_iter().min_by(|a, b| {
            a.est.total.total_cmp(&b.est.total).then(a.est.wall_s.total_cmp(&b.est.wall_s))
        })
    };
    match deadline_s {
        Some(d) if pool.iter().any(|c| c.est.wall_s <= d) => {
            cheapest(pool.into_iter().filter(|c| c.est.wall_s <= d).collect())
        }
        Some(_) => pool.into_iter().min_by(|a, b| a.est.wall_s.total_cmp(&b.est.wall_s)),
        None => {
            let floor = pool.iter().map(|c| c.est.total).fold(f64::INFINITY, f64::min);
            pool.into_iter()
                .filter(|c| c.est.total <= floor * NEAR_CHEAPEST)
                .min_by(|a, b| a.est.wall_s.total_cmp(&b.est.wall_s))
        }
    }
}

fn row(c: Candidate, bl: &Backlog) -> BacklogRow {
    let simulated = bl.simulate.then(|| price(&c.rates, &simulate::simulate(&c.scenario)));
    let mut limiting = c.limiting;
    let o = &c.est.outcome;
    if o.tasks < f64::from(c.workers) {
        limiting = format!(
            "{} dispatches for {} workers: the longest file bounds the time",
            grouped(o.tasks),
            grouped(f64::from(c.workers))
        );
    } else if c.startup_s > 0.1 * c.est.wall_s {
        let _ = write!(
            limiting,
            "; start-up {} is {:.0}% of the time",
            duration(c.startup_s),
            c.startup_s / c.est.wall_s * 100.0
        );
    }
    BacklogRow {
        platform: c.platform.into(),
        config: c.config,
        workers: c.workers,
        files_per_dispatch: c.batch,
        file_s: c.file_s,
        fits: c.failed.is_empty(),
        failed: c.failed,
        limiting,
        meets_deadline: bl.deadline_s.map(|d| c.est.wall_s <= d),
        analytic: c.est,
        simulated,
        notes: c.notes,
    }
}

fn recommend(rows: &[BacklogRow], bl: &Backlog, currency: &str) -> String {
    let ok: Vec<&BacklogRow> =
        rows.iter().filter(|r| r.fits && r.meets_deadline != Some(false)).collect();
    let cheapest = ok.iter().min_by(|a, b| a.analytic.total.total_cmp(&b.analytic.total));
    let fastest = ok.iter().min_by(|a, b| a.analytic.wall_s.total_cmp(&b.analytic.wall_s));
    let say = |r: &BacklogRow| {
        format!(
            "{} ({}): {} {currency} in {}",
            r.platform,
            r.config,
            money(r.analytic.total),
            duration(r.analytic.wall_s)
        )
    };
    match (cheapest, fastest) {
        (Some(c), Some(f)) if c.platform == f.platform => {
            format!("cheapest and fastest: {}", say(c))
        }
        (Some(c), Some(f)) => format!("cheapest: {}; fastest: {}", say(c), say(f)),
        _ => match bl.deadline_s {
            Some(d) => format!(
                "nothing that fits finishes within {}; raise the quotas (Lambda concurrency, instance counts) or the deadline",
                duration(d)
            ),
            None => "nothing fits; see the limits above".into(),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    StepFunctions,
    S3Batch,
}

fn lambda_candidates(cx: &Ctx<'_>, via: Via) -> Vec<Candidate> {
    let (l, bp) = (&cx.p.lambda, cx.bp);
    let sf = &bp.step_functions;
    let limit = cx.bl.lambda_concurrency.unwrap_or(bp.lambda.concurrency_limit).max(1);
    let mut out = Vec::new();
    for &mb in &l.memory_sizes_mb {
        let vcpus = (f64::from(mb) / l.mb_per_vcpu).min(l.max_vcpus);
        let gb = f64::from(mb) / 1024.0;
        let service = cx.service(vcpus, 0.0);
        let files = cx.files(service);
        let st = files.stats();
        let (batch, dispatch) = match via {
            Via::StepFunctions => {
                let b = (bp.lambda.batch_target_s / st.mean_service_s.max(1e-9)).floor();
                (
                    b.clamp(1.0, f64::from(sf.max_items_per_batch.max(1))) as u32,
                    limit.min(sf.map_max_concurrency),
                )
            }
            Via::S3Batch => (1, limit),
        };
        let task_p99 = files.task_quantile(&st, batch, 0.99);
        let cold = lambda_init_s(cx.m, l, vcpus);
        let mut failed = Vec::new();
        if f64::from(mb) < cx.need_mb {
            failed.push(format!("memory {mb} MB < needed {:.0} MB", cx.need_mb));
        }
        if task_p99 + cold > l.timeout_s {
            failed.push(format!(
                "p99 invocation {:.0} s > {:.0} s timeout",
                task_p99 + cold,
                l.timeout_s
            ));
        }
        let mut rates = vec![
            rate("Lambda compute (GB-s)", Basis::FunctionSecond, gb * l.x86_64_gb_second),
            rate("Lambda requests", Basis::Dispatch, l.per_million_requests / 1e6),
        ];
        let mut notes = Vec::new();
        let platform;
        let config;
        match via {
            Via::StepFunctions => {
                platform = "Lambda + Step Functions";
                // Children run one invocation each; Express bills its duration, Standard
                // its transitions. Express children must finish within 5 minutes.
                let task_s = st.mean_service_s * f64::from(batch);
                let express_mb = f64::from(sf.express_memory_mb) / 1024.0;
                let express = sf.express_per_million_requests / 1e6
                    + task_s * express_mb * sf.express_gb_second;
                let standard = sf.child_transitions * sf.standard_per_transition;
                let express_ok = task_p99 + cold <= sf.express_max_duration_s;
                let use_express = express_ok && express < standard;
                rates.push(rate(
                    "Step Functions parent",
                    Basis::Job,
                    sf.parent_transitions * sf.standard_per_transition,
                ));
                rates.push(rate(
                    "Step Functions map (1 transition per child)",
                    Basis::Dispatch,
                    sf.standard_per_transition,
                ));
                if use_express {
                    rates.push(rate(
                        "Express children (requests)",
                        Basis::Dispatch,
                        sf.express_per_million_requests / 1e6,
                    ));
                    rates.push(rate(
                        "Express children (duration)",
                        Basis::FunctionSecond,
                        express_mb * sf.express_gb_second,
                    ));
                    notes.push(format!(
                        "Standard children would cost {standard:.5} per child instead of {express:.5}"
                    ));
                } else {
                    rates.push(rate("Standard children (transitions)", Basis::Dispatch, standard));
                    notes.push(if express_ok {
                        format!(
                            "Express children would cost {express:.5} per child instead of {standard:.5}"
                        )
                    } else {
                        format!(
                            "Express children are ruled out: a p99 child runs {:.0} s > {:.0} s",
                            task_p99 + cold,
                            sf.express_max_duration_s
                        )
                    });
                }
                config = format!(
                    "{mb} MB × {batch} files, {} children",
                    if use_express { "Express" } else { "Standard" }
                );
                notes.push(format!(
                    "Distributed Map MaxConcurrency set to {dispatch} (its maximum is {}); retries on 429 with back-off ({} attempts)",
                    sf.map_max_concurrency, bp.lambda.retry_max_attempts
                ));
            }
            Via::S3Batch => {
                platform = "Lambda + S3 Batch Ops";
                rates.push(rate(
                    "S3 Batch Operations job",
                    Basis::Job,
                    bp.s3.batch_operations_per_job,
                ));
                rates.push(rate(
                    "S3 Batch Operations objects",
                    Basis::File,
                    bp.s3.batch_operations_per_million_objects / 1e6,
                ));
                config = format!("{mb} MB × 1 file");
                notes.push(
                    "S3 Batch Operations invokes once per object; how hard it drives the function is not published (modelled at the function's concurrency); a CSV or S3 Inventory manifest is needed".into(),
                );
            }
        }
        rates.extend(cx.s3_rates());
        let capacity = Capacity::Functions(Functions {
            limit,
            dispatch,
            new_envs_burst: bp.lambda.new_environments_burst,
            new_envs_per_s: bp.lambda.new_environments_per_s,
            cold_start_s: cold,
            idle_reclaim_s: l.idle_reclaim_s,
            backoff: Backoff {
                base_s: bp.lambda.retry_base_s,
                factor: bp.lambda.retry_factor,
                max_s: bp.lambda.retry_max_s,
                max_attempts: bp.lambda.retry_max_attempts,
            },
        });
        let mut limiting = if dispatch < limit {
            format!("Distributed Map MaxConcurrency {}", grouped(f64::from(dispatch)))
        } else {
            format!("Lambda concurrency {} (account quota)", grouped(f64::from(limit)))
        };
        let workers = dispatch.min(limit);
        if workers > bp.lambda.new_environments_burst && bp.lambda.new_environments_per_s > 0.0 {
            let ramp = f64::from(workers - bp.lambda.new_environments_burst)
                / bp.lambda.new_environments_per_s;
            let _ = write!(limiting, "; scaling ramp {}", duration(ramp));
            // Mean total wait of a dispatch that uses every retry (full jitter: half each cap).
            let l = &bp.lambda;
            let patience: f64 = (0..l.retry_max_attempts)
                .map(|k| (l.retry_base_s * l.retry_factor.powi(k as i32)).min(l.retry_max_s) / 2.0)
                .sum();
            if patience < ramp {
                notes.push(format!(
                    "throttled dispatches give up after about {} of back-off, less than the {} ramp: raise the retry attempts or ramp the dispatch concurrency up (--simulate counts the files lost)",
                    duration(patience),
                    duration(ramp)
                ));
            }
        }
        notes.push(format!(
            "cold start {cold:.2} s per new environment (billed); x86_64 (arm64 is 20% cheaper per GB-s but not measured)"
        ));
        let scenario = cx.scenario(files, batch, capacity);
        out.push(
            cx.candidate(platform, config, workers, scenario, rates, failed, limiting, notes, cold),
        );
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sm {
    Transform,
    Async,
}

/// Smallest instance count (1..=max) whose estimate meets the deadline, else `max`.
fn sized(max: u32, deadline_s: Option<f64>, make: impl Fn(u32) -> Candidate) -> Candidate {
    let max = max.max(1);
    let Some(d) = deadline_s else { return make(max) };
    let top = make(max);
    if top.est.wall_s > d {
        return top;
    }
    let (mut lo, mut hi) = (1, max);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if make(mid).est.wall_s <= d {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut c = make(lo);
    c.limiting = format!("sized to the deadline: {}", c.config);
    c
}

fn slots_for(vcpus: f64) -> (u32, f64) {
    // One transcription per 2 vCPUs, each on 2 threads (as for real-time endpoints).
    let slots = (vcpus / 2.0).floor().max(1.0);
    (slots as u32, (vcpus / slots).max(1.0))
}

fn sagemaker_candidates(cx: &Ctx<'_>, which: Sm) -> Vec<Candidate> {
    let sm = &cx.bp.sagemaker;
    let instances: Vec<&Instance> =
        cx.p.sagemaker_realtime.instances.iter().chain(sm.extra_instances.iter()).collect();
    let mut out = Vec::new();
    for inst in instances {
        let (slots, threads) = slots_for(inst.vcpus);
        let overhead = match which {
            Sm::Transform => 0.0,
            Sm::Async => sm.async_request_overhead_s,
        };
        let files = cx.files(cx.service(threads, overhead));
        let st = files.stats();
        let mut failed = Vec::new();
        if inst.memory_gib * 1024.0 < cx.need_mb * f64::from(slots) {
            failed.push(format!(
                "memory {:.0} GiB < {:.1} GiB for {slots} workers",
                inst.memory_gib,
                cx.need_mb * f64::from(slots) / 1024.0
            ));
        }
        let p99_bytes = st.p99_audio_s * cx.bl.audio_bytes_per_s;
        let (timeout, payload) = match which {
            Sm::Transform => (sm.transform_invocation_timeout_s, sm.transform_max_payload_bytes),
            Sm::Async => (cx.p.sagemaker_async.timeout_s, cx.p.sagemaker_async.payload_bytes),
        };
        if st.p99_service_s > timeout {
            failed.push(format!(
                "p99 file {:.0} s > {timeout:.0} s invocation timeout",
                st.p99_service_s
            ));
        }
        if p99_bytes > payload as f64 {
            failed.push(format!(
                "p99 file {:.0} MB > {:.0} MB payload",
                p99_bytes / MB,
                payload as f64 / MB
            ));
        }
        let (max, startup, release, platform) = match which {
            Sm::Transform => (
                sm.transform_max_instances,
                sm.transform_startup_s,
                None,
                "SageMaker Batch Transform",
            ),
            Sm::Async => (
                sm.async_max_instances,
                cx.p.sagemaker_async.scale_from_zero_s,
                Some(sm.async_scale_in_after_s),
                "SageMaker async",
            ),
        };
        let startup = startup + cx.m.load_s;
        let make = |count: u32| {
            let capacity = Capacity::Instances(Instances {
                count,
                slots,
                startup_s: startup,
                startup_jitter: 0.15,
                interruptions_per_hour: 0.0,
                release_after_idle_s: release,
            });
            let mut rates = vec![rate(
                format!("{} instance-hours", inst.name),
                Basis::InstanceSecond,
                inst.per_hour / 3600.0,
            )];
            let mut notes = Vec::new();
            let limiting;
            match which {
                Sm::Transform => {
                    limiting = format!(
                        "transform instance quota: {count} × {} × {slots} concurrent transforms",
                        inst.name
                    );
                    notes.push(
                        "one record per audio file (SplitType None); instances billed from start-up to the end of the job".into(),
                    );
                }
                Sm::Async => {
                    limiting = format!(
                        "autoscaling maximum: {count} × {} × {slots} concurrent invocations",
                        inst.name
                    );
                    rates.push(rate(
                        "SageMaker data processed",
                        Basis::AttemptAudioSecond,
                        cx.bl.audio_bytes_per_s / 1e9 * sm.async_data_per_gb,
                    ));
                    notes.push(format!(
                        "a request per file ({:.1} s overhead each); instances scale in {} after the queue drains",
                        sm.async_request_overhead_s,
                        duration(sm.async_scale_in_after_s)
                    ));
                }
            }
            rates.extend(cx.s3_rates());
            let scenario = cx.scenario(files.clone(), 1, capacity);
            cx.candidate(
                platform,
                format!("{count} × {}", inst.name),
                count * slots,
                scenario,
                rates,
                failed.clone(),
                limiting,
                notes,
                startup,
            )
        };
        out.push(sized(max, cx.bl.deadline_s, make));
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ec2Use {
    Batch,
    Cluster,
}

fn ec2_candidates(cx: &Ctx<'_>, use_: Ec2Use) -> Vec<Candidate> {
    let (ab, cl) = (&cx.bp.aws_batch, &cx.bp.cluster);
    let mut out = Vec::new();
    for inst in &cx.bp.ec2.instances {
        let (slots, threads) = slots_for(inst.vcpus);
        let files = cx.files(cx.service(threads, 0.0));
        let mut failed = Vec::new();
        if inst.memory_gib * 1024.0 < cx.need_mb * f64::from(slots) {
            failed.push(format!(
                "memory {:.0} GiB < {:.1} GiB for {slots} workers",
                inst.memory_gib,
                cx.need_mb * f64::from(slots) / 1024.0
            ));
        }
        let spot = match use_ {
            Ec2Use::Batch => true,
            Ec2Use::Cluster => cx.bl.spot_cluster,
        };
        let (per_hour, hazard) = if spot {
            (inst.spot_per_hour, ab.interruptions_per_instance_hour)
        } else {
            (inst.on_demand_per_hour, 0.0)
        };
        let make = |count: u32| {
            ec2_candidate(cx, use_, inst, count, slots, spot, per_hour, hazard, &files, &failed)
        };
        let c = match (use_, cx.bl.cluster_nodes) {
            (Ec2Use::Batch, _) => {
                let max = (f64::from(ab.max_vcpus) / inst.vcpus).floor().max(1.0) as u32;
                sized(max, cx.bl.deadline_s, make)
            }
            (Ec2Use::Cluster, Some(k)) => make(k),
            (Ec2Use::Cluster, None) => sized(cl.max_nodes, cx.bl.deadline_s, make),
        };
        out.push(c);
    }
    out
}

#[allow(clippy::too_many_arguments)] // the closure's captures, spelled out
fn ec2_candidate(
    cx: &Ctx<'_>,
    use_: Ec2Use,
    inst: &Ec2Instance,
    count: u32,
    slots: u32,
    spot: bool,
    per_hour: f64,
    hazard: f64,
    files: &Files,
    failed: &[String],
) -> Candidate {
    let (ab, cl) = (&cx.bp.aws_batch, &cx.bp.cluster);
    let market = if spot { "Spot" } else { "on-demand" };
    let mut rates = vec![rate(
        format!("{} {market} instance-hours", inst.name),
        Basis::InstanceSecond,
        per_hour / 3600.0,
    )];
    let mut notes =
        vec![format!("{} {market} at {:.4} per vCPU-hour", inst.name, per_hour / inst.vcpus)];
    if spot {
        notes.push(format!(
            "Spot interruptions at {} per instance-hour (assumption): in-flight files go back to the queue",
            ab.interruptions_per_instance_hour
        ));
    }
    let (platform, startup, release, limiting) = match use_ {
        Ec2Use::Batch => (
            "AWS Batch on Spot",
            ab.startup_s + cx.m.load_s,
            Some(ab.release_after_idle_s),
            format!(
                "maxvCpus {} (Spot vCPU quota): {count} × {} × {slots} worker{}",
                grouped(f64::from(ab.max_vcpus)),
                inst.name,
                plural(slots)
            ),
        ),
        Ec2Use::Cluster => {
            rates.push(rate(
                format!("{} × {} head node (on-demand)", cl.head_nodes, inst.name),
                Basis::WallSecond,
                f64::from(cl.head_nodes) * inst.on_demand_per_hour / 3600.0,
            ));
            notes.push(
                "self-managed Ray/Spark on EC2: no EMR fee; nodes billed from start-up until the last file"
                    .into(),
            );
            (
                "Ray/Spark cluster",
                cl.startup_s + cx.m.load_s,
                None,
                format!("cluster size: {count} × {} × {slots} worker{}", inst.name, plural(slots)),
            )
        }
    };
    rates.extend(cx.s3_rates());
    let capacity = Capacity::Instances(Instances {
        count,
        slots,
        startup_s: startup,
        startup_jitter: 0.15,
        interruptions_per_hour: hazard,
        release_after_idle_s: release,
    });
    let scenario = cx.scenario(files.clone(), 1, capacity);
    cx.candidate(
        platform,
        format!("{count} × {} {market}", inst.name),
        count * slots,
        scenario,
        rates,
        failed.to_vec(),
        limiting,
        notes,
        startup,
    )
}

/// A finished local batch run checked against the simulation.
#[derive(Debug, Clone, Serialize)]
pub struct LocalCheck {
    /// Files transcribed (lines with `"status": "ok"`).
    pub files: usize,
    /// Workers the run used.
    pub workers: u32,
    /// Audio seconds of those files.
    pub audio_s: f64,
    /// Seconds the workers spent, summed over files.
    pub work_s: f64,
    /// Wall time the simulation predicts for these files on `workers`.
    pub simulated_wall_s: f64,
    /// Wall time the closed-form estimate predicts.
    pub estimated_wall_s: f64,
    /// Wall time measured (`None`: unknown).
    pub measured_wall_s: Option<f64>,
}

/// Simulate `files` (audio and measured seconds each, in the order they ran) on `workers`
/// workers, to compare with the run's measured wall time.
pub fn check_local(
    files: Vec<ListedFile>,
    workers: u32,
    measured_wall_s: Option<f64>,
    seed: u64,
) -> Result<LocalCheck> {
    if files.is_empty() || workers == 0 {
        return Err(Error::Input("need at least one transcribed file and one worker".into()));
    }
    let n = files.len();
    let audio_s = files.iter().map(|f| f.audio_s).sum();
    let work_s = files.iter().map(|f| f.service_s).sum();
    let s = Scenario {
        files: Files::Listed(files),
        arrivals: Arrivals::Backlog,
        batch_files: 1,
        capacity: Capacity::Instances(Instances {
            count: workers,
            slots: 1,
            startup_s: 0.0,
            startup_jitter: 0.0,
            interruptions_per_hour: 0.0,
            release_after_idle_s: None,
        }),
        failure_rate: 0.0,
        max_retries: 0,
        seed,
    };
    Ok(LocalCheck {
        files: n,
        workers,
        audio_s,
        work_s,
        simulated_wall_s: simulate::simulate(&s).wall_s,
        estimated_wall_s: simulate::estimate(&s).wall_s,
        measured_wall_s,
    })
}

/// The check as text.
pub fn render_check(c: &LocalCheck) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "local run  {} files, {:.1} s of audio, {:.1} s of work on {} worker(s)",
        c.files, c.audio_s, c.work_s, c.workers
    );
    let _ = writeln!(o, "simulated  {:.1} s wall", c.simulated_wall_s);
    let _ = writeln!(o, "estimated  {:.1} s wall (closed form)", c.estimated_wall_s);
    match c.measured_wall_s {
        Some(m) if m > 0.0 => {
            let _ = writeln!(
                o,
                "measured   {m:.1} s wall: simulation {:+.1}%, estimate {:+.1}%",
                (c.simulated_wall_s / m - 1.0) * 100.0,
                (c.estimated_wall_s / m - 1.0) * 100.0
            );
        }
        _ => {
            let _ = writeln!(
                o,
                "measured   unknown (pass --check-wall-seconds, or index lines with \"t\" stamps)"
            );
        }
    }
    o
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `1234567.8` → `1,234,568`.
fn grouped(x: f64) -> String {
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if x < -0.5 { format!("-{out}") } else { out }
}

/// `1234.5` → `1,234.50`.
fn money(x: f64) -> String {
    let cents = (x * 100.0).round();
    let whole = (cents / 100.0).trunc();
    format!("{}.{:02}", grouped(whole), (cents - whole * 100.0).abs() as u64)
}

/// Seconds as s, min, h or days.
fn duration(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 2.0 * 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 72.0 * 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86400.0)
    }
}

/// The backlog plan as a text report.
pub fn render_backlog(plan: &BacklogPlan) -> String {
    let mut o = String::new();
    let b = &plan.backlog;
    let m = &plan.measurement;
    let _ = writeln!(
        o,
        "backlog   {} files × {:.0} s mean audio (log-normal σ {:.2}): {} h of audio; {}% of attempts fail, up to {} retries; {}",
        grouped(b.files as f64),
        b.mean_audio_s,
        b.audio_sigma,
        grouped(plan.audio_hours),
        b.failure_rate * 100.0,
        b.max_retries,
        match b.deadline_s {
            Some(d) => format!("deadline {}", duration(d)),
            None => "no deadline".into(),
        }
    );
    let _ = writeln!(
        o,
        "model     {}: {:.2} s encoder per 30-s window + {:.3} s per audio second at {} threads; parallel fraction {:.2}; peak RSS {:.0} MB; load {:.2} s",
        m.model,
        m.encoder_s_per_window,
        m.other_s_per_audio_s,
        m.threads,
        m.parallel_fraction,
        m.peak_rss_bytes as f64 / MB,
        m.load_s
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
        "{:<25} {:<48} {:>7} {:>10} {:>12} {:>11}  limiting factor",
        "platform",
        "configuration",
        "workers",
        "time",
        format!("total {}", plan.currency),
        "per 1,000 h"
    );
    for r in &plan.rows {
        let mut config = r.config.clone();
        if !r.fits {
            config.push_str(" (NO FIT)");
        }
        if r.meets_deadline == Some(false) {
            config.push_str(" (late)");
        }
        let _ = writeln!(
            o,
            "{:<25} {:<48} {:>7} {:>10} {:>12} {:>11}  {}",
            r.platform,
            config,
            grouped(f64::from(r.workers)),
            duration(r.analytic.wall_s),
            money(r.analytic.total),
            money(r.analytic.per_1000_audio_hours),
            r.limiting
        );
        if let Some(s) = &r.simulated {
            let so = &s.outcome;
            let mut what = vec![
                format!("{} retries", grouped(so.retries)),
                format!("{} failed", grouped(so.failed)),
                format!("peak {}", grouped(so.peak_concurrency)),
            ];
            if so.cold_starts > 0.0 || so.throttles > 0.0 {
                what.push(format!("{} cold starts", grouped(so.cold_starts)));
                what.push(format!("{} throttled", grouped(so.throttles)));
            }
            if so.interruptions > 0.0 {
                what.push(format!(
                    "{} interruptions ({} files re-queued)",
                    grouped(so.interruptions),
                    grouped(so.lost_to_interruptions)
                ));
            }
            let _ = writeln!(
                o,
                "{:<25} {:<48} {:>7} {:>10} {:>12} {:>11}  {}",
                "  simulated",
                "",
                "",
                duration(s.wall_s),
                money(s.total),
                money(s.per_1000_audio_hours),
                what.join(", ")
            );
        }
    }
    let _ = writeln!(o);
    for r in &plan.rows {
        let parts: Vec<String> =
            r.analytic.cost.iter().map(|c| format!("{} {}", c.item, money(c.amount))).collect();
        let _ = writeln!(
            o,
            "{}: {:.1} s per file per worker; {}",
            r.platform,
            r.file_s,
            parts.join(" + ")
        );
        for f in &r.failed {
            let _ = writeln!(o, "  does not fit: {f}");
        }
        for n in &r.notes {
            let _ = writeln!(o, "  note: {n}");
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "recommendation: {}", plan.recommendation);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement() -> Measurement {
        // Whisper base int8 as measured for the reference scenario (2 threads, AVX-512).
        Measurement {
            model: "whisper-base-int8 (int8)".into(),
            threads: 2,
            encoder_s_per_window: 0.3867,
            other_s_per_audio_s: 0.03994,
            parallel_fraction: 0.55,
            peak_rss_bytes: 177_971_200,
            load_s: 0.063,
            model_bytes: 82_296_865,
            binary_bytes: 31_485_904,
            lm_bytes: 0,
            source: "test".into(),
        }
    }

    fn backlog(files: u64) -> Backlog {
        Backlog {
            files,
            mean_audio_s: 300.0,
            audio_sigma: 0.5,
            audio_bytes_per_s: 32_000.0,
            failure_rate: 0.001,
            max_retries: 2,
            deadline_s: None,
            spot_cluster: false,
            lambda_concurrency: None,
            cluster_nodes: None,
            simulate: false,
            seed: 1,
        }
    }

    #[test]
    fn every_platform_gets_a_row_with_time_cost_and_a_limit() {
        let plan = plan_backlog(&measurement(), &backlog(100_000), &Prices::builtin()).unwrap();
        let names: Vec<&str> = plan.rows.iter().map(|r| r.platform.as_str()).collect();
        assert_eq!(
            names,
            [
                "Lambda + Step Functions",
                "Lambda + S3 Batch Ops",
                "SageMaker Batch Transform",
                "SageMaker async",
                "AWS Batch on Spot",
                "Ray/Spark cluster"
            ]
        );
        for r in &plan.rows {
            assert!(r.fits, "{}: {:?}", r.platform, r.failed);
            assert!(r.analytic.wall_s > 0.0 && r.analytic.total > 0.0, "{}", r.platform);
            assert!(!r.limiting.is_empty());
            let hours = r.analytic.outcome.audio_s / 3600.0;
            assert!(
                (r.analytic.per_1000_audio_hours - r.analytic.total / hours * 1000.0).abs() < 1e-6
            );
        }
        let sf = &plan.rows[0];
        assert!(sf.files_per_dispatch > 1);
        assert_eq!(sf.workers, 1000);
        assert!(sf.limiting.starts_with("Lambda concurrency 1,000"), "{}", sf.limiting);
        // Lambda's 1,000 environments finish long before 20 Batch Transform instances.
        assert!(sf.analytic.wall_s < plan.rows[2].analytic.wall_s);
        let text = render_backlog(&plan);
        assert!(text.contains("recommendation: "), "{text}");
    }

    #[test]
    fn a_deadline_sizes_instances_down() {
        let p = Prices::builtin();
        let free = plan_backlog(&measurement(), &backlog(20_000), &p).unwrap();
        let bt = |plan: &BacklogPlan| plan.rows[2].clone();
        let fastest = bt(&free).analytic.wall_s;
        let mut b = backlog(20_000);
        b.deadline_s = Some(fastest * 3.0);
        let sized = plan_backlog(&measurement(), &b, &p).unwrap();
        let r = bt(&sized);
        assert_eq!(r.meets_deadline, Some(true));
        assert!(r.workers < bt(&free).workers, "{} vs {}", r.workers, bt(&free).workers);
        assert!(r.limiting.starts_with("sized to the deadline"), "{}", r.limiting);
    }

    #[test]
    fn simulation_sits_beside_the_estimate() {
        let mut b = backlog(50_000);
        b.simulate = true;
        let plan = plan_backlog(&measurement(), &b, &Prices::builtin()).unwrap();
        for r in &plan.rows {
            let s = r.simulated.as_ref().unwrap();
            let rel = (s.wall_s / r.analytic.wall_s - 1.0).abs();
            assert!(rel < 0.15, "{}: {} vs {}", r.platform, s.wall_s, r.analytic.wall_s);
            let rel = (s.total / r.analytic.total - 1.0).abs();
            assert!(rel < 0.15, "{}: {} vs {}", r.platform, s.total, r.analytic.total);
            assert_eq!(s.outcome.succeeded + s.outcome.failed, 50_000.0);
        }
    }

    #[test]
    fn a_prices_file_without_the_section_is_refused() {
        let mut p = Prices::builtin();
        p.backlog = None;
        let e = plan_backlog(&measurement(), &backlog(10), &p).unwrap_err();
        assert!(e.to_string().contains("no `backlog` section"), "{e}");
    }

    #[test]
    fn local_check_on_one_worker_is_the_sum() {
        let files: Vec<ListedFile> =
            (0..10).map(|i| ListedFile { audio_s: 10.0, service_s: 1.0 + f64::from(i) }).collect();
        let c = check_local(files.clone(), 1, Some(55.0), 1).unwrap();
        assert!((c.simulated_wall_s - 55.0).abs() < 1e-9);
        let c = check_local(files, 4, None, 1).unwrap();
        assert!(c.simulated_wall_s >= 55.0 / 4.0 && c.simulated_wall_s <= 55.0 / 4.0 + 10.0);
        assert!(render_check(&c).contains("measured   unknown"));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(grouped(1_000_000.0), "1,000,000");
        assert_eq!(grouped(999.4), "999");
        assert_eq!(money(1234.5), "1,234.50");
        assert_eq!(money(0.004), "0.00");
        assert_eq!(duration(90.0), "90 s");
        assert_eq!(duration(5400.0), "90.0 min");
    }
}

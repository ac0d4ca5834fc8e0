//! A deterministic discrete-event simulation of a batch run, and the closed-form estimate it is
//! checked against.
//!
//! A [`Scenario`] describes the work (files queued at t = 0, or arriving at a rate), how many
//! files one dispatch carries, and the platform's [`Capacity`]: Lambda-like function
//! environments (a concurrency limit, a scaling rate for new environments, cold starts,
//! throttling with back-off) or instances with worker slots (start-up delay, Spot
//! interruptions, scale-in). [`estimate`] answers from averages; [`simulate`] plays the run
//! out event by event, so it sees what averages hide: the spread of audio lengths, the tail of
//! the last files, throttles during the scaling ramp, retries, and work lost to interruptions.
//! Both return an [`Outcome`] of the same shape, which the caller prices.
//!
//! The simulation keeps one binary heap of future events (completions, retries, instance
//! start-ups, interruptions, arrivals); its size is the number of busy workers, so a run costs
//! O(files · log workers). It owns no clock and does no I/O; all randomness comes from a
//! seeded [`SplitMix64`] stream, so a seed always gives the same run.
//!
//! Not modelled: network and S3 throttling, per-AZ capacity shortages, Lambda timeouts, and
//! idle gaps in instance billing when work arrives at a rate (instances are billed until
//! their last file plus the scale-in delay).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use serde::Serialize;

/// The encoder works on windows of this many seconds of audio.
const WINDOW_S: f64 = 30.0;

/// Per-file compute time on one worker: `ceil(a/30)·window_s + a·per_audio_s + per_file_s`
/// for `a` seconds of audio (at least one window).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Service {
    /// Seconds per 30-s encoder window.
    pub window_s: f64,
    /// Seconds per audio second (decoding, front end, fetching the audio).
    pub per_audio_s: f64,
    /// Fixed seconds per file (request overhead).
    pub per_file_s: f64,
}

impl Service {
    /// Seconds to process a file of `audio_s` seconds.
    pub fn seconds(&self, audio_s: f64) -> f64 {
        let windows = (audio_s / WINDOW_S).ceil().max(1.0);
        windows * self.window_s + audio_s * self.per_audio_s + self.per_file_s
    }
}

/// The files of a run.
#[derive(Debug, Clone)]
pub enum Files {
    /// `count` files whose audio lengths are log-normal with mean `mean_audio_s` and shape
    /// `sigma` (the standard deviation of the log; 0: all the same length).
    Drawn {
        /// Number of files.
        count: u64,
        /// Mean audio length, seconds.
        mean_audio_s: f64,
        /// Shape of the log-normal.
        sigma: f64,
        /// Time per file as a function of its audio length.
        service: Service,
    },
    /// Known files, processed in this order.
    Listed(Vec<ListedFile>),
}

/// One known file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ListedFile {
    /// Audio seconds.
    pub audio_s: f64,
    /// Seconds one worker spends on it.
    pub service_s: f64,
}

/// Summary statistics of the per-file work.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FileStats {
    /// Number of files.
    pub count: f64,
    /// Mean audio seconds per file.
    pub mean_audio_s: f64,
    /// Mean worker seconds per file.
    pub mean_service_s: f64,
    /// Standard deviation of worker seconds per file.
    pub sd_service_s: f64,
    /// 99th percentile of worker seconds per file.
    pub p99_service_s: f64,
    /// 99th percentile of audio seconds per file.
    pub p99_audio_s: f64,
}

/// The standard normal's 99th percentile.
const Z99: f64 = 2.326_347_874;

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26 for `erf`,
/// absolute error below 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

/// The inverse of [`normal_cdf`], by bisection (`p` in `(0, 1)`).
fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-9.0, 9.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

impl Files {
    /// The `p` quantile of the time of a dispatch of `batch` files. One drawn file: exact
    /// (the time grows with the length); one listed file: empirical; a batch: normal
    /// approximation of the sum.
    pub fn task_quantile(&self, st: &FileStats, batch: u32, p: f64) -> f64 {
        let z = normal_quantile(p.clamp(1e-12, 1.0 - 1e-12));
        match self {
            Files::Drawn { mean_audio_s, sigma, service, .. } if batch <= 1 => {
                service.seconds(mean_audio_s * (sigma * z - sigma * sigma / 2.0).exp())
            }
            Files::Listed(v) if batch <= 1 && !v.is_empty() => {
                let mut xs: Vec<f64> = v.iter().map(|f| f.service_s).collect();
                xs.sort_by(f64::total_cmp);
                let i = ((xs.len() as f64 * p).ceil() as usize).clamp(1, xs.len());
                xs[i - 1]
            }
            _ => {
                let b = f64::from(batch.max(1));
                (b * st.mean_service_s + z * b.sqrt() * st.sd_service_s).max(0.0)
            }
        }
    }

    /// Number of files.
    pub fn count(&self) -> u64 {
        match self {
            Files::Drawn { count, .. } => *count,
            Files::Listed(v) => v.len() as u64,
        }
    }

    /// Mean, spread and 99th percentile of the work per file. For drawn files the mean and
    /// spread are integrated over the log-normal (midpoint rule over ±8 σ), so the ceiling on
    /// windows is averaged exactly rather than taken at the mean length.
    pub fn stats(&self) -> FileStats {
        match self {
            Files::Drawn { count, mean_audio_s, sigma, service } => {
                let audio = |z: f64| mean_audio_s * (sigma * z - sigma * sigma / 2.0).exp();
                let (mut w_sum, mut s1, mut s2) = (0.0, 0.0, 0.0);
                let steps = 4000;
                for i in 0..=steps {
                    let z = -8.0 + 16.0 * f64::from(i) / f64::from(steps);
                    let w = (-z * z / 2.0).exp();
                    let t = service.seconds(audio(z));
                    w_sum += w;
                    s1 += w * t;
                    s2 += w * t * t;
                }
                let mean = s1 / w_sum;
                FileStats {
                    count: *count as f64,
                    mean_audio_s: *mean_audio_s,
                    mean_service_s: mean,
                    sd_service_s: (s2 / w_sum - mean * mean).max(0.0).sqrt(),
                    p99_service_s: service.seconds(audio(Z99)),
                    p99_audio_s: audio(Z99),
                }
            }
            Files::Listed(v) => {
                let n = v.len().max(1) as f64;
                let mean = v.iter().map(|f| f.service_s).sum::<f64>() / n;
                let var = v.iter().map(|f| (f.service_s - mean).powi(2)).sum::<f64>() / n;
                let p99 = |mut xs: Vec<f64>| {
                    xs.sort_by(f64::total_cmp);
                    let i = ((xs.len() as f64 * 0.99).ceil() as usize).clamp(1, xs.len().max(1));
                    xs.get(i - 1).copied().unwrap_or(0.0)
                };
                FileStats {
                    count: v.len() as f64,
                    mean_audio_s: v.iter().map(|f| f.audio_s).sum::<f64>() / n,
                    mean_service_s: mean,
                    sd_service_s: var.sqrt(),
                    p99_service_s: p99(v.iter().map(|f| f.service_s).collect()),
                    p99_audio_s: p99(v.iter().map(|f| f.audio_s).collect()),
                }
            }
        }
    }
}

/// When the files become available.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Arrivals {
    /// All at t = 0 (a backlog).
    Backlog,
    /// One at a time, Poisson at this rate.
    Rate {
        /// Files per second.
        files_per_s: f64,
    },
}

/// Exponential back-off with full jitter: before retry `k` (1-based) wait a uniform time in
/// `[0, min(max_s, base_s · factor^(k-1))]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Backoff {
    /// First cap, seconds.
    pub base_s: f64,
    /// Growth of the cap per retry.
    pub factor: f64,
    /// Largest cap, seconds.
    pub max_s: f64,
    /// Retries after a throttle before the dispatch (and its files) is recorded as failed.
    pub max_attempts: u32,
}

/// Lambda-like function environments.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Functions {
    /// Concurrent executions allowed (account or reserved concurrency).
    pub limit: u32,
    /// Dispatches the orchestrator keeps in flight (Distributed Map `MaxConcurrency`);
    /// above `limit` the excess is throttled.
    pub dispatch: u32,
    /// New environments that can be created at once (a token bucket of this size).
    pub new_envs_burst: u32,
    /// Refill of that bucket, environments per second.
    pub new_envs_per_s: f64,
    /// Extra seconds of a dispatch that lands on a new environment (billed).
    pub cold_start_s: f64,
    /// An idle environment is reclaimed after this many seconds.
    pub idle_reclaim_s: f64,
    /// Retry policy for throttled (429) dispatches.
    pub backoff: Backoff,
}

/// Instances with worker slots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Instances {
    /// Instances requested at t = 0.
    pub count: u32,
    /// Files one instance works on at once.
    pub slots: u32,
    /// Seconds from request to the first file (billed).
    pub startup_s: f64,
    /// Each start-up varies uniformly by ± this fraction.
    pub startup_jitter: f64,
    /// Spot interruptions per instance-hour (0: on-demand). An interrupted instance's files
    /// go back to the queue and a replacement is requested.
    pub interruptions_per_hour: f64,
    /// `None`: every instance is billed until the run ends (Batch Transform, a cluster).
    /// `Some(s)`: an instance is released `s` seconds after its last file.
    pub release_after_idle_s: Option<f64>,
}

/// What caps the workers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Capacity {
    /// Function environments.
    Functions(Functions),
    /// Instances.
    Instances(Instances),
}

/// One run to estimate or simulate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The files.
    pub files: Files,
    /// When they arrive.
    pub arrivals: Arrivals,
    /// Files per dispatch (Step Functions ItemBatcher); retries go one file at a time.
    pub batch_files: u32,
    /// The platform's capacity.
    pub capacity: Capacity,
    /// Probability that one attempt at a file fails (after using its full time).
    pub failure_rate: f64,
    /// Retries of a failed file before it is recorded as failed.
    pub max_retries: u32,
    /// Seed of the random stream.
    pub seed: u64,
}

/// What a run did. The simulation counts; the estimate gives expected values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    /// Seconds from t = 0 until the last file finished (or was given up).
    pub wall_s: f64,
    /// Files in the run.
    pub files: f64,
    /// Files transcribed.
    pub succeeded: f64,
    /// Files given up: out of retries, or throttled past the back-off's attempts.
    pub failed: f64,
    /// Retries after failures.
    pub retries: f64,
    /// Dispatches refused with 429.
    pub throttles: f64,
    /// Dispatches that landed on a new environment.
    pub cold_starts: f64,
    /// Spot interruptions.
    pub interruptions: f64,
    /// File attempts cut short by an interruption (re-queued, not counted as retries).
    pub lost_to_interruptions: f64,
    /// Most files or dispatches in progress at once.
    pub peak_concurrency: f64,
    /// Dispatches started (function invocations, transform requests).
    pub tasks: f64,
    /// File attempts completed.
    pub file_attempts: f64,
    /// Audio seconds of the run's files, each counted once.
    pub audio_s: f64,
    /// Audio seconds over all completed attempts.
    pub attempt_audio_s: f64,
    /// Worker seconds of completed attempts.
    pub busy_s: f64,
    /// Cold-start seconds (functions).
    pub init_s: f64,
    /// Billed instance seconds (instances).
    pub instance_s: f64,
}

/// Sum of `f^k` for `k = 0..=r`: expected attempts per file.
fn attempts_per_file(f: f64, r: u32) -> f64 {
    (0..=r).map(|k| f.powi(k as i32)).sum()
}

/// The closed-form estimate. Workers `w` (the concurrency limit, or instances × slots) share
/// the work `W = n·A·t̄` (`A = 1 + f + … + f^R` attempts per file, `t̄` the mean time per
/// file): `wall = (W + lost) / w + tail`, where `lost` is capacity spent starting up (cold
/// starts, instance start-up, the scaling ramp beyond the first burst, interruptions) and
/// `tail` for the last dispatches finishing at different times.
///
/// The tail: the queue empties at `W/w − E[R]`, when every worker has a residual `R` of its
/// current dispatch left (`E[R] = E[T²] / 2E[T]`, the length-biased residual), and the run
/// ends when the largest of `w` residuals does, about the dispatch time's `1 − 1/(w+1)`
/// quantile. So `tail = (q − E[R]) · (1 − 1/w)`, the last factor making one worker exact.
/// With fewer dispatches than workers the run takes the longest dispatch.
pub fn estimate(s: &Scenario) -> Outcome {
    let st = s.files.stats();
    let n = st.count;
    let f = s.failure_rate.clamp(0.0, 1.0);
    let a = attempts_per_file(f, s.max_retries);
    let busy = n * a * st.mean_service_s;
    let first_tasks = (n / f64::from(s.batch_files.max(1))).ceil();
    let retries = n * (a - 1.0);
    let tasks = first_tasks + retries;
    let task_s = if tasks > 0.0 { busy / tasks } else { 0.0 };
    let mut o = Outcome {
        files: n,
        failed: n * f.powi(s.max_retries as i32 + 1),
        retries,
        tasks,
        file_attempts: n * a,
        audio_s: n * st.mean_audio_s,
        attempt_audio_s: n * a * st.mean_audio_s,
        busy_s: busy,
        ..Outcome::default()
    };
    o.succeeded = n - o.failed;
    let b = f64::from(s.batch_files.max(1));
    let residual = if st.mean_service_s > 0.0 {
        (b * st.mean_service_s + st.sd_service_s.powi(2) / st.mean_service_s) / 2.0
    } else {
        0.0
    };
    let quantile = |w: f64| s.files.task_quantile(&st, s.batch_files, 1.0 - 1.0 / (w + 1.0));
    let tail = |w: f64| {
        let w = w.max(1.0);
        (quantile(w) - residual).max(0.0) * (1.0 - 1.0 / w)
    };
    match &s.capacity {
        Capacity::Functions(c) => {
            let w = f64::from(c.limit.min(c.dispatch).max(1));
            let envs = w.min(first_tasks.max(1.0));
            let extra = (envs - f64::from(c.new_envs_burst)).max(0.0);
            let ramp_s = if c.new_envs_per_s > 0.0 { extra / c.new_envs_per_s } else { 0.0 };
            // Environments beyond the first burst arrive linearly over the ramp.
            let ramp_lost = extra * ramp_s / 2.0;
            o.cold_starts = envs;
            o.init_s = envs * c.cold_start_s;
            o.peak_concurrency = envs;
            if extra > 0.0 {
                // Each waiting dispatch retries about log2(wait / base) + 1 times.
                let wait = ramp_s / 2.0;
                o.throttles = extra * (1.0 + (1.0 + wait / c.backoff.base_s.max(1e-9)).log2());
            }
            o.wall_s = if first_tasks >= w {
                (busy + o.init_s + ramp_lost) / envs + tail(envs)
            } else {
                ramp_s + c.cold_start_s + quantile(first_tasks)
            };
        }
        Capacity::Instances(c) => {
            let count = f64::from(c.count.max(1));
            let slots = f64::from(c.slots.max(1));
            let w = count * slots;
            let h = c.interruptions_per_hour / 3600.0;
            // Worker-seconds lost per second of run: in-flight work (half a file on average)
            // and a replacement's start-up, on every slot of an interrupted instance.
            let k = (h * count * slots * (task_s / 2.0 + c.startup_s)).min(0.9 * w);
            o.wall_s = if first_tasks >= w {
                (busy + w * c.startup_s - k * c.startup_s + w * tail(w)) / (w - k)
            } else {
                c.startup_s + quantile(first_tasks)
            };
            o.interruptions = h * count * (o.wall_s - c.startup_s).max(0.0);
            o.lost_to_interruptions = o.interruptions * slots.min(first_tasks);
            o.peak_concurrency = w.min(first_tasks);
            o.instance_s = match c.release_after_idle_s {
                None => count * o.wall_s,
                Some(x) => count * (o.wall_s - tail(w) + x),
            };
        }
    }
    if let Arrivals::Rate { files_per_s } = s.arrivals
        && files_per_s > 0.0
    {
        let start = match &s.capacity {
            Capacity::Functions(c) => c.cold_start_s,
            Capacity::Instances(c) => c.startup_s,
        };
        let by_arrivals = start + n / files_per_s + task_s;
        if by_arrivals > o.wall_s {
            if let Capacity::Instances(c) = &s.capacity {
                o.instance_s *= by_arrivals / o.wall_s.max(1e-9);
                o.interruptions *= (by_arrivals - c.startup_s) / (o.wall_s - c.startup_s).max(1e-9);
            }
            o.wall_s = by_arrivals;
        }
    }
    o
}

/// Play the run out event by event.
pub fn simulate(s: &Scenario) -> Outcome {
    let mut rng = SplitMix64::new(s.seed);
    let mut src = Source::new(s);
    let mut out = match &s.capacity {
        Capacity::Functions(c) => FunctionRun::new(s, c).run(&mut src, &mut rng),
        Capacity::Instances(c) => InstanceRun::new(s, c).run(&mut src, &mut rng),
    };
    out.files = src.total as f64;
    out.audio_s = src.audio_s;
    out
}

/// splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014; constants as in Vigna's reference `splitmix64.c`, prng.di.unimi.it).
///
/// Written out here rather than taken from a crate: the simulation must give the same run
/// for the same seed on every platform and in every future build, which a dependency whose
/// generator may change between versions does not promise; and six lines do not justify a
/// new dependency. Its quality is ample for a simulation (it passes BigCrush).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller; the second value is discarded to keep the stream simple).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Exponential with this rate (per second).
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -(1.0 - self.uniform()).ln() / rate
    }
}

#[derive(Debug, Clone, Copy)]
struct FileRef {
    audio_s: f64,
    service_s: f64,
    attempt: u32,
}

/// One dispatch: a batch of files. `rest` is empty (no allocation) for single-file tasks.
#[derive(Debug)]
struct Task {
    first: FileRef,
    rest: Vec<FileRef>,
    throttled: u32,
}

impl Task {
    fn single(f: FileRef) -> Self {
        Task { first: f, rest: Vec::new(), throttled: 0 }
    }

    fn files(&self) -> impl Iterator<Item = &FileRef> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }

    fn len(&self) -> usize {
        1 + self.rest.len()
    }

    fn service_s(&self) -> f64 {
        self.files().map(|f| f.service_s).sum()
    }
}

/// Where work comes from: re-queued tasks first, then fresh files in order.
struct Source<'a> {
    files: &'a Files,
    total: u64,
    next: u64,
    arrived: u64,
    batch: u64,
    retry: VecDeque<Task>,
    audio_s: f64,
}

impl<'a> Source<'a> {
    fn new(s: &'a Scenario) -> Self {
        let total = s.files.count();
        let arrived = match s.arrivals {
            Arrivals::Backlog => total,
            Arrivals::Rate { .. } => 0,
        };
        Source {
            files: &s.files,
            total,
            next: 0,
            arrived,
            batch: u64::from(s.batch_files.max(1)),
            retry: VecDeque::new(),
            audio_s: 0.0,
        }
    }

    fn draw(&mut self, rng: &mut SplitMix64) -> FileRef {
        let i = self.next;
        self.next += 1;
        let (audio_s, service_s) = match self.files {
            Files::Drawn { mean_audio_s, sigma, service, .. } => {
                let a = mean_audio_s * (sigma * rng.normal() - sigma * sigma / 2.0).exp();
                (a, service.seconds(a))
            }
            Files::Listed(v) => {
                let f = usize::try_from(i).ok().and_then(|i| v.get(i));
                f.map_or((0.0, 0.0), |f| (f.audio_s, f.service_s))
            }
        };
        self.audio_s += audio_s;
        FileRef { audio_s, service_s, attempt: 0 }
    }

    fn next_task(&mut self, rng: &mut SplitMix64) -> Option<Task> {
        if let Some(t) = self.retry.pop_front() {
            return Some(t);
        }
        if self.next >= self.arrived {
            return None;
        }
        let n = (self.arrived - self.next).min(self.batch);
        let first = self.draw(rng);
        let rest = (1..n).map(|_| self.draw(rng)).collect();
        Some(Task { first, rest, throttled: 0 })
    }

    /// Nothing is left to start, now or later.
    fn exhausted(&self) -> bool {
        self.retry.is_empty() && self.next >= self.total
    }
}

/// Record a finished task's files: successes, failures, retries (queued one file each).
fn finish(task: &Task, s: &Scenario, rng: &mut SplitMix64, src: &mut Source<'_>, o: &mut Outcome) {
    for file in task.files() {
        o.file_attempts += 1.0;
        o.attempt_audio_s += file.audio_s;
        o.busy_s += file.service_s;
        if s.failure_rate > 0.0 && rng.uniform() < s.failure_rate {
            if file.attempt < s.max_retries {
                o.retries += 1.0;
                src.retry.push_back(Task::single(FileRef { attempt: file.attempt + 1, ..*file }));
            } else {
                o.failed += 1.0;
            }
        } else {
            o.succeeded += 1.0;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Done { task: u32, inst: u32 },
    Retry { task: u32 },
    Ready { inst: u32 },
    Interrupt { inst: u32 },
    Arrival,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    t: f64,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    /// Reversed, so that `BinaryHeap` pops the earliest event; ties go in insertion order.
    fn cmp(&self, other: &Self) -> Ordering {
        other.t.total_cmp(&self.t).then(other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct Events {
    heap: BinaryHeap<Event>,
    seq: u64,
}

impl Events {
    fn push(&mut self, t: f64, kind: Kind) {
        self.seq += 1;
        self.heap.push(Event { t, seq: self.seq, kind });
    }

    fn pop(&mut self) -> Option<Event> {
        self.heap.pop()
    }
}

/// Tasks in flight, by id; ids are reused.
#[derive(Default)]
struct Slab {
    items: Vec<Option<Task>>,
    free: Vec<u32>,
}

impl Slab {
    fn insert(&mut self, t: Task) -> u32 {
        if let Some(id) = self.free.pop() {
            self.items[id as usize] = Some(t);
            id
        } else {
            self.items.push(Some(t));
            (self.items.len() - 1) as u32
        }
    }

    fn take(&mut self, id: u32) -> Option<Task> {
        let t = self.items.get_mut(id as usize)?.take();
        if t.is_some() {
            self.free.push(id);
        }
        t
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut Task> {
        self.items.get_mut(id as usize)?.as_mut()
    }
}

fn schedule_first_arrival(s: &Scenario, ev: &mut Events, rng: &mut SplitMix64) {
    if let Arrivals::Rate { files_per_s } = s.arrivals
        && s.files.count() > 0
    {
        ev.push(rng.exponential(files_per_s.max(1e-12)), Kind::Arrival);
    }
}

fn arrive(s: &Scenario, src: &mut Source<'_>, ev: &mut Events, rng: &mut SplitMix64, now: f64) {
    src.arrived = (src.arrived + 1).min(src.total);
    if let Arrivals::Rate { files_per_s } = s.arrivals
        && src.arrived < src.total
    {
        ev.push(now + rng.exponential(files_per_s.max(1e-12)), Kind::Arrival);
    }
}

struct FunctionRun<'a> {
    s: &'a Scenario,
    c: &'a Functions,
    ev: Events,
    slab: Slab,
    out: Outcome,
    in_flight: u32,
    busy: u32,
    /// Idle environments by the time they went idle, most recent last.
    idle: Vec<f64>,
    tokens: f64,
    token_t: f64,
    last: f64,
}

impl<'a> FunctionRun<'a> {
    fn new(s: &'a Scenario, c: &'a Functions) -> Self {
        FunctionRun {
            s,
            c,
            ev: Events::default(),
            slab: Slab::default(),
            out: Outcome::default(),
            in_flight: 0,
            busy: 0,
            idle: Vec::new(),
            tokens: f64::from(c.new_envs_burst.max(1)),
            token_t: 0.0,
            last: 0.0,
        }
    }

    fn run(mut self, src: &mut Source<'_>, rng: &mut SplitMix64) -> Outcome {
        schedule_first_arrival(self.s, &mut self.ev, rng);
        let mut now = 0.0;
        loop {
            while self.in_flight < self.c.dispatch.max(1) {
                let Some(task) = src.next_task(rng) else { break };
                self.in_flight += 1;
                let id = self.slab.insert(task);
                self.invoke(id, now, rng);
            }
            let Some(e) = self.ev.pop() else { break };
            now = e.t;
            match e.kind {
                Kind::Done { task, .. } => {
                    self.busy -= 1;
                    self.in_flight -= 1;
                    self.idle.push(now);
                    if let Some(t) = self.slab.take(task) {
                        finish(&t, self.s, rng, src, &mut self.out);
                    }
                    self.last = now;
                }
                Kind::Retry { task } => self.invoke(task, now, rng),
                Kind::Arrival => arrive(self.s, src, &mut self.ev, rng, now),
                Kind::Ready { .. } | Kind::Interrupt { .. } => {}
            }
        }
        self.out.wall_s = self.last;
        self.out
    }

    fn invoke(&mut self, id: u32, now: f64, rng: &mut SplitMix64) {
        let burst = f64::from(self.c.new_envs_burst.max(1));
        self.tokens = (self.tokens + (now - self.token_t) * self.c.new_envs_per_s).min(burst);
        self.token_t = now;
        let mut cold = None;
        if self.busy < self.c.limit {
            // The most recently idle environment is reused first; if even it has been
            // reclaimed, so have all older ones.
            if self.idle.last().is_some_and(|&since| now - since > self.c.idle_reclaim_s) {
                self.idle.clear();
            }
            if self.idle.pop().is_some() {
                cold = Some(0.0);
            } else if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                self.out.cold_starts += 1.0;
                cold = Some(self.c.cold_start_s);
            }
        }
        let Some(task) = self.slab.get_mut(id) else { return };
        match cold {
            Some(c) => {
                self.busy += 1;
                self.out.peak_concurrency = self.out.peak_concurrency.max(f64::from(self.busy));
                self.out.tasks += 1.0;
                self.out.init_s += c;
                let t = now + c + task.service_s();
                self.ev.push(t, Kind::Done { task: id, inst: 0 });
            }
            None => {
                self.out.throttles += 1.0;
                task.throttled += 1;
                let b = &self.c.backoff;
                if task.throttled > b.max_attempts {
                    self.out.failed += task.len() as f64;
                    self.slab.take(id);
                    self.in_flight -= 1;
                    self.last = now;
                } else {
                    let cap = (b.base_s * b.factor.powi(task.throttled as i32 - 1)).min(b.max_s);
                    self.ev.push(now + rng.uniform() * cap, Kind::Retry { task: id });
                }
            }
        }
    }
}

struct Inst {
    alive: bool,
    requested_t: f64,
    ready_t: Option<f64>,
    ended_t: Option<f64>,
    last_busy_end: f64,
    running: Vec<u32>,
}

struct InstanceRun<'a> {
    s: &'a Scenario,
    c: &'a Instances,
    ev: Events,
    slab: Slab,
    out: Outcome,
    insts: Vec<Inst>,
    /// One entry per free slot (instance id); entries of dead instances are skipped.
    free: Vec<u32>,
    busy: u32,
    last: f64,
}

impl<'a> InstanceRun<'a> {
    fn new(s: &'a Scenario, c: &'a Instances) -> Self {
        InstanceRun {
            s,
            c,
            ev: Events::default(),
            slab: Slab::default(),
            out: Outcome::default(),
            insts: Vec::new(),
            free: Vec::new(),
            busy: 0,
            last: 0.0,
        }
    }

    fn request(&mut self, now: f64, rng: &mut SplitMix64) {
        let startup = if self.c.startup_s > 0.0 {
            self.c.startup_s * (1.0 + self.c.startup_jitter * (2.0 * rng.uniform() - 1.0))
        } else {
            0.0
        };
        let id = self.insts.len() as u32;
        self.insts.push(Inst {
            alive: true,
            requested_t: now,
            ready_t: None,
            ended_t: None,
            last_busy_end: now,
            running: Vec::new(),
        });
        self.ev.push(now + startup, Kind::Ready { inst: id });
    }

    fn run(mut self, src: &mut Source<'_>, rng: &mut SplitMix64) -> Outcome {
        schedule_first_arrival(self.s, &mut self.ev, rng);
        for _ in 0..self.c.count.max(1) {
            self.request(0.0, rng);
        }
        let hazard = self.c.interruptions_per_hour / 3600.0;
        let mut now = 0.0;
        loop {
            while let Some(&i) = self.free.last() {
                if !self.insts[i as usize].alive {
                    self.free.pop();
                    continue;
                }
                let Some(task) = src.next_task(rng) else { break };
                self.free.pop();
                let t = now + task.service_s();
                let id = self.slab.insert(task);
                self.insts[i as usize].running.push(id);
                self.busy += 1;
                self.out.peak_concurrency = self.out.peak_concurrency.max(f64::from(self.busy));
                self.out.tasks += 1.0;
                self.ev.push(t, Kind::Done { task: id, inst: i });
            }
            if src.exhausted() && self.busy == 0 {
                break;
            }
            let Some(e) = self.ev.pop() else { break };
            now = e.t;
            match e.kind {
                Kind::Ready { inst } => {
                    let Some(x) = self.insts.get_mut(inst as usize) else { continue };
                    if !x.alive {
                        continue;
                    }
                    x.ready_t = Some(now);
                    x.last_busy_end = now;
                    for _ in 0..self.c.slots.max(1) {
                        self.free.push(inst);
                    }
                    if hazard > 0.0 {
                        self.ev.push(now + rng.exponential(hazard), Kind::Interrupt { inst });
                    }
                }
                Kind::Done { task, inst } => {
                    let Some(x) = self.insts.get_mut(inst as usize) else { continue };
                    if !x.alive {
                        continue; // its work was re-queued when it was interrupted
                    }
                    if let Some(pos) = x.running.iter().position(|&t| t == task) {
                        x.running.swap_remove(pos);
                    }
                    x.last_busy_end = now;
                    self.busy -= 1;
                    self.free.push(inst);
                    if let Some(t) = self.slab.take(task) {
                        finish(&t, self.s, rng, src, &mut self.out);
                    }
                    self.last = now;
                }
                Kind::Interrupt { inst } => {
                    let Some(x) = self.insts.get_mut(inst as usize) else { continue };
                    if !x.alive {
                        continue;
                    }
                    x.alive = false;
                    x.ended_t = Some(now);
                    self.out.interruptions += 1.0;
                    let running = std::mem::take(&mut x.running);
                    self.busy -= running.len() as u32;
                    for id in running.into_iter().rev() {
                        if let Some(t) = self.slab.take(id) {
                            self.out.lost_to_interruptions += t.len() as f64;
                            src.retry.push_front(Task { throttled: 0, ..t });
                        }
                    }
                    if !src.exhausted() {
                        self.request(now, rng);
                    }
                }
                Kind::Arrival => arrive(self.s, src, &mut self.ev, rng, now),
                Kind::Retry { .. } => {}
            }
        }
        let wall = self.last;
        self.out.wall_s = wall;
        self.out.instance_s = self
            .insts
            .iter()
            .map(|x| {
                let end = match (x.ended_t, x.ready_t, self.c.release_after_idle_s) {
                    (Some(e), _, _) => e,
                    (None, Some(_), Some(idle)) => x.last_busy_end + idle,
                    _ => wall,
                };
                (end - x.requested_t).max(0.0)
            })
            .sum();
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Service {
        Service { window_s: 0.4, per_audio_s: 0.04, per_file_s: 0.0 }
    }

    fn drawn(count: u64) -> Files {
        Files::Drawn { count, mean_audio_s: 300.0, sigma: 0.5, service: service() }
    }

    fn functions(limit: u32) -> Capacity {
        Capacity::Functions(Functions {
            limit,
            dispatch: limit,
            new_envs_burst: limit,
            new_envs_per_s: 100.0,
            cold_start_s: 0.0,
            idle_reclaim_s: 600.0,
            backoff: Backoff { base_s: 1.0, factor: 2.0, max_s: 60.0, max_attempts: 6 },
        })
    }

    fn instances(count: u32, slots: u32) -> Capacity {
        Capacity::Instances(Instances {
            count,
            slots,
            startup_s: 0.0,
            startup_jitter: 0.0,
            interruptions_per_hour: 0.0,
            release_after_idle_s: None,
        })
    }

    fn scenario(files: Files, capacity: Capacity) -> Scenario {
        Scenario {
            files,
            arrivals: Arrivals::Backlog,
            batch_files: 1,
            capacity,
            failure_rate: 0.0,
            max_retries: 2,
            seed: 7,
        }
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-12)
    }

    #[test]
    fn normal_distribution_helpers() {
        assert!(close(normal_cdf(1.0), 0.841_344_746, 1e-6));
        assert!(close(normal_cdf(-2.0), 0.022_750_132, 1e-5));
        assert!((normal_quantile(0.99) - Z99).abs() < 1e-5);
    }

    #[test]
    fn service_matches_the_window_model() {
        let s = service();
        assert!(close(s.seconds(10.0), 0.4 + 0.4, 1e-12));
        assert!(close(s.seconds(61.0), 3.0 * 0.4 + 61.0 * 0.04, 1e-12));
    }

    #[test]
    fn converges_to_the_estimate_without_failures_or_ramp() {
        for (cap, batch) in
            [(functions(1000), 1), (functions(500), 8), (instances(40, 4), 1), (instances(3, 2), 1)]
        {
            let mut s = scenario(drawn(200_000), cap);
            s.batch_files = batch;
            let sim = simulate(&s);
            let est = estimate(&s);
            assert!(
                close(sim.wall_s, est.wall_s, 0.03),
                "{cap:?}: {} vs {}",
                sim.wall_s,
                est.wall_s
            );
            assert!(close(sim.busy_s, est.busy_s, 0.01), "{} vs {}", sim.busy_s, est.busy_s);
            assert_eq!(sim.succeeded, 200_000.0);
            assert_eq!(sim.failed + sim.retries + sim.throttles, 0.0);
        }
    }

    #[test]
    fn retries_are_about_n_times_the_failure_rate() {
        let mut s = scenario(drawn(100_000), functions(200));
        s.failure_rate = 0.01;
        let o = simulate(&s);
        let want = 100_000.0 * 0.01 * (1.0 + 0.01);
        assert!(close(o.retries, want, 0.1), "{} vs {want}", o.retries);
        assert!(o.failed <= 3.0, "{}", o.failed);
        assert_eq!(o.succeeded + o.failed, 100_000.0);
        assert_eq!(o.file_attempts, 100_000.0 + o.retries);
        assert!(close(estimate(&s).retries, want, 1e-9));
    }

    #[test]
    fn a_seed_gives_the_same_run() {
        let mut s = scenario(drawn(20_000), functions(100));
        s.failure_rate = 0.02;
        let a = simulate(&s);
        assert_eq!(a, simulate(&s));
        s.seed = 8;
        assert_ne!(a, simulate(&s));
    }

    #[test]
    fn one_worker_is_serial() {
        let files: Vec<ListedFile> = (1..=200)
            .map(|i| ListedFile { audio_s: f64::from(i), service_s: f64::from(i % 7) + 0.5 })
            .collect();
        let serial: f64 = files.iter().map(|f| f.service_s).sum();
        for cap in [functions(1), instances(1, 1)] {
            let o = simulate(&scenario(Files::Listed(files.clone()), cap));
            assert!(close(o.wall_s, serial, 1e-9), "{cap:?}: {} vs {serial}", o.wall_s);
            assert!(close(
                estimate(&scenario(Files::Listed(files.clone()), cap)).wall_s,
                serial,
                1e-9
            ));
            assert_eq!(o.peak_concurrency, 1.0);
        }
    }

    #[test]
    fn the_scaling_ramp_throttles_and_backs_off() {
        let mut cap = functions(3000);
        if let Capacity::Functions(f) = &mut cap {
            f.new_envs_burst = 1000;
            f.cold_start_s = 1.0;
            f.backoff.max_attempts = 10;
        }
        let mut s = scenario(drawn(60_000), cap);
        let o = simulate(&s);
        assert!(o.throttles > 1000.0, "{}", o.throttles);
        assert_eq!(o.failed, 0.0);
        assert_eq!(o.peak_concurrency, 3000.0);
        assert_eq!(o.cold_starts, 3000.0);
        // The estimate starts a throttled dispatch as soon as capacity frees; back-off waits
        // longer, which only the simulation sees.
        let e = estimate(&s).wall_s;
        assert!(o.wall_s >= e && o.wall_s < 1.15 * e, "{} vs {e}", o.wall_s);
        // Without retries, a dispatcher that refills its slots at once burns through the
        // whole queue while the first burst is busy.
        if let Capacity::Functions(f) = &mut s.capacity {
            f.backoff.max_attempts = 0;
        }
        let o = simulate(&s);
        assert_eq!(o.succeeded, 1000.0);
        assert_eq!(o.failed, 59_000.0);
    }

    #[test]
    fn spot_interruptions_requeue_work_and_cost_time() {
        let mut cap = instances(20, 4);
        if let Capacity::Instances(i) = &mut cap {
            i.startup_s = 120.0;
            i.startup_jitter = 0.15;
            i.interruptions_per_hour = 0.5;
            i.release_after_idle_s = Some(60.0);
        }
        let s = scenario(drawn(50_000), cap);
        let o = simulate(&s);
        let e = estimate(&s);
        assert!(o.interruptions > 10.0, "{}", o.interruptions);
        assert!(o.lost_to_interruptions > 0.0);
        assert_eq!(o.succeeded, 50_000.0);
        assert!(close(o.wall_s, e.wall_s, 0.05), "{} vs {}", o.wall_s, e.wall_s);
        assert!(close(o.instance_s, e.instance_s, 0.05), "{} vs {}", o.instance_s, e.instance_s);
    }

    #[test]
    fn arrivals_at_a_rate_bound_the_wall_time() {
        let mut s = scenario(drawn(5_000), instances(10, 4));
        s.arrivals = Arrivals::Rate { files_per_s: 1.0 };
        let o = simulate(&s);
        assert!(close(o.wall_s, 5_000.0, 0.05), "{}", o.wall_s);
        assert!(close(o.wall_s, estimate(&s).wall_s, 0.05));
    }
}

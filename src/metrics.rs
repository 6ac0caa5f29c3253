//! Prometheus metrics and health endpoints for long-running jobs
//! (`--metrics-addr`).
//!
//! - One registry per process, [`global`], as tracing has one dispatcher:
//!   the fetch tasks, the producer's partition lanes, the offsets session,
//!   the group member and the aggregation update it where they are, with
//!   relaxed atomic adds per batch (never per record, never a lock on the
//!   records' path). A partition's counters are an [`Arc`] its fetch task
//!   or lane takes from the registry once, when it starts.
//! - [`serve`] answers `GET /metrics` (the text exposition format, 0.0.4),
//!   `/healthz` and `/readyz` from a small HTTP/1.1 server on tokio's
//!   [`TcpListener`](tokio::net::TcpListener), on the job's own runtime:
//!   an answer from `/healthz` shows the runtime is not stuck. Nothing
//!   listens unless asked.
//! - The text format is written by hand: the `prometheus-client` crate
//!   brings a registry of boxed metric families, its derive macros and
//!   their dependencies for what is here a few `write!` calls, and the
//!   static binary had no room to spare (about 40 KB under its 8 MiB
//!   budget). The format is small: `# HELP` and `# TYPE` lines, then one
//!   `name{labels} value` line per series. (The crate itself was not
//!   built into weir to compare. This module, the server and the updates
//!   in the jobs together cost 75 KB of the static x86_64 binary:
//!   8,345,000 -> 8,420,488 bytes.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::TopicPartition;

mod server;
mod text;

pub use server::{MAX_REQUEST_BYTES, MetricsError, MetricsServer, REQUEST_TIMEOUT, serve};

/// The process's registry, which every job updates and [`serve`] shows.
pub fn global() -> &'static Metrics {
    static METRICS: Metrics = Metrics::new();
    &METRICS
}

/// A kind of error, for `weir_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A fetch failed: each attempt, retried or the last (a partition
    /// fails after `--timeout` of them).
    Fetch,
    /// A batch could not be produced.
    Produce,
    /// A commit or checkpoint failed.
    Commit,
    /// Group membership failed, or the member was fenced.
    Membership,
}

impl ErrorKind {
    const ALL: [Self; 4] = [Self::Fetch, Self::Produce, Self::Commit, Self::Membership];

    fn label(self) -> &'static str {
        match self {
            Self::Fetch => "fetch",
            Self::Produce => "produce",
            Self::Commit => "commit",
            Self::Membership => "membership",
        }
    }
}

/// Where a job stands, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Started, or between generations of a job without a group.
    Running = 0,
    /// Joining the group, or handing partitions back in a rebalance.
    Rebalancing = 1,
    /// Stopping: the last emission and commit.
    Stopping = 2,
}

/// The upper bounds of the latency histograms' buckets, in microseconds:
/// 1 ms to 10 s, as Prometheus' default buckets.
const BUCKETS_MICROS: [u64; 11] = [
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// Times, as a Prometheus histogram: a count per bucket, their sum.
#[derive(Debug, Default)]
pub struct Timer {
    count: AtomicU64,
    micros: AtomicU64,
    /// Occurrences at or under each bound (not cumulative; `render` sums).
    buckets: [AtomicU64; BUCKETS_MICROS.len()],
}

impl Timer {
    const fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            micros: AtomicU64::new(0),
            buckets: [const { AtomicU64::new(0) }; BUCKETS_MICROS.len()],
        }
    }

    /// Adds one occurrence that took `took`.
    pub fn observe(&self, took: Duration) {
        self.count.fetch_add(1, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Relaxed);
        if let Some(i) = BUCKETS_MICROS.iter().position(|&bound| micros <= bound) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
    }
}

/// One input partition's figures, updated by its fetch task.
#[derive(Debug, Default)]
pub struct InputPartition {
    records: AtomicU64,
    bytes: AtomicU64,
    /// Where the log ends, as the last fetch answered: the high watermark
    /// (the last stable offset under read_committed); -1 before any.
    end: AtomicI64,
    /// The next offset the consumer fetches.
    position: AtomicI64,
    /// A fetch task is reading it now.
    assigned: AtomicBool,
    /// Its fetches fail (and are being retried).
    failing: AtomicBool,
    /// Of `records`, those the job has handled; the rest wait in the
    /// consumer's queue and count as lag.
    handled: AtomicU64,
    /// Records a filter left out.
    filtered: AtomicU64,
    /// Records whose key or fields could not be read.
    unparsed: AtomicU64,
    /// Records for a window that had closed.
    late: AtomicU64,
    /// Share groups: records acknowledged ACCEPT, RELEASE and REJECT.
    accepted: AtomicU64,
    released: AtomicU64,
    rejected: AtomicU64,
    /// Share groups: records delivered more than once (delivery count > 1).
    redelivered: AtomicU64,
}

impl InputPartition {
    /// Adds a fetched batch of `records` records and `bytes` bytes (keys
    /// and values), read up to `position`.
    pub fn fetched(&self, records: usize, bytes: usize, position: i64) {
        self.records.fetch_add(records as u64, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
        self.position.store(position, Relaxed);
    }

    /// Sets the next offset to fetch and where the log ends.
    pub fn at(&self, position: i64, end: i64) {
        self.position.store(position, Relaxed);
        self.end.store(end, Relaxed);
    }

    /// Sets whether its fetches fail.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Relaxed);
    }

    /// Adds records the job has handled (written, left out or counted).
    pub fn handled(&self, records: usize) {
        self.handled.fetch_add(records as u64, Relaxed);
    }

    /// Share groups: adds records acknowledged ACCEPT, RELEASE and REJECT.
    pub fn acknowledged(&self, accepted: u64, released: u64, rejected: u64) {
        self.accepted.fetch_add(accepted, Relaxed);
        self.released.fetch_add(released, Relaxed);
        self.rejected.fetch_add(rejected, Relaxed);
    }

    /// Share groups: adds records delivered again (delivery count > 1).
    pub fn redelivered(&self, records: u64) {
        self.redelivered.fetch_add(records, Relaxed);
    }

    /// Records behind the end of the log: from the fetch position, and
    /// those fetched but not yet handled.
    fn lag(&self) -> Option<i64> {
        let end = self.end.load(Relaxed);
        let queued = self
            .records
            .load(Relaxed)
            .saturating_sub(self.handled.load(Relaxed));
        (self.assigned.load(Relaxed) && end >= 0)
            .then(|| (end - self.position.load(Relaxed)).max(0) + queued as i64)
    }

    /// Marks it read by a fetch task until the guard drops. What an
    /// earlier task fetched and the job never handled was dropped with
    /// that task, and is not queued.
    pub fn assign(self: &Arc<Self>) -> Assigned {
        self.handled.store(self.records.load(Relaxed), Relaxed);
        self.assigned.store(true, Relaxed);
        Assigned(Arc::clone(self))
    }
}

/// A partition's assignment, held by its fetch task: dropped when the task
/// ends (stopped, failed, handed back), which unassigns the partition.
#[derive(Debug)]
pub struct Assigned(Arc<InputPartition>);

impl Drop for Assigned {
    fn drop(&mut self) {
        self.0.assigned.store(false, Relaxed);
        self.0.failing.store(false, Relaxed);
    }
}

/// The job loop's note of the records it handed to the job, per
/// partition (its own map of the registry's entries, so no lock per batch).
#[derive(Debug, Default)]
pub struct Handled(BTreeMap<TopicPartition, Arc<InputPartition>>);

impl Handled {
    /// Notes a batch of one partition as handled.
    pub fn batch(&mut self, records: &[crate::record::ConsumedRecord]) {
        let Some(first) = records.first() else {
            return;
        };
        let at = first.topic_partition();
        match self.0.get(&at) {
            Some(input) => input.handled(records.len()),
            None => {
                let input = global().input(&at);
                input.handled(records.len());
                self.0.insert(at, input);
            }
        }
    }
}

/// One output partition's figures, updated by its producer lane.
#[derive(Debug, Default)]
pub struct OutputPartition {
    records: AtomicU64,
    bytes: AtomicU64,
}

impl OutputPartition {
    /// Adds an acknowledged batch.
    pub fn produced(&self, records: usize, bytes: usize) {
        self.records.fetch_add(records as u64, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
    }
}

/// The registry: every figure a job reports. See [`global`].
#[derive(Debug)]
pub struct Metrics {
    inputs: Mutex<BTreeMap<TopicPartition, Arc<InputPartition>>>,
    outputs: Mutex<BTreeMap<TopicPartition, Arc<OutputPartition>>>,
    /// Commits and checkpoints written to the offsets store.
    pub commits: Timer,
    /// Produce requests acknowledged.
    pub produce: Timer,
    /// Fetches and (idempotent) produce requests tried again.
    pub retries: AtomicU64,
    /// Rebalances this member went through (each generation after the
    /// first, and each time it was fenced).
    pub rebalances: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
    /// Windows open across partitions (count/agg; with sessions, keys
    /// with an open session).
    pub windows_open: AtomicI64,
    /// Bytes of the aggregation state at the last checkpoint (count/agg).
    pub state_bytes: AtomicI64,
    phase: AtomicU8,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry (a test's; jobs use [`global`]).
    pub const fn new() -> Self {
        Self {
            inputs: Mutex::new(BTreeMap::new()),
            outputs: Mutex::new(BTreeMap::new()),
            commits: Timer::new(),
            produce: Timer::new(),
            retries: AtomicU64::new(0),
            rebalances: AtomicU64::new(0),
            errors: [const { AtomicU64::new(0) }; ErrorKind::ALL.len()],
            windows_open: AtomicI64::new(0),
            state_bytes: AtomicI64::new(0),
            phase: AtomicU8::new(Phase::Running as u8),
        }
    }

    /// `at`'s input figures, created on first use.
    pub fn input(&self, at: &TopicPartition) -> Arc<InputPartition> {
        let mut inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        let entry = inputs.entry(at.clone()).or_insert_with(|| {
            Arc::new(InputPartition {
                end: AtomicI64::new(-1),
                ..InputPartition::default()
            })
        });
        Arc::clone(entry)
    }

    /// `at`'s output figures, created on first use.
    pub fn output(&self, at: &TopicPartition) -> Arc<OutputPartition> {
        let mut outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(outputs.entry(at.clone()).or_default())
    }

    /// Adds records of `at` a filter left out and records that could not
    /// be read, once per batch (the registry is looked up only when there
    /// are some).
    pub fn left_out(&self, at: &TopicPartition, filtered: u64, unparsed: u64) {
        if filtered + unparsed > 0 {
            let input = self.input(at);
            input.filtered.fetch_add(filtered, Relaxed);
            input.unparsed.fetch_add(unparsed, Relaxed);
        }
    }

    /// Adds records of `at` for windows that had closed, once per batch.
    pub fn late(&self, at: &TopicPartition, late: u64) {
        if late > 0 {
            self.input(at).late.fetch_add(late, Relaxed);
        }
    }

    /// Counts an error of `kind`.
    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Relaxed);
    }

    /// Sets where the job stands.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Relaxed);
    }

    /// Whether the job is ready: partitions assigned, each being read,
    /// not in a rebalance. `Err` has the reason, one line.
    ///
    /// # Errors
    ///
    /// The reason it is not ready.
    pub fn ready(&self) -> Result<(), String> {
        match self.phase.load(Relaxed) {
            p if p == Phase::Rebalancing as u8 => {
                return Err("rebalancing: the group is assigning partitions".into());
            }
            p if p == Phase::Stopping as u8 => return Err("stopping".into()),
            _ => {}
        }
        let inputs = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        let mut assigned = inputs.iter().filter(|(_, p)| p.assigned.load(Relaxed));
        if let Some((at, _)) = assigned.clone().find(|(_, p)| p.failing.load(Relaxed)) {
            return Err(format!("fetches from {at} are failing"));
        }
        if assigned.next().is_none() {
            return Err("no partitions assigned".into());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;

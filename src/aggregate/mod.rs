//! `weir agg` and `weir count`: aggregates per extracted key (count, sum,
//! min, max, avg, distinct, top-k, percentiles) in tumbling, hopping or
//! session event-time windows (or running totals), exact across crashes.
//! `count` is `agg` with the one aggregate `count`, through the same
//! engine: `spec` reads `--agg`, `acc` keeps each (window, key)'s
//! aggregates, `state` a partition's windows and sessions, `rows`
//! merges them across partitions into rows, `run` drives a run (records
//! in, rows out, checkpoints), `restore` reads the saved state back and
//! `reading` plugs it into the job runner, standalone or as a member of
//! a group.
//!
//! - State is kept per input partition ([`PartitionCounts`]). At every
//!   checkpoint the partition's counts and its next offset are written in
//!   the same commit record of the offsets store, so a restart restores
//!   counts and position from one instant: nothing is lost or counted
//!   twice.
//! - A state too large for its commit record is written as chunks the
//!   commit refers to; the offsets store does that
//!   ([`GroupSession::commit_states`]): this module hands it each
//!   partition's counts as JSON and gets them back on restore.
//! - A window closes in a partition when the partition's watermark (the
//!   largest timestamp it has seen, minus the grace period) passes the
//!   window's end; later records for it are counted as late and not
//!   applied. A window is emitted, summed across partitions, once it has
//!   closed in every partition that has records (with `--emit final` and
//!   without `--exactly-once`, as soon as it has, between checkpoints
//!   too). A partition without
//!   a record in this run does not hold windows back once a fetch has
//!   found it at the end of its log (never before: its first fetch may
//!   not have answered, or its leader may be moving), nor one that reached
//!   its stop, nor, with an idle timeout, one that has had no record for
//!   that long; windows that
//!   close past it are closed in it too, so its later records for them
//!   are late, never counted after their window was emitted.
//! - Order at a checkpoint: emit, wait for the output (flushed, or
//!   acknowledged by the output topic), then commit. A crash in between
//!   emits the same rows again; in an output topic keyed by (window, key)
//!   the repeat replaces the first under compaction.
//! - Across the members of a group, unless grouped by the record key, a
//!   run has two stages ([`SecondStage`]): its input partitions send
//!   partial aggregates and ticks through the group's internal topic
//!   (`partial`), partitioned by the grouping key, and its partitions of
//!   that topic merge them (`merge`) into the rows, so a (window, key)
//!   row is the aggregate over every input partition. `second` is a
//!   run's side of it.

mod acc;
mod builder;
mod emit;
mod error;
mod extract;
mod merge;
mod partial;
mod reading;
mod restore;
mod rows;
mod run;
pub mod sketch;
mod spec;
mod state;
mod topic;

use std::collections::BTreeMap;
use std::time::Duration;

pub use acc::{AggPlan, Aggs};
pub use builder::DEFAULT_CHECKPOINT_INTERVAL;
pub use emit::{AggValues, JsonLines, Row, RowSink, Table, agg_table_line, table_line};
pub use error::{CountError, StateProblem};
pub use extract::{Extractor, KeyReader, RecordReader};
pub use partial::PartialError;
pub use reading::{CountOutput, count};
pub use restore::{Restored, restore};
pub use run::run;
use run::run_job;
pub use spec::{AggKind, AggSpec, AggSpecError};
pub use state::{Applied, CountsFormatError, PartitionCounts, TOTALS, WindowCounts, Windowing};
pub use topic::{
    OutputTopic, OutputTopicError, RowsRefused, TransactionPlan, count_transactional_id,
    open_output_topic,
};

use crate::TopicPartition;
use crate::job::StopReason;
use crate::job::member::Summary;
use crate::kafka::membership::MemberLink;
use crate::offsets::GroupSession;

/// When counts are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitMode {
    /// Each window once, when it closes (and every open window at a stop).
    Final,
    /// The counts that changed, at every checkpoint.
    Updates,
}

/// The windows and emission a count asks for, as given (`--window`,
/// `--hop`, `--session-gap`, `--grace`, `--idle-timeout`, `--emit`):
/// [`check`](Self::check) applies the rules between them.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct WindowSpec {
    /// Window length: tumbling, or hopping with `hop`. Neither this nor
    /// `session_gap`: running totals.
    pub window: Option<Duration>,
    /// Hopping windows: one starts every `hop`.
    pub hop: Option<Duration>,
    /// Session windows per key with this gap.
    pub session_gap: Option<Duration>,
    /// How long a window stays open behind the partition's newest
    /// timestamp.
    pub grace: Duration,
    /// A partition without records for this long holds no window back.
    pub idle_timeout: Option<Duration>,
    /// When rows are emitted; `None` for the default.
    pub emit: Option<EmitMode>,
    /// Rows go to a live view on a terminal: updates by default, even
    /// with windows.
    pub live: bool,
}

/// Windows asked for that do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// A zero length.
    #[error("--{flag} must be at least 1ms")]
    Zero {
        /// The flag: window, hop or session-gap.
        flag: &'static str,
    },
    /// A grace or idle timeout without windows to apply it to.
    #[error("--{flag} needs --window or --session-gap")]
    NeedsWindows {
        /// The flag: grace or idle-timeout.
        flag: &'static str,
    },
    /// Session windows with updates.
    #[error("--session-gap emits each session once, when it closes (--emit final)")]
    SessionUpdates,
    /// A hop longer than the window: the records between two windows
    /// would be in none (Kafka Streams refuses the same advance).
    #[error(
        "--hop ({hop:?}) is longer than --window ({window:?}): the records between windows would be in none"
    )]
    HopAboveWindow {
        /// The hop.
        hop: Duration,
        /// The window's length.
        window: Duration,
    },
}

impl WindowSpec {
    /// The windowing and emission these ask for. Without `emit`: each
    /// window once when it closes (sessions always), updates for running
    /// totals and on a live view.
    ///
    /// # Errors
    ///
    /// A zero length, a hop longer than the window, a grace or idle
    /// timeout without windows, or session windows with updates.
    pub fn check(&self) -> Result<(Windowing, EmitMode), WindowError> {
        let ms = |d: Option<Duration>, flag| match d {
            Some(d) if d.as_millis() == 0 => Err(WindowError::Zero { flag }),
            Some(d) => Ok(Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
            None => Ok(None),
        };
        let hop_ms = ms(self.hop, "hop")?;
        let size_ms = ms(self.window, "window")?;
        let session_gap_ms = ms(self.session_gap, "session-gap")?;
        if let (Some(hop), Some(window)) = (self.hop, self.window)
            && hop > window
        {
            return Err(WindowError::HopAboveWindow { hop, window });
        }
        if size_ms.is_none() && session_gap_ms.is_none() {
            if !self.grace.is_zero() {
                return Err(WindowError::NeedsWindows { flag: "grace" });
            }
            if self.idle_timeout.is_some() {
                return Err(WindowError::NeedsWindows {
                    flag: "idle-timeout",
                });
            }
        }
        let emit = match self.emit {
            Some(EmitMode::Final) => EmitMode::Final,
            Some(EmitMode::Updates) if session_gap_ms.is_some() => {
                return Err(WindowError::SessionUpdates);
            }
            Some(EmitMode::Updates) => EmitMode::Updates,
            None if session_gap_ms.is_some() => EmitMode::Final,
            None if size_ms.is_some() && !self.live => EmitMode::Final,
            None => EmitMode::Updates,
        };
        let windowing = Windowing {
            size_ms,
            hop_ms,
            grace_ms: i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX),
            session_gap_ms,
        };
        Ok((windowing, emit))
    }
}

/// What to count and when to emit: [`Default`] (a running count per
/// key), then `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use weir::aggregate::{CountConfig, Extractor, WindowSpec};
///
/// let by_user = CountConfig::default()
///     .with_by(["json:/user".parse::<Extractor>()?])
///     .with_windows(WindowSpec::tumbling(Duration::from_secs(60)))?;
/// assert_eq!(by_user.windowing.size_ms, Some(60_000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CountConfig {
    /// What each record is grouped under: one extractor, or several for
    /// a composite key.
    pub by: Vec<Extractor>,
    /// The aggregates per (window, key): `count` alone for `weir count`.
    pub aggs: AggPlan,
    /// Windows or running totals.
    pub windowing: Windowing,
    /// When rows are emitted.
    pub emit: EmitMode,
    /// Stop after this many records.
    pub count: Option<u64>,
    /// Time between checkpoints (emission, then commit).
    pub checkpoint_interval: Duration,
    /// A partition without records for this long holds no window back.
    pub idle_timeout: Option<Duration>,
}

/// Checkpoints into the offsets store.
#[derive(Debug)]
pub struct Checkpoints {
    /// The group's session.
    pub session: GroupSession,
    /// Fail when another instance commits one of these partitions.
    pub exclusive: bool,
}

/// The job: what to count, where rows go, where state is kept.
pub struct CountJob {
    /// What to count.
    pub config: CountConfig,
    /// Rows to stdout or any writer.
    pub sink: Option<Box<dyn RowSink>>,
    /// Rows to a topic.
    pub topic: Option<OutputTopic>,
    /// State and positions to the offsets store; `None` keeps nothing.
    pub checkpoints: Option<Checkpoints>,
    /// As a member of a group through the broker's coordinator: count,
    /// emit and commit only while the member holds its partitions, and
    /// mirror the commits to the broker's group offsets.
    pub member: Option<MemberLink>,
    /// Across group members: partial aggregates through the group's
    /// internal topic, merged there into rows (`merge.rs`).
    pub second_stage: Option<SecondStage>,
}

/// The second stage of a count across group members: the group's internal
/// topic, partitioned by the grouping key, which each input partition
/// sends its partial aggregates to and whose partitions merge them.
#[derive(Debug)]
pub struct SecondStage {
    /// The internal topic.
    pub topic: std::sync::Arc<str>,
    /// Its partitions.
    pub partitions: i32,
    /// Every input partition: a window is final once each has passed it.
    pub sources: Vec<TopicPartition>,
    /// The partials' producer, unless the output's transactions carry them.
    sender: Option<topic::Sender>,
}

impl SecondStage {
    /// Partials to `topic` of `partitions`, from `sources`.
    pub fn new(topic: &str, partitions: i32, sources: Vec<TopicPartition>) -> Self {
        Self {
            topic: topic.into(),
            partitions,
            sources,
            sender: None,
        }
    }
}

impl CountJob {
    /// Whether the job may still write for its partitions: always, unless
    /// it is a group member whose lease lapsed.
    fn holds_partitions(&self) -> bool {
        self.member.as_ref().is_none_or(MemberLink::valid)
    }

    /// Whether the output topic is written in transactions (exactly
    /// once): rows, state and positions are then committed together.
    fn is_transactional(&self) -> bool {
        self.topic
            .as_ref()
            .is_some_and(OutputTopic::is_transactional)
    }
}

impl std::fmt::Debug for CountJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountJob")
            .field("config", &self.config)
            .field("sink", &self.sink.is_some())
            .field("topic", &self.topic)
            .field("checkpoints", &self.checkpoints)
            .field("member", &self.member.is_some())
            .field("second_stage", &self.second_stage)
            .finish()
    }
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct CountSummary {
    /// Records read and counted (late ones included), per partition.
    pub records: BTreeMap<TopicPartition, u64>,
    /// Records the extractor could not read (the unparsed bucket).
    pub unparsed: u64,
    /// Records that arrived for a closed window, across partitions,
    /// including earlier runs of the group.
    pub late: u64,
    /// Rows emitted.
    pub rows: u64,
    /// Checkpoints committed.
    pub commits: u64,
    /// How long it ran.
    pub elapsed: Duration,
    /// Why it ended.
    pub stop: StopReason,
}

impl CountSummary {
    /// Records counted, across partitions.
    fn counted(&self) -> u64 {
        self.records.values().sum()
    }
}

impl Summary for CountSummary {
    fn ending(&mut self) -> (&mut Duration, &mut StopReason) {
        (&mut self.elapsed, &mut self.stop)
    }

    /// A run that counted nothing.
    fn empty(stop: StopReason) -> Self {
        Self {
            records: BTreeMap::new(),
            unparsed: 0,
            late: 0,
            rows: 0,
            commits: 0,
            elapsed: Duration::ZERO,
            stop,
        }
    }

    /// Adds what a later run (a group's next generation) did. Late
    /// records are kept with a partition's counts, so the later run's
    /// figure includes what its partitions saw before.
    fn absorb(&mut self, later: Self) {
        for (at, n) in later.records {
            *self.records.entry(at).or_default() += n;
        }
        self.unparsed += later.unparsed;
        self.late = later.late;
        self.rows += later.rows;
        self.commits += later.commits;
        self.stop = later.stop;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(f: impl FnOnce(&mut WindowSpec)) -> Result<(Windowing, EmitMode), String> {
        let mut spec = WindowSpec::default();
        f(&mut spec);
        spec.check().map_err(|e| e.to_string())
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn window_rules_refuse_what_does_not_go_together() {
        assert_eq!(
            spec(|s| s.window = Some(Duration::ZERO)).unwrap_err(),
            "--window must be at least 1ms"
        );
        assert_eq!(
            spec(|s| {
                s.window = Some(MINUTE);
                s.hop = Some(Duration::from_micros(10));
            })
            .unwrap_err(),
            "--hop must be at least 1ms"
        );
        assert_eq!(
            spec(|s| {
                s.window = Some(MINUTE);
                s.hop = Some(2 * MINUTE);
            })
            .unwrap_err(),
            "--hop (120s) is longer than --window (60s): the records between windows would be in none"
        );
        assert!(
            spec(|s| {
                s.window = Some(MINUTE);
                s.hop = Some(MINUTE);
            })
            .is_ok(),
            "a hop equal to the window: tumbling windows"
        );
        assert_eq!(
            spec(|s| s.grace = Duration::from_secs(5)).unwrap_err(),
            "--grace needs --window or --session-gap"
        );
        assert_eq!(
            spec(|s| s.idle_timeout = Some(MINUTE)).unwrap_err(),
            "--idle-timeout needs --window or --session-gap"
        );
        assert_eq!(
            spec(|s| {
                s.session_gap = Some(MINUTE);
                s.emit = Some(EmitMode::Updates);
            })
            .unwrap_err(),
            "--session-gap emits each session once, when it closes (--emit final)"
        );
    }

    #[test]
    fn emission_defaults_to_final_for_windows_off_a_terminal() {
        let emit = |f: fn(&mut WindowSpec)| spec(f).unwrap().1;
        assert_eq!(emit(|_| {}), EmitMode::Updates, "running totals");
        assert_eq!(emit(|s| s.window = Some(MINUTE)), EmitMode::Final);
        assert_eq!(
            emit(|s| {
                s.window = Some(MINUTE);
                s.live = true;
            }),
            EmitMode::Updates,
            "a live view"
        );
        assert_eq!(
            emit(|s| {
                s.session_gap = Some(MINUTE);
                s.live = true;
            }),
            EmitMode::Final,
            "sessions are final even on a terminal"
        );
        let (windowing, _) = spec(|s| {
            s.window = Some(Duration::from_secs(300));
            s.hop = Some(MINUTE);
            s.grace = Duration::from_secs(5);
        })
        .unwrap();
        assert_eq!(windowing.size_ms, Some(300_000));
        assert_eq!(windowing.hop_ms, Some(60_000));
        assert_eq!(windowing.grace_ms, 5_000);
        assert_eq!(windowing.session_gap_ms, None);
    }
}

//! `weir consume` as the runner ([`crate::job::runner`]) starts it,
//! standalone or as a member of a group: each run writes its partitions'
//! records from where the group's commits (or `--from`) say, and commits
//! what it flushed.

use std::future::Future;
use std::io::Write;

use super::filter::Filter;
use super::output::RecordWriter;
use super::{ConsumeJob, ConsumeSummary};
use crate::job::runner::{self, Joined, Opening, ReadPlan, Reading};
use crate::job::{JobError, StopReason};
use crate::kafka::connect::ConnectionConfig;
use crate::read::Consumer;

/// Writes the records `plan` reads that pass `filter` into `writer`,
/// until `shutdown` completes, `count` records are written, every
/// partition reached its end, or the output closes; a member leaves its
/// group at the end.
///
/// # Errors
///
/// The cluster could not be reached, the group not joined or its offsets
/// not read, a partition failed, or the output could not be written.
pub async fn consume<W: Write>(
    connection: &ConnectionConfig,
    plan: ReadPlan,
    filter: Filter,
    count: Option<u64>,
    writer: &mut RecordWriter<W>,
    shutdown: impl Future<Output = StopReason>,
) -> Result<ConsumeSummary, JobError> {
    let job = Consume {
        filter,
        count,
        writer,
    };
    runner::run(connection, plan, job, shutdown).await
}

/// The consume job, one run at a time.
struct Consume<'a, W: Write> {
    filter: Filter,
    count: Option<u64>,
    writer: &'a mut RecordWriter<W>,
}

impl<W: Write> Reading for Consume<'_, W> {
    type Error = JobError;
    type Summary = ConsumeSummary;

    async fn open(&mut self, _opening: Opening<'_>) -> Result<(), JobError> {
        Ok(())
    }

    async fn run(
        &mut self,
        consumer: Consumer,
        mut joined: Joined,
        so_far: Option<&ConsumeSummary>,
        stop: impl Future<Output = StopReason>,
    ) -> Result<ConsumeSummary, JobError> {
        let member = joined.member.clone();
        let rebalances = joined.rebalances.take();
        let job = ConsumeJob {
            filter: self.filter.clone(),
            count: self.count.map(|n| {
                let written = so_far.map_or(0, |t| t.written);
                n.saturating_sub(written)
            }),
            commits: joined.into_commits(),
            member,
        };
        super::run_steered(consumer, job, self.writer, stop, rebalances).await
    }

    fn incremental(&self) -> bool {
        true
    }
}

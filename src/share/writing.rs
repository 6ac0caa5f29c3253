//! `weir consume --share-group`'s worker: each delivery's records that
//! pass the filter written and flushed, then accepted (a record the
//! filter leaves out is accepted unwritten); what could not be written is
//! released.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::time::Duration;

use tokio::sync::watch;

use super::acks::{AckKind, Acks};
use super::run::{Worker, tally};
use super::session::Delivery;
use super::{ShareConfig, ShareError, ShareSummary};
use crate::TopicPartition;
use crate::consume::filter::Verdict;
use crate::consume::output::RecordWriter;
use crate::job::{StopReason, is_broken_pipe};

/// Writes deliveries to a [`RecordWriter`].
pub(super) struct Writing<'a, W: Write> {
    pub(super) config: &'a ShareConfig,
    pub(super) writer: &'a mut RecordWriter<W>,
}

impl<W: Write> Worker for Writing<'_, W> {
    type Event = Infallible;

    async fn event(&mut self) -> Option<Infallible> {
        std::future::pending().await
    }

    async fn on_event(
        &mut self,
        event: Infallible,
        _summary: &mut ShareSummary,
        _stop_all: &watch::Sender<bool>,
    ) -> Result<Option<StopReason>, ShareError> {
        match event {}
    }

    async fn take(
        &mut self,
        delivery: Delivery,
        summary: &mut ShareSummary,
        stop_all: &watch::Sender<bool>,
    ) -> Result<Option<StopReason>, ShareError> {
        write(delivery, self.config, self.writer, summary, stop_all)
    }

    /// Every delivery was answered as it was taken.
    async fn settle(&mut self, _summary: &mut ShareSummary, _limit: Duration) {}
}

/// Writes a delivery's records that pass the filter, flushes, and
/// answers with their acknowledgements; `Some` when the job is to stop.
fn write<W: Write>(
    delivery: Delivery,
    config: &ShareConfig,
    writer: &mut RecordWriter<W>,
    summary: &mut ShareSummary,
    stop_all: &watch::Sender<bool>,
) -> Result<Option<StopReason>, ShareError> {
    let mut acks: BTreeMap<TopicPartition, Acks> = BTreeMap::new();
    let mut stop = None;
    let mut failed = None;
    let counted = config.filter.is_noop();
    for d in &delivery.records {
        let record = &d.record;
        let tp = record.topic_partition();
        let owed = acks.entry(tp).or_default();
        if stop.is_some() || failed.is_some() {
            owed.add(record.offset, AckKind::Release);
            continue;
        }
        summary.records += 1;
        if d.delivery_count > 1 {
            summary.redeliveries += 1;
        }
        let verdict = if counted {
            Verdict::Pass
        } else {
            config.filter.check(record)
        };
        match verdict {
            Verdict::Pass => {
                writer.set_delivery_count(Some(d.delivery_count));
                if let Err(e) = writer.write(record) {
                    failed = Some(e);
                    owed.add(record.offset, AckKind::Release);
                    continue;
                }
                summary.written += 1;
            }
            Verdict::Reject => summary.filtered += 1,
            Verdict::Unparsed => summary.unparsed += 1,
        }
        owed.add(record.offset, AckKind::Accept);
        if config.count.is_some_and(|n| summary.written >= n) {
            stop = Some(StopReason::Count);
        }
    }
    if failed.is_none() {
        if let Err(e) = writer.flush() {
            failed = Some(e);
        }
    }
    if failed.is_some() {
        // Nothing of this delivery is known to be out: all go back.
        for a in acks.values_mut() {
            a.turn_all(AckKind::Release);
        }
    }
    tally(&delivery.records, &acks, summary);
    if stop.is_some() || failed.is_some() {
        // Before the answer: the session closes with these
        // acknowledgements rather than fetching (and acquiring) more.
        stop_all.send_replace(true);
    }
    // The session may be gone (stopping): nothing to answer then.
    let _ = delivery.done.send(acks);
    match failed {
        Some(e) if is_broken_pipe(&e) => Ok(Some(StopReason::OutputClosed)),
        Some(e) => Err(ShareError::Output(e)),
        None => Ok(stop),
    }
}

//! `weir pipe --share-group G`: a share group's records, filtered and
//! reshaped as `weir pipe` does ([`crate::pipe::Transform`]), produced to
//! another topic.
//!
//! A record is accepted only once its output record was acknowledged by
//! the output topic (with the acks the producer is configured for); a
//! record the filter leaves out is accepted unwritten; a record that
//! cannot be transformed (its key, value or filter field cannot be read:
//! pipe's skipped input) is rejected: archived, never delivered again,
//! and counted. At a stop the output's acknowledgements in flight are
//! awaited: what they acknowledged is accepted, the rest released. There
//! is no exactly once: share groups acknowledge outside transactions.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::warn;

use super::acks::{AckKind, Acks, Delivered};
use super::run::{Worker, tally};
use super::session::Delivery;
use super::{ShareConfig, ShareError, ShareSummary};
use crate::consume::filter::Verdict;
use crate::job::StopReason;
use crate::kafka::connect::ConnectionConfig;
use crate::pipe::{PipeTo, Reshaper, Transform, open_output};
use crate::produce::producer::{Delivery as Outcome, ProduceError, Producer};
use crate::{ErrorChain, TopicPartition};

/// Pipes `config.topics`, read as a member of the share group
/// `config.group`, filtered by `config.filter` and reshaped by
/// `transform`, to `to`'s topic, until `shutdown` completes, `count`
/// records were handed to the output, or the output fails; then waits
/// for the output's acknowledgements in flight, releases what they did
/// not acknowledge, and leaves the group. `{delivery_count}` in a
/// template is the record's delivery count.
///
/// # Errors
///
/// `to` asks for exactly once ([`ShareError::ExactlyOnce`]), the output
/// topic does not exist, the broker has no share groups, the cluster or a
/// topic cannot be reached, a request is refused, or the output topic
/// refused a record.
pub async fn pipe(
    connection: &ConnectionConfig,
    config: ShareConfig,
    transform: Transform,
    mut to: PipeTo,
    shutdown: impl Future<Output = StopReason>,
) -> Result<ShareSummary, ShareError> {
    if to.exactly_once.is_some() {
        return Err(ShareError::ExactlyOnce {
            group: config.group.clone(),
        });
    }
    let client = Arc::new(connection.client().await?);
    let (producer, outcomes) = open_output(connection, &client, &mut to)
        .await
        .map_err(|e| ShareError::Pipe(Box::new(e)))?;
    let mut worker = Piping {
        config: &config,
        reshaper: Reshaper::new(&transform),
        transform,
        topic: to.topic.clone(),
        producer,
        outcomes,
        next_tag: 0,
        sent: HashMap::new(),
        pending: BTreeMap::new(),
        next_pending: 0,
        handed: 0,
        stopped: false,
    };
    let result = super::run::run(connection, &config, &mut worker, shutdown).await;
    worker.producer.close().await;
    result
}

/// One delivery whose output records are not all acknowledged yet.
struct Pending {
    records: Vec<Delivered>,
    acks: BTreeMap<TopicPartition, Acks>,
    /// Output records not yet acknowledged.
    outstanding: usize,
    done: oneshot::Sender<BTreeMap<TopicPartition, Acks>>,
}

/// Pipes deliveries to a producer, answering each once the output
/// acknowledged its records.
struct Piping<'a> {
    config: &'a ShareConfig,
    transform: Transform,
    reshaper: Reshaper,
    /// The output topic.
    topic: String,
    producer: Producer,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    next_tag: u64,
    /// Per output record in flight (by tag): its delivery and input.
    sent: HashMap<u64, (u64, TopicPartition, i64)>,
    /// Deliveries waiting for the output, by number.
    pending: BTreeMap<u64, Pending>,
    next_pending: u64,
    /// Records handed to the output (what `count` counts).
    handed: u64,
    /// No more records are handed on (a count reached, an output
    /// failure): later ones are released.
    stopped: bool,
}

impl Worker for Piping<'_> {
    type Event = Outcome;

    async fn event(&mut self) -> Option<Outcome> {
        self.outcomes.recv().await
    }

    async fn on_event(
        &mut self,
        outcome: Outcome,
        summary: &mut ShareSummary,
        _stop_all: &watch::Sender<bool>,
    ) -> Result<Option<StopReason>, ShareError> {
        match self.outcome(outcome, summary) {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    async fn take(
        &mut self,
        delivery: Delivery,
        summary: &mut ShareSummary,
        stop_all: &watch::Sender<bool>,
    ) -> Result<Option<StopReason>, ShareError> {
        let id = self.next_pending;
        self.next_pending += 1;
        let mut acks: BTreeMap<TopicPartition, Acks> = BTreeMap::new();
        let mut outstanding = 0;
        let mut stop = None;
        let mut failed = None;
        let counted = self.config.filter.is_noop();
        for d in &delivery.records {
            let record = &d.record;
            let tp = record.topic_partition();
            let owed = acks.entry(tp.clone()).or_default();
            if self.stopped {
                owed.add(record.offset, AckKind::Release);
                continue;
            }
            summary.records += 1;
            if d.delivery_count > 1 {
                summary.redeliveries += 1;
            }
            let verdict = match counted {
                true => Verdict::Pass,
                false => self.config.filter.check(record),
            };
            let out = match verdict {
                Verdict::Pass => {
                    self.reshaper
                        .apply(&self.transform, record, Some(d.delivery_count))
                }
                Verdict::Reject => {
                    summary.filtered += 1;
                    owed.add(record.offset, AckKind::Accept);
                    continue;
                }
                Verdict::Unparsed => None,
            };
            let Some(out) = out else {
                // Bad input: no attempt will read it better.
                summary.unparsed += 1;
                owed.add(record.offset, AckKind::Reject);
                continue;
            };
            let tag = self.next_tag;
            self.next_tag += 1;
            match self.producer.send(tag, out).await {
                Ok(_) => {
                    self.sent.insert(tag, (id, tp, record.offset));
                    outstanding += 1;
                    self.handed += 1;
                }
                Err(cause) => {
                    owed.add(record.offset, AckKind::Release);
                    self.stopped = true;
                    failed = Some(self.produce_error(Arc::new(cause), Some((tp, record.offset))));
                    continue;
                }
            }
            if self.config.count.is_some_and(|n| self.handed >= n) {
                self.stopped = true;
                stop = Some(StopReason::Count);
            }
        }
        if self.stopped {
            // Before any answer: the sessions close with it rather than
            // acquiring more.
            stop_all.send_replace(true);
        }
        let pending = Pending {
            records: delivery.records,
            acks,
            outstanding,
            done: delivery.done,
        };
        match outstanding {
            0 => answer(pending, summary),
            _ => {
                self.pending.insert(id, pending);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(stop),
        }
    }

    async fn settle(&mut self, summary: &mut ShareSummary, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.sent.is_empty() {
            match tokio::time::timeout_at(deadline, self.outcomes.recv()).await {
                Ok(Some(outcome)) => {
                    // A failure is the job's already, or logged here.
                    if let Some(e) = self.outcome(outcome, summary) {
                        warn!(group = self.config.group.as_str(), error = %ErrorChain(&e), "an output record was not written; its input is released");
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        if !self.sent.is_empty() {
            warn!(
                group = self.config.group.as_str(),
                records = self.sent.len(),
                "the output did not acknowledge every record in time; their inputs are released"
            );
        }
        for (_, (id, tp, offset)) in self.sent.drain() {
            if let Some(p) = self.pending.get_mut(&id) {
                p.acks.entry(tp).or_default().add(offset, AckKind::Release);
            }
        }
        for (_, pending) in std::mem::take(&mut self.pending) {
            answer(pending, summary);
        }
    }
}

impl Piping<'_> {
    /// Takes the output's outcome of one record: its input accepted
    /// (written) or released (not), its delivery answered once the last
    /// of its records has an outcome. A failure is returned.
    fn outcome(&mut self, outcome: Outcome, summary: &mut ShareSummary) -> Option<ShareError> {
        let (id, tp, offset) = self.sent.remove(&outcome.tag)?;
        let (kind, failed) = match outcome.result {
            Ok(_) => {
                summary.written += 1;
                (AckKind::Accept, None)
            }
            Err(cause) => {
                self.stopped = true;
                let at = cause.is_record_refusal().then(|| (tp.clone(), offset));
                (AckKind::Release, Some(self.produce_error(cause, at)))
            }
        };
        if let Some(p) = self.pending.get_mut(&id) {
            p.acks.entry(tp).or_default().add(offset, kind);
            p.outstanding -= 1;
            if p.outstanding == 0 {
                let p = self.pending.remove(&id).expect("found above");
                answer(p, summary);
            }
        }
        failed
    }

    fn produce_error(
        &self,
        source: Arc<ProduceError>,
        at: Option<(TopicPartition, i64)>,
    ) -> ShareError {
        match at {
            Some((at, offset)) if source.is_record_refusal() => ShareError::Record {
                group: self.config.group.clone(),
                at,
                offset,
                source,
            },
            _ => ShareError::Produce {
                group: self.config.group.clone(),
                topic: self.topic.clone(),
                source,
            },
        }
    }
}

/// Answers a delivery with its acknowledgements, counted.
fn answer(pending: Pending, summary: &mut ShareSummary) {
    tally(&pending.records, &pending.acks, summary);
    // The session may be gone (stopping): nothing to answer then.
    let _ = pending.done.send(pending.acks);
}

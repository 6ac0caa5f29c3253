//! Share groups (KIP-932, "queues for Kafka"): `weir consume
//! --share-group G`. Many members read one partition; the broker hands
//! each record to one member at a time (acquired, under a lock with a
//! timeout), and the member acknowledges it: ACCEPT once its output was
//! written and flushed (a record the filter leaves out is accepted too),
//! RELEASE for what it holds unwritten when it stops (delivered again, to
//! any member), REJECT for what it cannot process. A member that dies
//! leaves its records to the lock's timeout, then another member gets
//! them. There are no offsets of weir's own: the share-partition state
//! lives in the broker.
//!
//! - [`member`](self::member) (private): membership (ShareGroupHeartbeat)
//!   and the topics' ids and leaders;
//! - [`session`](self::session) (private): one ShareFetch session per
//!   partition leader, acknowledgements carried by the next fetch;
//! - [`acks`]: what is held and owed, with no I/O;
//! - [`start`]: where a new share group starts (`share.auto.offset.reset`);
//! - [`offsets`](self::offsets): `weir offsets show/set/delete` of a
//!   share group.

pub mod acks;
mod member;
pub mod offsets;
mod session;
pub mod start;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::TopicPartition;
use crate::consume::filter::{Filter, Verdict};
use crate::consume::output::RecordWriter;
use crate::job::{StopReason, is_broken_pipe};
use crate::kafka::connect::{ConnectError, ConnectionConfig};
use crate::kafka::wire::WireError;
use acks::{AckKind, Acks};
use member::{ShareMember, Topology};
use session::{Delivery, Ended, Session, SessionConfig, SharePartition};

pub use start::ShareStart;

/// What a share-group consumer does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShareConfig {
    /// The share group.
    pub group: String,
    /// The topics it reads.
    pub topics: Vec<String>,
    /// Where the group starts if it has no state yet; refused on a group
    /// that has ([`ShareError::StartRefused`]).
    pub start: Option<ShareStart>,
    /// Which records are written (the others are accepted unwritten).
    pub filter: Filter,
    /// Stop after this many records were written.
    pub count: Option<u64>,
    /// Records a fetch may acquire (the Java consumer's
    /// `max.poll.records`, whose default this is).
    pub max_records: i32,
    /// How long a fetch waits for records; a stop waits for the fetch
    /// under way, so this bounds it. 500 ms, the Java consumer's
    /// `fetch.max.wait.ms`.
    pub max_wait: Duration,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_addr: Option<String>,
}

impl ShareConfig {
    /// Reads `topics` as a member of `group`, every record written.
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            group: group.into(),
            topics,
            start: None,
            filter: Filter::new(Default::default()),
            count: None,
            max_records: 500,
            max_wait: Duration::from_millis(500),
            metrics_addr: None,
        }
    }

    /// Where a new group starts.
    #[must_use]
    pub fn with_start(mut self, start: Option<ShareStart>) -> Self {
        self.start = start;
        self
    }

    /// Which records are written.
    #[must_use]
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Stop after `count` written records.
    #[must_use]
    pub fn with_count(mut self, count: Option<u64>) -> Self {
        self.count = count;
        self
    }

    /// Serves the metrics and health endpoints at `addr`.
    #[must_use]
    pub fn with_metrics_addr(mut self, addr: Option<String>) -> Self {
        self.metrics_addr = addr;
        self
    }

    /// Records a fetch may acquire.
    #[must_use]
    pub fn with_max_records(mut self, max_records: i32) -> Self {
        self.max_records = max_records;
        self
    }
}

/// Why a share-group job failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The cluster could not be reached (TLS, SASL, or a file).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The broker does not offer share groups.
    #[error(
        "share group \"{group}\": the broker {broker} does not offer share groups (KIP-932: Kafka 4.1 and later, share.version 1): it is {version}"
    )]
    Unsupported {
        /// The group.
        group: String,
        /// The broker asked.
        broker: String,
        /// What the broker is, as its ApiVersions answer tells.
        version: String,
    },
    /// A request failed on the connection.
    #[error("share group \"{group}\"")]
    Wire {
        /// The group.
        group: String,
        /// What failed.
        #[source]
        source: WireError,
    },
    /// The cluster could not be reached within the timeout.
    #[error("share group \"{group}\": the cluster could not be reached: {why}")]
    Unreachable {
        /// The group.
        group: String,
        /// The last failure.
        why: String,
    },
    /// The broker refused a request of the group's.
    #[error("share group \"{group}\": {api} refused: {error:?}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Refused {
        /// The group.
        group: String,
        /// The request.
        api: &'static str,
        /// The broker's error.
        error: ResponseError,
        /// The broker's message, if any.
        message: Option<String>,
    },
    /// A partition could not be fetched.
    #[error("share group \"{group}\": {topic}/{partition}: ShareFetch refused: {error:?}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Partition {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker's error.
        error: ResponseError,
        /// The broker's message, if any.
        message: Option<String>,
    },
    /// Fetched records could not be decoded.
    #[error("share group \"{group}\": {topic}/{partition}: records could not be read: {reason}")]
    Records {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Why.
        reason: String,
    },
    /// A topic does not exist.
    #[error("topic \"{topic}\" does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// `--from` on a group that has state already.
    #[error(
        "share group \"{group}\" already exists ({state}): --from only sets where a new share group starts; use `weir offsets set -g {group}` to move it"
    )]
    StartRefused {
        /// The group.
        group: String,
        /// What the group has.
        state: String,
    },
    /// The metrics endpoint could not be served.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The output could not be written.
    #[error("the output could not be written")]
    Output(#[source] std::io::Error),
}

/// The end of a share-group job.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ShareSummary {
    /// Records acquired.
    pub records: u64,
    /// Records written.
    pub written: u64,
    /// Records the filter left out (accepted unwritten).
    pub filtered: u64,
    /// Records a JSON filter could not parse (accepted unwritten).
    pub unparsed: u64,
    /// Records acquired that had been delivered before.
    pub redeliveries: u64,
    /// Acknowledged ACCEPT.
    pub accepted: u64,
    /// Acknowledged RELEASE.
    pub released: u64,
    /// Acknowledged REJECT.
    pub rejected: u64,
    /// How long the job ran.
    pub elapsed: Duration,
    /// Why it ended.
    pub stop: Option<StopReason>,
}

/// Consumes `config.topics` as a member of the share group
/// `config.group` into `writer`, until `shutdown` completes, `count`
/// records are written or the output closes; then releases what it holds
/// unwritten and leaves the group.
///
/// # Errors
///
/// The broker has no share groups, the cluster or a topic cannot be
/// reached, a request is refused, or the output fails.
pub async fn consume<W: Write>(
    connection: &ConnectionConfig,
    config: ShareConfig,
    writer: &mut RecordWriter<W>,
    shutdown: impl Future<Output = StopReason>,
) -> Result<ShareSummary, ShareError> {
    let started = Instant::now();
    let metrics = crate::metrics::global();
    let _server = match &config.metrics_addr {
        Some(addr) => Some(crate::metrics::serve(addr, metrics).await?),
        None => None,
    };
    let mut member = ShareMember::connect(connection, &config.group, &config.topics).await?;
    let mut topology = member.topology().await?;
    if let Some(from) = config.start {
        start::set_start(connection, &config.group, from).await?;
    }
    let mut summary = ShareSummary::default();
    if config.count == Some(0) {
        summary.stop = Some(StopReason::Count);
        return Ok(summary);
    }
    let (deliveries, mut delivered) = mpsc::channel(4);
    let (stop_all, stop) = watch::channel(false);
    let mut sessions = Sessions {
        config: SessionConfig {
            wire: member.wire.clone(),
            timeout: member.timeout,
            group: config.group.clone(),
            member_id: member.member_id.clone(),
            // A member that stops after N records acquires no more than
            // it can write: what it gives back at the stop counts as a
            // delivery, and Kafka archives a record after 5
            // (group.share.delivery.count.limit).
            max_records: config.count.map_or(config.max_records, |n| {
                i32::try_from(n).unwrap_or(i32::MAX).min(config.max_records)
            }),
            max_wait: config.max_wait,
        },
        by_leader: BTreeMap::new(),
        tasks: JoinSet::new(),
        next_id: 0,
        deliveries,
        stop,
        assigned: BTreeMap::new(),
        unrouted: 0,
    };
    member.heartbeat().await?;
    sessions.route(member.assignment(), &topology);
    metrics.set_phase(crate::metrics::Phase::Running);
    let mut next_heartbeat = Instant::now() + member.next_heartbeat();
    tokio::pin!(shutdown);
    let ended: Result<StopReason, ShareError> = loop {
        tokio::select! {
            biased;
            reason = &mut shutdown => break Ok(reason),
            Some(delivery) = delivered.recv() => {
                match write(delivery, &config, writer, &mut summary, &stop_all) {
                    Ok(None) => {}
                    Ok(Some(stop)) => break Ok(stop),
                    Err(e) => break Err(e),
                }
            }
            () = tokio::time::sleep_until(next_heartbeat) => {
                next_heartbeat = Instant::now() + member.next_heartbeat();
                match member.heartbeat().await {
                    Ok(changed) => {
                        // Partitions without a known leader (a topic just
                        // created, a leader being elected) are looked up
                        // again at each heartbeat until they have one.
                        if sessions.unrouted > 0 {
                            match member.topology().await {
                                Ok(t) => topology = t,
                                Err(e) => break Err(e),
                            }
                        }
                        if changed || sessions.unrouted > 0 {
                            sessions.route(member.assignment(), &topology);
                        }
                    }
                    Err(e) => break Err(e),
                }
            }
            Some(joined) = sessions.tasks.join_next() => {
                let (leader, id, result) = joined.expect("session tasks do not panic");
                sessions.ended(&leader, id);
                match result {
                    Ok(()) => {}
                    Err(Ended::Reroute(why)) => {
                        debug!(group = config.group.as_str(), leader, why, "routing again");
                        match member.topology().await {
                            Ok(t) => topology = t,
                            Err(e) => break Err(e),
                        }
                        sessions.route(member.assignment(), &topology);
                    }
                    Err(Ended::Failed(e)) => break Err(e),
                }
            }
        }
    };
    // Stop: each session finishes the fetch under way, gives back what it
    // was not told to accept, and closes; the group is left last.
    stop_all.send_replace(true);
    metrics.set_phase(crate::metrics::Phase::Stopping);
    let limit = config.max_wait + member.timeout * 2;
    let drained = tokio::time::timeout(limit, async {
        loop {
            tokio::select! {
                Some(delivery) = delivered.recv() => release(delivery, &mut summary),
                joined = sessions.tasks.join_next() => if joined.is_none() { break },
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            group = config.group.as_str(),
            "share sessions did not close in time"
        );
        sessions.tasks.abort_all();
    }
    if let Err(e) = member.leave().await {
        warn!(group = config.group.as_str(), error = %crate::ErrorChain(&e), "leaving the share group failed");
    }
    summary.elapsed = started.elapsed();
    summary.stop = Some(ended?);
    Ok(summary)
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
    let metrics = crate::metrics::global();
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
    for (tp, a) in &acks {
        let partition = metrics.input(tp);
        let records: Vec<_> = delivery
            .records
            .iter()
            .filter(|d| d.record.partition == tp.partition && d.record.topic == tp.topic)
            .collect();
        let bytes: usize = records
            .iter()
            .map(|d| {
                d.record.key.as_ref().map_or(0, Vec::len)
                    + d.record.value.as_ref().map_or(0, Vec::len)
            })
            .sum();
        let next = records.last().map_or(-1, |d| d.record.offset + 1);
        partition.fetched(records.len(), bytes, next);
        partition.handled(records.len());
        partition.redelivered(records.iter().filter(|d| d.delivery_count > 1).count() as u64);
        partition.acknowledged(
            a.count(AckKind::Accept),
            a.count(AckKind::Release),
            a.count(AckKind::Reject),
        );
        summary.accepted += a.count(AckKind::Accept);
        summary.released += a.count(AckKind::Release);
        summary.rejected += a.count(AckKind::Reject);
    }
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

/// Answers a delivery that arrived during the stop: all released.
fn release(delivery: Delivery, summary: &mut ShareSummary) {
    let mut acks: BTreeMap<TopicPartition, Acks> = BTreeMap::new();
    for d in &delivery.records {
        acks.entry(d.record.topic_partition())
            .or_default()
            .add(d.record.offset, AckKind::Release);
    }
    summary.released += delivery.records.len() as u64;
    let _ = delivery.done.send(acks);
}

/// The sessions, one per leader of an assigned partition.
struct Sessions {
    config: SessionConfig,
    by_leader: BTreeMap<String, (u64, watch::Sender<Vec<SharePartition>>)>,
    tasks: JoinSet<(String, u64, Result<(), Ended>)>,
    next_id: u64,
    deliveries: mpsc::Sender<Delivery>,
    stop: watch::Receiver<bool>,
    /// The assigned partitions as `/readyz` and the metrics see them.
    assigned: BTreeMap<TopicPartition, crate::metrics::Assigned>,
    /// Assigned partitions the last routing found no leader for.
    unrouted: usize,
}

impl Sessions {
    /// Gives each leader's session its assigned partitions: a session
    /// whose partitions all moved is left with none (and closes), a
    /// leader with none yet gets a new one.
    fn route(&mut self, assignment: &[(uuid::Uuid, i32)], topology: &Topology) {
        let mut wanted: BTreeMap<String, Vec<SharePartition>> = BTreeMap::new();
        let mut assigned = BTreeMap::new();
        self.unrouted = 0;
        for &(topic_id, partition) in assignment {
            let (Some(topic), Some(leader)) = (
                topology.names.get(&topic_id),
                topology.leaders.get(&(topic_id, partition)),
            ) else {
                // A topic not in the metadata yet, or a partition with no
                // leader now: the next heartbeat looks again.
                self.unrouted += 1;
                continue;
            };
            let tp = TopicPartition::new(Arc::clone(topic), partition);
            let held = self
                .assigned
                .remove(&tp)
                .unwrap_or_else(|| crate::metrics::global().input(&tp).assign());
            assigned.insert(tp, held);
            wanted
                .entry(leader.clone())
                .or_default()
                .push(SharePartition {
                    topic_id,
                    topic: Arc::clone(topic),
                    partition,
                });
        }
        self.assigned = assigned;
        for (leader, (_, partitions)) in &self.by_leader {
            if !wanted.contains_key(leader) {
                partitions.send_replace(Vec::new());
            }
        }
        for (leader, partitions) in wanted {
            if let Some((_, sender)) = self.by_leader.get(&leader) {
                if sender.send(partitions.clone()).is_ok() {
                    continue;
                }
            }
            let (sender, receiver) = watch::channel(partitions);
            let id = self.next_id;
            self.next_id += 1;
            let session = Session::new(
                self.config.clone(),
                leader.clone(),
                receiver,
                self.stop.clone(),
                self.deliveries.clone(),
            );
            let name = leader.clone();
            self.tasks
                .spawn(async move { (name, id, session.run().await) });
            self.by_leader.insert(leader, (id, sender));
        }
    }

    /// The session `id` of `leader` ended.
    fn ended(&mut self, leader: &str, id: u64) {
        if self.by_leader.get(leader).is_some_and(|(i, _)| *i == id) {
            self.by_leader.remove(leader);
        }
    }
}

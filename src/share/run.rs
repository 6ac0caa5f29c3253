//! The loop every share-group job runs: membership (heartbeats and
//! routing of the assignment to one session per partition leader), the
//! deliveries the sessions acquire handed to a [`Worker`] (writing them
//! out, or piping them to a topic), and the stop: the worker settles
//! what it holds, the sessions close with the acknowledgements, the
//! member leaves.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::acks::{AckKind, Acks, Delivered};
use super::member::{ShareMember, Topology};
use super::session::{Delivery, Ended, Session, SessionConfig, SharePartition};
use super::{ShareConfig, ShareError, ShareSummary, start};
use crate::TopicPartition;
use crate::job::StopReason;
use crate::kafka::connect::ConnectionConfig;

/// What a share-group job does with the records its sessions acquire.
/// Each [`Delivery`] is answered, once, with how each of its records is
/// acknowledged; its session fetches again only after the answer.
pub(super) trait Worker {
    /// What the worker waits for besides deliveries (a pipe: its
    /// output's acknowledgements).
    type Event;

    /// The next such event; never, for a worker without any.
    async fn event(&mut self) -> Option<Self::Event>;

    /// Takes an event; `Some` when the job is to stop.
    async fn on_event(
        &mut self,
        event: Self::Event,
        summary: &mut ShareSummary,
        stop_all: &watch::Sender<bool>,
    ) -> Result<Option<StopReason>, ShareError>;

    /// Takes a delivery (answering it now or later); `Some` when the job
    /// is to stop. A worker that stops sets `stop_all` before it answers,
    /// so that the session closes with the answer rather than acquiring
    /// more.
    async fn take(
        &mut self,
        delivery: Delivery,
        summary: &mut ShareSummary,
        stop_all: &watch::Sender<bool>,
    ) -> Result<Option<StopReason>, ShareError>;

    /// At the stop, before the sessions close: answers every delivery it
    /// still holds, within `limit` (what it finished accepted, the rest
    /// released).
    async fn settle(&mut self, summary: &mut ShareSummary, limit: Duration);
}

/// Runs `worker` as a member of `config.group` until `shutdown`
/// completes, the worker stops, or a failure; then the worker settles,
/// the sessions give back what they were not told to accept and close,
/// and the member leaves.
pub(super) async fn run<K: Worker>(
    connection: &ConnectionConfig,
    config: &ShareConfig,
    worker: &mut K,
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
                match worker.take(delivery, &mut summary, &stop_all).await {
                    Ok(None) => {}
                    Ok(Some(stop)) => break Ok(stop),
                    Err(e) => break Err(e),
                }
            }
            Some(event) = worker.event() => {
                match worker.on_event(event, &mut summary, &stop_all).await {
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
    // Stop: the worker answers what it holds (a pipe waits for its
    // output's acknowledgements in flight); each session finishes the
    // fetch under way, gives back what it was not told to accept, and
    // closes; the group is left last.
    stop_all.send_replace(true);
    metrics.set_phase(crate::metrics::Phase::Stopping);
    let limit = config.max_wait + member.timeout * 2;
    worker.settle(&mut summary, limit).await;
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

/// Counts an answered delivery: per partition, the records fetched and
/// handled, redeliveries and acknowledgements by kind in the metrics,
/// and the acknowledgements in `summary`.
pub(super) fn tally(
    records: &[Delivered],
    acks: &BTreeMap<TopicPartition, Acks>,
    summary: &mut ShareSummary,
) {
    let metrics = crate::metrics::global();
    for (tp, a) in acks {
        let partition = metrics.input(tp);
        let records: Vec<_> = records
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

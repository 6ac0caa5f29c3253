//! One share session with one partition leader: ShareFetch in a loop,
//! the acknowledgements owed for the records of the last answer carried by
//! the next request, as the Java share consumer piggy-backs them
//! (`ShareConsumeRequestManager`), and the session closed with a final
//! ShareAcknowledge (epoch -1) that carries what is still owed.
//!
//! Session epochs (KIP-932, `ShareSessionHandler`): 0 opens a session
//! (and carries no acknowledgements), each later request the next epoch
//! (wrapping past `i32::MAX` to 1), -1 closes it. A session the broker
//! lost (`SHARE_SESSION_NOT_FOUND`, `INVALID_SHARE_SESSION_EPOCH`, a
//! broken connection) is opened again at 0; what it owed is dropped, and
//! those records return to the group when their acquisition locks expire.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatchAck,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic, ForgottenTopic,
};
use kafka_protocol::messages::{GroupId, ShareAcknowledgeRequest, ShareFetchRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::ShareError;
use super::acks::{AckKind, Acks, AcquiredRange, Delivered, acquired};
use crate::TopicPartition;
use crate::kafka::wire::{self, BrokerConnection, WireOptions};

/// A partition of a session: its topic's id and name, and its index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SharePartition {
    pub(super) topic_id: uuid::Uuid,
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
}

/// Records a session acquired, handed to the job; the job answers with
/// how each was acknowledged once it is done with them.
#[derive(Debug)]
pub(super) struct Delivery {
    pub(super) records: Vec<Delivered>,
    pub(super) done: oneshot::Sender<BTreeMap<TopicPartition, Acks>>,
}

/// How a session ended other than by a stop.
#[derive(Debug)]
pub(super) enum Ended {
    /// A partition's leader moved (or its topic changed): route again.
    Reroute(String),
    /// A failure that will not get better.
    Failed(ShareError),
}

/// What every session shares.
#[derive(Debug, Clone)]
pub(super) struct SessionConfig {
    pub(super) wire: WireOptions,
    pub(super) timeout: Duration,
    pub(super) group: String,
    pub(super) member_id: String,
    /// ShareFetch's `max_records` and `batch_size` (the Java consumer's
    /// `max.poll.records`).
    pub(super) max_records: i32,
    /// ShareFetch's `max_wait_ms`: how long a fetch waits for records,
    /// and so how long a stop may wait for the fetch under way.
    pub(super) max_wait: Duration,
}

/// One leader's session.
pub(super) struct Session {
    config: SessionConfig,
    leader: String,
    partitions: watch::Receiver<Vec<SharePartition>>,
    stop: watch::Receiver<bool>,
    deliveries: mpsc::Sender<Delivery>,
    conn: Option<BrokerConnection>,
    epoch: i32,
    /// The partitions the session holds at the broker.
    opened: Vec<SharePartition>,
    owed: BTreeMap<TopicPartition, Acks>,
    /// When the leader last answered (or the session started): failing
    /// longer than the timeout ends the session.
    answered: Instant,
}

impl Session {
    pub(super) fn new(
        config: SessionConfig,
        leader: String,
        partitions: watch::Receiver<Vec<SharePartition>>,
        stop: watch::Receiver<bool>,
        deliveries: mpsc::Sender<Delivery>,
    ) -> Self {
        Self {
            config,
            leader,
            partitions,
            stop,
            deliveries,
            conn: None,
            epoch: 0,
            opened: Vec::new(),
            owed: BTreeMap::new(),
            answered: Instant::now(),
        }
    }

    /// Fetches until stopped or left without partitions, then closes the
    /// session.
    pub(super) async fn run(mut self) -> Result<(), Ended> {
        let ended = self.fetch_loop().await;
        self.close().await;
        ended
    }

    async fn fetch_loop(&mut self) -> Result<(), Ended> {
        loop {
            let partitions = self.partitions.borrow_and_update().clone();
            if *self.stop.borrow() || partitions.is_empty() {
                return Ok(());
            }
            let request = self.fetch_request(&partitions);
            let Some(response) = self.send_fetch(&request).await? else {
                continue;
            };
            self.answered = Instant::now();
            // What the request acknowledged is no longer owed.
            self.owed.clear();
            self.opened = partitions.clone();
            self.epoch = next_epoch(self.epoch);

            let mut records = Vec::new();
            for topic in response.responses {
                for p in topic.partitions {
                    let Some(at) = partitions
                        .iter()
                        .find(|s| s.topic_id == topic.topic_id && s.partition == p.partition_index)
                    else {
                        continue;
                    };
                    let tp = TopicPartition::new(Arc::clone(&at.topic), at.partition);
                    if let Some(e) = ResponseError::try_from_code(p.acknowledge_error_code) {
                        // Locks that expired meanwhile (INVALID_RECORD_STATE):
                        // those records went back to the group.
                        warn!(group = self.config.group.as_str(), topic = &*at.topic, partition = at.partition, error = ?e, "acknowledgement refused");
                    }
                    if let Some(e) = ResponseError::try_from_code(p.error_code) {
                        return Err(partition_error(&self.config.group, &tp, e, p.error_message));
                    }
                    let ranges: Vec<AcquiredRange> = p
                        .acquired_records
                        .iter()
                        .map(|a| AcquiredRange {
                            first: a.first_offset,
                            last: a.last_offset,
                            delivery_count: a.delivery_count,
                        })
                        .collect();
                    if ranges.is_empty() {
                        continue;
                    }
                    let fetched = match p.records.as_deref() {
                        Some(bytes) => {
                            rskafka::client::partition::decode_records(bytes).map_err(|e| {
                                Ended::Failed(ShareError::Records {
                                    group: self.config.group.clone(),
                                    topic: at.topic.to_string(),
                                    partition: at.partition,
                                    reason: e.to_string(),
                                })
                            })?
                        }
                        None => Vec::new(),
                    };
                    let (delivered, gaps) = acquired(&at.topic, at.partition, fetched, &ranges);
                    let owed = self.owed.entry(tp).or_default();
                    for offset in gaps {
                        owed.add(offset, AckKind::Gap);
                    }
                    records.extend(delivered);
                }
            }
            if records.is_empty() {
                continue;
            }
            if *self.stop.borrow() {
                self.owe_all(&records, AckKind::Release);
                continue;
            }
            let (done, answer) = oneshot::channel();
            let held = records
                .iter()
                .map(|d| (d.record.topic_partition(), d.record.offset))
                .collect::<Vec<_>>();
            if self
                .deliveries
                .send(Delivery { records, done })
                .await
                .is_err()
            {
                self.owe_held(held, AckKind::Release);
                return Ok(());
            }
            match answer.await {
                Ok(acks) => {
                    for (tp, acks) in acks {
                        let owed = self.owed.entry(tp).or_default();
                        for batch in acks.batches() {
                            for offset in batch.first..=batch.last {
                                owed.add(offset, batch.kind);
                            }
                        }
                    }
                }
                // The job ended without answering: give them back.
                Err(_) => self.owe_held(held, AckKind::Release),
            }
        }
    }

    fn owe_all(&mut self, records: &[Delivered], kind: AckKind) {
        for d in records {
            self.owed
                .entry(d.record.topic_partition())
                .or_default()
                .add(d.record.offset, kind);
        }
    }

    fn owe_held(&mut self, held: Vec<(TopicPartition, i64)>, kind: AckKind) {
        for (tp, offset) in held {
            self.owed.entry(tp).or_default().add(offset, kind);
        }
    }

    /// The next ShareFetch: every partition (a session takes a listed
    /// partition as added or kept), what is owed for each (not at epoch
    /// 0), and the partitions dropped since the last request as forgotten.
    fn fetch_request(&self, partitions: &[SharePartition]) -> ShareFetchRequest {
        let mut topics: BTreeMap<uuid::Uuid, Vec<FetchPartition>> = BTreeMap::new();
        for p in partitions {
            let tp = TopicPartition::new(Arc::clone(&p.topic), p.partition);
            let batches = match (self.epoch, self.owed.get(&tp)) {
                (1.., Some(acks)) => fetch_batches(acks),
                _ => Vec::new(),
            };
            topics.entry(p.topic_id).or_default().push(
                FetchPartition::default()
                    .with_partition_index(p.partition)
                    .with_partition_max_bytes(1024 * 1024)
                    .with_acknowledgement_batches(batches),
            );
        }
        let mut forgotten: BTreeMap<uuid::Uuid, Vec<i32>> = BTreeMap::new();
        if self.epoch > 0 {
            for p in self.opened.iter().filter(|p| !partitions.contains(p)) {
                forgotten.entry(p.topic_id).or_default().push(p.partition);
            }
        }
        ShareFetchRequest::default()
            .with_group_id(Some(GroupId(StrBytes::from_string(
                self.config.group.clone(),
            ))))
            .with_member_id(Some(StrBytes::from_string(self.config.member_id.clone())))
            .with_share_session_epoch(self.epoch)
            .with_max_wait_ms(millis(self.config.max_wait))
            .with_min_bytes(1)
            .with_max_bytes(50 * 1024 * 1024)
            .with_max_records(self.config.max_records)
            .with_batch_size(self.config.max_records)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(id, partitions)| {
                        FetchTopic::default()
                            .with_topic_id(id)
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
            .with_forgotten_topics_data(
                forgotten
                    .into_iter()
                    .map(|(id, partitions)| {
                        ForgottenTopic::default()
                            .with_topic_id(id)
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    /// Sends one ShareFetch; `None` when it is worth another try (the
    /// session starts over), an error when it is not or when the leader has
    /// not answered for longer than the timeout.
    async fn send_fetch(
        &mut self,
        request: &ShareFetchRequest,
    ) -> Result<Option<kafka_protocol::messages::ShareFetchResponse>, Ended> {
        let retry = |this: &mut Self, why: String| {
            debug!(
                group = this.config.group.as_str(),
                leader = this.leader.as_str(),
                why,
                "share session starts over"
            );
            this.conn = None;
            this.epoch = 0;
            this.owed.clear();
            this.opened.clear();
            if this.answered.elapsed() > this.config.timeout {
                return Err(Ended::Reroute(why));
            }
            Ok(None)
        };
        let limit = self.config.max_wait + self.config.timeout;
        let conn = match self.connection().await {
            Ok(conn) => conn,
            Err(why) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return retry(self, why);
            }
        };
        let response = match tokio::time::timeout(limit, conn.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e @ wire::WireError::Unsupported { .. })) => {
                return Err(Ended::Failed(ShareError::Wire {
                    group: self.config.group.clone(),
                    source: e,
                }));
            }
            Ok(Err(e)) => return retry(self, crate::ErrorChain(&e).to_string()),
            Err(_) => return retry(self, "no answer".to_owned()),
        };
        match ResponseError::try_from_code(response.error_code) {
            None => Ok(Some(response)),
            Some(
                ResponseError::ShareSessionNotFound
                | ResponseError::InvalidShareSessionEpoch
                | ResponseError::UnknownMemberId,
            ) => {
                // A member id the group does not know yet (the fetch came
                // before the join reached the leader): a short wait.
                tokio::time::sleep(Duration::from_millis(100)).await;
                retry(self, format!("{:?}", response.error_code))
            }
            Some(ResponseError::NotLeaderOrFollower | ResponseError::FencedLeaderEpoch) => {
                Err(Ended::Reroute("leader moved".to_owned()))
            }
            Some(error) => Err(Ended::Failed(ShareError::Refused {
                group: self.config.group.clone(),
                api: "ShareFetch",
                error,
                message: response.error_message.map(|m| m.to_string()),
            })),
        }
    }

    async fn connection(&mut self) -> Result<&mut BrokerConnection, String> {
        if self.conn.is_none() {
            let deadline = Instant::now() + self.config.timeout;
            let conn = wire::connect_to(&self.config.wire, &self.leader, deadline)
                .await
                .map_err(|e| crate::ErrorChain(&e).to_string())?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("opened above"))
    }

    /// Closes the session: ShareAcknowledge at epoch -1 with what is owed.
    async fn close(&mut self) {
        if self.epoch == 0 || self.conn.is_none() {
            return;
        }
        let mut topics: BTreeMap<uuid::Uuid, Vec<AcknowledgePartition>> = BTreeMap::new();
        for p in &self.opened {
            let tp = TopicPartition::new(Arc::clone(&p.topic), p.partition);
            let Some(acks) = self.owed.get(&tp).filter(|a| !a.is_empty()) else {
                continue;
            };
            let batches = acks
                .batches()
                .into_iter()
                .map(|b| {
                    AckBatchAck::default()
                        .with_first_offset(b.first)
                        .with_last_offset(b.last)
                        .with_acknowledge_types(vec![b.kind.code()])
                })
                .collect();
            topics.entry(p.topic_id).or_default().push(
                AcknowledgePartition::default()
                    .with_partition_index(p.partition)
                    .with_acknowledgement_batches(batches),
            );
        }
        let request = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(StrBytes::from_string(
                self.config.group.clone(),
            ))))
            .with_member_id(Some(StrBytes::from_string(self.config.member_id.clone())))
            .with_share_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(id, partitions)| {
                        AcknowledgeTopic::default()
                            .with_topic_id(id)
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let timeout = self.config.timeout;
        let conn = self.conn.as_mut().expect("checked above");
        match tokio::time::timeout(timeout, conn.request(&request)).await {
            Ok(Ok(r)) if r.error_code == 0 => {
                for t in &r.responses {
                    for p in &t.partitions {
                        if let Some(e) = ResponseError::try_from_code(p.error_code) {
                            warn!(group = self.config.group.as_str(), partition = p.partition_index, error = ?e, "acknowledgement refused");
                        }
                    }
                }
                debug!(
                    group = self.config.group.as_str(),
                    leader = self.leader.as_str(),
                    "share session closed"
                );
            }
            Ok(Ok(r)) => {
                warn!(
                    group = self.config.group.as_str(),
                    leader = self.leader.as_str(),
                    code = r.error_code,
                    "closing the share session was refused"
                );
            }
            Ok(Err(e)) => {
                warn!(group = self.config.group.as_str(), leader = self.leader.as_str(), error = %crate::ErrorChain(&e), "closing the share session failed");
            }
            Err(_) => {
                warn!(
                    group = self.config.group.as_str(),
                    leader = self.leader.as_str(),
                    "closing the share session: no answer"
                );
            }
        }
        self.owed.clear();
        self.epoch = 0;
    }
}

fn fetch_batches(acks: &Acks) -> Vec<AcknowledgementBatch> {
    acks.batches()
        .into_iter()
        .map(|b| {
            AcknowledgementBatch::default()
                .with_first_offset(b.first)
                .with_last_offset(b.last)
                .with_acknowledge_types(vec![b.kind.code()])
        })
        .collect()
}

/// A partition's fetch error: a moved leader is routed again, anything
/// else ends the job.
fn partition_error(
    group: &str,
    tp: &TopicPartition,
    error: ResponseError,
    message: Option<StrBytes>,
) -> Ended {
    match error {
        ResponseError::NotLeaderOrFollower
        | ResponseError::FencedLeaderEpoch
        | ResponseError::UnknownLeaderEpoch
        | ResponseError::UnknownTopicOrPartition
        | ResponseError::UnknownTopicId
        | ResponseError::LeaderNotAvailable => Ended::Reroute(format!("{tp}: {error:?}")),
        _ => Ended::Failed(ShareError::Partition {
            group: group.to_owned(),
            topic: tp.topic.to_string(),
            partition: tp.partition,
            error,
            message: message.map(|m| m.to_string()),
        }),
    }
}

/// The epoch after `epoch`: 0 opens, then 1, 2, ... wrapping to 1.
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_epochs_open_at_zero_and_wrap_to_one() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(41), 42);
        assert_eq!(next_epoch(i32::MAX), 1);
    }
}

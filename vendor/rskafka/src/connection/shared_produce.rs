//! weir: produce requests of the partitions led by one broker coalesced
//! into multi-partition Produce requests on its shared produce connections
//! (see [`super::shared`]).
//!
//! A partition's batch is queued; one sender per broker takes what is
//! queued (one batch per partition, in queue order, with the same acks,
//! timeout and transactional id) into one request, writes it, and goes on
//! with the next while up to [`PRODUCE_IN_FLIGHT`] requests wait for
//! their responses (the Java producer's
//! `max.in.flight.requests.per.connection`). The requests go on one
//! connection in the order they were taken, which the broker keeps, so a
//! partition's batches are appended in the order they were queued (and
//! an idempotent producer's sequences stay in order). A failed request
//! fails every batch in it with the same error; each batch is handed back
//! to its caller, which may retry it.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use parking_lot::Mutex;
use tokio::sync::{Semaphore, oneshot};
use tracing::debug;

use super::{
    BrokerConnector, Purpose,
    shared::{share_error, timed_out},
};
use crate::messenger::RequestError;
use crate::protocol::{
    messages::{
        ProduceRequest, ProduceRequestPartitionData, ProduceRequestTopicData, ProduceResponse,
        ProduceResponseResponse,
    },
    primitives::{Int16, Int32, NullableString, Records, String_},
    record::RecordBatch,
};

/// Produce requests on one connection awaiting their responses at once.
pub const PRODUCE_IN_FLIGHT: usize = 5;

/// Connections per broker for produce requests; a partition's batches
/// always go on the same one (its number modulo this), so they stay in
/// order. A broker handles one request per connection at a time: more
/// than one lets it append large batches of several partitions at once.
pub const PRODUCE_CONNECTIONS: usize = 3;

/// What a queued batch gets: the broker's answer for its partition (or
/// the request's failure), and the batch back.
pub(crate) type ProduceAnswer = (Result<ProduceResponse, RequestError>, RecordBatch);

/// Which requests a batch may share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProduceKey {
    pub(crate) acks: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) transactional_id: Option<String>,
}

/// One partition's batch, waiting for a request to carry it.
#[derive(Debug)]
struct Ask {
    topic: String,
    partition: i32,
    key: ProduceKey,
    batch: RecordBatch,
    answer: oneshot::Sender<ProduceAnswer>,
}

/// The batches queued for one broker.
#[derive(Debug)]
pub(crate) struct Producer {
    state: Mutex<ProducerState>,
    in_flight: Arc<Semaphore>,
}

impl Default for Producer {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(PRODUCE_IN_FLIGHT)),
        }
    }
}

#[derive(Debug, Default)]
struct ProducerState {
    queue: VecDeque<Ask>,
    sending: bool,
}

impl BrokerConnector {
    /// weir: produce `batch` to one partition of broker `broker_id`
    /// through its shared connection, in one request with the other
    /// partitions' batches queued for it meanwhile. The answer holds that
    /// partition only; the batch comes back with it (`None` only when the
    /// runtime dropped the sender).
    pub(crate) async fn produce_shared(
        self: &Arc<Self>,
        broker_id: i32,
        topic: &str,
        partition: i32,
        key: ProduceKey,
        batch: RecordBatch,
    ) -> Option<ProduceAnswer> {
        let (answer, answered) = oneshot::channel();
        let ask = Ask {
            topic: topic.to_owned(),
            partition,
            key,
            batch,
            answer,
        };
        let index = partition.rem_euclid(PRODUCE_CONNECTIONS as i32) as usize;
        let producer = self.shared.producer(broker_id, index);
        producer.enqueue(self, broker_id, index, ask);
        answered.await.ok()
    }
}

impl Producer {
    /// Queues `ask`, and starts the sender unless it runs.
    fn enqueue(
        self: &Arc<Self>,
        connector: &Arc<BrokerConnector>,
        broker_id: i32,
        index: usize,
        ask: Ask,
    ) {
        let mut state = self.state.lock();
        state.queue.push_back(ask);
        if !state.sending {
            state.sending = true;
            let sender = Arc::clone(self).send_all(Arc::clone(connector), broker_id, index);
            tokio::spawn(sender);
        }
    }

    /// Sends what is queued until nothing is, at most
    /// [`PRODUCE_IN_FLIGHT`] requests awaiting responses.
    async fn send_all(self: Arc<Self>, connector: Arc<BrokerConnector>, broker_id: i32, index: usize) {
        let purpose = Purpose::Produce(index);
        loop {
            let permit = Arc::clone(&self.in_flight)
                .acquire_owned()
                .await
                .expect("never closed");
            let asks = {
                let mut state = self.state.lock();
                let asks = take_request(&mut state.queue);
                if asks.is_empty() {
                    state.sending = false;
                    return;
                }
                asks
            };
            let connection = match connector
                .shared_connection(broker_id, purpose)
                .await
            {
                Ok(Some(connection)) => connection,
                Ok(None) => {
                    let e = std::io::Error::other(format!("broker {broker_id} is not known"));
                    fail_all(asks, RequestError::IO(e));
                    continue;
                }
                Err(e) => {
                    fail_all(asks, RequestError::IO(std::io::Error::other(e)));
                    continue;
                }
            };
            let (request, asks) = build_request(asks);
            debug!(broker_id, partitions = asks.len(), "shared produce");
            let pending = connection.send_request(&request).await;
            let batches = batches_of(request);
            let asks: Vec<(Ask, RecordBatch)> = asks.into_iter().zip(batches).collect();
            let pending = match pending {
                Ok(pending) => pending,
                Err(e) => {
                    fail_all_sent(asks, e);
                    continue;
                }
            };
            // The broker was asked to answer within the request timeout
            // (the request's own `timeout_ms`, as the Java producer asks).
            let timeout = connector.request_timeout();
            let connector = Arc::clone(&connector);
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(timeout, pending.response()).await {
                    Ok(Ok(response)) => answer(asks, response),
                    Ok(Err(e)) => fail_all_sent(asks, e),
                    Err(_) => {
                        connector
                            .forget_shared(broker_id, purpose, &connection)
                            .await;
                        let what = format!("Produce to broker {broker_id}");
                        fail_all_sent(asks, timed_out(&connection, &what, timeout));
                    }
                }
            });
        }
    }
}

/// The queued asks for one request, in queue order: the first's key, one
/// batch per partition. A partition with a batch left in the queue has
/// every later one left too, so that its batches go in order. Asks whose
/// caller is gone are dropped.
fn take_request(queue: &mut VecDeque<Ask>) -> Vec<Ask> {
    queue.retain(|a| !a.answer.is_closed());
    let Some(key) = queue.front().map(|a| a.key.clone()) else {
        return vec![];
    };
    let mut seen = HashSet::new();
    let mut taken = Vec::new();
    let mut left = VecDeque::new();
    for ask in queue.drain(..) {
        let first = seen.insert((ask.topic.clone(), ask.partition));
        if first && ask.key == key {
            taken.push(ask);
        } else {
            left.push_back(ask);
        }
    }
    *queue = left;
    taken
}

/// One Produce request of `asks`' batches, grouped by topic; the asks in
/// the order of the request's batches.
fn build_request(asks: Vec<Ask>) -> (ProduceRequest, Vec<Ask>) {
    let key = asks.first().map(|a| a.key.clone()).expect("not empty");
    let mut topics: Vec<(String, Vec<Ask>)> = Vec::new();
    for ask in asks {
        match topics.iter_mut().find(|(t, _)| *t == ask.topic) {
            Some((_, same)) => same.push(ask),
            None => topics.push((ask.topic.clone(), vec![ask])),
        }
    }
    let mut ordered = Vec::new();
    let mut topic_data = Vec::with_capacity(topics.len());
    for (name, asks) in topics {
        let mut partition_data = Vec::with_capacity(asks.len());
        for mut ask in asks {
            let batch = std::mem::replace(&mut ask.batch, placeholder());
            partition_data.push(ProduceRequestPartitionData {
                index: Int32(ask.partition),
                records: Records(vec![batch]),
            });
            ordered.push(ask);
        }
        topic_data.push(ProduceRequestTopicData {
            name: String_(name),
            partition_data,
        });
    }
    let request = ProduceRequest {
        transactional_id: NullableString(key.transactional_id),
        acks: Int16(key.acks),
        timeout_ms: Int32(key.timeout_ms),
        topic_data,
    };
    (request, ordered)
}

/// The batches of `request`, in its order.
fn batches_of(request: ProduceRequest) -> Vec<RecordBatch> {
    request
        .topic_data
        .into_iter()
        .flat_map(|t| t.partition_data)
        .flat_map(|p| p.records.0)
        .collect()
}

/// An empty batch, in an ask while its own is in a request.
fn placeholder() -> RecordBatch {
    use crate::protocol::record::{
        ControlBatchOrRecords, RecordBatchCompression, RecordBatchTimestampType,
    };
    RecordBatch {
        base_offset: 0,
        partition_leader_epoch: 0,
        last_offset_delta: 0,
        is_transactional: false,
        base_sequence: -1,
        compression: RecordBatchCompression::NoCompression,
        timestamp_type: RecordBatchTimestampType::CreateTime,
        producer_id: -1,
        producer_epoch: -1,
        first_timestamp: 0,
        max_timestamp: 0,
        records: ControlBatchOrRecords::Records(vec![]),
    }
}

/// Hands each ask its partition's part of `response`, and its batch.
fn answer(asks: Vec<(Ask, RecordBatch)>, response: ProduceResponse) {
    let throttle_time_ms = response.throttle_time_ms;
    let mut parts = HashMap::new();
    for topic in response.responses {
        for partition in topic.partition_responses {
            parts.insert((topic.name.0.clone(), partition.index.0), partition);
        }
    }
    for (ask, batch) in asks {
        let part = parts.remove(&(ask.topic.clone(), ask.partition));
        let answer = ProduceResponse {
            responses: vec![ProduceResponseResponse {
                name: String_(ask.topic),
                partition_responses: part.into_iter().collect(),
            }],
            throttle_time_ms,
        };
        ask.answer.send((Ok(answer), batch)).ok();
    }
}

/// Fails asks not sent, their batches still in them.
fn fail_all(asks: Vec<Ask>, error: RequestError) {
    let asks = asks
        .into_iter()
        .map(|mut ask| {
            let batch = std::mem::replace(&mut ask.batch, placeholder());
            (ask, batch)
        })
        .collect();
    fail_all_sent(asks, error);
}

/// Fails every ask with `error` ([`share_error`]), and hands back its
/// batch.
fn fail_all_sent(asks: Vec<(Ask, RecordBatch)>, error: RequestError) {
    let share = share_error(error);
    for (ask, batch) in asks {
        ask.answer.send((Err(share()), batch)).ok();
    }
}

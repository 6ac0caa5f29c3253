//! weir: fetches of several partitions led by one broker, sent as one
//! request.
//!
//! A [`PartitionClient`](super::partition::PartitionClient) fetches one
//! partition per request. A consumer that reads many partitions of one
//! broker that way sends that broker a request per partition per round,
//! where the Java client and librdkafka send one for all of them: on a
//! 6-partition topic weir sent 126 fetch requests per million 100-byte
//! records against librdkafka's 20, and the broker spent about twice the
//! CPU per record on them (BENCHMARKS.md).
//!
//! A [`FetchBatcher`] is shared by the partition clients of one consumer.
//! Fetches handed to it for partitions with the same leader, isolation
//! level and wait are queued while a request to that broker is on its way
//! and sent together as the next one (one request in flight per broker,
//! as the Java client). Only fetches the caller knows the broker can
//! answer at once should come here (records are there to read): a fetch
//! that may wait for new records would hold the others up, so those go
//! alone, on the partition client's own connection, as before.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::{
    connection::BrokerConnection,
    messenger::RequestError,
    protocol::{
        messages::{
            FetchRequest, FetchRequestPartition, FetchRequestTopic, FetchResponsePartition,
            IsolationLevel, NORMAL_CONSUMER,
        },
        primitives::{Int32, Int64, String_},
    },
};

use super::error::Error;

/// What a queued fetch gets back: its partition's part of the response and
/// the response's throttle time, or the request's failure.
pub(crate) type Answer = Result<(FetchResponsePartition, Option<Int32>), Error>;

/// Fetches sent together: one leader, one isolation level, one wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LaneKey {
    leader: i32,
    read_committed: bool,
    max_wait_ms: i32,
}

/// One partition's fetch, waiting for the next request to its leader.
struct Waiter {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: i32,
    /// The partition client's connection to the leader; the request goes
    /// on the first waiter's (they all lead to the same broker).
    connection: BrokerConnection,
    answer: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Lane {
    /// A request of this lane is on its way (its driver task runs).
    busy: bool,
    queue: Vec<Waiter>,
}

/// Sends the fetches of several partitions with one leader as one request
/// (see the module documentation). Cheap to clone; clones share the queues.
#[derive(Clone, Default)]
pub struct FetchBatcher {
    lanes: Arc<Mutex<HashMap<LaneKey, Lane>>>,
}

impl std::fmt::Debug for FetchBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchBatcher").finish_non_exhaustive()
    }
}

impl FetchBatcher {
    /// A batcher with no fetches queued.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues one partition's fetch for the next request to `leader` and
    /// waits for its part of the answer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fetch(
        &self,
        leader: i32,
        connection: BrokerConnection,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
        isolation: IsolationLevel,
    ) -> Answer {
        let key = LaneKey {
            leader,
            read_committed: isolation == IsolationLevel::ReadCommitted,
            max_wait_ms,
        };
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut lanes = self.lanes.lock();
            let lane = lanes.entry(key).or_default();
            lane.queue.push(Waiter {
                topic: topic.to_owned(),
                partition,
                offset,
                max_bytes,
                connection,
                answer: tx,
            });
            !std::mem::replace(&mut lane.busy, true)
        };
        if start {
            // A task of its own, not the caller's future: a caller may be
            // dropped (a stopped consumer, a deadline) while the request
            // carries other partitions' fetches.
            tokio::spawn(self.clone().drive(key, isolation));
        }
        rx.await.unwrap_or_else(|_| {
            Err(Error::InvalidResponse(
                "the fetch batcher's task ended without an answer".to_owned(),
            ))
        })
    }

    /// Sends the lane's queued fetches, one request at a time, until none
    /// are left.
    async fn drive(self, key: LaneKey, isolation: IsolationLevel) {
        loop {
            // The partitions whose answers just came (or whose first fetch
            // started this task) run first and queue their next fetches,
            // which then go in this request rather than in one after it.
            tokio::task::yield_now().await;
            let waiters: Vec<Waiter> = {
                let mut lanes = self.lanes.lock();
                let Some(lane) = lanes.get_mut(&key) else {
                    return;
                };
                if lane.queue.is_empty() {
                    lane.busy = false;
                    lanes.remove(&key);
                    return;
                }
                std::mem::take(&mut lane.queue)
            };
            let waiters: Vec<Waiter> = waiters
                .into_iter()
                .filter(|w| !w.answer.is_closed())
                .collect();
            if waiters.is_empty() {
                continue;
            }
            send(waiters, key.max_wait_ms, isolation).await;
        }
    }
}

/// One request for every waiter; each gets its partition's part.
async fn send(waiters: Vec<Waiter>, max_wait_ms: i32, isolation: IsolationLevel) {
    let mut topics: Vec<FetchRequestTopic> = Vec::new();
    let mut total: i32 = 0;
    for w in &waiters {
        total = total.saturating_add(w.max_bytes);
        let part = FetchRequestPartition {
            partition: Int32(w.partition),
            fetch_offset: Int64(w.offset),
            partition_max_bytes: Int32(w.max_bytes),
        };
        match topics.iter_mut().find(|t| t.topic.0 == w.topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(FetchRequestTopic {
                topic: String_(w.topic.clone()),
                partitions: vec![part],
            }),
        }
    }
    let request = FetchRequest {
        replica_id: NORMAL_CONSUMER,
        max_wait_ms: Int32(max_wait_ms),
        min_bytes: Int32(1),
        max_bytes: Some(Int32(total)),
        isolation_level: Some(isolation),
        topics,
    };
    let connection = Arc::clone(&waiters[0].connection);
    match connection.request(&request).await {
        Ok(response) => {
            let throttle = response.throttle_time_ms;
            let mut parts: HashMap<(String, i32), FetchResponsePartition> = HashMap::new();
            for t in response.responses {
                for p in t.partitions {
                    parts.insert((t.topic.0.clone(), p.partition_index.0), p);
                }
            }
            for w in waiters {
                let answer = match parts.remove(&(w.topic.clone(), w.partition)) {
                    Some(p) => Ok((p, throttle)),
                    None => Err(Error::InvalidResponse(format!(
                        "no data for partition {} of topic \"{}\" in a fetch response",
                        w.partition, w.topic
                    ))),
                };
                let _ = w.answer.send(answer);
            }
        }
        Err(e) => {
            for w in waiters {
                let _ = w.answer.send(Err(shared_error(&e)));
            }
        }
    }
}

/// The request's failure as each waiter reports it: a broken connection
/// stays one (each partition client then looks its leader up again and
/// retries, as after its own request), anything else fails with its text,
/// as upstream fails a request on such errors without a retry.
fn shared_error(e: &RequestError) -> Error {
    match e {
        RequestError::Poisoned(cause) => Error::Request(RequestError::Poisoned(Arc::clone(cause))),
        RequestError::IO(io) => {
            Error::Request(RequestError::IO(std::io::Error::new(io.kind(), io.to_string())))
        }
        other => Error::InvalidResponse(other.to_string()),
    }
}

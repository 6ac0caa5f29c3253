//! weir: connections shared per broker by every partition client of a
//! [`Client`](crate::client::Client), and fetches to one broker coalesced
//! into multi-partition Fetch requests.
//!
//! Upstream opened one connection per partition client, so reading a
//! topic of 1,000 partitions held 1,001 sockets. Here a client holds, per
//! broker, at most [`FETCH_CONNECTIONS`] connections for fetches,
//! [`PRODUCE_CONNECTIONS`](super::shared_produce::PRODUCE_CONNECTIONS)
//! for produce requests ([`super::shared_produce`]) and one for every
//! other request of a partition (list offsets, delete records, the
//! leader's own metadata), so that a produce never waits behind a fetch's
//! long poll.
//!
//! A broker handles one request per connection at a time, so partitions
//! cannot share a connection with a long poll each: a partition's fetch
//! is queued, and each fetch connection sends everything queued for its
//! broker as one Fetch request (as the Java consumer's fetcher does), then
//! hands each partition its own part of the response. A partition whose
//! part is empty stays queued for the next request until its own wait is
//! over, so that it sees one long poll as it would alone. While requests
//! are in flight on every fetch connection, new fetches wait for the
//! first to come back. A failed request fails every fetch in it with the
//! same error, and the connection is replaced on its next use.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::{
    sync::{Mutex as AsyncMutex, oneshot},
    time::Instant,
};
use tracing::debug;

use super::{BrokerConnection, BrokerConnector, MetadataLookupMode};
use crate::messenger::RequestError;
use crate::protocol::{
    messages::{
        FetchRequest, FetchRequestPartition, FetchRequestTopic, FetchResponse,
        FetchResponsePartition, FetchResponseTopic, IsolationLevel, MetadataResponse,
        NORMAL_CONSUMER,
    },
    primitives::{Int32, Int64, String_},
};

/// Connections per broker used for fetches: one long-polls for the
/// partitions without new records while the other serves those with.
pub const FETCH_CONNECTIONS: usize = 2;

/// The most record bytes one Fetch response may carry, whatever the
/// partitions ask for together (the Java consumer's `fetch.max.bytes`).
pub const FETCH_MAX_BYTES: i32 = 50 * 1024 * 1024;

/// How much longer than its wait a request may take before its connection
/// is taken as broken (the Java client's `request.timeout.ms`), unless
/// the client was built with another
/// ([`ClientBuilder::request_timeout`](crate::client::ClientBuilder::request_timeout)).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Breaks `connection` for every request on it, after `what` got no
/// answer within `timeout`; the error to fail that request with.
pub(crate) fn timed_out(connection: &BrokerConnection, what: &str, timeout: Duration) -> RequestError {
    let text = format!("no {what} response within {timeout:?} (the request timeout)");
    connection.poison_with(RequestError::IO(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        text.clone(),
    )));
    RequestError::IO(std::io::Error::new(std::io::ErrorKind::TimedOut, text))
}

/// What a shared connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Fetch requests, on the connection of this index (below
    /// [`FETCH_CONNECTIONS`]).
    Fetch(usize),
    /// Produce requests, on the connection of this index (below
    /// [`PRODUCE_CONNECTIONS`](super::shared_produce::PRODUCE_CONNECTIONS)).
    Produce(usize),
    /// Every other request of a partition client.
    Requests,
}

type Slot = Arc<AsyncMutex<Option<BrokerConnection>>>;

/// The shared connections of a [`BrokerConnector`] and its fetch queues.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    slots: Mutex<HashMap<(i32, Purpose), Slot>>,
    fetchers: Mutex<HashMap<i32, Arc<Fetcher>>>,
    producers: Mutex<HashMap<(i32, usize), Arc<super::shared_produce::Producer>>>,
    /// Per broker and topic, the topic's metadata as that broker last
    /// answered it, and when.
    own_metadata: Mutex<HashMap<(i32, String), OwnMetadata>>,
}

type OwnMetadata = Arc<AsyncMutex<Option<(Instant, MetadataResponse)>>>;

impl Shared {
    fn slot(&self, broker: i32, purpose: Purpose) -> Slot {
        Arc::clone(self.slots.lock().entry((broker, purpose)).or_default())
    }

    fn fetcher(&self, broker: i32) -> Arc<Fetcher> {
        Arc::clone(self.fetchers.lock().entry(broker).or_default())
    }

    pub(super) fn producer(
        &self,
        broker: i32,
        index: usize,
    ) -> Arc<super::shared_produce::Producer> {
        Arc::clone(self.producers.lock().entry((broker, index)).or_default())
    }
}

impl BrokerConnector {
    /// weir: the connection to broker `broker_id` shared for `purpose`,
    /// made when there is none yet or the one there is broken; `None`
    /// when the broker is not known.
    ///
    /// A boxed future: deep futures around it (a partition client's
    /// requests inside weir's jobs) would otherwise overflow the
    /// compiler's query depth.
    pub fn shared_connection(
        &self,
        broker_id: i32,
        purpose: Purpose,
    ) -> BoxFuture<'_, super::Result<Option<BrokerConnection>>> {
        Box::pin(async move {
            let slot = self.shared.slot(broker_id, purpose);
            let mut slot = slot.lock().await;
            if let Some(connection) = slot.as_ref().filter(|c| !c.is_poisoned()) {
                return Ok(Some(Arc::clone(connection)));
            }
            *slot = None;
            let connection = self.connect(broker_id).await?;
            slot.clone_from(&connection);
            Ok(connection)
        })
    }

    /// weir: `topic`'s metadata as broker `broker_id` itself answers it,
    /// over `connection`, which a partition client asks its leader to
    /// check that it leads. Callers asking while a request is under way
    /// share the answer of the next one.
    pub(crate) fn own_metadata<'a>(
        &'a self,
        broker_id: i32,
        connection: &'a BrokerConnection,
        topic: &'a str,
    ) -> BoxFuture<'a, super::Result<MetadataResponse>> {
        Box::pin(async move {
            let asked = Instant::now();
            let slot = Arc::clone(
                self.shared
                    .own_metadata
                    .lock()
                    .entry((broker_id, topic.to_owned()))
                    .or_default(),
            );
            let mut slot = slot.lock().await;
            if let Some((_, response)) = slot.as_ref().filter(|(at, _)| *at >= asked) {
                return Ok(response.clone());
            }
            let mode = MetadataLookupMode::SpecificBroker(Arc::clone(connection));
            let asking = self.request_metadata(&mode, Some(vec![topic.to_owned()]));
            let (response, _) = match tokio::time::timeout(self.request_timeout(), asking).await {
                Ok(answer) => answer?,
                Err(_) => {
                    let what = format!("Metadata from broker {broker_id}");
                    return Err(super::Error::Metadata(timed_out(
                        connection,
                        &what,
                        self.request_timeout(),
                    )));
                }
            };
            *slot = Some((Instant::now(), response.clone()));
            Ok(response)
        })
    }

    /// weir: forget `connection` as the one shared for `purpose` (after a
    /// request on it timed out), so that the next use makes a new one.
    pub(super) async fn forget_shared(&self, broker_id: i32, purpose: Purpose, connection: &BrokerConnection) {
        let slot = self.shared.slot(broker_id, purpose);
        let mut slot = slot.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, connection)) {
            *slot = None;
        }
    }

    /// weir: fetch one partition from broker `broker_id` through its
    /// shared fetch connections, in one request with the other partitions
    /// fetched from it meanwhile. The answer holds that partition only.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fetch_shared(
        self: &Arc<Self>,
        broker_id: i32,
        topic: &str,
        partition: i32,
        offset: i64,
        bytes: std::ops::Range<i32>,
        max_wait_ms: i32,
        isolation: IsolationLevel,
    ) -> Result<FetchResponse, RequestError> {
        let (answer, answered) = oneshot::channel();
        let ask = Ask {
            topic: topic.to_owned(),
            partition,
            offset,
            min_bytes: bytes.start,
            max_bytes: bytes.end.saturating_sub(1),
            isolation,
            deadline: Instant::now() + Duration::from_millis(max_wait_ms.max(0) as u64),
            answer,
        };
        let fetcher = self.shared.fetcher(broker_id);
        fetcher.enqueue(self, broker_id, ask);
        answered.await.unwrap_or_else(|_| {
            Err(broken(RequestError::IO(std::io::Error::other(
                "the shared fetch was dropped",
            ))))
        })
    }
}

type Answer = Result<FetchResponse, RequestError>;

/// One partition's fetch, waiting for a request to carry it.
#[derive(Debug)]
struct Ask {
    topic: String,
    partition: i32,
    offset: i64,
    min_bytes: i32,
    max_bytes: i32,
    isolation: IsolationLevel,
    /// When its wait for records is over.
    deadline: Instant,
    answer: oneshot::Sender<Answer>,
}

/// How long a fetch connection waits for the partitions it just answered
/// to ask again before it sends the next request without them.
pub const FETCH_LINGER: Duration = Duration::from_millis(2);

/// The fetches queued for one broker, and which of its fetch connections
/// have a request in flight (or are about to send one).
#[derive(Debug, Default)]
struct Fetcher {
    state: Mutex<FetcherState>,
    /// Told of every fetch queued.
    queued: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct FetcherState {
    queue: VecDeque<Ask>,
    busy: [bool; FETCH_CONNECTIONS],
    /// Partitions answered that have not asked again yet (as far as
    /// counted: one that stops asking is forgotten after a linger).
    awaited: usize,
}

impl Fetcher {
    /// Queues `ask`, and starts a fetch connection's sender if one is idle.
    fn enqueue(self: &Arc<Self>, connector: &Arc<BrokerConnector>, broker_id: i32, ask: Ask) {
        let mut state = self.state.lock();
        state.queue.push_back(ask);
        state.awaited = state.awaited.saturating_sub(1);
        self.queued.notify_waiters();
        if let Some(index) = state.busy.iter().position(|b| !b) {
            state.busy[index] = true;
            tokio::spawn(Arc::clone(self).send_all(Arc::clone(connector), broker_id, index));
        }
    }

    /// Sends what is queued on fetch connection `index` until nothing is.
    async fn send_all(self: Arc<Self>, connector: Arc<BrokerConnector>, broker_id: i32, index: usize) {
        loop {
            self.linger().await;
            let asks = {
                let mut state = self.state.lock();
                let asks = take_request(&mut state.queue);
                if asks.is_empty() {
                    state.busy[index] = false;
                    return;
                }
                asks
            };
            let sent = asks.len();
            let requeue = self.send(&connector, broker_id, index, asks).await;
            let mut state = self.state.lock();
            state.awaited += sent - requeue.len();
            for ask in requeue.into_iter().rev() {
                state.queue.push_front(ask);
            }
        }
    }

    /// Waits, at most [`FETCH_LINGER`], for the partitions just answered
    /// to ask again: they are usually back at once, and a request sent
    /// before would leave them for the one after, so that partitions
    /// with records would go one or two to a request.
    async fn linger(&self) {
        let deadline = Instant::now() + FETCH_LINGER;
        loop {
            let queued = self.queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            if self.state.lock().awaited == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, queued).await.is_err() {
                self.state.lock().awaited = 0;
                return;
            }
        }
    }

    /// Sends one request for `asks`, answers each, and gives back those
    /// that got nothing yet and still wait.
    async fn send(
        &self,
        connector: &BrokerConnector,
        broker_id: i32,
        index: usize,
        asks: Vec<Ask>,
    ) -> Vec<Ask> {
        let purpose = Purpose::Fetch(index);
        let connection = match connector.shared_connection(broker_id, purpose).await {
            Ok(Some(connection)) => connection,
            Ok(None) => {
                let e = std::io::Error::other(format!("broker {broker_id} is not known"));
                fail_all(asks, RequestError::IO(e));
                return vec![];
            }
            Err(e) => {
                fail_all(asks, RequestError::IO(std::io::Error::other(e)));
                return vec![];
            }
        };
        let now = Instant::now();
        let wait = asks
            .iter()
            .map(|a| a.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or_default();
        let request = build_request(&asks, wait);
        debug!(broker_id, index, partitions = asks.len(), "shared fetch");
        let limit = wait + connector.request_timeout();
        let response = match tokio::time::timeout(limit, connection.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                fail_all(asks, e);
                return vec![];
            }
            Err(_) => {
                connector.forget_shared(broker_id, purpose, &connection).await;
                let what = format!("Fetch from broker {broker_id}");
                fail_all(asks, timed_out(&connection, &what, limit));
                return vec![];
            }
        };
        answer(asks, response)
    }
}

/// The queued asks for one request: the first's isolation level, one ask
/// per partition; asks whose caller is gone are dropped.
fn take_request(queue: &mut VecDeque<Ask>) -> Vec<Ask> {
    queue.retain(|a| !a.answer.is_closed());
    let Some(isolation) = queue.front().map(|a| a.isolation) else {
        return vec![];
    };
    let mut seen = HashSet::new();
    let mut taken = Vec::new();
    let mut left = VecDeque::new();
    for ask in queue.drain(..) {
        if ask.isolation == isolation && seen.insert((ask.topic.clone(), ask.partition)) {
            taken.push(ask);
        } else {
            left.push_back(ask);
        }
    }
    *queue = left;
    taken
}

/// One Fetch request for `asks`, grouped by topic in queue order.
fn build_request(asks: &[Ask], wait: Duration) -> FetchRequest {
    let mut topics: Vec<FetchRequestTopic> = Vec::new();
    for ask in asks {
        let partition = FetchRequestPartition {
            partition: Int32(ask.partition),
            fetch_offset: Int64(ask.offset),
            partition_max_bytes: Int32(ask.max_bytes),
        };
        match topics.iter_mut().find(|t| t.topic.0 == ask.topic) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(FetchRequestTopic {
                topic: String_(ask.topic.clone()),
                partitions: vec![partition],
            }),
        }
    }
    let max_bytes = asks
        .iter()
        .fold(0i32, |sum, a| sum.saturating_add(a.max_bytes.max(0)))
        .min(FETCH_MAX_BYTES);
    FetchRequest {
        replica_id: NORMAL_CONSUMER,
        max_wait_ms: Int32(i32::try_from(wait.as_millis()).unwrap_or(i32::MAX)),
        min_bytes: Int32(asks.iter().map(|a| a.min_bytes).min().unwrap_or(1)),
        max_bytes: Some(Int32(max_bytes)),
        isolation_level: Some(asks.first().map(|a| a.isolation).unwrap_or_default()),
        topics,
    }
}

/// Hands each ask its partition's part of `response`; gives back those
/// whose part is empty (no batch, no error) and whose wait is not over.
fn answer(asks: Vec<Ask>, response: FetchResponse) -> Vec<Ask> {
    let throttle_time_ms = response.throttle_time_ms;
    let mut parts: HashMap<(String, i32), FetchResponsePartition> = HashMap::new();
    for topic in response.responses {
        for partition in topic.partitions {
            parts.insert((topic.topic.0.clone(), partition.partition_index.0), partition);
        }
    }
    let now = Instant::now();
    let mut requeue = Vec::new();
    for ask in asks {
        let part = parts.remove(&(ask.topic.clone(), ask.partition));
        let empty = part
            .as_ref()
            .is_some_and(|p| p.error_code.is_none() && p.records.0.is_empty());
        if empty && now < ask.deadline && !ask.answer.is_closed() {
            requeue.push(ask);
            continue;
        }
        let answer = FetchResponse {
            throttle_time_ms,
            responses: vec![FetchResponseTopic {
                topic: String_(ask.topic),
                partitions: part.into_iter().collect(),
            }],
        };
        ask.answer.send(Ok(answer)).ok();
    }
    requeue
}

/// Fails every ask with `error`, each with its own copy
/// ([`share_error`]).
fn fail_all(asks: Vec<Ask>, error: RequestError) {
    let share = share_error(error);
    for ask in asks {
        ask.answer.send(Err(share())).ok();
    }
}

/// Copies of `error` for every request that failed with it: as it is
/// where it can be copied (a response that cannot be decoded, a version
/// the broker lacks, an I/O error by its kind and text), else as the
/// cause of a broken connection, which a partition client retries after
/// looking up its leader again.
pub(super) fn share_error(error: RequestError) -> impl Fn() -> RequestError {
    let error = Arc::new(error);
    move || match error.as_ref() {
        RequestError::Poisoned(first) => RequestError::Poisoned(Arc::clone(first)),
        RequestError::Undecodable {
            api,
            version,
            problem,
            at,
            len,
        } => RequestError::Undecodable {
            api: *api,
            version: *version,
            problem: problem.clone(),
            at: *at,
            len: *len,
        },
        RequestError::NoVersionMatch { api_key } => RequestError::NoVersionMatch { api_key: *api_key },
        RequestError::IO(e) => RequestError::IO(std::io::Error::new(e.kind(), e.to_string())),
        _ => RequestError::Poisoned(Arc::clone(&error)),
    }
}

/// `error` as the cause of a broken connection.
fn broken(error: RequestError) -> RequestError {
    RequestError::Poisoned(Arc::new(error))
}

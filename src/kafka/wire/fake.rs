//! A scripted broker for unit tests: the seam under the group and
//! transaction coordinators.
//!
//! A [`FakeBroker`] registers a name (`fake-N:9092`); a
//! [`BrokerConnection`](super::BrokerConnection) opened to that name talks
//! to it through an in-memory pipe instead of TCP, so every request weir
//! encodes is decoded here with the broker side of `kafka-protocol`, and
//! every answer weir decodes was encoded here: the code under test is
//! weir's own, byte for byte. ApiVersions (every version
//! `kafka-protocol` knows) and FindCoordinator (this broker) are answered
//! here; every other request goes to the test's script, which answers,
//! never answers (a frozen or cut-off coordinator), or drops the
//! connection. Nothing here waits on a timer, so tests run on tokio's
//! paused clock, which moves only when every task waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, FindCoordinatorResponse, RequestHeader, RequestKind,
    ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::kafka::connect::ConnectionConfig;

/// What the script does with a request.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Answers it.
    Answer(Box<ResponseKind>),
    /// Answers it after a while (a coordinator holding a join).
    After(std::time::Duration, Box<ResponseKind>),
    /// Never answers (the connection stays open).
    Hang,
    /// Closes the connection without answering.
    Drop,
}

/// A test's script: one call per request (ApiVersions and FindCoordinator
/// aside), in the order they arrive.
type Script = Box<dyn FnMut(&RequestKind) -> Reply + Send>;

/// The brokers registered, by name.
static BROKERS: LazyLock<Mutex<HashMap<String, Arc<Mutex<Script>>>>> =
    LazyLock::new(Default::default);

/// Numbers the brokers, so tests running at once never share one.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A scripted broker, registered until dropped.
pub(crate) struct FakeBroker {
    address: String,
    seen: Arc<Mutex<Vec<ApiKey>>>,
}

impl std::fmt::Debug for FakeBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBroker")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl FakeBroker {
    /// A broker answering with `script`.
    pub(crate) fn start(mut script: impl FnMut(&RequestKind) -> Reply + Send + 'static) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let address = format!("fake-{n}:9092");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let script: Script = Box::new(move |request| {
            lock(&log).push(api_key(request));
            script(request)
        });
        lock(&BROKERS).insert(address.clone(), Arc::new(Mutex::new(script)));
        Self { address, seen }
    }

    /// A connection config naming only this broker, with `timeout`.
    pub(crate) fn connection(&self, timeout: Duration) -> ConnectionConfig {
        ConnectionConfig {
            brokers: vec![self.address.clone()],
            timeout,
            ..ConnectionConfig::default()
        }
    }

    /// The scripted requests so far (ApiVersions and FindCoordinator
    /// aside), in order.
    pub(crate) fn seen(&self) -> Vec<ApiKey> {
        lock(&self.seen).clone()
    }

    /// How many requests of `api` the script was asked.
    pub(crate) fn count(&self, api: ApiKey) -> usize {
        lock(&self.seen).iter().filter(|&&k| k == api).count()
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        lock(&BROKERS).remove(&self.address);
    }
}

/// The client end of a new connection to the fake broker `broker`, if
/// one is registered under that name; its server end is served on a task.
pub(super) fn connect(broker: &str) -> Option<DuplexStream> {
    let script = Arc::clone(lock(&BROKERS).get(broker)?);
    let (client, server) = tokio::io::duplex(1 << 20);
    let (host, port) = broker.rsplit_once(':')?;
    let me = (host.to_owned(), port.parse().ok()?);
    tokio::spawn(serve(server, script, me));
    Some(client)
}

/// Reads requests and writes answers until the client hangs up or the
/// script drops the connection.
async fn serve(mut stream: DuplexStream, script: Arc<Mutex<Script>>, me: (String, i32)) {
    loop {
        let mut prefix = [0; 4];
        if stream.read_exact(&mut prefix).await.is_err() {
            return;
        }
        let len = usize::try_from(i32::from_be_bytes(prefix)).unwrap_or(0);
        let mut body = vec![0; len];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut body = Bytes::from(body);
        let key = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])).expect("an API key");
        let version = i16::from_be_bytes([body[2], body[3]]);
        let header = RequestHeader::decode(&mut body, key.request_header_version(version))
            .expect("a request header");
        let request = RequestKind::decode(key, &mut body, version).expect("a request");
        assert!(!body.has_remaining(), "{key:?} v{version}: bytes left over");
        let reply = match &request {
            RequestKind::ApiVersions(_) => {
                Reply::Answer(Box::new(ResponseKind::ApiVersions(versions())))
            }
            RequestKind::FindCoordinator(_) => Reply::Answer(Box::new(
                ResponseKind::FindCoordinator(coordinator(&me.0, me.1, version)),
            )),
            request => (lock(&script))(request),
        };
        let response = match reply {
            Reply::Answer(response) => response,
            Reply::After(wait, response) => {
                tokio::time::sleep(wait).await;
                response
            }
            Reply::Hang => return std::future::pending().await,
            Reply::Drop => return,
        };
        let mut out = BytesMut::new();
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, key.response_header_version(version))
            .expect("a response header");
        response.encode(&mut out, version).expect("a response");
        let len = i32::try_from(out.len() - 4).expect("a small response");
        out[..4].copy_from_slice(&len.to_be_bytes());
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Every API `kafka-protocol` knows, at every version it knows.
fn versions() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        ApiKey::iter()
            .map(|key| {
                let range = key.valid_versions();
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_min_version(range.min)
                    .with_max_version(range.max)
            })
            .collect(),
    )
}

/// This broker as the coordinator of whatever is asked.
fn coordinator(host: &str, port: i32, version: i16) -> FindCoordinatorResponse {
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    let host = StrBytes::from_string(host.to_owned());
    if version >= 4 {
        // KIP-699: one answer per key asked; weir asks for one.
        FindCoordinatorResponse::default().with_coordinators(vec![
            Coordinator::default()
                .with_node_id(BrokerId(0))
                .with_host(host)
                .with_port(port),
        ])
    } else {
        FindCoordinatorResponse::default()
            .with_node_id(BrokerId(0))
            .with_host(host)
            .with_port(port)
    }
}

/// The API of a request.
fn api_key(request: &RequestKind) -> ApiKey {
    macro_rules! keys {
        ($($kind:ident),*) => {
            match request {
                $(RequestKind::$kind(_) => ApiKey::$kind,)*
                other => panic!("the fake broker does not script {other:?}"),
            }
        };
    }
    keys!(
        InitProducerId,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        TxnOffsetCommit,
        EndTxn,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        ConsumerGroupHeartbeat,
        DescribeConfigs,
        Metadata,
        ApiVersions,
        FindCoordinator
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

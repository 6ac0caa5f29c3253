//! A TCP proxy in front of a broker that injects network faults on
//! command, while it runs:
//! - damaged Kafka response frames ([`Proxy::corrupt`]): a byte flipped
//!   in the body, a frame length set to an extreme, a body cut short. It
//!   reads the requests going through to know which API each response
//!   answers, so a test can damage only Fetch responses, say, and leave
//!   metadata alone;
//! - added latency, fixed and jittered, and a bandwidth limit on
//!   responses ([`Proxy::delay`], [`Proxy::limit`]);
//! - a blackhole: connections accepted and requests read, nothing
//!   forwarded and nothing answered ([`Fault::Blackhole`]);
//! - half-open connections: nothing read or forwarded, nothing closed
//!   ([`Fault::HalfOpen`]);
//! - new connections refused (closed at once, [`Fault::Refuse`]);
//! - every connection reset (RST) now, or after some bytes of its next
//!   response ([`Proxy::reset_all`], [`Proxy::reset_after`]).
//!
//! A client that bootstraps through the proxy connects to the brokers
//! the metadata advertises: put the proxy in front of a broker that
//! advertises the proxy ([`super::Kafka::start_behind`],
//! [`super::Kafka::start_behind_proxies`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Kafka's API key of Fetch requests and responses.
pub const FETCH: i16 = 1;

/// A proxy on 127.0.0.1 to one broker, for as long as it lives.
pub struct Proxy {
    address: String,
    shared: Arc<Shared>,
}

/// What the proxy's threads share with the test.
struct Shared {
    /// Where the proxy forwards to, once known.
    target: Mutex<Option<String>>,
    /// Response frames still to damage.
    to_corrupt: AtomicUsize,
    /// Only responses of this API (-1: any).
    api: Mutex<i16>,
    /// The damage's random state (xorshift), from the test's seed.
    rng: AtomicU64,
    /// Damage one frame in this many (1: every one).
    one_in: AtomicU64,
    /// Frames damaged so far.
    corrupted: AtomicUsize,
    /// Set when the proxy is dropped: accept no more connections.
    closed: AtomicBool,
    /// The fault in force ([`Fault`] as a number).
    fault: AtomicU8,
    /// Added to every response: fixed, and up to this much more (ms).
    latency_ms: AtomicU64,
    jitter_ms: AtomicU64,
    /// Response bytes per second (0: no limit).
    bytes_per_second: AtomicU64,
    /// The connections relayed now, to reset.
    connections: Mutex<Vec<Arc<Connection>>>,
    /// Connections reset so far.
    resets: AtomicUsize,
    /// Requests of this client id and these APIs are dropped, unanswered.
    cut: Mutex<Option<(String, Vec<i16>)>>,
}

/// A fault a proxy can hold its connections in, until told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Forward as a proxy does (damage and delay aside).
    None = 0,
    /// Accept connections and read requests, forward nothing and answer
    /// nothing: a broker that has gone silent, a dropped route.
    Blackhole = 1,
    /// Read nothing, forward nothing, close nothing: a connection whose
    /// other end vanished without a reset (the client's writes fill the
    /// socket's buffers, then block).
    HalfOpen = 2,
    /// Close every new connection at once (as a refused connect does
    /// before a handshake); connections already open carry on.
    Refuse = 3,
}

/// One relayed connection, as the proxy's threads share it.
struct Connection {
    client: TcpStream,
    server: TcpStream,
    /// Reset once this many more response bytes have gone through
    /// (`u64::MAX`: not to be reset).
    reset_in: AtomicU64,
    /// Set once it is being reset: the relay threads end without a FIN.
    resetting: AtomicBool,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port); forwards each connection to
    /// the address later given to [`Proxy::forward_to`].
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            target: Mutex::new(None),
            to_corrupt: AtomicUsize::new(0),
            api: Mutex::new(-1),
            rng: AtomicU64::new(1),
            one_in: AtomicU64::new(1),
            corrupted: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            fault: AtomicU8::new(Fault::None as u8),
            latency_ms: AtomicU64::new(0),
            jitter_ms: AtomicU64::new(0),
            bytes_per_second: AtomicU64::new(0),
            connections: Mutex::new(Vec::new()),
            resets: AtomicUsize::new(0),
            cut: Mutex::new(None),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.closed.load(Relaxed) {
                    return;
                }
                let Ok(client) = client else { return };
                if accepting.fault() == Fault::Refuse {
                    reset(&client);
                    drop(client);
                    continue;
                }
                let target = accepting.target.lock().unwrap().clone();
                let Some(server) = target.and_then(|t| TcpStream::connect(t).ok()) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                relay(client, server, Arc::clone(&accepting));
            }
        });
        Self { address, shared }
    }

    /// The proxy's `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Forwards connections accepted from now on to `target`.
    pub fn forward_to(&self, target: &str) {
        *self.shared.target.lock().unwrap() = Some(target.to_owned());
    }

    /// Damages the next `frames` response frames answering `api` (a
    /// Kafka API key, [`FETCH`]; `None`: any), each in one of three ways
    /// chosen from `seed`: bytes flipped past the correlation id, the
    /// length set to an extreme, or the body cut short (its length
    /// lowered to match, so that the frames after it stay in step).
    pub fn corrupt(&self, frames: usize, api: Option<i16>, seed: u64) {
        self.shared.one_in.store(1, Relaxed);
        *self.shared.api.lock().unwrap() = api.unwrap_or(-1);
        self.shared.rng.store(seed.max(1), Relaxed);
        self.shared.to_corrupt.store(frames, Relaxed);
    }

    /// Damages about one response frame in `one_in` (answering `api`;
    /// `None`: any) from now on, as [`Proxy::corrupt`] does, the choice
    /// and the damage drawn from `seed`.
    pub fn corrupt_some(&self, one_in: u64, api: Option<i16>, seed: u64) {
        self.corrupt(usize::MAX, api, seed);
        self.shared.one_in.store(one_in.max(1), Relaxed);
    }

    /// Response frames damaged so far.
    pub fn corrupted(&self) -> usize {
        self.shared.corrupted.load(Relaxed)
    }

    /// Holds every connection in `fault` from now on, new ones included,
    /// until told [`Fault::None`].
    pub fn set(&self, fault: Fault) {
        self.shared.fault.store(fault as u8, Relaxed);
    }

    /// Delays every response by `fixed` and up to `jitter` more (drawn
    /// from the damage's random state), in order.
    pub fn delay(&self, fixed: Duration, jitter: Duration) {
        self.shared
            .latency_ms
            .store(fixed.as_millis() as u64, Relaxed);
        self.shared
            .jitter_ms
            .store(jitter.as_millis() as u64, Relaxed);
    }

    /// Passes at most `bytes_per_second` of responses per connection (0:
    /// no limit).
    pub fn limit(&self, bytes_per_second: u64) {
        self.shared
            .bytes_per_second
            .store(bytes_per_second, Relaxed);
    }

    /// Resets (RST) every connection relayed now, on both sides.
    pub fn reset_all(&self) {
        self.reset_after(0);
    }

    /// Resets every connection relayed now once `bytes` more bytes of
    /// responses went through it: in the middle of a response, for a
    /// `bytes` inside one.
    pub fn reset_after(&self, bytes: u64) {
        for connection in self.shared.connections.lock().unwrap().iter() {
            connection.reset_in.store(bytes, Relaxed);
            if bytes == 0 {
                self.shared.reset(connection);
            }
        }
    }

    /// Drops, unanswered, every request of `apis` (Kafka API keys) from
    /// clients that name themselves `client_id`, until [`Proxy::uncut`]:
    /// one client cut off from, say, its group coordinator while its
    /// fetches and produce requests go through.
    pub fn cut(&self, client_id: &str, apis: &[i16]) {
        *self.shared.cut.lock().unwrap() = Some((client_id.to_owned(), apis.to_vec()));
    }

    /// Ends [`Proxy::cut`].
    pub fn uncut(&self) {
        *self.shared.cut.lock().unwrap() = None;
    }

    /// Connections reset so far.
    pub fn resets(&self) -> usize {
        self.shared.resets.load(Relaxed)
    }

    /// Connections relayed now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.lock().unwrap().len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Relaxed);
        // Wakes the accepting thread so that it sees `closed`.
        let _ = TcpStream::connect(&self.address);
    }
}

/// Relays one connection: requests as they come, responses frame by
/// frame, each through the faults in force.
fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let connection = Arc::new(Connection {
        client: client.try_clone().unwrap(),
        server: server.try_clone().unwrap(),
        reset_in: AtomicU64::new(u64::MAX),
        resetting: AtomicBool::new(false),
    });
    shared
        .connections
        .lock()
        .unwrap()
        .push(Arc::clone(&connection));
    // Correlation id -> API key of the requests sent.
    let apis = Arc::new(Mutex::new(HashMap::<i32, i16>::new()));
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let requests = Arc::clone(&apis);
    let (up, up_shared) = (Arc::clone(&connection), Arc::clone(&shared));
    std::thread::spawn(move || {
        loop {
            up_shared.hold_while_half_open(&up);
            let Some(frame) = read_frame(&mut from_client) else {
                break;
            };
            if up_shared.fault() == Fault::Blackhole || up_shared.is_cut(&frame) {
                continue;
            }
            if frame.len() >= 8 {
                let api = i16::from_be_bytes([frame[0], frame[1]]);
                let id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                requests.lock().unwrap().insert(id, api);
            }
            let len = (frame.len() as i32).to_be_bytes();
            if to_server.write_all(&len).is_err() || to_server.write_all(&frame).is_err() {
                break;
            }
        }
        up_shared.end(&up, &to_server);
    });
    let (mut from_server, mut to_client) = (server, client);
    std::thread::spawn(move || {
        loop {
            shared.hold_while_half_open(&connection);
            let Some(frame) = read_frame(&mut from_server) else {
                break;
            };
            let api = (frame.len() >= 4)
                .then(|| i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]))
                .and_then(|id| apis.lock().unwrap().remove(&id));
            if shared.fault() == Fault::Blackhole {
                continue;
            }
            let out = match api {
                Some(api) if shared.takes(api) => shared.damage(frame),
                _ => with_length(&frame),
            };
            shared.wait_latency();
            if !shared.send(&connection, &mut to_client, &out) {
                break;
            }
        }
        shared.end(&connection, &to_client);
    });
}

impl Shared {
    fn fault(&self) -> Fault {
        match self.fault.load(Relaxed) {
            1 => Fault::Blackhole,
            2 => Fault::HalfOpen,
            3 => Fault::Refuse,
            _ => Fault::None,
        }
    }

    /// Whether request `frame` is of a client and API cut off
    /// ([`Proxy::cut`]): its header holds the API key (2 bytes), version
    /// (2), correlation id (4) and client id (a 2-byte length, then it).
    fn is_cut(&self, frame: &[u8]) -> bool {
        let cut = self.cut.lock().unwrap();
        let Some((client_id, apis)) = cut.as_ref() else {
            return false;
        };
        if frame.len() < 10 {
            return false;
        }
        let api = i16::from_be_bytes([frame[0], frame[1]]);
        let len = i16::from_be_bytes([frame[8], frame[9]]);
        let name = usize::try_from(len)
            .ok()
            .and_then(|len| frame.get(10..10 + len));
        apis.contains(&api) && name == Some(client_id.as_bytes())
    }

    /// Waits while connections are held half-open (or until this one is
    /// reset or the proxy dropped).
    fn hold_while_half_open(&self, connection: &Connection) {
        while self.fault() == Fault::HalfOpen
            && !connection.resetting.load(Relaxed)
            && !self.closed.load(Relaxed)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sleeps for the latency in force, jitter drawn from the random state.
    fn wait_latency(&self) {
        let fixed = self.latency_ms.load(Relaxed);
        let jitter = self.jitter_ms.load(Relaxed);
        let extra = if jitter > 0 {
            self.next() % (jitter + 1)
        } else {
            0
        };
        if fixed + extra > 0 {
            std::thread::sleep(Duration::from_millis(fixed + extra));
        }
    }

    /// Writes `out` to the client, paced by the bandwidth limit, and
    /// resets the connection where its reset is due; false once the
    /// connection is over.
    fn send(&self, connection: &Connection, to_client: &mut TcpStream, out: &[u8]) -> bool {
        let due = connection.reset_in.load(Relaxed);
        let (now, reset) = match usize::try_from(due) {
            Ok(due) if due < out.len() => (&out[..due], true),
            _ => (out, false),
        };
        if due != u64::MAX && !reset {
            connection.reset_in.store(due - out.len() as u64, Relaxed);
        }
        let rate = self.bytes_per_second.load(Relaxed);
        for chunk in now.chunks(16 * 1024) {
            if to_client.write_all(chunk).is_err() {
                return false;
            }
            if let Some(micros) = (chunk.len() as u64 * 1_000_000).checked_div(rate) {
                std::thread::sleep(Duration::from_micros(micros));
            }
        }
        if reset {
            let _ = to_client.flush();
            self.reset(connection);
            return false;
        }
        true
    }

    /// Resets `connection` on both sides (RST, not FIN): an abortive
    /// close, once its relay threads let go of it.
    fn reset(&self, connection: &Connection) {
        if connection.resetting.swap(true, Relaxed) {
            return;
        }
        self.resets.fetch_add(1, Relaxed);
        reset(&connection.client);
        reset(&connection.server);
        // Wakes both relay threads: each ends and drops its handles, and
        // the last close of each socket sends the RST.
        let _ = connection.client.shutdown(Shutdown::Read);
        let _ = connection.server.shutdown(Shutdown::Read);
    }

    /// A relay thread of `connection` ended, the one writing to `to`:
    /// passes the end on (a FIN, unless it is being reset) and forgets
    /// the connection.
    fn end(&self, connection: &Arc<Connection>, to: &TcpStream) {
        if !connection.resetting.load(Relaxed) {
            let _ = to.shutdown(Shutdown::Write);
        }
        self.connections
            .lock()
            .unwrap()
            .retain(|c| !Arc::ptr_eq(c, connection));
    }

    /// Whether to damage the next response, answering `api`.
    fn takes(&self, api: i16) -> bool {
        let wanted = *self.api.lock().unwrap();
        (wanted < 0 || wanted == api)
            && self.to_corrupt.load(Relaxed) > 0
            && self.next() % self.one_in.load(Relaxed) == 0
            && self
                .to_corrupt
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                .is_ok()
    }

    /// The next random number (xorshift64).
    fn next(&self) -> u64 {
        let mut x = self.rng.load(Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Relaxed);
        x
    }

    /// `frame` damaged, with its length in front.
    fn damage(&self, mut frame: Vec<u8>) -> Vec<u8> {
        self.corrupted.fetch_add(1, Relaxed);
        // The correlation id (4 bytes) stays, so that the client matches
        // the damaged response with its request.
        let body = frame.len().saturating_sub(4);
        match self.next() % 3 {
            0 if body > 0 => {
                for _ in 0..1 + self.next() % 3 {
                    let at = 4 + (self.next() as usize) % body;
                    frame[at] ^= 1 << (self.next() % 8);
                }
                with_length(&frame)
            }
            1 => {
                let extreme = if self.next() % 2 == 0 { i32::MAX } else { -2 };
                let mut out = extreme.to_be_bytes().to_vec();
                out.extend_from_slice(&frame);
                out
            }
            _ => {
                let keep = 4 + (self.next() as usize) % (body.max(1));
                with_length(&frame[..keep.min(frame.len())])
            }
        }
    }
}

/// Makes the last close of `stream`'s socket an abortive one (RST).
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a `linger` of the size given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// One frame's body (without its length); `None` at the end.
fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let len = usize::try_from(i32::from_be_bytes(len)).ok()?;
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame).ok()?;
    Some(frame)
}

/// `frame` with its length in front.
fn with_length(frame: &[u8]) -> Vec<u8> {
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(frame);
    out
}

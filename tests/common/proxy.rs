//! A TCP proxy in front of a broker that damages Kafka response frames
//! on command ([`Proxy::corrupt`]): a byte flipped in the body, a frame
//! length set to an extreme, a body cut short. It reads the requests
//! going through to know which API each response answers, so a test can
//! damage only Fetch responses, say, and leave metadata alone.
//!
//! A client that bootstraps through the proxy connects to the brokers
//! the metadata advertises: put the proxy in front of a broker that
//! advertises the proxy ([`super::Kafka::start_behind`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

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
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.closed.load(Relaxed) {
                    return;
                }
                let Ok(client) = client else { return };
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
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Relaxed);
        // Wakes the accepting thread so that it sees `closed`.
        let _ = TcpStream::connect(&self.address);
    }
}

/// Relays one connection: requests as they come, responses frame by
/// frame.
fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    // Correlation id -> API key of the requests sent.
    let apis = Arc::new(Mutex::new(HashMap::<i32, i16>::new()));
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let requests = Arc::clone(&apis);
    std::thread::spawn(move || {
        while let Some(frame) = read_frame(&mut from_client) {
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
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (server, client);
    std::thread::spawn(move || {
        while let Some(frame) = read_frame(&mut from_server) {
            let api = (frame.len() >= 4)
                .then(|| i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]))
                .and_then(|id| apis.lock().unwrap().remove(&id));
            let out = match api {
                Some(api) if shared.takes(api) => shared.damage(frame),
                _ => with_length(&frame),
            };
            if to_client.write_all(&out).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(Shutdown::Write);
    });
}

impl Shared {
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

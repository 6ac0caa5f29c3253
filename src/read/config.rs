//! How a [`Consumer`](super::Consumer) fetches: its config and the fetch
//! sizes it starts from and grows to.

use std::time::Duration;

pub use rskafka::client::partition::IsolationLevel;

use super::position::{StartOffset, Until};

/// Default fetch size per partition, as the Java consumer's
/// `max.partition.fetch.bytes` (1 MiB).
pub const DEFAULT_FETCH_BYTES: i32 = 1024 * 1024;

/// Largest fetch size a partition grows to when a record does not fit.
pub const MAX_FETCH_BYTES: i32 = 64 * 1024 * 1024;

/// How many times the fetch size a fetch's records may take once decoded
/// (keys and values) before the next fetch asks for less. The fetch size
/// counts bytes on the wire; a compressed topic's records can take 10-50
/// times that in memory, and each of the few fetches a partition holds
/// (see [`ConsumerConfig::buffered_batches`]) would. Uncompressed and
/// ordinarily compressed records stay below half of it, so their fetch
/// size ends at the configured one.
pub const DECODED_FETCH_FACTOR: usize = 4;

/// A partition's first fetch size, when the configured one is larger: the
/// size doubles from there, fetch by fetch, while records decode to less
/// than half of [`DECODED_FETCH_FACTOR`] times the configured size, so
/// that the first fetch of a compressed topic cannot take 50 times its
/// size in memory.
pub const START_FETCH_BYTES: i32 = 64 * 1024;

/// Smallest fetch size the decoded-size rule shrinks to. A broker returns
/// a whole first batch even when it is larger, and a fetch that returns
/// nothing grows again (and stops the rule from going that low again).
pub const MIN_FETCH_BYTES: i32 = 16 * 1024;

/// Default long-poll wait, as the Java consumer's `fetch.max.wait.ms`
/// (500 ms). The broker answers as soon as one byte is there.
pub const DEFAULT_FETCH_MAX_WAIT: Duration = Duration::from_millis(500);

/// How the consumer fetches: [`Default`], then `with_*` methods.
///
/// ```
/// use weir::read::{ConsumerConfig, StartOffset, Until};
///
/// let config = ConsumerConfig::default()
///     .with_start(StartOffset::Latest)
///     .with_until(Until::End);
/// assert!(matches!(config.until, Until::End));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// Where partitions without an explicit start begin.
    pub start: StartOffset,
    /// Where partitions stop.
    pub until: Until,
    /// Fetch size per partition, in bytes on the wire. Fetches start at
    /// [`START_FETCH_BYTES`] and double up to it unless their records
    /// decode to more than [`DECODED_FETCH_FACTOR`] times it (a highly
    /// compressed topic); a record larger than the fetch size grows it.
    ///
    /// [`START_FETCH_BYTES`]: START_FETCH_BYTES
    /// [`DECODED_FETCH_FACTOR`]: DECODED_FETCH_FACTOR
    pub fetch_bytes: i32,
    /// Long-poll wait of each fetch.
    pub fetch_max_wait: Duration,
    /// Fetched batches the stream holds before tasks wait.
    pub buffered_batches: usize,
    /// How long a partition keeps retrying without one good fetch before
    /// it fails.
    pub retry_timeout: Duration,
    /// Which records are read, and where the log ends for
    /// [`Until::End`] and [`StartOffset::Latest`]: the last stable offset
    /// under read_committed, the high watermark under read_uncommitted.
    pub isolation: IsolationLevel,
    /// Whether its partitions show in the metrics ([`crate::metrics`]):
    /// a job's input does, weir's reads of its own offsets topic do not.
    pub metered: bool,
    /// Topics read on past [`until`](Self::until), from their earliest
    /// offset where nothing was committed: the internal topic between two
    /// stages of a job, which never ends while a source may write to it.
    pub follow: Vec<String>,
    /// Keys and values decoded through a schema registry as they are read
    /// (`None`: as stored).
    pub decoding: Option<std::sync::Arc<crate::registry::codec::Decoding>>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            start: StartOffset::Earliest,
            until: Until::Never,
            fetch_bytes: DEFAULT_FETCH_BYTES,
            fetch_max_wait: DEFAULT_FETCH_MAX_WAIT,
            buffered_batches: 4,
            retry_timeout: crate::kafka::connect::DEFAULT_TIMEOUT,
            // As librdkafka (kcat) and Kafka Streams with exactly-once:
            // records of aborted transactions are never shown, and neither
            // is anything an open transaction may still abort. (The Java
            // consumer defaults to read_uncommitted.)
            isolation: IsolationLevel::ReadCommitted,
            metered: true,
            follow: Vec::new(),
            decoding: None,
        }
    }
}

/// `with_*` builders, each setting the field of its name.
impl ConsumerConfig {
    /// With [`start`](Self::start).
    #[must_use]
    pub fn with_start(mut self, start: StartOffset) -> Self {
        self.start = start;
        self
    }

    /// With [`until`](Self::until).
    #[must_use]
    pub fn with_until(mut self, until: Until) -> Self {
        self.until = until;
        self
    }

    /// With [`fetch_bytes`](Self::fetch_bytes).
    #[must_use]
    pub fn with_fetch_bytes(mut self, bytes: i32) -> Self {
        self.fetch_bytes = bytes;
        self
    }

    /// With [`fetch_max_wait`](Self::fetch_max_wait).
    #[must_use]
    pub fn with_fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait = wait;
        self
    }

    /// With [`buffered_batches`](Self::buffered_batches).
    #[must_use]
    pub fn with_buffered_batches(mut self, batches: usize) -> Self {
        self.buffered_batches = batches;
        self
    }

    /// With [`retry_timeout`](Self::retry_timeout).
    #[must_use]
    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = timeout;
        self
    }

    /// With [`isolation`](Self::isolation).
    #[must_use]
    pub fn with_isolation(mut self, isolation: IsolationLevel) -> Self {
        self.isolation = isolation;
        self
    }

    /// With [`metered`](Self::metered).
    #[must_use]
    pub fn with_metered(mut self, metered: bool) -> Self {
        self.metered = metered;
        self
    }

    /// With [`decoding`](Self::decoding).
    #[must_use]
    pub fn with_decoding(
        mut self,
        decoding: Option<std::sync::Arc<crate::registry::codec::Decoding>>,
    ) -> Self {
        self.decoding = decoding;
        self
    }
}

//! Flag groups shared by several subcommands, defined once with their
//! checks.

use std::time::Duration;

use clap::ValueEnum;
use rskafka::client::partition::IsolationLevel;

use weir::consume::filter::{FilterConfig, WhereClause, parse_regex};
use weir::kafka::idempotence::ProducerIdError;
use weir::kafka::membership::assignors::UnknownAssignor;
use weir::kafka::membership::{
    Assignor, DEFAULT_ASSIGNORS, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_SESSION_TIMEOUT,
    GroupProtocol, MembershipConfig,
};
use weir::produce::Compression;
use weir::produce::producer::{
    DEFAULT_BATCH_BYTES, DEFAULT_BUFFER_BYTES, MAX_REQUEST_BYTES, ProducerConfig,
};
use weir::read::ConsumerConfig;
use weir::read::config::DEFAULT_FETCH_BYTES;

use super::connect::parse_duration;
use super::{non_negative, usage, usage_for};

/// The metrics endpoint of a long-running job (`consume`, `count`, `agg`,
/// `pipe`).
#[derive(Debug, clap::Args)]
pub struct MetricsFlags {
    /// Serve Prometheus metrics on HOST:PORT at /metrics, with /healthz
    /// (alive) and /readyz (partitions assigned, no rebalance). Off by
    /// default.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
}

impl MetricsFlags {
    /// The endpoint's `HOST:PORT`, when asked for.
    ///
    /// # Errors
    ///
    /// An address that is not HOST:PORT (usage).
    pub fn addr(&self) -> anyhow::Result<Option<String>> {
        let Some(addr) = &self.metrics_addr else {
            return Ok(None);
        };
        let port = addr
            .rsplit_once(':')
            .map(|(host, port)| (host, port.parse::<u16>()));
        if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
            return Err(usage(format!(
                "--metrics-addr \"{addr}\": expected HOST:PORT (127.0.0.1:9464, [::]:9464)"
            )));
        }
        Ok(Some(addr.clone()))
    }
}

/// How the producer batches (`weir produce`, `weir bench`).
#[derive(Debug, clap::Args)]
pub struct BatchFlags {
    /// How long a batch waits for more records after its first record
    /// arrives (as librdkafka's linger.ms).
    #[arg(long, default_value = "5ms", value_parser = parse_duration, allow_hyphen_values = true)]
    pub linger: Duration,

    /// Largest batch in bytes as sent, compressed when compressing (as
    /// the Java producer's batch.size). Batches stay within the topic's
    /// max.message.bytes; a record larger than this goes alone in its
    /// batch.
    #[arg(long, default_value_t = DEFAULT_BATCH_BYTES, value_parser = non_negative::<usize>, allow_negative_numbers = true)]
    pub batch_bytes: usize,

    /// Batch compression.
    #[arg(long, value_enum, default_value_t = Codec::None)]
    pub compression: Codec,

    /// Most bytes of records held between reading them and their
    /// acknowledgement, in all partitions together (as the Java
    /// producer's buffer.memory); reading waits for room.
    #[arg(long, default_value_t = DEFAULT_BUFFER_BYTES, value_parser = non_negative::<usize>, allow_negative_numbers = true)]
    pub buffer_bytes: usize,

    /// Produce without idempotence (for brokers older than 0.11, or a
    /// principal without IdempotentWrite on clusters before 2.8): one
    /// batch at a time per partition, and a batch retried after a lost
    /// acknowledgement may be stored twice.
    #[arg(long)]
    pub no_idempotence: bool,
}

impl BatchFlags {
    /// The producer configuration with these flags and `timeout` as the
    /// delivery deadline.
    ///
    /// # Errors
    ///
    /// A batch size out of range.
    pub fn config(&self, timeout: Duration) -> anyhow::Result<ProducerConfig> {
        if self.batch_bytes == 0 || self.batch_bytes > MAX_REQUEST_BYTES {
            return Err(usage(format!(
                "--batch-bytes {} is out of range (1..={MAX_REQUEST_BYTES}: a broker reads no request over its socket.request.max.bytes, 100 MiB by default)",
                self.batch_bytes
            )));
        }
        Ok(ProducerConfig::default()
            .with_linger(self.linger)
            .with_batch_bytes(self.batch_bytes)
            .with_compression(self.compression.into())
            .with_buffer_bytes(self.buffer_bytes)
            .with_delivery_timeout(timeout))
    }
}

/// A refused InitProducerId, with the way around it.
pub fn without_idempotence_hint(e: ProducerIdError) -> anyhow::Error {
    anyhow::anyhow!(
        "{} (--no-idempotence produces without)",
        weir::ErrorChain(&e)
    )
}

/// How partitions are fetched (`weir consume`, `weir count`, `weir bench`).
#[derive(Debug, clap::Args)]
pub struct FetchFlags {
    /// Fetch size per partition in bytes: fetches start at 64 KiB and
    /// double up to it, ask for less when records decode to more than 4
    /// times it, and grow when a record does not fit.
    #[arg(long, default_value_t = DEFAULT_FETCH_BYTES, value_parser = non_negative::<i32>, allow_negative_numbers = true)]
    pub fetch_bytes: i32,

    /// Longest a fetch waits for new records.
    #[arg(long, default_value = "500ms", value_parser = parse_duration, allow_hyphen_values = true)]
    pub fetch_max_wait: Duration,

    /// Which records of transactional producers are read: read_committed
    /// leaves out aborted transactions and reads no further than the last
    /// stable offset (the first record of a transaction still open);
    /// read_uncommitted reads everything up to the high watermark.
    #[arg(long, value_enum, default_value_t = Isolation::ReadCommitted)]
    pub isolation: Isolation,
}

/// `--isolation`, spelled as Kafka's `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// Committed transactions and records outside transactions.
    #[value(name = "read_committed", alias = "read-committed")]
    ReadCommitted,
    /// Every record, open and aborted transactions included.
    #[value(name = "read_uncommitted", alias = "read-uncommitted")]
    ReadUncommitted,
}

impl From<Isolation> for IsolationLevel {
    fn from(isolation: Isolation) -> Self {
        match isolation {
            Isolation::ReadCommitted => Self::ReadCommitted,
            Isolation::ReadUncommitted => Self::ReadUncommitted,
        }
    }
}

impl FetchFlags {
    /// The consumer configuration with these flags and `timeout` as the
    /// retry deadline.
    ///
    /// # Errors
    ///
    /// A fetch size below 1.
    pub fn config(&self, timeout: Duration) -> anyhow::Result<ConsumerConfig> {
        if self.fetch_bytes < 1 {
            return Err(usage("--fetch-bytes must be at least 1"));
        }
        Ok(ConsumerConfig::default()
            .with_fetch_bytes(self.fetch_bytes)
            .with_fetch_max_wait(self.fetch_max_wait)
            .with_retry_timeout(timeout)
            .with_isolation(self.isolation.into()))
    }
}

/// How a member of a group takes part in the broker's group protocol
/// (`weir consume -g`, `weir count -g`, `weir agg -g`, `weir pipe -g`),
/// with the Java consumer's defaults.
#[derive(Debug, clap::Args)]
pub struct MembershipFlags {
    /// A member not heard from for this long is removed and its
    /// partitions move to the others (session.timeout.ms). Classic
    /// protocol only: on the consumer protocol the broker decides (the
    /// group config consumer.session.timeout.ms) [default: 45s]
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub session_timeout: Option<Duration>,

    /// How often a member heartbeats to the group coordinator
    /// (heartbeat.interval.ms). Classic protocol only: on the consumer
    /// protocol, as the broker says (the group config
    /// consumer.heartbeat.interval.ms) [default: 3s]
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub heartbeat_interval: Option<Duration>,

    /// How long a rebalance waits for members to finish with their
    /// partitions and rejoin (max.poll.interval.ms).
    #[arg(long, default_value = "5m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub max_poll_interval: Duration,

    /// Join as a static member with this id (group.instance.id, KIP-345):
    /// the group keeps the member's partitions for it until its session
    /// times out, so a restart with the same id takes them back at once,
    /// without a rebalance. A stop (SIGTERM) does not leave the group.
    /// Each member needs an id of its own that stays the same across
    /// restarts (in Kubernetes, a StatefulSet's pod name); a second
    /// process with the same id stops the first.
    #[arg(long, value_name = "ID", env = "WEIR_GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,

    /// The assignors to offer, in order of preference
    /// (partition.assignment.strategy): range, roundrobin, sticky,
    /// cooperative-sticky (or Java's class names). The broker picks one
    /// every member offers. The default shares a group with default Java
    /// and librdkafka consumers (range) and with older weir members
    /// (sticky); with cooperative-sticky first on every member, a
    /// rebalance pauses only the partitions that move. Classic protocol
    /// only [default: sticky,range,roundrobin,cooperative-sticky].
    #[arg(
        long,
        value_name = "LIST",
        env = "WEIR_ASSIGNOR",
        value_delimiter = ',',
        value_parser = parse_assignor
    )]
    pub assignor: Option<Vec<Assignor>>,

    /// The group protocol (group.protocol): classic (JoinGroup and
    /// SyncGroup, every broker) or consumer (KIP-848, Kafka 4.0+: the
    /// broker assigns, and only the partitions that move pause).
    #[arg(
        long,
        value_name = "classic|consumer",
        env = "WEIR_GROUP_PROTOCOL",
        default_value = "classic"
    )]
    pub group_protocol: GroupProtocol,

    /// With --group-protocol consumer, the broker's assignor
    /// (group.remote.assignor): uniform or range; default the broker's.
    #[arg(long, value_name = "NAME")]
    pub group_remote_assignor: Option<String>,
}

impl MembershipFlags {
    /// On the consumer protocol the broker decides the session timeout,
    /// the heartbeat interval and the assignment: the flags for them are
    /// refused when given (as the Java consumer refuses
    /// `session.timeout.ms`, `heartbeat.interval.ms` and
    /// `partition.assignment.strategy` with `group.protocol=consumer`),
    /// naming what to set instead.
    fn refuse_classic_flags(&self, group: &str) -> anyhow::Result<()> {
        let alter = |what: &str, key: &str| {
            format!(
                "the broker decides the {what} (its group.{key}): set the group's {key} instead (kafka-configs --bootstrap-server B --entity-type groups --entity-name {group} --alter --add-config {key}=MS)"
            )
        };
        let (flag, instead) = if self.session_timeout.is_some() {
            (
                "--session-timeout",
                alter("session timeout", "consumer.session.timeout.ms"),
            )
        } else if self.heartbeat_interval.is_some() {
            (
                "--heartbeat-interval",
                alter("heartbeat interval", "consumer.heartbeat.interval.ms"),
            )
        } else if self.assignor.is_some() {
            (
                "--assignor",
                "the broker assigns the partitions: choose its assignor with --group-remote-assignor uniform|range (the broker's group.consumer.assignors lists those it offers); WEIR_ASSIGNOR sets --assignor too".to_owned(),
            )
        } else {
            return Ok(());
        };
        Err(usage(format!(
            "{flag} is for the classic protocol only: with --group-protocol consumer {instead}"
        )))
    }
}

/// One `--assignor` name.
fn parse_assignor(name: &str) -> Result<Assignor, String> {
    name.parse().map_err(|e: UnknownAssignor| e.to_string())
}

impl MembershipFlags {
    /// Membership of `group` for `topics` with these timeouts.
    ///
    /// # Errors
    ///
    /// A heartbeat interval that is not below the session timeout.
    pub fn config(&self, group: &str, topics: &[String]) -> anyhow::Result<MembershipConfig> {
        if self.group_protocol == GroupProtocol::Consumer {
            self.refuse_classic_flags(group)?;
        }
        let session_timeout = self.session_timeout.unwrap_or(DEFAULT_SESSION_TIMEOUT);
        let heartbeat_interval = self
            .heartbeat_interval
            .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL);
        if heartbeat_interval.is_zero() || heartbeat_interval >= session_timeout {
            return Err(usage(format!(
                "--heartbeat-interval {} must be above 0 and below --session-timeout {}",
                humantime::format_duration(heartbeat_interval),
                humantime::format_duration(session_timeout)
            )));
        }
        let config = MembershipConfig::new(group, topics.to_vec())
            .with_session_timeout(session_timeout)
            .with_heartbeat_interval(heartbeat_interval)
            .with_rebalance_timeout(self.max_poll_interval)
            .with_assignors(
                self.assignor
                    .as_deref()
                    .unwrap_or(&DEFAULT_ASSIGNORS)
                    .iter()
                    .copied(),
            )
            .with_protocol(self.group_protocol, self.group_remote_assignor.clone());
        Ok(match &self.group_instance_id {
            Some(id) => config.with_instance_id(instance_id(id)?),
            None => config,
        })
    }
}

/// `id` as a group instance id, by the rules the Java client checks
/// before it sends one (`JoinGroupRequest.validateGroupInstanceId`).
fn instance_id(id: &str) -> anyhow::Result<&str> {
    let why = if id.is_empty() {
        "is empty"
    } else if id == "." || id == ".." {
        "cannot be \".\" or \"..\""
    } else if id.len() > 249 {
        "is longer than 249 characters"
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "may hold only ASCII letters, digits, '.', '_' and '-'"
    } else {
        return Ok(id);
    };
    Err(usage(format!("--group-instance-id \"{id}\" {why}")))
}

/// Which records pass (`weir consume`, `weir pipe`).
#[derive(Debug, clap::Args)]
pub struct FilterFlags {
    /// Only records whose value matches REGEX.
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<String>,

    /// Only records whose key matches REGEX.
    #[arg(long, value_name = "REGEX")]
    pub grep_key: Option<String>,

    /// Only records whose JSON value has FIELD equal to VALUE; FIELD is a
    /// JSON pointer (/level) or a dotted path (http.status). Repeatable.
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    pub wheres: Vec<String>,

    /// Take the records the filters reject instead.
    #[arg(long)]
    pub invert: bool,
}

impl FilterFlags {
    /// The filter these flags describe.
    ///
    /// # Errors
    ///
    /// A regex or a `--where` clause that cannot be read.
    pub fn config(&self) -> anyhow::Result<FilterConfig> {
        let regex = |flag: &str, pattern: &Option<String>| {
            pattern
                .as_deref()
                .map(parse_regex)
                .transpose()
                .map_err(|e| usage_for(flag, e))
        };
        let mut config = FilterConfig::default()
            .with_grep(regex("--grep", &self.grep)?)
            .with_grep_key(regex("--grep-key", &self.grep_key)?)
            .with_invert(self.invert);
        for clause in &self.wheres {
            let clause = clause
                .parse::<WhereClause>()
                .map_err(|e| usage_for("--where", e))?;
            config = config.with_where(clause);
        }
        Ok(config)
    }
}

/// Compression codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// LZ4.
    Lz4,
    /// Snappy.
    Snappy,
    /// Zstandard.
    Zstd,
}

impl From<Codec> for Compression {
    fn from(c: Codec) -> Self {
        match c {
            Codec::None => Self::None,
            Codec::Gzip => Self::Gzip,
            Codec::Lz4 => Self::Lz4,
            Codec::Snappy => Self::Snappy,
            Codec::Zstd => Self::Zstd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(id: Option<&str>) -> MembershipFlags {
        MembershipFlags {
            session_timeout: None,
            heartbeat_interval: None,
            max_poll_interval: Duration::from_secs(300),
            group_instance_id: id.map(str::to_owned),
            assignor: None,
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
        }
    }

    #[test]
    fn assignors_are_offered_in_the_order_given() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            membership: MembershipFlags,
        }
        let topics = ["t".to_owned()];
        let cli = Cli::try_parse_from([
            "weir",
            "--assignor",
            "range,CooperativeStickyAssignor,range",
        ])
        .unwrap();
        let config = cli.membership.config("g", &topics).unwrap();
        assert_eq!(
            config.assignors,
            [Assignor::Range, Assignor::CooperativeSticky]
        );
        let cli = Cli::try_parse_from(["weir"]).unwrap();
        assert_eq!(
            cli.membership.config("g", &topics).unwrap().assignors,
            weir::kafka::membership::DEFAULT_ASSIGNORS
        );
        assert!(Cli::try_parse_from(["weir", "--assignor", "uniform"]).is_err());
    }

    #[test]
    fn a_group_instance_id_makes_a_static_member() {
        let topics = ["t".to_owned()];
        let config = membership(Some("weir-0.a_b")).config("g", &topics).unwrap();
        assert_eq!(config.instance_id.as_deref(), Some("weir-0.a_b"));
        assert!(!membership(None).config("g", &topics).unwrap().is_static());
    }

    #[test]
    fn a_group_instance_id_is_checked_as_the_java_client_checks_it() {
        let topics = ["t".to_owned()];
        let long = "a".repeat(250);
        for (id, why) in [
            ("", "is empty"),
            ("..", "cannot be"),
            (long.as_str(), "longer than 249"),
            ("pod/0", "may hold only"),
            ("pod 0", "may hold only"),
        ] {
            let e = membership(Some(id)).config("g", &topics).unwrap_err();
            assert!(e.is::<crate::cli::UsageError>(), "{id:?}: {e}");
            assert!(e.to_string().contains(why), "{id:?}: {e}");
        }
        assert!(
            membership(Some(&"a".repeat(249)))
                .config("g", &topics)
                .is_ok()
        );
    }
}

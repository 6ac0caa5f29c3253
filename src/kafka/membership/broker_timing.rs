//! On the consumer protocol (KIP-848) a member's timings are the broker's,
//! as the Java consumer has them: the coordinator removes a member after
//! the group's `group.consumer.session.timeout.ms` (a dynamic group
//! config since Kafka 4.0, else the broker's), and every
//! ConsumerGroupHeartbeat answer says how often to heartbeat
//! (`group.consumer.heartbeat.interval.ms`). The member heartbeats at the
//! interval of the last answer (weir's own until the first), and its
//! [lease](super::Lease) runs for the session timeout read once at join
//! (DescribeConfigs on the group, else on the coordinator broker, else
//! the smallest session the broker allows, else Kafka's 45 s) less one
//! heartbeat interval, so that it never outlives the broker's session.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{DescribeConfigsRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info, warn};

use super::Member;
use super::member::Attempt;

/// A group's session timeout on the consumer protocol, as a group config
/// (`kafka-configs --entity-type groups`).
const GROUP_SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
/// The broker's session timeout for groups that set none.
const SESSION_TIMEOUT: &str = "group.consumer.session.timeout.ms";
/// The smallest session timeout the broker allows a group.
const MIN_SESSION_TIMEOUT: &str = "group.consumer.min.session.timeout.ms";
/// Kafka's default `group.consumer.session.timeout.ms`.
const KAFKA_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// DescribeConfigs resource types (Kafka's `ConfigResource.Type`).
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_GROUP: i8 = 32;

impl Member {
    /// The session timeout the coordinator applies: on the consumer
    /// protocol the broker's (once read), else the configured one.
    pub(super) fn session_timeout(&self) -> Duration {
        match self.broker.session {
            Some(session) if self.speaks_consumer_protocol() => session,
            _ => self.config.session_timeout,
        }
    }

    /// How often to heartbeat: on the consumer protocol the interval of
    /// the broker's last answer (the configured one until the first).
    pub(super) fn heartbeat_interval(&self) -> Duration {
        match self.broker.interval {
            Some(interval) if self.speaks_consumer_protocol() => interval,
            _ => self.config.heartbeat_interval,
        }
    }

    /// A ConsumerGroupHeartbeat answer's HeartbeatIntervalMs.
    pub(super) fn heard_interval(&mut self, millis: i32) {
        if let Ok(ms @ 1..) = u64::try_from(millis) {
            self.broker.interval = Some(Duration::from_millis(ms));
        }
    }

    /// Reads the group's session timeout once, before the first join:
    /// the group's config (Kafka 4.x answers the broker's default for a
    /// group that sets none), else the coordinator broker's, else the
    /// smallest the broker allows or Kafka's default (logged: the lease
    /// may then outlive a shorter session the broker applies).
    ///
    /// # Errors
    ///
    /// Only a coordinator that cannot be reached; a refusal falls back.
    pub(super) async fn read_session_timeout(&mut self) -> Result<(), Attempt> {
        if self.broker.session.is_some() {
            return Ok(());
        }
        let group = self.config.group.clone();
        let read = self
            .describe(RESOURCE_GROUP, group.clone(), &[GROUP_SESSION_TIMEOUT])
            .await?;
        let (session, from) = match millis(&read, GROUP_SESSION_TIMEOUT) {
            Some(session) => (session, "group"),
            None => {
                let broker = match self.coordinator_id().await? {
                    Some(id) => {
                        self.describe(
                            RESOURCE_BROKER,
                            id.to_string(),
                            &[SESSION_TIMEOUT, MIN_SESSION_TIMEOUT],
                        )
                        .await?
                    }
                    None => Vec::new(),
                };
                match (
                    millis(&broker, SESSION_TIMEOUT),
                    millis(&broker, MIN_SESSION_TIMEOUT),
                ) {
                    (Some(session), _) => (session, "broker"),
                    (None, min) => {
                        let session = min.unwrap_or(KAFKA_SESSION_TIMEOUT);
                        warn!(
                            group = group.as_str(),
                            session_timeout = %humantime::format_duration(session),
                            "could not read the group's {GROUP_SESSION_TIMEOUT} or its coordinator's {SESSION_TIMEOUT} (DescribeConfigs): the lease on partitions assumes {}",
                            match min {
                                Some(_) => "the smallest session the broker allows",
                                None => "Kafka's default",
                            }
                        );
                        (session, "assumed")
                    }
                }
            }
        };
        info!(
            group = group.as_str(),
            session_timeout = %humantime::format_duration(session),
            from,
            "session timeout (consumer protocol): the group's {GROUP_SESSION_TIMEOUT}, else the broker's {SESSION_TIMEOUT}"
        );
        self.broker.session = Some(session);
        Ok(())
    }

    /// The values of `keys` of one config resource; none when the broker
    /// refuses (an old broker, or no DESCRIBE_CONFIGS permission).
    async fn describe(
        &mut self,
        resource_type: i8,
        name: String,
        keys: &[&'static str],
    ) -> Result<Vec<(String, Option<String>)>, Attempt> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name))
                .with_configuration_keys(Some(
                    keys.iter().map(|k| StrBytes::from_static_str(k)).collect(),
                )),
        ]);
        let response = self.send(&request).await?;
        let mut values = Vec::new();
        for result in response.results {
            if let Some(error) = ResponseError::try_from_code(result.error_code) {
                debug!(
                    group = self.config.group.as_str(),
                    resource_type,
                    error = ?error,
                    message = result.error_message.as_deref().unwrap_or_default(),
                    "DescribeConfigs refused"
                );
                continue;
            }
            values.extend(
                result
                    .configs
                    .into_iter()
                    .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string()))),
            );
        }
        Ok(values)
    }

    /// The coordinator's node id, from its own metadata (a broker's
    /// configs are described by its id).
    async fn coordinator_id(&mut self) -> Result<Option<i32>, Attempt> {
        let address = self.coordinator().await?.broker().to_owned();
        let request = MetadataRequest::default()
            .with_topics(Some(Vec::new()))
            .with_allow_auto_topic_creation(false);
        let metadata = self.send(&request).await?;
        Ok(metadata
            .brokers
            .iter()
            .find(|b| format!("{}:{}", b.host.as_str(), b.port) == address)
            .map(|b| b.node_id.0))
    }
}

/// Heartbeats at `member`'s interval from now on, if it changed (the
/// broker's answer said so).
pub(super) fn follow(ticks: &mut tokio::time::Interval, member: &Member) {
    let every = member.heartbeat_interval();
    if every != ticks.period() {
        debug!(
            group = member.group(),
            every = %humantime::format_duration(every),
            "heartbeat interval changed (the broker's)"
        );
        *ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
}

/// `key`'s value in `configs` as milliseconds, if it is a positive number.
fn millis(configs: &[(String, Option<String>)], key: &str) -> Option<Duration> {
    configs
        .iter()
        .find(|(name, _)| name == key)
        .and_then(|(_, value)| value.as_deref()?.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}

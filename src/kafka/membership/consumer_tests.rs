//! The consumer protocol's timings (KIP-848) against a scripted
//! coordinator: the member heartbeats at the interval the broker's
//! answers give and holds its lease for the group's session timeout as
//! the broker has it (the group's config, else the coordinator broker's,
//! else Kafka's default), whatever weir's own settings say.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{BrokerId, ConsumerGroupHeartbeatResponse, DescribeConfigsResponse};

use super::*;
use crate::kafka::membership::GroupProtocol;

const TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u128(0x848);
const NODE: i32 = 7;

/// What the coordinator says of the group's timings.
#[derive(Debug, Clone, Copy)]
struct Timings {
    /// The group's `consumer.session.timeout.ms` (`None`: the group
    /// resource is refused).
    group_session_ms: Option<i32>,
    /// The coordinator broker's `group.consumer.session.timeout.ms`
    /// (`None`: refused).
    broker_session_ms: Option<i32>,
    /// HeartbeatIntervalMs in every answer.
    interval_ms: i32,
}

/// A coordinator speaking KIP-848 for one member, with `timings`.
fn coordinator_848(timings: Timings) -> FakeBroker {
    let address = Arc::new(Mutex::new(String::new()));
    let me = Arc::clone(&address);
    let broker = FakeBroker::start(move |request| {
        let reply = |kind| Reply::Answer(Box::new(kind));
        match request {
            RequestKind::Metadata(_) => {
                let me = me.lock().unwrap().clone();
                let (host, port) = me.rsplit_once(':').unwrap();
                reply(ResponseKind::Metadata(
                    MetadataResponse::default()
                        .with_brokers(vec![
                            MetadataResponseBroker::default()
                                .with_node_id(BrokerId(NODE))
                                .with_host(StrBytes::from_string(host.to_owned()))
                                .with_port(port.parse().unwrap()),
                        ])
                        .with_topics(vec![
                            MetadataResponseTopic::default()
                                .with_name(Some(TopicName(StrBytes::from_static_str("in"))))
                                .with_topic_id(TOPIC_ID),
                        ]),
                ))
            }
            RequestKind::DescribeConfigs(r) => {
                let results = r
                    .resources
                    .iter()
                    .map(|resource| {
                        let value = match (resource.resource_type, resource.resource_name.as_str())
                        {
                            (32, "g") => timings.group_session_ms,
                            (4, name) if name == NODE.to_string() => timings.broker_session_ms,
                            other => panic!("unexpected resource {other:?}"),
                        };
                        let result = DescribeConfigsResult::default()
                            .with_resource_type(resource.resource_type)
                            .with_resource_name(resource.resource_name.clone());
                        match value {
                            Some(ms) => result.with_configs(vec![
                                DescribeConfigsResourceResult::default()
                                    .with_name(StrBytes::from_static_str(
                                        match resource.resource_type {
                                            32 => "consumer.session.timeout.ms",
                                            _ => "group.consumer.session.timeout.ms",
                                        },
                                    ))
                                    .with_value(Some(StrBytes::from_string(ms.to_string()))),
                            ]),
                            None => result
                                .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
                        }
                    })
                    .collect();
                reply(ResponseKind::DescribeConfigs(
                    DescribeConfigsResponse::default().with_results(results),
                ))
            }
            RequestKind::ConsumerGroupHeartbeat(r) => {
                let answer = ConsumerGroupHeartbeatResponse::default()
                    .with_member_id(Some(r.member_id.clone()))
                    .with_heartbeat_interval_ms(timings.interval_ms);
                reply(ResponseKind::ConsumerGroupHeartbeat(match r.member_epoch {
                    0 => answer.with_member_epoch(1).with_assignment(Some(
                        Assignment::default().with_topic_partitions(vec![
                            TopicPartitions::default()
                                .with_topic_id(TOPIC_ID)
                                .with_partitions(vec![0, 1, 2]),
                        ]),
                    )),
                    epoch => answer.with_member_epoch(epoch),
                }))
            }
            other => panic!("not a KIP-848 request: {other:?}"),
        }
    });
    *address.lock().unwrap() = broker.connection(TIMEOUT).brokers[0].clone();
    broker
}

/// weir's own timings, which the consumer protocol must not use.
fn config_848() -> MembershipConfig {
    MembershipConfig {
        session_timeout: Duration::from_secs(60),
        heartbeat_interval: Duration::from_secs(3),
        ..MembershipConfig::new("g", vec!["in".to_owned()])
    }
    .with_protocol(GroupProtocol::Consumer, None)
}

/// How long the lease runs past `from` right after a join.
async fn lease_after_join(broker: &FakeBroker) -> (Membership, Duration) {
    let from = Instant::now();
    let (membership, first) = Membership::join(&broker.connection(TIMEOUT), config_848())
        .await
        .unwrap();
    assert_eq!(first.partitions.len(), 3);
    let until = membership.lease().until().expect("a lease");
    (membership, until - from)
}

#[tokio::test(start_paused = true)]
async fn the_lease_and_the_heartbeats_follow_the_brokers_timings() {
    let broker = coordinator_848(Timings {
        group_session_ms: Some(20_000),
        broker_session_ms: Some(45_000),
        interval_ms: 2_000,
    });
    let (membership, lease) = lease_after_join(&broker).await;
    // The group's 20 s less the broker's 2 s, not weir's 60 s less 3 s.
    assert!(
        lease >= Duration::from_secs(18) && lease < Duration::from_millis(18_050),
        "{lease:?}"
    );
    assert_eq!(broker.count(ApiKey::DescribeConfigs), 1);
    // Heartbeats every 2 s: ten in 20 s (at weir's 3 s, six).
    let joined = broker.count(ApiKey::ConsumerGroupHeartbeat);
    tokio::time::sleep(Duration::from_millis(20_500)).await;
    let beats = broker.count(ApiKey::ConsumerGroupHeartbeat) - joined;
    assert_eq!(beats, 10, "heartbeats in 20 s");
    // Renewed by each, for 18 s from the last.
    let left = membership.lease().until().unwrap() - Instant::now();
    assert!(
        left > Duration::from_secs(16) && left <= Duration::from_secs(18),
        "{left:?}"
    );
    assert_eq!(broker.count(ApiKey::DescribeConfigs), 1, "read once");
    membership.leave().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn without_the_groups_config_the_coordinators_or_kafkas_default_session_is_used() {
    for (broker_session_ms, expected) in [(Some(30_000), 28_000), (None, 43_000)] {
        let broker = coordinator_848(Timings {
            group_session_ms: None,
            broker_session_ms,
            interval_ms: 2_000,
        });
        let (membership, lease) = lease_after_join(&broker).await;
        let expected = Duration::from_millis(expected);
        assert!(
            lease >= expected && lease < expected + Duration::from_millis(50),
            "{broker_session_ms:?}: {lease:?}"
        );
        membership.leave().await.unwrap();
    }
}

//! Where a new share group starts. Kafka's share groups start at the
//! latest offset unless the group config `share.auto.offset.reset` says
//! `earliest`; `--from` sets it (IncrementalAlterConfigs on the GROUP
//! resource, as `kafka-configs --entity-type groups` does) on a group that
//! has no state yet. On a group that has, `--from` is refused: moving an
//! existing group is `weir offsets set`. Asking again for what the group
//! is already set to (several members started with the same `--from`)
//! is not a change and passes.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeShareGroupOffsetsRequest, GroupId,
    IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::info;

use super::ShareError;
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::wire::{self, BrokerConnection};

/// ConfigResource type of a group (KIP-848's group configs).
const RESOURCE_GROUP: i8 = 32;
/// The group config that says where a share group with no state starts.
const AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";

/// Where a new share group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareStart {
    /// At each partition's earliest offset.
    Earliest,
    /// At each partition's end (Kafka's default).
    Latest,
}

impl ShareStart {
    /// The config's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

/// Sets where `group` starts, if it has no state yet.
///
/// # Errors
///
/// [`ShareError::StartRefused`] when the group has state and starts
/// elsewhere; a request that failed or was refused.
pub async fn set_start(
    connection: &ConnectionConfig,
    group: &str,
    start: ShareStart,
) -> Result<(), ShareError> {
    let wire_options = connection.wire_options()?;
    let deadline = Instant::now() + connection.timeout;
    let wire_error = |source| ShareError::Wire {
        group: group.to_owned(),
        source,
    };
    let mut any = wire::connect_any(&wire_options, &connection.brokers, deadline)
        .await
        .map_err(wire_error)?;
    let current = group_config(&mut any, group, connection.timeout).await?;
    if current.as_deref() == Some(start.as_str()) {
        return Ok(());
    }
    // A coordinator that is still loading (a new cluster's group offsets
    // topic) or moved is asked again until the deadline.
    let state = loop {
        let address = super::member::coordinator_address(&mut any, group, deadline)
            .await
            .map_err(wire_error)?;
        let mut coordinator = wire::connect_to(&wire_options, &address, deadline)
            .await
            .map_err(wire_error)?;
        match group_state(&mut coordinator, group).await {
            Err(ShareError::Refused {
                error:
                    ResponseError::NotCoordinator
                    | ResponseError::CoordinatorLoadInProgress
                    | ResponseError::CoordinatorNotAvailable,
                ..
            }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            result => break result?,
        }
    };
    if let Some(state) = state {
        return Err(ShareError::StartRefused {
            group: group.to_owned(),
            state: match current {
                Some(value) => format!("{state}; {AUTO_OFFSET_RESET}={value}"),
                None => state,
            },
        });
    }
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_GROUP)
            .with_resource_name(StrBytes::from_string(group.to_owned()))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(StrBytes::from_static_str(AUTO_OFFSET_RESET))
                    // 0: SET.
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str(start.as_str()))),
            ]),
    ]);
    let response = any.request(&request).await.map_err(wire_error)?;
    for r in response.responses {
        if let Some(error) = ResponseError::try_from_code(r.error_code) {
            return Err(ShareError::Refused {
                group: group.to_owned(),
                api: "IncrementalAlterConfigs",
                error,
                message: r.error_message.map(|m| m.to_string()),
            });
        }
    }
    info!(
        group,
        start = start.as_str(),
        "share group starts at {}",
        start.as_str()
    );
    Ok(())
}

/// The group's `share.auto.offset.reset` when set on the group.
async fn group_config(
    conn: &mut BrokerConnection,
    group: &str,
    timeout: Duration,
) -> Result<Option<String>, ShareError> {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_GROUP)
            .with_resource_name(StrBytes::from_string(group.to_owned()))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str(AUTO_OFFSET_RESET)])),
    ]);
    let response = tokio::time::timeout(timeout, conn.request(&request))
        .await
        .map_err(|_| ShareError::Unreachable {
            group: group.to_owned(),
            why: "DescribeConfigs: no answer".to_owned(),
        })?
        .map_err(|source| ShareError::Wire {
            group: group.to_owned(),
            source,
        })?;
    for r in response.results {
        if let Some(error) = ResponseError::try_from_code(r.error_code) {
            return Err(ShareError::Refused {
                group: group.to_owned(),
                api: "DescribeConfigs",
                error,
                message: r.error_message.map(|m| m.to_string()),
            });
        }
        for c in r.configs {
            // Source 8: GROUP_CONFIG, set on the group itself (5 is
            // Kafka's default).
            if c.name.as_str() == AUTO_OFFSET_RESET && c.config_source == 8 {
                return Ok(c.value.map(|v| v.to_string()));
            }
        }
    }
    Ok(None)
}

/// What the group has (a start offset of some partition), if anything.
async fn group_state(
    coordinator: &mut BrokerConnection,
    group: &str,
) -> Result<Option<String>, ShareError> {
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(None),
    ]);
    let response = coordinator
        .request(&request)
        .await
        .map_err(|source| ShareError::Wire {
            group: group.to_owned(),
            source,
        })?;
    for g in response.groups {
        match ResponseError::try_from_code(g.error_code) {
            None => {}
            Some(ResponseError::GroupIdNotFound) => return Ok(None),
            Some(error) => {
                return Err(ShareError::Refused {
                    group: group.to_owned(),
                    api: "DescribeShareGroupOffsets",
                    error,
                    message: g.error_message.map(|m| m.to_string()),
                });
            }
        }
        for t in g.topics {
            if let Some(p) = t.partitions.iter().find(|p| p.start_offset >= 0) {
                return Ok(Some(format!(
                    "{}/{} starts at offset {}",
                    t.topic_name.0, p.partition_index, p.start_offset
                )));
            }
        }
    }
    Ok(None)
}

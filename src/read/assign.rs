//! Which partitions a consumer reads: a [`Selection`] of topics (or
//! [patterns](super::pattern)), partitions and an [`Instance`]'s share of
//! them, checked against the cluster's metadata into one [`Assignment`]
//! per partition.

use std::str::FromStr;
use std::sync::Arc;

use rskafka::client::Client;

use crate::TopicPartition;
use crate::read::error::ConsumeError;

/// Partition `p` belongs to instance `index` of `count` when
/// `p % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    /// This instance, from 0.
    pub index: u32,
    /// How many instances share the partitions.
    pub count: u32,
}

/// An [`Instance`] that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid instance \"{input}\": expected i/N with 0 <= i < N, e.g. 0/2")]
pub struct InstanceError {
    input: String,
}

impl FromStr for Instance {
    type Err = InstanceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => Err(InstanceError {
                input: s.to_owned(),
            }),
        }
    }
}

impl Instance {
    /// Whether `partition` is this instance's.
    pub fn owns(self, partition: i32) -> bool {
        u32::try_from(partition).is_ok_and(|p| p % self.count == self.index)
    }
}

/// Which partitions of which topics to read: [`new`](Self::new) with the
/// topics, then `with_*` methods.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Selection {
    /// Topics; one beginning with `^` is a [pattern](super::pattern).
    pub topics: Vec<String>,
    /// Partitions (of every topic); `None` is all.
    pub partitions: Option<Vec<i32>>,
    /// Only this instance's share of them.
    pub instance: Option<Instance>,
}

impl Selection {
    /// Every partition of `topics` (a topic beginning with `^` is a
    /// pattern).
    pub fn new<T: Into<String>>(topics: impl IntoIterator<Item = T>) -> Self {
        Self {
            topics: topics.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Only these partitions of each topic.
    #[must_use]
    pub fn with_partitions(mut self, partitions: impl IntoIterator<Item = i32>) -> Self {
        self.partitions = Some(partitions.into_iter().collect());
        self
    }

    /// Only `instance`'s share of the partitions.
    #[must_use]
    pub fn with_instance(mut self, instance: Instance) -> Self {
        self.instance = Some(instance);
        self
    }
}

/// One partition to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Next offset to read, e.g. a committed one; `None` uses
    /// [`ConsumerConfig::start`](crate::read::ConsumerConfig::start).
    pub start: Option<i64>,
}

impl Assignment {
    /// The partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(Arc::clone(&self.topic), self.partition)
    }
}

/// The partitions `selection` names, checked against the cluster's
/// metadata, in topic then partition order.
///
/// # Errors
///
/// An unknown topic, a partition out of range, or nothing left to read.
pub async fn assign(
    client: &Client,
    selection: &Selection,
) -> Result<Vec<Assignment>, ConsumeError> {
    let named: Vec<&str> = selection
        .topics
        .iter()
        .filter(|t| !super::pattern::is_pattern(t))
        .map(String::as_str)
        .collect();
    let topics = topics_with(client, &named).await?;
    let names = super::pattern::resolve(&selection.topics, topics.iter().map(|t| t.name.as_str()))?;
    let mut assigned = Vec::new();
    for name in &names {
        let topic =
            topics
                .iter()
                .find(|t| &t.name == name)
                .ok_or_else(|| ConsumeError::UnknownTopic {
                    topic: name.clone(),
                })?;
        let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let wanted: Vec<i32> = match &selection.partitions {
            Some(list) => {
                for &p in list {
                    if !(0..count).contains(&p) {
                        return Err(ConsumeError::PartitionOutOfRange {
                            topic: name.clone(),
                            partition: p,
                            partitions: count,
                        });
                    }
                }
                let mut list = list.clone();
                list.sort_unstable();
                list.dedup();
                list
            }
            None => (0..count).collect(),
        };
        let topic: Arc<str> = Arc::from(name.as_str());
        assigned.extend(
            wanted
                .into_iter()
                .filter(|&p| selection.instance.is_none_or(|i| i.owns(p)))
                .map(|partition| Assignment {
                    topic: Arc::clone(&topic),
                    partition,
                    start: None,
                }),
        );
    }
    if assigned.is_empty() {
        return Err(ConsumeError::NothingAssigned {
            instance: selection.instance.map(|i| (i.index, i.count)),
        });
    }
    Ok(assigned)
}

/// How long a topic missing from a broker's metadata is asked for again
/// before it is taken as unknown: a topic just created (by this process,
/// as a group's internal topic, or by another) reaches every broker's
/// metadata a little after the controller's, and a broker that lags
/// answers without it.
pub const UNKNOWN_TOPIC_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The cluster's topics, asked again (every 200 ms, for at most
/// [`UNKNOWN_TOPIC_GRACE`]) while any of `names` is missing; the last
/// answer, which may still lack them.
pub(crate) async fn topics_with(
    client: &Client,
    names: &[&str],
) -> Result<Vec<rskafka::topic::Topic>, ConsumeError> {
    let deadline = tokio::time::Instant::now() + UNKNOWN_TOPIC_GRACE;
    loop {
        let topics = client
            .list_topics()
            .await
            .map_err(|e| ConsumeError::Metadata(e.into()))?;
        let missing = names.iter().any(|n| !topics.iter().any(|t| t.name == *n));
        if !missing || tokio::time::Instant::now() >= deadline {
            return Ok(topics);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_split_partitions() {
        let a: Instance = "0/2".parse().unwrap();
        let b: Instance = "1/2".parse().unwrap();
        for p in 0..7 {
            assert!(a.owns(p) != b.owns(p), "partition {p} has one owner");
        }
        assert!("2/2".parse::<Instance>().is_err());
        assert!("1/0".parse::<Instance>().is_err());
        assert!("1".parse::<Instance>().is_err());
    }
}

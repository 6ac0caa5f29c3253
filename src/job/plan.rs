//! What a reading job reads and how it keeps its place: the typed plans
//! the runner ([`super::runner`]) starts a job from, built by the binary
//! from its flags and by a library user with their builders.

use std::time::Duration;

use crate::kafka::membership::MembershipConfig;
use crate::offsets::StoreConfig;
use crate::read::{ConsumerConfig, Selection};

/// How often topic patterns are matched again by default (the Java
/// consumer's `metadata.max.age.ms` is five minutes).
pub const DEFAULT_PATTERN_REFRESH: Duration = Duration::from_secs(30);

/// What a reading job reads and how it keeps its place.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReadPlan {
    /// The topics and partitions.
    pub selection: Selection,
    /// How they are fetched, and where partitions without a commit start.
    pub consumer: ConsumerConfig,
    /// The group whose commits the job resumes from (and commits to).
    pub group: Option<GroupPlan>,
    /// Serve the metrics at this `HOST:PORT` while the job runs
    /// (`--metrics-addr`).
    pub metrics_addr: Option<String>,
    /// How often topic patterns are matched again: a topic that begins or
    /// ends matching starts the job again on the new set
    /// (`--pattern-refresh`).
    pub pattern_refresh: Duration,
}

impl ReadPlan {
    /// Reads `selection` with `consumer`, in no group.
    pub fn new(selection: Selection, consumer: ConsumerConfig) -> Self {
        Self {
            selection,
            consumer,
            group: None,
            metrics_addr: None,
            pattern_refresh: DEFAULT_PATTERN_REFRESH,
        }
    }

    /// Matches topic patterns again every `every`.
    #[must_use]
    pub fn with_pattern_refresh(mut self, every: Duration) -> Self {
        self.pattern_refresh = every;
        self
    }

    /// Resumes from, and commits to, `group`'s offsets.
    #[must_use]
    pub fn with_group(mut self, group: GroupPlan) -> Self {
        self.group = Some(group);
        self
    }

    /// Serves the metrics at `addr` while the job runs.
    #[must_use]
    pub fn with_metrics_addr(mut self, addr: Option<String>) -> Self {
        self.metrics_addr = addr;
        self
    }
}

/// A group's offsets for a reading job.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GroupPlan {
    /// The group.
    pub name: String,
    /// The offsets store (created when missing if `store.create`).
    pub store: StoreConfig,
    /// How the job commits; `None` reads the commits and never commits
    /// (`--no-commit`).
    pub commits: Option<CommitPlan>,
    /// Join the broker's group, whose coordinator shares the partitions
    /// among the members; `None` reads the selection's partitions.
    pub membership: Option<MembershipConfig>,
}

impl GroupPlan {
    /// `name`'s offsets in `store`, committed as `commits` says, the
    /// partitions chosen by the selection.
    pub fn new(name: impl Into<String>, store: StoreConfig, commits: Option<CommitPlan>) -> Self {
        Self {
            name: name.into(),
            store,
            commits,
            membership: None,
        }
    }

    /// As a member of the broker's group: its coordinator assigns the
    /// partitions.
    #[must_use]
    pub fn with_membership(mut self, membership: MembershipConfig) -> Self {
        self.membership = Some(membership);
        self
    }
}

/// How a job commits its positions.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CommitPlan {
    /// Time between commits (checkpoints).
    pub interval: Duration,
    /// Fail when another instance commits one of these partitions.
    pub exclusive: bool,
}

impl CommitPlan {
    /// Commits every `interval`, not exclusive.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            exclusive: false,
        }
    }

    /// With [`exclusive`](Self::exclusive) (`--exclusive`).
    #[must_use]
    pub fn with_exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }
}

impl Default for CommitPlan {
    /// Every 5 s, as `--commit-interval`'s default.
    fn default() -> Self {
        Self::new(Duration::from_secs(5))
    }
}

//! A [`Member`] kept alive on a task of its own, as the Java consumer's
//! heartbeat thread: it heartbeats on time however busy the job is, and
//! tells the job when its generation ends.
//!
//! The job's side is [`Membership`]: it reads a [`Generation`], works on
//! its partitions until [`ended`](Membership::ended) says a rebalance (or
//! fencing) came, finishes with them, and calls
//! [`released`](Membership::released) to rejoin and get the next one.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use super::{Lease, Member, MembershipConfig, MembershipError, Standing};
use crate::TopicPartition;
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::transaction::GroupGeneration;

/// One generation of the group, as this member sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The generation id.
    pub generation: i32,
    /// This member's id.
    pub member_id: String,
    /// The partitions this member reads in it, sorted.
    pub partitions: Vec<TopicPartition>,
}

enum Command {
    /// Mirror these positions to the broker's group offsets.
    Commit(Vec<(TopicPartition, i64)>),
    /// The job is done with its partitions: rejoin.
    Released,
    /// End the task, leaving the group ([`Member::leave`]) or as the
    /// Java consumer closes ([`Member::close`]: a static member stays).
    Stop {
        leave: bool,
        reply: oneshot::Sender<Result<(), MembershipError>>,
    },
}

enum Event {
    /// The next generation, after [`Command::Released`].
    Assigned(Generation),
    /// The current generation ended: a rebalance, or this member was
    /// fenced.
    Ended(Standing),
    /// The member failed for good.
    Failed(MembershipError),
}

/// The job's handle on its group membership.
#[derive(Debug)]
pub struct Membership {
    group: String,
    /// The member's group instance id (static membership).
    instance_id: Option<String>,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    lease: Lease,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Commit(_) => "Commit",
            Self::Released => "Released",
            Self::Stop { leave: true, .. } => "Leave",
            Self::Stop { leave: false, .. } => "Close",
        })
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Assigned(g) => write!(f, "Assigned({})", g.generation),
            Self::Ended(s) => write!(f, "Ended({s:?})"),
            Self::Failed(e) => write!(f, "Failed({e})"),
        }
    }
}

impl Membership {
    /// Joins the group, starts heartbeating, and returns the first
    /// generation.
    ///
    /// # Errors
    ///
    /// As [`Member::join`].
    pub async fn join(
        connection: &ConnectionConfig,
        config: MembershipConfig,
    ) -> Result<(Self, Generation), MembershipError> {
        let interval = config.heartbeat_interval;
        let group = config.group.clone();
        let instance_id = config.instance_id.clone();
        let member = Member::join(connection, config).await?;
        let first = generation(&member);
        let lease = member.lease();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(keep_alive(member, interval, commands_rx, events_tx));
        Ok((
            Self {
                group,
                instance_id,
                commands,
                events,
                lease,
                task,
            },
            first,
        ))
    }

    /// The member's lease: check it before writing for its partitions.
    pub fn lease(&self) -> Lease {
        self.lease.clone()
    }

    /// Resolves when the current generation ends:
    /// [`Standing::Rebalance`] (finish with the partitions: flush and
    /// commit, then [`released`](Self::released)) or [`Standing::Fenced`]
    /// (they are gone: commit nothing, then `released`).
    ///
    /// # Errors
    ///
    /// The member failed for good.
    pub async fn ended(&mut self) -> Result<Standing, MembershipError> {
        loop {
            match self.events.recv().await {
                Some(Event::Ended(standing)) => return Ok(standing),
                Some(Event::Failed(e)) => return Err(e),
                Some(Event::Assigned(g)) => {
                    debug!(
                        generation = g.generation,
                        "assignment while working; ignored"
                    );
                }
                None => return std::future::pending().await,
            }
        }
    }

    /// Rejoins after the job finished with its partitions, and returns
    /// the next generation.
    ///
    /// # Errors
    ///
    /// The member could not rejoin.
    pub async fn released(&mut self) -> Result<Generation, MembershipError> {
        let _ = self.commands.send(Command::Released);
        loop {
            match self.events.recv().await {
                Some(Event::Assigned(g)) => return Ok(g),
                Some(Event::Failed(e)) => return Err(e),
                Some(Event::Ended(_)) => {}
                None => return std::future::pending().await,
            }
        }
    }

    /// What the job holds while it works on `generation`: the lease, the
    /// way to mirror its commits to the broker, and its place in the
    /// group for commits inside transactions.
    pub fn link(&self, generation: &Generation) -> MemberLink {
        MemberLink {
            lease: self.lease.clone(),
            commands: self.commands.clone(),
            generation: Some(GroupGeneration {
                group: self.group.clone(),
                generation: generation.generation,
                member_id: generation.member_id.clone(),
                instance_id: self.instance_id.clone(),
            }),
        }
    }

    /// Leaves the group, so the others take over at once; a static
    /// member too.
    ///
    /// # Errors
    ///
    /// The coordinator could not be told.
    pub async fn leave(self) -> Result<(), MembershipError> {
        self.stop(true).await
    }

    /// Stops heartbeating as the Java consumer's `close()`: a dynamic
    /// member leaves the group; a static member stays in it until its
    /// session times out, so a restart with the same instance id takes
    /// the partitions back without a rebalance ([`Member::close`]).
    ///
    /// # Errors
    ///
    /// A dynamic member could not tell the coordinator.
    pub async fn close(self) -> Result<(), MembershipError> {
        self.stop(false).await
    }

    async fn stop(self, leave: bool) -> Result<(), MembershipError> {
        let (reply, answer) = oneshot::channel();
        let _ = self.commands.send(Command::Stop { leave, reply });
        let left = answer.await.unwrap_or(Ok(()));
        let _ = self.task.await;
        left
    }
}

/// A job's link to its member: may it still write for its partitions,
/// and where its commits are mirrored.
#[derive(Debug, Clone)]
pub struct MemberLink {
    lease: Lease,
    commands: mpsc::UnboundedSender<Command>,
    generation: Option<GroupGeneration>,
}

impl MemberLink {
    /// Whether the member still holds its partitions: check before
    /// writing or committing for them.
    pub fn valid(&self) -> bool {
        self.lease.valid()
    }

    /// The member's lease on its partitions.
    pub fn lease(&self) -> Lease {
        self.lease.clone()
    }

    /// A link holding `lease` and mirroring nowhere, for tests of the jobs.
    #[cfg(test)]
    pub(crate) fn with_lease(lease: Lease) -> Self {
        let (commands, _) = mpsc::unbounded_channel();
        Self {
            lease,
            commands,
            generation: None,
        }
    }

    /// The group, generation and member id the job works under, for
    /// offsets committed inside a transaction; `None` in tests.
    pub fn generation(&self) -> Option<&GroupGeneration> {
        self.generation.as_ref()
    }

    /// Mirrors committed positions to the broker's group offsets (for
    /// `kafka-consumer-groups` and lag exporters), in the background.
    pub fn mirror<'a>(&self, positions: impl IntoIterator<Item = (&'a TopicPartition, &'a i64)>) {
        let offsets = positions
            .into_iter()
            .map(|(tp, &offset)| (tp.clone(), offset))
            .collect();
        let _ = self.commands.send(Command::Commit(offsets));
    }
}

fn generation(member: &Member) -> Generation {
    Generation {
        generation: member.generation(),
        member_id: member.member_id().to_owned(),
        partitions: member.assignment().to_vec(),
    }
}

/// The member's task: heartbeats every `interval`, mirrors commits,
/// rejoins when released, leaves or closes when told (closes when the
/// handle is gone).
async fn keep_alive(
    mut member: Member,
    interval: std::time::Duration,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.reset();
    // Whether the job was told its generation ended and has not released
    // its partitions yet.
    let mut ended = false;
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Commit(offsets)) => {
                    match member.commit(&offsets).await {
                        Ok(Standing::Member) => {}
                        Ok(standing) => end(&events, &mut ended, standing),
                        // Another process holds the instance id: the job
                        // must stop, and this member is done.
                        Err(e @ MembershipError::FencedInstance { .. }) => {
                            let _ = events.send(Event::Failed(e));
                            return;
                        }
                        Err(e) => warn!(error = %crate::ErrorChain(&e), "mirroring the commit to the group failed"),
                    }
                }
                Some(Command::Released) => {
                    ended = false;
                    let event = match member.rejoin().await {
                        Ok(()) => Event::Assigned(generation(&member)),
                        Err(e) => Event::Failed(e),
                    };
                    let _ = events.send(event);
                    ticks.reset();
                }
                Some(Command::Stop { leave, reply }) => {
                    let stopped = match leave {
                        true => member.leave().await,
                        false => member.close().await,
                    };
                    let _ = reply.send(stopped);
                    return;
                }
                None => {
                    if let Err(e) = member.close().await {
                        debug!(error = %crate::ErrorChain(&e), "leaving the group failed");
                    }
                    return;
                }
            },
            _ = ticks.tick() => match member.heartbeat().await {
                Ok(Standing::Member) => {}
                Ok(standing) => end(&events, &mut ended, standing),
                Err(e) => {
                    let done = matches!(e, MembershipError::FencedInstance { .. });
                    let _ = events.send(Event::Failed(e));
                    if done {
                        return;
                    }
                }
            },
        }
    }
}

/// Tells the job its generation ended, once per generation; fencing is
/// told even after a rebalance was, since it takes the commit away.
fn end(events: &mpsc::UnboundedSender<Event>, ended: &mut bool, standing: Standing) {
    if !*ended || standing == Standing::Fenced {
        *ended = true;
        let _ = events.send(Event::Ended(standing));
    }
}

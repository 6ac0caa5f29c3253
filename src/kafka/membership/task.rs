//! A [`Member`] kept alive on a task of its own, as the Java consumer's
//! heartbeat thread: it heartbeats on time however busy the job is, and
//! tells the job when its generation ends.
//!
//! The job's side is [`Membership`]: it reads a [`Generation`], works on
//! its partitions until [`ended`](Membership::ended) says a rebalance (or
//! fencing) came, finishes with them, and calls
//! [`released`](Membership::released) to rejoin and get the next one.
//!
//! In a cooperative generation (`cooperative-sticky`, KIP-429) the task
//! rejoins by itself when a rebalance starts, while the job reads on; the
//! job hears `ended` only when its partitions changed, once the new
//! assignment is known, and `released` hands it that assignment at once.
//! A member that gave partitions up rejoins once more after the job
//! finished with them, so that their new owner gets them.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

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
    /// Mirror these positions to the broker's group offsets, stamped
    /// with the time weir committed them (not the time the mirror is
    /// sent: a mirror held up behind a rejoin must not look newer than a
    /// later commit of weir's whose own mirror is refused).
    Commit(Vec<(TopicPartition, i64)>, i64),
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
    /// A cooperative rebalance changed the job's partitions: this is the
    /// new assignment, known already (the job finishes with what it gave
    /// up, then [`Command::Released`]).
    Changed(Generation),
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
    current: CurrentGeneration,
    /// The assignment a cooperative rebalance changed to, once
    /// [`ended`](Self::ended) said so.
    changed: Option<Generation>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Commit(..) => "Commit",
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
            Self::Changed(g) => write!(f, "Changed({})", g.generation),
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
        let member = Member::join(connection, config).await?;
        Ok(Self::start(member))
    }

    /// [`join`](Self::join), unless `stop` completes first: then a member
    /// that the coordinator gave an id closes as the Java consumer does
    /// (a dynamic one sends LeaveGroup, so the group stops waiting for
    /// it), and `stop`'s output is returned. While the coordinator holds
    /// the join (the other members have up to their rebalance timeout to
    /// rejoin), it says so every ten seconds.
    ///
    /// # Errors
    ///
    /// As [`Member::join`].
    pub async fn join_until<S: std::future::Future>(
        connection: &ConnectionConfig,
        config: MembershipConfig,
        stop: S,
    ) -> Result<Result<(Self, Generation), S::Output>, MembershipError> {
        let group = config.group.clone();
        let waiting_for = match config.protocol {
            super::GroupProtocol::Classic => {
                "the coordinator waits for the group's members to rejoin (each has up to its rebalance timeout, --max-poll-interval)"
            }
            super::GroupProtocol::Consumer => {
                "the coordinator has not taken this member in yet (consumer protocol)"
            }
        };
        let mut member = Member::new(connection, config)?;
        let mut stop = std::pin::pin!(stop);
        let stopped = {
            let mut joining = std::pin::pin!(member.rejoin());
            let every = std::time::Duration::from_secs(10);
            let mut waiting = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let started = std::time::Instant::now();
            loop {
                tokio::select! {
                    joined = &mut joining => {
                        joined?;
                        break None;
                    }
                    reason = &mut stop => break Some(reason),
                    _ = waiting.tick() => info!(
                        group = group.as_str(),
                        waited = %humantime::format_duration(std::time::Duration::from_secs(started.elapsed().as_secs())),
                        "still joining: {waiting_for}"
                    ),
                }
            }
        };
        match stopped {
            None => Ok(Ok(Self::start(member))),
            Some(reason) => {
                member.disconnect();
                if let Err(e) = member.close().await {
                    warn!(group = group.as_str(), error = %crate::ErrorChain(&e), "leaving the group failed");
                }
                Ok(Err(reason))
            }
        }
    }

    /// Starts heartbeating for `member`, just joined: its first
    /// generation.
    fn start(member: Member) -> (Self, Generation) {
        let interval = member.heartbeat_interval();
        let group = member.group().to_owned();
        let instance_id = member.instance_id().map(str::to_owned);
        let first = generation(&member);
        let lease = member.lease();
        let current = Arc::new(Mutex::new(GroupGeneration {
            group: group.clone(),
            generation: first.generation,
            member_id: first.member_id.clone(),
            instance_id: instance_id.clone(),
        }));
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(keep_alive(
            member,
            interval,
            commands_rx,
            events_tx,
            current.clone(),
        ));
        (
            Self {
                group,
                instance_id,
                commands,
                events,
                lease,
                current,
                changed: None,
                task,
            },
            first,
        )
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The member's lease: check it before writing for its partitions.
    pub fn lease(&self) -> Lease {
        self.lease.clone()
    }

    /// Resolves when the current generation ends:
    /// [`Standing::Rebalance`] (finish with the partitions: flush and
    /// commit, then [`released`](Self::released)) or [`Standing::Fenced`]
    /// (they are gone: commit nothing, then `released`). In a cooperative
    /// generation a rebalance resolves it only when the job's partitions
    /// change, once the new assignment is known.
    ///
    /// # Errors
    ///
    /// The member failed for good.
    pub async fn ended(&mut self) -> Result<Standing, MembershipError> {
        loop {
            match self.events.recv().await {
                Some(Event::Ended(standing)) => return Ok(standing),
                Some(Event::Changed(next)) => {
                    self.changed = Some(next);
                    return Ok(Standing::Rebalance);
                }
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

    /// After [`ended`](Self::ended) said [`Standing::Rebalance`] in a
    /// cooperative generation: the new assignment, known already. The job
    /// may finish with only the partitions it gives up and read on with
    /// the rest, then [`released`](Self::released) hands it the same.
    pub fn changed(&self) -> Option<&Generation> {
        self.changed.as_ref()
    }

    /// Rejoins after the job finished with its partitions, and returns
    /// the next generation.
    ///
    /// # Errors
    ///
    /// The member could not rejoin.
    pub async fn released(&mut self) -> Result<Generation, MembershipError> {
        self.changed = None;
        let _ = self.commands.send(Command::Released);
        loop {
            match self.events.recv().await {
                Some(Event::Assigned(g)) => return Ok(g),
                Some(Event::Failed(e)) => return Err(e),
                Some(Event::Ended(_) | Event::Changed(_)) => {}
                None => return std::future::pending().await,
            }
        }
    }

    /// What the job holds while it works on `generation`: the lease, the
    /// way to mirror its commits to the broker, and its place in the
    /// group for commits inside transactions (renewed by cooperative
    /// rebalances that leave the job's partitions as they are).
    pub fn link(&self, generation: &Generation) -> MemberLink {
        {
            let mut current = self
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            current.generation = generation.generation;
            current.member_id.clone_from(&generation.member_id);
            current.group.clone_from(&self.group);
            current.instance_id.clone_from(&self.instance_id);
        }
        MemberLink {
            lease: self.lease.clone(),
            commands: self.commands.clone(),
            generation: Some(self.current.clone()),
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
    generation: Option<CurrentGeneration>,
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

    /// The group, generation and member id the job works under now, for
    /// offsets committed inside a transaction; `None` in tests.
    pub fn generation(&self) -> Option<GroupGeneration> {
        self.generation.as_ref().map(|current| {
            current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
    }

    /// Mirrors committed positions to the broker's group offsets (for
    /// `kafka-consumer-groups` and lag exporters), in the background,
    /// stamped with the time of this call: right after weir's commit.
    pub fn mirror<'a>(&self, positions: impl IntoIterator<Item = (&'a TopicPartition, &'a i64)>) {
        let offsets = positions
            .into_iter()
            .map(|(tp, &offset)| (tp.clone(), offset))
            .collect();
        let at = crate::timestamp::now_ms();
        let _ = self.commands.send(Command::Commit(offsets, at));
    }
}

fn generation(member: &Member) -> Generation {
    Generation {
        generation: member.generation(),
        member_id: member.member_id().to_owned(),
        partitions: member.assignment().to_vec(),
    }
}

/// The member's task: heartbeats every `interval` (on the consumer
/// protocol, the broker's latest), mirrors commits,
/// rejoins when released (or, in a cooperative generation, as soon as a
/// rebalance starts), leaves or closes when told (closes when the handle
/// is gone).
async fn keep_alive(
    member: Member,
    interval: std::time::Duration,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    current: CurrentGeneration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.reset();
    let mut task = Task {
        running: member.assignment().to_vec(),
        member,
        events,
        current,
        told: false,
        rejoin: false,
    };
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Commit(offsets, at)) => {
                    match task.member.commit(&offsets, at).await {
                        Ok(Standing::Member) => {}
                        Ok(standing) => task.ended(standing).await,
                        // Another process holds the instance id: the job
                        // must stop, and this member is done.
                        Err(e @ MembershipError::FencedInstance { .. }) => {
                            let _ = task.events.send(Event::Failed(e));
                            return;
                        }
                        Err(e) => warn!(error = %crate::ErrorChain(&e), "mirroring the commit to the group failed"),
                    }
                }
                Some(Command::Released) => {
                    task.released().await;
                    ticks.reset();
                }
                Some(Command::Stop { leave, reply }) => {
                    let stopped = match leave {
                        true => task.member.leave().await,
                        false => task.member.close().await,
                    };
                    let _ = reply.send(stopped);
                    return;
                }
                None => {
                    if let Err(e) = task.member.close().await {
                        debug!(error = %crate::ErrorChain(&e), "leaving the group failed");
                    }
                    return;
                }
            },
            _ = ticks.tick() => match task.member.heartbeat().await {
                Ok(Standing::Member) => {}
                Ok(standing) => {
                    task.ended(standing).await;
                    ticks.reset();
                }
                Err(e) => {
                    let done = matches!(e, MembershipError::FencedInstance { .. });
                    let _ = task.events.send(Event::Failed(e));
                    if done {
                        return;
                    }
                }
            },
        }
        // KIP-848: the broker's answers say how often to heartbeat.
        super::broker_timing::follow(&mut ticks, &task.member);
    }
}

/// The generation the job's commits inside transactions name: cooperative
/// rebalances renew it while the job runs on.
type CurrentGeneration = Arc<Mutex<GroupGeneration>>;

/// The member's task's state.
struct Task {
    member: Member,
    events: mpsc::UnboundedSender<Event>,
    current: CurrentGeneration,
    /// The partitions the job runs on (or was last handed).
    running: Vec<TopicPartition>,
    /// Whether the job was told its run ended and has not released its
    /// partitions yet.
    told: bool,
    /// Whether to rejoin once the job released them: it gave up some in a
    /// cooperative rebalance, or another rebalance started meanwhile.
    rejoin: bool,
}

impl Task {
    /// A heartbeat or commit said the generation ended.
    async fn ended(&mut self, standing: Standing) {
        if standing == Standing::Rebalance && self.member.is_cooperative() {
            // KIP-429: the member rejoins at once, owning what it owns,
            // and the job runs on; it hears of the rebalance only if its
            // partitions change. Not while the job is still finishing
            // with partitions it gave up: its commit must land before
            // their next owner can be handed them.
            match self.told {
                true => self.rejoin = true,
                false => self.cooperative_join().await,
            }
            return;
        }
        // Eager, or fenced: the job finishes with everything (or drops
        // it), then releases, and only then does the member rejoin.
        // Fencing is told even after a rebalance was, since it takes the
        // commit away.
        if !self.told || standing == Standing::Fenced {
            self.told = true;
            let _ = self.events.send(Event::Ended(standing));
        }
    }

    /// The job finished with its partitions.
    async fn released(&mut self) {
        let told = std::mem::replace(&mut self.told, false);
        if told && self.member.is_cooperative() {
            // The next assignment is known already: the job goes on with
            // it at once, and the member rejoins afterwards if it gave
            // partitions up (their commit is mirrored by now: commands are
            // taken in order).
            self.running = self.member.assignment().to_vec();
            let _ = self.events.send(Event::Assigned(generation(&self.member)));
            if std::mem::take(&mut self.rejoin) {
                self.cooperative_join().await;
            }
            return;
        }
        // Eager, fenced, or the job stopped by itself (its output was
        // fenced, its lease lapsed): the member rejoins before the job
        // goes on.
        self.rejoin = false;
        let mut joined = self.member.rejoin().await;
        if joined.is_ok() && self.member.is_cooperative() && !self.member.revoked().is_empty() {
            // The job runs nothing now: what this join took away is
            // finished with, and the follow-up hands it to its new owner.
            joined = self.member.rejoin().await;
        }
        let event = match joined {
            Ok(()) => {
                self.renew();
                self.running = self.member.assignment().to_vec();
                Event::Assigned(generation(&self.member))
            }
            Err(e) => Event::Failed(e),
        };
        let _ = self.events.send(event);
    }

    /// Rejoins while the job runs on; tells the job only when its
    /// partitions changed. A member that gave partitions up rejoins once
    /// more after the job finished with them ([`released`](Self::released)).
    async fn cooperative_join(&mut self) {
        if let Err(e) = self.member.rejoin().await {
            let _ = self.events.send(Event::Failed(e));
            return;
        }
        self.renew();
        let assigned = self.member.assignment();
        let revoked = self.member.revoked();
        let gained: Vec<&TopicPartition> = assigned
            .iter()
            .filter(|tp| self.running.binary_search(tp).is_err())
            .collect();
        let group = self.member.group().to_owned();
        if assigned == self.running.as_slice() {
            info!(
                group = group.as_str(),
                generation = self.member.generation(),
                partitions = assigned.len(),
                "cooperative rebalance: assignment unchanged, reading on"
            );
            return;
        }
        let kept = assigned.len() - gained.len();
        info!(
            group = group.as_str(),
            generation = self.member.generation(),
            kept,
            revoked = %list(revoked),
            gained = %list(gained.iter().copied()),
            "cooperative rebalance: assignment changed"
        );
        self.rejoin = !revoked.is_empty();
        self.told = true;
        let _ = self.events.send(Event::Changed(generation(&self.member)));
    }

    /// Names the member's current generation for the job's commits.
    fn renew(&self) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current.generation = self.member.generation();
        current.member_id = self.member.member_id().to_owned();
    }
}

/// `t-0,t-3` for the log.
fn list<'a>(partitions: impl IntoIterator<Item = &'a TopicPartition>) -> String {
    let names: Vec<String> = partitions
        .into_iter()
        .map(|tp| format!("{}-{}", tp.topic, tp.partition))
        .collect();
    match names.is_empty() {
        true => "none".to_owned(),
        false => names.join(","),
    }
}

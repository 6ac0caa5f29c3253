//! The per-partition reader every job uses: which partitions
//! ([`assign`](mod@assign)), where each starts and stops ([`position`] as
//! written, [`start`] resolved against the watermarks), one fetch task per
//! partition ([`fetch`], behind the [`PartitionFetch`] seam) and the tasks
//! merged into one bounded stream ([`consumer`]). Its config
//! ([`config`]), errors ([`error`]) and events ([`event`]) have files of
//! their own, so the files that use them import them and not each other.
//!
//! `weir consume`, `count`, `agg`, `pipe`, `bench` and the offsets store
//! all read through it; it knows nothing of jobs, groups or outputs.

pub mod assign;
pub mod config;
pub mod consumer;
pub mod error;
pub mod event;
#[cfg(test)]
pub(crate) mod fake_log;
pub mod fetch;
pub mod pattern;
pub mod position;
pub mod start;

pub use assign::{Assignment, Instance, InstanceError, Selection, assign};
pub use config::ConsumerConfig;
pub use consumer::Consumer;
pub use error::{ConsumeError, FetchError, FetchFailure};
pub use event::ConsumerEvent;
pub use fetch::{Fetched, PartitionFetch, PartitionReader};
pub use position::{PositionError, StartOffset, TimeError, Until};
pub use start::{PartitionPosition, resolve_start};

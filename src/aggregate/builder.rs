//! Builders for a count: [`CountConfig`] from its `Default` (a running
//! count per record key) and [`WindowSpec`] from the windows' kind, so a
//! library user names only what differs.

use std::time::Duration;

use super::{
    AggPlan, AggSpec, CountConfig, EmitMode, Extractor, WindowError, WindowSpec, Windowing,
};

/// Default time between checkpoints, as `--commit-interval`.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

impl Default for CountConfig {
    /// Records counted per key, running totals emitted as they change,
    /// a checkpoint every [`DEFAULT_CHECKPOINT_INTERVAL`].
    fn default() -> Self {
        Self {
            by: vec![Extractor::Key],
            aggs: AggPlan::new(Vec::new()),
            windowing: Windowing::tumbling(None, 0),
            emit: EmitMode::Updates,
            count: None,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            idle_timeout: None,
        }
    }
}

impl CountConfig {
    /// Grouped under `by` (several: a composite key).
    #[must_use]
    pub fn with_by(mut self, by: impl IntoIterator<Item = Extractor>) -> Self {
        self.by = by.into_iter().collect();
        self
    }

    /// With these aggregates per (window, key) instead of `count` alone.
    #[must_use]
    pub fn with_aggs(mut self, aggs: impl IntoIterator<Item = AggSpec>) -> Self {
        self.aggs = AggPlan::new(aggs.into_iter().collect());
        self
    }

    /// In the windows `windows` asks for, emitted as it says.
    ///
    /// # Errors
    ///
    /// Windows that do not go together ([`WindowSpec::check`]).
    pub fn with_windows(mut self, windows: WindowSpec) -> Result<Self, WindowError> {
        let (windowing, emit) = windows.check()?;
        self.windowing = windowing;
        self.emit = emit;
        self.idle_timeout = windows.idle_timeout;
        Ok(self)
    }

    /// Stops after `records` records.
    #[must_use]
    pub fn with_count(mut self, records: u64) -> Self {
        self.count = Some(records);
        self
    }

    /// With [`checkpoint_interval`](Self::checkpoint_interval).
    #[must_use]
    pub fn with_checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }
}

impl WindowSpec {
    /// Tumbling windows of `size`, aligned to the epoch.
    pub fn tumbling(size: Duration) -> Self {
        Self {
            window: Some(size),
            ..Self::default()
        }
    }

    /// Session windows per key, closed after `gap` without a record.
    pub fn sessions(gap: Duration) -> Self {
        Self {
            session_gap: Some(gap),
            ..Self::default()
        }
    }

    /// Hopping: a window of the tumbling size starts every `hop`.
    #[must_use]
    pub fn with_hop(mut self, hop: Duration) -> Self {
        self.hop = Some(hop);
        self
    }

    /// With [`grace`](Self::grace).
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// With [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// With [`emit`](Self::emit).
    #[must_use]
    pub fn with_emit(mut self, emit: EmitMode) -> Self {
        self.emit = Some(emit);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_windowed_count_by_a_field_is_built_as_the_cli_builds_it() {
        let config = CountConfig::default()
            .with_by(["json:/user".parse::<Extractor>().unwrap()])
            .with_windows(
                WindowSpec::tumbling(Duration::from_secs(60)).with_grace(Duration::from_secs(5)),
            )
            .unwrap();
        assert_eq!(config.windowing.size_ms, Some(60_000));
        assert_eq!(config.windowing.grace_ms, 5_000);
        assert_eq!(config.emit, EmitMode::Final);
        assert!(config.aggs.is_count());
        let refused = CountConfig::default()
            .with_windows(WindowSpec::default().with_grace(Duration::from_secs(1)));
        assert!(matches!(
            refused,
            Err(WindowError::NeedsWindows { flag: "grace" })
        ));
    }
}

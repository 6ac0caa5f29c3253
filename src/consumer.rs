//! Explicit per-partition consumers.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The topic it was read from.
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// Key; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// Value; `None` is a null value (tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: BTreeMap<String, Vec<u8>>,
}

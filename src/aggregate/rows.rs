//! The rows a count emits: per window and key, summed across the
//! partitions a run holds, and the boundary before which windows have
//! closed everywhere.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{Part, Row, TOTALS, Windowing};

/// Windows ending at or before the returned time have closed in every
/// partition that holds windows back; `None` when one of those has no
/// record yet, when none holds windows back, or without windows.
/// Partitions idle from the start, and with `quiet_since` those without a
/// record since then, hold nothing back.
pub(super) fn close_boundary<'a>(
    parts: impl Iterator<Item = &'a Part>,
    windowing: &Windowing,
    quiet_since: Option<Instant>,
) -> Option<i64> {
    windowing.size_ms?;
    let mut boundary: Option<i64> = None;
    for part in parts {
        if part.idle || quiet_since.is_some_and(|q| part.last_record <= q) {
            continue;
        }
        let b = part.counts.closable_before(windowing)?;
        boundary = Some(boundary.map_or(b, |x| x.min(b)));
    }
    boundary
}

/// Every key of the window starting at `start`, summed across partitions,
/// largest count first.
pub(super) fn window_rows<'a>(
    parts: impl Iterator<Item = &'a Part>,
    windowing: &Windowing,
    start: i64,
) -> Vec<Row> {
    let mut sums: HashMap<Option<&str>, u64> = HashMap::new();
    for part in parts {
        if let Some(counts) = part.counts.windows().get(&start) {
            for (key, n) in counts.iter() {
                *sums.entry(key).or_default() += n;
            }
        }
    }
    let mut rows: Vec<Row> = sums
        .into_iter()
        .map(|(key, count)| row(windowing, start, key.map(str::to_owned), count))
        .collect();
    sort_rows(&mut rows);
    rows
}

/// The (window, key) counts that changed in any partition since the last
/// call, summed across partitions.
pub(super) fn changed_rows<'a>(
    parts: impl Iterator<Item = &'a mut Part>,
    windowing: &Windowing,
) -> Vec<Row> {
    let parts: Vec<&mut Part> = parts.collect();
    let mut changed = Vec::new();
    let mut parts = parts;
    for part in &mut parts {
        part.counts.take_changed(&mut changed);
    }
    changed.sort();
    changed.dedup();
    let mut rows: Vec<Row> = changed
        .into_iter()
        .map(|(start, key)| {
            let count = parts
                .iter()
                .map(|p| p.counts.get(start, key.as_deref()))
                .sum();
            row(windowing, start, key.map(String::from), count)
        })
        .collect();
    sort_rows(&mut rows);
    rows
}

fn row(windowing: &Windowing, start: i64, key: Option<String>, count: u64) -> Row {
    Row {
        window_start: (start != TOTALS).then_some(start),
        window_end: windowing.end(start),
        key,
        count,
    }
}

fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        a.window_start
            .cmp(&b.window_start)
            .then(b.count.cmp(&a.count))
            .then_with(|| a.key.cmp(&b.key))
    });
}

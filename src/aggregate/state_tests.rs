//! Unit tests of a partition's aggregates: windows, sessions, late
//! records, and the checkpoint form.

use super::*;

const MINUTE: i64 = 60_000;

fn windowed(grace_ms: i64) -> Windowing {
    Windowing::tumbling(Some(MINUTE), grace_ms)
}

fn count() -> AggPlan {
    AggPlan::new(Vec::new())
}

/// Applies a record of `count()` (no fields to read).
fn apply(c: &mut PartitionCounts, w: &Windowing, ts: i64, key: Option<&str>) -> Applied {
    c.apply(w, &count(), ts, key, &[])
}

#[test]
fn windows_are_aligned_to_the_epoch() {
    let w = windowed(0);
    assert_eq!(w.start(0), 0);
    assert_eq!(w.start(MINUTE - 1), 0);
    assert_eq!(w.start(MINUTE), MINUTE);
    assert_eq!(w.start(-1), -MINUTE);
    assert_eq!(w.end(MINUTE), Some(2 * MINUTE));
    assert_eq!(w.starts(MINUTE + 5).collect::<Vec<_>>(), [MINUTE]);
    let totals = Windowing::tumbling(None, 0);
    assert_eq!(totals.start(123), TOTALS);
    assert_eq!(totals.end(TOTALS), None);
    assert_eq!(totals.starts(123).collect::<Vec<_>>(), [TOTALS]);
}

#[test]
fn hopping_windows_hold_every_record_of_their_length() {
    // Five minutes every minute: a record is in five windows.
    let w = Windowing {
        size_ms: Some(5 * MINUTE),
        hop_ms: Some(MINUTE),
        grace_ms: 0,
        session_gap_ms: None,
    };
    let starts: Vec<i64> = w.starts(7 * MINUTE + 30_000).collect();
    assert_eq!(starts, [3, 4, 5, 6, 7].map(|m| m * MINUTE));
    // On a boundary: the window ending there does not hold it.
    let starts: Vec<i64> = w.starts(7 * MINUTE).collect();
    assert_eq!(starts, [3, 4, 5, 6, 7].map(|m| m * MINUTE));
    let starts: Vec<i64> = w.starts(-1).collect();
    assert_eq!(starts, [-5, -4, -3, -2, -1].map(|m| m * MINUTE));
    // A hop that does not divide the length: 5 s every 2 s.
    let odd = Windowing {
        size_ms: Some(5_000),
        hop_ms: Some(2_000),
        grace_ms: 0,
        session_gap_ms: None,
    };
    assert_eq!(odd.starts(4_500).collect::<Vec<_>>(), [0, 2_000, 4_000]);
    assert_eq!(odd.starts(5_000).collect::<Vec<_>>(), [2_000, 4_000]);
    // Hop longer than the length: gaps that hold nothing.
    let sparse = Windowing {
        size_ms: Some(1_000),
        hop_ms: Some(3_000),
        grace_ms: 0,
        session_gap_ms: None,
    };
    assert_eq!(sparse.starts(3_500).collect::<Vec<_>>(), [3_000]);
    assert_eq!(sparse.starts(1_500).count(), 0);
    // A record in a closed window and an open one is late once.
    let mut c = PartitionCounts::default();
    apply(&mut c, &w, 10 * MINUTE, Some("a"));
    assert_eq!(apply(&mut c, &w, 6 * MINUTE, Some("a")), Applied::Late);
    assert_eq!(c.late(), 1);
    assert_eq!(c.get(6 * MINUTE, Some("a")), 2);
    assert_eq!(c.get(5 * MINUTE, Some("a")), 0);
}

#[test]
fn records_behind_the_watermark_past_grace_are_late() {
    let w = windowed(10_000);
    let mut c = PartitionCounts::default();
    assert_eq!(apply(&mut c, &w, 5_000, Some("a")), Applied::Counted);
    assert_eq!(
        apply(&mut c, &w, MINUTE + 5_000, Some("a")),
        Applied::Counted
    );
    // Watermark 65 s minus 10 s grace = 55 s: window [0, 60 s) is open.
    assert_eq!(apply(&mut c, &w, 59_000, Some("b")), Applied::Counted);
    assert_eq!(apply(&mut c, &w, MINUTE + 10_000, None), Applied::Counted);
    // Now 70 s - 10 s = 60 s: window [0, 60 s) has closed.
    assert_eq!(apply(&mut c, &w, 1_000, Some("a")), Applied::Late);
    assert_eq!(c.late(), 1);
    assert_eq!(c.get(0, Some("a")), 1);
    assert_eq!(c.get(0, Some("b")), 1);
    assert_eq!(c.get(MINUTE, None), 1);
    let mut changed = Vec::new();
    c.take_changed(&mut changed);
    changed.sort();
    assert_eq!(
        changed,
        [
            (0, Some("a".into())),
            (0, Some("b".into())),
            (MINUTE, None),
            (MINUTE, Some("a".into()))
        ]
    );
    changed.clear();
    c.take_changed(&mut changed);
    assert!(changed.is_empty());
    assert_eq!(c.closable_before(&w), Some(MINUTE));
}

#[test]
fn closing_drops_windows_and_makes_their_records_late() {
    let w = windowed(0);
    let mut c = PartitionCounts::default();
    apply(&mut c, &w, 1, Some("a"));
    apply(&mut c, &w, MINUTE + 1, Some("a"));
    assert!(c.close_before(&w, MINUTE));
    assert!(!c.close_before(&w, MINUTE));
    assert_eq!(c.windows().keys().copied().collect::<Vec<_>>(), [MINUTE]);
    let mut empty = PartitionCounts::default();
    empty.close_before(&w, MINUTE);
    // A partition without records of its own follows the others.
    assert_eq!(apply(&mut empty, &w, 30_000, Some("x")), Applied::Late);
    assert_eq!(apply(&mut empty, &w, MINUTE, Some("x")), Applied::Counted);
}

#[test]
fn totals_never_close() {
    let w = Windowing::tumbling(None, 0);
    let mut c = PartitionCounts::default();
    apply(&mut c, &w, 100, Some("a"));
    apply(&mut c, &w, 1, Some("a"));
    assert_eq!(c.get(TOTALS, Some("a")), 2);
    assert_eq!(c.late(), 0);
}

#[test]
fn the_checkpoint_form_round_trips() {
    let w = windowed(0);
    let mut c = PartitionCounts::default();
    apply(&mut c, &w, 1, Some("a \"quoted\" ü"));
    apply(&mut c, &w, 2, None);
    apply(&mut c, &w, MINUTE * 3, Some("b"));
    c.close_before(&w, -5);
    c.take_changed(&mut Vec::new());
    let json = c.to_json(&count());
    let back = PartitionCounts::from_json(&json, &count()).unwrap();
    assert_eq!(back, c);
    let totals = Windowing::tumbling(None, 0);
    let mut t = PartitionCounts::default();
    apply(&mut t, &totals, 1, Some("k"));
    t.take_changed(&mut Vec::new());
    assert_eq!(
        PartitionCounts::from_json(&t.to_json(&count()), &count()).unwrap(),
        t
    );
    assert!(PartitionCounts::from_json(b"{}", &count()).is_err());
    assert!(
        PartitionCounts::from_json(
            br#"{"v":9,"watermark":null,"closed_before":null,"late":0,"windows":[]}"#,
            &count()
        )
        .is_err()
    );
    // `weir count`'s own version 1 reads as counts.
    let v1 = br#"{"v":1,"watermark":5,"closed_before":null,"late":2,"windows":[[0,[["a",3],[null,1]]]]}"#;
    let read = PartitionCounts::from_json(v1, &count()).unwrap();
    assert_eq!(
        (read.get(0, Some("a")), read.get(0, None), read.late()),
        (3, 1, 2)
    );
}

#[test]
fn sessions_join_records_within_the_gap_and_merge_when_they_meet() {
    let w = Windowing {
        size_ms: None,
        hop_ms: None,
        grace_ms: 20,
        session_gap_ms: Some(10),
    };
    let mut c = PartitionCounts::default();
    for ts in [100, 105, 130, 150, 140] {
        apply(&mut c, &w, ts, Some("u"));
    }
    apply(&mut c, &w, 135, Some("v"));
    // 100 and 105 are one session; 130 and 150 were two until 140
    // joined them (130 + 10 >= 140 >= 150 - 10).
    let spans = |c: &PartitionCounts, key: &str| -> Vec<(i64, i64, u64)> {
        c.sessions()[&Some(Box::from(key))]
            .iter()
            .map(|s| (s.start, s.end, s.aggs.records))
            .collect()
    };
    assert_eq!(spans(&c, "u"), [(100, 105, 2), (130, 150, 3)]);
    assert_eq!(spans(&c, "v"), [(135, 135, 1)]);
    // The watermark is 150: a record before 130 (grace 20) is late.
    assert_eq!(apply(&mut c, &w, 129, Some("u")), Applied::Late);
    assert_eq!(apply(&mut c, &w, 160, Some("u")), Applied::Counted);
    assert_eq!(spans(&c, "u"), [(100, 105, 2), (130, 160, 4)]);
    let json = c.to_json(&count());
    assert_eq!(PartitionCounts::from_json(&json, &count()).unwrap(), c);
    c.close_sessions(&Some(Box::from("u")), 100, 105);
    assert_eq!(spans(&c, "u"), [(130, 160, 4)]);
}

#[test]
fn checkpoints_after_the_first_are_deltas_that_restore_the_same_state() {
    let plan = AggPlan::new(vec!["count".parse().unwrap(), "max:value".parse().unwrap()]);
    let w = windowed(0);
    let add = |c: &mut PartitionCounts, ts: i64, key: &str, v: &str| {
        c.apply(
            &w,
            &plan,
            ts,
            Some(key),
            &[Some(std::borrow::Cow::Borrowed(v))],
        );
    };
    let mut c = PartitionCounts::default();
    for i in 0..1_000 {
        add(&mut c, i, &format!("k{i}"), "1");
    }
    let (snapshot, delta) = c.checkpoint_json(&plan);
    assert!(!delta, "the first checkpoint of a run is whole");
    c.saved(snapshot.len(), delta);
    // Two keys change, a new window opens, the first one closes.
    add(&mut c, 5, "k5", "7");
    add(&mut c, 6, "k6", "3");
    add(&mut c, MINUTE + 1, "new", "2");
    c.close_before(&w, MINUTE);
    let (first, delta) = c.checkpoint_json(&plan);
    assert!(delta);
    assert!(first.len() < snapshot.len() / 10, "{} bytes", first.len());
    c.saved(first.len(), delta);
    add(&mut c, MINUTE + 2, "new", "9");
    let (second, delta) = c.checkpoint_json(&plan);
    assert!(delta);
    let restored = PartitionCounts::from_pieces(&[snapshot.clone(), first, second], &plan).unwrap();
    assert_eq!(restored, c);
    let (values, _) = plan.finish(restored.aggs(MINUTE, Some("new")).unwrap());
    assert_eq!(values, [serde_json::json!(2), serde_json::json!(9)]);
    // A restored state goes on with deltas; one that failed to commit
    // writes the whole state next.
    let mut again = PartitionCounts::from_pieces(&[snapshot], &plan).unwrap();
    add(&mut again, 10, "k10", "1");
    assert!(again.checkpoint_json(&plan).1);
    again.unsaved();
    assert!(!again.checkpoint_json(&plan).1);
}

#[test]
fn deltas_carry_the_sessions_of_changed_keys() {
    let w = Windowing {
        size_ms: None,
        hop_ms: None,
        grace_ms: 100,
        session_gap_ms: Some(10),
    };
    let mut c = PartitionCounts::default();
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        apply(&mut c, &w, 100 + i as i64, Some(key));
    }
    let (snapshot, _) = c.checkpoint_json(&count());
    c.saved(snapshot.len(), false);
    apply(&mut c, &w, 105, Some("a"));
    c.close_sessions(&Some(Box::from("b")), 101, 101);
    let (delta, is_delta) = c.checkpoint_json(&count());
    assert!(is_delta);
    let restored = PartitionCounts::from_pieces(&[snapshot, delta], &count()).unwrap();
    assert_eq!(restored, c);
    assert!(!restored.sessions().contains_key(&Some(Box::from("b"))));
}

#[test]
fn aggregates_are_saved_and_checked_against_the_run() {
    let plan = AggPlan::new(vec!["count".parse().unwrap(), "sum:value".parse().unwrap()]);
    let w = windowed(0);
    let mut c = PartitionCounts::default();
    let two = [Some(std::borrow::Cow::Borrowed("2"))];
    c.apply(&w, &plan, 1, Some("a"), &two);
    c.apply(&w, &plan, 2, Some("a"), &[None]);
    c.take_changed(&mut Vec::new());
    let json = c.to_json(&plan);
    assert_eq!(PartitionCounts::from_json(&json, &plan).unwrap(), c);
    let error = PartitionCounts::from_json(&json, &count()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the group's state holds count, sum(value), not count: use another group (or `weir offsets delete`) to compute other aggregates"
    );
    let (values, unparsed) = plan.finish(c.aggs(0, Some("a")).unwrap());
    assert_eq!(values, [serde_json::json!(2), serde_json::json!(2)]);
    assert_eq!(unparsed, [("sum(value)".to_owned(), 1)]);
}

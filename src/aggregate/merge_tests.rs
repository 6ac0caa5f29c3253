use super::*;
use crate::aggregate::partial::Cell;

const MINUTE: i64 = 60_000;

fn windowing() -> Windowing {
    Windowing::tumbling(Some(MINUTE), 5_000)
}

fn sources() -> Vec<TopicPartition> {
    (0..3).map(|p| TopicPartition::new("in", p)).collect()
}

struct Send {
    src: i32,
    pos: i64,
    wm: Option<i64>,
    idle: bool,
    end: bool,
    cells: Vec<(i64, &'static str, u64)>,
}

fn send(src: i32, pos: i64, wm: Option<i64>) -> Send {
    Send {
        src,
        pos,
        wm,
        idle: false,
        end: false,
        cells: Vec::new(),
    }
}

impl Send {
    fn cell(mut self, start: i64, key: &'static str, records: u64) -> Self {
        self.cells.push((start, key, records));
        self
    }

    fn into_partial(self, plan: &AggPlan) -> Partial {
        Partial {
            v: 1,
            src: ("in".to_owned(), self.src),
            pos: self.pos,
            wm: self.wm,
            idle: self.idle,
            end: self.end,
            open_from: None,
            cells: self
                .cells
                .into_iter()
                .map(|(start, key, n)| {
                    let mut aggs = plan.empty();
                    for _ in 0..n {
                        aggs.add(&[]);
                    }
                    Cell::new(plan, start, Some(key), &aggs)
                })
                .collect(),
        }
    }
}

fn apply(merge: &mut MergeCounts, s: Send) {
    let plan = AggPlan::new(Vec::new());
    merge
        .apply(s.into_partial(&plan), &plan, &windowing(), &sources())
        .unwrap();
}

fn sealed(merge: &mut MergeCounts) -> Vec<(i64, Vec<(String, u64)>)> {
    let plan = AggPlan::new(Vec::new());
    merge
        .take_sealed(&plan, &windowing())
        .into_iter()
        .map(|(start, keys)| {
            let mut keys: Vec<(String, u64)> = keys
                .into_iter()
                .map(|(k, a)| (k.unwrap().to_string(), a.records))
                .collect();
            keys.sort();
            (start, keys)
        })
        .collect()
}

#[test]
fn a_window_is_final_once_every_source_passed_it() {
    let mut merge = MergeCounts::default();
    apply(
        &mut merge,
        send(0, 10, Some(MINUTE + 6_000)).cell(0, "INFO", 4),
    );
    apply(
        &mut merge,
        send(1, 7, Some(MINUTE + 9_000)).cell(0, "INFO", 3),
    );
    assert!(
        sealed(&mut merge).is_empty(),
        "source 2 has not said where it is"
    );
    apply(
        &mut merge,
        send(2, 5, Some(MINUTE + 1_000)).cell(0, "INFO", 1),
    );
    assert!(
        sealed(&mut merge).is_empty(),
        "source 2 is inside the grace"
    );
    apply(&mut merge, send(2, 6, Some(MINUTE + 5_000)));
    assert_eq!(sealed(&mut merge), vec![(0, vec![("INFO".to_owned(), 8)])]);
}

#[test]
fn a_replayed_partial_changes_nothing_and_a_later_one_replaces() {
    let mut merge = MergeCounts::default();
    apply(&mut merge, send(0, 10, Some(1_000)).cell(0, "INFO", 4));
    // The source crashed before its checkpoint and sends again from an
    // earlier one: an older partial, then the same.
    apply(&mut merge, send(0, 6, Some(900)).cell(0, "INFO", 2));
    apply(&mut merge, send(0, 10, Some(1_000)).cell(0, "INFO", 4));
    apply(&mut merge, send(0, 12, Some(1_200)).cell(0, "INFO", 5));
    for src in 1..3 {
        apply(&mut merge, send(src, 0, None).ended());
    }
    apply(&mut merge, send(0, 13, None).ended());
    assert_eq!(sealed(&mut merge), vec![(0, vec![("INFO".to_owned(), 5)])]);
}

impl Send {
    fn ended(mut self) -> Self {
        self.idle = true;
        self.end = true;
        self
    }

    fn idle(mut self) -> Self {
        self.idle = true;
        self
    }
}

#[test]
fn idle_sources_hold_nothing_back_and_their_late_partials_are_counted_late() {
    let mut merge = MergeCounts::default();
    apply(&mut merge, send(0, 10, Some(2 * MINUTE)).cell(0, "INFO", 4));
    apply(&mut merge, send(1, 0, None).idle());
    apply(&mut merge, send(2, 0, None).idle());
    assert_eq!(sealed(&mut merge), vec![(0, vec![("INFO".to_owned(), 4)])]);
    // Source 1 wakes up with records for the closed window.
    apply(&mut merge, send(1, 3, Some(30_000)).cell(0, "INFO", 3));
    assert_eq!(merge.late(), 3);
    // Source 0 replays its final partial of the closed window: not late.
    apply(&mut merge, send(0, 10, Some(2 * MINUTE)).cell(0, "INFO", 4));
    assert_eq!(merge.late(), 3);
    assert!(sealed(&mut merge).is_empty());
}

#[test]
fn every_window_is_final_once_every_source_ended() {
    let mut merge = MergeCounts::default();
    apply(
        &mut merge,
        send(0, 10, Some(10)).cell(0, "A", 1).cell(MINUTE, "B", 2),
    );
    assert!(!merge.complete(&sources()));
    for src in 0..3 {
        apply(&mut merge, send(src, 20, Some(10)).ended());
    }
    assert!(merge.complete(&sources()));
    assert_eq!(
        sealed(&mut merge),
        vec![
            (0, vec![("A".to_owned(), 1)]),
            (MINUTE, vec![("B".to_owned(), 2)])
        ]
    );
}

#[test]
fn the_checkpoint_form_reads_back_the_same_state() {
    let mut merge = MergeCounts::default();
    apply(
        &mut merge,
        send(0, 10, Some(MINUTE + 6_000)).cell(0, "INFO", 4),
    );
    apply(&mut merge, send(1, 7, None).idle().cell(MINUTE, "WARN", 1));
    let plan = AggPlan::new(Vec::new());
    let mut back = MergeCounts::from_json(&merge.to_json(&plan), &plan).unwrap();
    merge.changed.clear();
    assert_eq!(back, merge);
    let other = AggPlan::new(vec!["sum:json:/x".parse().unwrap()]);
    assert!(matches!(
        MergeCounts::from_json(&merge.to_json(&plan), &other),
        Err(PartialError::OtherAggregates { .. })
    ));
    assert_eq!(back.take_changed(&plan), Vec::new());
}

fn sessions_windowing() -> Windowing {
    Windowing {
        size_ms: None,
        hop_ms: None,
        grace_ms: 0,
        session_gap_ms: Some(1_000),
    }
}

/// A tick from source `src` with its final `sessions` (start, end, key,
/// records) and the earliest start of its open ones.
fn session_partial(
    src: i32,
    pos: i64,
    wm: Option<i64>,
    open_from: Option<i64>,
    sessions: &[(i64, i64, &str, u64)],
) -> Partial {
    let plan = AggPlan::new(Vec::new());
    Partial {
        v: 1,
        src: ("in".to_owned(), src),
        pos,
        wm,
        idle: false,
        end: false,
        open_from,
        cells: sessions
            .iter()
            .map(|&(start, end, key, n)| {
                let mut aggs = plan.empty();
                for _ in 0..n {
                    aggs.add(&[]);
                }
                Cell::session(&plan, start, end, Some(key), &aggs)
            })
            .collect(),
    }
}

fn apply_session(merge: &mut MergeCounts, partial: Partial) {
    let plan = AggPlan::new(Vec::new());
    let two: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new("in", p)).collect();
    merge
        .apply(partial, &plan, &sessions_windowing(), &two)
        .unwrap();
}

fn sealed_sessions(merge: &mut MergeCounts) -> Vec<(String, i64, i64, u64)> {
    let plan = AggPlan::new(Vec::new());
    let mut out: Vec<_> = merge
        .take_sealed_sessions(&plan, 1_000)
        .into_iter()
        .map(|(k, s, e, a)| (k.unwrap().to_string(), s, e, a.records))
        .collect();
    out.sort();
    out
}

#[test]
fn sessions_of_a_key_from_two_sources_join_once_neither_can_grow_them() {
    let mut merge = MergeCounts::default();
    // Source 0's session of k ended at 1,000; source 1's starts within
    // the gap of it, at 1,500, and is still open at source 1.
    apply_session(
        &mut merge,
        session_partial(0, 5, Some(10_000), None, &[(0, 1_000, "k", 3)]),
    );
    apply_session(
        &mut merge,
        session_partial(1, 4, Some(10_000), Some(1_500), &[]),
    );
    assert!(
        sealed_sessions(&mut merge).is_empty(),
        "source 1's open session may join"
    );
    // Source 1's session is final: the two join into one.
    apply_session(
        &mut merge,
        session_partial(1, 9, Some(10_000), None, &[(1_500, 2_000, "k", 2)]),
    );
    assert_eq!(
        sealed_sessions(&mut merge),
        vec![("k".to_owned(), 0, 2_000, 5)]
    );
    // Source 0 sends its final session again (a replay): nothing more.
    apply_session(
        &mut merge,
        session_partial(0, 5, Some(10_000), None, &[(0, 1_000, "k", 3)]),
    );
    assert!(sealed_sessions(&mut merge).is_empty());
    assert_eq!(merge.late(), 0);
}

#[test]
fn sums_of_nothing_stay_null_and_p0_p100_stay_exact_across_members() {
    use std::borrow::Cow;

    let plan = AggPlan::new(
        ["sum:value", "p0:value", "p100:value"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect(),
    );
    // Each source's partial of one window: "A" saw only text, "B" saw
    // 0..=99 spread over the sources. The partials and the merge stage's
    // checkpoint go through their JSON forms, as on the internal topic.
    let partial = |src: i32| {
        let mut a = plan.empty();
        a.add(&[Some(Cow::Borrowed("x")), None, Some(Cow::Borrowed("y"))]);
        let mut b = plan.empty();
        for v in (0..100).filter(|v| v % 3 == src) {
            let v: Cow<'_, str> = Cow::Owned(v.to_string());
            b.add(&[Some(v.clone()), Some(v.clone()), Some(v)]);
        }
        let mut p = send(src, 10, Some(MINUTE + 6_000)).into_partial(&plan);
        p.cells = vec![
            Cell::new(&plan, 0, Some("A"), &a),
            Cell::new(&plan, 0, Some("B"), &b),
        ];
        serde_json::from_slice::<Partial>(&serde_json::to_vec(&p).unwrap()).unwrap()
    };
    let mut merge = MergeCounts::default();
    for src in 0..3 {
        merge = MergeCounts::from_json(&merge.to_json(&plan), &plan).unwrap();
        merge
            .apply(partial(src), &plan, &windowing(), &sources())
            .unwrap();
    }
    let sealed = merge.take_sealed(&plan, &windowing());
    let (_, keys) = sealed.into_iter().next().expect("the window is final");
    let row = |key: &str| {
        let (_, aggs) = keys
            .iter()
            .find(|(k, _)| k.as_deref() == Some(key))
            .unwrap();
        plan.finish(aggs).0
    };
    assert_eq!(row("A"), vec![serde_json::Value::Null; 3]);
    let sum: i64 = (0..100).sum();
    assert_eq!(
        row("B"),
        vec![
            serde_json::json!(sum),
            serde_json::json!(0),
            serde_json::json!(99)
        ]
    );
}

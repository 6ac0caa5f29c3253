//! The aggregates of one (window, group key): the records counted, and one
//! accumulator per `--agg` other than `count`, each mergeable (across
//! partitions, and sessions that meet) and saved with the checkpoint.

use serde_json::{Value, json};

use super::sketch::{Distinct, Quantiles, TopK};
use super::spec::{AggKind, AggSpec};

/// One aggregate's running state.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// `None` until a number comes: a sum of nothing is null, as a min.
    Sum(Option<f64>),
    Min(Option<f64>),
    Max(Option<f64>),
    Avg {
        sum: f64,
        n: u64,
    },
    Distinct(Box<Distinct>),
    Top(Box<TopK>),
    Percentile(Box<Quantiles>),
}

/// One aggregate's state and the values it could not use.
#[derive(Debug, Clone, PartialEq)]
struct Acc {
    state: State,
    /// Values that were missing, or not numbers where one was needed.
    unparsed: u64,
}

/// The aggregates of one (window, group key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggs {
    /// Records (the `count` aggregate).
    pub records: u64,
    /// One per aggregate other than `count`, in the order of the specs.
    accs: Box<[Acc]>,
}

/// A record's input to the aggregates: each non-`count` aggregate's field
/// as text, `None` when the field could not be read.
pub type Inputs<'a> = [Option<std::borrow::Cow<'a, str>>];

/// A number as a numeric aggregate takes it: JSON number text, or a
/// string holding one; never NaN or infinite.
fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

impl State {
    fn new(kind: AggKind) -> Option<Self> {
        Some(match kind {
            AggKind::Count => return None,
            AggKind::Sum => Self::Sum(None),
            AggKind::Min => Self::Min(None),
            AggKind::Max => Self::Max(None),
            AggKind::Avg => Self::Avg { sum: 0.0, n: 0 },
            AggKind::Distinct => Self::Distinct(Box::default()),
            AggKind::Top(_) => Self::Top(Box::default()),
            AggKind::Percentile(_) => Self::Percentile(Box::default()),
        })
    }

    /// Takes one value; false when it cannot (not a number).
    fn add(&mut self, text: &str) -> bool {
        match self {
            Self::Distinct(d) => d.add(text.as_bytes()),
            Self::Top(t) => t.add(text, 1),
            numeric => {
                let Some(x) = number(text) else {
                    return false;
                };
                match numeric {
                    Self::Sum(s) => *s = Some(s.unwrap_or(0.0) + x),
                    Self::Min(m) => *m = Some(m.map_or(x, |m| m.min(x))),
                    Self::Max(m) => *m = Some(m.map_or(x, |m| m.max(x))),
                    Self::Avg { sum, n } => {
                        *sum += x;
                        *n += 1;
                    }
                    Self::Percentile(q) => q.add(x),
                    Self::Distinct(_) | Self::Top(_) => unreachable!("matched above"),
                }
            }
        }
        true
    }

    fn merge(&mut self, other: &Self) {
        match (self, other) {
            (Self::Sum(a), Self::Sum(b)) => *a = min_max(*a, *b, |a, b| a + b),
            (Self::Min(a), Self::Min(b)) => *a = min_max(*a, *b, f64::min),
            (Self::Max(a), Self::Max(b)) => *a = min_max(*a, *b, f64::max),
            (Self::Avg { sum, n }, Self::Avg { sum: s, n: m }) => {
                *sum += s;
                *n += m;
            }
            (Self::Distinct(a), Self::Distinct(b)) => a.merge(b),
            (Self::Top(a), Self::Top(b)) => a.merge(b),
            (Self::Percentile(a), Self::Percentile(b)) => a.merge(b),
            // The specs are the same for every partition's state.
            _ => {}
        }
    }

    /// The value a row shows.
    fn finish(&self, kind: AggKind) -> Value {
        match (self, kind) {
            (Self::Sum(m) | Self::Min(m) | Self::Max(m), _) => m.map_or(Value::Null, json_number),
            (Self::Avg { sum, n }, _) if *n > 0 => json_number(sum / *n as f64),
            (Self::Avg { .. }, _) => Value::Null,
            (Self::Distinct(d), _) => d.estimate().into(),
            (Self::Top(t), AggKind::Top(k)) => t
                .top(k)
                .into_iter()
                .map(|(value, n)| json!([value, n]))
                .collect(),
            (Self::Percentile(q), AggKind::Percentile(p)) => {
                q.quantile(p).map_or(Value::Null, json_number)
            }
            _ => Value::Null,
        }
    }

    /// The checkpoint form.
    fn save(&self) -> Value {
        match self {
            // A sum of nothing saves as null; checkpoints from before
            // (a number, 0 for nothing) still load.
            Self::Sum(m) | Self::Min(m) | Self::Max(m) => json!(m),
            Self::Avg { sum, n } => json!([sum, n]),
            Self::Distinct(d) => serde_json::to_value(d).unwrap_or_default(),
            Self::Top(t) => serde_json::to_value(t).unwrap_or_default(),
            Self::Percentile(q) => serde_json::to_value(q).unwrap_or_default(),
        }
    }

    fn load(kind: AggKind, saved: Value) -> Result<Self, serde_json::Error> {
        use serde_json::from_value;
        Ok(match kind {
            AggKind::Count => unreachable!("count has no state of its own"),
            AggKind::Sum => Self::Sum(from_value(saved)?),
            AggKind::Min => Self::Min(from_value(saved)?),
            AggKind::Max => Self::Max(from_value(saved)?),
            AggKind::Avg => {
                let (sum, n) = from_value(saved)?;
                Self::Avg { sum, n }
            }
            AggKind::Distinct => Self::Distinct(from_value(saved)?),
            AggKind::Top(_) => Self::Top(from_value(saved)?),
            AggKind::Percentile(_) => Self::Percentile(from_value(saved)?),
        })
    }
}

/// `pick` of both, or the one there is: merges sums, minima and maxima.
fn min_max(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// A JSON number: an integer when the value is one (and exact as one),
/// else a float.
fn json_number(x: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() == 0.0 && x.abs() < EXACT {
        (x as i64).into()
    } else {
        json!(x)
    }
}

/// The aggregates a job computes, in the order of its `--agg`s.
#[derive(Debug, Clone)]
pub struct AggPlan {
    specs: Vec<AggSpec>,
    /// The specs other than `count`, which have an accumulator each.
    stateful: Vec<AggKind>,
}

impl AggPlan {
    /// The plan of `specs` (`count` when empty).
    pub fn new(specs: Vec<AggSpec>) -> Self {
        let specs = if specs.is_empty() {
            vec![AggSpec {
                kind: AggKind::Count,
                field: None,
            }]
        } else {
            specs
        };
        let stateful = specs
            .iter()
            .map(|s| s.kind)
            .filter(|k| *k != AggKind::Count)
            .collect();
        Self { specs, stateful }
    }

    /// The specs, in order.
    pub fn specs(&self) -> &[AggSpec] {
        &self.specs
    }

    /// The fields to read from each record, one per aggregate other than
    /// `count` (the inputs of [`Aggs::add`]).
    pub fn fields(&self) -> impl Iterator<Item = &super::Extractor> {
        self.specs.iter().filter_map(|s| s.field.as_ref())
    }

    /// Only `count`: rows as `weir count` writes them.
    pub fn is_count(&self) -> bool {
        self.stateful.is_empty()
    }

    /// The names rows carry the aggregates under, in order.
    pub fn names(&self) -> Vec<String> {
        self.specs.iter().map(ToString::to_string).collect()
    }

    /// Empty aggregates.
    pub fn empty(&self) -> Aggs {
        Aggs {
            records: 0,
            accs: self
                .stateful
                .iter()
                .filter_map(|&k| State::new(k))
                .map(|state| Acc { state, unparsed: 0 })
                .collect(),
        }
    }

    /// Each aggregate's value as a row shows it, with the values it could
    /// not use per aggregate name (only those with any).
    pub fn finish(&self, aggs: &Aggs) -> (Vec<Value>, Vec<(String, u64)>) {
        let mut accs = aggs.accs.iter();
        let mut values = Vec::with_capacity(self.specs.len());
        let mut unparsed = Vec::new();
        for spec in &self.specs {
            if spec.kind == AggKind::Count {
                values.push(aggs.records.into());
                continue;
            }
            let Some(acc) = accs.next() else {
                values.push(Value::Null);
                continue;
            };
            values.push(acc.state.finish(spec.kind));
            if acc.unparsed > 0 {
                unparsed.push((spec.to_string(), acc.unparsed));
            }
        }
        (values, unparsed)
    }

    /// The checkpoint form of `aggs`: `[state, unparsed]` per aggregate
    /// other than `count`.
    pub fn save(&self, aggs: &Aggs) -> Value {
        aggs.accs
            .iter()
            .map(|a| json!([a.state.save(), a.unparsed]))
            .collect()
    }

    /// Reads the checkpoint form back.
    ///
    /// # Errors
    ///
    /// It does not fit the plan's aggregates.
    pub fn load(&self, records: u64, saved: Value) -> Result<Aggs, serde_json::Error> {
        let saved: Vec<(Value, u64)> = serde_json::from_value(saved)?;
        if saved.len() != self.stateful.len() {
            return Err(serde::de::Error::invalid_length(
                saved.len(),
                &"one state per aggregate",
            ));
        }
        let accs = self
            .stateful
            .iter()
            .zip(saved)
            .map(|(&kind, (state, unparsed))| {
                Ok(Acc {
                    state: State::load(kind, state)?,
                    unparsed,
                })
            })
            .collect::<Result<_, serde_json::Error>>()?;
        Ok(Aggs { records, accs })
    }
}

impl Aggs {
    /// Takes one record whose fields read `inputs` (one per accumulator).
    pub fn add(&mut self, inputs: &Inputs<'_>) {
        self.records += 1;
        for (acc, input) in self.accs.iter_mut().zip(inputs) {
            let used = input.as_deref().is_some_and(|text| acc.state.add(text));
            if !used {
                acc.unparsed += 1;
            }
        }
    }

    /// Adds what `other` took, as if its records had come here.
    pub fn merge(&mut self, other: &Self) {
        self.records += other.records;
        for (a, b) in self.accs.iter_mut().zip(other.accs.iter()) {
            a.state.merge(&b.state);
            a.unparsed += b.unparsed;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn plan(specs: &[&str]) -> AggPlan {
        AggPlan::new(specs.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn add(plan: &AggPlan, aggs: &mut Aggs, value: Option<&str>) {
        let inputs: Vec<Option<Cow<'_, str>>> =
            plan.fields().map(|_| value.map(Cow::Borrowed)).collect();
        aggs.add(&inputs);
    }

    #[test]
    fn numeric_aggregates_and_unparsed_values() {
        let p = plan(&["count", "sum:value", "min:value", "max:value", "avg:value"]);
        let mut a = p.empty();
        for v in ["3", "1.5", " 10 ", "\"x\"", "NaN"] {
            add(&p, &mut a, Some(v));
        }
        add(&p, &mut a, None);
        let (values, unparsed) = p.finish(&a);
        assert_eq!(
            values,
            vec![
                json!(6),
                json!(14.5),
                json!(1.5),
                json!(10),
                json!(14.5 / 3.0)
            ]
        );
        let names: Vec<&str> = unparsed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["sum(value)", "min(value)", "max(value)", "avg(value)"]
        );
        assert!(unparsed.iter().all(|(_, n)| *n == 3));
    }

    #[test]
    fn merging_is_adding_the_records() {
        let p = plan(&[
            "sum:value",
            "max:value",
            "top2:value",
            "distinct:value",
            "p50:value",
        ]);
        let (mut left, mut right, mut whole) = (p.empty(), p.empty(), p.empty());
        for i in 0..100 {
            let v = (i % 7).to_string();
            add(
                &p,
                if i % 3 == 0 { &mut left } else { &mut right },
                Some(&v),
            );
            add(&p, &mut whole, Some(&v));
        }
        left.merge(&right);
        assert_eq!(p.finish(&left), p.finish(&whole));
        let (values, _) = p.finish(&whole);
        assert_eq!(values[0], json!((0..100).map(|i| i % 7).sum::<i32>()));
        assert_eq!(values[1], json!(6));
        assert_eq!(values[2], json!([["0", 15], ["1", 15]]));
        assert_eq!(values[3], json!(7));
    }

    #[test]
    fn the_checkpoint_form_round_trips() {
        let p = plan(&[
            "count",
            "avg:value",
            "min:value",
            "top3:value",
            "p99:value",
            "distinct:value",
        ]);
        let mut a = p.empty();
        for v in ["1", "2", "x", "2"] {
            add(&p, &mut a, Some(v));
        }
        let saved = p.save(&a);
        let back = p.load(a.records, saved.clone()).unwrap();
        assert_eq!(back, a);
        assert!(plan(&["sum:value"]).load(1, saved).is_err());
        // Only count: nothing to save but the records.
        let count = plan(&[]);
        assert!(count.is_count());
        assert_eq!(count.save(&count.empty()), json!([]));
    }

    #[test]
    fn a_sum_of_nothing_numeric_is_null_also_merged_and_saved() {
        let p = plan(&["sum:value", "min:value", "avg:value", "p50:value"]);
        let mut nothing = p.empty();
        for v in [Some("\"x\""), Some("abc"), None] {
            add(&p, &mut nothing, v);
        }
        let nulls = vec![Value::Null; 4];
        assert_eq!(p.finish(&nothing).0, nulls);
        // Two members' partials that saw nothing numeric stay null merged,
        // and through the checkpoint (and partial) form.
        let mut merged = p.load(3, p.save(&nothing)).unwrap();
        merged.merge(&nothing);
        assert_eq!(p.finish(&merged).0, nulls);
        // One that saw a number gives it, whichever side it is on.
        let mut one = p.empty();
        add(&p, &mut one, Some("-2"));
        let mut left = nothing.clone();
        left.merge(&one);
        one.merge(&nothing);
        assert_eq!(
            p.finish(&left).0,
            [json!(-2), json!(-2), json!(-2), json!(-2)]
        );
        assert_eq!(p.finish(&one).0, p.finish(&left).0);
        // A checkpoint from before, where a sum of nothing saved 0.
        let old = p.load(
            1,
            json!([[0.0, 1], [null, 1], [[0.0, 0], 1], p.save(&p.empty())[3]]),
        );
        assert_eq!(p.finish(&old.unwrap()).0[0], json!(0));
    }

    #[test]
    fn numbers_are_integers_when_they_are() {
        assert_eq!(json_number(3.0), json!(3));
        assert_eq!(json_number(-0.5), json!(-0.5));
        assert_eq!(json_number(1e300), json!(1e300));
    }
}

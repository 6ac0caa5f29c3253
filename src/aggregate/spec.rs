//! What `weir agg` computes per (window, group key): `--agg NAME[:EXTRACTOR]`.

use std::fmt;
use std::str::FromStr;

use super::extract::{Extractor, ExtractorError};

/// One aggregate and the field it reads.
#[derive(Debug, Clone)]
pub struct AggSpec {
    /// What it computes.
    pub kind: AggKind,
    /// The field it reads (`None` for `count`).
    pub field: Option<Extractor>,
}

/// The aggregates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggKind {
    /// Records.
    Count,
    /// Sum of a numeric field.
    Sum,
    /// Smallest value of a numeric field.
    Min,
    /// Largest value of a numeric field.
    Max,
    /// Mean of a numeric field.
    Avg,
    /// Distinct values of a field: exact up to a bound, then estimated.
    Distinct,
    /// The most frequent values of a field, with their counts.
    Top(usize),
    /// A percentile of a numeric field, as a fraction (p99: 0.99), from a
    /// sketch of bounded relative error.
    Percentile(f64),
}

impl AggKind {
    /// Whether it needs its field's values to be numbers.
    pub fn numeric(self) -> bool {
        matches!(
            self,
            Self::Sum | Self::Min | Self::Max | Self::Avg | Self::Percentile(_)
        )
    }
}

/// An `--agg` that cannot be read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AggSpecError {
    /// An aggregate that needs a field without one.
    #[error("\"{input}\": {name} needs a field: {name}:EXTRACTOR (e.g. {name}:json:/latency)")]
    NoField {
        /// The `--agg` as given.
        input: String,
        /// The aggregate's name.
        name: String,
    },
    /// `count` with a field.
    #[error("\"{input}\": count takes no field (it counts records)")]
    CountField {
        /// The `--agg` as given.
        input: String,
    },
    /// A field that cannot be read.
    #[error("\"{input}\"")]
    Field {
        /// The `--agg` as given.
        input: String,
        /// Why.
        #[source]
        source: ExtractorError,
    },
    /// None of the names.
    #[error(
        "\"{input}\": expected count, sum:F, min:F, max:F, avg:F, distinct:F, topN:F (top10:json:/path) or pNN:F (p50, p99, p99.9)"
    )]
    Unknown {
        /// The `--agg` as given.
        input: String,
    },
}

/// The largest `topN`.
pub const MAX_TOP: usize = 1000;

impl FromStr for AggSpec {
    type Err = AggSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, field) = match s.split_once(':') {
            Some((name, field)) => (name, Some(field)),
            None => (s, None),
        };
        let unknown = || AggSpecError::Unknown {
            input: s.to_owned(),
        };
        let kind = match name {
            "count" => AggKind::Count,
            "sum" => AggKind::Sum,
            "min" => AggKind::Min,
            "max" => AggKind::Max,
            "avg" => AggKind::Avg,
            "distinct" => AggKind::Distinct,
            _ => {
                if let Some(n) = name.strip_prefix("top") {
                    match n.parse::<usize>() {
                        Ok(n @ 1..=MAX_TOP) => AggKind::Top(n),
                        _ => return Err(unknown()),
                    }
                } else if let Some(p) = name.strip_prefix('p') {
                    match percent_as_fraction(p) {
                        Some(q) => AggKind::Percentile(q),
                        None => return Err(unknown()),
                    }
                } else {
                    return Err(unknown());
                }
            }
        };
        let field = match (kind, field) {
            (AggKind::Count, None) => None,
            (AggKind::Count, Some(_)) => {
                return Err(AggSpecError::CountField {
                    input: s.to_owned(),
                });
            }
            (_, None) => {
                return Err(AggSpecError::NoField {
                    input: s.to_owned(),
                    name: name.to_owned(),
                });
            }
            (_, Some(field)) => Some(field.parse().map_err(|source| AggSpecError::Field {
                input: s.to_owned(),
                source,
            })?),
        };
        Ok(Self { kind, field })
    }
}

impl fmt::Display for AggSpec {
    /// The name rows carry it under: `count`, `sum(json:/bytes)`,
    /// `p99(json:/latency)`, `top10(json:/path)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            AggKind::Count => return f.write_str("count"),
            AggKind::Sum => "sum".to_owned(),
            AggKind::Min => "min".to_owned(),
            AggKind::Max => "max".to_owned(),
            AggKind::Avg => "avg".to_owned(),
            AggKind::Distinct => "distinct".to_owned(),
            AggKind::Top(n) => format!("top{n}"),
            AggKind::Percentile(p) => format!("p{}", trim_float(p * 100.0)),
        };
        match &self.field {
            Some(field) => write!(f, "{name}({field})"),
            None => f.write_str(&name),
        }
    }
}

/// `99.9` (percent) as 0.999, parsed from the shifted digits so that it
/// is the float nearest 0.999 rather than 99.9 / 100; `None` outside
/// 0 to 100 or not digits.
fn percent_as_fraction(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole = format!("{whole:0>2}");
    let (ones, hundredths) = whole.split_at(whole.len() - 2);
    let ones = if ones.is_empty() { "0" } else { ones };
    let q: f64 = format!("{ones}.{hundredths}{fraction}").parse().ok()?;
    (0.0..=1.0).contains(&q).then_some(q)
}

/// `99`, `99.9`: a percentile as written, without float noise.
fn trim_float(x: f64) -> String {
    let text = format!("{:.6}", x);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> String {
        s.parse::<AggSpec>().unwrap().to_string()
    }

    #[test]
    fn aggregates_parse_and_are_named() {
        assert_eq!(name("count"), "count");
        assert_eq!(name("sum:json:/bytes"), "sum(json:/bytes)");
        assert_eq!(name("avg:value"), "avg(value)");
        assert_eq!(name("distinct:json:/user"), "distinct(json:/user)");
        assert_eq!(name("top10:json:/path"), "top10(json:/path)");
        assert_eq!(name("p99:json:/lat"), "p99(json:/lat)");
        assert_eq!(name("p99.9:json:/lat"), "p99.9(json:/lat)");
        assert_eq!(name("p50:key"), "p50(key)");
        let p = "p99.9:json:/lat".parse::<AggSpec>().unwrap();
        assert_eq!(p.kind, AggKind::Percentile(0.999));
        // The field keeps its own colons.
        assert_eq!(name(r"max:regex:t=(\d+):"), r"max(regex:t=(\d+):)");
    }

    #[test]
    fn bad_aggregates_are_refused() {
        for bad in [
            "sum",
            "count:json:/x",
            "mean:json:/x",
            "top0:json:/x",
            "top1001:json:/x",
            "p:json:/x",
            "p101:json:/x",
            "p-1:json:/x",
            "sum:json:x",
            "topx:value",
        ] {
            assert!(bad.parse::<AggSpec>().is_err(), "{bad}");
        }
    }
}

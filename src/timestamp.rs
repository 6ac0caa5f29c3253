//! Record timestamps at the edges: which create times a topic accepts
//! ([`TimestampLimits`]), and RFC 3339 text for every value a Kafka
//! timestamp can hold, before 1970 and after 9999 included ([`rfc3339`]).
//!
//! humantime, which weir uses for durations, formats only times from 1970
//! to 9999 (it fails, and `to_string` panics, past that), and chrono
//! without its `alloc` feature, as rskafka builds it, has no formatting.
//! The calendar is a few lines of integer arithmetic instead.

use std::fmt::{self, Write as _};
use std::time::Duration;

use rskafka::chrono::DateTime;

/// Kafka's `RecordBatch.NO_TIMESTAMP`: a record without a create time.
/// The broker checks no limit for it, and consumers read it as -1.
pub const NO_TIMESTAMP: i64 = -1;

/// Kafka's default `message.timestamp.after.max.ms` since 4.0 (one hour;
/// `ServerLogConfigs.LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS_DEFAULT`).
pub const DEFAULT_TIMESTAMP_AFTER_MAX_MS: i64 = 3_600_000;

/// Which create times a topic accepts.
///
/// A broker appending to a `CreateTime` topic compares each record's
/// timestamp with its own clock (Kafka's `LogValidator`): more than
/// `message.timestamp.before.max.ms` behind it or
/// `message.timestamp.after.max.ms` ahead of it, and the whole batch is
/// refused with `INVALID_TIMESTAMP`, every other record in it too. A
/// `LogAppendTime` topic replaces create times and checks none. A record
/// without a create time ([`NO_TIMESTAMP`]) is never checked. The producer
/// makes the same check with this machine's clock before a record joins a
/// batch, so an out-of-range timestamp fails that record alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampLimits {
    /// `message.timestamp.before.max.ms`: how far behind now a create
    /// time may be (`i64::MAX`, Kafka's default, is no limit).
    pub before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far ahead of now.
    pub after_max_ms: i64,
    /// `message.timestamp.type=LogAppendTime`: the broker sets the time.
    pub log_append_time: bool,
}

impl Default for TimestampLimits {
    /// Kafka 4.x's defaults: any time in the past, at most an hour ahead,
    /// `CreateTime`.
    fn default() -> Self {
        Self {
            before_max_ms: i64::MAX,
            after_max_ms: DEFAULT_TIMESTAMP_AFTER_MAX_MS,
            log_append_time: false,
        }
    }
}

/// Why a record's create time cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimestampProblem {
    /// Outside the dates rskafka's records hold (chrono's years -262143
    /// to 262142).
    Unrepresentable,
    /// More than `message.timestamp.before.max.ms` behind now.
    TooOld {
        /// The topic's limit.
        limit_ms: i64,
    },
    /// More than `message.timestamp.after.max.ms` ahead of now.
    TooNew {
        /// The topic's limit.
        limit_ms: i64,
    },
}

impl fmt::Display for TimestampProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unrepresentable => {
                f.write_str("is outside the dates a record can carry (years -262143 to 262142)")
            }
            Self::TooOld { limit_ms } => write!(
                f,
                "is more than {} before now: the topic's message.timestamp.before.max.ms is {limit_ms}",
                limit_text(*limit_ms)
            ),
            Self::TooNew { limit_ms } => write!(
                f,
                "is more than {} after now: the topic's message.timestamp.after.max.ms is {limit_ms}",
                limit_text(*limit_ms)
            ),
        }
    }
}

/// A limit in ms as a duration (`1h`, `7days`).
fn limit_text(ms: i64) -> String {
    humantime::format_duration(Duration::from_millis(u64::try_from(ms).unwrap_or(0))).to_string()
}

impl TimestampLimits {
    /// The limits in a topic's configs, as `(name, value)` pairs (from
    /// [`Admin::topic_configs`](crate::kafka::admin::Admin::topic_configs), which
    /// gives the values in force). A missing or unreadable value keeps
    /// Kafka's default; a broker before Kafka 3.6 has one
    /// `message.timestamp.difference.max.ms` for both directions instead.
    pub fn from_configs<'a>(configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        let mut limits = Self::default();
        let (mut before, mut after, mut difference) = (None, None, None);
        for (name, value) in configs {
            let ms = || value.and_then(|v| v.trim().parse::<i64>().ok());
            match name {
                "message.timestamp.before.max.ms" => before = ms(),
                "message.timestamp.after.max.ms" => after = ms(),
                "message.timestamp.difference.max.ms" => difference = ms(),
                "message.timestamp.type" => {
                    limits.log_append_time = value == Some("LogAppendTime");
                }
                _ => {}
            }
        }
        if before.is_none() && after.is_none() {
            if let Some(d) = difference {
                (before, after) = (Some(d), Some(d));
            }
        }
        limits.before_max_ms = before.unwrap_or(limits.before_max_ms);
        limits.after_max_ms = after.unwrap_or(limits.after_max_ms);
        limits
    }

    /// Checks `timestamp_ms` as the broker will when its clock reads
    /// `now_ms`, and that a record can carry it at all.
    ///
    /// # Errors
    ///
    /// The [`TimestampProblem`].
    pub fn check(&self, timestamp_ms: i64, now_ms: i64) -> Result<(), TimestampProblem> {
        if DateTime::from_timestamp_millis(timestamp_ms).is_none() {
            return Err(TimestampProblem::Unrepresentable);
        }
        if self.log_append_time || timestamp_ms == NO_TIMESTAMP {
            return Ok(());
        }
        // Kafka computes `now - timestamp` in a long; every time a record
        // can carry is far from overflowing one, i128 makes sure.
        let behind = i128::from(now_ms) - i128::from(timestamp_ms);
        if behind > i128::from(self.before_max_ms) {
            return Err(TimestampProblem::TooOld {
                limit_ms: self.before_max_ms,
            });
        }
        if -behind > i128::from(self.after_max_ms) {
            return Err(TimestampProblem::TooNew {
                limit_ms: self.after_max_ms,
            });
        }
        Ok(())
    }
}

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// `ms` since the epoch as RFC 3339 in UTC, with milliseconds only when
/// there are any: `2025-11-24T16:00:00Z`, `1969-12-31T23:59:00Z`,
/// `1970-01-01T00:00:01.500Z`. A year outside 0000 to 9999 is written with
/// a sign and at least four digits, as ISO 8601's expanded years
/// (`+10000-01-01T00:00:00Z`, `-0001-12-31T00:00:00Z`).
pub fn rfc3339(ms: i64) -> String {
    format(ms, ms.rem_euclid(1000) != 0)
}

/// Milliseconds since the epoch, now: a record's create time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// As [`rfc3339`], always with milliseconds.
pub fn rfc3339_millis(ms: i64) -> String {
    format(ms, true)
}

fn format(ms: i64, millis: bool) -> String {
    let (days, in_day) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
    let (year, month, day) = civil_from_days(days);
    let secs = in_day / 1000;
    let mut out = String::with_capacity(24);
    if (0..=9999).contains(&year) {
        let _ = write!(out, "{year:04}");
    } else {
        let _ = write!(out, "{year:+05}");
    }
    let _ = write!(
        out,
        "-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if millis {
        let _ = write!(out, ".{:03}", in_day % 1000);
    }
    out.push('Z');
    out
}

/// A strftime-like format for a record's time, in UTC (`{date:FORMAT}`
/// of `weir consume -f`): `%Y` year, `%m` month, `%d` day, `%H` hour,
/// `%M` minute, `%S` second, `%L` milliseconds (three digits, as Ruby's
/// strftime), `%s` seconds since the epoch, `%F` for `%Y-%m-%d`, `%T` for
/// `%H:%M:%S`, `%z` `+0000`, `%Z` `UTC`, `%%` a percent sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    pieces: Vec<DatePiece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DatePiece {
    Literal(String),
    /// A conversion letter.
    Spec(char),
}

/// A `%` conversion [`DateFormat`] does not know, or a `%` at the end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown date conversion \"%{0}\"; known: %Y %m %d %H %M %S %L (ms) %s (epoch seconds) %F %T %z %Z %%"
)]
pub struct DateFormatError(pub String);

impl std::str::FromStr for DateFormat {
    type Err = DateFormatError;

    fn from_str(format: &str) -> Result<Self, Self::Err> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => literal.push('%'),
                Some(
                    spec @ ('Y' | 'm' | 'd' | 'H' | 'M' | 'S' | 'L' | 's' | 'F' | 'T' | 'z' | 'Z'),
                ) => {
                    if !literal.is_empty() {
                        pieces.push(DatePiece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(DatePiece::Spec(spec));
                }
                other => return Err(DateFormatError(other.map(String::from).unwrap_or_default())),
            }
        }
        if !literal.is_empty() {
            pieces.push(DatePiece::Literal(literal));
        }
        Ok(Self { pieces })
    }
}

impl DateFormat {
    /// `ms` since the epoch in this format, UTC, written to `out`.
    ///
    /// # Errors
    ///
    /// I/O errors of `out`.
    pub fn write(&self, ms: i64, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let (days, in_day) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
        let (year, month, day) = civil_from_days(days);
        let secs = in_day / 1000;
        let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
        for piece in &self.pieces {
            match piece {
                DatePiece::Literal(text) => out.write_all(text.as_bytes())?,
                DatePiece::Spec('Y') if (0..=9999).contains(&year) => write!(out, "{year:04}")?,
                DatePiece::Spec('Y') => write!(out, "{year:+05}")?,
                DatePiece::Spec('m') => write!(out, "{month:02}")?,
                DatePiece::Spec('d') => write!(out, "{day:02}")?,
                DatePiece::Spec('H') => write!(out, "{hour:02}")?,
                DatePiece::Spec('M') => write!(out, "{minute:02}")?,
                DatePiece::Spec('S') => write!(out, "{second:02}")?,
                DatePiece::Spec('L') => write!(out, "{:03}", in_day % 1000)?,
                DatePiece::Spec('s') => write!(out, "{}", ms.div_euclid(1000))?,
                DatePiece::Spec('F') if (0..=9999).contains(&year) => {
                    write!(out, "{year:04}-{month:02}-{day:02}")?;
                }
                DatePiece::Spec('F') => write!(out, "{year:+05}-{month:02}-{day:02}")?,
                DatePiece::Spec('T') => write!(out, "{hour:02}:{minute:02}:{second:02}")?,
                DatePiece::Spec('z') => out.write_all(b"+0000")?,
                DatePiece::Spec(_) => out.write_all(b"UTC")?,
            }
        }
        Ok(())
    }
}

/// The proleptic Gregorian (year, month, day) of a day number counted from
/// 1970-01-01 (Howard Hinnant's `civil_from_days`). Exact for every day an
/// `i64` of milliseconds reaches.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Counted from 0000-03-01, so that a leap day ends its year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 0 is March, 11 is February.
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use rskafka::chrono::{Datelike, Timelike};

    use super::*;

    #[test]
    fn date_formats_write_utc_fields_and_refuse_unknown_conversions() {
        let render = |format: &str, ms: i64| {
            let mut out = Vec::new();
            format
                .parse::<DateFormat>()
                .unwrap()
                .write(ms, &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        // 2023-11-14T22:13:20.042Z
        let ms = 1_700_000_000_042;
        assert_eq!(
            render("%Y-%m-%d %H:%M:%S.%L", ms),
            "2023-11-14 22:13:20.042"
        );
        assert_eq!(render("%FT%T%z %Z", ms), "2023-11-14T22:13:20+0000 UTC");
        assert_eq!(render("%s 100%%", ms), "1700000000 100%");
        // Before 1970 and after 9999, as rfc3339 writes them.
        assert_eq!(render("%F %T.%L %s", -1), "1969-12-31 23:59:59.999 -1");
        assert_eq!(render("%F", 253_402_300_800_000), "+10000-01-01");
        assert_eq!(
            "%Y-%q".parse::<DateFormat>(),
            Err(DateFormatError("q".to_owned()))
        );
        assert_eq!(
            "%".parse::<DateFormat>(),
            Err(DateFormatError(String::new()))
        );
    }

    #[test]
    fn timestamp_limits_are_kafkas() {
        let now = 1_800_000_000_000;
        let stock = TimestampLimits::default();
        // Any time in the past, a negative one included: the default
        // message.timestamp.before.max.ms is Long.MAX_VALUE.
        assert_eq!(stock.check(0, now), Ok(()));
        assert_eq!(stock.check(-60_000, now), Ok(()));
        assert_eq!(stock.check(NO_TIMESTAMP, now), Ok(()));
        // At most an hour ahead.
        assert_eq!(stock.check(now + 3_600_000, now), Ok(()));
        assert_eq!(
            stock.check(now + 3_600_001, now),
            Err(TimestampProblem::TooNew {
                limit_ms: 3_600_000
            })
        );
        // Year 10000: a date, but far ahead.
        assert!(matches!(
            stock.check(253_402_300_800_000, now),
            Err(TimestampProblem::TooNew { .. })
        ));
        // No date at all, whatever the topic's limits.
        let append = TimestampLimits {
            log_append_time: true,
            ..TimestampLimits::default()
        };
        for limits in [stock, append] {
            for ms in [i64::MAX, i64::MIN, 8_210_298_412_800_000] {
                assert_eq!(
                    limits.check(ms, now),
                    Err(TimestampProblem::Unrepresentable),
                    "{ms}"
                );
            }
        }
        // LogAppendTime replaces create times and checks none.
        assert_eq!(append.check(now + 86_400_000, now), Ok(()));

        let strict = TimestampLimits {
            before_max_ms: 1000,
            after_max_ms: 0,
            log_append_time: false,
        };
        assert_eq!(strict.check(now - 1000, now), Ok(()));
        assert_eq!(
            strict.check(now - 1001, now),
            Err(TimestampProblem::TooOld { limit_ms: 1000 })
        );
        assert_eq!(
            strict.check(-60_000, now),
            Err(TimestampProblem::TooOld { limit_ms: 1000 })
        );
        // -1 carries no create time, so the broker checks nothing.
        assert_eq!(strict.check(NO_TIMESTAMP, now), Ok(()));
        assert_eq!(
            strict.check(now + 1, now),
            Err(TimestampProblem::TooNew { limit_ms: 0 })
        );
    }

    #[test]
    fn timestamp_limits_read_from_topic_configs() {
        let limits = TimestampLimits::from_configs([
            ("cleanup.policy", Some("delete")),
            ("message.timestamp.after.max.ms", Some("60000")),
            (
                "message.timestamp.before.max.ms",
                Some("9223372036854775807"),
            ),
            ("message.timestamp.type", Some("CreateTime")),
        ]);
        assert_eq!(
            limits,
            TimestampLimits {
                before_max_ms: i64::MAX,
                after_max_ms: 60_000,
                log_append_time: false,
            }
        );
        let append =
            TimestampLimits::from_configs([("message.timestamp.type", Some("LogAppendTime"))]);
        assert!(append.log_append_time);
        // Before Kafka 3.6 one limit served both directions.
        let old =
            TimestampLimits::from_configs([("message.timestamp.difference.max.ms", Some("5000"))]);
        assert_eq!((old.before_max_ms, old.after_max_ms), (5000, 5000));
        // Hidden or unreadable values keep Kafka's defaults.
        let hidden = TimestampLimits::from_configs([
            ("message.timestamp.after.max.ms", None),
            ("message.timestamp.before.max.ms", Some("soon")),
        ]);
        assert_eq!(hidden, TimestampLimits::default());
    }

    #[test]
    fn formats_around_the_epoch_and_the_window_of_a_minus_one_timestamp() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(rfc3339(1_764_000_000_000), "2025-11-24T16:00:00Z");
        // A record with timestamp -1 falls in the minute window from
        // -60000: before 1970, still a date.
        assert_eq!(rfc3339(-60_000), "1969-12-31T23:59:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        // Leap days, and a century that is not a leap year.
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-2_203_891_200_000), "1900-03-01T00:00:00Z");
    }

    #[test]
    fn years_past_9999_and_before_0000_have_a_sign() {
        assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_800_000), "+10000-01-01T00:00:00Z");
        assert_eq!(rfc3339(-62_167_219_200_000), "0000-01-01T00:00:00Z");
        assert_eq!(rfc3339(-62_167_219_200_001), "-0001-12-31T23:59:59.999Z");
        // The ends of the range do not overflow.
        assert!(rfc3339(i64::MAX).starts_with("+292278994-08-17T07:12:55.807"));
        assert!(rfc3339(i64::MIN).starts_with("-292275055-05-16T16:47:04.192"));
    }

    #[test]
    fn agrees_with_chrono_wherever_chrono_has_a_date() {
        // Every 97 days and 13 minutes, over ±3000 years around 1970.
        let step = 97 * DAY_MS + 13 * 60_000 + 7;
        let mut ms = -95_000_000_000_000;
        while ms < 95_000_000_000_000 {
            let t = DateTime::from_timestamp_millis(ms).unwrap();
            let year = match t.year() {
                y @ 0..=9999 => format!("{y:04}"),
                y => format!("{y:+05}"),
            };
            let want = format!(
                "{year}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.timestamp_subsec_millis()
            );
            assert_eq!(rfc3339_millis(ms), want, "{ms}");
            ms += step;
        }
    }
}

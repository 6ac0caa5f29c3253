//! Where a partition starts and stops, as a command line writes it:
//! [`StartOffset`] (`earliest`, `latest`, an offset, `-N`, `@TIME`, a
//! duration ago), [`Until`], and the times they name.

use std::str::FromStr;
use std::time::UNIX_EPOCH;

use rskafka::chrono::DateTime;

use crate::timestamp::now_ms;

/// Where a partition starts when no committed offset says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The low watermark (`earliest`, `beginning`).
    Earliest,
    /// The high watermark: only new records (`latest`, `end`).
    Latest,
    /// An absolute offset.
    Offset(i64),
    /// N records before the high watermark (`-N`).
    FromEnd(i64),
    /// The first record at or after this time, ms since the epoch
    /// (`@2024-05-01T12:00:00Z`, `@1714564800000`, or a duration ago:
    /// `15m`).
    Timestamp(i64),
}

/// A [`StartOffset`] that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "invalid position \"{input}\": {problem} (expected earliest, latest, an offset, -N, @<RFC 3339 time or epoch ms>, or a duration such as 15m)"
)]
pub struct PositionError {
    input: String,
    problem: PositionProblem,
}

/// What is wrong with a position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PositionProblem {
    /// `@` and a time that cannot be read.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// `-` and no number.
    #[error("not a number after '-'")]
    NotANumber,
    /// None of the forms.
    #[error("not a known form")]
    Unknown,
}

/// A time ([`parse_time`]) that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// Before the epoch: Kafka would read it as a special position.
    #[error("before 1970")]
    BeforeEpoch,
    /// Past the latest time a record's timestamp can hold.
    #[error("later than any date a record can carry")]
    TooLate,
    /// Neither RFC 3339 nor epoch milliseconds.
    #[error(transparent)]
    Unreadable(#[from] humantime::TimestampError),
    /// Too far in the future for milliseconds in an `i64`.
    #[error(transparent)]
    OutOfRange(#[from] std::num::TryFromIntError),
}

impl FromStr for StartOffset {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |problem: PositionProblem| PositionError {
            input: s.to_owned(),
            problem,
        };
        match s {
            "earliest" | "beginning" | "start" | "oldest" => return Ok(Self::Earliest),
            "latest" | "end" | "newest" => return Ok(Self::Latest),
            _ => {}
        }
        if let Some(time) = s.strip_prefix('@') {
            return parse_time(time)
                .map(Self::Timestamp)
                .map_err(|e| error(e.into()));
        }
        if let Some(n) = s.strip_prefix('-') {
            return match n.parse::<i64>() {
                Ok(n) => Ok(Self::FromEnd(n)),
                Err(_) => Err(error(PositionProblem::NotANumber)),
            };
        }
        if let Ok(offset) = s.parse::<i64>() {
            return Ok(Self::Offset(offset));
        }
        match humantime::parse_duration(s) {
            // Longer ago than 1970 is the whole log: a negative time would
            // be one of Kafka's special positions.
            Ok(ago) => Ok(
                match now_ms().saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)) {
                    ms if ms < 0 => Self::Earliest,
                    ms => Self::Timestamp(ms),
                },
            ),
            Err(_) => Err(error(PositionProblem::Unknown)),
        }
    }
}

/// Parses an RFC 3339 time (UTC, `Z`) or epoch milliseconds, from 1970 on.
///
/// Kafka looks offsets up by times from 1970 on: a negative time in a
/// ListOffsets request is one of its special positions (-1 latest, -2
/// earliest), so `@-1` would silently mean "latest".
///
/// # Errors
///
/// [`TimeError`] saying what is wrong.
pub fn parse_time(s: &str) -> Result<i64, TimeError> {
    if let Ok(ms) = s.parse::<i64>() {
        if ms < 0 {
            return Err(TimeError::BeforeEpoch);
        }
        if DateTime::from_timestamp_millis(ms).is_none() {
            return Err(TimeError::TooLate);
        }
        return Ok(ms);
    }
    let time = humantime::parse_rfc3339_weak(s)?;
    let since = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TimeError::BeforeEpoch)?;
    Ok(i64::try_from(since.as_millis())?)
}

/// Where a partition stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Until {
    /// Never: follow new records (tail).
    #[default]
    Never,
    /// The end of the log taken at start: the last stable offset under
    /// read_committed, the high watermark under read_uncommitted.
    End,
    /// The high watermark taken at start, under read_committed too: the
    /// read waits for the transactions open below it to end, so it sees
    /// everything committed before it started.
    HighWatermark,
    /// The first record at or after this time (ms since the epoch), which
    /// is not delivered; or, when the partition has nothing newer, once
    /// the clock passes the time.
    Timestamp(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse() {
        assert_eq!(
            "earliest".parse::<StartOffset>().unwrap(),
            StartOffset::Earliest
        );
        assert_eq!("end".parse::<StartOffset>().unwrap(), StartOffset::Latest);
        assert_eq!(
            "42".parse::<StartOffset>().unwrap(),
            StartOffset::Offset(42)
        );
        assert_eq!(
            "-5".parse::<StartOffset>().unwrap(),
            StartOffset::FromEnd(5)
        );
        assert_eq!(
            "@1700000000000".parse::<StartOffset>().unwrap(),
            StartOffset::Timestamp(1_700_000_000_000)
        );
        assert_eq!(
            "@2023-11-14T22:13:20Z".parse::<StartOffset>().unwrap(),
            StartOffset::Timestamp(1_700_000_000_000)
        );
        let StartOffset::Timestamp(t) = "15m".parse::<StartOffset>().unwrap() else {
            panic!("a duration is a time");
        };
        assert!((now_ms() - 15 * 60_000 - t).abs() < 5_000);
        // Kafka's special positions are never reached through a time.
        for bad in ["@-1", "@-2", "@9223372036854775807"] {
            let e = bad.parse::<StartOffset>().unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(
            "100000y".parse::<StartOffset>().unwrap(),
            StartOffset::Earliest
        );
        let e = "soon".parse::<StartOffset>().unwrap_err().to_string();
        assert!(e.contains("\"soon\""), "{e}");
        assert!("-x".parse::<StartOffset>().is_err());
    }
}

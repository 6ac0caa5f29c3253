//! What a record is counted under: `--by value|key|json:/pointer|regex:PATTERN`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use regex::bytes::{CaptureLocations, Regex};

use crate::consume::filter::parse_regex;
use crate::record::ConsumedRecord;

/// Reads the counting key out of a record.
#[derive(Debug, Clone)]
pub enum Extractor {
    /// The whole value.
    Value,
    /// The record key.
    Key,
    /// A field of the value parsed as JSON, by JSON pointer (RFC 6901).
    Json(String),
    /// The first capture group of a regular expression on the value (the
    /// whole match when it has no group).
    Regex(Regex),
}

impl FromStr for Extractor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "value" => return Ok(Self::Value),
            "key" => return Ok(Self::Key),
            _ => {}
        }
        if let Some(pointer) = s.strip_prefix("json:") {
            if !pointer.starts_with('/') {
                return Err(format!(
                    "\"{s}\": a JSON pointer starts with / (json:/level, json:/http/status)"
                ));
            }
            return Ok(Self::Json(pointer.to_owned()));
        }
        if let Some(pattern) = s.strip_prefix("regex:") {
            return parse_regex(pattern)
                .map(Self::Regex)
                .map_err(|e| e.to_string());
        }
        Err(format!(
            "\"{s}\": expected value, key, json:/POINTER or regex:PATTERN"
        ))
    }
}

impl fmt::Display for Extractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value => f.write_str("value"),
            Self::Key => f.write_str("key"),
            Self::Json(p) => write!(f, "json:{p}"),
            Self::Regex(re) => write!(f, "regex:{}", re.as_str()),
        }
    }
}

/// An [`Extractor`] with its reusable scratch space.
#[derive(Debug)]
pub struct KeyReader {
    extractor: Extractor,
    locations: Option<CaptureLocations>,
}

impl KeyReader {
    /// Prepares `extractor`.
    pub fn new(extractor: Extractor) -> Self {
        let locations = match &extractor {
            Extractor::Regex(re) => Some(re.capture_locations()),
            _ => None,
        };
        Self {
            extractor,
            locations,
        }
    }

    /// The key `record` is counted under; `None` when the extractor cannot
    /// read it (no value or key, not JSON, no such field, no match): the
    /// "unparsed" bucket. Bytes that are not UTF-8 are replaced with U+FFFD.
    pub fn read<'r>(&mut self, record: &'r ConsumedRecord) -> Option<Cow<'r, str>> {
        match &self.extractor {
            Extractor::Value => record.value.as_deref().map(String::from_utf8_lossy),
            Extractor::Key => record.key.as_deref().map(String::from_utf8_lossy),
            Extractor::Json(pointer) => {
                let doc: serde_json::Value =
                    serde_json::from_slice(record.value.as_deref()?).ok()?;
                match doc.pointer(pointer)? {
                    serde_json::Value::String(s) => Some(Cow::Owned(s.clone())),
                    other => Some(Cow::Owned(other.to_string())),
                }
            }
            Extractor::Regex(re) => {
                let value = record.value.as_deref()?;
                let locations = self.locations.as_mut()?;
                re.captures_read(locations, value)?;
                let (start, end) = locations.get(1).or_else(|| locations.get(0))?;
                Some(String::from_utf8_lossy(&value[start..end]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> ConsumedRecord {
        ConsumedRecord {
            topic: Arc::from("t"),
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Default::default(),
        }
    }

    fn read(by: &str, r: &ConsumedRecord) -> Option<String> {
        let mut reader = KeyReader::new(by.parse().unwrap());
        reader.read(r).map(Cow::into_owned)
    }

    #[test]
    fn each_extractor() {
        let line = br#"{"level":"ERROR","http":{"status":500},"tags":["a"]}"#;
        let r = record(Some(b"svc"), Some(line));
        assert_eq!(read("key", &r).as_deref(), Some("svc"));
        assert_eq!(read("value", &r).as_deref(), std::str::from_utf8(line).ok());
        assert_eq!(read("json:/level", &r).as_deref(), Some("ERROR"));
        assert_eq!(read("json:/http/status", &r).as_deref(), Some("500"));
        assert_eq!(read("json:/tags", &r).as_deref(), Some(r#"["a"]"#));
        assert_eq!(read("json:/missing", &r), None);

        let log = record(None, Some(b"2026-11-24T10:00:00Z WARN checkout: slow"));
        assert_eq!(
            read(r"regex:^\S+ (ERROR|WARN|INFO)", &log).as_deref(),
            Some("WARN")
        );
        assert_eq!(read("regex:[a-z]+:", &log).as_deref(), Some("checkout:"));
        assert_eq!(read("regex:^nomatch", &log), None);
        assert_eq!(read("json:/level", &log), None);
        assert_eq!(read("key", &log), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced() {
        let r = record(Some(&[0x66, 0xff]), Some(&[0xfe]));
        assert_eq!(read("key", &r).as_deref(), Some("f\u{fffd}"));
        assert_eq!(read("value", &r).as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn bad_extractors_are_refused() {
        assert!("json:level".parse::<Extractor>().is_err());
        assert!("regex:(".parse::<Extractor>().is_err());
        assert!("header:x".parse::<Extractor>().is_err());
        assert_eq!(
            r"regex:^\S+".parse::<Extractor>().unwrap().to_string(),
            r"regex:^\S+"
        );
    }
}

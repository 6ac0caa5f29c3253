//! What a record is counted under: `--by value|key|json:/pointer|regex:PATTERN`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use regex::bytes::{CaptureLocations, Regex};

use crate::json_path::JsonPaths;
use crate::record::ConsumedRecord;

/// Reads the counting key out of a record.
#[derive(Debug, Clone)]
pub enum Extractor {
    /// The whole value.
    Value,
    /// The record key.
    Key,
    /// A field of the value parsed as JSON, by JSON pointer (RFC 6901).
    /// A string is counted under its text, any other value under its
    /// compact JSON text (`500`, `true`, `null`, `["a"]`).
    Json(String),
    /// The first capture group of a regular expression on the value (the
    /// whole match when it has no group), as bytes: Unicode mode is on, and
    /// `(?-u)` matches any byte.
    Regex(Regex),
}

/// An extractor that cannot be read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractorError {
    /// `json:` with a pointer that does not start with `/`.
    #[error("\"{input}\": a JSON pointer starts with / (json:/level, json:/http/status)")]
    NotAPointer {
        /// The extractor as given.
        input: String,
    },
    /// `regex:` with a pattern that does not compile.
    #[error("invalid regex \"{pattern}\"")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// The compiler's complaint.
        #[source]
        source: crate::pattern::PatternError,
    },
    /// None of the forms.
    #[error("\"{input}\": expected value, key, json:/POINTER or regex:PATTERN")]
    Unknown {
        /// The extractor as given.
        input: String,
    },
}

impl FromStr for Extractor {
    type Err = ExtractorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "value" => return Ok(Self::Value),
            "key" => return Ok(Self::Key),
            _ => {}
        }
        if let Some(pointer) = s.strip_prefix("json:") {
            if !pointer.starts_with('/') {
                return Err(ExtractorError::NotAPointer {
                    input: s.to_owned(),
                });
            }
            return Ok(Self::Json(pointer.to_owned()));
        }
        if let Some(pattern) = s.strip_prefix("regex:") {
            return crate::pattern::compile(pattern)
                .map(Self::Regex)
                .map_err(|source| ExtractorError::Regex {
                    pattern: pattern.to_owned(),
                    source,
                });
        }
        Err(ExtractorError::Unknown {
            input: s.to_owned(),
        })
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
    /// The JSON pointer, looked up without building a `Value`.
    json: Option<JsonPaths>,
}

impl KeyReader {
    /// Prepares `extractor`.
    pub fn new(extractor: Extractor) -> Self {
        let locations = match &extractor {
            Extractor::Regex(re) => Some(re.capture_locations()),
            _ => None,
        };
        // Read as a `Value` would be, so that a document is JSON, and a
        // key reads, exactly as when each record was parsed whole.
        let json = match &extractor {
            Extractor::Json(pointer) => {
                JsonPaths::new([pointer.as_str()]).map(JsonPaths::as_values)
            }
            _ => None,
        };
        Self {
            extractor,
            locations,
            json,
        }
    }

    /// The key `record` is counted under; `None` when the extractor cannot
    /// read it (no value or key, not JSON, no such field, no match): the
    /// "unparsed" bucket. Bytes that are not UTF-8 are replaced with U+FFFD.
    pub fn read<'r>(&mut self, record: &'r ConsumedRecord) -> Option<Cow<'r, str>> {
        match &self.extractor {
            Extractor::Value => record.value.as_deref().map(String::from_utf8_lossy),
            Extractor::Key => record.key.as_deref().map(String::from_utf8_lossy),
            Extractor::Json(_) => {
                let paths = self.json.as_ref()?;
                let mut key = None;
                let hits = paths.lookup(record.value.as_deref()?, |_, found| {
                    key = Some(found.to_text());
                    true
                })?;
                key.filter(|_| hits != 0).map(Cow::Owned)
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

/// Reads what a record is aggregated under, and the fields its
/// aggregates take.
#[derive(Debug)]
pub struct RecordReader {
    by: Vec<KeyReader>,
    fields: Vec<KeyReader>,
}

impl RecordReader {
    /// Reads the group key with `by` (several: a composite key) and one
    /// field per extractor of `fields`.
    pub fn new(by: &[Extractor], fields: impl IntoIterator<Item = Extractor>) -> Self {
        Self {
            by: by.iter().cloned().map(KeyReader::new).collect(),
            fields: fields.into_iter().map(KeyReader::new).collect(),
        }
    }

    /// Whether the key has several parts, written as a JSON array.
    pub fn composite(&self) -> bool {
        self.by.len() > 1
    }

    /// The group key of `record` (`None`: a part could not be read, the
    /// unparsed bucket), and each field into `inputs` (cleared first).
    pub fn read<'r>(
        &mut self,
        record: &'r ConsumedRecord,
        inputs: &mut Vec<Option<Cow<'r, str>>>,
    ) -> Option<Cow<'r, str>> {
        inputs.clear();
        inputs.extend(self.fields.iter_mut().map(|f| f.read(record)));
        match self.by.as_mut_slice() {
            [one] => one.read(record),
            several => {
                let parts: Option<Vec<Cow<'r, str>>> =
                    several.iter_mut().map(|r| r.read(record)).collect();
                serde_json::to_string(&parts?).ok().map(Cow::Owned)
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
            timestamp_type: crate::record::TimestampType::CreateTime,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Default::default(),
            decoded: Default::default(),
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
    fn json_keys_read_as_a_parsed_value_gives_them() {
        let json = |value: &str| read("json:/k", &record(None, Some(value.as_bytes())));
        // Objects in a `Value`'s key order, numbers as serde_json writes
        // them, the last of a repeated key.
        assert_eq!(
            json(r#"{"k":{"z":1,"a":[2.50,{"y":null,"b":true}]}}"#).as_deref(),
            Some(r#"{"a":[2.5,{"b":true,"y":null}],"z":1}"#)
        );
        assert_eq!(json(r#"{"k":1e2}"#).as_deref(), Some("100.0"));
        assert_eq!(json(r#"{"k":"a\u00e9\n"}"#).as_deref(), Some("a\u{e9}\n"));
        assert_eq!(json(r#"{"k":1,"k":"two"}"#).as_deref(), Some("two"));
        assert_eq!(json(r#"{"k":{"x":1},"k":2}"#).as_deref(), Some("2"));
        // What a `Value` refuses anywhere in the record is unparsed.
        let deep = format!(r#"{{"k":"v","x":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        for bad in [r#"{"k":"v"} x"#, r#"{"k":"v","x":1e400}"#, &deep] {
            assert_eq!(json(bad), None, "{bad}");
        }
        let r = record(None, Some(br#"{"a":{"b":[1,{"c":"d"}]}}"#));
        assert_eq!(read("json:/a/b/1/c", &r).as_deref(), Some("d"));
        assert_eq!(read("json:/a/b/01/c", &r), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced() {
        let r = record(Some(&[0x66, 0xff]), Some(&[0xfe]));
        assert_eq!(read("key", &r).as_deref(), Some("f\u{fffd}"));
        assert_eq!(read("value", &r).as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn several_extractors_make_a_composite_key() {
        let by: Vec<Extractor> = vec!["json:/svc".parse().unwrap(), "key".parse().unwrap()];
        let mut reader = RecordReader::new(&by, ["json:/ms".parse().unwrap()]);
        assert!(reader.composite());
        let mut inputs = Vec::new();
        let r = record(Some(b"h1"), Some(br#"{"svc":"api","ms":12}"#));
        let key = reader.read(&r, &mut inputs);
        assert_eq!(key.as_deref(), Some(r#"["api","h1"]"#));
        assert_eq!(inputs, [Some(Cow::Borrowed("12"))]);
        let no_key = record(None, Some(br#"{"svc":"api"}"#));
        assert_eq!(reader.read(&no_key, &mut inputs), None);
        assert_eq!(inputs, [None]);
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

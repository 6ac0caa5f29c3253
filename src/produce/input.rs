//! Input parsing for `weir produce`: delimited records, an optional key
//! delimiter or fixed key, fixed headers, or JSON lines.

use std::fmt;
use std::io::BufRead;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::Header;
use crate::produce::producer::ProduceRecord;

/// How input records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// The record is the value, or `key SEP value` with a key delimiter.
    #[default]
    Raw,
    /// One JSON object per record: `key`, `value` (or `key_b64`,
    /// `value_b64`), `headers` (and `headers_b64`), `partition`,
    /// `timestamp` (ms); `topic` and `offset`, as `weir consume --json`
    /// writes them, are ignored.
    ///
    /// `headers` is a list, as `weir consume --json` writes it, of
    /// `{"key": K, "value": V}` (`V` a string or null) or
    /// `{"key": K, "value_b64": B}` entries, or `[K, V]` pairs; or an
    /// object `{K: V}`, whose entries are taken in the order written. A
    /// `headers_b64` object `{K: B}` adds base64-encoded values after them.
    /// Order and repeated keys are kept.
    Json,
}

/// Turns one input record into a [`ProduceRecord`].
#[derive(Debug, Clone, Default)]
pub struct RecordParser {
    /// Input format.
    pub format: InputFormat,
    /// Splits the key from the value at its first occurrence (kcat's `-K`).
    pub key_delimiter: Option<Vec<u8>>,
    /// A key for every record (`-k`).
    pub fixed_key: Option<Vec<u8>>,
    /// Headers added to every record (`-H k=v`), after its own.
    pub headers: Vec<Header>,
    /// Send empty values as null (tombstones).
    pub null_empty: bool,
    /// A partition for every record (`-p`), over the JSON `partition`.
    pub partition: Option<i32>,
    /// Drop a JSON record's `partition`, so that the partitioner places
    /// it (copying into a topic with fewer partitions, or re-partitioning
    /// by key).
    pub ignore_json_partition: bool,
}

/// Why an input record was refused. The caller adds the line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// `-K` was given and the record does not contain the delimiter.
    #[error("key delimiter {delimiter:?} not found")]
    MissingKeyDelimiter {
        /// The delimiter, as text.
        delimiter: String,
    },
    /// Invalid JSON or a field of the wrong type.
    #[error("invalid JSON record: {0}")]
    Json(String),
    /// A `*_b64` field that is not base64.
    #[error("field \"{field}\" is not valid base64: {reason}")]
    Base64 {
        /// The field.
        field: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRecord {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_b64: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_b64: Option<String>,
    #[serde(default)]
    headers: JsonHeaders,
    #[serde(default)]
    headers_b64: JsonHeadersB64,
    #[serde(default)]
    partition: Option<i32>,
    #[serde(default)]
    timestamp: Option<i64>,
    /// Written by `weir consume --json`; ignored, so its output can be
    /// produced again as it is.
    #[serde(default, rename = "topic")]
    _topic: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "offset")]
    _offset: Option<serde::de::IgnoredAny>,
}

/// A header value as JSON input gives it, decoded later so that a bad
/// base64 value is a [`ParseError::Base64`] naming the header.
#[derive(Debug, PartialEq, Eq)]
enum JsonHeaderValue {
    Null,
    Text(String),
    Base64(String),
}

/// `headers`: a list of entries or an object, in the order written.
#[derive(Debug, Default)]
struct JsonHeaders(Vec<(String, JsonHeaderValue)>);

/// `headers_b64`: an object of base64 values, in the order written.
#[derive(Debug, Default)]
struct JsonHeadersB64(Vec<(String, String)>);

impl<'de> Deserialize<'de> for JsonHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;

        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = JsonHeaders;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of {\"key\":…,\"value\":…} headers or [key, value] pairs, or an object",
                )
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JsonHeaders::default())
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(HeaderEntry(key, value)) = seq.next_element()? {
                    out.push((key, value));
                }
                Ok(JsonHeaders(out))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // Entry by entry, so the order (and a repeated key) is kept.
                let mut out = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Option<String>>()? {
                    out.push((
                        key,
                        value.map_or(JsonHeaderValue::Null, JsonHeaderValue::Text),
                    ));
                }
                Ok(JsonHeaders(out))
            }
        }

        deserializer.deserialize_any(HeadersVisitor)
    }
}

impl<'de> Deserialize<'de> for JsonHeadersB64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct B64Visitor;

        impl<'de> Visitor<'de> for B64Visitor {
            type Value = JsonHeadersB64;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of base64 header values")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JsonHeadersB64::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    out.push(entry);
                }
                Ok(JsonHeadersB64(out))
            }
        }

        deserializer.deserialize_any(B64Visitor)
    }
}

/// One entry of a `headers` list: `{"key": K, "value": V}`,
/// `{"key": K, "value_b64": B}` or `[K, V]`. A missing or null value is a
/// null value, as for the record's own `value`.
struct HeaderEntry(String, JsonHeaderValue);

impl<'de> Deserialize<'de> for HeaderEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = HeaderEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a header {\"key\":…,\"value\":…}, {\"key\":…,\"value_b64\":…} or [key, value]",
                )
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let key: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let value: Option<String> = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(HeaderEntry(
                    key,
                    value.map_or(JsonHeaderValue::Null, JsonHeaderValue::Text),
                ))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut key: Option<String> = None;
                let mut text: Option<String> = None;
                let mut b64: Option<String> = None;
                while let Some(field) = map.next_key::<String>()? {
                    let slot = match field.as_str() {
                        "key" => {
                            if key.is_some() {
                                return Err(de::Error::duplicate_field("key"));
                            }
                            key = Some(map.next_value()?);
                            continue;
                        }
                        "value" => &mut text,
                        "value_b64" => &mut b64,
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["key", "value", "value_b64"],
                            ));
                        }
                    };
                    *slot = map.next_value()?;
                }
                let key = key.ok_or_else(|| de::Error::missing_field("key"))?;
                let value = match (text, b64) {
                    (Some(_), Some(_)) => {
                        return Err(de::Error::custom(format!(
                            "header \"{key}\" has both \"value\" and \"value_b64\""
                        )));
                    }
                    (Some(t), None) => JsonHeaderValue::Text(t),
                    (None, Some(b)) => JsonHeaderValue::Base64(b),
                    (None, None) => JsonHeaderValue::Null,
                };
                Ok(HeaderEntry(key, value))
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

impl RecordParser {
    /// Parses one record (without its delimiter).
    ///
    /// # Errors
    ///
    /// [`ParseError`] for a missing key delimiter or invalid JSON.
    pub fn parse(&self, input: &[u8]) -> Result<ProduceRecord, ParseError> {
        let mut record = match self.format {
            InputFormat::Raw => self.parse_raw(input)?,
            InputFormat::Json => Self::parse_json(input)?,
        };
        if let Some(key) = &self.fixed_key {
            record.key = Some(key.clone());
        }
        if self.partition.is_some() || self.ignore_json_partition {
            record.partition = self.partition;
        }
        record.headers.extend(self.headers.iter().cloned());
        if self.null_empty && record.value.as_ref().is_some_and(Vec::is_empty) {
            record.value = None;
        }
        Ok(record)
    }

    fn parse_raw(&self, input: &[u8]) -> Result<ProduceRecord, ParseError> {
        let (key, value) = match &self.key_delimiter {
            None => (None, input),
            Some(delimiter) => match find(input, delimiter) {
                Some(at) => (Some(input[..at].to_vec()), &input[at + delimiter.len()..]),
                None => {
                    return Err(ParseError::MissingKeyDelimiter {
                        delimiter: String::from_utf8_lossy(delimiter).into_owned(),
                    });
                }
            },
        };
        Ok(ProduceRecord {
            key,
            value: Some(value.to_vec()),
            ..Default::default()
        })
    }

    fn parse_json(input: &[u8]) -> Result<ProduceRecord, ParseError> {
        let json: JsonRecord =
            serde_json::from_slice(input).map_err(|e| ParseError::Json(e.to_string()))?;
        let pick =
            |text: Option<String>, b64: Option<String>, field: &'static str| match (text, b64) {
                (Some(_), Some(_)) => Err(ParseError::Json(format!(
                    "both \"{}\" and \"{field}\" are set",
                    field.trim_end_matches("_b64")
                ))),
                (Some(t), None) => Ok(Some(t.into_bytes())),
                (None, Some(b)) => {
                    BASE64
                        .decode(b.as_bytes())
                        .map(Some)
                        .map_err(|e| ParseError::Base64 {
                            field,
                            reason: e.to_string(),
                        })
                }
                (None, None) => Ok(None),
            };
        let decode = |field: &'static str, i: usize, key: &str, b64: &str| {
            BASE64
                .decode(b64.as_bytes())
                .map_err(|e| ParseError::Base64 {
                    field,
                    reason: format!("header {} \"{key}\": {e}", i + 1),
                })
        };
        let mut headers: Vec<Header> =
            Vec::with_capacity(json.headers.0.len() + json.headers_b64.0.len());
        for (i, (key, value)) in json.headers.0.into_iter().enumerate() {
            let value = match value {
                JsonHeaderValue::Null => None,
                JsonHeaderValue::Text(t) => Some(t.into_bytes()),
                JsonHeaderValue::Base64(b) => Some(decode("headers", i, &key, &b)?),
            };
            headers.push((key, value));
        }
        for (i, (key, b64)) in json.headers_b64.0.into_iter().enumerate() {
            let value = decode("headers_b64", i, &key, &b64)?;
            headers.push((key, Some(value)));
        }
        Ok(ProduceRecord {
            key: pick(json.key, json.key_b64, "key_b64")?,
            value: pick(json.value, json.value_b64, "value_b64")?,
            headers,
            timestamp_ms: json.timestamp,
            partition: json.partition,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads records separated by `delimiter` (any non-empty byte string).
#[derive(Debug)]
pub struct DelimitedReader<R> {
    inner: R,
    delimiter: Vec<u8>,
}

impl<R: BufRead> DelimitedReader<R> {
    /// Wraps `inner`.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    pub fn new(inner: R, delimiter: Vec<u8>) -> Self {
        assert!(!delimiter.is_empty(), "empty delimiter");
        Self { inner, delimiter }
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Reads the next record into `buf` (cleared first), without its
    /// delimiter. Returns `false` at the end of input. A last record
    /// without a trailing delimiter is still a record; a trailing `\r` is
    /// kept (only the delimiter is removed).
    ///
    /// # Errors
    ///
    /// I/O errors of the underlying reader.
    pub fn next_record(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        buf.clear();
        let last = *self.delimiter.last().expect("non-empty");
        loop {
            let n = self.inner.read_until(last, buf)?;
            if n == 0 {
                return Ok(!buf.is_empty());
            }
            if buf.ends_with(&self.delimiter) {
                buf.truncate(buf.len() - self.delimiter.len());
                return Ok(true);
            }
            if buf.last() != Some(&last) {
                // End of input without a delimiter.
                return Ok(true);
            }
        }
    }
}

/// Interprets `\n`, `\t`, `\r`, `\0` and `\\` in a delimiter given on the
/// command line.
pub fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('r') => out.push(b'\r'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some(other) => {
                out.push(b'\\');
                let mut b = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut b).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(input: &str, delimiter: &str) -> Vec<String> {
        let mut r = DelimitedReader::new(input.as_bytes(), unescape(delimiter));
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while r.next_record(&mut buf).unwrap() {
            out.push(String::from_utf8(buf.clone()).unwrap());
        }
        out
    }

    #[test]
    fn reads_lines_and_multibyte_delimiters() {
        assert_eq!(records("a\nb\n\nc", "\\n"), ["a", "b", "", "c"]);
        assert_eq!(records("a\nb\n", "\\n"), ["a", "b"]);
        assert_eq!(records("a||b|c||", "||"), ["a", "b|c"]);
        assert_eq!(records("", "\\n"), Vec::<String>::new());
    }

    #[test]
    fn key_delimiter_splits_at_first_occurrence() {
        let p = RecordParser {
            partition: None,
            key_delimiter: Some(b":".to_vec()),
            ..Default::default()
        };
        let r = p.parse(b"user-1:a:b").unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"user-1"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"a:b"[..]));
        assert_eq!(
            p.parse(b"no delimiter").unwrap_err(),
            ParseError::MissingKeyDelimiter {
                delimiter: ":".into()
            }
        );
        // An empty key is a key, not a null key.
        assert_eq!(p.parse(b":v").unwrap().key.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn json_records_with_base64_headers_partition_timestamp() {
        let p = RecordParser {
            partition: None,
            format: InputFormat::Json,
            ..Default::default()
        };
        let r = p
            .parse(br#"{"key":"k","value_b64":"AP8=","headers":{"h":"v"},"partition":2,"timestamp":1700000000000}"#)
            .unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&[0u8, 255][..]));
        assert_eq!(r.headers, [("h".to_owned(), Some(b"v".to_vec()))]);
        assert_eq!(r.partition, Some(2));
        assert_eq!(r.timestamp_ms, Some(1_700_000_000_000));
        assert!(p.parse(br#"{"value": null}"#).unwrap().value.is_none());
        assert!(matches!(p.parse(b"{not json"), Err(ParseError::Json(_))));
        assert!(matches!(
            p.parse(br#"{"value_b64":"!!"}"#),
            Err(ParseError::Base64 { .. })
        ));
        assert!(matches!(
            p.parse(br#"{"value":"a","value_b64":"YQ=="}"#),
            Err(ParseError::Json(_))
        ));
    }

    fn headers(list: &[(&str, Option<&[u8]>)]) -> Vec<Header> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn fixed_key_headers_and_null_empty() {
        let p = RecordParser {
            partition: None,
            fixed_key: Some(b"K".to_vec()),
            headers: headers(&[("src", Some(b"weir")), ("src", Some(b"x")), ("n", None)]),
            null_empty: true,
            ..Default::default()
        };
        let r = p.parse(b"").unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"K"[..]));
        // Every -H pair, in order, a repeated key and a null value kept.
        assert_eq!(
            r.headers,
            headers(&[("src", Some(b"weir")), ("src", Some(b"x")), ("n", None)])
        );
        assert!(r.value.is_none());
    }

    #[test]
    fn fixed_headers_follow_the_records_own() {
        let p = RecordParser {
            format: InputFormat::Json,
            headers: headers(&[("src", Some(b"weir"))]),
            ..Default::default()
        };
        let r = p
            .parse(br#"{"value":"v","headers":[["src","app"],["a","1"]]}"#)
            .unwrap();
        assert_eq!(
            r.headers,
            headers(&[
                ("src", Some(b"app")),
                ("a", Some(b"1")),
                ("src", Some(b"weir"))
            ])
        );
    }

    fn json_headers(input: &str) -> Result<Vec<Header>, ParseError> {
        let p = RecordParser {
            format: InputFormat::Json,
            ..Default::default()
        };
        p.parse(input.as_bytes()).map(|r| r.headers)
    }

    #[test]
    fn json_header_list_keeps_order_repeats_null_and_binary() {
        let want = headers(&[
            ("a", Some(b"1")),
            ("a", Some(b"2")),
            ("n", None),
            ("bin", Some(&[0xc3, 0x28])),
            ("e", Some(b"")),
        ]);
        // As `weir consume --json` writes them.
        assert_eq!(
            json_headers(
                r#"{"headers":[{"key":"a","value":"1"},{"key":"a","value":"2"},{"key":"n","value":null},{"key":"bin","value_b64":"wyg="},{"key":"e","value":""}]}"#
            )
            .unwrap(),
            want
        );
        // Pairs, and an entry without a value (null, as for a record's).
        assert_eq!(
            json_headers(
                r#"{"headers":[["a","1"],["a","2"],{"key":"n"},{"key":"bin","value_b64":"wyg="},["e",""]]}"#
            )
            .unwrap(),
            want
        );
        assert_eq!(
            json_headers(r#"{"headers":[["n",null]]}"#).unwrap(),
            headers(&[("n", None)])
        );
        assert_eq!(json_headers(r#"{"headers":[]}"#).unwrap(), []);
        assert_eq!(json_headers(r#"{"headers":null}"#).unwrap(), []);
        assert_eq!(json_headers(r#"{}"#).unwrap(), []);
    }

    #[test]
    fn json_header_object_is_still_read_in_written_order() {
        // Today's object form, in the order written (not sorted), a
        // repeated key kept, null allowed; headers_b64 after it.
        assert_eq!(
            json_headers(
                r#"{"headers":{"z":"1","a":"2","z":"3","n":null},"headers_b64":{"raw":"wyg=","b":"AA=="}}"#
            )
            .unwrap(),
            headers(&[
                ("z", Some(b"1")),
                ("a", Some(b"2")),
                ("z", Some(b"3")),
                ("n", None),
                ("raw", Some(&[0xc3, 0x28])),
                ("b", Some(&[0])),
            ])
        );
        // headers_b64 after a list too.
        assert_eq!(
            json_headers(r#"{"headers":[["a","1"]],"headers_b64":{"a":"Mg=="}}"#).unwrap(),
            headers(&[("a", Some(b"1")), ("a", Some(b"2"))])
        );
    }

    #[test]
    fn json_header_errors_name_the_header() {
        let bad = [
            r#"{"headers":[{"key":"a","value":"1","value_b64":"MQ=="}]}"#,
            r#"{"headers":[{"value":"1"}]}"#,
            r#"{"headers":[{"key":"a","other":"1"}]}"#,
            r#"{"headers":[["a"]]}"#,
            r#"{"headers":[["a","1","2"]]}"#,
            r#"{"headers":[["a",1]]}"#,
            r#"{"headers":{"a":1}}"#,
            r#"{"headers":"a=1"}"#,
            r#"{"headers_b64":[["a","MQ=="]]}"#,
            r#"{"headers_b64":{"a":null}}"#,
        ];
        for input in bad {
            assert!(
                matches!(json_headers(input), Err(ParseError::Json(_))),
                "{input}: {:?}",
                json_headers(input)
            );
        }
        let e =
            json_headers(r#"{"headers":[["a","1"],{"key":"k","value_b64":"!!"}]}"#).unwrap_err();
        assert!(
            matches!(&e, ParseError::Base64 { field: "headers", reason } if reason.contains("header 2 \"k\"")),
            "{e:?}"
        );
        let e = json_headers(r#"{"headers_b64":{"k":"!!"}}"#).unwrap_err();
        assert!(
            matches!(&e, ParseError::Base64 { field: "headers_b64", reason } if reason.contains("\"k\"")),
            "{e:?}"
        );
    }

    /// `weir consume --json | weir produce --format json` copies every
    /// header exactly: what the writer writes, the parser reads back.
    #[test]
    fn consumed_json_headers_are_produced_exactly() {
        use crate::consume::output::{OutputFormat, RecordWriter};
        use crate::record::ConsumedRecord;

        let record = ConsumedRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp_ms: 1_700_000_000_000,
            key: Some(b"k".to_vec()),
            value: Some(vec![0xff]),
            headers: headers(&[
                ("z", Some(b"1")),
                ("a", None),
                ("z", Some(b"")),
                ("bin", Some(&[0x80, 0, 0xff])),
                ("q\"\n", Some("é\u{1}".as_bytes())),
                ("z", Some(b"3")),
            ]),
        };
        let mut w = RecordWriter::new(Vec::new(), OutputFormat::Json);
        w.write(&record).unwrap();
        let line = w.into_inner();
        let p = RecordParser {
            format: InputFormat::Json,
            ..Default::default()
        };
        let r = p.parse(line.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(r.headers, record.headers);
        assert_eq!(r.key, record.key);
        assert_eq!(r.value, record.value);
        assert_eq!(r.timestamp_ms, Some(record.timestamp_ms));
    }

    #[test]
    fn unescapes_delimiters() {
        assert_eq!(unescape("\\n"), b"\n");
        assert_eq!(unescape("\\t|"), b"\t|");
        assert_eq!(unescape("\\\\"), b"\\");
        assert_eq!(unescape(";"), b";");
    }
}

//! JSON-lines input: one object per record, as `weir consume --json`
//! writes them, headers as an ordered list (or an object read in the
//! order written) with text, null or base64 values.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{JsonProblem, ParseError};
use crate::Header;
use crate::produce::producer::ProduceRecord;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRecord {
    #[serde(default)]
    key: Option<TextOrJson>,
    #[serde(default)]
    key_b64: Option<String>,
    #[serde(default)]
    value: Option<TextOrJson>,
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

/// `key` or `value`: a string is its text; any other JSON (an object, an
/// array, a number or a boolean, as `weir consume --registry --json`
/// writes a decoded value) is its JSON text, for `--value-schema` to
/// encode.
struct TextOrJson(String);

impl<'de> Deserialize<'de> for TextOrJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self(match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }))
    }
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

/// Parses one JSON-lines record.
pub(super) fn parse(input: &[u8]) -> Result<ProduceRecord, ParseError> {
    let json: JsonRecord = serde_json::from_slice(input).map_err(|e| ParseError::Json(e.into()))?;
    let pick = |text: Option<String>, b64: Option<String>, field: &'static str| match (text, b64) {
        (Some(_), Some(_)) => Err(ParseError::Json(JsonProblem::BothSet(
            field.trim_end_matches("_b64"),
        ))),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(b)) => {
            BASE64
                .decode(b.as_bytes())
                .map(Some)
                .map_err(|source| ParseError::Base64 {
                    field,
                    header: None,
                    source,
                })
        }
        (None, None) => Ok(None),
    };
    let decode = |field: &'static str, i: usize, key: &str, b64: &str| {
        BASE64
            .decode(b64.as_bytes())
            .map_err(|source| ParseError::Base64 {
                field,
                header: Some((i + 1, key.to_owned())),
                source,
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
        key: pick(json.key.map(|k| k.0), json.key_b64, "key_b64")?,
        value: pick(json.value.map(|v| v.0), json.value_b64, "value_b64")?,
        headers,
        timestamp_ms: json.timestamp,
        partition: json.partition,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{InputFormat, RecordParser};
    use super::*;

    fn headers(list: &[(&str, Option<&[u8]>)]) -> Vec<Header> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(<[u8]>::to_vec)))
            .collect()
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
            matches!(&e, ParseError::Base64 { field: "headers", .. } if crate::ErrorChain(&e).to_string().contains("header 2 \"k\"")),
            "{e:?}"
        );
        let e = json_headers(r#"{"headers_b64":{"k":"!!"}}"#).unwrap_err();
        assert!(
            matches!(&e, ParseError::Base64 { field: "headers_b64", .. } if crate::ErrorChain(&e).to_string().contains("\"k\"")),
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
            timestamp_type: crate::record::TimestampType::CreateTime,
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
            decoded: Default::default(),
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
}

//! Input parsing for `weir produce`: delimited records, an optional key
//! delimiter or fixed key, fixed headers, or JSON lines.

use std::io::BufRead;

use crate::Header;
use crate::produce::producer::ProduceRecord;

mod json;

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
    /// Encodes each value (JSON text) with a registry's schema
    /// (`--value-schema`); a value that does not fit is bad input.
    pub value_encoder: Option<std::sync::Arc<crate::registry::codec::Encoder>>,
    /// Encodes each key likewise (`--key-schema`).
    pub key_encoder: Option<std::sync::Arc<crate::registry::codec::Encoder>>,
}

/// Why an input record was refused. The caller adds the line number.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// `-K` was given and the record does not contain the delimiter.
    #[error("key delimiter {delimiter:?} not found")]
    MissingKeyDelimiter {
        /// The delimiter, as text.
        delimiter: String,
    },
    /// Invalid JSON or a field of the wrong type.
    #[error("invalid JSON record")]
    Json(#[source] JsonProblem),
    /// A key or value that does not fit its schema.
    #[error(transparent)]
    Schema(Box<SchemaMismatch>),
    /// A `*_b64` field that is not base64.
    #[error(
        "field \"{field}\" is not valid base64{}",
        .header.as_ref().map(|(n, key)| format!(" (header {n} \"{key}\")")).unwrap_or_default()
    )]
    Base64 {
        /// The field.
        field: &'static str,
        /// The header whose value it is (its place from 1, and its
        /// key), for the headers' fields.
        header: Option<(usize, String)>,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
}

/// A key or value that does not fit its schema (`--value-schema`,
/// `--key-schema`).
#[derive(Debug, thiserror::Error)]
#[error("the {part} {error}")]
pub struct SchemaMismatch {
    /// `key` or `value`.
    pub part: &'static str,
    /// What does not fit (naming the field); part of this error's own
    /// message, so not its source.
    pub error: crate::registry::codec::EncodeError,
}

/// What is wrong with a JSON record as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonProblem {
    /// It is not JSON, or a field has the wrong type.
    #[error(transparent)]
    Syntax(#[from] serde_json::Error),
    /// A field is given both as text and as base64.
    #[error("both \"{0}\" and \"{0}_b64\" are set")]
    BothSet(&'static str),
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
            InputFormat::Json => json::parse(input)?,
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
        let schema = |part, error| ParseError::Schema(Box::new(SchemaMismatch { part, error }));
        if let (Some(encoder), Some(value)) = (&self.value_encoder, &record.value) {
            record.value = Some(encoder.encode(value).map_err(|e| schema("value", e))?);
        }
        if let (Some(encoder), Some(key)) = (&self.key_encoder, &record.key) {
            record.key = Some(encoder.encode(key).map_err(|e| schema("key", e))?);
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
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [] => None,
        [byte] => memchr::memchr(*byte, haystack),
        _ => memchr::memmem::find(haystack, needle),
    }
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
            // One byte (the usual newline): `read_until` stopped at it.
            if self.delimiter.len() == 1 && buf.last() == Some(&last) {
                buf.pop();
                return Ok(true);
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
        assert!(matches!(
            p.parse(b"no delimiter").unwrap_err(),
            ParseError::MissingKeyDelimiter { delimiter } if delimiter == ":"
        ));
        // An empty key is a key, not a null key.
        assert_eq!(p.parse(b":v").unwrap().key.as_deref(), Some(&b""[..]));
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

    #[test]
    fn unescapes_delimiters() {
        assert_eq!(unescape("\\n"), b"\n");
        assert_eq!(unescape("\\t|"), b"\t|");
        assert_eq!(unescape("\\\\"), b"\\");
        assert_eq!(unescape(";"), b";");
    }
}

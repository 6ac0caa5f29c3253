//! Writing consumed records for `weir consume`: the raw value (kcat's
//! default), a `-f` template, or JSON lines (`--json`).
//!
//! [`RecordWriter`] allocates nothing per record: the value and template
//! formats write straight into the [`Write`] it is given, JSON lines are
//! assembled in one reused buffer. The caller supplies the buffering (a
//! [`std::io::BufWriter`]) and decides when to flush.

use std::future::Future;
use std::io::{self, Write};
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::record::ConsumedRecord;
use crate::timestamp::{DateFormat, DateFormatError, rfc3339_millis};

/// The fields a template may name, as written in the template.
const VALID_FIELDS: &str = "{topic}, {partition}, {offset}, {timestamp}, {timestamp_type}, {date}, {date:FORMAT}, {key}, {value}, {key_length}, {value_length}, {headers}";

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// `{name}` with a name that is not a record field.
    #[error(
        "unknown field \"{{{field}}}\" in template \"{template}\"; valid fields: {VALID_FIELDS}"
    )]
    UnknownField {
        /// The name between the braces.
        field: String,
        /// The template as given.
        template: String,
    },
    /// `{date:FORMAT}` with a conversion the format does not know.
    #[error("{{date:{format}}} in template \"{template}\": {source}")]
    BadDate {
        /// The format after `date:`.
        format: String,
        /// The template as given.
        template: String,
        /// What is wrong with it.
        #[source]
        source: DateFormatError,
    },
    /// A `{` without its `}`.
    #[error(
        "unclosed '{{' at byte {position} in template \"{template}\"; write \"{{{{\" for a literal brace"
    )]
    UnclosedBrace {
        /// Byte offset of the `{`.
        position: usize,
        /// The template as given.
        template: String,
    },
    /// A `}` that closes nothing.
    #[error(
        "unmatched '}}' at byte {position} in template \"{template}\"; write \"}}}}\" for a literal brace"
    )]
    UnmatchedBrace {
        /// Byte offset of the `}`.
        position: usize,
        /// The template as given.
        template: String,
    },
    /// A backslash followed by anything but `n`, `t`, `r` or `\`, or at
    /// the end of the template.
    #[error("bad escape \"{escape}\" in template \"{template}\"; valid escapes: \\n \\t \\r \\\\")]
    BadEscape {
        /// The backslash and the character after it, if any.
        escape: String,
        /// The template as given.
        template: String,
    },
}

/// How each record is written.
#[derive(Debug, Clone, Default)]
pub enum OutputFormat {
    /// The value bytes and `\n`; a null value is an empty line (kcat's
    /// default).
    #[default]
    Value,
    /// A `-f` template; see [`Template`].
    Template(Template),
    /// One JSON object per line (`--json`); see [`RecordWriter`].
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Topic,
    Partition,
    Offset,
    Timestamp,
    TimestampType,
    Date,
    Key,
    Value,
    KeyLength,
    ValueLength,
    Headers,
    DeliveryCount,
}

impl Field {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "topic" => Self::Topic,
            "partition" => Self::Partition,
            "offset" => Self::Offset,
            "timestamp" => Self::Timestamp,
            "timestamp_type" => Self::TimestampType,
            "date" => Self::Date,
            "key_length" => Self::KeyLength,
            "value_length" => Self::ValueLength,
            "key" => Self::Key,
            "value" => Self::Value,
            "headers" => Self::Headers,
            "delivery_count" => Self::DeliveryCount,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Field(Field),
    /// `{date:FORMAT}`.
    Date(DateFormat),
}

/// A `-f` output template such as `{key}\t{value}\n`.
///
/// Fields: `{topic}`, `{partition}`, `{offset}`, `{timestamp}` (ms since
/// the epoch), `{timestamp_type}` (`CreateTime`, or `LogAppendTime` when
/// the broker set it), `{date}` (the timestamp as RFC 3339 in UTC with
/// milliseconds) and `{date:FORMAT}` (strftime-like, see [`DateFormat`]),
/// `{key}` and `{value}` (raw bytes; null writes nothing, or the writer's
/// null marker, see [`RecordWriter::with_null`]), `{key_length}` and
/// `{value_length}` (bytes; -1 for null, as kcat's `%K` and `%S`), and
/// `{headers}` (`k=v` pairs in the record's order joined by `,`, raw bytes;
/// a null value is the key alone, as `weir produce -H k` reads it), and
/// `{delivery_count}` (how often a share group delivered the record, 1
/// the first time; nothing outside a share group).
/// Escapes: `\n`, `\t`, `\r`, `\\`; `{{` and `}}` are literal braces.
///
/// One record per line: unless the template ends with a newline (the `\n`
/// escape or a newline character), a `\n` is appended after each record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    append_newline: bool,
}

impl FromStr for Template {
    type Err = OutputError;

    fn from_str(template: &str) -> Result<Self, Self::Err> {
        let bytes = template.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    let escaped = match bytes.get(i + 1) {
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(b'r') => b'\r',
                        Some(b'\\') => b'\\',
                        _ => {
                            let next = template[i + 1..].chars().next();
                            return Err(OutputError::BadEscape {
                                escape: format!("\\{}", next.map(String::from).unwrap_or_default()),
                                template: template.to_owned(),
                            });
                        }
                    };
                    literal.push(escaped);
                    i += 2;
                }
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    literal.push(b'{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    literal.push(b'}');
                    i += 2;
                }
                b'{' => {
                    let Some(len) = template[i + 1..].find('}') else {
                        return Err(OutputError::UnclosedBrace {
                            position: i,
                            template: template.to_owned(),
                        });
                    };
                    let name = &template[i + 1..i + 1 + len];
                    let piece = if let Some(format) = name.strip_prefix("date:") {
                        Piece::Date(format.parse().map_err(|source| OutputError::BadDate {
                            format: format.to_owned(),
                            template: template.to_owned(),
                            source,
                        })?)
                    } else {
                        Piece::Field(Field::from_name(name).ok_or_else(|| {
                            OutputError::UnknownField {
                                field: name.to_owned(),
                                template: template.to_owned(),
                            }
                        })?)
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                    i += len + 2;
                }
                b'}' => {
                    return Err(OutputError::UnmatchedBrace {
                        position: i,
                        template: template.to_owned(),
                    });
                }
                b => {
                    literal.push(b);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        let append_newline =
            !matches!(pieces.last(), Some(Piece::Literal(l)) if l.last() == Some(&b'\n'));
        Ok(Self {
            pieces,
            append_newline,
        })
    }
}

/// Writes records in an [`OutputFormat`] to `W`.
///
/// `--json` writes one object per line with the keys in this order:
///
/// ```text
/// {"topic":"t","partition":0,"offset":5,"timestamp":1700000000000,"key":"k","value":"v","headers":[{"key":"h","value":"v"}]}
/// ```
///
/// A null key or value is `null`. A key or value that is not valid UTF-8
/// is written base64 encoded (standard alphabet, padded) as `key_b64` or
/// `value_b64` instead, as `weir produce --format json` reads them.
/// `headers` is always present: a list in the record's order, a repeated
/// key as often as the record has it, each header `{"key":K,"value":V}`
/// with `V` a string or `null`, or `{"key":K,"value_b64":B}` for a value
/// that is not UTF-8, as for the record's own key and value.
/// A share group's records end with `"delivery_count":N` (see
/// [`set_delivery_count`](RecordWriter::set_delivery_count)).
#[derive(Debug)]
pub struct RecordWriter<W> {
    out: W,
    format: OutputFormat,
    /// Reused for base64 so binary payloads allocate nothing per record.
    b64: String,
    /// A JSON line is assembled here, then written at once: appending to a
    /// `Vec` is cheaper than many small writes through `W`.
    line: Vec<u8>,
    /// What a null key or value writes in the value and template formats.
    null: Vec<u8>,
    /// The delivery count of the records being written (share groups).
    delivery_count: Option<i16>,
}

impl<W: Write> RecordWriter<W> {
    /// Writes to `out`, which should be buffered.
    pub fn new(out: W, format: OutputFormat) -> Self {
        Self {
            out,
            format,
            b64: String::new(),
            line: Vec::new(),
            null: Vec::new(),
            delivery_count: None,
        }
    }

    /// The delivery count (share groups: how often the broker delivered
    /// the record) that the records written next carry, as
    /// `{delivery_count}` and `"delivery_count"` in `--json`; `None`, the
    /// default, leaves both out.
    pub fn set_delivery_count(&mut self, count: Option<i16>) {
        self.delivery_count = count;
    }

    /// What a null key or value writes in the value format and in a
    /// template's `{key}` and `{value}`, so that it differs from an empty
    /// one (kcat `-Z` writes `NULL`); by default nothing. `--json` writes
    /// `null` whatever this is.
    #[must_use]
    pub fn with_null(mut self, marker: impl Into<Vec<u8>>) -> Self {
        self.null = marker.into();
        self
    }

    /// Writes one record, newline included.
    ///
    /// # Errors
    ///
    /// I/O errors of the writer; see [`is_broken_pipe`](crate::job::is_broken_pipe).
    pub fn write(&mut self, record: &ConsumedRecord) -> io::Result<()> {
        let out = &mut self.out;
        match &self.format {
            OutputFormat::Value => {
                out.write_all(record.value.as_deref().unwrap_or(&self.null))?;
                out.write_all(b"\n")
            }
            OutputFormat::Template(template) => {
                write_template(out, template, record, &self.null, self.delivery_count)
            }
            OutputFormat::Json => {
                self.line.clear();
                write_json(&mut self.line, &mut self.b64, record);
                if let Some(count) = self.delivery_count {
                    // Before the closing `}\n`.
                    self.line.truncate(self.line.len() - 2);
                    self.line.extend_from_slice(b",\"delivery_count\":");
                    push_int(&mut self.line, count.into());
                    self.line.extend_from_slice(b"}\n");
                }
                out.write_all(&self.line)
            }
        }
    }

    /// Flushes the writer.
    ///
    /// # Errors
    ///
    /// I/O errors of the writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The writer, mutably.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Unwraps the writer, without flushing it.
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn write_template(
    out: &mut impl Write,
    template: &Template,
    record: &ConsumedRecord,
    null: &[u8],
    delivery_count: Option<i16>,
) -> io::Result<()> {
    let length = |bytes: &Option<Vec<u8>>| bytes.as_ref().map_or(-1, |b| b.len() as i64);
    for piece in &template.pieces {
        match piece {
            Piece::Literal(bytes) => out.write_all(bytes)?,
            Piece::Field(Field::Topic) => out.write_all(record.topic.as_bytes())?,
            Piece::Field(Field::Partition) => write_int(out, record.partition.into())?,
            Piece::Field(Field::Offset) => write_int(out, record.offset)?,
            Piece::Field(Field::Timestamp) => write_int(out, record.timestamp_ms)?,
            Piece::Field(Field::TimestampType) => {
                out.write_all(record.timestamp_type.as_str().as_bytes())?;
            }
            Piece::Field(Field::Date) => {
                out.write_all(rfc3339_millis(record.timestamp_ms).as_bytes())?
            }
            Piece::Date(format) => format.write(record.timestamp_ms, out)?,
            Piece::Field(Field::Key) => out.write_all(record.key.as_deref().unwrap_or(null))?,
            Piece::Field(Field::Value) => out.write_all(record.value.as_deref().unwrap_or(null))?,
            Piece::Field(Field::KeyLength) => write_int(out, length(&record.key))?,
            Piece::Field(Field::ValueLength) => write_int(out, length(&record.value))?,
            Piece::Field(Field::DeliveryCount) => {
                if let Some(count) = delivery_count {
                    write_int(out, count.into())?;
                }
            }
            Piece::Field(Field::Headers) => {
                for (i, (k, v)) in record.headers.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(k.as_bytes())?;
                    if let Some(v) = v {
                        out.write_all(b"=")?;
                        out.write_all(v)?;
                    }
                }
            }
        }
    }
    if template.append_newline {
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn write_json(out: &mut Vec<u8>, b64: &mut String, record: &ConsumedRecord) {
    out.extend_from_slice(b"{\"topic\":");
    write_json_str(out, &record.topic);
    out.extend_from_slice(b",\"partition\":");
    push_int(out, record.partition.into());
    out.extend_from_slice(b",\"offset\":");
    push_int(out, record.offset);
    out.extend_from_slice(b",\"timestamp\":");
    push_int(out, record.timestamp_ms);
    // A key or value decoded through a schema registry is JSON text
    // already: written as it is, an object where the schema has a record.
    match (record.decoded.key, record.key.as_deref()) {
        (true, Some(json)) => write_json_raw(out, "key", json),
        _ => write_json_bytes(out, b64, "key", record.key.as_deref()),
    }
    match (record.decoded.value, record.value.as_deref()) {
        (true, Some(json)) => write_json_raw(out, "value", json),
        _ => write_json_bytes(out, b64, "value", record.value.as_deref()),
    }

    out.extend_from_slice(b",\"headers\":[");
    for (i, (k, v)) in record.headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        write_json_str(out, k);
        write_json_bytes(out, b64, "value", v.as_deref());
        out.push(b'}');
    }
    out.push(b']');
    out.extend_from_slice(b"}\n");
}

/// Writes `,"name":` and `json`, JSON text already.
fn write_json_raw(out: &mut Vec<u8>, name: &str, json: &[u8]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(json);
}

/// Writes `,"name":` and a JSON string, `,"name_b64":` and base64, or
/// `,"name":null`.
fn write_json_bytes(out: &mut Vec<u8>, b64: &mut String, name: &str, bytes: Option<&[u8]>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    match bytes.map(|b| (b, std::str::from_utf8(b))) {
        None => out.extend_from_slice(b"\":null"),
        Some((_, Ok(text))) => {
            out.extend_from_slice(b"\":");
            write_json_str(out, text);
        }
        Some((bytes, Err(_))) => {
            out.extend_from_slice(b"_b64\":");
            write_base64(out, b64, bytes);
        }
    }
}

fn write_base64(out: &mut Vec<u8>, buf: &mut String, bytes: &[u8]) {
    buf.clear();
    BASE64.encode_string(bytes, buf);
    // The base64 alphabet needs no JSON escaping.
    out.push(b'"');
    out.extend_from_slice(buf.as_bytes());
    out.push(b'"');
}

/// Writes `s` as a JSON string: quotes, backslashes and control characters
/// escaped, everything else (valid UTF-8 by type) copied in runs.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        out.push(b'\\');
        match b {
            b'"' | b'\\' => out.push(b),
            b'\n' => out.push(b'n'),
            b'\r' => out.push(b'r'),
            b'\t' => out.push(b't'),
            0x08 => out.push(b'b'),
            0x0c => out.push(b'f'),
            _ => out.extend_from_slice(&[
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes `n` in decimal without going through `fmt`.
fn write_int(out: &mut impl Write, n: i64) -> io::Result<()> {
    out.write_all(format_int(&mut [0; 20], n))
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(format_int(&mut [0; 20], n));
}

/// `n` in decimal, in the tail of `buf`: 19 digits for |i64::MIN| and a
/// sign fit.
fn format_int(buf: &mut [u8; 20], n: i64) -> &[u8] {
    let mut i = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        // `rest % 10` is a single digit.
        buf[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;

/// A job's stop while it writes to stdout: `shutdown` completing (a
/// signal, [`StopReason::Shutdown`]) or stdout's reader gone
/// ([`StopReason::OutputClosed`]), whichever comes first.
///
/// [`StopReason::Shutdown`]: crate::job::StopReason::Shutdown
/// [`StopReason::OutputClosed`]: crate::job::StopReason::OutputClosed
pub async fn stop_or_stdout_closed(shutdown: impl Future<Output = ()>) -> crate::job::StopReason {
    tokio::select! {
        () = shutdown => crate::job::StopReason::Shutdown,
        () = stdout_closed() => crate::job::StopReason::OutputClosed,
    }
}

/// Resolves when stdout is a pipe whose reader has gone, so a quiet
/// `weir consume | head` ends without waiting for a record to fail on.
pub async fn stdout_closed() {
    use rustix::event::{PollFd, PollFlags, poll};
    let stdout = rustix::stdio::stdout();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if poll(&mut fds, Some(&zero)).is_ok()
            && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
        {
            return;
        }
    }
}

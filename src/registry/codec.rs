//! Records' keys and values in the Confluent wire format: decoded into
//! JSON text for the reader ([`Decoding`], which the shared reader applies
//! to every record it yields) and encoded from JSON for the producer
//! ([`Encoder`]).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{MAGIC, Registry, RegistryError, Schema, SchemaType};
use crate::record::ConsumedRecord;

/// How a record's key or value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// As bytes, never decoded.
    #[default]
    Raw,
    /// Decoded when it is in the wire format (a zero byte and a schema
    /// id first), else bytes.
    Auto,
    /// Always decoded as Avro: anything else is bad input.
    Avro,
}

/// What to do with a record whose key or value cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBadInput {
    /// Warn in one line (topic, partition, offset, the bytes in base64)
    /// and leave the record out.
    #[default]
    Skip,
    /// Stop: the partition fails with the error.
    Fail,
}

/// A key or value that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not in the wire format, where Avro was asked for.
    #[error("not in the Schema Registry wire format (a zero byte and a 4-byte schema id first)")]
    NotFramed,
    /// Its schema could not be had from the registry.
    #[error(transparent)]
    Schema(Arc<RegistryError>),
    /// Its schema is of a kind weir does not decode yet.
    #[error("schema id {id} is {}, which weir does not decode yet (Avro only)", .kind.as_str())]
    Unsupported {
        /// The schema id.
        id: u32,
        /// Its kind.
        kind: SchemaType,
    },
    /// The bytes are not a value of its schema.
    #[error("schema id {id}: {problem}")]
    Malformed {
        /// The schema id.
        id: u32,
        /// What is wrong.
        problem: String,
    },
}

/// A record whose key or value could not be decoded, with where it is and
/// its bytes.
#[derive(Debug, thiserror::Error)]
#[error(
    "topic {topic} partition {partition} offset {offset}: cannot decode its {part}: {error}; the {part} in base64: {raw}"
)]
pub struct BadRecord {
    /// Its topic.
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// `key` or `value`.
    pub part: &'static str,
    /// Why.
    #[source]
    pub error: DecodeError,
    /// The bytes, base64 (cut at 4 KiB).
    pub raw: String,
}

/// Decoding of consumed keys and values through a registry, in place:
/// a decoded key or value becomes its JSON text, and the record is marked
/// (`ConsumedRecord::decoded`) so that `--json` writes it as JSON.
pub struct Decoding {
    /// The registry the schemas come from.
    pub registry: Arc<Registry>,
    /// How keys are read.
    pub key: Format,
    /// How values are read.
    pub value: Format,
    /// What an undecodable record does.
    pub on_error: OnBadInput,
}

impl fmt::Debug for Decoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoding")
            .field("registry", &self.registry.url())
            .field("key", &self.key)
            .field("value", &self.value)
            .field("on_error", &self.on_error)
            .finish()
    }
}

impl Decoding {
    /// Whether it decodes anything at all.
    pub fn active(&self) -> bool {
        self.key != Format::Raw || self.value != Format::Raw
    }

    /// Decodes the key and value of `record` as its formats say.
    ///
    /// # Errors
    ///
    /// A key or value that cannot be decoded; the record is left as it was.
    pub async fn decode(&self, record: &mut ConsumedRecord) -> Result<(), Box<BadRecord>> {
        let key = match decode_part(&self.registry, self.key, record.key.as_deref()).await {
            Ok(k) => k,
            Err(error) => return Err(bad(record, "key", error)),
        };
        let value = match decode_part(&self.registry, self.value, record.value.as_deref()).await {
            Ok(v) => v,
            Err(error) => return Err(bad(record, "value", error)),
        };
        if let Some(k) = key {
            record.key = Some(k);
            record.decoded.key = true;
        }
        if let Some(v) = value {
            record.value = Some(v);
            record.decoded.value = true;
        }
        Ok(())
    }
}

fn bad(record: &ConsumedRecord, part: &'static str, error: DecodeError) -> Box<BadRecord> {
    let bytes = if part == "key" {
        &record.key
    } else {
        &record.value
    };
    let bytes = bytes.as_deref().unwrap_or_default();
    let mut raw = BASE64.encode(&bytes[..bytes.len().min(4096)]);
    if bytes.len() > 4096 {
        raw.push_str("...");
    }
    Box::new(BadRecord {
        topic: Arc::clone(&record.topic),
        partition: record.partition,
        offset: record.offset,
        part,
        error,
        raw,
    })
}

/// The schema id of bytes in the wire format.
pub fn framed_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [MAGIC, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// The JSON text of `bytes` when `format` decodes them (`None`: left as
/// they are).
async fn decode_part(
    registry: &Registry,
    format: Format,
    bytes: Option<&[u8]>,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let id = match (format, framed_id(bytes)) {
        (Format::Raw, _) | (Format::Auto, None) => return Ok(None),
        (Format::Avro, None) => return Err(DecodeError::NotFramed),
        (_, Some(id)) => id,
    };
    let schema = registry.schema(id).await.map_err(DecodeError::Schema)?;
    let avro = match (&schema.avro, schema.kind) {
        (Some(avro), _) => avro,
        (None, kind) => return Err(DecodeError::Unsupported { id, kind }),
    };
    let json = avro
        .to_json_text(&bytes[5..])
        .map_err(|problem| DecodeError::Malformed { id, problem })?;
    Ok(Some(json))
}

/// Which schema values are written with (`--value-schema`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChoice {
    /// A subject's latest version (`SUBJECT`).
    Latest(String),
    /// A subject's version (`SUBJECT@VERSION`).
    Version(String, u32),
    /// A schema id (`id:N`).
    Id(u32),
    /// A schema file (`.avsc`), registered under the subject given.
    File(std::path::PathBuf),
}

impl std::str::FromStr for SchemaChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(id) = s.strip_prefix("id:") {
            return id
                .parse()
                .map(Self::Id)
                .map_err(|_| format!("\"{s}\": id:N takes a schema id (a number)"));
        }
        if s.ends_with(".avsc") {
            return Ok(Self::File(s.into()));
        }
        if s.is_empty() {
            return Err("an empty subject".to_owned());
        }
        match s.rsplit_once('@') {
            Some((subject, v)) if !subject.is_empty() => v
                .parse()
                .map(|v| Self::Version(subject.to_owned(), v))
                .map_err(|_| format!("\"{s}\": SUBJECT@VERSION takes a version number")),
            _ => Ok(Self::Latest(s.to_owned())),
        }
    }
}

/// A value that does not fit the schema, or a schema that cannot be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The schema could not be had.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The schema could not be had (as the schema cache keeps the error).
    #[error(transparent)]
    Schema(Arc<RegistryError>),
    /// The schema file could not be read or is not an Avro schema.
    #[error("schema file \"{}\": {problem}", .path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The value is not JSON.
    #[error("is not JSON: {0}")]
    NotJson(String),
    /// The value does not fit the schema (the message names the field).
    #[error("does not fit schema id {id}: {problem}")]
    Unfit {
        /// The schema id.
        id: u32,
        /// What does not fit.
        problem: String,
    },
}

/// Encodes JSON values with one schema into the wire format.
#[derive(Debug)]
pub struct Encoder {
    id: u32,
    schema: Arc<Schema>,
}

impl Encoder {
    /// The encoder for `choice`: the schema looked up (or registered
    /// under `subject` for a file with `register`).
    ///
    /// # Errors
    ///
    /// The schema cannot be had, or is not Avro.
    pub async fn new(
        registry: &Registry,
        choice: &SchemaChoice,
        subject: &str,
        register: bool,
    ) -> Result<Self, EncodeError> {
        let id = match choice {
            SchemaChoice::Id(id) => *id,
            SchemaChoice::Latest(s) => registry.version(s, None).await?.id,
            SchemaChoice::Version(s, v) => registry.version(s, Some(*v)).await?.id,
            SchemaChoice::File(path) => {
                let file = |problem: String| EncodeError::File {
                    path: path.clone(),
                    problem,
                };
                let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
                super::avro::AvroSchema::parse(&text)
                    .map_err(|e| file(format!("not an Avro schema: {e}")))?;
                if register {
                    registry.register(subject, SchemaType::Avro, &text).await?
                } else {
                    return Err(file(format!(
                        "a schema file is registered under subject \"{subject}\" with --register"
                    )));
                }
            }
        };
        let schema = registry.schema(id).await.map_err(EncodeError::Schema)?;
        if schema.avro.is_none() {
            return Err(EncodeError::Registry(RegistryError::Invalid {
                url: registry.url().to_owned(),
                what: format!("schema id {id}"),
                problem: format!(
                    "it is {}; weir writes Avro only so far",
                    schema.kind.as_str()
                ),
            }));
        }
        Ok(Self { id, schema })
    }

    /// The schema id values are written with.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// `json` (one value's JSON text) in the wire format.
    ///
    /// # Errors
    ///
    /// Not JSON, or not a value of the schema (naming the field).
    pub fn encode(&self, json: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| EncodeError::NotJson(e.to_string()))?;
        self.encode_value(&value)
    }

    /// A JSON value in the wire format.
    ///
    /// # Errors
    ///
    /// Not a value of the schema (naming the field).
    pub fn encode_value(&self, value: &serde_json::Value) -> Result<Vec<u8>, EncodeError> {
        let avro = self.schema.avro.as_ref().expect("checked in new");
        let body = avro
            .from_json(value)
            .map_err(|problem| EncodeError::Unfit {
                id: self.id,
                problem,
            })?;
        let mut out = Vec::with_capacity(5 + body.len());
        out.push(MAGIC);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_choices_are_read_as_written() {
        let parse = |s: &str| s.parse::<SchemaChoice>();
        assert_eq!(
            parse("orders-value"),
            Ok(SchemaChoice::Latest("orders-value".into()))
        );
        assert_eq!(
            parse("orders-value@3"),
            Ok(SchemaChoice::Version("orders-value".into(), 3))
        );
        assert_eq!(parse("id:17"), Ok(SchemaChoice::Id(17)));
        assert_eq!(
            parse("s/order.avsc"),
            Ok(SchemaChoice::File("s/order.avsc".into()))
        );
        assert!(parse("id:x").is_err());
        assert!(parse("orders@latest").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn only_the_wire_format_has_an_id() {
        assert_eq!(framed_id(&[0, 0, 0, 1, 2, 9]), Some(258));
        assert_eq!(framed_id(&[0, 0, 0, 1]), None);
        assert_eq!(framed_id(b"{\"a\":1}"), None);
    }
}

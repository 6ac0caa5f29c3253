//! Avro values as plain JSON, and back (the mapping the README states):
//! a record is an object, a union its branch's value (or null), an enum
//! its symbol, bytes and fixed base64, maps and arrays as such; logical
//! types keep what is stored, losslessly: dates, times and timestamps as
//! their numbers, a decimal as a string of its exact value, a uuid as its
//! string, a duration as `{"months","days","millis"}`. Float and double
//! NaN and infinities are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
//!
//! Decoding and encoding are `apache-avro`'s; this file walks its values
//! with the schema (a decimal's scale, a union's branches, named types).

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value as Avro;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use num_bigint::BigInt;
use serde_json::{Map, Number, Value as Json};

/// A parsed Avro schema with its named types.
#[derive(Debug)]
pub struct AvroSchema {
    schema: Schema,
    names: HashMap<Name, Schema>,
}

impl AvroSchema {
    /// Parses a schema's JSON text.
    ///
    /// # Errors
    ///
    /// Text that is not an Avro schema `apache-avro` accepts.
    pub fn parse(text: &str) -> Result<Self, apache_avro::Error> {
        let schema = Schema::parse_str(text)?;
        let names = ResolvedSchema::try_from(&schema)?
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect();
        Ok(Self { schema, names })
    }

    /// Its canonical form (for comparing schemas).
    pub fn canonical(&self) -> String {
        self.schema.canonical_form()
    }

    /// Decodes one value (the bytes after the wire format's header) into
    /// JSON.
    ///
    /// # Errors
    ///
    /// Bytes that are not a value of this schema, or bytes left over.
    pub fn to_json(&self, mut bytes: &[u8]) -> Result<Json, String> {
        let value = apache_avro::from_avro_datum(&self.schema, &mut bytes, None)
            .map_err(|e| format!("not Avro of its schema: {e}"))?;
        if !bytes.is_empty() {
            return Err(format!("{} bytes left after the value", bytes.len()));
        }
        self.json(&self.schema, value)
    }

    /// Decodes one value into JSON text: as [`to_json`](Self::to_json),
    /// with a record's fields in the schema's order.
    ///
    /// # Errors
    ///
    /// Bytes that are not a value of this schema, or bytes left over.
    pub fn to_json_text(&self, mut bytes: &[u8]) -> Result<Vec<u8>, String> {
        let value = apache_avro::from_avro_datum(&self.schema, &mut bytes, None)
            .map_err(|e| format!("not Avro of its schema: {e}"))?;
        if !bytes.is_empty() {
            return Err(format!("{} bytes left after the value", bytes.len()));
        }
        let mut out = Vec::with_capacity(256);
        self.write(&self.schema, value, &mut out)?;
        Ok(out)
    }

    /// Writes `value` as JSON text: records field by field in order,
    /// everything else as [`json`](Self::json) makes it.
    fn write(&self, schema: &Schema, value: Avro, out: &mut Vec<u8>) -> Result<(), String> {
        let schema = self.named(schema);
        match (value, schema) {
            (Avro::Record(fields), Schema::Record(r)) => {
                out.push(b'{');
                for (i, ((name, v), field)) in fields.into_iter().zip(&r.fields).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, &name).map_err(|e| e.to_string())?;
                    out.push(b':');
                    self.write(&field.schema, v, out)?;
                }
                out.push(b'}');
            }
            (Avro::Union(i, inner), Schema::Union(u)) => {
                let branch = u
                    .variants()
                    .get(i as usize)
                    .ok_or_else(|| format!("union branch {i} is not in the schema"))?;
                self.write(branch, *inner, out)?;
            }
            (Avro::Array(items), Schema::Array(a)) => {
                out.push(b'[');
                for (i, v) in items.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write(&a.items, v, out)?;
                }
                out.push(b']');
            }
            (Avro::Map(entries), Schema::Map(m)) => {
                let mut entries: Vec<_> = entries.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                out.push(b'{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, &k).map_err(|e| e.to_string())?;
                    out.push(b':');
                    self.write(&m.types, v, out)?;
                }
                out.push(b'}');
            }
            (v, s) => {
                let json = self.json(s, v)?;
                serde_json::to_writer(&mut *out, &json).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Encodes a JSON value into Avro (without the wire format's header).
    ///
    /// # Errors
    ///
    /// A value that does not fit the schema; the message names the field
    /// (a JSON pointer such as `/customer/address/zip`).
    pub fn from_json(&self, value: &Json) -> Result<Vec<u8>, String> {
        let avro = self.avro(&self.schema, value, &mut String::new())?;
        apache_avro::to_avro_datum(&self.schema, avro).map_err(|e| e.to_string())
    }

    fn named<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => self.names.get(name).unwrap_or(schema),
            other => other,
        }
    }

    fn json(&self, schema: &Schema, value: Avro) -> Result<Json, String> {
        let schema = self.named(schema);
        Ok(match (value, schema) {
            (Avro::Null, _) => Json::Null,
            (Avro::Boolean(b), _) => Json::Bool(b),
            (Avro::Int(n) | Avro::Date(n) | Avro::TimeMillis(n), _) => Json::from(n),
            (
                Avro::Long(n)
                | Avro::TimeMicros(n)
                | Avro::TimestampMillis(n)
                | Avro::TimestampMicros(n)
                | Avro::TimestampNanos(n)
                | Avro::LocalTimestampMillis(n)
                | Avro::LocalTimestampMicros(n)
                | Avro::LocalTimestampNanos(n),
                _,
            ) => Json::from(n),
            (Avro::Float(f), _) => float(f64::from(f)),
            (Avro::Double(f), _) => float(f),
            (Avro::Bytes(b) | Avro::Fixed(_, b), _) => Json::String(BASE64.encode(b)),
            (Avro::String(s), _) => Json::String(s),
            (Avro::Uuid(u), _) => Json::String(u.hyphenated().to_string()),
            (Avro::Enum(_, symbol), _) => Json::String(symbol),
            (Avro::Union(i, inner), Schema::Union(u)) => {
                let branch = u
                    .variants()
                    .get(i as usize)
                    .ok_or_else(|| format!("union branch {i} is not in the schema"))?;
                self.json(branch, *inner)?
            }
            (Avro::Union(_, inner), other) => self.json(other, *inner)?,
            (Avro::Array(items), Schema::Array(a)) => Json::Array(
                items
                    .into_iter()
                    .map(|v| self.json(&a.items, v))
                    .collect::<Result<_, _>>()?,
            ),
            (Avro::Map(entries), Schema::Map(m)) => {
                // Sorted by key: a HashMap's order would differ run to run.
                let mut entries: Vec<_> = entries.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                let mut out = Map::new();
                for (k, v) in entries {
                    out.insert(k, self.json(&m.types, v)?);
                }
                Json::Object(out)
            }
            (Avro::Record(fields), Schema::Record(r)) => {
                let mut out = Map::new();
                for ((name, v), field) in fields.into_iter().zip(&r.fields) {
                    let v = self.json(&field.schema, v)?;
                    out.insert(name, v);
                }
                Json::Object(out)
            }
            (Avro::Decimal(d), Schema::Decimal(s)) => {
                Json::String(decimal_text(&BigInt::from(d), s.scale))
            }
            (Avro::BigDecimal(d), _) => Json::String(d.to_string()),
            (Avro::Duration(d), _) => {
                let mut out = Map::new();
                out.insert("months".into(), Json::from(u32::from(d.months())));
                out.insert("days".into(), Json::from(u32::from(d.days())));
                out.insert("millis".into(), Json::from(u32::from(d.millis())));
                Json::Object(out)
            }
            (v, s) => return Err(format!("value {v:?} does not match its schema {s:?}")),
        })
    }

    fn avro(&self, schema: &Schema, value: &Json, at: &mut String) -> Result<Avro, String> {
        let schema = self.named(schema);
        let wrong = |expected: &str, at: &str| {
            let field = if at.is_empty() {
                "the value".to_owned()
            } else {
                format!("field {at}")
            };
            format!("{field}: expected {expected}, found {}", shown(value))
        };
        Ok(match schema {
            Schema::Null => match value {
                Json::Null => Avro::Null,
                _ => return Err(wrong("null", at)),
            },
            Schema::Boolean => {
                Avro::Boolean(value.as_bool().ok_or_else(|| wrong("a boolean", at))?)
            }
            Schema::Int => Avro::Int(int(value).ok_or_else(|| wrong("an int", at))?),
            Schema::Date => {
                Avro::Date(int(value).ok_or_else(|| wrong("a date (days, an int)", at))?)
            }
            Schema::TimeMillis => {
                Avro::TimeMillis(int(value).ok_or_else(|| wrong("a time-millis (an int)", at))?)
            }
            Schema::Long => Avro::Long(value.as_i64().ok_or_else(|| wrong("a long", at))?),
            Schema::TimeMicros => {
                Avro::TimeMicros(value.as_i64().ok_or_else(|| wrong("a long", at))?)
            }
            Schema::TimestampMillis => Avro::TimestampMillis(
                value
                    .as_i64()
                    .ok_or_else(|| wrong("a timestamp-millis (a long)", at))?,
            ),
            Schema::TimestampMicros => Avro::TimestampMicros(
                value
                    .as_i64()
                    .ok_or_else(|| wrong("a timestamp-micros (a long)", at))?,
            ),
            Schema::TimestampNanos => {
                Avro::TimestampNanos(value.as_i64().ok_or_else(|| wrong("a long", at))?)
            }
            Schema::LocalTimestampMillis => {
                Avro::LocalTimestampMillis(value.as_i64().ok_or_else(|| wrong("a long", at))?)
            }
            Schema::LocalTimestampMicros => {
                Avro::LocalTimestampMicros(value.as_i64().ok_or_else(|| wrong("a long", at))?)
            }
            Schema::LocalTimestampNanos => {
                Avro::LocalTimestampNanos(value.as_i64().ok_or_else(|| wrong("a long", at))?)
            }
            Schema::Float => Avro::Float(number(value).ok_or_else(|| wrong("a float", at))? as f32),
            Schema::Double => Avro::Double(number(value).ok_or_else(|| wrong("a double", at))?),
            Schema::String => Avro::String(
                value
                    .as_str()
                    .ok_or_else(|| wrong("a string", at))?
                    .to_owned(),
            ),
            Schema::Uuid => {
                let text = value.as_str().ok_or_else(|| wrong("a uuid string", at))?;
                Avro::Uuid(uuid::Uuid::try_parse(text).map_err(|_| wrong("a uuid string", at))?)
            }
            Schema::Bytes => Avro::Bytes(base64(value).ok_or_else(|| wrong("base64 bytes", at))?),
            Schema::Fixed(f) => {
                let bytes = base64(value).ok_or_else(|| wrong("base64 bytes", at))?;
                if bytes.len() != f.size {
                    return Err(wrong(&format!("{} bytes (base64)", f.size), at));
                }
                Avro::Fixed(f.size, bytes)
            }
            Schema::Decimal(d) => {
                let expected = format!(
                    "a decimal with at most {} digits after the point (a string)",
                    d.scale
                );
                let unscaled = value
                    .as_str()
                    .and_then(|s| unscaled(s, d.scale))
                    .ok_or_else(|| wrong(&expected, at))?;
                let mut bytes = unscaled.to_signed_bytes_be();
                if let Schema::Fixed(f) = self.named(&d.inner) {
                    if bytes.len() > f.size {
                        return Err(wrong(&format!("a decimal that fits {} bytes", f.size), at));
                    }
                    let fill = if unscaled.sign() == num_bigint::Sign::Minus {
                        0xff
                    } else {
                        0
                    };
                    let mut padded = vec![fill; f.size - bytes.len()];
                    padded.extend_from_slice(&bytes);
                    bytes = padded;
                }
                Avro::Decimal(apache_avro::Decimal::from(bytes))
            }
            Schema::Enum(e) => {
                let symbol = value.as_str().ok_or_else(|| wrong("an enum symbol", at))?;
                let i = e
                    .symbols
                    .iter()
                    .position(|s| s == symbol)
                    .ok_or_else(|| wrong(&format!("one of {}", e.symbols.join(", ")), at))?;
                Avro::Enum(i as u32, symbol.to_owned())
            }
            Schema::Array(a) => {
                let items = value.as_array().ok_or_else(|| wrong("an array", at))?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = at.len();
                    at.push_str(&format!("/{i}"));
                    out.push(self.avro(&a.items, item, at)?);
                    at.truncate(len);
                }
                Avro::Array(out)
            }
            Schema::Map(m) => {
                let entries = value
                    .as_object()
                    .ok_or_else(|| wrong("an object (a map)", at))?;
                let mut out = HashMap::with_capacity(entries.len());
                for (k, v) in entries {
                    let len = at.len();
                    at.push('/');
                    at.push_str(k);
                    out.insert(k.clone(), self.avro(&m.types, v, at)?);
                    at.truncate(len);
                }
                Avro::Map(out)
            }
            Schema::Record(r) => {
                let object = value
                    .as_object()
                    .ok_or_else(|| wrong(&format!("an object (record {})", r.name.name), at))?;
                if let Some(extra) = object.keys().find(|k| !r.lookup.contains_key(*k)) {
                    return Err(format!("field {at}/{extra}: not in record {}", r.name.name));
                }
                let mut out = Vec::with_capacity(r.fields.len());
                for field in &r.fields {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&field.name);
                    let v = match (object.get(&field.name), &field.default) {
                        (Some(v), _) => self.avro(&field.schema, v, at)?,
                        (None, Some(default)) => self.default(&field.schema, default, at)?,
                        (None, None) => return Err(format!("field {at}: missing")),
                    };
                    at.truncate(len);
                    out.push((field.name.clone(), v));
                }
                Avro::Record(out)
            }
            Schema::Union(u) => {
                let variants = u.variants();
                if value.is_null() {
                    if let Some(i) = variants.iter().position(|v| matches!(v, Schema::Null)) {
                        return Ok(Avro::Union(i as u32, Box::new(Avro::Null)));
                    }
                }
                let mut first_error = None;
                for (i, branch) in variants.iter().enumerate() {
                    if matches!(branch, Schema::Null) {
                        continue;
                    }
                    match self.avro(branch, value, at) {
                        Ok(v) => return Ok(Avro::Union(i as u32, Box::new(v))),
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                return Err(match (variants.len(), first_error) {
                    (2, Some(e)) if variants.iter().any(|v| matches!(v, Schema::Null)) => e,
                    _ => wrong("a value of one of the union's branches", at),
                });
            }
            Schema::BigDecimal => {
                return Err(format!(
                    "field {at}: big-decimal values cannot be written yet"
                ));
            }
            Schema::Duration => {
                let o = value.as_object();
                let part = |k: &str| {
                    o.and_then(|o| o.get(k))
                        .and_then(Json::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                };
                match (part("months"), part("days"), part("millis")) {
                    (Some(m), Some(d), Some(ms)) => Avro::Duration(apache_avro::Duration::new(
                        apache_avro::Months::new(m),
                        apache_avro::Days::new(d),
                        apache_avro::Millis::new(ms),
                    )),
                    _ => return Err(wrong("{\"months\":M,\"days\":D,\"millis\":MS}", at)),
                }
            }
            Schema::Ref { name } => {
                return Err(format!("field {at}: unknown type {}", name.fullname(None)));
            }
        })
    }

    /// A field's default, which the Avro spec gives in the schema's JSON:
    /// for a union, a value of its first branch.
    fn default(&self, schema: &Schema, default: &Json, at: &mut String) -> Result<Avro, String> {
        match self.named(schema) {
            Schema::Union(u) => {
                let first = u.variants().first().ok_or("an empty union")?;
                Ok(Avro::Union(0, Box::new(self.avro(first, default, at)?)))
            }
            Schema::Bytes | Schema::Fixed(_) => {
                // Defaults of bytes are ISO-8859-1 strings in the spec.
                let bytes: Vec<u8> = default
                    .as_str()
                    .map(|s| s.chars().map(|c| c as u32 as u8).collect())
                    .unwrap_or_default();
                self.avro(schema, &Json::String(BASE64.encode(bytes)), at)
            }
            other => self.avro(other, default, at),
        }
    }
}

fn float(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

fn number(value: &Json) -> Option<f64> {
    match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn int(value: &Json) -> Option<i32> {
    value.as_i64().and_then(|n| i32::try_from(n).ok())
}

fn base64(value: &Json) -> Option<Vec<u8>> {
    BASE64.decode(value.as_str()?).ok()
}

/// A value for a message: its JSON text, shortened.
fn shown(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// The exact decimal text of `unscaled * 10^-scale`.
pub fn decimal_text(unscaled: &BigInt, scale: usize) -> String {
    let digits = unscaled.magnitude().to_string();
    let sign = if unscaled.sign() == num_bigint::Sign::Minus {
        "-"
    } else {
        ""
    };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale - digits.len() + 1))
    } else {
        digits
    };
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// The unscaled value of a decimal's text at `scale` (at most `scale`
/// digits after the point; fewer are padded with zeros).
pub fn unscaled(text: &str, scale: usize) -> Option<BigInt> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
        || fraction.len() > scale
    {
        return None;
    }
    let digits = format!("{whole}{fraction}{}", "0".repeat(scale - fraction.len()));
    let n: BigInt = digits.parse().ok()?;
    Some(if negative { -n } else { n })
}

#[cfg(test)]
#[path = "avro_tests.rs"]
mod tests;

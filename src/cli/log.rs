//! Log lines on stderr as text or as JSON (`--log-format`), through one
//! tracing subscriber: the format is a value chosen at start, not a second
//! subscriber type, which keeps the binary small.

use std::fmt;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::LogFormat;

/// How an event's and a span's fields are written: `key=value` for text,
/// a JSON object for JSON (kept with the span, read back by [`Lines`]).
#[derive(Debug)]
pub enum Fields {
    /// tracing's own `key=value` fields.
    Text(DefaultFields),
    /// One JSON object.
    Json,
}

/// How an event becomes a line.
#[derive(Debug)]
pub enum Lines {
    /// tracing's own text lines, without the target.
    Text(Format<Full>),
    /// One JSON object per line.
    Json,
}

impl Fields {
    /// The fields for `format`.
    pub fn new(format: LogFormat) -> Self {
        match format {
            LogFormat::Text => Self::Text(DefaultFields::new()),
            LogFormat::Json => Self::Json,
        }
    }
}

impl Lines {
    /// The lines for `format`; text has ANSI colours when `ansi`.
    pub fn new(format: LogFormat, ansi: bool) -> Self {
        match format {
            LogFormat::Text => Self::Text(
                tracing_subscriber::fmt::format()
                    .with_target(false)
                    .with_ansi(ansi),
            ),
            LogFormat::Json => Self::Json,
        }
    }
}

impl<'writer> FormatFields<'writer> for Fields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        match self {
            Self::Text(text) => text.format_fields(writer, fields),
            Self::Json => {
                let mut visitor = JsonFields::default();
                fields.record(&mut visitor);
                let object: serde_json::Map<String, Value> = visitor.0.into_iter().collect();
                write!(writer, "{}", Value::Object(object))
            }
        }
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        match self {
            Self::Text(text) => {
                if !current.fields.is_empty() {
                    current.fields.push(' ');
                }
                text.format_fields(current.as_writer(), fields)
            }
            // A field recorded later joins the span's object.
            Self::Json => {
                let mut visitor = JsonFields::default();
                fields.record(&mut visitor);
                let mut object = match serde_json::from_str(&current.fields) {
                    Ok(Value::Object(object)) => object,
                    _ => serde_json::Map::new(),
                };
                object.extend(visitor.0);
                current.fields = Value::Object(object).to_string();
                Ok(())
            }
        }
    }
}

impl<S> FormatEvent<S, Fields> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, Fields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match self {
            Self::Text(text) => text.format_event(ctx, writer, event),
            Self::Json => {
                let mut fields = JsonFields::default();
                event.record(&mut fields);
                let meta = event.metadata();
                // Outermost first, as the text format shows them.
                let mut spans = Vec::new();
                if let Some(scope) = ctx.event_scope() {
                    for span in scope.from_root() {
                        let mut object = span
                            .extensions()
                            .get::<FormattedFields<Fields>>()
                            .and_then(|f| serde_json::from_str(&f.fields).ok())
                            .and_then(|v: Value| match v {
                                Value::Object(object) => Some(object),
                                _ => None,
                            })
                            .unwrap_or_default();
                        object.insert("name".to_owned(), span.name().into());
                        spans.push(Value::Object(object));
                    }
                }
                let mut extra = fields.0;
                extra.push(("target".to_owned(), meta.target().into()));
                if let Some(innermost) = spans.last() {
                    extra.push(("span".to_owned(), innermost.clone()));
                    extra.push(("spans".to_owned(), Value::Array(spans)));
                }
                writeln!(writer, "{}", json_line(&meta.level().to_string(), &extra))
            }
        }
    }
}

/// One JSON log line without its newline: `timestamp`, `level`, then
/// `fields` in order (`message` first where there is one).
pub fn json_line(level: &str, fields: &[(String, Value)]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let millis = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    let mut line = format!(
        "{{\"timestamp\":\"{}\",\"level\":{}",
        weir::timestamp::rfc3339_millis(millis),
        Value::from(level)
    );
    let message = fields.iter().filter(|(k, _)| k == "message");
    for (key, value) in message.chain(fields.iter().filter(|(k, _)| k != "message")) {
        line.push(',');
        line.push_str(&Value::from(key.as_str()).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push('}');
    line
}

/// The fields of an event or span, in the order they were recorded.
#[derive(Debug, Default)]
struct JsonFields(Vec<(String, Value)>);

impl JsonFields {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.push((field.name().to_owned(), value));
    }
}

impl Visit for JsonFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_starts_with_time_level_and_message() {
        let line = json_line(
            "INFO",
            &[
                ("topic".to_owned(), "a \"b\"".into()),
                ("message".to_owned(), "hi".into()),
                ("partition".to_owned(), 3.into()),
            ],
        );
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["topic"], "a \"b\"");
        assert_eq!(value["partition"], 3);
        let keys: Vec<_> = line
            .split(",\"")
            .map(|part| part.trim_start_matches("{\"").split('"').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["timestamp", "level", "message", "topic", "partition"]
        );
    }
}

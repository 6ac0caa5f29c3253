//! Emitted counts: rows summed across partitions, written as JSON lines, a
//! plain table, or records of an output topic.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::timestamp::rfc3339;

/// One (window, key) row, merged across the input partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Window start, ms since the epoch; `None` for running totals.
    pub window_start: Option<i64>,
    /// Window end (exclusive); `None` for running totals.
    pub window_end: Option<i64>,
    /// The key; `None` for the unparsed bucket.
    pub key: Option<String>,
    /// The key is a JSON array (of several `--by` parts), written as one.
    pub key_is_json: bool,
    /// The records counted.
    pub count: u64,
    /// The aggregates of `weir agg`; `None` for `count` alone, whose rows
    /// are `weir count`'s.
    pub agg: Option<AggValues>,
}

/// A row's aggregates, as named by their `--agg`.
#[derive(Debug, Clone, PartialEq)]
pub struct AggValues {
    /// The names, in order (`count`, `sum(json:/bytes)`, ...).
    pub names: Arc<[String]>,
    /// Each aggregate's value.
    pub values: Vec<Value>,
    /// Values each aggregate could not use (missing, or not a number),
    /// for those with any.
    pub unparsed: Vec<(String, u64)>,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    window_start: Option<String>,
    window_end: Option<String>,
    key: &'a Value,
    count: u64,
}

impl Row {
    /// The key as JSON: a string, an array of several `--by` parts, or
    /// null for the unparsed bucket.
    fn key_value(&self) -> Value {
        match &self.key {
            None => Value::Null,
            Some(k) if self.key_is_json => {
                serde_json::from_str(k).unwrap_or_else(|_| Value::String(k.clone()))
            }
            Some(k) => Value::String(k.clone()),
        }
    }

    /// `{"window_start": RFC 3339 or null, "window_end": …, "key": … or
    /// null, "count": N}`; with aggregates, one field per aggregate
    /// instead of `count`, named as its `--agg` (`"sum(json:/bytes)"`),
    /// and `"unparsed": {NAME: N, …}` when values could not be used.
    pub fn to_json(&self) -> Vec<u8> {
        let key = self.key_value();
        let Some(agg) = &self.agg else {
            return serde_json::to_vec(&JsonRow {
                window_start: self.window_start.map(rfc3339),
                window_end: self.window_end.map(rfc3339),
                key: &key,
                count: self.count,
            })
            .unwrap_or_default();
        };
        let text = |v: &dyn erased::ToJson| v.json();
        let mut out = format!(
            "{{\"window_start\":{},\"window_end\":{},\"key\":{}",
            text(&self.window_start.map(rfc3339)),
            text(&self.window_end.map(rfc3339)),
            text(&key),
        );
        for (name, value) in agg.names.iter().zip(&agg.values) {
            out.push(',');
            out.push_str(&text(name));
            out.push(':');
            out.push_str(&text(value));
        }
        if !agg.unparsed.is_empty() {
            out.push_str(",\"unparsed\":{");
            for (i, (name, n)) in agg.unparsed.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&text(name));
                out.push(':');
                out.push_str(&n.to_string());
            }
            out.push('}');
        }
        out.push('}');
        out.into_bytes()
    }

    /// The output topic's record key: `[window start or null, key or
    /// null]` as JSON, so that a row emitted again replaces itself under
    /// compaction.
    pub fn topic_key(&self) -> Vec<u8> {
        serde_json::to_vec(&(self.window_start.map(rfc3339), self.key_value())).unwrap_or_default()
    }
}

/// Serialising a few kinds of value through one closure.
mod erased {
    /// A value written as JSON.
    pub(super) trait ToJson {
        fn json(&self) -> String;
    }

    impl<T: serde::Serialize> ToJson for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

/// Where emitted rows are written.
pub trait RowSink: Send {
    /// Writes one emission: rows of windows that closed, or changed
    /// counts, or (`stopping`) every open window at the end of a run.
    ///
    /// # Errors
    ///
    /// The output could not be written.
    fn emit(&mut self, rows: &[Row], stopping: bool) -> std::io::Result<()>;
}

/// One JSON object per row and line.
#[derive(Debug)]
pub struct JsonLines<W>(pub W);

impl<W: Write + Send> RowSink for JsonLines<W> {
    fn emit(&mut self, rows: &[Row], _stopping: bool) -> std::io::Result<()> {
        for row in rows {
            self.0.write_all(&row.to_json())?;
            self.0.write_all(b"\n")?;
        }
        self.0.flush()
    }
}

/// A plain table, one row per line under a header written once.
#[derive(Debug)]
pub struct Table<W> {
    out: W,
    header: bool,
}

impl<W> Table<W> {
    /// A table on `out`.
    pub fn new(out: W) -> Self {
        Self { out, header: false }
    }
}

/// The table's text for `row` (and the header line with `None`).
pub fn table_line(row: Option<&Row>, windowed: bool) -> String {
    let (start, end, count, key) = match row {
        None => (
            "window_start".to_owned(),
            "window_end".to_owned(),
            "count".to_owned(),
            "key".to_owned(),
        ),
        Some(r) => (
            r.window_start.map(rfc3339).unwrap_or_default(),
            r.window_end.map(rfc3339).unwrap_or_default(),
            r.count.to_string(),
            r.key.clone().unwrap_or_else(|| "(unparsed)".to_owned()),
        ),
    };
    if windowed {
        format!("{start:<24} {end:<24} {count:>10}  {key}")
    } else {
        format!("{count:>10}  {key}")
    }
}

/// The table's text for a row of aggregates (and the header line, naming
/// them, with `None`): the window, each aggregate, then the key.
pub fn agg_table_line(row: Option<&Row>, names: &[String], windowed: bool) -> String {
    let mut line = String::new();
    if windowed {
        let (start, end) = match row {
            None => ("window_start".to_owned(), "window_end".to_owned()),
            Some(r) => (
                r.window_start.map(rfc3339).unwrap_or_default(),
                r.window_end.map(rfc3339).unwrap_or_default(),
            ),
        };
        line.push_str(&format!("{start:<24} {end:<24}"));
    }
    let values = row.and_then(|r| r.agg.as_ref()).map(|a| &a.values);
    for (i, name) in names.iter().enumerate() {
        let cell = match values.and_then(|v| v.get(i)) {
            None if row.is_none() => name.clone(),
            None | Some(Value::Null) => "-".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        };
        line.push_str(&format!(" {cell:>12}"));
    }
    let key = match row {
        None => "key".to_owned(),
        Some(r) => r.key.clone().unwrap_or_else(|| "(unparsed)".to_owned()),
    };
    line.push_str("  ");
    line.push_str(&key);
    line.trim_start().to_owned()
}

impl<W: Write + Send> RowSink for Table<W> {
    fn emit(&mut self, rows: &[Row], _stopping: bool) -> std::io::Result<()> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let windowed = first.window_start.is_some();
        let line = |row: Option<&Row>| match &first.agg {
            None => table_line(row, windowed),
            Some(agg) => agg_table_line(row, &agg.names, windowed),
        };
        if !self.header {
            self.header = true;
            writeln!(self.out, "{}", line(None))?;
        }
        for row in rows {
            writeln!(self.out, "{}", line(Some(row)))?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of `count` records under `key` in `window` (start, end), a
    /// total without one.
    fn row(window: Option<(i64, i64)>, key: Option<&str>, count: u64) -> Row {
        Row {
            window_start: window.map(|(start, _)| start),
            window_end: window.map(|(_, end)| end),
            key: key.map(Into::into),
            key_is_json: false,
            count,
            agg: None,
        }
    }

    #[test]
    fn rows_as_json_and_topic_keys() {
        let errors = row(
            Some((1_764_000_000_000, 1_764_000_060_000)),
            Some("ERROR"),
            7,
        );
        assert_eq!(
            String::from_utf8(errors.to_json()).unwrap(),
            r#"{"window_start":"2025-11-24T16:00:00Z","window_end":"2025-11-24T16:01:00Z","key":"ERROR","count":7}"#
        );
        assert_eq!(
            String::from_utf8(errors.topic_key()).unwrap(),
            r#"["2025-11-24T16:00:00Z","ERROR"]"#
        );
        let totals = row(None, None, 1);
        assert_eq!(
            String::from_utf8(totals.to_json()).unwrap(),
            r#"{"window_start":null,"window_end":null,"key":null,"count":1}"#
        );

        // A window before 1970 (a record with timestamp -1 falls in the
        // minute from -60000) is a date too, never bare ms.
        let early = row(Some((-60_000, 0)), Some("k"), 1);
        assert_eq!(
            String::from_utf8(early.to_json()).unwrap(),
            r#"{"window_start":"1969-12-31T23:59:00Z","window_end":"1970-01-01T00:00:00Z","key":"k","count":1}"#
        );
        assert_eq!(
            String::from_utf8(early.topic_key()).unwrap(),
            r#"["1969-12-31T23:59:00Z","k"]"#
        );
        assert!(table_line(Some(&early), true).starts_with("1969-12-31T23:59:00Z "));
    }

    #[test]
    fn table_has_one_header() {
        let mut t = Table::new(Vec::new());
        t.emit(&[row(None, Some("a"), 3)], false).unwrap();
        t.emit(&[row(None, Some("b"), 12)], true).unwrap();
        let text = String::from_utf8(t.out).unwrap();
        assert_eq!(text, "     count  key\n         3  a\n        12  b\n");
    }
}

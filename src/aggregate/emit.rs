//! Emitted counts: rows summed across partitions, written as JSON lines, a
//! plain table, or records of an output topic.

use std::io::Write;

use serde::Serialize;

use crate::timestamp::rfc3339;

/// One (window, key) count, summed across the input partitions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    /// Window start, ms since the epoch; `None` for running totals.
    pub window_start: Option<i64>,
    /// Window end (exclusive); `None` for running totals.
    pub window_end: Option<i64>,
    /// The key; `None` for the unparsed bucket.
    pub key: Option<String>,
    /// The count.
    pub count: u64,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    window_start: Option<String>,
    window_end: Option<String>,
    key: Option<&'a str>,
    count: u64,
}

impl Row {
    /// `{"window_start": RFC 3339 or null, "window_end": …, "key": … or
    /// null, "count": N}`.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&JsonRow {
            window_start: self.window_start.map(rfc3339),
            window_end: self.window_end.map(rfc3339),
            key: self.key.as_deref(),
            count: self.count,
        })
        .unwrap_or_default()
    }

    /// The output topic's record key: `[window start or null, key or
    /// null]` as JSON, so that a row emitted again replaces itself under
    /// compaction.
    pub fn topic_key(&self) -> Vec<u8> {
        serde_json::to_vec(&(self.window_start.map(rfc3339), self.key.as_deref()))
            .unwrap_or_default()
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

impl<W: Write + Send> RowSink for Table<W> {
    fn emit(&mut self, rows: &[Row], _stopping: bool) -> std::io::Result<()> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let windowed = first.window_start.is_some();
        if !self.header {
            self.header = true;
            writeln!(self.out, "{}", table_line(None, windowed))?;
        }
        for row in rows {
            writeln!(self.out, "{}", table_line(Some(row), windowed))?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_as_json_and_topic_keys() {
        let row = Row {
            window_start: Some(1_764_000_000_000),
            window_end: Some(1_764_000_060_000),
            key: Some("ERROR".into()),
            count: 7,
        };
        assert_eq!(
            String::from_utf8(row.to_json()).unwrap(),
            r#"{"window_start":"2025-11-24T16:00:00Z","window_end":"2025-11-24T16:01:00Z","key":"ERROR","count":7}"#
        );
        assert_eq!(
            String::from_utf8(row.topic_key()).unwrap(),
            r#"["2025-11-24T16:00:00Z","ERROR"]"#
        );
        let totals = Row {
            window_start: None,
            window_end: None,
            key: None,
            count: 1,
        };
        assert_eq!(
            String::from_utf8(totals.to_json()).unwrap(),
            r#"{"window_start":null,"window_end":null,"key":null,"count":1}"#
        );

        // A window before 1970 (a record with timestamp -1 falls in the
        // minute from -60000) is a date too, never bare ms.
        let early = Row {
            window_start: Some(-60_000),
            window_end: Some(0),
            key: Some("k".into()),
            count: 1,
        };
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
        let row = |key: &str, count| Row {
            window_start: None,
            window_end: None,
            key: Some(key.into()),
            count,
        };
        t.emit(&[row("a", 3)], false).unwrap();
        t.emit(&[row("b", 12)], true).unwrap();
        let text = String::from_utf8(t.out).unwrap();
        assert_eq!(text, "     count  key\n         3  a\n        12  b\n");
    }
}

//! Content filters for `weir consume`: `--grep`, `--grep-key`, `--where`
//! and `--invert`.
//!
//! Every given condition must hold (AND); `--invert` flips the combined
//! result. Where clauses look at the value parsed as JSON, so a record whose
//! value is not JSON cannot be judged by them: it does not match. Without
//! `--invert`, [`Filter::check`] reports it as [`Verdict::Unparsed`] and the
//! caller skips and counts it; with `--invert` it passes, as `grep -v`
//! keeps the lines `grep` would not print.

use std::fmt;
use std::str::FromStr;

use regex::bytes::Regex;
use serde_json::{Number, Value};

use crate::json_path::{Found, JsonPaths};
use crate::record::ConsumedRecord;

/// Why a filter argument was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A where clause without `=`.
    #[error("where clause \"{arg}\" has no '=': expected FIELD=VALUE")]
    MissingEquals {
        /// The clause as given.
        arg: String,
    },
    /// A where clause with nothing before the `=`.
    #[error("where clause \"{arg}\" has an empty field: expected FIELD=VALUE")]
    EmptyField {
        /// The clause as given.
        arg: String,
    },
    /// A dotted path with an empty segment (`a..b`, `.a`, `a.`).
    #[error(
        "where clause \"{arg}\" has an empty path segment; use a JSON pointer (\"/a//b\") for empty keys"
    )]
    EmptySegment {
        /// The clause as given.
        arg: String,
    },
    /// A pattern that does not compile.
    #[error("invalid regex \"{pattern}\"")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// The compiler's complaint.
        #[source]
        source: crate::pattern::PatternError,
    },
}

/// Compiles a `--grep` or `--grep-key` pattern as a bytes regex, so it
/// applies to binary keys and values too. Unicode mode is on as usual: `.`
/// matches one UTF-8 encoded character; write `(?-u)` to match any byte.
///
/// # Errors
///
/// [`FilterError::Regex`] naming the pattern.
pub fn parse_regex(pattern: &str) -> Result<Regex, FilterError> {
    crate::pattern::compile(pattern).map_err(|source| FilterError::Regex {
        pattern: pattern.to_owned(),
        source,
    })
}

/// One `--where FIELD=VALUE` condition on the value parsed as JSON.
///
/// FIELD is a JSON pointer when it starts with `/` (`/level`, `/a/b/0`),
/// otherwise a dotted path (`level`, `a.b`, `items.0`) whose segments are
/// object keys or, on arrays, indexes. A key that contains `.` needs the
/// pointer form. The argument is split at its first `=`, so VALUE may
/// contain `=`.
///
/// The clause matches when the field is a JSON string equal to VALUE; a
/// number equal to VALUE read as a JSON number, compared as numbers as
/// jq's `==` does (`n=1` matches `1` and `1.0`, `n=100` matches `1e2`); or
/// a number, boolean or null whose JSON text (as serde_json writes it)
/// equals VALUE (`ok=true` matches `true`). Strings are compared as text:
/// `status=500` matches `500`, `500.0` and `"500"` but not `"500.0"`.
/// Objects, arrays and missing fields never match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhereClause {
    field: String,
    pointer: String,
    value: String,
    /// VALUE read as a JSON number, when it is one.
    number: Option<Number>,
}

impl WhereClause {
    /// The field as given.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The field as a JSON pointer (RFC 6901).
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The value it is compared with.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `doc` satisfies this clause.
    pub fn matches(&self, doc: &Value) -> bool {
        doc.pointer(&self.pointer)
            .is_some_and(|v| self.holds(Found::from(v)))
    }

    /// Whether the field's value `found` satisfies this clause.
    fn holds(&self, found: Found<'_>) -> bool {
        match (found, &self.number) {
            (Found::Number(n), Some(expected)) => numbers_equal(n, expected),
            (found, _) => found.text_is(&self.value),
        }
    }
}

/// `a == b` as jq compares numbers: integers exactly (so two large ones
/// that one `f64` stands for are still told apart), anything else as
/// `f64`, where `1 == 1.0` and `100 == 1e2`.
fn numbers_equal(a: &Number, b: &Number) -> bool {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a == b;
    }
    a.as_f64().zip(b.as_f64()).is_some_and(|(a, b)| a == b)
}

/// `text` read as a JSON number (`-1`, `1.0`, `1e2`), else `None`: only
/// JSON's own grammar, with nothing around it (no `+1`, ` 1`, `0x10`,
/// `NaN`).
fn json_number(text: &str) -> Option<Number> {
    let first = text.bytes().next()?;
    let last = text.bytes().next_back()?;
    if !(first == b'-' || first.is_ascii_digit()) || !last.is_ascii_digit() {
        return None;
    }
    text.parse().ok()
}

impl FromStr for WhereClause {
    type Err = FilterError;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let Some((field, value)) = arg.split_once('=') else {
            return Err(FilterError::MissingEquals {
                arg: arg.to_owned(),
            });
        };
        if field.is_empty() {
            return Err(FilterError::EmptyField {
                arg: arg.to_owned(),
            });
        }
        let pointer = if field.starts_with('/') {
            field.to_owned()
        } else {
            let mut pointer = String::with_capacity(field.len() + 1);
            for segment in field.split('.') {
                if segment.is_empty() {
                    return Err(FilterError::EmptySegment {
                        arg: arg.to_owned(),
                    });
                }
                pointer.push('/');
                // RFC 6901: '~' first, so the '~' of "~1" is not escaped again.
                pointer.push_str(&segment.replace('~', "~0").replace('/', "~1"));
            }
            pointer
        };
        Ok(Self {
            field: field.to_owned(),
            pointer,
            value: value.to_owned(),
            number: json_number(value),
        })
    }
}

impl fmt::Display for WhereClause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.field, self.value)
    }
}

/// What to keep. The default keeps every record.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FilterConfig {
    /// The value must match (`--grep`); a null value never matches.
    pub grep: Option<Regex>,
    /// The key must match (`--grep-key`); a null key never matches.
    pub grep_key: Option<Regex>,
    /// Every clause must match (`--where`, repeatable).
    pub wheres: Vec<WhereClause>,
    /// Keep the records the conditions reject instead (`--invert`).
    pub invert: bool,
}

/// `with_*` builders, each setting the field of its name.
impl FilterConfig {
    /// With [`grep`](Self::grep).
    #[must_use]
    pub fn with_grep(mut self, grep: Option<Regex>) -> Self {
        self.grep = grep;
        self
    }

    /// With [`grep_key`](Self::grep_key).
    #[must_use]
    pub fn with_grep_key(mut self, grep_key: Option<Regex>) -> Self {
        self.grep_key = grep_key;
        self
    }

    /// With one more of the [`wheres`](Self::wheres), all of which must
    /// match.
    #[must_use]
    pub fn with_where(mut self, clause: WhereClause) -> Self {
        self.wheres.push(clause);
        self
    }

    /// With [`invert`](Self::invert).
    #[must_use]
    pub fn with_invert(mut self, invert: bool) -> Self {
        self.invert = invert;
        self
    }
}

/// The outcome of [`Filter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the record.
    Pass,
    /// Drop the record.
    Reject,
    /// Where clauses had to be evaluated but the value is null or not JSON,
    /// and there is no `--invert` (under which such a record does not
    /// match, so it passes); the caller skips and counts it.
    Unparsed,
}

/// A compiled [`FilterConfig`].
#[derive(Debug, Clone)]
pub struct Filter {
    config: FilterConfig,
    /// The where clauses' pointers, so a single streaming pass over the
    /// value checks them all without building a [`Value`]. `None` past
    /// [`MAX_PATHS`](crate::json_path::MAX_PATHS) clauses.
    paths: Option<JsonPaths>,
}

impl Filter {
    /// Builds a filter.
    pub fn new(config: FilterConfig) -> Self {
        let paths = JsonPaths::new(config.wheres.iter().map(WhereClause::pointer));
        Self { config, paths }
    }

    /// True when [`check`](Self::check) passes every record (no condition
    /// and no `--invert`), so the caller can skip it.
    pub fn is_noop(&self) -> bool {
        let c = &self.config;
        c.grep.is_none() && c.grep_key.is_none() && c.wheres.is_empty() && !c.invert
    }

    /// Judges one record.
    ///
    /// The regexes run first and the value is parsed as JSON (once, for all
    /// where clauses) only when they match: a record a regex already
    /// decides is [`Verdict::Pass`] or [`Verdict::Reject`] even if its value
    /// is not JSON. Otherwise a null or non-JSON value with where clauses is
    /// [`Verdict::Unparsed`], or [`Verdict::Pass`] under `--invert` (it does
    /// not match, so the inverted filter keeps it, as `grep -v` would).
    pub fn check(&self, record: &ConsumedRecord) -> Verdict {
        match self.matches(record) {
            None if self.config.invert => Verdict::Pass,
            None => Verdict::Unparsed,
            Some(matched) if matched != self.config.invert => Verdict::Pass,
            Some(_) => Verdict::Reject,
        }
    }

    /// The combined conditions before `--invert`; `None` when where clauses
    /// could not be evaluated.
    fn matches(&self, record: &ConsumedRecord) -> Option<bool> {
        let c = &self.config;
        if let Some(re) = &c.grep_key {
            if !record.key.as_deref().is_some_and(|k| re.is_match(k)) {
                return Some(false);
            }
        }
        if let Some(re) = &c.grep {
            if !record.value.as_deref().is_some_and(|v| re.is_match(v)) {
                return Some(false);
            }
        }
        if c.wheres.is_empty() {
            return Some(true);
        }
        let value = record.value.as_deref()?;
        match &self.paths {
            Some(paths) => all_hold(paths, &c.wheres, value),
            None => {
                let doc: Value = serde_json::from_slice(value).ok()?;
                Some(c.wheres.iter().all(|w| w.matches(&doc)))
            }
        }
    }
}

/// Whether every clause holds, in one streaming pass over `value`; `None`
/// when it is not JSON.
fn all_hold(paths: &JsonPaths, wheres: &[WhereClause], value: &[u8]) -> Option<bool> {
    paths
        .lookup(value, |i, found| wheres[i].holds(found))
        .map(|hits| hits == paths.all())
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;

//! Content filters for `weir consume`: `--grep`, `--grep-key`, `--where`
//! and `--invert`.
//!
//! Every given condition must hold (AND); `--invert` flips the combined
//! result. Where clauses look at the value parsed as JSON, so a record whose
//! value is not JSON cannot be judged by them: [`Filter::check`] reports it
//! as [`Verdict::Unparsed`] and the caller skips and counts it.

use std::fmt;
use std::str::FromStr;

use regex::bytes::Regex;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use crate::record::ConsumedRecord;

/// Why a filter argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    #[error("invalid regex \"{pattern}\": {reason}")]
    Regex {
        /// The pattern as given.
        pattern: String,
        /// The compiler's complaint.
        reason: String,
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
    Regex::new(pattern).map_err(|e| FilterError::Regex {
        pattern: pattern.to_owned(),
        reason: e.to_string(),
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
/// The clause matches when the field is a JSON string equal to VALUE, or a
/// number, boolean or null whose JSON text (as serde_json writes it) equals
/// VALUE: `status=500` matches `500` and `"500"` but not `500.0`,
/// `ok=true` matches `true`. Objects, arrays and missing fields never
/// match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhereClause {
    field: String,
    pointer: String,
    value: String,
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
        match doc.pointer(&self.pointer) {
            Some(Value::String(s)) => *s == self.value,
            Some(Value::Number(n)) => text_equals(n, &self.value),
            Some(Value::Bool(b)) => self.value == if *b { "true" } else { "false" },
            Some(Value::Null) => self.value == "null",
            Some(Value::Array(_) | Value::Object(_)) | None => false,
        }
    }
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
        })
    }
}

impl fmt::Display for WhereClause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.field, self.value)
    }
}

/// Compares `n`'s display text with `expected` without allocating.
fn text_equals(n: &serde_json::Number, expected: &str) -> bool {
    struct Compare<'a> {
        rest: &'a str,
        equal: bool,
    }
    impl fmt::Write for Compare<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match self.rest.strip_prefix(s) {
                Some(rest) if self.equal => self.rest = rest,
                _ => self.equal = false,
            }
            Ok(())
        }
    }
    let mut cmp = Compare {
        rest: expected,
        equal: true,
    };
    let _ = fmt::write(&mut cmp, format_args!("{n}"));
    cmp.equal && cmp.rest.is_empty()
}

/// What to keep. The default keeps every record.
#[derive(Debug, Clone, Default)]
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

/// The outcome of [`Filter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the record.
    Pass,
    /// Drop the record.
    Reject,
    /// Where clauses had to be evaluated but the value is null or not JSON.
    /// Not subject to `--invert`; the caller skips and counts it.
    Unparsed,
}

/// A compiled [`FilterConfig`].
#[derive(Debug, Clone)]
pub struct Filter {
    config: FilterConfig,
    /// The where clauses' paths merged into one tree, so a single streaming
    /// pass over the value checks them all without building a
    /// [`Value`]. `None` past [`MAX_STREAMED`] clauses.
    paths: Option<PathNode>,
}

/// Clauses are tracked in a `u64` bit set while streaming.
const MAX_STREAMED: usize = 64;

impl Filter {
    /// Builds a filter.
    pub fn new(config: FilterConfig) -> Self {
        let paths = (config.wheres.len() <= MAX_STREAMED).then(|| PathNode::tree(&config.wheres));
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
    /// [`Verdict::Unparsed`], with or without `--invert`.
    pub fn check(&self, record: &ConsumedRecord) -> Verdict {
        match self.matches(record) {
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
            Some(paths) => paths.matches(&c.wheres, value),
            None => {
                let doc: Value = serde_json::from_slice(value).ok()?;
                Some(c.wheres.iter().all(|w| w.matches(&doc)))
            }
        }
    }
}

/// One step of a where path, with the clauses that end here.
#[derive(Debug, Clone, Default)]
struct PathNode {
    /// The unescaped pointer token: an object key, or an array index.
    token: String,
    /// `token` as an array index, parsed as [`Value::pointer`] does.
    index: Option<usize>,
    /// Clauses whose field is this node.
    clauses: Vec<usize>,
    /// Clauses at or below this node, as bits.
    mask: u64,
    children: Vec<PathNode>,
}

impl PathNode {
    fn tree(wheres: &[WhereClause]) -> Self {
        let mut root = Self::default();
        for (i, clause) in wheres.iter().enumerate() {
            let bit = 1u64 << i;
            root.mask |= bit;
            let mut node = &mut root;
            // As `Value::pointer` does, including its unescaping order.
            for token in clause.pointer.split('/').skip(1) {
                let token = token.replace("~1", "/").replace("~0", "~");
                let at = match node.children.iter().position(|c| c.token == token) {
                    Some(at) => at,
                    None => {
                        let index = if token.starts_with('+')
                            || (token.starts_with('0') && token.len() != 1)
                        {
                            None
                        } else {
                            token.parse().ok()
                        };
                        node.children.push(Self {
                            token,
                            index,
                            ..Self::default()
                        });
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[at];
                node.mask |= bit;
            }
            node.clauses.push(i);
        }
        root
    }

    /// `None` when `value` is not JSON.
    fn matches(&self, wheres: &[WhereClause], value: &[u8]) -> Option<bool> {
        // Checked up front because skipped strings are not, and a JSON
        // text must be UTF-8 throughout.
        let text = std::str::from_utf8(value).ok()?;
        let mut de = serde_json::Deserializer::from_str(text);
        let mut matched = 0;
        Lookup {
            node: self,
            wheres,
            matched: &mut matched,
        }
        .deserialize(&mut de)
        .ok()?;
        de.end().ok()?;
        Some(matched == self.mask)
    }
}

/// Walks one JSON value at `node`, setting the bits of the clauses it
/// satisfies and skipping whatever no clause looks at.
struct Lookup<'a> {
    node: &'a PathNode,
    wheres: &'a [WhereClause],
    matched: &'a mut u64,
}

impl Lookup<'_> {
    fn leaf(self, eq: impl Fn(&str) -> bool) {
        for &i in &self.node.clauses {
            if eq(&self.wheres[i].value) {
                *self.matched |= 1 << i;
            }
        }
    }

    fn child<'b>(&'b mut self, node: &'b PathNode) -> Lookup<'b> {
        Lookup {
            node,
            wheres: self.wheres,
            matched: self.matched,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Lookup<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // With a duplicate key the last one wins, as in a `Value`.
        *self.matched &= !self.node.mask;
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Lookup<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.leaf(|c| c == if v { "true" } else { "false" });
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.leaf(|c| text_equals(&Number::from(v), c));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.leaf(|c| text_equals(&Number::from(v), c));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let n = Number::from_f64(v);
        self.leaf(|c| n.as_ref().is_some_and(|n| text_equals(n, c)));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.leaf(|c| c == v);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf(|c| c == "null");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let node = self.node;
        while let Some(child) = map.next_key_seed(ChildKey(&node.children))? {
            match child {
                Some(child) => map.next_value_seed(self.child(child))?,
                None => map.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let node = self.node;
        for i in 0.. {
            let more = match node.children.iter().find(|c| c.index == Some(i)) {
                Some(child) => seq.next_element_seed(self.child(child))?.is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                break;
            }
        }
        Ok(())
    }
}

/// Finds the child an object key leads to, without allocating the key.
struct ChildKey<'a>(&'a [PathNode]);

impl<'de, 'a> DeserializeSeed<'de> for ChildKey<'a> {
    type Value = Option<&'a PathNode>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'a> Visitor<'de> for ChildKey<'a> {
    type Value = Option<&'a PathNode>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|c| c.token == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> ConsumedRecord {
        ConsumedRecord {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Vec::new(),
        }
    }

    fn json(value: &str) -> ConsumedRecord {
        record(None, Some(value.as_bytes()))
    }

    fn wheres(clauses: &[&str]) -> Filter {
        Filter::new(FilterConfig {
            wheres: clauses.iter().map(|c| c.parse().unwrap()).collect(),
            ..Default::default()
        })
    }

    #[test]
    fn default_passes_everything_and_invert_alone_rejects_everything() {
        let f = Filter::new(FilterConfig::default());
        assert!(f.is_noop());
        assert_eq!(f.check(&record(None, None)), Verdict::Pass);
        assert_eq!(f.check(&json("not json")), Verdict::Pass);

        let f = Filter::new(FilterConfig {
            invert: true,
            ..Default::default()
        });
        assert!(!f.is_noop());
        assert_eq!(f.check(&json("x")), Verdict::Reject);
        assert!(!wheres(&["a=1"]).is_noop());
    }

    #[test]
    fn grep_on_value_and_null_value() {
        let f = Filter::new(FilterConfig {
            grep: Some(parse_regex("ERR(OR)?").unwrap()),
            ..Default::default()
        });
        assert_eq!(f.check(&json("an ERROR here")), Verdict::Pass);
        assert_eq!(f.check(&json("all fine")), Verdict::Reject);
        assert_eq!(f.check(&record(Some(b"ERROR"), None)), Verdict::Reject);
    }

    #[test]
    fn grep_on_binary_value() {
        let f = Filter::new(FilterConfig {
            grep: Some(parse_regex("ERROR").unwrap()),
            ..Default::default()
        });
        assert_eq!(
            f.check(&record(None, Some(b"\x00\xffERROR\x01"))),
            Verdict::Pass
        );
        assert_eq!(
            f.check(&record(None, Some(b"\x00\xffERR\x01"))),
            Verdict::Reject
        );

        let f = Filter::new(FilterConfig {
            grep: Some(parse_regex(r"(?-u)^\x00\xff").unwrap()),
            ..Default::default()
        });
        assert_eq!(f.check(&record(None, Some(b"\x00\xffx"))), Verdict::Pass);
        assert_eq!(f.check(&record(None, Some(b"\xff\x00x"))), Verdict::Reject);
    }

    #[test]
    fn grep_key_and_null_key() {
        let f = Filter::new(FilterConfig {
            grep_key: Some(parse_regex("^user-").unwrap()),
            ..Default::default()
        });
        assert_eq!(f.check(&record(Some(b"user-1"), Some(b"v"))), Verdict::Pass);
        assert_eq!(
            f.check(&record(Some(b"admin"), Some(b"v"))),
            Verdict::Reject
        );
        assert_eq!(f.check(&record(None, Some(b"user-1"))), Verdict::Reject);
    }

    #[test]
    fn bad_regex_names_the_pattern() {
        let e = parse_regex("a(").unwrap_err();
        assert!(matches!(&e, FilterError::Regex { pattern, .. } if pattern == "a("));
        assert!(e.to_string().contains("\"a(\""), "{e}");
    }

    #[test]
    fn where_compares_strings_numbers_bools_and_null() {
        let f = wheres(&["status=500"]);
        assert_eq!(f.check(&json(r#"{"status":500}"#)), Verdict::Pass);
        assert_eq!(f.check(&json(r#"{"status":"500"}"#)), Verdict::Pass);
        assert_eq!(f.check(&json(r#"{"status":5000}"#)), Verdict::Reject);
        assert_eq!(f.check(&json(r#"{"status":50}"#)), Verdict::Reject);
        assert_eq!(f.check(&json(r#"{"status":500.0}"#)), Verdict::Reject);
        assert_eq!(f.check(&json(r#"{"status":[500]}"#)), Verdict::Reject);

        let f = wheres(&["ok=true"]);
        assert_eq!(f.check(&json(r#"{"ok":true}"#)), Verdict::Pass);
        assert_eq!(f.check(&json(r#"{"ok":"true"}"#)), Verdict::Pass);
        assert_eq!(f.check(&json(r#"{"ok":false}"#)), Verdict::Reject);

        let f = wheres(&["gone=null"]);
        assert_eq!(f.check(&json(r#"{"gone":null}"#)), Verdict::Pass);
        assert_eq!(
            f.check(&json(r#"{}"#)),
            Verdict::Reject,
            "missing is not null"
        );

        let f = wheres(&["price=-1.5"]);
        assert_eq!(f.check(&json(r#"{"price":-1.5}"#)), Verdict::Pass);

        let f = wheres(&["name="]);
        assert_eq!(f.check(&json(r#"{"name":""}"#)), Verdict::Pass);
        assert_eq!(f.check(&json(r#"{"other":""}"#)), Verdict::Reject);
    }

    #[test]
    fn pointer_and_dotted_paths_reach_nested_fields_and_array_items() {
        let doc = r#"{"a":{"b":["x","y"]},"items":[{"id":7}],"k/v":{"t~":1}}"#;
        for clause in ["/a/b/1=y", "a.b.1=y", "items.0.id=7", "/items/0/id=7"] {
            assert_eq!(
                wheres(&[clause]).check(&json(doc)),
                Verdict::Pass,
                "{clause}"
            );
        }
        for clause in ["a.b.2=y", "a.b.0=y", "a.b=y", "items.x.id=7"] {
            assert_eq!(
                wheres(&[clause]).check(&json(doc)),
                Verdict::Reject,
                "{clause}"
            );
        }
        let c: WhereClause = "k/v.t~=1".parse().unwrap();
        assert_eq!(c.pointer(), "/k~1v/t~0");
        assert_eq!(wheres(&["k/v.t~=1"]).check(&json(doc)), Verdict::Pass);
    }

    #[test]
    fn where_parsing_splits_at_first_equals_and_names_bad_arguments() {
        let c: WhereClause = "url=a=b".parse().unwrap();
        assert_eq!((c.field(), c.pointer(), c.value()), ("url", "/url", "a=b"));
        assert_eq!(c.to_string(), "url=a=b");
        let c: WhereClause = "/a/b=".parse().unwrap();
        assert_eq!((c.pointer(), c.value()), ("/a/b", ""));

        let e = "=x".parse::<WhereClause>().unwrap_err();
        assert_eq!(e, FilterError::EmptyField { arg: "=x".into() });
        assert!(e.to_string().contains("\"=x\""), "{e}");
        let e = "level".parse::<WhereClause>().unwrap_err();
        assert_eq!(
            e,
            FilterError::MissingEquals {
                arg: "level".into()
            }
        );
        assert!(e.to_string().contains("\"level\""), "{e}");
        for arg in ["a..b=1", ".a=1", "a.=1"] {
            assert_eq!(
                arg.parse::<WhereClause>().unwrap_err(),
                FilterError::EmptySegment { arg: arg.into() }
            );
        }
    }

    #[test]
    fn several_where_clauses_all_must_match() {
        let f = wheres(&["level=error", "svc=api"]);
        assert_eq!(
            f.check(&json(r#"{"level":"error","svc":"api"}"#)),
            Verdict::Pass
        );
        assert_eq!(
            f.check(&json(r#"{"level":"error","svc":"db"}"#)),
            Verdict::Reject
        );
        assert_eq!(
            f.check(&json(r#"{"level":"info","svc":"api"}"#)),
            Verdict::Reject
        );
    }

    #[test]
    fn unparsed_values_with_where_clauses_ignore_invert() {
        for invert in [false, true] {
            let f = Filter::new(FilterConfig {
                wheres: vec!["a=1".parse().unwrap()],
                invert,
                ..Default::default()
            });
            assert_eq!(f.check(&json("{not json")), Verdict::Unparsed);
            assert_eq!(f.check(&record(None, Some(b"\xff"))), Verdict::Unparsed);
            assert_eq!(f.check(&record(None, None)), Verdict::Unparsed);
            let expected = if invert {
                Verdict::Reject
            } else {
                Verdict::Pass
            };
            assert_eq!(f.check(&json(r#"{"a":1}"#)), expected);
        }
    }

    #[test]
    fn combined_conditions_and_invert() {
        let config = FilterConfig {
            grep: Some(parse_regex("timeout").unwrap()),
            grep_key: Some(parse_regex("^eu-").unwrap()),
            wheres: vec!["level=error".parse().unwrap()],
            invert: false,
        };
        let hit = record(Some(b"eu-1"), Some(br#"{"level":"error","msg":"timeout"}"#));
        let wrong_key = record(Some(b"us-1"), Some(br#"{"level":"error","msg":"timeout"}"#));
        let wrong_level = record(Some(b"eu-1"), Some(br#"{"level":"info","msg":"timeout"}"#));
        let no_grep = record(Some(b"eu-1"), Some(br#"{"level":"error","msg":"ok"}"#));
        // The regexes decide before the value is parsed.
        let not_json = record(Some(b"us-1"), Some(b"timeout, not json"));

        let f = Filter::new(config.clone());
        assert_eq!(f.check(&hit), Verdict::Pass);
        for r in [&wrong_key, &wrong_level, &no_grep, &not_json] {
            assert_eq!(f.check(r), Verdict::Reject, "{r:?}");
        }

        let f = Filter::new(FilterConfig {
            invert: true,
            ..config
        });
        assert_eq!(f.check(&hit), Verdict::Reject);
        for r in [&wrong_key, &wrong_level, &no_grep, &not_json] {
            assert_eq!(f.check(r), Verdict::Pass, "{r:?}");
        }
    }

    #[test]
    fn streaming_lookup_agrees_with_value_pointer() {
        let docs = [
            r#"{"a":{"b":["x",2,true,null,{"c":"d"}]},"n":-0.5,"big":18446744073709551616,"01":1}"#,
            r#"{"a":{"b":{"0":"x","1":2}},"n":"-0.5","s":"\u00e9\n","k/v":{"t~":"y"}}"#,
            r#"{"a":[],"n":1e2,"s":"é\n","":{"":"e"},"dup":1,"dup":2}"#,
            r#"{"a":{"b":[0]},"a":{"c":1},"x":{"y":1},"x":2}"#,
            r#"[{"a":1},["b"]]"#,
            r#""top""#,
            "17",
            "null",
        ];
        let clauses = [
            "a.b.0=x",
            "a.b.1=2",
            "a.b.2=true",
            "a.b.3=null",
            "a.b.4.c=d",
            "/a/b/4/c=d",
            "a.b.01=2",
            "a.b=x",
            "n=-0.5",
            "n=100.0",
            "big=18446744073709552000",
            "big=1.8446744073709552e19",
            "01=1",
            "s=é\n",
            "s=é\\n",
            "/k~1v/t~0=y",
            "/=e",
            "//=e",
            "dup=2",
            "dup=1",
            "a.b.0=0",
            "a.c=1",
            "x.y=1",
            "x=2",
            "0.a=1",
            "1.0=b",
            "+1.0=b",
            "/=top",
            "a=null",
        ];
        let mut hits = 0;
        for doc in docs {
            let value: Value = serde_json::from_str(doc).unwrap();
            for clause in clauses {
                let clause: WhereClause = clause.parse().unwrap();
                let expected = clause.matches(&value);
                hits += usize::from(expected);
                let tree = PathNode::tree(std::slice::from_ref(&clause));
                let got = tree.matches(std::slice::from_ref(&clause), doc.as_bytes());
                assert_eq!(got, Some(expected), "{clause} on {doc}");
            }
            // All at once: one pass, one bit per clause.
            let all: Vec<WhereClause> = clauses.iter().map(|c| c.parse().unwrap()).collect();
            let tree = PathNode::tree(&all);
            for subset in [&all[..], &all[..1], &all[18..20], &all[21..24]] {
                let tree_sub = PathNode::tree(subset);
                let expected = subset.iter().all(|c| c.matches(&value));
                assert_eq!(
                    tree_sub.matches(subset, doc.as_bytes()),
                    Some(expected),
                    "{doc}"
                );
            }
            assert_eq!(tree.matches(&all, doc.as_bytes()), Some(false), "{doc}");
        }
        // Both outcomes are exercised, not just misses.
        assert_eq!(hits, 21);
        let tree = PathNode::tree(&[]);
        for bad in ["{", "{} x", "{\"a\":\"\u{1}\"}", "\"\\q\""] {
            assert_eq!(tree.matches(&[], bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(tree.matches(&[], b"\"\xff\""), None);
    }

    #[test]
    fn more_clauses_than_streamed_still_work() {
        let mut clauses: Vec<String> = (0..MAX_STREAMED + 1).map(|i| format!("k{i}={i}")).collect();
        let doc: String = format!(
            "{{{}}}",
            (0..=MAX_STREAMED)
                .map(|i| format!("\"k{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let filter = |clauses: &[String]| {
            Filter::new(FilterConfig {
                wheres: clauses.iter().map(|c| c.parse().unwrap()).collect(),
                ..Default::default()
            })
        };
        assert!(filter(&clauses).paths.is_none());
        assert!(filter(&clauses[1..]).paths.is_some());
        assert_eq!(filter(&clauses).check(&json(&doc)), Verdict::Pass);
        assert_eq!(filter(&clauses[1..]).check(&json(&doc)), Verdict::Pass);
        assert_eq!(filter(&clauses).check(&json("[")), Verdict::Unparsed);
        clauses[MAX_STREAMED] = format!("k{MAX_STREAMED}=no");
        assert_eq!(filter(&clauses).check(&json(&doc)), Verdict::Reject);
        assert_eq!(filter(&clauses[1..]).check(&json(&doc)), Verdict::Reject);
    }
}

//! JSON pointers looked up in one streaming pass over a document, without
//! building a [`serde_json::Value`]: the `--where` clauses of the filter and
//! the `json:/POINTER` key of the aggregations.
//!
//! The pointers (RFC 6901) are merged into one tree, and serde walks the
//! document once: it descends only where a pointer leads and skips the
//! rest. A pointer is resolved as [`Value::pointer`] resolves it (the same
//! unescaping; array indexes without a sign or leading zeros), and an
//! object key given twice as a `Value` keeps it: the last one wins.
//!
//! What is skipped is checked as the caller needs. By default, only for
//! JSON syntax, as serde's [`IgnoredAny`] does, which is the fastest; with
//! [`JsonPaths::as_values`] the lookup reads the document exactly as
//! parsing it into a `Value` and calling [`Value::pointer`] would: objects
//! and arrays are found too, and a document a `Value` would refuse (nesting
//! deeper than serde_json's limit, a number out of range) is refused.

use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// The most pointers one [`JsonPaths`] looks up: each is a bit of a `u64`.
pub const MAX_PATHS: usize = 64;

/// A value found at a pointer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Found<'a> {
    /// A string, unescaped.
    Str(&'a str),
    /// A number.
    Number(&'a Number),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object or an array; found only with [`JsonPaths::as_values`].
    Composite(&'a Value),
}

impl<'a> From<&'a Value> for Found<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::String(s) => Self::Str(s),
            Value::Number(n) => Self::Number(n),
            Value::Bool(b) => Self::Bool(*b),
            Value::Null => Self::Null,
            Value::Array(_) | Value::Object(_) => Self::Composite(value),
        }
    }
}

impl Found<'_> {
    /// Whether this is a string equal to `expected`, or a number, boolean
    /// or null whose JSON text (as serde_json writes it) is `expected`.
    /// Objects and arrays never are. Allocates nothing.
    pub fn text_is(&self, expected: &str) -> bool {
        match self {
            Self::Str(s) => *s == expected,
            Self::Number(n) => text_equals(n, expected),
            Self::Bool(b) => expected == if *b { "true" } else { "false" },
            Self::Null => expected == "null",
            Self::Composite(_) => false,
        }
    }

    /// The value as text: a string as it is, anything else as its compact
    /// JSON text, as serde_json writes a [`Value`] (object keys in the
    /// `Value`'s order).
    pub fn to_text(&self) -> String {
        match self {
            Self::Str(s) => (*s).to_owned(),
            Self::Number(n) => n.to_string(),
            Self::Bool(b) => b.to_string(),
            Self::Null => "null".to_owned(),
            Self::Composite(v) => v.to_string(),
        }
    }
}

/// Compares `n`'s display text with `expected` without allocating.
fn text_equals(n: &Number, expected: &str) -> bool {
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

/// Up to [`MAX_PATHS`] JSON pointers, looked up together in one pass.
#[derive(Debug, Clone)]
pub struct JsonPaths {
    root: PathNode,
    /// Every pointer's bit, those that can never be found included.
    all: u64,
    as_values: bool,
}

impl JsonPaths {
    /// The pointers, numbered from 0 in the order given; `None` when there
    /// are more than [`MAX_PATHS`]. A pointer that is neither empty nor
    /// starts with `/` is never found, as with [`Value::pointer`].
    pub fn new<'p>(pointers: impl IntoIterator<Item = &'p str>) -> Option<Self> {
        let mut root = PathNode::default();
        let mut all = 0;
        for (i, pointer) in pointers.into_iter().enumerate() {
            if i >= MAX_PATHS {
                return None;
            }
            let bit = 1u64 << i;
            all |= bit;
            if !pointer.is_empty() && !pointer.starts_with('/') {
                continue;
            }
            root.mask |= bit;
            let mut node = &mut root;
            for token in pointer.split('/').skip(1) {
                // As `Value::pointer` does, including its unescaping order.
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
                        node.children.push(PathNode {
                            token,
                            index,
                            ..PathNode::default()
                        });
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[at];
                node.mask |= bit;
            }
            node.targets.push(i);
        }
        Some(Self {
            root,
            all,
            as_values: false,
        })
    }

    /// Reads documents exactly as a [`Value`] would be parsed from them and
    /// looked up with [`Value::pointer`]: objects and arrays are found (as
    /// [`Found::Composite`]), and what a `Value` refuses is not JSON.
    pub fn as_values(self) -> Self {
        Self {
            as_values: true,
            ..self
        }
    }

    /// Every pointer's bit: pointer `i` is `1 << i`.
    pub fn all(&self) -> u64 {
        self.all
    }

    /// Looks the pointers up in `json`, calling `check` with a pointer's
    /// number and each value found there. Returns the bits of the pointers
    /// whose value passed `check`; where an object repeats a key, only the
    /// last value counts, as in a `Value`. `None` when `json` is not one
    /// JSON text.
    pub fn lookup(
        &self,
        json: &[u8],
        mut check: impl FnMut(usize, Found<'_>) -> bool,
    ) -> Option<u64> {
        // Checked up front because skipped strings are not, and a JSON
        // text must be UTF-8 throughout.
        let text = std::str::from_utf8(json).ok()?;
        let mut de = serde_json::Deserializer::from_str(text);
        let mut hits = 0;
        Lookup {
            node: &self.root,
            as_values: self.as_values,
            check: &mut check,
            hits: &mut hits,
        }
        .deserialize(&mut de)
        .ok()?;
        de.end().ok()?;
        Some(hits)
    }
}

/// One step of the pointers, with those that end here.
#[derive(Debug, Clone, Default)]
struct PathNode {
    /// The unescaped pointer token: an object key, or an array index.
    token: String,
    /// `token` as an array index, parsed as [`Value::pointer`] does.
    index: Option<usize>,
    /// The pointers that end at this node.
    targets: Vec<usize>,
    /// The pointers at or below this node, as bits.
    mask: u64,
    children: Vec<PathNode>,
}

impl PathNode {
    /// Reports the pointers at and below this node that `value` holds.
    fn walk_value<F: FnMut(usize, Found<'_>) -> bool>(
        &self,
        value: &Value,
        check: &mut F,
        hits: &mut u64,
    ) {
        for &i in &self.targets {
            if check(i, Found::from(value)) {
                *hits |= 1 << i;
            }
        }
        for child in &self.children {
            let next = match value {
                Value::Object(map) => map.get(&child.token),
                Value::Array(list) => child.index.and_then(|i| list.get(i)),
                _ => None,
            };
            if let Some(next) = next {
                child.walk_value(next, check, hits);
            }
        }
    }
}

/// Walks one JSON value at `node`, setting the bits of the pointers whose
/// values pass `check` and skipping whatever no pointer leads into.
struct Lookup<'a, F> {
    node: &'a PathNode,
    as_values: bool,
    check: &'a mut F,
    hits: &'a mut u64,
}

impl<F: FnMut(usize, Found<'_>) -> bool> Lookup<'_, F> {
    fn found(self, value: Found<'_>) {
        for &i in &self.node.targets {
            if (self.check)(i, value) {
                *self.hits |= 1 << i;
            }
        }
    }

    fn child<'b>(&'b mut self, node: &'b PathNode) -> Lookup<'b, F> {
        Lookup {
            node,
            as_values: self.as_values,
            check: self.check,
            hits: self.hits,
        }
    }
}

impl<'de, F: FnMut(usize, Found<'_>) -> bool> DeserializeSeed<'de> for Lookup<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // With a duplicate key the last one wins, as in a `Value`.
        *self.hits &= !self.node.mask;
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(usize, Found<'_>) -> bool> Visitor<'de> for Lookup<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.found(Found::Bool(v));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.found(Found::Number(&Number::from(v)));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.found(Found::Number(&Number::from(v)));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // Not finite: a `Value` holds null (serde_json never reads one).
        match Number::from_f64(v) {
            Some(n) => self.found(Found::Number(&n)),
            None => self.found(Found::Null),
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.found(Found::Str(v));
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.found(Found::Null);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let node = self.node;
        if self.as_values && !node.targets.is_empty() {
            // The object itself is wanted: read it as a `Value` reads one.
            let value = Value::deserialize(MapAccessDeserializer::new(map))?;
            node.walk_value(&value, self.check, self.hits);
            return Ok(());
        }
        while let Some(child) = map.next_key_seed(ChildKey(&node.children))? {
            match child {
                Some(child) => map.next_value_seed(self.child(child))?,
                None if self.as_values => map.next_value_seed(Strict)?,
                None => map.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let node = self.node;
        if self.as_values && !node.targets.is_empty() {
            let value = Value::deserialize(SeqAccessDeserializer::new(seq))?;
            node.walk_value(&value, self.check, self.hits);
            return Ok(());
        }
        for i in 0.. {
            let more = match node.children.iter().find(|c| c.index == Some(i)) {
                Some(child) => seq.next_element_seed(self.child(child))?.is_some(),
                None if self.as_values => seq.next_element_seed(Strict)?.is_some(),
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

/// Skips a value as a [`Value`] would read it, keeping nothing: serde's
/// [`IgnoredAny`] checks serde_json's syntax only, not its nesting limit,
/// the range of numbers or the escapes in strings.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys are read in full (escapes checked), as a `Value` reads them.
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Strict)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Strict)?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
#[path = "json_path_tests.rs"]
mod tests;

//! Filters on records: regexes, where clauses and `--invert`; the
//! streaming lookup of where clauses against a parsed `Value`.

use super::*;
use crate::json_path::MAX_PATHS;

/// The clauses as [`Filter`] streams them.
struct Streamed(JsonPaths);

impl Streamed {
    fn tree(wheres: &[WhereClause]) -> Self {
        Self(JsonPaths::new(wheres.iter().map(WhereClause::pointer)).unwrap())
    }

    fn matches(&self, wheres: &[WhereClause], value: &[u8]) -> Option<bool> {
        all_hold(&self.0, wheres, value)
    }
}

fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> ConsumedRecord {
    ConsumedRecord {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        timestamp_ms: 0,
        timestamp_type: crate::record::TimestampType::CreateTime,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: Vec::new(),
        decoded: Default::default(),
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
    assert_eq!(f.check(&json(r#"{"status":500.0}"#)), Verdict::Pass);
    assert_eq!(f.check(&json(r#"{"status":"500.0"}"#)), Verdict::Reject);
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
fn where_compares_numbers_as_numbers_as_jq_does() {
    // Both ways: streamed (the filter) and on a parsed `Value` (the clause).
    let agree = |clause: &str, doc: &str, expected: bool| {
        let w: WhereClause = clause.parse().unwrap();
        let verdict = if expected {
            Verdict::Pass
        } else {
            Verdict::Reject
        };
        assert_eq!(
            wheres(&[clause]).check(&json(doc)),
            verdict,
            "{clause} {doc}"
        );
        let doc: Value = serde_json::from_str(doc).unwrap();
        assert_eq!(w.matches(&doc), expected, "{clause} {doc}");
    };
    agree("/n=1", r#"{"n":1.0}"#, true);
    agree("/n=1.0", r#"{"n":1}"#, true);
    agree("/n=100", r#"{"n":1e2}"#, true);
    agree("/n=1e2", r#"{"n":100}"#, true);
    agree("/n=-0", r#"{"n":0}"#, true);
    agree("/n=0.5", r#"{"n":5e-1}"#, true);
    agree("/n=-3", r#"{"n":-3.0}"#, true);
    agree("/n=1", r#"{"n":1.5}"#, false);
    agree("/n=1", r#"{"n":10}"#, false);
    // Integers are compared exactly, not through an f64 that holds both.
    agree("/n=9007199254740993", r#"{"n":9007199254740992}"#, false);
    agree(
        "/n=18446744073709551615",
        r#"{"n":18446744073709551615}"#,
        true,
    );
    // Strings stay text.
    agree("/n=1", r#"{"n":"1"}"#, true);
    agree("/n=1", r#"{"n":"1.0"}"#, false);
    agree("/n=1.0", r#"{"n":"1"}"#, false);
    // Only JSON's number grammar is a number.
    agree("/n=+1", r#"{"n":1}"#, false);
    agree("/n= 1", r#"{"n":1}"#, false);
    agree("/n=1.", r#"{"n":1}"#, false);
    agree("/n=0x1", r#"{"n":1}"#, false);
    agree("/n=NaN", r#"{"n":1}"#, false);
}

#[test]
fn unparsed_values_with_where_clauses_pass_under_invert() {
    for invert in [false, true] {
        let f = Filter::new(FilterConfig {
            wheres: vec!["a=1".parse().unwrap()],
            invert,
            ..Default::default()
        });
        // Not JSON, not UTF-8, a tombstone: they do not match, so inverted
        // they pass, as `grep -v` keeps what `grep` would not print.
        let unreadable = if invert {
            Verdict::Pass
        } else {
            Verdict::Unparsed
        };
        assert_eq!(f.check(&json("{not json")), unreadable);
        assert_eq!(f.check(&record(None, Some(b"\xff"))), unreadable);
        assert_eq!(f.check(&record(None, None)), unreadable);
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
            let tree = Streamed::tree(std::slice::from_ref(&clause));
            let got = tree.matches(std::slice::from_ref(&clause), doc.as_bytes());
            assert_eq!(got, Some(expected), "{clause} on {doc}");
        }
        // All at once: one pass, one bit per clause.
        let all: Vec<WhereClause> = clauses.iter().map(|c| c.parse().unwrap()).collect();
        let tree = Streamed::tree(&all);
        for subset in [&all[..], &all[..1], &all[18..20], &all[21..24]] {
            let tree_sub = Streamed::tree(subset);
            let expected = subset.iter().all(|c| c.matches(&value));
            assert_eq!(
                tree_sub.matches(subset, doc.as_bytes()),
                Some(expected),
                "{doc}"
            );
        }
        assert_eq!(tree.matches(&all, doc.as_bytes()), Some(false), "{doc}");
    }
    // Both outcomes are exercised, not just misses (`n=100.0` on `1e2` and
    // one of the `big` spellings hit as numbers).
    assert_eq!(hits, 23);
    let tree = Streamed::tree(&[]);
    for bad in ["{", "{} x", "{\"a\":\"\u{1}\"}", "\"\\q\""] {
        assert_eq!(tree.matches(&[], bad.as_bytes()), None, "{bad}");
    }
    assert_eq!(tree.matches(&[], b"\"\xff\""), None);
}

#[test]
fn more_clauses_than_streamed_still_work() {
    let mut clauses: Vec<String> = (0..MAX_PATHS + 1).map(|i| format!("k{i}={i}")).collect();
    let doc: String = format!(
        "{{{}}}",
        (0..=MAX_PATHS)
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
    clauses[MAX_PATHS] = format!("k{MAX_PATHS}=no");
    assert_eq!(filter(&clauses).check(&json(&doc)), Verdict::Reject);
    assert_eq!(filter(&clauses[1..]).check(&json(&doc)), Verdict::Reject);
}

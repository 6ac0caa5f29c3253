//! The streaming lookup against `serde_json::Value`.

use super::*;

/// Each pointer's text in `doc`, read as a `Value` would be: `None`
/// when `doc` is not JSON.
fn streamed(pointers: &[&str], doc: &[u8]) -> Option<Vec<Option<String>>> {
    let paths = JsonPaths::new(pointers.iter().copied())?.as_values();
    let mut texts = vec![None; pointers.len()];
    let hits = paths.lookup(doc, |i, found| {
        texts[i] = Some(found.to_text());
        true
    })?;
    for (i, text) in texts.iter_mut().enumerate() {
        if hits & (1 << i) == 0 {
            *text = None;
        }
    }
    Some(texts)
}

/// The same through a whole `Value`.
fn parsed(pointers: &[&str], doc: &[u8]) -> Option<Vec<Option<String>>> {
    let value: Value = serde_json::from_slice(doc).ok()?;
    Some(
        pointers
            .iter()
            .map(|p| value.pointer(p).map(|v| Found::from(v).to_text()))
            .collect(),
    )
}

#[test]
fn as_values_finds_what_value_pointer_finds() {
    let deep = format!(
        r#"{{"k":"v","deep":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let docs: Vec<&[u8]> = vec![
        br#"{"a":{"b":["x",2,true,null,{"c":"d"}]},"n":-0.5,"big":18446744073709551616,"01":1}"#,
        br#"{"a":{"b":{"0":"x","1":2}},"n":"-0.5","s":"\u00e9\n","k/v":{"t~":"y"}}"#,
        r#"{"a":[],"n":1e2,"s":"é\n","":{"":"e"},"dup":1,"dup":2}"#.as_bytes(),
        br#"{"a":{"b":[0]},"a":{"c":1},"x":{"y":1},"x":2}"#,
        br#"{"o":{"z":1,"a":[1,{"y":2,"b":3}]},"neg":-9223372036854775809,"z":-0}"#,
        br#"{"a":{"z":{"q":[1,2]},"b":"B"},"e":{},"l":[]}"#,
        br#"[{"a":1},["b"]]"#,
        br#""top""#,
        b"17",
        b"null",
        deep.as_bytes(),
        br#"{"k":"v","x":1e400}"#,
        br#"{"k":"v","x":"\ud800"}"#,
        br#"{"k":"v","x":"\q"}"#,
        b"{\"k\":\"v\",\"x\":\"\xff\"}",
        br#"{"k":"v"} x"#,
        br#"{"k":"v""#,
        b"",
    ];
    let pointers = [
        "/a",
        "/a/b",
        "/a/b/0",
        "/a/b/1",
        "/a/b/4",
        "/a/b/4/c",
        "/a/b/01",
        "/a/c",
        "/a/z",
        "/n",
        "/big",
        "/01",
        "/s",
        "/k~1v/t~0",
        "/",
        "//",
        "/dup",
        "/x",
        "/x/y",
        "/0/a",
        "/1/0",
        "/+1",
        "/o",
        "/o/a/1",
        "/neg",
        "/z",
        "/e",
        "/l",
        "/k",
        "",
        "a",
    ];
    let mut found = 0;
    for doc in &docs {
        let expected = parsed(&pointers, doc);
        found += expected.iter().flatten().flatten().count();
        // All at once, and each on its own.
        assert_eq!(
            streamed(&pointers, doc),
            expected,
            "{}",
            String::from_utf8_lossy(doc)
        );
        for (i, pointer) in pointers.iter().enumerate() {
            assert_eq!(
                streamed(&[pointer], doc),
                expected.as_ref().map(|e| vec![e[i].clone()]),
                "{pointer} in {}",
                String::from_utf8_lossy(doc)
            );
        }
    }
    // Objects keep a `Value`'s key order; both outcomes are exercised.
    assert_eq!(
        streamed(&["/o"], docs[4]),
        Some(vec![Some(r#"{"a":[1,{"b":3,"y":2}],"z":1}"#.to_owned())])
    );
    assert_eq!(found, 46);
}

#[test]
fn by_default_what_is_skipped_is_checked_for_syntax_only() {
    let paths = JsonPaths::new(["/k", "/o"]).unwrap();
    let is_v = |i: usize, f: Found<'_>| i == 0 && f.text_is("v");
    // Past serde_json's nesting limit, out of f64's range, a lone
    // surrogate: refused by a `Value`, not by a skip.
    let deep = format!(r#"{{"k":"v","x":{}{}}}"#, "[".repeat(200), "]".repeat(200));
    for doc in [
        deep.as_str(),
        r#"{"k":"v","x":1e400}"#,
        r#"{"k":"v","x":"\ud800"}"#,
    ] {
        assert_eq!(paths.lookup(doc.as_bytes(), is_v), Some(1), "{doc}");
        assert_eq!(streamed(&["/k"], doc.as_bytes()), None, "{doc}");
    }
    // Objects and arrays are not values to compare.
    let mut composite = false;
    let hits = paths.lookup(br#"{"k":"v","o":{"a":1}}"#, |i, _| {
        composite |= i == 1;
        true
    });
    assert_eq!((hits, composite), (Some(1), false));
    // Neither is what is not JSON at all.
    for bad in ["{", "{} x", "{\"a\":\"\u{1}\"}", "\"\\q\""] {
        assert_eq!(paths.lookup(bad.as_bytes(), is_v), None, "{bad}");
    }
    assert_eq!(paths.lookup(b"\"\xff\"", is_v), None);
}

#[test]
fn found_values_as_text() {
    let doc: Value =
        serde_json::from_str(r#"[500, 500.0, -1.5, 1e2, true, null, "500", {"b":1,"a":[]}]"#)
            .unwrap();
    let items: Vec<Found<'_>> = doc.as_array().unwrap().iter().map(Found::from).collect();
    let texts: Vec<String> = items.iter().map(Found::to_text).collect();
    assert_eq!(
        texts,
        [
            "500",
            "500.0",
            "-1.5",
            "100.0",
            "true",
            "null",
            "500",
            r#"{"a":[],"b":1}"#
        ]
    );
    for (found, text) in items.iter().zip(&texts) {
        let scalar = !matches!(found, Found::Composite(_));
        assert_eq!(found.text_is(text), scalar, "{text}");
        assert!(!found.text_is(&format!("{text}0")), "{text}");
    }
    assert!(!items[0].text_is("500.0") && !items[1].text_is("500"));
}

#[test]
fn more_than_max_paths_are_refused() {
    let pointers: Vec<String> = (0..=MAX_PATHS).map(|i| format!("/k{i}")).collect();
    assert!(JsonPaths::new(pointers.iter().map(String::as_str)).is_none());
    let paths = JsonPaths::new(pointers[1..].iter().map(String::as_str)).unwrap();
    assert_eq!(paths.all(), u64::MAX);
}

//! The output formats: raw values, templates and JSON lines.

use serde_json::{Value, json};

use super::*;
use crate::Header;

fn headers(list: &[(&str, Option<&[u8]>)]) -> Vec<Header> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), v.map(<[u8]>::to_vec)))
        .collect()
}

fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> ConsumedRecord {
    ConsumedRecord {
        topic: "t".into(),
        partition: 3,
        offset: 42,
        timestamp_ms: 1_700_000_000_000,
        timestamp_type: crate::record::TimestampType::CreateTime,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: Vec::new(),
        decoded: Default::default(),
    }
}

fn render(format: OutputFormat, records: &[ConsumedRecord]) -> Vec<u8> {
    let mut w = RecordWriter::new(Vec::new(), format);
    for r in records {
        w.write(r).unwrap();
    }
    w.flush().unwrap();
    w.into_inner()
}

fn template(t: &str, r: &ConsumedRecord) -> String {
    let format = OutputFormat::Template(t.parse().unwrap());
    String::from_utf8(render(format, std::slice::from_ref(r))).unwrap()
}

fn json_line(r: &ConsumedRecord) -> Value {
    let out = render(OutputFormat::Json, std::slice::from_ref(r));
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(out.last(), Some(&b'\n'));
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn value_format_writes_raw_value_and_null_as_empty_line() {
    let out = render(
        OutputFormat::Value,
        &[
            record(Some(b"k"), Some(b"a\x00\xff")),
            record(None, None),
            record(None, Some(b"")),
            record(None, Some(b"z")),
        ],
    );
    assert_eq!(out, b"a\x00\xff\n\n\nz\n");
}

#[test]
fn template_fields_escapes_and_literal_braces() {
    let mut r = record(Some(b"k1"), Some(b"v\x001"));
    r.headers = headers(&[("b", Some(b"x=y")), ("a", Some(b"1")), ("b", Some(b"2"))]);
    let t = r"{topic}/{partition}@{offset} {timestamp}\t{key}={value}\r[{headers}] {{x}} \\n\n";
    // Headers in the record's order, a repeated key each time.
    assert_eq!(
        template(t, &r),
        "t/3@42 1700000000000\tk1=v\x001\r[b=x=y,a=1,b=2] {x} \\n\n"
    );
    assert_eq!(template("{{{key}}}", &r), "{k1}\n");
}

#[test]
fn template_null_fields_write_nothing_and_integers_keep_sign() {
    let mut r = record(None, None);
    r.timestamp_ms = -1;
    r.offset = i64::MIN;
    r.partition = i32::MAX;
    assert_eq!(
        template(
            "[{key}][{value}][{headers}] {timestamp} {offset} {partition}",
            &r
        ),
        "[][][] -1 -9223372036854775808 2147483647\n"
    );
    r.offset = 0;
    assert_eq!(template("{offset}", &r), "0\n");

    // A null header value is the key alone; an empty one is `k=`.
    r.headers = headers(&[("n", None), ("e", Some(b"")), ("n", Some(b"1"))]);
    assert_eq!(template("{headers}", &r), "n,e=,n=1\n");
}

#[test]
fn template_gets_a_newline_unless_it_ends_with_one() {
    let r = record(None, Some(b"v"));
    assert_eq!(template("{value}", &r), "v\n");
    assert_eq!(template(r"{value}\n", &r), "v\n");
    assert_eq!(template("{value}\n", &r), "v\n");
    assert_eq!(template(r"{value}\n\n", &r), "v\n\n");
    assert_eq!(template(r"{value}\t", &r), "v\t\n");
    assert_eq!(template(r"{value}\\n", &r), "v\\n\n");
    assert_eq!(template("", &r), "\n");
}

#[test]
fn template_errors_name_the_problem() {
    let e = "{key} {vaule}".parse::<Template>().unwrap_err();
    assert_eq!(
        e,
        OutputError::UnknownField {
            field: "vaule".into(),
            template: "{key} {vaule}".into()
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("\"{vaule}\"") && msg.contains("{timestamp}"),
        "{msg}"
    );
    assert!(matches!(
        "{}".parse::<Template>(),
        Err(OutputError::UnknownField { field, .. }) if field.is_empty()
    ));

    let e = "ab {key".parse::<Template>().unwrap_err();
    assert!(
        matches!(e, OutputError::UnclosedBrace { position: 3, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"ab {key\""), "{e}");

    let e = "a}b".parse::<Template>().unwrap_err();
    assert!(
        matches!(e, OutputError::UnmatchedBrace { position: 1, .. }),
        "{e:?}"
    );

    let e = r"{value}\q".parse::<Template>().unwrap_err();
    assert!(
        matches!(&e, OutputError::BadEscape { escape, .. } if escape == r"\q"),
        "{e:?}"
    );
    assert!(e.to_string().contains(r"\q"), "{e}");
    let e = r"{value}\".parse::<Template>().unwrap_err();
    assert!(
        matches!(&e, OutputError::BadEscape { escape, .. } if escape == r"\"),
        "{e:?}"
    );
    let e = r"\é".parse::<Template>().unwrap_err();
    assert!(
        matches!(&e, OutputError::BadEscape { escape, .. } if escape == r"\é"),
        "{e:?}"
    );
}

#[test]
fn json_text_record_has_fixed_key_order() {
    let mut r = record(Some(b"k"), Some(b"v"));
    r.headers = headers(&[("h", Some(b"v"))]);
    let out = render(OutputFormat::Json, &[r, record(None, None)]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        concat!(
            r#"{"topic":"t","partition":3,"offset":42,"timestamp":1700000000000,"key":"k","value":"v","headers":[{"key":"h","value":"v"}]}"#,
            "\n",
            r#"{"topic":"t","partition":3,"offset":42,"timestamp":1700000000000,"key":null,"value":null,"headers":[]}"#,
            "\n",
        )
    );
}

#[test]
fn json_headers_keep_order_repeated_keys_and_null() {
    let mut r = record(None, Some(b"v"));
    r.headers = headers(&[
        ("a", Some(b"1")),
        ("n", None),
        ("a", Some(b"2")),
        ("bin", Some(&[0xc3, 0x28])),
        ("e", Some(b"")),
    ]);
    let out = render(OutputFormat::Json, std::slice::from_ref(&r));
    let line = String::from_utf8(out).unwrap();
    assert!(
        line.ends_with(concat!(
            r#""headers":[{"key":"a","value":"1"},{"key":"n","value":null},"#,
            r#"{"key":"a","value":"2"},{"key":"bin","value_b64":"wyg="},"#,
            r#"{"key":"e","value":""}]}"#,
            "\n"
        )),
        "{line}"
    );
}

#[test]
fn json_binary_payloads_round_trip_through_base64() {
    let value: Vec<u8> = (0..=255).collect();
    let mut r = record(Some(&[0, 0xff]), Some(&value));
    r.headers = headers(&[
        ("bin", Some(&[0xc3, 0x28])),
        ("text", Some("é".as_bytes())),
        ("zbin", Some(&[0x80])),
    ]);
    let doc = json_line(&r);

    assert_eq!(doc["key_b64"], "AP8=");
    assert!(doc.get("key").is_none() && doc.get("value").is_none());
    let decode = |v: &Value| BASE64.decode(v.as_str().unwrap()).unwrap();
    assert_eq!(decode(&doc["value_b64"]), value);
    let h = doc["headers"].as_array().unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0]["key"], "bin");
    assert_eq!(decode(&h[0]["value_b64"]), [0xc3, 0x28]);
    assert!(h[0].get("value").is_none());
    assert_eq!(h[1], json!({"key": "text", "value": "é"}));
    assert_eq!(decode(&h[2]["value_b64"]), [0x80]);
    assert!(doc.get("headers_b64").is_none());

    let doc = json_line(&record(None, Some(b"")));
    assert_eq!(doc["headers"], json!([]));
    assert_eq!(doc["value"], "");
}

#[test]
fn json_escapes_quotes_backslashes_and_control_characters() {
    let nasty: String = "q\"b\\s/ n\nr\rt\tb\x08f\x0c nul\x00 us\x1f del\x7f é 😀 \u{2028}"
        .to_owned()
        + &(0u8..0x20).map(char::from).collect::<String>();
    let mut r = record(Some(nasty.as_bytes()), Some(nasty.as_bytes()));
    r.topic = "to\"pic".into();
    r.headers = vec![("h\"\n".into(), Some(nasty.clone().into_bytes()))];
    let doc = json_line(&r);
    assert_eq!(doc["topic"], "to\"pic");
    assert_eq!(doc["key"], nasty.as_str());
    assert_eq!(doc["value"], nasty.as_str());
    assert_eq!(
        doc["headers"],
        json!([{"key": "h\"\n", "value": nasty.as_str()}])
    );

    let mut out = Vec::new();
    write_json_str(&mut out, "a\"b\\c\nd\u{1}e\u{1f}é");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#""a\"b\\c\nd\u0001e\u001fé""#
    );
}

#[test]
fn writer_exposes_its_output() {
    let mut w = RecordWriter::new(Vec::new(), OutputFormat::default());
    w.write(&record(None, Some(b"x"))).unwrap();
    assert_eq!(w.get_ref(), b"x\n");
    w.get_mut().clear();
    w.write(&record(None, Some(b"y"))).unwrap();
    assert_eq!(w.into_inner(), b"y\n");
}

#[test]
fn lengths_are_minus_one_for_null_and_a_null_marker_differs_from_empty() {
    let t = "[{key}|{value}] {key_length} {value_length}";
    let null = record(None, None);
    let empty = record(Some(b""), Some(b""));
    let full = record(Some(b"k1"), Some("v\u{e9}1".as_bytes()));
    assert_eq!(template(t, &null), "[|] -1 -1\n");
    assert_eq!(template(t, &empty), "[|] 0 0\n");
    // Bytes, not characters.
    assert_eq!(template(t, &full), "[k1|v\u{e9}1] 2 4\n");
    // With a marker (kcat -Z), null and empty differ.
    let marked = |format: OutputFormat, r: &ConsumedRecord| {
        let mut w = RecordWriter::new(Vec::new(), format).with_null("NULL");
        w.write(r).unwrap();
        String::from_utf8(w.into_inner()).unwrap()
    };
    let parsed = || OutputFormat::Template(t.parse().unwrap());
    assert_eq!(marked(parsed(), &null), "[NULL|NULL] -1 -1\n");
    assert_eq!(marked(parsed(), &empty), "[|] 0 0\n");
    assert_eq!(marked(OutputFormat::Value, &null), "NULL\n");
    assert_eq!(marked(OutputFormat::Value, &empty), "\n");
    // JSON has its own null.
    assert_eq!(
        String::from_utf8(render(OutputFormat::Json, std::slice::from_ref(&null))).unwrap(),
        String::from_utf8({
            let mut w = RecordWriter::new(Vec::new(), OutputFormat::Json).with_null("NULL");
            w.write(&null).unwrap();
            w.into_inner()
        })
        .unwrap()
    );
}

#[test]
fn the_timestamp_type_and_dates_are_fields() {
    let mut r = record(None, Some(b"v"));
    r.timestamp_ms = 1_700_000_000_042;
    assert_eq!(
        template("{timestamp_type}:{timestamp} {date}", &r),
        "CreateTime:1700000000042 2023-11-14T22:13:20.042Z\n"
    );
    r.timestamp_type = crate::record::TimestampType::LogAppendTime;
    assert_eq!(
        template("{timestamp_type} {date:%Y-%m-%d %H:%M:%S.%L}", &r),
        "LogAppendTime 2023-11-14 22:13:20.042\n"
    );
    let err = "{date:%q}".parse::<Template>().unwrap_err();
    assert!(matches!(err, OutputError::BadDate { .. }), "{err}");
    assert!(err.to_string().contains("%q"), "{err}");
    let err = "{length}".parse::<Template>().unwrap_err();
    assert!(err.to_string().contains("{key_length}"), "{err}");
}

#[test]
fn a_share_groups_delivery_count_shows_in_templates_and_json() {
    let r = record(Some(b"k"), Some(b"v"));
    let delivered = |format: OutputFormat, count: Option<i16>| {
        let mut w = RecordWriter::new(Vec::new(), format);
        w.set_delivery_count(count);
        w.write(&r).unwrap();
        String::from_utf8(w.into_inner()).unwrap()
    };
    let t = || OutputFormat::Template("{offset}:{delivery_count}".parse().unwrap());
    assert_eq!(delivered(t(), Some(3)), "42:3\n");
    // Outside a share group the field writes nothing.
    assert_eq!(delivered(t(), None), "42:\n");
    let line: Value = serde_json::from_str(&delivered(OutputFormat::Json, Some(2))).unwrap();
    assert_eq!(line["delivery_count"], 2);
    assert_eq!(line["value"], "v");
    let line: Value = serde_json::from_str(&delivered(OutputFormat::Json, None)).unwrap();
    assert!(line.get("delivery_count").is_none(), "{line}");
}

//! Tests of the Avro JSON mapping (src/registry/avro.rs).

use super::*;

#[test]
fn decimals_are_exact_text_both_ways() {
    for (text, scale, back) in [
        ("123.45", 2, "123.45"),
        ("-0.05", 2, "-0.05"),
        ("7", 3, "7.000"),
        ("0.001", 3, "0.001"),
        ("-12", 0, "-12"),
        (
            "98765432109876543210.123456789",
            9,
            "98765432109876543210.123456789",
        ),
    ] {
        let n = unscaled(text, scale).unwrap();
        assert_eq!(decimal_text(&n, scale), back, "{text}");
    }
    assert!(unscaled("1.234", 2).is_none());
    assert!(unscaled("1e3", 2).is_none());
    assert!(unscaled("", 2).is_none());
}

#[test]
fn values_go_to_json_and_back() {
    let schema = AvroSchema::parse(
        r#"{"type":"record","name":"Order","fields":[
            {"name":"id","type":"long"},
            {"name":"customer","type":{"type":"record","name":"Customer","fields":[
                {"name":"name","type":"string"},{"name":"tier","type":{"type":"enum","name":"Tier","symbols":["GOLD","SILVER"]}}]}},
            {"name":"note","type":["null","string"],"default":null},
            {"name":"tags","type":{"type":"array","items":"string"}},
            {"name":"attrs","type":{"type":"map","values":"int"}},
            {"name":"blob","type":"bytes"},
            {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
            {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"ref","type":{"type":"string","logicalType":"uuid"}},
            {"name":"again","type":"Customer"}
        ]}"#,
    )
    .unwrap();
    let value = serde_json::json!({
        "id": 7,
        "customer": {"name": "ann", "tier": "GOLD"},
        "note": "hi",
        "tags": ["a", "b"],
        "attrs": {"x": 1, "y": -2},
        "blob": "AAEC",
        "price": "-12.34",
        "at": 1700000000123i64,
        "ref": "0b5f2a62-1c44-4bd6-9d5e-1b8a0a1f3c11",
        "again": {"name": "bo", "tier": "SILVER"}
    });
    let bytes = schema.from_json(&value).unwrap();
    assert_eq!(schema.to_json(&bytes).unwrap(), value);
    // The text has the record's fields in the schema's order.
    let text = String::from_utf8(schema.to_json_text(&bytes).unwrap()).unwrap();
    assert!(
        text.starts_with(r#"{"id":7,"customer":{"name":"ann","tier":"GOLD"},"note":"hi","#),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<Json>(&text).unwrap(), value);
    let mut missing = value.clone();
    missing.as_object_mut().unwrap().remove("note");
    let back = schema
        .to_json(&schema.from_json(&missing).unwrap())
        .unwrap();
    assert_eq!(back["note"], Json::Null);
    let mut wrong = value.clone();
    wrong["customer"]["tier"] = "BRONZE".into();
    let e = schema.from_json(&wrong).unwrap_err();
    assert!(
        e.starts_with("field /customer/tier: expected one of GOLD, SILVER"),
        "{e}"
    );
    assert!(schema.to_json(&bytes[..bytes.len() - 1]).is_err());
}

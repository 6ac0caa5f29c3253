//! Headers as Kafka keeps them, against a real broker: an ordered list of
//! (key, nullable value) pairs, a key as often as it was given.
//!
//! Kafka's Java console producer writes repeated keys, a null value (its
//! `null.marker`), control characters and an empty value; `weir consume
//! --json` shows them exactly, and `weir consume --json | weir produce
//! --format json` copies them (and binary values) exactly into a second
//! topic, as weir, rskafka and the Java console consumer read it back.
//! `weir produce -H` keeps every pair it is given, a null value included,
//! as the Java console consumer shows.

mod common;

use common::{brokers, random_topic, weir_run};
use serde_json::{Value, json};

const CONSOLE_PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";

/// What the console tools read and print for a null header value
/// (`null.marker`, `null.literal`); no test data contains it as text.
const NULL: &str = "<null>";

/// Headers in order: key and value, `None` for null.
type Headers = Vec<(String, Option<Vec<u8>>)>;

fn headers(list: &[(&str, Option<&[u8]>)]) -> Headers {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), v.map(<[u8]>::to_vec)))
        .collect()
}

/// The console producer (Java's `KafkaProducer`) writing `input`, lines of
/// `headers TAB key TAB value`, with headers `k:v` joined by `,`.
fn java_produce(topic: &str, input: &str) {
    let run = common::kafka_tool_with_input(
        CONSOLE_PRODUCER,
        &[
            "--bootstrap-server",
            brokers(),
            "--topic",
            topic,
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "parse.headers=true",
            "--reader-property",
            &format!("null.marker={NULL}"),
        ],
        input.as_bytes(),
    );
    run.ok();
}

/// Headers as the console consumer prints them: values as text, `None`
/// for null.
type TextHeaders = Vec<(String, Option<String>)>;

/// The console consumer's view of the first `n` records of `topic`:
/// `(offset, headers, key)`.
fn java_consume(topic: &str, n: usize) -> Vec<(i64, TextHeaders, String)> {
    let n = n.to_string();
    let run = common::kafka_tool(
        CONSOLE_CONSUMER,
        &[
            "--bootstrap-server",
            brokers(),
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            &n,
            "--timeout-ms",
            "30000",
            "--formatter-property",
            "print.offset=true",
            "--formatter-property",
            "print.headers=true",
            "--formatter-property",
            "print.key=true",
            "--formatter-property",
            "print.value=false",
            "--formatter-property",
            &format!("null.literal={NULL}"),
        ],
    );
    run.ok();
    run.stdout
        .lines()
        .map(|line| {
            // Offset:O <tab> k:v,k:v (or NO_HEADERS) <tab> key; the test
            // data has no comma and no tab in a header.
            let f: Vec<&str> = line.splitn(3, '\t').collect();
            assert_eq!(f.len(), 3, "not a console consumer line: {line:?}");
            let offset = f[0].strip_prefix("Offset:").unwrap().parse().unwrap();
            let headers = match f[1] {
                "NO_HEADERS" => Vec::new(),
                list => list
                    .split(',')
                    .map(|h| {
                        let (k, v) = h.split_once(':').unwrap();
                        (k.to_owned(), (v != NULL).then(|| v.to_owned()))
                    })
                    .collect(),
            };
            (offset, headers, f[2].to_owned())
        })
        .collect()
}

/// `weir consume --json -e` of `topic`: the JSON lines.
fn weir_consume(topic: &str) -> (String, Vec<Value>) {
    let run = weir_run(&["consume", "-t", topic, "-e", "--json", "-q"]);
    run.ok();
    let lines = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (run.stdout.clone(), lines)
}

#[test]
fn java_headers_read_and_copied_exactly() {
    let source = random_topic("headers-java");
    let copy = random_topic("headers-copy");
    for topic in [&source, &copy] {
        weir_run(&["topics", "create", topic]).ok();
    }
    java_produce(
        &source,
        concat!(
            // A repeated key, a null value, control characters and an
            // empty value, in this order.
            "a:1,a:2,n:<null>,ctl:\u{1}x\u{7f}é,e:\tk1\tv1\n",
            // The same key twice the other way round: a sorted map would
            // read it as the line above does.
            "a:2,a:1\tk2\tv2\n",
            // No headers at all.
            "<null>\tk3\tv3\n",
        ),
    );
    // Binary values, which the console producer cannot write (it reads
    // text), from weir's own JSON input.
    common::produce(
        &["-t", &source, "--format", "json"],
        br#"{"key":"k4","value":"v4","headers":[{"key":"bin","value_b64":"gP8A"},{"key":"bin","value":null},["bin",""]]}"#,
    )
    .ok();

    let expected = [
        headers(&[
            ("a", Some(b"1")),
            ("a", Some(b"2")),
            ("n", None),
            ("ctl", Some("\u{1}x\u{7f}é".as_bytes())),
            ("e", Some(b"")),
        ]),
        headers(&[("a", Some(b"2")), ("a", Some(b"1"))]),
        headers(&[]),
        headers(&[
            ("bin", Some(&[0x80, 0xff, 0])),
            ("bin", None),
            ("bin", Some(b"")),
        ]),
    ];

    // weir shows them exactly, in the documented JSON form.
    let (text, lines) = weir_consume(&source);
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0]["headers"],
        json!([
            {"key": "a", "value": "1"},
            {"key": "a", "value": "2"},
            {"key": "n", "value": null},
            {"key": "ctl", "value": "\u{1}x\u{7f}é"},
            {"key": "e", "value": ""},
        ])
    );
    assert_eq!(
        lines[1]["headers"],
        json!([{"key": "a", "value": "2"}, {"key": "a", "value": "1"}])
    );
    assert_eq!(lines[2]["headers"], json!([]));
    assert_eq!(
        lines[3]["headers"],
        json!([
            {"key": "bin", "value_b64": "gP8A"},
            {"key": "bin", "value": null},
            {"key": "bin", "value": ""},
        ])
    );

    // weir consume --json | weir produce --format json: the copy is the
    // same record for record (a fresh one-partition topic, so the same
    // offsets), headers included.
    common::produce(&["-t", &copy, "--format", "json"], text.as_bytes()).ok();
    let (_, copied) = weir_consume(&copy);
    assert_eq!(copied.len(), lines.len());
    for (original, copied) in lines.iter().zip(&copied) {
        let mut original = original.clone();
        original["topic"] = json!(copy);
        assert_eq!(copied, &original);
    }

    // rskafka reads the copy's bytes as the console producer wrote them.
    let raw = &common::read_all(brokers(), &copy, 1)[&0];
    let got: Vec<&Headers> = raw.iter().map(|r| &r.record.headers).collect();
    assert_eq!(got, expected.iter().collect::<Vec<_>>());

    // And so does Kafka's own console consumer (text values only: it
    // prints header values as text).
    let java = java_consume(&copy, 4);
    assert_eq!(java.len(), 4, "{java:?}");
    for (offset, headers, key) in &java[..3] {
        let want: TextHeaders = expected[*offset as usize]
            .iter()
            .map(|(k, v)| {
                let text = v.as_ref().map(|v| String::from_utf8(v.clone()).unwrap());
                (k.clone(), text)
            })
            .collect();
        assert_eq!(headers, &want, "offset {offset}");
        assert_eq!(key, &format!("k{}", offset + 1));
    }
}

#[test]
fn repeated_header_flags_and_a_null_value_reach_the_java_consumer() {
    let topic = random_topic("headers-flags");
    weir_run(&["topics", "create", &topic]).ok();
    common::produce(
        &[
            "-t", &topic, "-K", ":", "-H", "src=a", "-H", "n", "-H", "src=b", "-H", "e=", "-H",
            "eq=x=y",
        ],
        b"k:v\n",
    )
    .ok();
    let java = java_consume(&topic, 1);
    let text = |k: &str, v: Option<&str>| (k.to_owned(), v.map(str::to_owned));
    assert_eq!(
        java,
        [(
            0,
            vec![
                text("src", Some("a")),
                text("n", None),
                text("src", Some("b")),
                text("e", Some("")),
                text("eq", Some("x=y")),
            ],
            "k".to_owned()
        )]
    );

    // An empty key is refused, naming the flag.
    let run = common::produce(&["-t", &topic, "-H", "=v"], b"x\n");
    run.expect_code(2);
    assert!(run.stderr.contains("--header \"=v\""), "{}", run.stderr);
}

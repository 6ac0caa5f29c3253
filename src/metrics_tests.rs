use std::sync::atomic::Ordering::Relaxed;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// A registry of the test's own, for a server that needs a `'static` one.
fn registry() -> &'static Metrics {
    Box::leak(Box::new(Metrics::new()))
}

/// Sends `request` to a fresh server over TCP; returns the response.
async fn exchange(metrics: &'static Metrics, request: &[u8]) -> String {
    let server = serve("127.0.0.1:0", metrics).await.unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    // The server may answer and close before an oversized request is
    // all written: a failed write is then expected.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server closes after its response")
        .unwrap();
    String::from_utf8(response).unwrap()
}

fn status(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

#[tokio::test]
async fn answers_the_three_paths_and_refuses_the_rest() {
    let metrics = registry();
    let ok = exchange(metrics, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status(&ok), "HTTP/1.1 200 OK");
    assert!(ok.ends_with("\r\n\r\nok\n"), "{ok}");

    let unknown = exchange(metrics, b"GET /other HTTP/1.1\r\n\r\n").await;
    assert_eq!(status(&unknown), "HTTP/1.1 404 Not Found");

    let post = exchange(
        metrics,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(status(&post), "HTTP/1.1 405 Method Not Allowed");
    assert!(post.contains("\r\nAllow: GET\r\n"), "{post}");

    let garbage = exchange(metrics, b"hello\r\n\r\n").await;
    assert_eq!(status(&garbage), "HTTP/1.1 400 Bad Request");

    let query = exchange(metrics, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
    assert_eq!(status(&query), "HTTP/1.1 200 OK");
    assert!(
        query.contains("# TYPE weir_records_in_total counter"),
        "{query}"
    );
}

#[tokio::test]
async fn an_oversized_request_is_refused_without_reading_it_all() {
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 64 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    let response = exchange(registry(), &request).await;
    assert_eq!(
        status(&response),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

#[tokio::test]
async fn a_port_in_use_is_refused_naming_the_address() {
    let first = serve("127.0.0.1:0", registry()).await.unwrap();
    let addr = first.local_addr().to_string();
    let second = serve(&addr, registry()).await.unwrap_err();
    assert_eq!(
        second.to_string(),
        format!("cannot listen for metrics on {addr}")
    );
}

#[test]
fn ready_only_with_partitions_assigned_read_and_no_rebalance() {
    let metrics = Metrics::new();
    assert_eq!(metrics.ready(), Err("no partitions assigned".into()));
    let p = metrics.input(&TopicPartition::new("t", 0));
    let assigned = p.assign();
    assert_eq!(metrics.ready(), Ok(()));
    p.set_failing(true);
    assert_eq!(
        metrics.ready(),
        Err("fetches from topic \"t\" partition 0 are failing".into())
    );
    p.set_failing(false);
    metrics.set_phase(Phase::Rebalancing);
    assert!(metrics.ready().unwrap_err().starts_with("rebalancing"));
    metrics.set_phase(Phase::Running);
    drop(assigned);
    assert_eq!(metrics.ready(), Err("no partitions assigned".into()));
}

#[test]
fn renders_labelled_series_lag_for_assigned_partitions_only_and_histograms() {
    let metrics = Metrics::new();
    let a = metrics.input(&TopicPartition::new("in", 1));
    let _held = a.assign();
    a.at(10, 25);
    a.fetched(5, 50, 15);
    // Fetched, not yet handled: still behind.
    assert!(
        metrics
            .render()
            .contains("weir_consumer_lag{topic=\"in\",partition=\"1\"} 15\n")
    );
    a.handled(5);
    metrics.left_out(&TopicPartition::new("in", 1), 2, 1);
    metrics.late(&TopicPartition::new("in", 1), 4);
    let b = metrics.input(&TopicPartition::new("in\"x", 0));
    b.at(0, 7);
    metrics
        .output(&TopicPartition::new("out", 2))
        .produced(3, 30);
    metrics.commits.observe(Duration::from_micros(1_500_000));
    metrics.commits.observe(Duration::from_micros(3_000));
    metrics.commits.observe(Duration::from_secs(60));
    metrics.error(ErrorKind::Commit);
    let text = metrics.render();
    for line in [
        "# TYPE weir_records_in_total counter",
        "weir_records_in_total{topic=\"in\",partition=\"1\"} 5",
        "weir_bytes_in_total{topic=\"in\",partition=\"1\"} 50",
        "weir_consumer_lag{topic=\"in\",partition=\"1\"} 10",
        "weir_records_in_total{topic=\"in\\\"x\",partition=\"0\"} 0",
        "weir_records_out_total{topic=\"out\",partition=\"2\"} 3",
        "weir_assigned_partitions 1",
        "weir_errors_total{kind=\"commit\"} 1",
        "weir_records_filtered_total{topic=\"in\",partition=\"1\"} 2",
        "weir_records_unparsed_total{topic=\"in\",partition=\"1\"} 1",
        "weir_records_late_total{topic=\"in\",partition=\"1\"} 4",
        "weir_records_late_total{topic=\"in\\\"x\",partition=\"0\"} 0",
        "# TYPE weir_commit_duration_seconds histogram",
        "weir_commit_duration_seconds_bucket{le=\"0.001\"} 0",
        "weir_commit_duration_seconds_bucket{le=\"0.005\"} 1",
        "weir_commit_duration_seconds_bucket{le=\"1\"} 1",
        "weir_commit_duration_seconds_bucket{le=\"2.5\"} 2",
        "weir_commit_duration_seconds_bucket{le=\"10\"} 2",
        "weir_commit_duration_seconds_bucket{le=\"+Inf\"} 3",
        "weir_commit_duration_seconds_sum 61.503",
        "weir_commit_duration_seconds_count 3",
        "weir_ready 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
    assert!(
        !text.contains("weir_consumer_lag{topic=\"in\\\"x\""),
        "an unassigned partition has no lag: {text}"
    );
    assert_eq!(a.records.load(Relaxed), 5);
    // A new fetch task: what the last one fetched and nobody handled was
    // dropped with it.
    a.fetched(3, 30, 18);
    drop(_held);
    let _held = a.assign();
    assert!(text_has(
        &metrics,
        "weir_consumer_lag{topic=\"in\",partition=\"1\"} 7"
    ));
}

fn text_has(metrics: &Metrics, line: &str) -> bool {
    metrics.render().lines().any(|l| l == line)
}

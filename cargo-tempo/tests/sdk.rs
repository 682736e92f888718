//! A component written on tempo-sdk (`sdk/`), served by the real binary: its routes, storage and
//! streams, and its telemetry arriving at a real OTLP receiver and at `/metrics`.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;
mod otlp;

use common::{Served, assert_contains, get};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use otlp::{Receiver, attribute, exporting_with, hex, stop, traced_get};

/// Serves the SDK fixture, which also handles messages on `sdk.>`.
fn serve_sdk(env: &[(&str, &str)]) -> Served {
    let mut all = vec![("TEMPO_SUBSCRIBE", "sdk.>")];
    all.extend_from_slice(env);
    Served::start_with(tempo_test_fixtures::sdk(), &all)
}

fn send(method: reqwest::Method, url: &str, body: Vec<u8>) -> reqwest::blocking::Response {
    crate::common::client()
        .request(method, url)
        .body(body)
        .send()
        .unwrap()
}

#[test]
fn an_sdk_guest_routes_stores_streams_and_sends() {
    let served = serve_sdk(&[]);
    let url = &served.url;
    use reqwest::Method;

    let (status, body) = get(&format!("{url}/hello/Ada"));
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"greeting":"Hello, Ada!"}"#)
    );
    assert_eq!(get(&format!("{url}/nowhere")).0, 404);
    let refused = send(Method::POST, &format!("{url}/hello/Ada"), Vec::new());
    assert_eq!(refused.status(), 405);
    assert_eq!(refused.headers()["allow"], "GET");
    let (status, body) = get(&format!("{url}/fail"));
    assert_eq!(
        (status, body.as_str()),
        (500, r#"{"error":"it failed on purpose"}"#)
    );

    // JSON in and out of keyvalue; bad JSON is the client's error.
    let put = send(
        Method::PUT,
        &format!("{url}/kv/user"),
        br#"{"name":"Ada"}"#.to_vec(),
    );
    assert_eq!(put.status(), 204);
    assert_eq!(
        get(&format!("{url}/kv/user")),
        (200, r#"{"name":"Ada"}"#.into())
    );
    let bad = send(
        Method::PUT,
        &format!("{url}/kv/user"),
        b"{not json".to_vec(),
    );
    assert_eq!(bad.status(), 400);
    assert!(bad.text().unwrap().contains("invalid JSON"));
    let incr = |by: u64| {
        send(
            Method::POST,
            &format!("{url}/kv/hits/incr?by={by}"),
            Vec::new(),
        )
    };
    assert_eq!(incr(2).text().unwrap(), "2");
    assert_eq!(incr(3).text().unwrap(), "5");
    assert_eq!(
        send(Method::DELETE, &format!("{url}/kv/user"), Vec::new()).status(),
        204
    );
    assert_eq!(get(&format!("{url}/kv/user")).0, 404);

    // Bodies stream into and out of a blob, and back to the client, byte for byte.
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 7)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let stored = send(Method::PUT, &format!("{url}/blob/big.bin"), data.clone());
    assert_eq!(stored.status(), 204);
    let read = crate::common::http_get(format!("{url}/blob/big.bin")).unwrap();
    assert_eq!(read.bytes().unwrap().as_ref(), data.as_slice());
    let echoed = send(Method::POST, &format!("{url}/echo"), data.clone());
    assert_eq!(echoed.bytes().unwrap().as_ref(), data.as_slice());

    // A request through the embedded broker to the same component's message handler.
    assert_eq!(
        get(&format!("{url}/ask/sdk.greet")),
        (200, "sdk: from http".into())
    );
    assert_eq!(get(&format!("{url}/config/missing")).0, 404);
}

#[test]
fn an_sdk_guests_spans_counter_and_logs_join_the_clients_trace() {
    let receiver = Receiver::start();
    let mut served = exporting_with(
        &receiver,
        tempo_test_fixtures::sdk(),
        &[("TEMPO_SUBSCRIBE", "sdk.>"), ("TEMPO_ADMIN", "127.0.0.1:0")],
    );
    let admin = served.wait_for_admin();
    let (trace, client_span) = ("7d3c9a8e2f1b4c6d8e0f1a2b3c4d5e6f", "a1b2c3d4e5f60718");
    let response = traced_get(
        &format!("{}/hello/Ada", served.url),
        &format!("00-{trace}-{client_span}-01"),
        Some("sdk-1"),
    );
    assert_eq!(response.status(), 200);
    let log_line = served.wait_for_stderr("greeted Ada");
    assert!(log_line.contains("sdk-1"), "the request id: {log_line}");
    assert!(
        log_line.contains("sdk_fixture"),
        "the component: {log_line}"
    );

    // An outgoing request carries the guest's own span.
    let fetched = traced_get(
        &format!("{}/fetch?url={}/downstream", served.url, receiver.url),
        &format!("00-{trace}-{client_span}-01"),
        Some("sdk-2"),
    );
    assert_eq!(fetched.status(), 200, "{:?}", fetched.text());

    let (_, metrics) = get(&format!("http://{admin}/metrics"));
    let counted = "sdk_fixture_greetings_total{component=\"sdk_fixture\",route=\"hello\"} 1";
    assert!(metrics.contains(counted), "no {counted:?} in:\n{metrics}");
    assert!(
        metrics.contains("sdk_fixture_name_length_bucket{component=\"sdk_fixture\",le=\"4\"} 1"),
        "the histogram keeps the guest's buckets:\n{metrics}"
    );
    stop(served);

    let spans = receiver.spans();
    let named = |name: &str| otlp::named(&spans, name);
    let request = spans
        .iter()
        .find(|span| {
            span.name == "request" && attribute(&span.attributes, "request_id") == Some("sdk-1")
        })
        .unwrap_or_else(|| panic!("no request span for sdk-1 in {spans:#?}"));
    let (hello, compose) = (named("hello"), named("compose"));
    for span in [request, hello, compose] {
        assert_eq!(hex(&span.trace_id), trace, "one trace: {span:#?}");
    }
    assert_eq!(hex(&request.parent_span_id), client_span);
    assert_eq!(
        hello.parent_span_id, request.span_id,
        "hello under the request"
    );
    assert_eq!(compose.parent_span_id, hello.span_id, "compose under hello");
    assert_eq!(attribute(&hello.attributes, "greeted"), Some("Ada"));
    assert_eq!(attribute(&compose.attributes, "request_id"), Some("sdk-1"));
    let fetch = named("fetch");
    assert_eq!(
        receiver.traceparents("/downstream"),
        [Some(format!("00-{trace}-{}-01", hex(&fetch.span_id)))],
        "the downstream request continues from the guest's span"
    );

    let counter = receiver
        .metrics()
        .into_iter()
        .rev()
        .find(|metric| metric.name == "sdk_fixture.greetings")
        .unwrap_or_else(|| panic!("no sdk_fixture.greetings in the OTLP metrics"));
    let Some(metric::Data::Sum(sum)) = counter.data else {
        panic!("not a sum: {counter:#?}");
    };
    assert!(sum.is_monotonic);
    let point = &sum.data_points[0];
    assert_eq!(point.value, Some(number_data_point::Value::AsDouble(1.0)));
    assert_eq!(
        attribute(&point.attributes, "component"),
        Some("sdk_fixture")
    );
    assert_eq!(attribute(&point.attributes, "route"), Some("hello"));
}

#[test]
fn a_guest_cannot_take_the_hosts_metric_names_or_change_a_metrics_kind() {
    let mut served = serve_sdk(&[("TEMPO_ADMIN", "127.0.0.1:0")]);
    let admin = served.wait_for_admin();
    let base = served.url.clone();
    let post = |path: &str| {
        let url = format!("{base}{path}");
        send(reqwest::Method::POST, &url, Vec::new()).status()
    };
    assert_eq!(post("/metric/counter/tempo.http.requests"), 204);
    served.wait_for_stderr("names starting with `tempo` are the host's");
    assert_eq!(post("/metric/counter/sdk_fixture.kinds"), 204);
    assert_eq!(post("/metric/gauge/sdk_fixture.kinds"), 204);
    served.wait_for_stderr("is a counter; it cannot be reported as a gauge");
    assert_eq!(post("/metric/counter/bad%20name"), 204);
    served.wait_for_stderr("is invalid");

    let (_, metrics) = get(&format!("http://{admin}/metrics"));
    assert!(
        !metrics.contains("tempo_http_requests_total{component=\"sdk_fixture\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("sdk_fixture_kinds_total{component=\"sdk_fixture\"} 1"));
    // Refusals are counted, and serving goes on.
    assert_contains(
        &metrics,
        "tempo_limits_hit_total{component=\"sdk_fixture\",limit=\"metrics\"} 3",
    );
    assert_eq!(get(&format!("{}/hello/Ada", served.url)).0, 200);
}

//! Metrics and traces as operators see them: a real Prometheus scrapes `/metrics` and answers a
//! query with the requests the test made, and OTLP export reaches a receiver that decodes the
//! real protobuf payloads.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;
mod otlp;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{PATIENCE, Served, assert_contains, get, get_with_request_id};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp::{Receiver, attribute, exporting_to, hex, stop, text, traced_get};
use tempo_test_fixtures::free_port;

#[test]
fn metrics_answer_on_the_admin_address() {
    let (served, admin) = Served::with_admin(tempo_test_fixtures::config(), &[]);
    assert_eq!(get(&format!("{}/log", served.url)).0, 200);
    let (status, text) = get(&format!("http://{admin}/metrics"));
    assert_eq!(status, 200);
    for expected in [
        "tempo_http_requests_total{component=\"config_fixture\",status=\"200\"} 1",
        "tempo_http_request_duration_seconds_count{component=\"config_fixture\",status=\"200\"} 1",
        "tempo_instances_created_total{component=\"config_fixture\"} 1",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    assert_eq!(
        get(&format!("http://{admin}/healthz")),
        (200, "ok\n".into())
    );
    assert_eq!(get(&format!("http://{admin}/other")).0, 404);
}

/// A guest may answer with any status from 100 to 999: each is counted under its own label,
/// the unusual ones too, and the server goes on serving.
#[test]
fn every_status_a_guest_answers_with_is_counted() {
    let (served, admin) = Served::with_admin(tempo_test_fixtures::config(), &[]);
    let statuses = [204, 599, 600, 999];
    for status in statuses.iter().chain(&statuses) {
        assert_eq!(get(&format!("{}/status?{status}", served.url)).0, *status);
    }
    assert_eq!(get(&format!("{}/log", served.url)).0, 200);
    let (_, text) = get(&format!("http://{admin}/metrics"));
    for status in statuses {
        for expected in [
            format!(
                "tempo_http_requests_total{{component=\"config_fixture\",status=\"{status}\"}} 2"
            ),
            format!(
                "tempo_http_request_duration_seconds_count{{component=\"config_fixture\",status=\"{status}\"}} 2"
            ),
        ] {
            assert!(text.contains(&expected), "no {expected:?} in:\n{text}");
        }
    }
}

#[test]
fn run_serves_no_metrics_unless_asked_and_a_taken_admin_address_names_the_flag() {
    let served = Served::start(tempo_test_fixtures::config());
    assert!(!served.stderr().contains("Metrics"), "{}", served.stderr());
    drop(served);

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut served = Served::launch(tempo_test_fixtures::config(), &[("TEMPO_ADMIN", &address)]);
    assert_eq!(served.wait(), Some(1));
    let stderr = served.stderr();
    assert_contains(&stderr, &format!("cannot listen on {address} (`--admin`)"));
}

/// A Prometheus server, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Debian's `prometheus`, scraping `target` every second.
    fn start(target: &str) -> Self {
        let binary = which_prometheus();
        let data = tempfile::tempdir().unwrap();
        let config = data.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tempo\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _data: data,
        }
    }

    /// The value of an instant query that returns one sample, once there is one.
    fn query(&self, query: &str) -> Option<f64> {
        let response = crate::common::client()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .ok()?;
        let body: serde_json::Value = serde_json::from_str(&response.text().ok()?).ok()?;
        let value = body["data"]["result"].get(0)?["value"][1].as_str()?;
        value.parse().ok()
    }

    /// Waits until `query` returns `expected`; panics with the last answer otherwise.
    fn wait_for(&self, query: &str, expected: f64) {
        let mut last = None;
        let seen = tempo_test_fixtures::poll(Duration::from_millis(250), || {
            last = self.query(query);
            (last == Some(expected)).then_some(())
        });
        assert!(
            seen.is_some(),
            "`{query}` answered {last:?}, not {expected}"
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which_prometheus() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file())
        .expect("this test needs Prometheus: `apt-get install prometheus` (`.ci/run` does)")
}

#[test]
fn a_real_prometheus_scrapes_the_request_count() {
    let (served, admin) = Served::with_admin(tempo_test_fixtures::config(), &[]);
    let prometheus = Prometheus::start(&admin);
    for _ in 0..3 {
        assert_eq!(get(&format!("{}/log", served.url)).0, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(&format!("{}/config/nothing", served.url)).0, 404);
    }
    prometheus.wait_for("sum(tempo_http_requests_total)", 5.0);
    prometheus.wait_for(r#"tempo_http_requests_total{status="404"}"#, 2.0);
    prometheus.wait_for(
        r#"sum(tempo_http_request_duration_seconds_count{component="config_fixture"})"#,
        5.0,
    );
}

#[test]
fn otlp_export_reaches_a_collector_as_protobuf() {
    let receiver = Receiver::start();
    let mut served = Served::start_with(
        tempo_test_fixtures::config(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url),
            ("OTEL_SERVICE_NAME", "checkout"),
        ],
    );
    served.wait_for_stderr(&format!(
        "Exporting traces, metrics and logs to {}",
        receiver.url
    ));
    let (status, _, _) = get_with_request_id(&format!("{}/log", served.url), Some("otlp-7"));
    assert_eq!(status, 200);
    // A clean stop exports what is pending.
    served.signal(libc::SIGTERM);
    assert_eq!(served.wait(), Some(0));

    let spans: Vec<_> = receiver
        .requests::<ExportTraceServiceRequest>("/v1/traces")
        .into_iter()
        .flat_map(|request| request.resource_spans)
        .collect();
    let service_names: Vec<_> = spans
        .iter()
        .filter_map(|r| attribute(&r.resource.as_ref()?.attributes, "service.name"))
        .collect();
    assert!(service_names.contains(&"checkout"), "{service_names:?}");
    let request = spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .find(|span| {
            span.name == "request" && attribute(&span.attributes, "request_id") == Some("otlp-7")
        })
        .unwrap_or_else(|| panic!("no request span for otlp-7 in {spans:#?}"));
    assert_eq!(attribute(&request.attributes, "url.path"), Some("/log"));
    // Each call into a tempo service (here wasi:logging's `log`, twice) is a child span.
    let calls = spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .filter(|span| {
            span.parent_span_id == request.span_id
                && attribute(&span.attributes, "function") == Some("log")
        })
        .count();
    assert_eq!(calls, 2, "{spans:#?}");

    let logs = receiver.logs();
    for line in ["printed on stdout", "logged at info", "logged at warn"] {
        let record = logs
            .iter()
            .find(|record| text(record.body.as_ref()) == Some(line))
            .unwrap_or_else(|| panic!("no log record {line:?} in {logs:#?}"));
        assert_eq!(attribute(&record.attributes, "request_id"), Some("otlp-7"));
        assert_eq!(
            attribute(&record.attributes, "component"),
            Some("config_fixture")
        );
    }

    let metrics: Vec<String> = receiver
        .metrics()
        .into_iter()
        .map(|metric| metric.name)
        .collect();
    for name in [
        "tempo.http.requests",
        "tempo.http.request.duration",
        "tempo.instances.created",
    ] {
        assert!(
            metrics.iter().any(|m| m == name),
            "no {name} in {metrics:?}"
        );
    }
}

#[test]
fn a_clients_trace_runs_through_tempo_into_the_guests_own_requests() {
    let receiver = Receiver::start();
    let served = exporting_to(&receiver, tempo_test_fixtures::http());
    let (trace, client_span) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let response = traced_get(
        &format!("{}/fetch?url={}/downstream", served.url, receiver.url),
        &format!("00-{trace}-{client_span}-01"),
        Some("traced-1"),
    );
    assert_eq!(response.status(), 200, "{:?}", response.text());
    stop(served);

    let spans = receiver.spans();
    let request = spans
        .iter()
        .find(|span| {
            span.name == "request" && attribute(&span.attributes, "request_id") == Some("traced-1")
        })
        .unwrap_or_else(|| panic!("no request span for traced-1 in {spans:#?}"));
    assert_eq!(hex(&request.trace_id), trace, "the client's trace goes on");
    assert_eq!(
        hex(&request.parent_span_id),
        client_span,
        "under the client's span"
    );
    let downstream = receiver.traceparents("/downstream");
    assert_eq!(
        downstream,
        [Some(format!("00-{trace}-{}-01", hex(&request.span_id)))],
        "the guest's request continues the trace from the request span"
    );

    // A traceparent that is not one is ignored: tempo starts a trace, and it still goes
    // downstream.
    let untraced = Receiver::start();
    let served = exporting_to(&untraced, tempo_test_fixtures::http());
    let response = traced_get(
        &format!("{}/fetch?url={}/downstream", served.url, untraced.url),
        &format!("00-{trace}-zz-01"),
        None,
    );
    assert_eq!(response.status(), 200);
    stop(served);
    let request = untraced
        .spans()
        .into_iter()
        .find(|span| span.name == "request")
        .unwrap();
    assert!(request.parent_span_id.is_empty());
    assert_eq!(
        untraced.traceparents("/downstream"),
        [Some(format!(
            "00-{}-{}-01",
            hex(&request.trace_id),
            hex(&request.span_id)
        ))]
    );
}

#[test]
fn a_messages_trace_runs_through_its_handler_into_what_the_guest_sends() {
    let nats = tempo_test_fixtures::NatsServer::start();
    let receiver = Receiver::start();
    let mut served = Served::launch(
        tempo_test_fixtures::messaging(),
        &[
            ("NATS_ADDR", &nats.url),
            ("TEMPO_SUBSCRIBE", "traced.>"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url),
        ],
    );
    served.wait_for_stderr("Serving messages on traced.>");
    let (trace, client_span) = ("5a3c0e2f1b9d4c7e8f6a1b2c3d4e5f60", "1a2b3c4d5e6f7081");
    let downstream = tempo_test_fixtures::block_on(async {
        let client = nats.client().await;
        let mut onward = client.subscribe("onward").await.unwrap();
        client.flush().await.unwrap();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "traceparent",
            format!("00-{trace}-{client_span}-01").as_str(),
        );
        let reply = client
            .request_with_headers("traced.in", headers, "send onward k".into())
            .await
            .unwrap();
        assert_eq!(reply.payload.as_ref(), b"sent");
        let sent = tokio::time::timeout(PATIENCE, futures::StreamExt::next(&mut onward))
            .await
            .unwrap()
            .unwrap();
        sent.headers
            .and_then(|headers| headers.get("traceparent").map(|v| v.to_string()))
    });
    stop(served);

    let spans = receiver.spans();
    let message = spans
        .iter()
        .find(|span| span.name == "message")
        .unwrap_or_else(|| panic!("no message span in {spans:#?}"));
    assert_eq!(hex(&message.trace_id), trace, "the sender's trace goes on");
    assert_eq!(hex(&message.parent_span_id), client_span);
    // The message the guest sent carries the trace, from the call that sent it: a child of the
    // message span.
    let downstream = downstream.expect("the guest's message carries a traceparent");
    let parts: Vec<&str> = downstream.split('-').collect();
    assert_eq!(parts[1], trace, "{downstream}");
    let send = spans
        .iter()
        .find(|span| hex(&span.span_id) == parts[2])
        .unwrap_or_else(|| panic!("no span {} in {spans:#?}", parts[2]));
    assert_eq!(send.parent_span_id, message.span_id);
}

#[test]
fn a_guests_own_spans_join_the_request_trace_through_wasi_otel() {
    let receiver = Receiver::start();
    let mut served = exporting_to(&receiver, tempo_test_fixtures::config());
    let (trace, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let response = traced_get(
        &format!("{}/otel", served.url),
        &format!("00-{trace}-{client_span}-01"),
        Some("otel-1"),
    );
    assert_eq!(response.status(), 200);
    let answer = response.text().unwrap();
    // The guest saw the client's trace, and its own inner span as the current one.
    assert_eq!(answer, format!("{trace}\n0000000000002222\n"));
    let flood = get(&format!(
        "{}/otel-flood?{}",
        served.url,
        tempo_otel::MAX_SPANS + 50
    ));
    assert_eq!(flood.0, 200);
    let log_line = served.wait_for_stderr("otel log line");
    assert_contains(&log_line, "otel-1");
    stop(served);

    let spans = receiver.spans();
    let named = |name: &str| otlp::named(&spans, name);
    let (request, outer, inner) = (named("request"), named("outer"), named("inner"));
    assert_eq!(hex(&request.parent_span_id), client_span);
    for span in [request, outer, inner] {
        assert_eq!(hex(&span.trace_id), trace, "one trace: {span:#?}");
    }
    assert_eq!(
        outer.parent_span_id, request.span_id,
        "outer under the request"
    );
    assert_eq!(outer.span_id, inner.parent_span_id, "inner under outer");
    assert_eq!(attribute(&inner.attributes, "request_id"), Some("otel-1"));
    assert_eq!(
        attribute(&inner.attributes, "component"),
        Some("config_fixture")
    );
    assert_eq!(attribute(&inner.attributes, "fixture.step"), Some("inner"));
    // An instance exports a bounded number of spans.
    let flooded = spans.iter().filter(|span| span.name == "flood").count();
    assert_eq!(flooded, tempo_otel::MAX_SPANS);
}

/// Exports a hostile guest makes (megabytes of attributes, a new set every time; histograms
/// standing for ten million measurements): refused with an error the guest reads, in bounded
/// memory and work.
#[test]
fn a_guest_cannot_hoard_memory_or_stall_a_host_call_through_its_metrics() {
    // One worker thread: the allocator keeps what a thread freed for that thread's reuse, so
    // with one worker the host's memory after the first export stays put, while with several it
    // grows once more for each worker that lifts an export. A host that kept the attributes
    // grows by 40 MB with every export either way.
    let (served, admin) = Served::with_admin(
        tempo_test_fixtures::otel_compat(),
        &[("TOKIO_WORKER_THREADS", "1")],
    );
    // The first export grows the guest's own memory (it builds 40 MB of attributes); then the
    // host's is measured.
    let hoard = |seed: usize| get(&format!("{}/hoard?{seed}", served.url));
    assert_eq!(hoard(0).0, 200);
    let before = served.resident_bytes();
    for seed in 1..9 {
        let (status, answer) = hoard(seed);
        assert_eq!(status, 200);
        assert!(
            answer.starts_with("refused: ") && answer.contains("attributes"),
            "{answer}"
        );
    }
    let grown = served.resident_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "tempo grew by {grown} bytes");
    let (_, scraped) = get(&format!("http://{admin}/metrics"));
    assert!(
        scraped.len() < 1 << 20,
        "a scrape of {} bytes",
        scraped.len()
    );
    for seed in 0..3 {
        let (_, answer) = get(&format!("{}/flood?{seed}", served.url));
        assert_contains(&answer, "measurements in all");
    }
    let (_, scraped) = get(&format!("http://{admin}/metrics"));
    let recorded: Vec<&str> = scraped
        .lines()
        .filter(|line| line.starts_with("flood_count{"))
        .collect();
    assert_eq!(recorded.len(), 6, "{recorded:?}");
    assert!(
        recorded.iter().all(|line| line.ends_with(" 10000")),
        "{recorded:?}"
    );
}

#[test]
fn a_guest_on_opentelemetrys_own_sdk_joins_the_trace_and_its_metrics_arrive() {
    let receiver = Receiver::start();
    let mut served = otlp::exporting_with(
        &receiver,
        tempo_test_fixtures::otel_compat(),
        &[("TEMPO_ADMIN", "127.0.0.1:0")],
    );
    let admin = served.wait_for_admin();
    let (trace, client_span) = ("3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f", "0f1e2d3c4b5a6978");
    let response = traced_get(
        &served.url,
        &format!("00-{trace}-{client_span}-01"),
        Some("compat-1"),
    );
    assert_eq!(response.status(), 200);
    // Cumulative reports become changes: 2, then 3 more.
    let (_, metrics) = get(&format!("http://{admin}/metrics"));
    for expected in [
        "compat_requests_total{component=\"otel_compat\",route=\"root\"} 5",
        "compat_latency_count{component=\"otel_compat\"} 2",
        "compat_latency_sum{component=\"otel_compat\"} 24",
        "compat_latency_bucket{component=\"otel_compat\",le=\"10\"} 1",
    ] {
        assert!(metrics.contains(expected), "no {expected:?} in:\n{metrics}");
    }
    stop(served);

    let spans = receiver.spans();
    let named = |name: &str| otlp::named(&spans, name);
    let (request, outer, inner) = (
        named("request"),
        named("compat-outer"),
        named("compat-inner"),
    );
    for span in [request, outer, inner] {
        assert_eq!(hex(&span.trace_id), trace, "one trace: {span:#?}");
    }
    assert_eq!(
        outer.parent_span_id, request.span_id,
        "outer-span-context is the request's"
    );
    assert_eq!(inner.parent_span_id, outer.span_id);
    assert_eq!(attribute(&outer.attributes, "compat.step"), Some("outer"));
    assert_eq!(attribute(&inner.attributes, "request_id"), Some("compat-1"));
}

#[test]
fn an_unreachable_collector_is_reported_and_serving_goes_on() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut served = Served::start_with(
        tempo_test_fixtures::config(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &closed),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    );
    for _ in 0..3 {
        assert_eq!(get(&format!("{}/log", served.url)).0, 200);
    }
    served.wait_for_stderr("HTTP export failed");
    assert_eq!(get(&format!("{}/log", served.url)).0, 200);
}

#[test]
fn a_reused_wasi_p3_instance_continues_each_requests_own_trace() {
    let receiver = Receiver::start();
    let served = exporting_to(&receiver, tempo_test_fixtures::http_p3());
    let traces = [
        ("4bf92f3577b34da6a3ce929d0e0e4736", "p3-traced-1"),
        ("5cf92f3577b34da6a3ce929d0e0e4737", "p3-traced-2"),
    ];
    for (trace, id) in traces {
        let response = traced_get(
            &format!("{}/fetch?{}/downstream", served.url, receiver.url),
            &format!("00-{trace}-00f067aa0ba902b7-01"),
            Some(id),
        );
        assert_eq!(response.status(), 200, "{:?}", response.text());
    }
    // Both went to one instance (the fixture counts what its instance has handled).
    assert_eq!(get(&format!("{}/count", served.url)).1, "3");
    stop(served);

    let spans = receiver.spans();
    let expected: Vec<Option<String>> = traces
        .iter()
        .map(|(trace, id)| {
            let request = spans
                .iter()
                .find(|span| {
                    span.name == "request" && attribute(&span.attributes, "request_id") == Some(id)
                })
                .unwrap_or_else(|| panic!("no request span for {id} in {spans:#?}"));
            assert_eq!(hex(&request.trace_id), *trace);
            Some(format!("00-{trace}-{}-01", hex(&request.span_id)))
        })
        .collect();
    assert_eq!(
        receiver.traceparents("/downstream"),
        expected,
        "each request's outgoing call continues its own trace"
    );
}

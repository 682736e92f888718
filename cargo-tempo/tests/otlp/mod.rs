//! An OTLP/HTTP receiver that decodes the real protobuf payloads, and the helpers of the tests
//! that read what tempo exports to it.

#![allow(dead_code, reason = "each test file uses part of this")]

use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::common::Served;

/// What the receiver kept of one request.
struct Received {
    path: String,
    traceparent: Option<String>,
    body: Bytes,
}

/// An OTLP/HTTP receiver keeping every request's path, `traceparent` and body; it also stands
/// for a guest's downstream service.
pub(crate) struct Receiver {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let store = store.clone();
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let store = store.clone();
                            async move {
                                let path = request.uri().path().to_owned();
                                let traceparent = request
                                    .headers()
                                    .get("traceparent")
                                    .and_then(|value| value.to_str().ok())
                                    .map(str::to_owned);
                                let body = request.into_body().collect().await?.to_bytes();
                                store.lock().unwrap().push(Received {
                                    path,
                                    traceparent,
                                    body,
                                });
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                            }
                        },
                    );
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                    );
                }
            });
        });
        Self { url, received }
    }

    /// `part` of each request to `path`, in the order received.
    fn of_each<T>(&self, path: &str, part: impl Fn(&Received) -> T) -> Vec<T> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .filter(|r| r.path == path)
            .map(part)
            .collect()
    }

    /// The bodies posted to `path`.
    pub(crate) fn bodies(&self, path: &str) -> Vec<Bytes> {
        self.of_each(path, |r| r.body.clone())
    }

    /// The `traceparent` of each request to `path`.
    pub(crate) fn traceparents(&self, path: &str) -> Vec<Option<String>> {
        self.of_each(path, |r| r.traceparent.clone())
    }

    /// The OTLP requests posted to `path`, decoded.
    pub(crate) fn requests<M: prost::Message + Default>(&self, path: &str) -> Vec<M> {
        self.bodies(path)
            .into_iter()
            .map(|body| M::decode(body).unwrap())
            .collect()
    }

    /// The items of the OTLP requests posted to `path`, in the order received: each request's
    /// resources, their scopes, and the scopes' `items`.
    fn flattened<M, R, S, X>(
        &self,
        path: &str,
        resources: fn(M) -> Vec<R>,
        scopes: fn(R) -> Vec<S>,
        items: fn(S) -> Vec<X>,
    ) -> Vec<X>
    where
        M: prost::Message + Default,
    {
        self.requests::<M>(path)
            .into_iter()
            .flat_map(resources)
            .flat_map(scopes)
            .flat_map(items)
            .collect()
    }

    /// Every metric exported to it, in the order received.
    pub(crate) fn metrics(&self) -> Vec<Metric> {
        let resources = |request: ExportMetricsServiceRequest| request.resource_metrics;
        self.flattened("/v1/metrics", resources, |r| r.scope_metrics, |s| s.metrics)
    }

    /// Every span exported to it.
    pub(crate) fn spans(&self) -> Vec<Span> {
        let resources = |request: ExportTraceServiceRequest| request.resource_spans;
        self.flattened("/v1/traces", resources, |r| r.scope_spans, |s| s.spans)
    }

    /// Every log record exported to it.
    pub(crate) fn logs(&self) -> Vec<LogRecord> {
        let resources = |request: ExportLogsServiceRequest| request.resource_logs;
        self.flattened("/v1/logs", resources, |r| r.scope_logs, |s| s.log_records)
    }
}

/// `component` served with its spans exported to `receiver` (which its guests may also reach,
/// as a downstream service), once it says so.
pub(crate) fn exporting_to(receiver: &Receiver, component: &Path) -> Served {
    exporting_with(receiver, component, &[])
}

/// [`exporting_to`], with more variables.
pub(crate) fn exporting_with(
    receiver: &Receiver,
    component: &Path,
    env: &[(&str, &str)],
) -> Served {
    let mut all = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
        ("TEMPO_ALLOWED_OUTBOUND_HOSTS", receiver.url.as_str()),
    ];
    all.extend_from_slice(env);
    let mut served = Served::start_with(component, &all);
    served.wait_for_stderr("Exporting traces");
    served
}

/// A GET carrying `traceparent`, and `x-request-id` if given.
pub(crate) fn traced_get(
    url: &str,
    traceparent: &str,
    id: Option<&str>,
) -> reqwest::blocking::Response {
    let mut request = crate::common::client()
        .get(url)
        .header("traceparent", traceparent);
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    request.send().unwrap()
}

/// Stops `served` cleanly, which exports what is pending.
pub(crate) fn stop(mut served: Served) {
    served.signal(libc::SIGTERM);
    assert_eq!(served.wait(), Some(0));
}

/// The span called `name` among `spans`; the test fails, listing them, if there is none.
pub(crate) fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

/// Bytes as lowercase hex, as W3C writes trace and span ids.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn text(value: Option<&AnyValue>) -> Option<&str> {
    match value?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text),
        _ => None,
    }
}

pub(crate) fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    let pair = attributes.iter().find(|pair| pair.key == key)?;
    text(pair.value.as_ref())
}

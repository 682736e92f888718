//! A guest that uses wasi:otel as the opentelemetry-wasi crate does (and wasmCloud's and Spin's
//! guests through it): OpenTelemetry's own SDK in the guest, with a span processor and a metric
//! reader that hand what it records to the host, the parent span taken from the host's
//! `outer-span-context`. Its WIT (`wit/otel.wit`) is the one those guests import.
//!
//! `GET /` makes the spans `compat-outer` and, inside it, `compat-inner`; adds 2 to the counter
//! `compat.requests` and records 9 and 15 in the histogram `compat.latency`; exports the
//! metrics (cumulative, as the SDK keeps them); adds 3 more and exports again.
//!
//! `GET /hoard?SEED` and `GET /flood?SEED` make exports a hostile guest would (see [`hostile`]),
//! and answer `ok` or `refused: REASON`.

mod convert;
mod hostile;

use std::sync::Arc;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    SpanContext, TraceContextExt as _, TraceFlags, TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use wstd::http::{Body, Error, Request, Response};

wit_bindgen::generate!({ world: "wasi:otel/imports@0.2.0-rc.2", path: "wit" });

use wasi::otel::{metrics as wit_metrics, tracing as wit};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let seed = request.uri().query().unwrap_or_default();
    let hostile = match request.uri().path() {
        "/hoard" => Some(hostile::hoard(seed)),
        "/flood" => Some(hostile::flood(seed)),
        _ => None,
    };
    if let Some(outcome) = hostile {
        let answer = outcome.map_or_else(|err| format!("refused: {err}\n"), |()| "ok\n".into());
        return Ok(Response::new(answer.into()));
    }
    let tracer = SdkTracerProvider::builder()
        .with_span_processor(convert::WasiSpanProcessor)
        .build()
        .tracer("compat");
    let _host = Context::new()
        .with_remote_span_context(host_span())
        .attach();
    tracer.in_span("compat-outer", |cx| {
        cx.span()
            .set_attribute(KeyValue::new("compat.step", "outer"));
        tracer.in_span("compat-inner", |_| {});
    });

    let reader = Arc::new(ManualReader::builder().build());
    let meters = SdkMeterProvider::builder()
        .with_reader(convert::SharedReader(reader.clone()))
        .build();
    let meter = meters.meter("compat");
    let counter = meter.u64_counter("compat.requests").build();
    let histogram = meter.f64_histogram("compat.latency").build();
    counter.add(2, &[KeyValue::new("route", "root")]);
    histogram.record(9.0, &[]);
    histogram.record(15.0, &[]);
    export(&reader);
    counter.add(3, &[KeyValue::new("route", "root")]);
    export(&reader);
    Ok(Response::new("ok\n".into()))
}

/// The host's span of the request, as the parent of the guest's first spans.
fn host_span() -> SpanContext {
    let outer = wit::outer_span_context();
    let trace_id = opentelemetry::trace::TraceId::from_hex(&outer.trace_id)
        .unwrap_or(opentelemetry::trace::TraceId::INVALID);
    let span_id = opentelemetry::trace::SpanId::from_hex(&outer.span_id)
        .unwrap_or(opentelemetry::trace::SpanId::INVALID);
    let flags = if outer.trace_flags.contains(wit::TraceFlags::SAMPLED) {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanContext::new(trace_id, span_id, flags, true, TraceState::default())
}

/// Collects what the meters hold (cumulative totals) and exports it.
fn export(reader: &ManualReader) {
    let mut collected = ResourceMetrics::default();
    reader.collect(&mut collected).expect("collect the metrics");
    wit_metrics::export(&convert::resource_metrics(&collected))
        .expect("the host takes the metrics");
}

//! A wasi:http guest that shows the host's tests what it can read through `wasi:config` and
//! writes through `wasi:logging`:
//!
//! - `GET /config/{key}`: 200 with the value, or 404 `undeclared` when the host has none;
//! - `GET /config`: every `key=value` the guest can see, one per line, sorted;
//! - `GET /env`: the guest's WASI environment variables, one per line;
//! - `GET /log`: logs `logged at info` (context `fixture`) and `logged at warn` through
//!   wasi:logging, and prints `printed on stdout`;
//! - `GET /forge`: logs and prints lines that try to forge another component's line (CR, LF),
//!   drive the terminal (ESC) and reorder text (a bidi override);
//! - `GET /otel`: through wasi:otel, starts a span `outer` under the host's current span and a
//!   span `inner` under it, ends both, and emits the log record `otel log line` (warn); answers
//!   the trace id and the current span id seen while `inner` was open;
//! - `GET /otel-flood?N`: starts and ends N spans named `flood`.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "tempo:host/http",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::config::store;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::clocks::wall_clock;
use wasi::logging::logging::{Level, log};
use wasi::otel::logs as otel_logs;
use wasi::otel::tracing as otel_tracing;
use wasi::otel::types as otel_types;

struct Fixture;

impl Guest for Fixture {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (status, body) = match path.as_str() {
            "/config" => match store::get_all() {
                Ok(mut pairs) => {
                    pairs.sort();
                    let lines: Vec<String> =
                        pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                    (200, lines.concat())
                }
                Err(err) => (500, format!("{err:?}")),
            },
            "/env" => {
                let lines: Vec<String> = wasi::cli::environment::get_environment()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect();
                (200, lines.concat())
            }
            "/log" => {
                log(Level::Info, "fixture", "logged at info");
                log(Level::Warn, "", "logged at warn");
                println!("printed on stdout");
                (200, "logged\n".to_owned())
            }
            "/forge" => {
                log(Level::Info, "ctx\u{1b}[31m", "first\r\n[other-app 0000] forged by logging");
                println!("\u{1b}[2Jprinted\r[other-app 0000] forged by stdout \u{202e}txt.exe");
                (200, "forged\n".to_owned())
            }
            "/otel" => otel(),
            // Any status a guest may answer with, 100 to 999: the host counts each.
            _ if path.starts_with("/status?") => {
                let status = path["/status?".len()..].parse().unwrap_or(500);
                (status, format!("{status}\n"))
            }
            _ if path.starts_with("/otel-flood?") => {
                let count = path["/otel-flood?".len()..].parse().unwrap_or(0);
                let parent = otel_tracing::current_span_context();
                for i in 0..count {
                    let span = child(&parent, 0x1000 + i);
                    otel_tracing::on_start(&span);
                    otel_tracing::on_end(&ended(span, &parent, "flood"));
                }
                (200, format!("{count}\n"))
            }
            _ => match path.strip_prefix("/config/") {
                Some(key) => match store::get(key) {
                    Ok(Some(value)) => (200, value),
                    Ok(None) => (404, "undeclared".to_owned()),
                    Err(err) => (500, format!("{err:?}")),
                },
                None => (404, "no such route".to_owned()),
            },
        };
        respond(out, status, body.as_bytes());
    }
}

export!(Fixture);

/// Two nested spans and a log record through wasi:otel.
fn otel() -> (u16, String) {
    let parent = otel_tracing::current_span_context();
    let outer = child(&parent, 0x1111);
    otel_tracing::on_start(&outer);
    let inner = child(&outer, 0x2222);
    otel_tracing::on_start(&inner);
    let seen = otel_tracing::current_span_context();
    otel_tracing::on_end(&ended(inner, &outer, "inner"));
    otel_tracing::on_end(&ended(outer, &parent, "outer"));
    otel_logs::on_emit(&otel_logs::LogRecord {
        timestamp: Some(wall_clock::now()),
        observed_timestamp: None,
        severity_text: Some("WARN".into()),
        severity_number: Some(13),
        body: Some("\"otel log line\"".into()),
        attributes: None,
        event_name: Some("fixture".into()),
        resource: None,
        instrumentation_scope: None,
        trace_id: Some(seen.trace_id.clone()),
        span_id: Some(seen.span_id.clone()),
        trace_flags: None,
    });
    (200, format!("{}\n{}\n", parent.trace_id, seen.span_id))
}

/// A context for a new span `id` in `parent`'s trace.
fn child(parent: &otel_tracing::SpanContext, id: u64) -> otel_tracing::SpanContext {
    otel_tracing::SpanContext {
        trace_id: parent.trace_id.clone(),
        span_id: format!("{id:016x}"),
        trace_flags: otel_tracing::TraceFlags::SAMPLED,
        is_remote: false,
        trace_state: Vec::new(),
    }
}

/// The record of span `context`, child of `parent`, named `name`, ending now.
fn ended(
    context: otel_tracing::SpanContext,
    parent: &otel_tracing::SpanContext,
    name: &str,
) -> otel_tracing::SpanData {
    let now = wall_clock::now();
    otel_tracing::SpanData {
        span_context: context,
        parent_span_id: parent.span_id.clone(),
        span_kind: otel_tracing::SpanKind::Internal,
        name: name.into(),
        start_time: now,
        end_time: now,
        attributes: vec![otel_types::KeyValue {
            key: "fixture.step".into(),
            value: format!("\"{name}\""),
        }],
        events: Vec::new(),
        links: Vec::new(),
        status: otel_tracing::Status::Ok,
        instrumentation_scope: otel_types::InstrumentationScope {
            name: "config-fixture".into(),
            version: None,
            schema_url: None,
            attributes: Vec::new(),
        },
        dropped_attributes: 0,
        dropped_events: 0,
        dropped_links: 0,
    }
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).expect("valid status");
    let outgoing = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("stream taken once");
    stream.blocking_write_and_flush(body).expect("write body");
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish body");
}

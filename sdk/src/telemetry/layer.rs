//! The `tracing` layer that reports spans and events to the host.

// Without wasi:otel, what spans and metrics hold is not sent anywhere.
#![cfg_attr(not(feature = "otel"), allow(dead_code))]

use std::fmt::Debug;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

#[cfg(feature = "otel")]
use crate::bindings::wasi::otel::{logs, tracing as wit, types};

/// The most events and attributes a span keeps; more are counted as dropped.
const MAX_ITEMS: usize = 128;

/// A span's identity, as W3C trace context writes it.
#[derive(Clone, Debug)]
pub(crate) struct TraceContext {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) sampled: bool,
    trace_state: Vec<(String, String)>,
}

/// What the layer keeps for an open span.
struct OpenSpan {
    context: TraceContext,
    parent_span_id: String,
    name: String,
    kind: Kind,
    scope: &'static str,
    start: SystemTime,
    attributes: Vec<(String, String)>,
    events: Vec<SpanEvent>,
    dropped_attributes: u32,
    dropped_events: u32,
    error: Option<String>,
}

/// An event that happened in a span.
struct SpanEvent {
    message: String,
    time: SystemTime,
    attributes: Vec<(String, String)>,
}

#[derive(Clone, Copy)]
enum Kind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// Reports spans (at their end) and events to the host.
pub(crate) struct HostLayer;

impl<S> tracing_subscriber::Layer<S> for HostLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = span
            .parent()
            .and_then(|parent| {
                let extensions = parent.extensions();
                extensions
                    .get::<OpenSpan>()
                    .map(|open| open.context.clone())
            })
            .or_else(host_context);
        let context = TraceContext {
            trace_id: parent
                .as_ref()
                .map_or_else(random_hex::<16>, |p| p.trace_id.clone()),
            span_id: random_hex::<8>(),
            sampled: parent.as_ref().is_none_or(|p| p.sampled),
            trace_state: parent
                .as_ref()
                .map(|p| p.trace_state.clone())
                .unwrap_or_default(),
        };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let mut open = OpenSpan {
            parent_span_id: parent.map(|p| p.span_id).unwrap_or_default(),
            name: attrs.metadata().name().to_owned(),
            kind: Kind::Internal,
            scope: attrs.metadata().target(),
            start: SystemTime::now(),
            attributes: Vec::new(),
            events: Vec::new(),
            dropped_attributes: 0,
            dropped_events: 0,
            error: None,
            context,
        };
        open.record(fields);
        #[cfg(feature = "otel")]
        wit::on_start(&open.context.to_wit());
        span.extensions_mut().insert(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(open) = span.extensions_mut().get_mut::<OpenSpan>() {
            open.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let target = fields
            .log_target
            .clone()
            .unwrap_or_else(|| meta.target().to_owned());
        let message = fields.message.clone().unwrap_or_default();
        let mut context = None;
        if let Some(span) = ctx.event_span(event)
            && let Some(open) = span.extensions_mut().get_mut::<OpenSpan>()
        {
            if *meta.level() == Level::ERROR && open.error.is_none() {
                open.error = Some(message.clone());
            }
            if open.events.len() < MAX_ITEMS {
                open.events.push(SpanEvent {
                    message: message.clone(),
                    time: SystemTime::now(),
                    attributes: fields.attributes.clone(),
                });
            } else {
                open.dropped_events += 1;
            }
            context = Some(open.context.clone());
        }
        emit(*meta.level(), &target, &message, fields.attributes, context);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(open) = span.extensions_mut().remove::<OpenSpan>() else {
            return;
        };
        #[cfg(feature = "otel")]
        wit::on_end(&open.into_wit());
        #[cfg(not(feature = "otel"))]
        drop(open);
    }
}

/// The context of the innermost open span, else the host's.
pub(crate) fn current_context() -> Option<TraceContext> {
    let current = tracing::Span::current();
    let ours = current.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        let extensions = span.extensions();
        extensions
            .get::<OpenSpan>()
            .map(|open| open.context.clone())
    });
    ours.flatten().or_else(host_context)
}

/// The host's current span (of the request or message), if it traces one.
fn host_context() -> Option<TraceContext> {
    #[cfg(feature = "otel")]
    {
        let context = wit::current_span_context();
        let valid = |id: &str| !id.is_empty() && id.bytes().any(|b| b != b'0');
        (valid(&context.trace_id) && valid(&context.span_id)).then(|| TraceContext {
            trace_id: context.trace_id,
            span_id: context.span_id,
            sampled: context.trace_flags.contains(wit::TraceFlags::SAMPLED),
            trace_state: context.trace_state,
        })
    }
    #[cfg(not(feature = "otel"))]
    None
}

impl OpenSpan {
    fn record(&mut self, fields: Fields) {
        if let Some(message) = fields.message {
            self.push_attribute("message".into(), json(&message));
        }
        for (key, value) in fields.attributes {
            match key.as_str() {
                "otel.name" => self.name = unquote(&value),
                "otel.kind" => {
                    self.kind = match unquote(&value).to_ascii_lowercase().as_str() {
                        "server" => Kind::Server,
                        "client" => Kind::Client,
                        "producer" => Kind::Producer,
                        "consumer" => Kind::Consumer,
                        _ => Kind::Internal,
                    }
                }
                _ => self.push_attribute(key, value),
            }
        }
    }

    fn push_attribute(&mut self, key: String, value: String) {
        if let Some(existing) = self.attributes.iter_mut().find(|(k, _)| *k == key) {
            existing.1 = value;
        } else if self.attributes.len() < MAX_ITEMS {
            self.attributes.push((key, value));
        } else {
            self.dropped_attributes += 1;
        }
    }
}

/// A tracing record's fields: the message apart, values as JSON (wasi:otel's encoding).
#[derive(Default)]
struct Fields {
    message: Option<String>,
    log_target: Option<String>,
    attributes: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = Some(value.to_owned()),
            "log.target" => self.log_target = Some(value.to_owned()),
            name if name.starts_with("log.") => {}
            name => self.attributes.push((name.to_owned(), json(value))),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes
            .push((field.name().to_owned(), value.to_string()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attributes
            .push((field.name().to_owned(), value.to_string()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value)
            .map_or_else(|| json(&value.to_string()), |n| n.to_string());
        self.attributes.push((field.name().to_owned(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes
            .push((field.name().to_owned(), value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// `text` as a JSON string.
fn json(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A JSON string's text (anything else as it is).
fn unquote(value: &str) -> String {
    serde_json::from_str::<String>(value).unwrap_or_else(|_| value.to_owned())
}

/// `N` random bytes in hex, never all zeros (an invalid id).
fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    while bytes.iter().all(|&b| b == 0) {
        wstd::rand::get_insecure_random_bytes(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends a log record to the host: wasi:otel's with the span's trace, else wasi:logging's.
fn emit(
    level: Level,
    target: &str,
    message: &str,
    attributes: Vec<(String, String)>,
    context: Option<TraceContext>,
) {
    #[cfg(feature = "otel")]
    {
        let (severity, text) = match level {
            Level::TRACE => (1, "TRACE"),
            Level::DEBUG => (5, "DEBUG"),
            Level::INFO => (9, "INFO"),
            Level::WARN => (13, "WARN"),
            Level::ERROR => (17, "ERROR"),
        };
        let context = context.or_else(host_context);
        logs::on_emit(&logs::LogRecord {
            timestamp: Some(datetime(SystemTime::now())),
            observed_timestamp: None,
            severity_text: Some(text.to_owned()),
            severity_number: Some(severity),
            body: Some(json(message)),
            attributes: Some(key_values(attributes)),
            event_name: None,
            resource: None,
            instrumentation_scope: Some(scope(target)),
            trace_id: context.as_ref().map(|c| c.trace_id.clone()),
            span_id: context.as_ref().map(|c| c.span_id.clone()),
            trace_flags: context.map(|c| {
                if c.sampled {
                    wit::TraceFlags::SAMPLED
                } else {
                    wit::TraceFlags::empty()
                }
            }),
        });
    }
    #[cfg(not(feature = "otel"))]
    {
        use crate::bindings::wasi::logging::logging;
        let _ = (attributes, context);
        let level = match level {
            Level::TRACE => logging::Level::Trace,
            Level::DEBUG => logging::Level::Debug,
            Level::INFO => logging::Level::Info,
            Level::WARN => logging::Level::Warn,
            Level::ERROR => logging::Level::Error,
        };
        logging::log(level, target, message);
    }
}

#[cfg(feature = "otel")]
pub(crate) fn datetime(time: SystemTime) -> crate::bindings::wasi::clocks::wall_clock::Datetime {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    crate::bindings::wasi::clocks::wall_clock::Datetime {
        seconds: since.as_secs(),
        nanoseconds: since.subsec_nanos(),
    }
}

#[cfg(feature = "otel")]
pub(crate) fn key_values(pairs: Vec<(String, String)>) -> Vec<types::KeyValue> {
    pairs
        .into_iter()
        .map(|(key, value)| types::KeyValue { key, value })
        .collect()
}

#[cfg(feature = "otel")]
pub(crate) fn scope(name: &str) -> types::InstrumentationScope {
    types::InstrumentationScope {
        name: name.to_owned(),
        version: None,
        schema_url: None,
        attributes: Vec::new(),
    }
}

#[cfg(feature = "otel")]
impl TraceContext {
    fn to_wit(&self) -> wit::SpanContext {
        wit::SpanContext {
            trace_id: self.trace_id.clone(),
            span_id: self.span_id.clone(),
            trace_flags: if self.sampled {
                wit::TraceFlags::SAMPLED
            } else {
                wit::TraceFlags::empty()
            },
            is_remote: false,
            trace_state: self.trace_state.clone(),
        }
    }
}

#[cfg(feature = "otel")]
impl OpenSpan {
    fn into_wit(self) -> wit::SpanData {
        wit::SpanData {
            span_context: self.context.to_wit(),
            parent_span_id: self.parent_span_id,
            span_kind: match self.kind {
                Kind::Internal => wit::SpanKind::Internal,
                Kind::Server => wit::SpanKind::Server,
                Kind::Client => wit::SpanKind::Client,
                Kind::Producer => wit::SpanKind::Producer,
                Kind::Consumer => wit::SpanKind::Consumer,
            },
            name: self.name,
            start_time: datetime(self.start),
            end_time: datetime(SystemTime::now()),
            attributes: key_values(self.attributes),
            events: self
                .events
                .into_iter()
                .map(|event| wit::Event {
                    name: event.message,
                    time: datetime(event.time),
                    attributes: key_values(event.attributes),
                })
                .collect(),
            links: Vec::new(),
            status: match self.error {
                Some(message) => wit::Status::Error(message),
                None => wit::Status::Unset,
            },
            instrumentation_scope: scope(self.scope),
            dropped_attributes: self.dropped_attributes,
            dropped_events: self.dropped_events,
            dropped_links: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_json() {
        assert_eq!(json("a \"b\"\n"), r#""a \"b\"\n""#);
        assert_eq!(unquote(r#""server""#), "server");
        assert_eq!(unquote("42"), "42");
    }
}

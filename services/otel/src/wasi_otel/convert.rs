//! wasi:otel's records as OpenTelemetry's, bounded: a guest's span costs the host what the
//! limits below allow, and what they cut is counted in the span, as OpenTelemetry counts it.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use super::generated::wasi::clocks::wall_clock::Datetime;
use opentelemetry::trace::{self as otel, SpanId, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::generated::wasi::otel::{tracing as wit, types};

/// The longest name or text value kept, in bytes; a longer one is cut.
pub(crate) const MAX_TEXT: usize = 4096;
/// The most attributes, events and links kept per span (and attributes per event or link).
pub(crate) const MAX_ITEMS: usize = 128;
/// The most `trace-state` entries kept (W3C allows 32).
const MAX_TRACE_STATE: usize = 32;

/// `text`, cut to [`MAX_TEXT`] bytes on a character boundary.
pub(crate) fn bounded(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// A guest's span context, if it names a valid span.
pub(crate) fn span_context(context: &wit::SpanContext) -> Option<otel::SpanContext> {
    let trace_id = TraceId::from_hex(&context.trace_id).ok()?;
    let span_id = SpanId::from_hex(&context.span_id).ok()?;
    let flags = if context.trace_flags.contains(wit::TraceFlags::SAMPLED) {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let state = TraceState::from_key_value(
        context
            .trace_state
            .iter()
            .take(MAX_TRACE_STATE)
            .map(|(key, value)| (key.as_str(), value.as_str())),
    )
    .unwrap_or_default();
    let context = otel::SpanContext::new(trace_id, span_id, flags, context.is_remote, state);
    context.is_valid().then_some(context)
}

/// A span context as a guest receives it.
pub(crate) fn wit_span_context(context: &otel::SpanContext) -> wit::SpanContext {
    let trace_state = context.trace_state().header();
    wit::SpanContext {
        trace_id: context.trace_id().to_string(),
        span_id: context.span_id().to_string(),
        trace_flags: if context.is_sampled() {
            wit::TraceFlags::SAMPLED
        } else {
            wit::TraceFlags::empty()
        },
        is_remote: context.is_remote(),
        trace_state: trace_state
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect(),
    }
}

/// A wall-clock time as a `SystemTime` (the epoch when it is out of range).
fn time(datetime: &Datetime) -> SystemTime {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::new(datetime.seconds, datetime.nanoseconds))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// An attribute's value: wasi:otel sends JSON; text, numbers and booleans become typed values,
/// anything else (arrays, objects, bytes, what is not JSON) stays text.
fn value(json: String) -> Value {
    match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(serde_json::Value::String(text)) => Value::from(bounded(text)),
        Ok(serde_json::Value::Bool(flag)) => Value::Bool(flag),
        Ok(serde_json::Value::Number(number)) => match number.as_i64() {
            Some(integer) => Value::I64(integer),
            None => Value::F64(number.as_f64().unwrap_or_default()),
        },
        _ => Value::from(bounded(json)),
    }
}

/// What `convert` makes of the first [`MAX_ITEMS`] of `items` (it may refuse one), and how many
/// items past that bound were left out.
fn at_most<T, U>(items: Vec<T>, convert: impl FnMut(T) -> Option<U>) -> (Vec<U>, u32) {
    let dropped = items.len().saturating_sub(MAX_ITEMS);
    let kept = items
        .into_iter()
        .take(MAX_ITEMS)
        .filter_map(convert)
        .collect();
    (kept, u32::try_from(dropped).unwrap_or(u32::MAX))
}

/// At most [`MAX_ITEMS`] attributes, and how many were left out.
pub(crate) fn bounded_attributes(pairs: Vec<types::KeyValue>) -> (Vec<KeyValue>, u32) {
    at_most(pairs, |pair| {
        Some(KeyValue::new(bounded(pair.key), value(pair.value)))
    })
}

/// The instrumentation scope a guest names.
fn scope(scope: types::InstrumentationScope) -> InstrumentationScope {
    let mut builder = InstrumentationScope::builder(bounded(scope.name))
        .with_attributes(bounded_attributes(scope.attributes).0);
    if let Some(version) = scope.version {
        builder = builder.with_version(bounded(version));
    }
    if let Some(url) = scope.schema_url {
        builder = builder.with_schema_url(bounded(url));
    }
    builder.build()
}

/// A span a guest ended, as OpenTelemetry exports it, with `extra` attributes of the host's
/// (the component and the request id); `None` if its context is not a valid span's.
pub(crate) fn span_data(span: wit::SpanData, extra: &[KeyValue]) -> Option<SpanData> {
    let span_context = span_context(&span.span_context)?;
    let (mut attributes, dropped_attributes) = bounded_attributes(span.attributes);
    attributes.extend_from_slice(extra);
    let (events, dropped_events) = at_most(span.events, |event| {
        let (attributes, dropped) = bounded_attributes(event.attributes);
        Some(otel::Event::new(
            bounded(event.name),
            time(&event.time),
            attributes,
            dropped,
        ))
    });
    let (links, dropped_links) = at_most(span.links, |link| {
        let context = self::span_context(&link.span_context)?;
        let (attributes, dropped) = bounded_attributes(link.attributes);
        Some(otel::Link::new(context, attributes, dropped))
    });
    let mut span_events = SpanEvents::default();
    span_events.events = events;
    span_events.dropped_count = span.dropped_events.saturating_add(dropped_events);
    let mut span_links = SpanLinks::default();
    span_links.links = links;
    span_links.dropped_count = span.dropped_links.saturating_add(dropped_links);
    Some(SpanData {
        span_context,
        parent_span_id: SpanId::from_hex(&span.parent_span_id).unwrap_or(SpanId::INVALID),
        parent_span_is_remote: false,
        span_kind: match span.span_kind {
            wit::SpanKind::Client => otel::SpanKind::Client,
            wit::SpanKind::Server => otel::SpanKind::Server,
            wit::SpanKind::Producer => otel::SpanKind::Producer,
            wit::SpanKind::Consumer => otel::SpanKind::Consumer,
            wit::SpanKind::Internal => otel::SpanKind::Internal,
        },
        name: Cow::Owned(bounded(span.name)),
        start_time: time(&span.start_time),
        end_time: time(&span.end_time),
        attributes,
        dropped_attributes_count: span.dropped_attributes.saturating_add(dropped_attributes),
        events: span_events,
        links: span_links,
        status: match span.status {
            wit::Status::Unset => Status::Unset,
            wit::Status::Ok => Status::Ok,
            wit::Status::Error(description) => Status::error(bounded(description)),
        },
        instrumentation_scope: scope(span.instrumentation_scope),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_from_json_and_bounded() {
        assert_eq!(value("\"hi\"".into()), Value::from("hi"));
        assert_eq!(value("42".into()), Value::I64(42));
        assert_eq!(value("1.5".into()), Value::F64(1.5));
        assert_eq!(value("true".into()), Value::Bool(true));
        assert_eq!(value("[1,2]".into()), Value::from("[1,2]"));
        assert_eq!(value("not json".into()), Value::from("not json"));
        let long = format!("\"{}\"", "é".repeat(MAX_TEXT));
        assert_eq!(value(long).as_str().len(), MAX_TEXT);
    }

    #[test]
    fn invalid_contexts_are_refused_and_valid_ones_round_trip() {
        let mut context = wit::SpanContext {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            trace_flags: wit::TraceFlags::SAMPLED,
            is_remote: false,
            trace_state: vec![("vendor".into(), "x".into())],
        };
        let parsed = span_context(&context).unwrap();
        let back = wit_span_context(&parsed);
        assert_eq!(
            (back.trace_id.as_str(), back.span_id.as_str()),
            ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
        );
        assert_eq!(back.trace_state, context.trace_state);
        context.span_id = "0000000000000000".into();
        assert!(span_context(&context).is_none());
        context.span_id = "not hex".into();
        assert!(span_context(&context).is_none());
    }

    #[test]
    fn attributes_past_the_bound_are_counted() {
        let many = (0..MAX_ITEMS + 5)
            .map(|i| types::KeyValue {
                key: format!("k{i}"),
                value: "1".into(),
            })
            .collect();
        let (kept, dropped) = bounded_attributes(many);
        assert_eq!((kept.len(), dropped), (MAX_ITEMS, 5));
    }
}

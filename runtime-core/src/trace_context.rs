//! W3C trace context across tempo: an incoming request's or message's `traceparent` makes the
//! span of its unit of work a child of the sender's, and what a guest sends on carries the
//! `traceparent` of the span it is sent in, so one trace runs through tempo. Without an
//! OpenTelemetry layer recording spans (OTLP off) nothing is adopted and nothing is added.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header (or message metadata key) that carries a span's context.
pub const TRACEPARENT: &str = "traceparent";

/// Makes `span` the child of the span that `carrier`'s `traceparent` names, if it names a valid
/// one (anything else is ignored, as W3C says).
pub fn adopt_parent(span: &tracing::Span, carrier: &dyn Extractor) {
    if carrier.get(TRACEPARENT).is_none() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(carrier);
    if parent.span().span_context().is_valid() {
        // Only fails when no OpenTelemetry layer records the span: nothing to link then.
        let _ = span.set_parent(parent);
    }
}

/// The context of the current span.
pub fn current() -> Context {
    tracing::Span::current().context()
}

/// The context of the current span if it is part of `work`'s trace (a host call's span, under
/// its work's), else `work` itself: a reused instance's host calls run outside their request's
/// span.
pub fn current_within(work: &Context) -> Context {
    let current = current();
    let trace_of = |context: &Context| context.span().span_context().trace_id();
    if current.span().span_context().is_valid() && trace_of(&current) == trace_of(work) {
        current
    } else {
        work.clone()
    }
}

/// Adds the `traceparent` (and `tracestate`) of `context` to `carrier`, unless `already` says
/// the guest set its own.
pub fn inject(context: &Context, already: bool, carrier: &mut dyn Injector) {
    if !already && context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(context, carrier);
    }
}

/// A message's metadata (header name and value pairs) read as a carrier of trace context;
/// names compare without case, as HTTP's and NATS's headers do.
pub struct Metadata<'a>(pub &'a [(String, String)]);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_str()).collect()
    }
}

/// Adds the `traceparent` (and `tracestate`) of `context` to a message's `metadata`, unless it
/// has one already (the guest set its own).
pub fn inject_metadata(context: &Context, metadata: &mut Vec<(String, String)>) {
    let already = Metadata(metadata).get(TRACEPARENT).is_some();
    inject(context, already, &mut MetadataWriter(metadata));
}

/// A message's metadata, written to.
struct MetadataWriter<'a>(&'a mut Vec<(String, String)>);

impl Injector for MetadataWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_recording_layer_nothing_is_added_or_adopted() {
        let mut metadata = Vec::new();
        inject_metadata(&current(), &mut metadata);
        assert!(metadata.is_empty());
        metadata.push((
            "TraceParent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        ));
        let carrier = Metadata(&metadata);
        assert!(
            carrier.get(TRACEPARENT).is_some(),
            "names compare without case"
        );
        adopt_parent(&tracing::Span::none(), &carrier);
    }
}

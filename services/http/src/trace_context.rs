//! W3C trace context across tempo: a client's `traceparent` makes the `request` span its child,
//! so one trace runs from the client through tempo; a guest's outgoing request carries the
//! `traceparent` of the span it is made in, so the trace goes on downstream. Both only matter
//! when spans are exported (OTLP); without it they cost a header lookup.

use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header that carries a span's context.
pub const TRACEPARENT: &str = "traceparent";

/// Makes `span` the child of the span a client's `traceparent` names, if it names a valid one
/// (anything else is ignored, as W3C says).
pub(crate) fn adopt_client_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key(TRACEPARENT) {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Only fails when no OpenTelemetry layer records the span: nothing to link then.
        let _ = span.set_parent(parent);
    }
}

/// The context of the current span: taken when an instance is made, in the span of the request
/// or message it handles, so that its outgoing requests continue that trace.
pub(crate) fn current() -> Context {
    tracing::Span::current().context()
}

/// Adds the `traceparent` (and `tracestate`) of `context` to an outgoing request's `headers`,
/// unless the guest set its own.
pub(crate) fn inject(context: &Context, headers: &mut HeaderMap) {
    if headers.contains_key(TRACEPARENT) {
        return;
    }
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(headers));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_exporting_layer_nothing_is_added_or_adopted() {
        let mut headers = HeaderMap::new();
        inject(&current(), &mut headers);
        assert!(headers.is_empty());
        headers.insert(
            TRACEPARENT,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        adopt_client_parent(&tracing::Span::none(), &headers);
        inject(&current(), &mut headers);
        assert_eq!(headers.len(), 1, "a guest's own traceparent is kept");
    }
}

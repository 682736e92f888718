//! W3C trace context on HTTP (see `runtime_core::trace_context`): a client's `traceparent`
//! parents the `request` span; a guest's outgoing request carries the trace of the request it
//! handles.

use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tempo_runtime_core::trace_context::{self, TRACEPARENT};

/// Makes `span` the child of the span a client's `traceparent` names, if valid.
pub(crate) fn adopt_client_parent(span: &tracing::Span, headers: &HeaderMap) {
    trace_context::adopt_parent(span, &HeaderExtractor(headers));
}

/// Adds the `traceparent` of `context` to an outgoing request's `headers`, unless the guest set
/// its own.
pub(crate) fn inject(context: &Context, headers: &mut HeaderMap) {
    let already = headers.contains_key(TRACEPARENT);
    trace_context::inject(context, already, &mut HeaderInjector(headers));
}

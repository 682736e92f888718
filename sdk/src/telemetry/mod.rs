//! Telemetry: the [`tracing`] and [`log`] facades, and [`metrics`], all to the host.
//!
//! - A `tracing` span (`tracing::info_span!`, `#[tracing::instrument]`; the attribute needs
//!   `tracing = "0.1"` among the component's dependencies) becomes a wasi:otel span. The first spans a handler opens
//!   are children of the host's span of the request or message, so they join its trace, and
//!   what the component sends ([`http::send`](crate::http::send), messaging) carries the trace
//!   of its current span. The field `otel.name` renames a span, `otel.kind`
//!   (`server`, `client`, `producer`, `consumer`) sets its kind, and an `error!` inside a span
//!   marks it failed.
//! - `tracing` events and `log` records become log records with the trace of their span; tempo
//!   shows them as the component's log lines, with the request id.
//! - Levels: `info` and above; `debug` and `trace` are left out.
//!
//! [`serve!`](crate::serve) and [`handle_messages!`](crate::handle_messages) call [`init`]; a
//! component with another entry point calls it first.
//!
//! Without the crate's `otel` feature (on by default), log records go to `wasi:logging`, and
//! spans and metrics are dropped: for hosts that do not provide `wasi:otel`.

mod layer;
pub mod metrics;

use std::sync::Once;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

/// Sends `tracing` spans and events, and `log` records, to the host. Only the first call does
/// anything.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::registry()
            .with(LevelFilter::INFO)
            .with(layer::HostLayer);
        // Another subscriber or logger set by the component itself wins.
        let _ = tracing::subscriber::set_global_default(subscriber);
        let _ = tracing_log::LogTracer::builder()
            .with_max_level(log::LevelFilter::Info)
            .init();
    });
}

/// The W3C `traceparent` of the current span (the host's span when the component has none open).
pub(crate) fn traceparent() -> Option<String> {
    layer::current_context().map(|context| {
        let flags = if context.sampled { "01" } else { "00" };
        format!("00-{}-{}-{flags}", context.trace_id, context.span_id)
    })
}

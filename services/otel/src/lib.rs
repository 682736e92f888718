//! Telemetry for tempo:
//!
//! - [`OtelService`]: `wasi:otel` tracing, metrics and logs: guests' spans join the request's trace,
//!   their metrics are recorded beside tempo's;
//! - [`LoggingService`]: `wasi:logging`, whose lines become tracing events (target `guest`) with
//!   the component's name and the request id, like the guest's stdout and stderr;
//! - [`Telemetry`]: the OpenTelemetry SDK behind the runtime's metrics and spans: a Prometheus
//!   registry always, and OTLP export of traces, metrics and logs when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set;
//! - [`AdminServer`]: `/metrics` in Prometheus text format, `/livez` and `/readyz`, on an address of its
//!   own.

mod admin;
mod logging;
mod telemetry;
mod wasi_otel;

pub use admin::{AdminServer, Readiness};
pub use logging::{LOGGING_VERSION, LoggingService};
pub use telemetry::{GuestSpans, OTLP_ENDPOINT_VAR, Telemetry};
pub use wasi_otel::{MAX_OPEN_SPANS, MAX_SPANS, OTEL_VERSION, OtelService};

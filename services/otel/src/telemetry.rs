//! The OpenTelemetry SDK behind the runtime's metrics, spans and logs.
//!
//! Metrics always go to a Prometheus registry (served by the admin server when asked). With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, traces, metrics and logs are also exported over OTLP
//! (HTTP/protobuf); the SDK reads the other standard `OTEL_*` variables itself
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, …).

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracerProvider, SpanData, SpanProcessor as _,
};
use prometheus::Registry;
use std::sync::Arc;
use tempo_runtime_core::GUEST_LOG_TARGET;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

/// The variable that turns OTLP export on.
pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The installed SDK. Dropping it without [`Telemetry::shutdown`] loses what is not yet exported.
pub struct Telemetry {
    registry: Registry,
    meters: SdkMeterProvider,
    otlp: Option<Otlp>,
}

/// The providers that export over OTLP.
struct Otlp {
    endpoint: String,
    tracer: SdkTracerProvider,
    logger: SdkLoggerProvider,
    /// Where guests' own spans (wasi:otel) go: spans that ended inside a guest, given whole.
    guest_spans: Arc<BatchSpanProcessor>,
}

/// Where guests' finished spans are exported, if anywhere: cheap to clone, shared with the
/// wasi:otel service.
#[derive(Clone, Debug, Default)]
pub struct GuestSpans(Option<Arc<BatchSpanProcessor>>);
tempo_runtime_core::part!(GuestSpans);

impl GuestSpans {
    /// Exports `span` with tempo's own (through the batch, never waiting); a no-op when spans
    /// are not exported.
    pub fn export(&self, span: SpanData) {
        if let Some(processor) = &self.0 {
            processor.on_end(span);
        }
    }

    /// Whether spans are exported at all.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }
}

impl Telemetry {
    /// Builds the providers as the environment says and installs the meter provider globally,
    /// so the runtime's instruments record into it. Call it before anything records.
    pub fn init() -> anyhow::Result<Self> {
        let endpoint = std::env::var(OTLP_ENDPOINT_VAR)
            .ok()
            .filter(|endpoint| !endpoint.trim().is_empty());
        let resource = resource();
        let registry = Registry::new();
        let prometheus = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()
            .context("cannot set up the Prometheus exporter")?;
        let mut meters = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(prometheus);
        let otlp = match endpoint {
            None => None,
            Some(endpoint) => {
                tempo_runtime_core::install_crypto_provider();
                let context = || format!("cannot export to `{OTLP_ENDPOINT_VAR}={endpoint}`");
                let metrics = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .build()
                    .with_context(context)?;
                meters = meters.with_periodic_exporter(metrics);
                let spans = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .build()
                    .with_context(context)?;
                let logs = opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .build()
                    .with_context(context)?;
                let guest_spans = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .build()
                    .with_context(context)?;
                let mut guest_spans = BatchSpanProcessor::builder(guest_spans).build();
                guest_spans.set_resource(&resource);
                Some(Otlp {
                    tracer: SdkTracerProvider::builder()
                        .with_resource(resource.clone())
                        .with_batch_exporter(spans)
                        .build(),
                    logger: SdkLoggerProvider::builder()
                        .with_resource(resource)
                        .with_batch_exporter(logs)
                        .build(),
                    guest_spans: Arc::new(guest_spans),
                    endpoint,
                })
            }
        };
        let meters = meters.build();
        opentelemetry::global::set_meter_provider(meters.clone());
        Ok(Self {
            registry,
            meters,
            otlp,
        })
    }

    /// The registry `/metrics` shows.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// Where guests' spans go: OTLP's trace exporter when it is on.
    pub fn guest_spans(&self) -> GuestSpans {
        GuestSpans(self.otlp.as_ref().map(|otlp| otlp.guest_spans.clone()))
    }

    /// Where OTLP export goes, if it is on.
    pub fn otlp_endpoint(&self) -> Option<&str> {
        self.otlp.as_ref().map(|otlp| otlp.endpoint.as_str())
    }

    /// The tracing layers that export spans and logs over OTLP: nothing when OTLP is off.
    ///
    /// Spans: the runtime's own (requests, messages, reloads) and each call a guest makes to a
    /// tempo service. Logs: every guest line, and the host's events at `info` and above.
    pub fn layers<S>(&self) -> Option<impl Layer<S> + use<S>>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        let otlp = self.otlp.as_ref()?;
        let spans = tracing_opentelemetry::layer()
            .with_tracer(otlp.tracer.tracer("tempo"))
            .with_filter(filter_fn(exported_span));
        let logs =
            OpenTelemetryTracingBridge::new(&otlp.logger).with_filter(filter_fn(exported_log));
        Some(spans.and_then(logs))
    }

    /// Exports what is pending and stops the exporters.
    pub fn shutdown(self) {
        if let Some(otlp) = self.otlp {
            if let Err(err) = otlp.tracer.shutdown() {
                tracing::warn!("exporting the last spans failed: {err}");
            }
            if let Err(err) = otlp.guest_spans.shutdown() {
                tracing::warn!("exporting the last guest spans failed: {err}");
            }
            if let Err(err) = otlp.logger.shutdown() {
                tracing::warn!("exporting the last logs failed: {err}");
            }
        }
        if let Err(err) = self.meters.shutdown() {
            tracing::warn!("exporting the last metrics failed: {err}");
        }
    }
}

/// `service.name` is `tempo` unless `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`) says.
fn resource() -> Resource {
    let builder = Resource::builder();
    let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    if named {
        builder.build()
    } else {
        builder.with_service_name("tempo").build()
    }
}

/// Whether a target is tempo's own code (not a dependency, which may log about exporting).
fn is_tempo(target: &str) -> bool {
    target.starts_with("tempo") || target.starts_with("cargo_tempo")
}

/// The runtime's spans at `info` and above, and the span wasmtime's bindings open around each
/// call into a tempo service.
fn exported_span(meta: &Metadata<'_>) -> bool {
    meta.is_span()
        && is_tempo(meta.target())
        && (*meta.level() <= Level::INFO || meta.name() == "wit-bindgen import")
}

/// Every guest line, and tempo's events at `info` and above.
fn exported_log(meta: &Metadata<'_>) -> bool {
    meta.is_event()
        && (meta.target() == GUEST_LOG_TARGET
            || (is_tempo(meta.target()) && *meta.level() <= Level::INFO))
}

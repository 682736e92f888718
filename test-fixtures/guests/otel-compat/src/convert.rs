//! OpenTelemetry's SDK records as wasi:otel's, the way opentelemetry-wasi converts them.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanContext, SpanKind, Status};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::wasi::otel::{metrics as wm, tracing as wt, types};

/// Tells the host of each span as it starts and hands it over when it ends.
#[derive(Debug)]
pub(crate) struct WasiSpanProcessor;

impl SpanProcessor for WasiSpanProcessor {
    fn on_start(&self, span: &mut Span, _: &Context) {
        use opentelemetry::trace::Span as _;
        wt::on_start(&span_context(span.span_context()));
    }

    fn on_end(&self, span: SpanData) {
        wt::on_end(&wt::SpanData {
            span_context: span_context(&span.span_context),
            parent_span_id: span.parent_span_id.to_string(),
            span_kind: match span.span_kind {
                SpanKind::Client => wt::SpanKind::Client,
                SpanKind::Server => wt::SpanKind::Server,
                SpanKind::Producer => wt::SpanKind::Producer,
                SpanKind::Consumer => wt::SpanKind::Consumer,
                SpanKind::Internal => wt::SpanKind::Internal,
            },
            name: span.name.to_string(),
            start_time: datetime(span.start_time),
            end_time: datetime(span.end_time),
            attributes: key_values(&span.attributes),
            events: span
                .events
                .iter()
                .map(|event| wt::Event {
                    name: event.name.to_string(),
                    time: datetime(event.timestamp),
                    attributes: key_values(&event.attributes),
                })
                .collect(),
            links: Vec::new(),
            status: match span.status {
                Status::Unset => wt::Status::Unset,
                Status::Ok => wt::Status::Ok,
                Status::Error { description } => wt::Status::Error(description.to_string()),
            },
            instrumentation_scope: types::InstrumentationScope {
                name: span.instrumentation_scope.name().to_owned(),
                version: span.instrumentation_scope.version().map(str::to_owned),
                schema_url: None,
                attributes: Vec::new(),
            },
            dropped_attributes: span.dropped_attributes_count,
            dropped_events: span.events.dropped_count,
            dropped_links: 0,
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// A manual reader the guest keeps a handle on, to collect and export when it chooses.
#[derive(Debug)]
pub(crate) struct SharedReader(pub(crate) Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// The collected metrics this fixture makes (u64 sums, f64 histograms) as wasi:otel's.
pub(crate) fn resource_metrics(collected: &ResourceMetrics) -> wm::ResourceMetrics {
    let scope_metrics = collected
        .scope_metrics()
        .map(|scope| wm::ScopeMetrics {
            scope: types::InstrumentationScope {
                name: scope.scope().name().to_owned(),
                version: None,
                schema_url: None,
                attributes: Vec::new(),
            },
            metrics: scope
                .metrics()
                .filter_map(|metric| {
                    let data = match metric.data() {
                        AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                            wm::MetricData::U64Sum(wm::Sum {
                                data_points: sum
                                    .data_points()
                                    .map(|point| wm::SumDataPoint {
                                        attributes: key_values(point.attributes()),
                                        value: wm::MetricNumber::U64(point.value()),
                                        exemplars: Vec::new(),
                                    })
                                    .collect(),
                                start_time: datetime(sum.start_time()),
                                time: datetime(sum.time()),
                                temporality: temporality(sum.temporality()),
                                is_monotonic: sum.is_monotonic(),
                            })
                        }
                        AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
                            wm::MetricData::F64Histogram(wm::Histogram {
                                data_points: histogram
                                    .data_points()
                                    .map(|point| wm::HistogramDataPoint {
                                        attributes: key_values(point.attributes()),
                                        count: point.count(),
                                        bounds: point.bounds().collect(),
                                        bucket_counts: point.bucket_counts().collect(),
                                        min: point.min().map(wm::MetricNumber::F64),
                                        max: point.max().map(wm::MetricNumber::F64),
                                        sum: wm::MetricNumber::F64(point.sum()),
                                        exemplars: Vec::new(),
                                    })
                                    .collect(),
                                start_time: datetime(histogram.start_time()),
                                time: datetime(histogram.time()),
                                temporality: temporality(histogram.temporality()),
                            })
                        }
                        _ => return None,
                    };
                    Some(wm::Metric {
                        name: metric.name().to_owned(),
                        description: metric.description().to_owned(),
                        unit: metric.unit().to_owned(),
                        data,
                    })
                })
                .collect(),
        })
        .collect();
    wm::ResourceMetrics {
        resource: types::Resource {
            attributes: Vec::new(),
            schema_url: None,
        },
        scope_metrics,
    }
}

fn temporality(temporality: Temporality) -> wm::Temporality {
    match temporality {
        Temporality::Delta => wm::Temporality::Delta,
        Temporality::LowMemory => wm::Temporality::LowMemory,
        _ => wm::Temporality::Cumulative,
    }
}

fn span_context(context: &SpanContext) -> wt::SpanContext {
    wt::SpanContext {
        trace_id: context.trace_id().to_string(),
        span_id: context.span_id().to_string(),
        trace_flags: if context.is_sampled() {
            wt::TraceFlags::SAMPLED
        } else {
            wt::TraceFlags::empty()
        },
        is_remote: context.is_remote(),
        trace_state: Vec::new(),
    }
}

/// Attribute values as JSON, as wasi:otel carries them.
fn key_values<'a>(pairs: impl IntoIterator<Item = &'a KeyValue>) -> Vec<types::KeyValue> {
    pairs
        .into_iter()
        .map(|pair| types::KeyValue {
            key: pair.key.to_string(),
            value: match &pair.value {
                Value::Bool(flag) => flag.to_string(),
                Value::I64(number) => number.to_string(),
                Value::F64(number) => number.to_string(),
                other => serde_json::Value::from(other.as_str().into_owned()).to_string(),
            },
        })
        .collect()
}

fn datetime(time: SystemTime) -> types::Datetime {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    types::Datetime {
        seconds: since.as_secs(),
        nanoseconds: since.subsec_nanos(),
    }
}

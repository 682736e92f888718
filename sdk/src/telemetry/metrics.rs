//! Metrics through wasi:otel: counters, up-down counters, gauges and histograms. Each
//! measurement goes to the host as it is made (a delta, or a one-measurement histogram), so
//! nothing is lost when the instance ends, and tempo shows them at `/metrics` and exports them
//! with OTLP, with a `component` attribute.
//!
//! ```no_run
//! use tempo_sdk::telemetry::metrics;
//!
//! metrics::counter("orders.placed").add(1, &[("country", "fr")]);
//! metrics::histogram("order.value").with_unit("EUR").record(42.5, &[]);
//! ```
//!
//! Names follow OpenTelemetry's syntax (a letter, then letters, digits, `_`, `.`, `-`, `/`);
//! names starting with `tempo` are the host's. A measurement the host refuses is dropped with a
//! warning in the component's log.

// Without wasi:otel, what spans and metrics hold is not sent anywhere.
#![cfg_attr(not(feature = "otel"), allow(dead_code))]

/// OpenTelemetry's default histogram bounds.
const DEFAULT_BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// What every instrument has: a name, a description and a unit.
#[derive(Clone, Debug)]
struct Describe {
    name: String,
    description: String,
    unit: String,
}

/// An instrument type, the function that makes one, and its own fields with their defaults.
macro_rules! instrument {
    ($(#[$doc:meta])* $type:ident, $make:ident $(, $field:ident: $field_type:ty = $default:expr)*) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $type {
            describe: Describe,
            $($field: $field_type,)*
        }

        #[doc = concat!("A ", stringify!($make), " called `name`.")]
        pub fn $make(name: &str) -> $type {
            $type {
                describe: Describe {
                    name: name.to_owned(),
                    description: String::new(),
                    unit: String::new(),
                },
                $($field: $default,)*
            }
        }

        impl $type {
            /// Describes what it measures.
            pub fn with_description(mut self, description: &str) -> Self {
                self.describe.description = description.to_owned();
                self
            }

            /// Sets its unit (`s`, `By`, `{request}`, …).
            pub fn with_unit(mut self, unit: &str) -> Self {
                self.describe.unit = unit.to_owned();
                self
            }
        }
    };
}

instrument!(
    /// A count that only goes up ([`counter`]).
    Counter,
    counter
);
instrument!(
    /// A count that goes up and down ([`up_down_counter`]).
    UpDownCounter,
    up_down_counter
);
instrument!(
    /// A value measured now and then ([`gauge`]).
    Gauge,
    gauge
);
instrument!(
    /// A distribution of values ([`histogram`]).
    Histogram,
    histogram,
    bounds: Vec<f64> = DEFAULT_BOUNDS.to_vec()
);

impl Counter {
    /// Adds `value` for the series `attributes` name.
    pub fn add(&self, value: u64, attributes: &[(&str, &str)]) {
        report::sum(&self.describe, report::Number::U64(value), true, attributes);
    }
}

impl UpDownCounter {
    /// Adds `value` (which may be negative) for the series `attributes` name.
    pub fn add(&self, value: i64, attributes: &[(&str, &str)]) {
        report::sum(
            &self.describe,
            report::Number::S64(value),
            false,
            attributes,
        );
    }
}

impl Gauge {
    /// Records the current `value` for the series `attributes` name.
    pub fn record(&self, value: f64, attributes: &[(&str, &str)]) {
        report::gauge(&self.describe, value, attributes);
    }
}

impl Histogram {
    /// Sets the upper bounds of its buckets (increasing); OpenTelemetry's defaults otherwise.
    pub fn with_bounds(mut self, bounds: &[f64]) -> Self {
        self.bounds = bounds.to_vec();
        self
    }

    /// Records `value` for the series `attributes` name.
    pub fn record(&self, value: f64, attributes: &[(&str, &str)]) {
        report::histogram(&self.describe, &self.bounds, value, attributes);
    }
}

#[cfg(feature = "otel")]
mod report {
    use std::time::SystemTime;

    use super::Describe;
    use crate::bindings::wasi::otel::metrics as wit;
    use crate::telemetry::layer::{datetime, key_values, scope};

    pub(super) use wit::MetricNumber as Number;

    fn attributes(pairs: &[(&str, &str)]) -> Vec<crate::bindings::wasi::otel::types::KeyValue> {
        key_values(
            pairs
                .iter()
                .map(|(key, value)| {
                    (
                        (*key).to_owned(),
                        serde_json::Value::from(*value).to_string(),
                    )
                })
                .collect(),
        )
    }

    fn export(describe: &Describe, data: wit::MetricData) {
        let metrics = wit::ResourceMetrics {
            resource: crate::bindings::wasi::otel::types::Resource {
                attributes: Vec::new(),
                schema_url: None,
            },
            scope_metrics: vec![wit::ScopeMetrics {
                scope: scope("tempo-sdk"),
                metrics: vec![wit::Metric {
                    name: describe.name.clone(),
                    description: describe.description.clone(),
                    unit: describe.unit.clone(),
                    data,
                }],
            }],
        };
        if let Err(refused) = wit::export(&metrics) {
            tracing::warn!("metric `{}` was dropped: {refused}", describe.name);
        }
    }

    pub(super) fn sum(describe: &Describe, value: Number, monotonic: bool, pairs: &[(&str, &str)]) {
        let now = datetime(SystemTime::now());
        let sum = wit::Sum {
            data_points: vec![wit::SumDataPoint {
                attributes: attributes(pairs),
                value,
                exemplars: Vec::new(),
            }],
            start_time: now,
            time: now,
            temporality: wit::Temporality::Delta,
            is_monotonic: monotonic,
        };
        let data = match value {
            Number::U64(_) => wit::MetricData::U64Sum(sum),
            Number::S64(_) => wit::MetricData::S64Sum(sum),
            Number::F64(_) => wit::MetricData::F64Sum(sum),
        };
        export(describe, data);
    }

    pub(super) fn gauge(describe: &Describe, value: f64, pairs: &[(&str, &str)]) {
        let gauge = wit::Gauge {
            data_points: vec![wit::GaugeDataPoint {
                attributes: attributes(pairs),
                value: Number::F64(value),
                exemplars: Vec::new(),
            }],
            start_time: None,
            time: datetime(SystemTime::now()),
        };
        export(describe, wit::MetricData::F64Gauge(gauge));
    }

    pub(super) fn histogram(
        describe: &Describe,
        bounds: &[f64],
        value: f64,
        pairs: &[(&str, &str)],
    ) {
        let now = datetime(SystemTime::now());
        let bucket = bounds.iter().take_while(|bound| value > **bound).count();
        let mut bucket_counts = vec![0; bounds.len() + 1];
        bucket_counts[bucket] = 1;
        let histogram = wit::Histogram {
            data_points: vec![wit::HistogramDataPoint {
                attributes: attributes(pairs),
                count: 1,
                bounds: bounds.to_vec(),
                bucket_counts,
                min: Some(Number::F64(value)),
                max: Some(Number::F64(value)),
                sum: Number::F64(value),
                exemplars: Vec::new(),
            }],
            start_time: now,
            time: now,
            temporality: wit::Temporality::Delta,
        };
        export(describe, wit::MetricData::F64Histogram(histogram));
    }
}

#[cfg(not(feature = "otel"))]
mod report {
    //! Without wasi:otel, measurements are dropped.
    use super::Describe;

    pub(super) enum Number {
        U64(u64),
        S64(i64),
    }

    pub(super) fn sum(_: &Describe, _: Number, _: bool, _: &[(&str, &str)]) {}
    pub(super) fn gauge(_: &Describe, _: f64, _: &[(&str, &str)]) {}
    pub(super) fn histogram(_: &Describe, _: &[f64], _: f64, _: &[(&str, &str)]) {}
}

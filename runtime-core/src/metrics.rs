//! The runtime's metrics, recorded through the OpenTelemetry API. They cost next to nothing
//! until an application installs a meter provider (tempo-otel does, before anything runs);
//! instruments are made at first use, so the provider must be installed before that.

use std::sync::LazyLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;

/// The instruments every service records to. Names follow OpenTelemetry's dotted style; the
/// Prometheus exporter shows `tempo.instances.created` as `tempo_instances_created_total`. (A
/// service's own instruments are its own: tempo-http's `tempo.http.requests`, tempo-messaging's
/// `tempo.messages.handled`.)
pub struct Metrics {
    /// Guest instances created, by `component`.
    pub instances: Counter<u64>,
    /// Guest traps, by `component`.
    pub traps: Counter<u64>,
    /// Hot reloads, by `component` and `outcome` (`ok` or `failed`).
    pub reloads: Counter<u64>,
    /// Limits that stopped an instance or refused a request, by `component` and `limit`
    /// (`deadline`, `memory`, `body`).
    pub limits: Counter<u64>,
}

/// The runtime's instruments, made from the global meter provider at first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
        let meter = opentelemetry::global::meter("tempo");
        Metrics {
            instances: meter
                .u64_counter("tempo.instances.created")
                .with_description("Guest instances created")
                .build(),
            traps: meter
                .u64_counter("tempo.traps")
                .with_description("Guest traps")
                .build(),
            reloads: meter
                .u64_counter("tempo.reloads")
                .with_description("Hot reloads, by outcome")
                .build(),
            limits: meter
                .u64_counter("tempo.limits.hit")
                .with_description("Limits that stopped an instance or refused a request")
                .build(),
        }
    });
    &METRICS
}

impl Metrics {
    /// Counts `count` things the limit called `limit` stopped or refused for `component`.
    pub fn limit_hit(&self, component: &KeyValue, limit: &'static str, count: u64) {
        self.limits
            .add(count, &[component.clone(), KeyValue::new("limit", limit)]);
    }
}

/// The `component` attribute. A [`Version`](crate::Version) keeps its own, whose clones share
/// the name with its instances.
pub fn component(name: std::sync::Arc<str>) -> KeyValue {
    KeyValue::new("component", opentelemetry::StringValue::from(name))
}

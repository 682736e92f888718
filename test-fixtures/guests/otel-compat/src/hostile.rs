//! Exports a hostile guest makes, straight through the WIT: what the host must bound.

use crate::wasi::otel::{metrics as wm, types};

/// One export of `data` under `name`.
fn export(name: &str, data: wm::MetricData) -> Result<(), String> {
    wm::export(&wm::ResourceMetrics {
        resource: types::Resource {
            attributes: Vec::new(),
            schema_url: None,
        },
        scope_metrics: vec![wm::ScopeMetrics {
            scope: types::InstrumentationScope {
                name: "hostile".into(),
                version: None,
                schema_url: None,
                attributes: Vec::new(),
            },
            metrics: vec![wm::Metric {
                name: name.into(),
                description: String::new(),
                unit: String::new(),
                data,
            }],
        }],
    })
}

const NOW: types::Datetime = types::Datetime {
    seconds: 1_700_000_000,
    nanoseconds: 0,
};

/// A gauge of 40 points, each with 128 attributes of 4000-byte keys and values, new ones for
/// every `seed`: megabytes of series for the host to hold.
pub(crate) fn hoard(seed: &str) -> Result<(), String> {
    let points = (0..40)
        .map(|point| wm::GaugeDataPoint {
            attributes: (0..128)
                .map(|i| types::KeyValue {
                    key: format!("{seed}-{point}-{i}-{}", "k".repeat(4000)),
                    value: format!("\"{seed}-{}\"", "v".repeat(4000)),
                })
                .collect(),
            value: wm::MetricNumber::F64(1.0),
            exemplars: Vec::new(),
        })
        .collect();
    export(
        "hoard",
        wm::MetricData::F64Gauge(wm::Gauge {
            data_points: points,
            start_time: Some(NOW),
            time: NOW,
        }),
    )
}

/// A histogram of 1024 points, each standing for 10,000 measurements: ten million records for
/// one host call, were they all made.
pub(crate) fn flood(seed: &str) -> Result<(), String> {
    let points = (0..1024)
        .map(|point| wm::HistogramDataPoint {
            attributes: vec![types::KeyValue {
                key: "point".into(),
                value: format!("\"{seed}-{point}\""),
            }],
            count: 10_000,
            bounds: vec![1.0, 10.0],
            bucket_counts: vec![5_000, 4_000, 1_000],
            min: None,
            max: None,
            sum: wm::MetricNumber::F64(40_000.0),
            exemplars: Vec::new(),
        })
        .collect();
    export(
        "flood",
        wm::MetricData::F64Histogram(wm::Histogram {
            data_points: points,
            start_time: NOW,
            time: NOW,
            temporality: wm::Temporality::Delta,
        }),
    )
}

//! `wasi:otel/metrics`: what a guest exports is recorded into host instruments of the same names,
//! so it reaches `/metrics` and OTLP with tempo's own metrics, with a `component` attribute.
//!
//! A guest's SDK reports aggregates, the host's instruments take measurements:
//! - a sum becomes a counter (monotonic) or an up-down counter, fed the change since the
//!   instance's last report of that series (a cumulative sum) or the reported change (a delta);
//! - a gauge is recorded as it is;
//! - a histogram becomes a host histogram with the guest's bucket bounds, fed each bucket's new
//!   count at a point inside the bucket: the count is exact, the buckets are for delta reports,
//!   and the sum is when a point holds one measurement (tempo-sdk reports each one); otherwise
//!   the sum is taken from the buckets' middles.
//!
//! What a guest can make the host hold is bounded: [`MAX_INSTRUMENTS`] metric names in the
//! process, [`MAX_SERIES`] remembered series per instance, [`MAX_POINTS`] points per export and
//! [`MAX_MEASUREMENTS`] measurements per point; the SDK caps each instrument's attribute sets
//! (2000). What is refused is counted (`tempo_limits_hit_total{limit="metrics"}`) and the guest
//! gets an error naming it.

use std::collections::HashMap;
use std::sync::Mutex;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, UpDownCounter};

use super::convert::bounded_attributes;
use super::generated::wasi::otel::metrics as wit;

/// The most metric names guests may define in one process.
pub(crate) const MAX_INSTRUMENTS: usize = 256;
/// The most series (name and attributes) one instance's cumulative reports are remembered for.
pub(crate) const MAX_SERIES: usize = 1024;
/// The most data points one export may carry.
pub(crate) const MAX_POINTS: usize = 1024;
/// The most measurements one histogram point may stand for.
pub(crate) const MAX_MEASUREMENTS: u64 = 10_000;

/// The host instrument behind one guest metric name.
#[derive(Clone)]
enum Instrument {
    Counter(Counter<f64>),
    UpDown(UpDownCounter<f64>),
    Gauge(Gauge<f64>),
    Histogram(Histogram<f64>),
}

impl Instrument {
    fn kind(&self) -> &'static str {
        match self {
            Self::Counter(_) => "a counter",
            Self::UpDown(_) => "an up-down counter",
            Self::Gauge(_) => "a gauge",
            Self::Histogram(_) => "a histogram",
        }
    }
}

/// The instruments guests' metrics are recorded into, by name; shared by every instance.
#[derive(Default)]
pub(crate) struct GuestInstruments {
    by_name: Mutex<HashMap<String, Instrument>>,
}

/// What one instance last reported of each cumulative series.
#[derive(Default)]
pub(crate) struct Reported {
    last: HashMap<String, (f64, f64)>,
}

/// A guest's metric as the host records it.
struct Series<'a> {
    name: &'a str,
    attributes: Vec<KeyValue>,
}

impl Series<'_> {
    /// The series as one string: its name and attributes, each ended by a NUL.
    fn key(&self) -> String {
        let mut key = format!("{}\0", self.name);
        for attribute in &self.attributes {
            key.push_str(&format!("{}={}\0", attribute.key, attribute.value));
        }
        key
    }
}

impl GuestInstruments {
    /// Records an export of one instance of `component`. Points past the bounds are left out
    /// and counted in `dropped`; the first refusal is returned.
    pub(crate) fn record(
        &self,
        metrics: wit::ResourceMetrics,
        component: &KeyValue,
        reported: &mut Reported,
        dropped: &mut u64,
    ) -> Result<(), String> {
        let mut refusal = None;
        let mut points = 0usize;
        for scope in metrics.scope_metrics {
            for metric in scope.metrics {
                let result = self.record_metric(metric, component, reported, &mut points);
                if let Err((error, lost)) = result {
                    *dropped += lost;
                    refusal.get_or_insert(error);
                }
            }
        }
        refusal.map_or(Ok(()), Err)
    }

    fn record_metric(
        &self,
        metric: wit::Metric,
        component: &KeyValue,
        reported: &mut Reported,
        points: &mut usize,
    ) -> Result<(), (String, u64)> {
        use wit::MetricData as Data;
        let count = match &metric.data {
            Data::F64Gauge(g) | Data::U64Gauge(g) | Data::S64Gauge(g) => g.data_points.len(),
            Data::F64Sum(s) | Data::U64Sum(s) | Data::S64Sum(s) => s.data_points.len(),
            Data::F64Histogram(h) | Data::U64Histogram(h) | Data::S64Histogram(h) => {
                h.data_points.len()
            }
            Data::F64ExponentialHistogram(h)
            | Data::U64ExponentialHistogram(h)
            | Data::S64ExponentialHistogram(h) => h.data_points.len(),
        };
        *points += count;
        if *points > MAX_POINTS {
            let lost = (*points - MAX_POINTS).min(count) as u64;
            return Err((
                format!(
                    "an export carries at most {MAX_POINTS} data points; the rest were dropped"
                ),
                lost,
            ));
        }
        let instrument = self
            .instrument(&metric)
            .map_err(|error| (error, count as u64))?;
        let series = |attributes: Vec<wit::KeyValue>| {
            let (mut attributes, _) = bounded_attributes(attributes);
            attributes.push(component.clone());
            Series {
                name: &metric.name,
                attributes,
            }
        };
        let mut refused = Ok(());
        match (instrument, metric.data) {
            (
                Instrument::Gauge(gauge),
                Data::F64Gauge(data) | Data::U64Gauge(data) | Data::S64Gauge(data),
            ) => {
                for point in data.data_points {
                    gauge.record(number(point.value), &series(point.attributes).attributes);
                }
            }
            (instrument, Data::F64Sum(data) | Data::U64Sum(data) | Data::S64Sum(data)) => {
                let cumulative = is_cumulative(data.temporality, data.is_monotonic);
                for point in data.data_points {
                    let series = series(point.attributes);
                    let value = number(point.value);
                    let Some((change, _)) = reported.change(&series, cumulative, (value, 0.0))
                    else {
                        refused = Err((format!("at most {MAX_SERIES} series per instance"), 1));
                        continue;
                    };
                    match &instrument {
                        Instrument::Counter(counter) if change >= 0.0 => {
                            counter.add(change, &series.attributes);
                        }
                        Instrument::UpDown(counter) => counter.add(change, &series.attributes),
                        _ => {}
                    }
                }
            }
            (
                Instrument::Histogram(histogram),
                Data::F64Histogram(data) | Data::U64Histogram(data) | Data::S64Histogram(data),
            ) => {
                let cumulative = is_cumulative(data.temporality, true);
                for point in data.data_points {
                    let series = series(point.attributes.clone());
                    if let Err(error) =
                        record_histogram(&histogram, &series, point, cumulative, reported)
                    {
                        refused = Err((error, 1));
                    }
                }
            }
            (Instrument::Histogram(histogram), data) => {
                let (temporality, points) = exponential(data);
                let cumulative = is_cumulative(temporality, true);
                for point in points {
                    let series = series(point.attributes);
                    let summary = wit::HistogramDataPoint {
                        attributes: Vec::new(),
                        count: point.count,
                        bounds: Vec::new(),
                        bucket_counts: vec![point.count],
                        min: point.min,
                        max: point.max,
                        sum: point.sum,
                        exemplars: Vec::new(),
                    };
                    if let Err(error) =
                        record_histogram(&histogram, &series, summary, cumulative, reported)
                    {
                        refused = Err((error, 1));
                    }
                }
            }
            _ => {}
        }
        refused
    }

    /// The host instrument for `metric`, made at its first report.
    fn instrument(&self, metric: &wit::Metric) -> Result<Instrument, String> {
        use wit::MetricData as Data;
        let name = metric.name.as_str();
        check_name(name)?;
        let wanted = match &metric.data {
            Data::F64Gauge(_) | Data::U64Gauge(_) | Data::S64Gauge(_) => "a gauge",
            Data::F64Sum(s) | Data::U64Sum(s) | Data::S64Sum(s) if s.is_monotonic => "a counter",
            Data::F64Sum(_) | Data::U64Sum(_) | Data::S64Sum(_) => "an up-down counter",
            _ => "a histogram",
        };
        let mut by_name = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(instrument) = by_name.get(name) {
            if instrument.kind() != wanted {
                return Err(format!(
                    "metric `{name}` is {}; it cannot be reported as {wanted}",
                    instrument.kind()
                ));
            }
            return Ok(instrument.clone());
        }
        if by_name.len() >= MAX_INSTRUMENTS {
            return Err(format!(
                "metric `{name}` is refused: guests may define at most {MAX_INSTRUMENTS} metrics"
            ));
        }
        let meter = opentelemetry::global::meter("tempo.guest");
        let description = super::convert::bounded(metric.description.clone());
        let unit = super::convert::bounded(metric.unit.clone());
        let owned = name.to_owned();
        let instrument = match &metric.data {
            Data::F64Gauge(_) | Data::U64Gauge(_) | Data::S64Gauge(_) => Instrument::Gauge(
                meter
                    .f64_gauge(owned.clone())
                    .with_description(description)
                    .with_unit(unit)
                    .build(),
            ),
            Data::F64Sum(s) | Data::U64Sum(s) | Data::S64Sum(s) if s.is_monotonic => {
                Instrument::Counter(
                    meter
                        .f64_counter(owned.clone())
                        .with_description(description)
                        .with_unit(unit)
                        .build(),
                )
            }
            Data::F64Sum(_) | Data::U64Sum(_) | Data::S64Sum(_) => Instrument::UpDown(
                meter
                    .f64_up_down_counter(owned.clone())
                    .with_description(description)
                    .with_unit(unit)
                    .build(),
            ),
            data => {
                let mut builder = meter
                    .f64_histogram(owned.clone())
                    .with_description(description)
                    .with_unit(unit);
                if let Data::F64Histogram(h) | Data::U64Histogram(h) | Data::S64Histogram(h) = data
                    && let Some(point) = h.data_points.first()
                    && valid_bounds(&point.bounds)
                {
                    builder = builder.with_boundaries(point.bounds.clone());
                }
                Instrument::Histogram(builder.build())
            }
        };
        by_name.insert(owned, instrument.clone());
        Ok(instrument)
    }
}

impl Reported {
    /// The change of a series since the instance last reported it: `now` itself for a delta,
    /// the difference for a cumulative report (a drop means the guest restarted: all of it is
    /// new). `None` when the instance already has [`MAX_SERIES`] other series.
    fn change(
        &mut self,
        series: &Series<'_>,
        cumulative: bool,
        now: (f64, f64),
    ) -> Option<(f64, f64)> {
        if !cumulative {
            return Some(now);
        }
        let key = series.key();
        if !self.last.contains_key(&key) && self.last.len() >= MAX_SERIES {
            return None;
        }
        let before = self.last.insert(key, now).unwrap_or((0.0, 0.0));
        if now.0 < before.0 {
            Some(now)
        } else {
            Some((now.0 - before.0, now.1 - before.1))
        }
    }
}

/// Records a histogram point's new measurements, each bucket's at a point inside it.
fn record_histogram(
    histogram: &Histogram<f64>,
    series: &Series<'_>,
    point: wit::HistogramDataPoint,
    cumulative: bool,
    reported: &mut Reported,
) -> Result<(), String> {
    let sum = number(point.sum);
    let Some((count, sum)) = reported.change(series, cumulative, (point.count as f64, sum)) else {
        return Err(format!("at most {MAX_SERIES} series per instance"));
    };
    let count = count as u64;
    if count == 0 {
        return Ok(());
    }
    if count > MAX_MEASUREMENTS {
        return Err(format!(
            "a histogram point may stand for at most {MAX_MEASUREMENTS} measurements"
        ));
    }
    let attributes = &series.attributes;
    if count == 1 {
        histogram.record(sum, attributes);
        return Ok(());
    }
    let min = point.min.map(number);
    let max = point.max.map(number);
    let mean = sum / count as f64;
    // A cumulative report's bucket counts are totals; only their share of `count` is new.
    let total: u64 = point.bucket_counts.iter().sum();
    let mut left = count;
    for (bucket, &in_bucket) in point.bucket_counts.iter().enumerate() {
        let new = if total > count {
            in_bucket.saturating_mul(count) / total.max(1)
        } else {
            in_bucket
        }
        .min(left);
        let lower = bucket
            .checked_sub(1)
            .and_then(|i| point.bounds.get(i).copied());
        let upper = point.bounds.get(bucket).copied();
        let value = match (lower, upper) {
            (Some(lower), Some(upper)) => (lower + upper) / 2.0,
            (None, Some(upper)) => min.unwrap_or(upper).min(upper),
            (Some(lower), None) => max.unwrap_or(lower).max(lower),
            (None, None) => mean,
        };
        for _ in 0..new {
            histogram.record(value, attributes);
        }
        left -= new;
    }
    for _ in 0..left {
        histogram.record(mean, attributes);
    }
    Ok(())
}

/// A cumulative report must be turned into changes; OpenTelemetry's low-memory temporality
/// reports counters as deltas and up-down counters cumulatively.
fn is_cumulative(temporality: wit::Temporality, monotonic: bool) -> bool {
    match temporality {
        wit::Temporality::Cumulative => true,
        wit::Temporality::Delta => false,
        wit::Temporality::LowMemory => !monotonic,
    }
}

/// An exponential histogram's temporality and points.
fn exponential(
    data: wit::MetricData,
) -> (wit::Temporality, Vec<wit::ExponentialHistogramDataPoint>) {
    use wit::MetricData as Data;
    match data {
        Data::F64ExponentialHistogram(h)
        | Data::U64ExponentialHistogram(h)
        | Data::S64ExponentialHistogram(h) => (h.temporality, h.data_points),
        _ => (wit::Temporality::Delta, Vec::new()),
    }
}

fn number(number: wit::MetricNumber) -> f64 {
    match number {
        wit::MetricNumber::F64(value) => value,
        wit::MetricNumber::S64(value) => value as f64,
        wit::MetricNumber::U64(value) => value as f64,
    }
}

/// Increasing, finite bounds, as OpenTelemetry takes them (at most 256).
fn valid_bounds(bounds: &[f64]) -> bool {
    bounds.len() <= 256
        && bounds.iter().all(|bound| bound.is_finite())
        && bounds.windows(2).all(|pair| pair[0] < pair[1])
}

/// OpenTelemetry's instrument name syntax; `tempo` names are the host's own.
fn check_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
    if !valid {
        let shown: String = name.chars().take(64).collect();
        return Err(format!(
            "metric name {shown:?} is invalid: use 1 to 255 letters, digits, `_`, `.`, `-` or `/`, starting with a letter"
        ));
    }
    if name
        .get(..5)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("tempo"))
    {
        return Err(format!(
            "metric `{name}` is refused: names starting with `tempo` are the host's"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_opentelemetry_and_leave_tempo_to_the_host() {
        assert!(check_name("orders.placed").is_ok());
        assert!(check_name("http/requests-total_2").is_ok());
        for bad in ["", "9lives", "a b", "a\nb", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let refused = check_name("Tempo.http.requests").unwrap_err();
        assert!(refused.contains("the host's"), "{refused}");
    }

    #[test]
    fn cumulative_reports_become_changes_and_series_are_bounded() {
        let mut reported = Reported::default();
        let series = |i: usize| Series {
            name: "hits",
            attributes: vec![KeyValue::new("i", i as i64)],
        };
        assert_eq!(
            reported.change(&series(0), true, (3.0, 0.0)),
            Some((3.0, 0.0))
        );
        assert_eq!(
            reported.change(&series(0), true, (5.0, 0.0)),
            Some((2.0, 0.0))
        );
        // A drop is a restart: all of it is new.
        assert_eq!(
            reported.change(&series(0), true, (1.0, 0.0)),
            Some((1.0, 0.0))
        );
        assert_eq!(
            reported.change(&series(0), false, (4.0, 0.0)),
            Some((4.0, 0.0))
        );
        for i in 1..MAX_SERIES {
            assert!(reported.change(&series(i), true, (1.0, 0.0)).is_some());
        }
        assert_eq!(reported.change(&series(MAX_SERIES), true, (1.0, 0.0)), None);
        // Known series still report, and deltas need no memory.
        assert!(reported.change(&series(0), true, (2.0, 0.0)).is_some());
        assert!(
            reported
                .change(&series(MAX_SERIES), false, (1.0, 0.0))
                .is_some()
        );
    }

    #[test]
    fn histogram_bounds_must_increase() {
        assert!(valid_bounds(&[0.0, 1.0, 5.0]));
        assert!(valid_bounds(&[]));
        assert!(!valid_bounds(&[1.0, 1.0]));
        assert!(!valid_bounds(&[0.0, f64::NAN]));
    }
}

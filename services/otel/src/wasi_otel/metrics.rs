//! `wasi:otel/metrics`: what a guest exports is recorded into host instruments of the same names,
//! so it reaches `/metrics` and OTLP with tempo's own metrics, with a `component` attribute.
//!
//! A guest's SDK reports aggregates, the host's instruments take measurements:
//! - a sum becomes a counter (monotonic) or an up-down counter, fed the change since the
//!   instance's last report of that series (a cumulative sum) or the reported change (a delta);
//! - a gauge is recorded as it is;
//! - a histogram becomes a host histogram with the guest's bucket bounds (those of its first
//!   report), fed each bucket's new count at points inside the bucket that add up to the new
//!   sum: count, buckets and sum are the guest's, the single values are not known.
//!
//! What a guest can make the host hold, and do in one call, is bounded in bytes and in work:
//! - in the process, [`MAX_INSTRUMENTS`] metric names, and series (a name and its attributes)
//!   of [`MAX_HELD_BYTES`] in all: the host's instruments keep every series they have seen;
//! - per series, [`MAX_ATTRIBUTES`] attributes and [`MAX_SERIES_BYTES`] of name, keys and values;
//! - per instance, [`MAX_SERIES`] remembered cumulative series (each a 64-bit hash and its
//!   totals), with [`MAX_TOTALS`] totals in all;
//! - per export, [`MAX_POINTS`] points and [`MAX_EXPORT_MEASUREMENTS`] histogram measurements
//!   (each point at most [`MAX_MEASUREMENTS`], with at most [`MAX_BUCKETS`] buckets), so one
//!   host call does a bounded amount of work.
//!
//! A value that is not finite is refused, and so are names the exporters keep for themselves
//! (`target_info`, `otel_scope_info`) and names starting with `tempo`. What is refused is
//! counted (`tempo_limits_hit_total{limit="metrics"}`) and the guest gets an error naming it.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Mutex;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, UpDownCounter};

use super::generated::wasi::otel::metrics as wit;

/// The most metric names guests may define in one process.
pub(crate) const MAX_INSTRUMENTS: usize = 256;
/// The most series (name and attributes) one instance's cumulative reports are remembered for.
pub(crate) const MAX_SERIES: usize = 1024;
/// The most totals (8 bytes each) one instance remembers for its cumulative series: 256 KiB.
pub(crate) const MAX_TOTALS: usize = 32 * 1024;
/// The most data points one export may carry.
pub(crate) const MAX_POINTS: usize = 1024;
/// The most measurements one histogram point may stand for.
pub(crate) const MAX_MEASUREMENTS: u64 = 10_000;
/// The most buckets a histogram point may have (OpenTelemetry's 256 bounds, and one more).
pub(crate) const MAX_BUCKETS: usize = 257;
/// The most histogram measurements one export may stand for, in all of its points: what one
/// host call records stays around a millisecond.
pub(crate) const MAX_EXPORT_MEASUREMENTS: u64 = 20_000;
/// The most attributes of one series.
pub(crate) const MAX_ATTRIBUTES: usize = 32;
/// The most bytes of one series' name, attribute keys and values.
pub(crate) const MAX_SERIES_BYTES: usize = 2048;
/// The most bytes of series the host's instruments hold for all guests of the process.
pub(crate) const MAX_HELD_BYTES: usize = 8 << 20;
/// Names the exporters use for metrics of their own.
const RESERVED_NAMES: &[&str] = &["target_info", "otel_scope_info"];

/// The points of one metric that were refused: how many, and why the first was.
#[derive(Default)]
struct Refusals {
    first: Option<String>,
    count: u64,
}

impl Refusals {
    fn add(&mut self, why: String) {
        self.first.get_or_insert(why);
        self.count += 1;
    }

    fn into_result(self) -> Result<(), (String, u64)> {
        self.first.map_or(Ok(()), |why| Err((why, self.count)))
    }
}

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
    held: Mutex<Held>,
    /// Hashes series to know them again.
    hasher: RandomState,
}

/// The series the host's instruments hold, by hash, and their bytes.
#[derive(Default)]
struct Held {
    series: HashSet<u64>,
    bytes: usize,
}

/// What one instance last reported of each cumulative series, by the series' hash: a sum's
/// value, or a histogram's count, sum and bucket counts.
#[derive(Default)]
pub(crate) struct Reported {
    last: HashMap<u64, Vec<f64>>,
    /// How many totals `last` holds.
    totals: usize,
}

/// A guest's metric as the host records it.
struct Series<'a> {
    name: &'a str,
    attributes: Vec<KeyValue>,
    /// The name and attributes hashed, to know the series again.
    id: u64,
    /// The bytes of the name, keys and values.
    bytes: usize,
}

impl<'a> Series<'a> {
    /// The series `name` with a guest's `attributes` and the host's `component`, within
    /// [`MAX_ATTRIBUTES`] and [`MAX_SERIES_BYTES`].
    fn new(
        name: &'a str,
        attributes: Vec<wit::KeyValue>,
        component: &KeyValue,
        hasher: &RandomState,
    ) -> Result<Self, String> {
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(format!(
                "a metric point has at most {MAX_ATTRIBUTES} attributes"
            ));
        }
        let bytes = name.len()
            + attributes
                .iter()
                .map(|pair| pair.key.len() + pair.value.len())
                .sum::<usize>();
        if bytes > MAX_SERIES_BYTES {
            return Err(format!(
                "a metric point's name, attribute keys and values take at most \
                 {MAX_SERIES_BYTES} bytes"
            ));
        }
        let mut hash = hasher.build_hasher();
        hash.write(name.as_bytes());
        for pair in &attributes {
            hash.write_u8(0);
            hash.write(pair.key.as_bytes());
            hash.write_u8(0);
            hash.write(pair.value.as_bytes());
        }
        let mut kept = super::convert::bounded_attributes(attributes).0;
        kept.push(component.clone());
        Ok(Series {
            name,
            attributes: kept,
            id: hash.finish(),
            bytes,
        })
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
        let mut budget = MAX_EXPORT_MEASUREMENTS;
        for scope in metrics.scope_metrics {
            for metric in scope.metrics {
                let result =
                    self.record_metric(metric, component, reported, &mut points, &mut budget);
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
        budget: &mut u64,
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
        let hasher = &self.hasher;
        // A series the instruments may hold: within its own bounds, and the process's.
        let series = |attributes: Vec<wit::KeyValue>| {
            let series = Series::new(&metric.name, attributes, component, hasher)?;
            self.hold(&series)?;
            Ok::<_, String>(series)
        };
        let mut refused = Refusals::default();
        match (instrument, metric.data) {
            (
                Instrument::Gauge(gauge),
                Data::F64Gauge(data) | Data::U64Gauge(data) | Data::S64Gauge(data),
            ) => {
                for point in data.data_points {
                    let value = number(point.value);
                    if !value.is_finite() {
                        refused.add(NOT_FINITE.to_owned());
                        continue;
                    }
                    match series(point.attributes) {
                        Ok(series) => gauge.record(value, &series.attributes),
                        Err(error) => refused.add(error),
                    }
                }
            }
            (instrument, Data::F64Sum(data) | Data::U64Sum(data) | Data::S64Sum(data)) => {
                let cumulative = is_cumulative(data.temporality, data.is_monotonic);
                for point in data.data_points {
                    let series = match series(point.attributes) {
                        Ok(series) => series,
                        Err(error) => {
                            refused.add(error);
                            continue;
                        }
                    };
                    let value = number(point.value);
                    if !value.is_finite() {
                        refused.add(NOT_FINITE.to_owned());
                        continue;
                    }
                    let Some(change) = reported.change(&series, cumulative, vec![value]) else {
                        refused.add(series_per_instance());
                        continue;
                    };
                    match &instrument {
                        Instrument::Counter(counter) if change[0] >= 0.0 => {
                            counter.add(change[0], &series.attributes);
                        }
                        Instrument::UpDown(counter) => counter.add(change[0], &series.attributes),
                        _ => {}
                    }
                }
            }
            (
                Instrument::Histogram(histogram),
                Data::F64Histogram(data) | Data::U64Histogram(data) | Data::S64Histogram(data),
            ) => {
                let cumulative = is_cumulative(data.temporality, true);
                for mut point in data.data_points {
                    let recorded =
                        series(std::mem::take(&mut point.attributes)).and_then(|series| {
                            record_histogram(
                                &histogram, &series, point, cumulative, reported, budget,
                            )
                        });
                    if let Err(error) = recorded {
                        refused.add(error);
                    }
                }
            }
            (Instrument::Histogram(histogram), data) => {
                let (temporality, points) = exponential(data);
                let cumulative = is_cumulative(temporality, true);
                for point in points {
                    let series = match series(point.attributes) {
                        Ok(series) => series,
                        Err(error) => {
                            refused.add(error);
                            continue;
                        }
                    };
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
                        record_histogram(&histogram, &series, summary, cumulative, reported, budget)
                    {
                        refused.add(error);
                    }
                }
            }
            _ => {}
        }
        refused.into_result()
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

impl GuestInstruments {
    /// Counts `series` among those the instruments hold; refused when it is new and the
    /// process's [`MAX_HELD_BYTES`] are taken.
    fn hold(&self, series: &Series<'_>) -> Result<(), String> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.series.contains(&series.id) {
            return Ok(());
        }
        if held.bytes + series.bytes > MAX_HELD_BYTES {
            return Err(format!(
                "metric `{}` gets no new series: guests' series take at most {} MiB of the \
                 host's memory, and they are taken",
                series.name,
                MAX_HELD_BYTES >> 20
            ));
        }
        held.bytes += series.bytes;
        held.series.insert(series.id);
        Ok(())
    }
}

impl Reported {
    /// The change of a series since the instance last reported it: `now` itself for a delta,
    /// the difference for a cumulative report. `now[0]` is a total that only grows while the
    /// guest runs (a sum's value, a histogram's count): when it drops, or the shape changes,
    /// the guest restarted and all of `now` is new. `None` when the instance already has
    /// [`MAX_SERIES`] other series, or the totals would be more than [`MAX_TOTALS`].
    fn change(&mut self, series: &Series<'_>, cumulative: bool, now: Vec<f64>) -> Option<Vec<f64>> {
        if !cumulative {
            return Some(now);
        }
        let held = self.last.get(&series.id).map(Vec::len);
        if held.is_none() && self.last.len() >= MAX_SERIES {
            return None;
        }
        let totals = self.totals - held.unwrap_or(0) + now.len();
        if totals > MAX_TOTALS {
            return None;
        }
        self.totals = totals;
        let before = self.last.insert(series.id, now.clone());
        match before {
            Some(before) if before.len() == now.len() && now[0] >= before[0] => Some(
                now.iter()
                    .zip(&before)
                    .map(|(now, before)| now - before)
                    .collect(),
            ),
            _ => Some(now),
        }
    }
}

/// Records a histogram point's new measurements: each bucket's count at points inside the
/// bucket, spread so that they add up to the reported sum.
fn record_histogram(
    histogram: &Histogram<f64>,
    series: &Series<'_>,
    point: wit::HistogramDataPoint,
    cumulative: bool,
    reported: &mut Reported,
    budget: &mut u64,
) -> Result<(), String> {
    if point.bucket_counts.len() > MAX_BUCKETS {
        return Err(format!(
            "a histogram point may have at most {MAX_BUCKETS} buckets"
        ));
    }
    if !number(point.sum).is_finite() {
        return Err(NOT_FINITE.to_owned());
    }
    let mut totals = vec![point.count as f64, number(point.sum)];
    totals.extend(point.bucket_counts.iter().map(|&count| count as f64));
    let Some(change) = reported.change(series, cumulative, totals) else {
        return Err(series_per_instance());
    };
    let (count, sum) = (change[0] as u64, change[1]);
    if count == 0 {
        return Ok(());
    }
    if count > MAX_MEASUREMENTS {
        return Err(format!(
            "a histogram point may stand for at most {MAX_MEASUREMENTS} measurements"
        ));
    }
    if count > *budget {
        return Err(format!(
            "an export's histograms may stand for at most {MAX_EXPORT_MEASUREMENTS} \
             measurements in all; export more often"
        ));
    }
    *budget -= count;
    let counts: Vec<u64> = change[2..].iter().map(|&count| count as u64).collect();
    let bounds = (point.min.map(number), point.max.map(number));
    for (value, times) in measurements(count, sum, &point.bounds, &counts, bounds) {
        for _ in 0..times {
            histogram.record(value, &series.attributes);
        }
    }
    Ok(())
}

/// Values that stand for a histogram's `count` measurements: `counts[i]` of them in bucket `i`
/// (`(bounds[i-1], bounds[i]]`, the first and last open, narrowed by the minimum and maximum
/// when known), moved within their buckets so that they add up to `sum` when the buckets allow
/// it. Measurements the bucket counts leave out are taken at the mean.
fn measurements(
    count: u64,
    sum: f64,
    bounds: &[f64],
    counts: &[u64],
    (min, max): (Option<f64>, Option<f64>),
) -> Vec<(f64, u64)> {
    let mean = sum / count as f64;
    if count == 1 {
        return vec![(sum, 1)];
    }
    // Each bucket's lowest and highest value, and a starting point inside it.
    let mut spans: Vec<(f64, f64, u64)> = Vec::new();
    let mut left = count;
    for (bucket, &in_bucket) in counts.iter().enumerate() {
        let in_bucket = in_bucket.min(left);
        if in_bucket == 0 {
            continue;
        }
        left -= in_bucket;
        let lower = bucket.checked_sub(1).and_then(|i| bounds.get(i).copied());
        let upper = bounds.get(bucket).copied();
        let low = lower.or(min).unwrap_or(f64::NEG_INFINITY);
        let high = upper.or(max).unwrap_or(f64::INFINITY);
        spans.push((low, high, in_bucket));
    }
    if left > 0 {
        spans.push((mean, mean, left));
    }
    let start = |(low, high): (f64, f64)| match (low.is_finite(), high.is_finite()) {
        (true, true) => (low + high) / 2.0,
        (true, false) => low.max(mean),
        (false, true) => high.min(mean),
        (false, false) => mean,
    };
    let mut values: Vec<(f64, u64)> = spans
        .iter()
        .map(|&(low, high, times)| (start((low, high)), times))
        .collect();
    // Move every value the same share of its room towards the reported sum.
    let placed: f64 = values
        .iter()
        .map(|&(value, times)| value * times as f64)
        .sum();
    let residual = sum - placed;
    let rooms: Vec<f64> = spans
        .iter()
        .zip(&values)
        .map(|(&(low, high, _), &(value, _))| {
            if residual > 0.0 {
                high - value
            } else {
                value - low
            }
        })
        .collect();
    let total_room: f64 = rooms
        .iter()
        .zip(&values)
        .map(|(room, &(_, times))| room * times as f64)
        .sum();
    // Unbounded buckets, if any, take all of it, shared among their measurements.
    let unbounded: u64 = spans
        .iter()
        .zip(&rooms)
        .filter(|(_, room)| room.is_infinite())
        .map(|(span, _)| span.2)
        .sum();
    if residual != 0.0 && total_room > 0.0 {
        for ((value, _), room) in values.iter_mut().zip(&rooms) {
            let step = if total_room.is_finite() {
                room * (residual.abs() / total_room).min(1.0)
            } else if room.is_infinite() {
                residual.abs() / unbounded as f64
            } else {
                0.0
            };
            *value += step.copysign(residual);
        }
    }
    values
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

/// Why a new cumulative series is refused when an instance remembers enough.
fn series_per_instance() -> String {
    format!(
        "an instance remembers at most {MAX_SERIES} cumulative series, and {MAX_TOTALS} totals \
         of theirs"
    )
}

/// Why a value that is not a number, or infinite, is refused: it would stay in its series.
const NOT_FINITE: &str = "metric values must be finite numbers";

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
    let exported = name.replace(['.', '-', '/'], "_");
    if let Some(reserved) = RESERVED_NAMES
        .iter()
        .find(|reserved| exported.eq_ignore_ascii_case(reserved))
    {
        return Err(format!(
            "metric `{name}` is refused: `{reserved}` is the exporters' own"
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
        for reserved in [
            "target_info",
            "target.info",
            "Target-Info",
            "otel.scope.info",
        ] {
            let refused = check_name(reserved).unwrap_err();
            assert!(refused.contains("the exporters' own"), "{refused}");
        }
    }

    #[test]
    fn cumulative_reports_become_changes_and_series_are_bounded() {
        let mut reported = Reported::default();
        let (component, hasher) = (KeyValue::new("component", "test"), RandomState::new());
        let series = |i: usize| {
            let attributes = vec![attribute("i", &i.to_string())];
            Series::new("hits", attributes, &component, &hasher).unwrap()
        };
        let mut change = |i: usize, cumulative: bool, now: &[f64]| {
            reported.change(&series(i), cumulative, now.to_vec())
        };
        assert_eq!(change(0, true, &[3.0, 1.0]), Some(vec![3.0, 1.0]));
        assert_eq!(change(0, true, &[5.0, 4.0]), Some(vec![2.0, 3.0]));
        // A drop of the first total, or another shape, is a restart: all of it is new.
        assert_eq!(change(0, true, &[1.0, 9.0]), Some(vec![1.0, 9.0]));
        assert_eq!(change(0, true, &[2.0]), Some(vec![2.0]));
        assert_eq!(change(0, false, &[4.0]), Some(vec![4.0]));
        for i in 1..MAX_SERIES {
            assert!(change(i, true, &[1.0]).is_some());
        }
        assert_eq!(change(MAX_SERIES, true, &[1.0]), None);
        // Known series still report, and deltas need no memory.
        assert!(change(0, true, &[3.0]).is_some());
        assert!(change(MAX_SERIES, false, &[1.0]).is_some());
        // Histograms' totals (count, sum and buckets) are bounded too.
        let mut reported = Reported::default();
        let mut taken = 0;
        for i in 0.. {
            let histogram = vec![1.0; 259];
            if reported.change(&series(i), true, histogram).is_none() {
                break;
            }
            taken += 259;
        }
        assert!(taken <= MAX_TOTALS && taken + 259 > MAX_TOTALS, "{taken}");
        assert_eq!(reported.totals, taken);
    }

    fn attribute(key: &str, value: &str) -> wit::KeyValue {
        wit::KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A gauge of one point with `attributes`.
    fn gauge(attributes: Vec<wit::KeyValue>) -> wit::MetricData {
        let now = wit::Datetime {
            seconds: 0,
            nanoseconds: 0,
        };
        wit::MetricData::F64Gauge(wit::Gauge {
            data_points: vec![wit::GaugeDataPoint {
                attributes,
                value: wit::MetricNumber::F64(1.0),
                exemplars: Vec::new(),
            }],
            start_time: Some(now),
            time: now,
        })
    }

    #[test]
    fn series_are_bounded_in_bytes_for_each_point_and_for_the_process() {
        let instruments = GuestInstruments::default();
        let component = KeyValue::new("component", "test");
        let mut reported = Reported::default();
        let mut dropped = 0;
        let mut record =
            |metrics| instruments.record(metrics, &component, &mut reported, &mut dropped);
        let many = (0..=MAX_ATTRIBUTES)
            .map(|i| attribute(&format!("k{i}"), "v"))
            .collect();
        let refused = record(export("wide", gauge(many))).unwrap_err();
        assert!(refused.contains("attributes"), "{refused}");
        let big = vec![attribute("k", &"v".repeat(MAX_SERIES_BYTES))];
        let refused = record(export("wide", gauge(big))).unwrap_err();
        assert!(refused.contains("bytes"), "{refused}");
        // New series, each near the most one may take, until the process's bytes are taken.
        let value = "v".repeat(MAX_SERIES_BYTES - 64);
        let mut held = 0;
        let refused = loop {
            let attributes = vec![attribute(&format!("n{held}"), &value)];
            match record(export("hoard", gauge(attributes))) {
                Ok(()) => held += 1,
                Err(refused) => break refused,
            }
            assert!(held <= MAX_HELD_BYTES / (MAX_SERIES_BYTES - 64));
        };
        assert!(refused.contains("no new series"), "{refused}");
        assert!(held >= MAX_HELD_BYTES / MAX_SERIES_BYTES, "{held}");
        // Series already held still record.
        let attributes = vec![attribute("n0", &value)];
        assert_eq!(record(export("hoard", gauge(attributes))), Ok(()));
        assert_eq!(dropped, 3);
    }

    /// Which bucket of `bounds` each value falls in, and the values' total.
    fn bucketed(values: &[(f64, u64)], bounds: &[f64]) -> (Vec<u64>, f64) {
        let mut counts = vec![0; bounds.len() + 1];
        let mut total = 0.0;
        for &(value, times) in values {
            counts[bounds.iter().take_while(|bound| value > **bound).count()] += times;
            total += value * times as f64;
        }
        (counts, total)
    }

    #[test]
    fn histogram_points_become_measurements_with_their_buckets_and_sum() {
        let bounds = [0.0, 5.0, 10.0, 25.0];
        // 9 and 15, as OpenTelemetry's SDK reports them.
        let counts = [0, 0, 1, 1, 0];
        let values = measurements(2, 24.0, &bounds, &counts, (Some(9.0), Some(15.0)));
        let (buckets, total) = bucketed(&values, &bounds);
        assert_eq!(buckets, counts);
        assert!((total - 24.0).abs() < 1e-9, "{values:?}");
        // The open last bucket takes what the others cannot.
        let counts = [0, 1, 0, 0, 2];
        let values = measurements(3, 1003.0, &bounds, &counts, (None, None));
        let (buckets, total) = bucketed(&values, &bounds);
        assert_eq!(buckets, counts);
        assert!((total - 1003.0).abs() < 1e-9, "{values:?}");
        // One measurement is its sum; counts the buckets leave out are at the mean.
        assert_eq!(measurements(1, 7.5, &bounds, &[], (None, None)), [(7.5, 1)]);
        let values = measurements(4, 8.0, &[], &[], (None, None));
        assert_eq!(values, [(2.0, 4)]);
    }

    /// One metric as a guest exports it.
    fn export(name: &str, data: wit::MetricData) -> wit::ResourceMetrics {
        wit::ResourceMetrics {
            resource: super::super::types::Resource {
                attributes: Vec::new(),
                schema_url: None,
            },
            scope_metrics: vec![wit::ScopeMetrics {
                scope: super::super::types::InstrumentationScope {
                    name: "test".into(),
                    version: None,
                    schema_url: None,
                    attributes: Vec::new(),
                },
                metrics: vec![wit::Metric {
                    name: name.into(),
                    description: String::new(),
                    unit: String::new(),
                    data,
                }],
            }],
        }
    }

    #[test]
    fn values_that_are_not_finite_and_oversized_histograms_are_refused_and_counted() {
        let instruments = GuestInstruments::default();
        let component = KeyValue::new("component", "test");
        let mut reported = Reported::default();
        let now = wit::Datetime {
            seconds: 0,
            nanoseconds: 0,
        };
        let sum = |value: f64| {
            wit::MetricData::F64Sum(wit::Sum {
                data_points: vec![wit::SumDataPoint {
                    attributes: Vec::new(),
                    value: wit::MetricNumber::F64(value),
                    exemplars: Vec::new(),
                }],
                start_time: now,
                time: now,
                temporality: wit::Temporality::Delta,
                is_monotonic: false,
            })
        };
        let mut dropped = 0;
        let mut record =
            |metrics| instruments.record(metrics, &component, &mut reported, &mut dropped);
        assert_eq!(record(export("level", sum(1.5))), Ok(()));
        assert_eq!(
            record(export("level", sum(f64::NAN))),
            Err(NOT_FINITE.to_owned())
        );
        assert_eq!(
            record(export("level", sum(f64::INFINITY))),
            Err(NOT_FINITE.to_owned())
        );
        let histogram = wit::MetricData::F64Histogram(wit::Histogram {
            data_points: vec![wit::HistogramDataPoint {
                attributes: Vec::new(),
                count: 1,
                bounds: Vec::new(),
                bucket_counts: vec![0; MAX_BUCKETS + 1],
                min: None,
                max: None,
                sum: wit::MetricNumber::F64(1.0),
                exemplars: Vec::new(),
            }],
            start_time: now,
            time: now,
            temporality: wit::Temporality::Cumulative,
        });
        let refused = record(export("sizes", histogram)).unwrap_err();
        assert!(refused.contains("buckets"), "{refused}");
        // Points that stand for many measurements: one export does a bounded amount of work.
        let point = |i: usize| wit::HistogramDataPoint {
            attributes: vec![attribute("i", &i.to_string())],
            count: MAX_MEASUREMENTS,
            bounds: Vec::new(),
            bucket_counts: vec![MAX_MEASUREMENTS],
            min: None,
            max: None,
            sum: wit::MetricNumber::F64(1.0),
            exemplars: Vec::new(),
        };
        let heavy = wit::MetricData::F64Histogram(wit::Histogram {
            data_points: (0..MAX_POINTS).map(point).collect(),
            start_time: now,
            time: now,
            temporality: wit::Temporality::Delta,
        });
        let refused = record(export("heavy", heavy)).unwrap_err();
        assert!(refused.contains("in all"), "{refused}");
        let recorded = MAX_EXPORT_MEASUREMENTS / MAX_MEASUREMENTS;
        assert_eq!(dropped, 3 + MAX_POINTS as u64 - recorded);
    }

    #[test]
    fn histogram_bounds_must_increase() {
        assert!(valid_bounds(&[0.0, 1.0, 5.0]));
        assert!(valid_bounds(&[]));
        assert!(!valid_bounds(&[1.0, 1.0]));
        assert!(!valid_bounds(&[0.0, f64::NAN]));
    }
}

//! The HTTP server's metrics: requests answered and their duration, by `component` and `status`.
//!
//! Each version keeps its instruments bound to each status it has answered with
//! ([`StatusMetrics`]), so that recording a request is two atomic updates rather than two lookups
//! of its attribute set in the SDK's shared map.

use std::sync::{LazyLock, OnceLock};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram};

/// The instruments, made from the global meter provider at first use (after tempo-otel has
/// installed it).
struct Instruments {
    /// `tempo.http.requests`: HTTP requests answered; Prometheus shows `tempo_http_requests_total`.
    requests: Counter<u64>,
    /// `tempo.http.request.duration`: seconds from a request's arrival to its response head.
    duration: Histogram<f64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| {
        let meter = opentelemetry::global::meter("tempo");
        Instruments {
            requests: meter
                .u64_counter("tempo.http.requests")
                .with_description("HTTP requests answered, by status")
                .build(),
            duration: meter
                .f64_histogram("tempo.http.request.duration")
                .with_unit("s")
                .with_description("Time from a request's arrival to its response head")
                .with_boundaries(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .build(),
        }
    });
    &INSTRUMENTS
}

/// The lowest and highest status a version keeps bound instruments for; a response outside
/// them (a guest may answer 100 to 999) is recorded unbound.
const BOUND_STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

/// One version's request metrics, bound per status at the first response with it.
pub(crate) struct StatusMetrics {
    by_status: Box<[OnceLock<Bound>]>,
}

/// The instruments bound to one `component` and `status`.
struct Bound {
    requests: BoundCounter<u64>,
    duration: BoundHistogram<f64>,
}

impl StatusMetrics {
    pub(crate) fn new() -> Self {
        let statuses = usize::from(BOUND_STATUSES.end() - BOUND_STATUSES.start()) + 1;
        Self {
            by_status: (0..statuses).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts a request `component` answered with `status`, `seconds` after it arrived.
    pub(crate) fn record(&self, component: &KeyValue, status: u16, seconds: f64) {
        match self.slot(status) {
            Some(slot) => {
                let bound = slot.get_or_init(|| {
                    let attributes = attributes(component, status);
                    Bound {
                        requests: instruments().requests.bind(&attributes),
                        duration: instruments().duration.bind(&attributes),
                    }
                });
                bound.requests.add(1);
                bound.duration.record(seconds);
            }
            None => record_unbound(component, status, seconds),
        }
    }

    /// Where the instruments bound to `status` are kept, if they are.
    fn slot(&self, status: u16) -> Option<&OnceLock<Bound>> {
        status
            .checked_sub(*BOUND_STATUSES.start())
            .and_then(|index| self.by_status.get(usize::from(index)))
    }
}

/// Counts a request without a version's bound instruments: one with a status outside
/// [`BOUND_STATUSES`], or one refused before a prepared version took it.
pub(crate) fn record_unbound(component: &KeyValue, status: u16, seconds: f64) {
    let attributes = attributes(component, status);
    instruments().requests.add(1, &attributes);
    instruments().duration.record(seconds, &attributes);
}

fn attributes(component: &KeyValue, status: u16) -> [KeyValue; 2] {
    [
        component.clone(),
        KeyValue::new("status", i64::from(status)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_status_has_a_slot_of_its_own_and_others_none() {
        let metrics = StatusMetrics::new();
        let slot = |status| metrics.slot(status).map(std::ptr::from_ref);
        for status in BOUND_STATUSES {
            assert!(slot(status).is_some(), "{status}");
        }
        assert_ne!(slot(100), slot(101));
        assert_ne!(slot(200), slot(599));
        for status in [0, 99, 600, 999, u16::MAX] {
            assert!(slot(status).is_none(), "{status}");
        }
    }
}

//! How every trigger ends a guest's unit of work (a request, a message), so that the HTTP and
//! message triggers count, explain and log alike: a trap is counted, a failure is explained by the
//! limit it hit, and logged once, with the component and the request id.

use std::fmt;

use opentelemetry::KeyValue;
use wasmtime::Trap;

use crate::limits::explain_failure;
use crate::metrics::metrics;
use crate::request_id::RequestId;
use crate::state::State;
use crate::version::Version;

/// Ends a guest's run on the instance whose state is `state`: a trap is counted in `tempo.traps`
/// (a deadline's stop is counted as the deadline instead, by [`crate::limits::within_deadline`]),
/// and a failure is explained by the limit it hit, if any.
pub fn finish_run<T>(
    outcome: anyhow::Result<T>,
    state: &State,
    component: &KeyValue,
) -> anyhow::Result<T> {
    if let Err(err) = &outcome
        && err.downcast_ref::<Trap>().is_some()
    {
        metrics().traps.add(1, std::slice::from_ref(component));
    }
    outcome.map_err(|err| explain_failure(err, state, component))
}

/// Logs a failed unit of work once: `WHAT failed: ROOT CAUSE` at error level with the component and
/// the request id (in the current span), and the whole chain at debug level.
pub fn log_failure(
    version: &Version,
    request_id: &RequestId,
    what: &dyn fmt::Display,
    err: &anyhow::Error,
) {
    tracing::error!(
        component = version.name(),
        request_id = request_id.as_str(),
        "{what} failed: {}",
        err.root_cause()
    );
    tracing::debug!(component = version.name(), "{err:?}");
}

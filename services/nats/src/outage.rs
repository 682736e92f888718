//! JetStream calls that fail because the cluster cannot answer them: no leader for the stream, a
//! leader being elected after a node was lost, a request nobody answered in time. While the
//! connection is up (a lost connection is logged and counted by its own event), each is counted
//! in `tempo_nats_events_total{event="jetstream_unavailable"}`, and an outage (such failures,
//! until a call succeeds two seconds after the last of them) is logged once when it starts and
//! once when it ends.
//!
//! Which errors count is an allow-list of async-nats error kinds and JetStream error codes, read
//! down each error's chain of sources. Anything else (a key that is not valid, a payload over the
//! server's limit, a wrong revision) is the caller's own failure, not an outage.

use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{
    CreateStreamErrorKind, GetStreamErrorKind, PublishErrorKind,
    RequestErrorKind as JsRequestErrorKind,
};
use async_nats::jetstream::kv::{EntryErrorKind, UpdateErrorKind};
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{self, ErrorCode};
use opentelemetry::KeyValue;

/// Whether the connection is down (set by the connection's events): failures then are the
/// disconnect's, already logged.
pub(crate) static DISCONNECTED: AtomicBool = AtomicBool::new(false);

/// Whether an outage is open (a fast check for [`call_succeeded`]).
static OPEN: AtomicBool = AtomicBool::new(false);

/// The open outage, if any.
static OUTAGE: Mutex<Option<Outage>> = Mutex::new(None);

/// How long after its last failed call an outage ends at the next call that succeeds: calls that
/// the cluster can still answer (reads from a replica) do not end it while others fail.
const QUIET: Duration = Duration::from_secs(2);

/// JetStream calls failing for want of an answer.
struct Outage {
    started: Instant,
    last_failure: Instant,
    failures: u64,
}

/// JetStream error codes that say the cluster cannot serve the call now.
const UNAVAILABLE_CODES: [ErrorCode; 4] = [
    ErrorCode::CLUSTER_NOT_AVAILABLE,
    ErrorCode::CLUSTER_NOT_LEADER,
    ErrorCode::CLUSTER_NOT_ACTIVE,
    ErrorCode::CLUSTER_NOT_ASSIGNED,
];

/// Whether `err`, or an error it was caused by, says that JetStream could not answer.
pub fn jetstream_unavailable(err: &(dyn Error + 'static)) -> bool {
    any_in_chain(err, unavailable_here)
}

/// Whether `test` holds for `err` or for any error down its chain of sources.
fn any_in_chain<'a>(
    err: &'a (dyn Error + 'static),
    test: fn(&(dyn Error + 'static)) -> bool,
) -> bool {
    std::iter::successors(Some(err), |&err: &&'a (dyn Error + 'static)| err.source()).any(test)
}

fn unavailable_here(err: &(dyn Error + 'static)) -> bool {
    if let Some(err) = err.downcast_ref::<jetstream::Error>() {
        return UNAVAILABLE_CODES.contains(&err.error_code());
    }
    if let Some(err) = err.downcast_ref::<jetstream::context::RequestError>() {
        return matches!(
            err.kind(),
            JsRequestErrorKind::TimedOut | JsRequestErrorKind::NoResponders
        );
    }
    if let Some(err) = err.downcast_ref::<async_nats::RequestError>() {
        return matches!(
            err.kind(),
            async_nats::RequestErrorKind::TimedOut | async_nats::RequestErrorKind::NoResponders
        );
    }
    if let Some(err) = err.downcast_ref::<jetstream::context::PublishError>() {
        // A publish that no stream answered: in a cluster, one whose leader is not known yet.
        return matches!(
            err.kind(),
            PublishErrorKind::TimedOut | PublishErrorKind::StreamNotFound
        );
    }
    if let Some(err) = err.downcast_ref::<jetstream::context::CreateStreamError>() {
        return match err.kind() {
            CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => true,
            CreateStreamErrorKind::JetStream(err) => UNAVAILABLE_CODES.contains(&err.error_code()),
            _ => false,
        };
    }
    if let Some(err) = err.downcast_ref::<jetstream::context::GetStreamError>() {
        return matches!(err.kind(), GetStreamErrorKind::JetStream(err)
            if UNAVAILABLE_CODES.contains(&err.error_code()));
    }
    if let Some(err) = err.downcast_ref::<jetstream::stream::ConsumerError>() {
        return match err.kind() {
            ConsumerErrorKind::TimedOut => true,
            ConsumerErrorKind::JetStream(err) => UNAVAILABLE_CODES.contains(&err.error_code()),
            _ => false,
        };
    }
    if let Some(err) = err.downcast_ref::<jetstream::kv::EntryError>() {
        return err.kind() == EntryErrorKind::TimedOut;
    }
    if let Some(err) = err.downcast_ref::<jetstream::kv::UpdateError>() {
        return err.kind() == UpdateErrorKind::TimedOut;
    }
    false
}

/// Whether `err`, or an error it was caused by, says that the stream asked for does not exist
/// (a KV bucket or an object store is a stream too).
pub fn stream_missing(err: &(dyn Error + 'static)) -> bool {
    any_in_chain(err, |err| {
        err.downcast_ref::<jetstream::context::GetStreamError>()
            .is_some_and(|err| {
                matches!(err.kind(), GetStreamErrorKind::JetStream(err)
                    if err.error_code() == ErrorCode::STREAM_NOT_FOUND)
            })
    })
}

/// How long [`patiently`] goes on.
const PATIENCE: Duration = Duration::from_secs(60);

/// How long [`patiently`] waits between attempts.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Runs `attempt` until it succeeds, fails otherwise than for want of an answer from JetStream,
/// or a minute has passed: for what tempo binds or creates at start, on a cluster that may be
/// starting too, or electing leaders. A failure for want of an answer is noted as
/// [`call_failed`] notes it (`what` names the call).
pub async fn patiently<T, F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => {
                call_succeeded();
                return Ok(value);
            }
            Err(err) if started.elapsed() < PATIENCE && jetstream_unavailable(err.as_ref()) => {
                call_failed(what, err.as_ref());
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// What a guest's error adds when JetStream could not answer its call.
pub const UNAVAILABLE_HINT: &str =
    " (JetStream could not answer: the cluster may be electing a leader; try again)";

/// Notes a failed JetStream call (`what`, e.g. "a KV call"): when the cluster could not answer
/// it and the connection is up, it is counted, and logged if it starts an outage. Returns what
/// to add to the guest's error: [`UNAVAILABLE_HINT`] when the cluster could not answer.
pub fn call_failed(what: &str, err: &(dyn Error + 'static)) -> &'static str {
    if !jetstream_unavailable(err) {
        return "";
    }
    if DISCONNECTED.load(Ordering::Relaxed) {
        return UNAVAILABLE_HINT;
    }
    crate::events().add(1, &[KeyValue::new("event", "jetstream_unavailable")]);
    let now = Instant::now();
    let mut outage = OUTAGE.lock().unwrap_or_else(PoisonError::into_inner);
    match outage.as_mut() {
        Some(open) => {
            open.last_failure = now;
            open.failures += 1;
        }
        None => {
            *outage = Some(Outage {
                started: now,
                last_failure: now,
                failures: 1,
            });
            OPEN.store(true, Ordering::Relaxed);
            tracing::warn!(
                "JetStream could not answer {what} ({err}): the cluster may be electing a \
                 leader after losing a node; such calls fail until it has one (counted in \
                 tempo_nats_events_total{{event=\"jetstream_unavailable\"}})"
            );
        }
    }
    UNAVAILABLE_HINT
}

/// Notes a JetStream call that succeeded: the end of an outage whose last failure is
/// [`QUIET`] old, logged once.
pub fn call_succeeded() {
    if !OPEN.load(Ordering::Relaxed) {
        return;
    }
    let mut outage = OUTAGE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(open) = outage.as_ref()
        && open.last_failure.elapsed() >= QUIET
    {
        tracing::info!(
            "JetStream answers again: {} call(s) failed in {:.1?}",
            open.failures,
            open.last_failure.duration_since(open.started)
        );
        *outage = None;
        OPEN.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::context::{
        GetStreamError, KeyValueError, KeyValueErrorKind, PublishError, RequestError,
    };
    use async_nats::jetstream::kv::{PutError, PutErrorKind};

    use super::*;

    #[test]
    fn only_allow_listed_kinds_are_an_outage_however_deep_in_the_chain() {
        // What a KV put says when the bucket's stream has no leader: a publish nobody answered.
        let no_leader = PutError::with_source(
            PutErrorKind::Publish,
            PublishError::new(PublishErrorKind::StreamNotFound),
        );
        assert!(jetstream_unavailable(&no_leader));
        let timed_out = anyhow::Error::new(RequestError::new(JsRequestErrorKind::TimedOut))
            .context("cannot bind a stream");
        assert!(jetstream_unavailable(timed_out.as_ref()));
        // The caller's own failures are not.
        let too_large = PutError::with_source(
            PutErrorKind::Publish,
            PublishError::new(PublishErrorKind::MaxPayloadExceeded),
        );
        assert!(!jetstream_unavailable(&too_large));
        assert!(!jetstream_unavailable(&PutError::new(
            PutErrorKind::InvalidKey
        )));
        assert!(!jetstream_unavailable(&std::io::Error::other("timed out")));
        assert_eq!(call_failed("a test", &too_large), "");
        assert_eq!(call_failed("a test", &no_leader), UNAVAILABLE_HINT);
    }

    /// A JetStream API error as the server sends it.
    fn api_error(code: u64) -> jetstream::Error {
        serde_json::from_value(serde_json::json!({
            "code": 503, "err_code": code, "description": "from the test"
        }))
        .unwrap()
    }

    #[test]
    fn a_missing_stream_is_told_from_a_lookup_that_failed() {
        let missing = KeyValueError::with_source(
            KeyValueErrorKind::GetBucket,
            GetStreamError::new(GetStreamErrorKind::JetStream(api_error(10059))),
        );
        assert!(stream_missing(&missing));
        assert!(!jetstream_unavailable(&missing));
        let no_leader = KeyValueError::with_source(
            KeyValueErrorKind::GetBucket,
            GetStreamError::new(GetStreamErrorKind::JetStream(api_error(10008))),
        );
        assert!(!stream_missing(&no_leader));
        assert!(jetstream_unavailable(&no_leader));
        let timed_out = KeyValueError::with_source(
            KeyValueErrorKind::GetBucket,
            GetStreamError::with_source(
                GetStreamErrorKind::Request,
                RequestError::new(JsRequestErrorKind::TimedOut),
            ),
        );
        assert!(!stream_missing(&timed_out));
        assert!(jetstream_unavailable(&timed_out));
    }

    #[tokio::test]
    async fn patiently_tries_again_only_what_jetstream_could_not_answer() {
        let mut calls = 0;
        let value = patiently("a test", || {
            calls += 1;
            let call = calls;
            async move {
                if call < 3 {
                    Err(RequestError::new(JsRequestErrorKind::TimedOut).into())
                } else {
                    Ok(call)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
        let mut calls = 0;
        let err = patiently("a test", || {
            calls += 1;
            async { Err::<(), _>(anyhow::anyhow!("refused")) }
        })
        .await
        .unwrap_err();
        assert_eq!((calls, err.to_string().as_str()), (1, "refused"));
    }
}

//! Requests to a WASI 0.3 handler (`wasi:http/handler@0.3.0`), through wasmtime-wasi-http's
//! [`ProxyHandler`]: a pool of instances of one version, each taking up to
//! [`Reuse::requests`] requests in its life and [`Reuse::concurrent`] at once, dropped once idle
//! for [`IDLE_TIMEOUT`], and never given another request once it has trapped (its store fails,
//! and with it the worker).
//!
//! Each version has a pool of its own, so a request stays on the version that was current when it
//! arrived, also across a `dev` swap; the old version's instances finish what they have and go.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Request, Response};
use tempo_runtime_core::admission::Slot;
use tempo_runtime_core::limits::{DeadlineExceeded, within_deadline};
use tempo_runtime_core::metrics::metrics;
use tempo_runtime_core::outcome::{finish_run, log_failure};
use tempo_runtime_core::wasmtime::component::GuestTaskId;
use tempo_runtime_core::wasmtime::{Store, StoreContextMut};
use tempo_runtime_core::{RequestId, State, Version, Work, wasmtime};
use wasmtime_wasi_http::handler::{
    self, HandlerState, Instance, InstantiationError, ProxyHandler, ProxyPre, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;

use crate::bodies::{CheckedBody, GuardedBody};
use crate::handler::Described;
use crate::instance::http_view;

/// How long an instance with nothing to do is kept for the next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long past a request's deadline its instance is stopped, if the guest has not answered:
/// the request is answered 504 at the deadline by its own timer, which must come first.
const STOP_MARGIN: Duration = Duration::from_millis(100);

/// How WASI 0.3 instances are reused across requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reuse {
    /// How many requests one instance handles in its life; `1` gives each request a fresh one.
    pub requests: usize,
    /// How many requests one instance handles at once.
    pub concurrent: usize,
}

/// What a version keeps for its WASI 0.3 requests: the service's pre-instance, and its pool of
/// instances, made at its first request.
#[derive(Clone)]
pub(crate) struct P3Handler {
    pre: ServicePre<State>,
    reuse: Reuse,
    pool: Arc<OnceLock<ProxyHandler<Instances>>>,
}

impl P3Handler {
    pub(crate) fn new(pre: ServicePre<State>, reuse: Reuse) -> Self {
        Self {
            pre,
            reuse,
            pool: Arc::default(),
        }
    }
}

/// `request` with the scheme tempo received it by and its authority in its target, where a WASI
/// 0.3 guest reads them: neither is the client's to claim (an HTTP/2 client names its own
/// `:scheme`). The authority was checked against `Host` before.
pub(crate) fn with_origin<B>(request: Request<B>, tls: bool) -> anyhow::Result<Request<B>> {
    let (mut parts, body) = request.into_parts();
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.scheme = Some(if tls {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    });
    if uri.authority.is_none() {
        uri.authority = parts
            .headers
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| host.parse().ok());
    }
    if uri.path_and_query.is_none() {
        uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    parts.uri = http::Uri::from_parts(uri)?;
    Ok(Request::from_parts(parts, body))
}

/// Handles `request` on `version`'s pool, holding `slot` until the response body has ended;
/// failures are logged once, as for a WASI 0.2 handler (a guest's own failure by the instance's
/// worker, which knows why it stopped).
pub(crate) async fn invoke(
    version: &Arc<Version>,
    handler: &P3Handler,
    request: Request<CheckedBody>,
    request_id: RequestId,
    slot: Slot,
    what: Described,
) -> anyhow::Result<Response<HyperOutgoingBody>> {
    let pool = handler.pool.get_or_init(|| {
        ProxyHandler::new(Instances {
            version: Arc::downgrade(version),
            pre: handler.pre.clone(),
            reuse: handler.reuse,
        })
    });
    let (stopped, progress) = (Arc::new(AtomicBool::new(false)), Arc::<Progress>::default());
    let arrival = Arrival {
        request_id: request_id.clone(),
        what: what.clone(),
        span: tracing::Span::current(),
        stopped: stopped.clone(),
        progress: Arc::clone(&progress),
    };
    let request = request.map(|body| body.boxed_unsync());
    // The request's own clock answers 504 at the deadline, whatever its instance is doing.
    let outcome = within_deadline(version.limits().deadline, pool.handle(arrival, request)).await;
    match outcome {
        Ok(response) => Ok(response.map(|body| {
            progress.responded.store(true, Ordering::Release);
            HoldUntilEnd {
                body: GuardedBody::new(body, stopped),
                held: Some(slot),
                progress,
            }
            .boxed_unsync()
        })),
        Err(err) => {
            let failure = explain(err, version.limits().deadline);
            if failure.is::<wasmtime::Trap>() || failure.is::<handler::TrapOrPanicError>() {
                // The instance failed: its worker logs why, once, with the limit it hit.
                tracing::debug!("{what} failed: {failure:#}");
            } else {
                if failure.is::<DeadlineExceeded>() {
                    metrics().limit_hit(version.component_attribute(), "deadline", 1);
                }
                log_failure(version, &request_id, &what, &failure);
            }
            Err(failure)
        }
    }
}

/// Says what an error from the pool means where the pool's own words say little.
fn explain(err: anyhow::Error, deadline: Option<Duration>) -> anyhow::Error {
    if let Some(code) = err.downcast_ref::<ErrorCode>() {
        return anyhow!("the component answered with the error {code:?}");
    }
    if let Some(failed) = err.downcast_ref::<InstantiationError<Arrival>>() {
        return anyhow!("cannot start an instance: {:#}", failed.error);
    }
    if let (true, Some(deadline)) = (err.is::<handler::ExpirationError>(), deadline) {
        return DeadlineExceeded(deadline).into();
    }
    err
}

/// What a request brings to the instance that takes it.
struct Arrival {
    request_id: RequestId,
    /// `METHOD URI`, for the log.
    what: Described,
    /// The request's span: the instance's work for it is traced under it.
    span: tracing::Span,
    /// Set if the instance stops with the request's response body unfinished, so that the body
    /// ends with an error, not as if it were whole (wasmtime-wasi-http ends it cleanly).
    stopped: Arc<AtomicBool>,
    /// How far its response has gone.
    progress: Arc<Progress>,
}

/// How far a request's response has gone, as its instance's worker reads it if the instance
/// fails.
#[derive(Default)]
struct Progress {
    /// Set once its response has gone out: a failure after that is the instance's to log.
    responded: AtomicBool,
    /// Set once its response body has ended whole: the request succeeded, and a later failure
    /// of its instance is not its own.
    ended: AtomicBool,
}

/// A version's instances: how to make one, and how much each takes.
struct Instances {
    /// Weak, since the version holds the pool: instances of a version that has gone are not made.
    version: Weak<Version>,
    pre: ServicePre<State>,
    reuse: Reuse,
}

impl HandlerState for Instances {
    type StoreData = State;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<State, Expiration, Worker>> {
        let version = self
            .version
            .upgrade()
            .ok_or_else(|| wasmtime::format_err!("the version has been replaced"))?;
        // The request id and span are the first request's; `on_request_start` sets them.
        let mut store = version.new_store(RequestId::generate());
        if self.reuse.concurrent > 1 {
            Version::follow_tasks(&mut store);
        }
        let proxy = ProxyPre::P3(self.pre.clone())
            .instantiate_async(&mut store)
            .await?;
        let deadline = version.limits().deadline;
        Ok(Instance {
            store,
            proxy,
            view: http_view,
            expiration: Expiration {
                busy_timeout: deadline.map(|d| d + STOP_MARGIN),
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
            },
            state: Worker {
                version,
                reuse: self.reuse,
                taken: Mutex::default(),
            },
        })
    }
}

/// One instance's worker: its version, its reuse, and the requests it began (the last one's id
/// its lines carry; those unfinished are named when the instance fails).
struct Worker {
    version: Arc<Version>,
    reuse: Reuse,
    taken: Mutex<Vec<Taken>>,
}

/// A request an instance began (at most `reuse.requests` of them).
struct Taken {
    request_id: RequestId,
    what: Described,
    started: Instant,
    stopped: Arc<AtomicBool>,
    progress: Arc<Progress>,
}

impl WorkerState for Worker {
    type StoreData = State;
    type RequestData = Arrival;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse.requests {
            ShouldAccept::Never
        } else if concurrent >= self.reuse.concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, State>,
        arrival: Arrival,
        task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let deadline = self.version.limits().deadline;
        let stop_at = deadline.map(|d| Instant::now() + d + STOP_MARGIN);
        arrival.span.in_scope(|| {
            let work = Work::in_current_span(arrival.request_id.clone());
            self.version.begin_request(&mut store, task, work, stop_at);
        });
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        taken.push(Taken {
            request_id: arrival.request_id,
            what: arrival.what,
            started: Instant::now(),
            stopped: arrival.stopped,
            progress: arrival.progress,
        });
        match deadline {
            Some(deadline) => Box::pin(tokio::time::sleep(deadline + STOP_MARGIN)),
            None => Box::pin(std::future::pending()),
        }
    }

    /// Marks the bodies of its requests as cut off, then logs and counts the instance's failure
    /// once for each of its requests that had not ended: a trap, or a deadline passed (an
    /// interrupt, or the worker's expiration). A request whose response had ended whole
    /// succeeded, whatever its instance did later; a deadline passed before a request's
    /// response was answered 504 and logged by the request's own timer. Anything else ends the
    /// worker, not the guest: an idle instance dropped at shutdown, say.
    fn drop(&self, store: Store<State>, result: wasmtime::Result<()>) {
        let Err(err) = result else {
            return;
        };
        let taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        // Before the store goes, and with it what the bodies still read from.
        for request in taken.iter() {
            request.stopped.store(true, Ordering::Release);
        }
        let unfinished: Vec<&Taken> = taken
            .iter()
            .filter(|request| !request.progress.ended.load(Ordering::Acquire))
            .collect();
        let component = self.version.component_attribute();
        let trap = err.downcast_ref::<wasmtime::Trap>().copied();
        let deadline = self.version.limits().deadline;
        if let (Some(deadline), true) = (
            deadline,
            trap == Some(wasmtime::Trap::Interrupt) || err.is::<handler::ExpirationError>(),
        ) {
            for request in &unfinished {
                let own = request.started.elapsed() >= deadline;
                let failure = if own {
                    DeadlineExceeded(deadline).into()
                } else {
                    anyhow!("its instance was stopped at the deadline of another of its requests")
                };
                if request.progress.responded.load(Ordering::Acquire) || !own {
                    metrics().limit_hit(component, "deadline", 1);
                    log_failure(&self.version, &request.request_id, &request.what, &failure);
                }
            }
            if unfinished.is_empty() {
                metrics().limit_hit(component, "deadline", 1);
                tracing::warn!(
                    component = self.version.name(),
                    "an instance was stopped at its deadline after its requests had ended: a \
                     task of its own still ran"
                );
            }
            return;
        }
        if trap.is_none() {
            tracing::debug!("an instance's worker ended: {err:#}");
            return;
        }
        let err = finish_run(Err::<(), _>(err.into()), store.data(), component)
            .err()
            .unwrap_or_else(|| anyhow!("the instance failed"));
        for request in &unfinished {
            log_failure(&self.version, &request.request_id, &request.what, &err);
        }
        if unfinished.is_empty() {
            tracing::warn!(
                component = self.version.name(),
                "an instance failed after its requests had ended: {}",
                err.root_cause()
            );
        }
    }
}

/// When an instance is stopped: busy past a request's deadline (and its margin), or idle for
/// [`IDLE_TIMEOUT`]. Polled outside the instance's event loop, so that a guest that never yields
/// it control is stopped too.
struct Expiration {
    busy_timeout: Option<Duration>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let timeout = match status {
            WorkerStatus::Idle => Some(IDLE_TIMEOUT),
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.busy_timeout,
        };
        let Some(deadline) = timeout.and_then(|timeout| start.checked_add(timeout)) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

/// A response body that holds `held` (the request's admission slot) until it has ended, failed
/// or been dropped, and marks its request's `progress` ended when it has ended whole.
struct HoldUntilEnd<B, T> {
    body: B,
    held: Option<T>,
    progress: Arc<Progress>,
}

impl<B, T> Body for HoldUntilEnd<B, T>
where
    B: Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Unpin,
    T: Unpin,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.progress.ended.store(true, Ordering::Release);
        }
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.held.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

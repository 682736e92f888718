//! One request: a fresh instance of the current version, the guest's `handle` called, its
//! response streamed back.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tempo_runtime_core::admission::{Busy, Slot};
use tempo_runtime_core::limits::{DeadlineExceeded, within_deadline};
use tempo_runtime_core::metrics::metrics;
use tempo_runtime_core::outcome::{finish_run, log_failure};
use tempo_runtime_core::{LiveComponent, RequestId, Slots, State, Version};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::HttpService;
use crate::bodies::{CheckedBody, GuardedBody};
use crate::connection::Peer;
use crate::instance::http_view;
use crate::metrics::{StatusMetrics, record_unbound};

/// What a version keeps for its requests, made when it is prepared ([`crate::HttpService`]'s
/// `Trigger::prepare`) so that no request looks it up again: its handler, and its metrics.
/// Opaque outside this crate.
pub struct Prepared {
    pub(crate) handler: Handler,
    pub(crate) metrics: StatusMetrics,
}

/// The handler a version exports, told apart once when the version is prepared.
#[derive(Clone)]
pub(crate) enum Handler {
    /// `wasi:http/incoming-handler@0.2`: a fresh instance per request.
    P2(ProxyPre<State>),
    /// `wasi:http/handler@0.3`: instances from the version's pool, reused up to its limit.
    P3(crate::handler_p3::P3Handler),
}

/// What handling a request needs: the component, the server's share of instances and its limits.
pub(crate) struct Handling {
    pub(crate) live: LiveComponent,
    pub(crate) slots: Slots,
    pub(crate) max_body_bytes: u64,
    pub(crate) stall_timeout: Duration,
}

/// Handles `request` on the version that is current when it arrives, in a `request` span
/// carrying its id. A guest failure is logged and answered with a 500 (a 504 past the deadline);
/// it never takes the server down. A body announced over `max_body_bytes` gets a 413; a request
/// that finds every instance slot taken for the queue timeout gets a 503 with `Retry-After`.
/// The response carries the id in `x-request-id`; the request is counted by status.
pub(crate) async fn handle(
    handling: &Handling,
    connection: &Peer,
    mut request: Request<Incoming>,
) -> Response<HyperOutgoingBody> {
    let Handling {
        live,
        slots,
        max_body_bytes,
        stall_timeout,
    } = handling;
    let started = Instant::now();
    let version = live.current();
    let prepared = version.prepared::<HttpService>();
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate);
    let method = request.method().clone();
    let uri = request.uri().clone();
    let span = tracing::info_span!(
        "request",
        component = version.name(),
        request_id = request_id.as_str(),
        http.request.method = %method,
        url.path = uri.path(),
        http.response.status_code = tracing::field::Empty,
    );
    crate::trace_context::adopt_client_parent(&span, request.headers());
    // Who the client proved to be is tempo's to say, on every listener: a client's own header
    // is dropped.
    let headers = request.headers_mut();
    headers.remove(&CLIENT_CERT_SUBJECT);
    if let Some(subject) = &connection.client_subject {
        headers.insert(CLIENT_CERT_SUBJECT, subject.clone());
    }
    // A body announced larger than the limit is refused before any guest runs; one that grows
    // past it is cut off with an error the guest reads.
    let announced = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let count_limit =
        |limit: &'static str| metrics().limit_hit(version.component_attribute(), limit, 1);
    let outcome = match (host_refusal(&request), announced) {
        (Some(refusal), _) => {
            span.in_scope(|| tracing::debug!("{method} {uri} refused: {}", refusal.trim_end()));
            Ok(plain_response(StatusCode::BAD_REQUEST, refusal))
        }
        (None, Some(length)) if length > *max_body_bytes => {
            count_limit("body");
            Ok(plain_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 Payload Too Large: the request body is over the server's limit\n",
            ))
        }
        (None, _) => match slots.admit().await {
            Ok(slot) => {
                let request =
                    request.map(|body| CheckedBody::new(body, *max_body_bytes, *stall_timeout));
                let what = Described { method, uri };
                invoke(
                    &version,
                    prepared.map(|prepared| &prepared.handler),
                    request,
                    connection.tls,
                    request_id.clone(),
                    slot,
                    what,
                )
                .instrument(span.clone())
                .await
            }
            Err(busy) => {
                count_limit("instances");
                span.in_scope(|| tracing::debug!("{method} {uri} turned away: {busy}"));
                Ok(turned_away(busy))
            }
        },
    };
    // A failure was logged where it happened (see `invoke`).
    let mut response = match outcome {
        Ok(response) => response,
        Err(err) => {
            if err.is::<DeadlineExceeded>() {
                plain_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    "504 Gateway Timeout: the component did not answer within its deadline\n",
                )
            } else {
                plain_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error: the component failed; see the server log\n",
                )
            }
        }
    };
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    // The header is tempo's to say: a guest's own is dropped.
    response.headers_mut().remove(&STALE);
    if let Some(note) = live.stale()
        && let Ok(value) = HeaderValue::from_str(&note)
    {
        response.headers_mut().insert(STALE, value);
    }
    let (component, seconds) = (
        version.component_attribute(),
        started.elapsed().as_secs_f64(),
    );
    match prepared {
        Some(prepared) => prepared.metrics.record(component, status, seconds),
        None => record_unbound(component, status, seconds),
    }
    response
}

/// Names the request in the guest's log lines and the host's span: taken from the client when it
/// sends a usable one, generated otherwise, and always sent back.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The subject (RFC 4514) of the certificate a client proved it holds, with mutual TLS; tempo
/// removes the header from every request and sets it on those from verified clients.
pub const CLIENT_CERT_SUBJECT_HEADER: &str = "x-client-cert-subject";

/// Set on every response while the newest build could not replace the version serving it; the
/// value says why.
pub const STALE_HEADER: &str = "x-tempo-stale";

// The headers above as names made once, not parsed again on every request.
const REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
const CLIENT_CERT_SUBJECT: HeaderName = HeaderName::from_static(CLIENT_CERT_SUBJECT_HEADER);
const STALE: HeaderName = HeaderName::from_static(STALE_HEADER);

/// A request as the log names it, `METHOD URI`: written out only when a line is.
#[derive(Clone, Debug)]
pub(crate) struct Described {
    method: http::Method,
    uri: http::Uri,
}

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.uri)
    }
}

/// Runs the guest for `request` (described as `what` in the log, received over TLS if `tls`) on
/// its own task, holding `slot` until the instance is gone, and returns its response once it has
/// one. Every failure is logged here, once: a guest failure by the guest's task, also when it
/// comes after the response has gone out (the client then sees the body cut off), and a response
/// that never came here.
async fn invoke(
    version: &Arc<Version>,
    handler: Option<&Handler>,
    request: Request<CheckedBody>,
    tls: bool,
    request_id: RequestId,
    slot: Slot,
    what: Described,
) -> anyhow::Result<Response<HyperOutgoingBody>> {
    let handler = handler.context("this version was not prepared for wasi:http")?;
    let proxy = match handler {
        Handler::P2(proxy) => proxy,
        Handler::P3(p3) => {
            let request = match crate::handler_p3::with_origin(request, tls) {
                Ok(request) => request,
                Err(err) => {
                    let err =
                        err.context("the request's target cannot carry its scheme and authority");
                    log_failure(version, &request_id, &what, &err);
                    return Err(err);
                }
            };
            // Boxed: its future is several kilobytes, which every WASI 0.2 request would otherwise
            // carry (and copy) in its own.
            let p3_invoke = crate::handler_p3::invoke(version, p3, request, request_id, slot, what);
            return Box::pin(p3_invoke).await;
        }
    };
    let Started {
        guest,
        response,
        stopped,
    } = start_guest(version, proxy, request, tls, &request_id, slot, &what)?;
    let failure = match response.await {
        Ok(Ok(response)) => {
            return Ok(response.map(|body| GuardedBody::new(body, stopped).boxed_unsync()));
        }
        Ok(Err(code)) => anyhow!("the component answered with the error {code:?}"),
        Err(_) => match guest.await {
            // Logged by the guest's task.
            Ok(Err(err)) => return Err(err),
            Ok(Ok(())) => anyhow!("the component returned without setting a response"),
            Err(join) => anyhow!("the component's task failed: {join}"),
        },
    };
    log_failure(version, &request_id, &what, &failure);
    Err(failure)
}

/// A WASI 0.2 guest started on its own task: the task, its response once it sets one, and
/// whether it was stopped before it finished.
struct Started {
    guest: JoinHandle<anyhow::Result<()>>,
    response: oneshot::Receiver<Result<Response<HyperOutgoingBody>, ErrorCode>>,
    stopped: Arc<AtomicBool>,
}

/// Starts the guest's `handle` for `request` on a fresh instance of `version` (`proxy`, its
/// pre-instantiated WASI 0.2 handler), on its own task, in the current span. Not `async`: the
/// guest's future (kilobytes) is built straight into its task instead of passing through the
/// request's own future.
fn start_guest(
    version: &Arc<Version>,
    proxy: &ProxyPre<State>,
    request: Request<CheckedBody>,
    tls: bool,
    request_id: &RequestId,
    slot: Slot,
    what: &Described,
) -> anyhow::Result<Started> {
    let proxy = proxy.clone();
    let mut store = version.new_store(request_id.clone());
    let (sender, response) = oneshot::channel();
    let scheme = if tls { Scheme::Https } else { Scheme::Http };
    let request = http_view(store.data_mut()).new_incoming_request(scheme, request)?;
    let outparam = http_view(store.data_mut()).new_response_outparam(sender)?;

    // The guest runs on its own task, in the request's span: it keeps writing the body after it
    // has handed over the response, and it must finish even if the client goes away. Its failure
    // is counted and logged there, since it may come after the response has gone.
    // Past its deadline the guest is stopped and its store dropped, which ends its response.
    let component = version.component_attribute().clone();
    let deadline = version.limits().deadline;
    let stopped = Arc::new(AtomicBool::new(false));
    let stopped_guest = stopped.clone();
    let (task_version, task_request_id, task_what) =
        (version.clone(), request_id.clone(), what.clone());
    let guest = tokio::spawn(
        async move {
            let outcome = within_deadline(deadline, async {
                let instance = proxy.instantiate_async(&mut store).await?;
                instance
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            })
            .await;
            // Set before the store (and with it the body's sender) goes.
            stopped_guest.store(outcome.is_err(), Ordering::Release);
            let outcome = finish_run(outcome, store.data(), &component);
            // The slot is free once the instance is gone.
            drop(store);
            drop(slot);
            if let Err(err) = &outcome {
                log_failure(&task_version, &task_request_id, &task_what, err);
            }
            outcome
        }
        .in_current_span(),
    );
    Ok(Started {
        guest,
        response,
        stopped,
    })
}

/// Why a request's authority is refused with a 400, if it is: RFC 9112 asks for exactly one
/// `Host` header (asked of HTTP/1.0 too, here: a guest is always given an authority), holding a
/// valid host and port, the same as the target's authority when the target has one.
fn host_refusal(request: &Request<Incoming>) -> Option<&'static str> {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Some("400 Bad Request: a request has exactly one Host header\n");
    }
    let authority = request.uri().authority();
    match (host, authority) {
        (None, None) => Some("400 Bad Request: the request has no Host header\n"),
        (Some(host), authority) => {
            let parsed = host
                .to_str()
                .ok()
                .and_then(|host| host.parse::<http::uri::Authority>().ok());
            match parsed {
                None => Some("400 Bad Request: the Host header is not a host and port\n"),
                Some(host) if authority.is_some_and(|authority| *authority != host) => {
                    Some("400 Bad Request: the Host header differs from the request target\n")
                }
                Some(_) => None,
            }
        }
        (None, Some(_)) => None,
    }
}

/// The 503 of a request that found no instance. The first one is logged as a warning; a flood of
/// them would flood the log too, so the rest are only counted.
fn turned_away(busy: Busy) -> Response<HyperOutgoingBody> {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "turning requests away with 503: {busy} (`max-instances`, `queue-timeout-ms`); \
             counted in tempo_limits_hit_total{{limit=\"instances\"}} from now on"
        );
    }
    let mut response = plain_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable: the server is at its limit of instances; retry shortly\n",
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A short text response tempo gives in the guest's place.
fn plain_response(status: StatusCode, text: &'static str) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

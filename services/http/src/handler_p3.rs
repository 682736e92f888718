//! One request to a WASI 0.3 handler (`wasi:http/handler@0.3.0`): a fresh instance of the
//! current version, its async `handle` called, its response streamed back while the instance
//! keeps running to write the body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Request, Response};
use tempo_runtime_core::admission::Slot;
use tempo_runtime_core::limits::within_deadline;
use tempo_runtime_core::outcome::{finish_run, log_failure};
use tempo_runtime_core::{RequestId, State, Version, wasmtime};
use tokio::sync::oneshot;
use tracing::Instrument as _;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::bodies::{CheckedBody, GuardedBody};

/// Runs the guest for `request` on its own task, holding `slot` until the instance is gone, and
/// returns its response once it has one; failures are logged once, as for a WASI 0.2 handler.
pub(crate) async fn invoke(
    version: &Arc<Version>,
    request: Request<CheckedBody>,
    request_id: RequestId,
    slot: Slot,
    what: String,
) -> anyhow::Result<Response<HyperOutgoingBody>> {
    let service = version
        .prepared::<ServicePre<State>>()
        .context("this version was not prepared for wasi:http 0.3")?
        .clone();
    let mut store = version.new_store(request_id.clone());
    let (sender, receiver) = oneshot::channel();

    let component = version.component_attribute().clone();
    let deadline = version.limits().deadline;
    let stopped = Arc::new(AtomicBool::new(false));
    let stopped_guest = stopped.clone();
    let (task_version, task_request_id, task_what) =
        (version.clone(), request_id.clone(), what.clone());
    let guest = tokio::spawn(
        async move {
            let outcome = within_deadline(deadline, async {
                let instance = service.instantiate_async(&mut store).await?;
                let (request, request_io) = {
                    let http = store.data_mut().http();
                    wasmtime_wasi_http::p3::Request::from_http(http.hooks, request)
                };
                store
                    .run_concurrent(async move |accessor| {
                        let response =
                            instance.handle(accessor, request).await?.map_err(|code| {
                                wasmtime::format_err!(
                                    "the component answered with the error {code:?}"
                                )
                            })?;
                        let response = accessor.with(|mut store| {
                            response.into_http_with_getter(
                                &mut store,
                                request_io,
                                |state: &mut State| state.http(),
                            )
                        })?;
                        // The guest writes the body as the client reads it: the instance runs
                        // until the body has ended or the client has gone.
                        let (ended, body_done) = oneshot::channel::<()>();
                        let response = response.map(|body| {
                            EndSignal {
                                body,
                                ended: Some(ended),
                            }
                            .boxed_unsync()
                        });
                        if sender.send(response).is_ok() {
                            let _ = body_done.await;
                        }
                        Ok::<_, wasmtime::Error>(())
                    })
                    .await??;
                Ok(())
            })
            .await;
            stopped_guest.store(outcome.is_err(), Ordering::Release);
            let outcome = finish_run(outcome, store.data(), &component);
            drop(store);
            drop(slot);
            if let Err(err) = &outcome {
                log_failure(&task_version, &task_request_id, &task_what, err);
            }
            outcome
        }
        .in_current_span(),
    );

    match receiver.await {
        Ok(response) => Ok(response.map(|body| GuardedBody::new(body, stopped).boxed_unsync())),
        // Logged by the guest's task.
        Err(_) => match guest.await {
            Ok(Err(err)) => Err(err),
            Ok(Ok(())) => {
                let failure = anyhow!("the component returned without a response");
                log_failure(version, &request_id, &what, &failure);
                Err(failure)
            }
            Err(join) => {
                let failure = anyhow!("the component's task failed: {join}");
                log_failure(version, &request_id, &what, &failure);
                Err(failure)
            }
        },
    }
}

/// A response body that says when it has ended, or failed, by dropping `ended`.
struct EndSignal {
    body: HyperOutgoingBody,
    ended: Option<oneshot::Sender<()>>,
}

impl Body for EndSignal {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.ended.take();
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

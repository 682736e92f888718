//! One request: a fresh instance of the current version, the guest's `handle` called, its
//! response streamed back.

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tempo_runtime_core::{LiveComponent, State, Version};
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Handles `request` on the version that is current when it arrives. A guest failure is logged
/// and answered with a 500; it never takes the server down.
pub(crate) async fn handle(
    live: &LiveComponent,
    request: Request<Incoming>,
) -> Response<HyperOutgoingBody> {
    let version = live.current();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let mut response = match invoke(&version, request).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(
                component = version.name(),
                "{method} {uri} failed: {}",
                err.root_cause()
            );
            tracing::debug!(component = version.name(), "{err:?}");
            failure_response()
        }
    };
    if let Some(note) = live.stale()
        && let Ok(value) = HeaderValue::from_str(&note)
    {
        response.headers_mut().insert(STALE_HEADER, value);
    }
    response
}

/// Set on every response while the newest build could not replace the version serving it; the
/// value says why.
pub const STALE_HEADER: &str = "x-tempo-stale";

async fn invoke(
    version: &Arc<Version>,
    request: Request<Incoming>,
) -> anyhow::Result<Response<HyperOutgoingBody>> {
    let proxy = version
        .prepared::<ProxyPre<State>>()
        .context("this version was not prepared for wasi:http")?
        .clone();
    let mut store = version.new_store();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let request = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)?;
    let outparam = store.data_mut().http().new_response_outparam(sender)?;

    // The guest runs on its own task: it keeps writing the body after it has handed over the
    // response, and it must finish even if the client goes away.
    let guest = tokio::spawn(async move {
        let instance = proxy.instantiate_async(&mut store).await?;
        instance
            .wasi_http_incoming_handler()
            .call_handle(&mut store, request, outparam)
            .await
    });

    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(anyhow!("the component answered with the error {code:?}")),
        Err(_) => Err(match guest.await {
            Ok(Ok(())) => anyhow!("the component returned without setting a response"),
            Ok(Err(err)) => anyhow::Error::from(err),
            Err(join) => anyhow!("the component's task failed: {join}"),
        }),
    }
}

fn failure_response() -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(
        b"500 Internal Server Error: the component failed; see the server log\n",
    ))
    .map_err(|never| match never {})
    .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

//! The admin server: `/metrics` in Prometheus text format and `/healthz`, on an address apart
//! from the one guests serve on.

use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus::{Encoder as _, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A bound admin listener, ready to serve.
pub struct AdminServer {
    listener: TcpListener,
    registry: Registry,
}

impl AdminServer {
    /// Binds `address`; the error names `flag`, the setting it came from.
    pub async fn bind(address: SocketAddr, registry: Registry, flag: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (`{flag}`)"))?;
        Ok(Self { listener, registry })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("cannot read the admin address")
    }

    /// Answers until `shutdown` is cancelled.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        loop {
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!("the admin server could not accept a connection: {err}");
                        continue;
                    }
                },
                () = shutdown.cancelled() => return Ok(()),
            };
            let registry = self.registry.clone();
            let service = service_fn(move |request: http::Request<Incoming>| {
                let response = answer(&registry, request.method(), request.uri().path());
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(err) = connection {
                    tracing::debug!("admin connection: {err}");
                }
            });
        }
    }
}

fn answer(registry: &Registry, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, content_type: &str, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
    };
    const PLAIN: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, b"use GET\n".to_vec());
    }
    match path {
        "/metrics" => {
            let encoder = TextEncoder::new();
            let mut body = Vec::new();
            match encoder.encode(&registry.gather(), &mut body) {
                Ok(()) => text(StatusCode::OK, encoder.format_type(), body),
                Err(err) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    PLAIN,
                    format!("cannot encode the metrics: {err}\n").into_bytes(),
                ),
            }
        }
        "/healthz" => text(StatusCode::OK, PLAIN, b"ok\n".to_vec()),
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            b"not found: try /metrics or /healthz\n".to_vec(),
        ),
    }
}

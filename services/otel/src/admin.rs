//! The admin server: `/metrics` in Prometheus text format, `/livez` (and `/healthz`, its older
//! name) and `/readyz`, on an address apart from the one guests serve on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

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

/// Whether the process should be sent work, as `/readyz` answers: not while it starts (until
/// the component is loaded and the backends it imports answered), and not from the first
/// shutdown signal on, while it drains. Clones share one state.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicU8>);

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

impl Readiness {
    /// Serving: `/readyz` answers 200 (unless draining already).
    pub fn set_ready(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Shutting down: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.0.store(DRAINING, Ordering::Release);
    }

    /// The state, as `/readyz` says it.
    fn word(&self) -> &'static str {
        match self.0.load(Ordering::Acquire) {
            STARTING => "starting",
            READY => "ready",
            _ => "draining",
        }
    }
}

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

    /// Answers until `shutdown` is cancelled, `/readyz` as `readiness` says.
    pub async fn serve(
        self,
        shutdown: CancellationToken,
        readiness: Readiness,
    ) -> anyhow::Result<()> {
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
            let (registry, readiness) = (self.registry.clone(), readiness.clone());
            let service = service_fn(move |request: http::Request<Incoming>| {
                let response = answer(
                    &registry,
                    &readiness,
                    request.method(),
                    request.uri().path(),
                );
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

fn answer(
    registry: &Registry,
    readiness: &Readiness,
    method: &Method,
    path: &str,
) -> Response<Full<Bytes>> {
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
        "/livez" | "/healthz" => text(StatusCode::OK, PLAIN, b"ok\n".to_vec()),
        "/readyz" => {
            let word = readiness.word();
            let status = match word {
                "ready" => StatusCode::OK,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            text(status, PLAIN, format!("{word}\n").into_bytes())
        }
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            b"not found: try /metrics, /livez or /readyz\n".to_vec(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_goes_from_starting_to_ready_to_draining_and_stays() {
        let (registry, readiness) = (Registry::new(), Readiness::default());
        let readyz = |readiness: &Readiness| {
            let response = answer(&registry, readiness, &Method::GET, "/readyz");
            response.status().as_u16()
        };
        assert_eq!(readyz(&readiness), 503);
        readiness.set_ready();
        assert_eq!(readyz(&readiness), 200);
        readiness.clone().set_draining();
        readiness.set_ready();
        assert_eq!(readyz(&readiness), 503);
        let livez = answer(&registry, &readiness, &Method::GET, "/livez");
        assert_eq!(livez.status().as_u16(), 200);
    }
}

//! The accept loop, the protocols' settings, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry::KeyValue;
use tempo_runtime_core::metrics::metrics;
use tempo_runtime_core::{LiveComponent, Slots};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::HttpConfig;
use crate::connection::Connection;
use crate::handler::Handling;
use crate::tls::Tls;

/// How often an HTTP/2 connection with no traffic is pinged, and how long the answer may take:
/// a peer that does not answer is gone, and its streams are freed.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// The builders every connection is served with.
pub(crate) struct Protocols {
    pub(crate) http1: http1::Builder,
    /// HTTP/1 over TLS: a response's head and body pieces are copied into one buffer before
    /// they are written, so that they go out as one TLS record rather than one each.
    pub(crate) http1_tls: http1::Builder,
    pub(crate) http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new(config: &HttpConfig) -> Self {
        let mut http1 = http1::Builder::new();
        // A client must send a request's whole head within the timeout, also between requests on
        // a kept-alive connection, or the connection is closed: slow or idle clients hold nothing.
        http1
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        // hyper's bounds stay on: streams a client opens and resets before they are answered
        // (rapid reset, CVE-2023-44487) and streams the server had to reset close the
        // connection past 20 and 1024; header lists are bounded at 16 KiB.
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams)
            .max_pending_accept_reset_streams(20)
            .max_local_error_reset_streams(1024)
            .max_header_list_size(16 << 10)
            .keep_alive_interval(H2_KEEP_ALIVE)
            .keep_alive_timeout(H2_KEEP_ALIVE);
        let mut http1_tls = http1.clone();
        http1_tls.writev(false);
        Self {
            http1,
            http1_tls,
            http2,
        }
    }
}

/// Accepts connections until `shutdown`, at most `max_connections` open at once, then stops
/// accepting, tells every open connection to finish (HTTP/2 GOAWAY; HTTP/1 closes after the
/// response in flight) and gives them `grace`. With `tls`, each connection's handshake runs on
/// its own task.
pub(crate) async fn serve(
    listener: TcpListener,
    live: LiveComponent,
    slots: Slots,
    shutdown: CancellationToken,
    config: HttpConfig,
    tls: Option<Arc<Tls>>,
) -> anyhow::Result<()> {
    let grace = config.shutdown_grace;
    let handling = Arc::new(Handling {
        live,
        slots,
        max_body_bytes: config.max_body_bytes,
        stall_timeout: config.stall_timeout,
    });
    let protocols = Arc::new(Protocols::new(&config));
    let connections = TaskTracker::new();
    let open = Arc::new(Semaphore::new(config.max_connections.max(1)));
    loop {
        // At the cap, accepting pauses: new clients wait in the kernel's backlog, not in ours.
        let place = match open.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                let component = handling.live.current().component_attribute().clone();
                metrics()
                    .limits
                    .add(1, &[component, KeyValue::new("limit", "connections")]);
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    place = open.clone().acquire_owned() => place?,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Usually out of file descriptors: back off rather than spin.
                    tracing::warn!("cannot accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let connection = Connection {
            handling: handling.clone(),
            protocols: protocols.clone(),
            stop: shutdown.clone(),
            header_timeout: config.header_timeout,
            stall_timeout: config.stall_timeout,
        };
        let tls = tls.clone();
        connections.spawn(async move {
            connection.serve(stream, peer, tls.as_deref()).await;
            drop(place);
        });
    }
    drop(listener);

    // Each connection saw `shutdown` too, and is finishing.
    connections.close();
    let open = connections.len();
    if open > 0 {
        tracing::info!("waiting up to {grace:?} for {open} open connection(s) to finish");
    }
    tokio::select! {
        () = connections.wait() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("requests still in flight after {grace:?}; closing them");
        }
    }
    Ok(())
}

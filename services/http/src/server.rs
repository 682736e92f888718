//! The accept loop and graceful shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use opentelemetry::KeyValue;
use tempo_runtime_core::metrics::metrics;
use tempo_runtime_core::{LiveComponent, Slots};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;

use crate::HttpConfig;
use crate::handler::{self, Handling};

/// Accepts connections until `shutdown`, at most `max_connections` open at once, then stops
/// accepting and gives requests in flight `grace` to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    live: LiveComponent,
    slots: Slots,
    shutdown: CancellationToken,
    config: HttpConfig,
) -> anyhow::Result<()> {
    let grace = config.shutdown_grace;
    let handling = Arc::new(Handling {
        live,
        slots,
        max_body_bytes: config.max_body_bytes,
        stall_timeout: config.stall_timeout,
    });
    let connections = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    // A client must send a request's whole head within the timeout, also between requests on a
    // kept-alive connection, or the connection is closed: slow or idle clients hold nothing.
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
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
        // Guests often write small body chunks; Nagle's algorithm would hold them back.
        let _ = stream.set_nodelay(true);
        // A client that stops reading its response fails the write after the stall timeout.
        // (Reads are bounded by the header timeout between requests and by the body's own stall
        // timeout within one: hyper also reads while a request is handled, to notice a client
        // that hangs up, and that wait must not time out.)
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(config.stall_timeout));
        let handling = handling.clone();
        let service = service_fn(move |request| {
            let handling = handling.clone();
            async move { Ok::<_, Infallible>(handler::handle(&handling, request).await) }
        });
        let connection =
            connections.watch(builder.serve_connection(TokioIo::new(Box::pin(stream)), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, "connection ended with an error: {err}");
            }
            drop(place);
        });
    }
    drop(listener);

    let open = connections.count();
    if open > 0 {
        tracing::info!("waiting up to {grace:?} for {open} open connection(s) to finish");
    }
    tokio::select! {
        () = connections.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("requests still in flight after {grace:?}; closing them");
        }
    }
    Ok(())
}

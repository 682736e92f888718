//! The accept loop and graceful shutdown.

use std::convert::Infallible;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tempo_runtime_core::LiveComponent;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{HttpConfig, handler};

/// Accepts connections until `shutdown`, then stops accepting and gives requests in flight
/// `grace` to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    live: LiveComponent,
    shutdown: CancellationToken,
    config: HttpConfig,
) -> anyhow::Result<()> {
    let grace = config.shutdown_grace;
    let max_body_bytes = config.max_body_bytes;
    let connections = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // A client must send a request's whole head within the timeout, also between requests on a
    // kept-alive connection, or the connection is closed: slow or idle clients hold nothing.
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    loop {
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
        let live = live.clone();
        let service = service_fn(move |request| {
            let live = live.clone();
            async move { Ok::<_, Infallible>(handler::handle(&live, request, max_body_bytes).await) }
        });
        let connection = connections.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, "connection ended with an error: {err}");
            }
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

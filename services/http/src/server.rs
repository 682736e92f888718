//! The accept loop, each connection's TLS handshake and protocol (HTTP/1.1, or HTTP/2 by ALPN
//! or prior knowledge), and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use opentelemetry::KeyValue;
use tempo_runtime_core::metrics::metrics;
use tempo_runtime_core::{LiveComponent, Slots};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;

use crate::HttpConfig;
use crate::handler::{self, Handling};
use crate::preface::{Protocol, sniff};
use crate::tls::{Tls, client_subject};

/// How often an HTTP/2 connection with no traffic is pinged, and how long the answer may take:
/// a peer that does not answer is gone, and its streams are freed.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// What one connection tells its requests: how it came (`http` or `https`) and who the client
/// proved to be.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peer {
    pub(crate) tls: bool,
    /// The subject of the client's verified certificate (mutual TLS).
    pub(crate) client_subject: Option<HeaderValue>,
}

/// The builders every connection is served with.
struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
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
        Self { http1, http2 }
    }
}

/// Accepts connections until `shutdown`, at most `max_connections` open at once, then stops
/// accepting and gives requests in flight `grace` to finish. With `tls`, each connection's
/// handshake runs on its own task.
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
    let connections = GracefulShutdown::new();
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
            // Taken now, so that a shutdown signalled during the handshake still reaches it.
            watcher: connections.watcher(),
            header_timeout: config.header_timeout,
            stall_timeout: config.stall_timeout,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            connection.serve(stream, peer, tls.as_deref()).await;
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

/// One accepted connection, on its own task.
struct Connection {
    handling: Arc<Handling>,
    protocols: Arc<Protocols>,
    watcher: Watcher,
    header_timeout: Duration,
    stall_timeout: Duration,
}

impl Connection {
    /// Serves `stream` until it closes: its TLS handshake and the first bytes that say its
    /// protocol must come within the header timeout.
    async fn serve(self, stream: TcpStream, peer: SocketAddr, tls: Option<&Tls>) {
        // Guests often write small body chunks; Nagle's algorithm would hold them back.
        let _ = stream.set_nodelay(true);
        // A client that stops reading its response fails the write after the stall timeout.
        // (Reads are bounded by the header timeout between requests and by the body's own stall
        // timeout within one: hyper also reads while a request is handled, to notice a client
        // that hangs up, and that wait must not time out.)
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(self.stall_timeout));
        let stream = Box::pin(stream);
        let Some(tls) = tls else {
            match tokio::time::timeout(self.header_timeout, sniff(stream)).await {
                Ok(Ok((protocol, stream))) => {
                    self.serve_protocol(protocol, stream, Peer::default(), peer)
                        .await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, "connection ended before a request: {err}"),
                Err(_) => tracing::debug!(%peer, "no request within the header timeout"),
            }
            return;
        };
        let accepted = tokio::time::timeout(self.header_timeout, tls.acceptor().accept(stream));
        let stream = match accepted.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(%peer, "TLS handshake failed: {err}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not done within the header timeout");
                return;
            }
        };
        let session = stream.get_ref().1;
        let protocol = match session.alpn_protocol() {
            Some(b"h2") => Protocol::Http2,
            _ => Protocol::Http1,
        };
        let client_subject = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(client_subject);
        let connection_peer = Peer {
            tls: true,
            client_subject,
        };
        self.serve_protocol(protocol, stream, connection_peer, peer)
            .await;
    }

    /// Serves `io` as `protocol`, each request handled with what `connection` says of it.
    async fn serve_protocol<I>(self, protocol: Protocol, io: I, connection: Peer, peer: SocketAddr)
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let handling = self.handling;
        let connection = Arc::new(connection);
        let service = service_fn(move |request| {
            let (handling, connection) = (handling.clone(), connection.clone());
            async move { Ok::<_, Infallible>(handler::handle(&handling, &connection, request).await) }
        });
        let io = TokioIo::new(io);
        let ended = match protocol {
            Protocol::Http1 => {
                let served = self.protocols.http1.serve_connection(io, service);
                self.watcher.watch(served).await
            }
            Protocol::Http2 => {
                let served = self.protocols.http2.serve_connection(io, service);
                self.watcher.watch(served).await
            }
        };
        if let Err(err) = ended {
            let err = anyhow::Error::new(err);
            tracing::debug!(%peer, "connection ended with an error: {err:#}");
        }
    }
}

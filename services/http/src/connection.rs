//! One accepted connection on its own task: its TLS handshake, the protocol it speaks (HTTP/1.1,
//! or HTTP/2 by ALPN or prior knowledge), its requests, and its end: at shutdown, or for
//! HTTP/2 once it has had no stream for the header timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::handler::{self, Handling};
use crate::preface::{Protocol, sniff};
use crate::server::Protocols;
use crate::tls::{Tls, client_subject};

/// What one connection tells its requests: whether it came over TLS, and who the client proved
/// to be.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peer {
    pub(crate) tls: bool,
    /// The subject of the client's verified certificate (mutual TLS).
    pub(crate) client_subject: Option<HeaderValue>,
}

/// One accepted connection.
pub(crate) struct Connection {
    pub(crate) handling: Arc<Handling>,
    pub(crate) protocols: Arc<Protocols>,
    /// Cancelled when the server stops accepting: the connection finishes what is in flight.
    pub(crate) stop: CancellationToken,
    pub(crate) header_timeout: Duration,
    pub(crate) stall_timeout: Duration,
}

impl Connection {
    /// Serves `stream` until it closes: its TLS handshake and the first bytes that say its
    /// protocol must come within the header timeout.
    pub(crate) async fn serve(self, stream: TcpStream, peer: SocketAddr, tls: Option<&Tls>) {
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
        let connection = Peer {
            tls: true,
            client_subject,
        };
        self.serve_protocol(protocol, stream, connection, peer)
            .await;
    }

    /// Serves `io` as `protocol`, each request handled with what `connection` says of it.
    async fn serve_protocol<I>(self, protocol: Protocol, io: I, connection: Peer, peer: SocketAddr)
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let handling = self.handling;
        let http1 = match connection.tls {
            false => &self.protocols.http1,
            true => &self.protocols.http1_tls,
        };
        let connection = Arc::new(connection);
        let io = TokioIo::new(io);
        let ended = match protocol {
            Protocol::Http1 => {
                let service = service_fn(move |request| {
                    let (handling, connection) = (handling.clone(), connection.clone());
                    async move {
                        Ok::<_, Infallible>(handler::handle(&handling, &connection, request).await)
                    }
                });
                // hyper closes an HTTP/1 connection idle for the header timeout itself.
                let served = http1.serve_connection(io, service);
                drive(served, &self.stop, std::future::pending(), |served| {
                    served.graceful_shutdown();
                })
                .await
            }
            Protocol::Http2 => {
                let streams = Arc::new(Streams::default());
                let open = streams.clone();
                let service = service_fn(move |request| {
                    let (handling, connection) = (handling.clone(), connection.clone());
                    let open = Open::new(&open);
                    async move {
                        let response = handler::handle(&handling, &connection, request).await;
                        Ok::<_, Infallible>(response.map(|body| OpenBody { body, _open: open }))
                    }
                });
                let served = self.protocols.http2.serve_connection(io, service);
                let idle = streams.idle_for(self.header_timeout);
                drive(served, &self.stop, idle, |served| {
                    served.graceful_shutdown()
                })
                .await
            }
        };
        if let Err(err) = ended {
            let err = anyhow::Error::new(err);
            tracing::debug!(%peer, "connection ended with an error: {err:#}");
        }
    }
}

/// Runs `served` to its end; when `stop` is cancelled or `idle` ends first, asks it to finish
/// gracefully (`finish`) and runs it on to its end.
async fn drive<C>(
    served: C,
    stop: &CancellationToken,
    idle: impl Future<Output = ()>,
    finish: impl FnOnce(Pin<&mut C>),
) -> C::Output
where
    C: Future,
{
    let mut served = pin!(served);
    tokio::select! {
        ended = served.as_mut() => return ended,
        () = stop.cancelled() => {}
        () = idle => tracing::debug!("closing an HTTP/2 connection with no stream open"),
    }
    finish(served.as_mut());
    served.await
}

/// How many streams of an HTTP/2 connection are open (from its request's arrival to its
/// response's last byte, or the stream's reset).
#[derive(Default)]
struct Streams {
    open: AtomicUsize,
    changed: Notify,
}

impl Streams {
    /// Ends once no stream has been open for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            // Made before the count is read, so that a change in between is not missed.
            let changed = self.changed.notified();
            if self.open.load(Ordering::Acquire) > 0 {
                changed.await;
            } else if tokio::time::timeout(timeout, changed).await.is_err() {
                return;
            }
        }
    }
}

/// One open stream, counted until dropped.
struct Open(Arc<Streams>);

impl Open {
    fn new(streams: &Arc<Streams>) -> Self {
        streams.open.fetch_add(1, Ordering::AcqRel);
        streams.changed.notify_waiters();
        Self(streams.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its stream counted as open until it is done or dropped.
struct OpenBody {
    body: HyperOutgoingBody,
    _open: Open,
}

impl Body for OpenBody {
    type Data = Bytes;
    type Error = <HyperOutgoingBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

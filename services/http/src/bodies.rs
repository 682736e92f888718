//! The bodies around a guest: the request body, which may not grow past the server's limit (the
//! guest reading past it gets `HTTP-request-body-size` instead of the host buffering without
//! bound); the response body, which ends with an error when the guest was stopped midway; and
//! the body of a response to the guest's own request, which may not stall.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use wasmtime_wasi_http::Error;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// `incoming`, cut off with an error once it has brought more than `limit` bytes.
pub(crate) struct LimitedBody {
    incoming: Incoming,
    limit: u64,
    seen: u64,
}

impl LimitedBody {
    pub(crate) fn new(incoming: Incoming, limit: u64) -> Self {
        Self {
            incoming,
            limit,
            seen: 0,
        }
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(Error::from(err)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            self.seen = self.seen.saturating_add(data.len() as u64);
            if self.seen > self.limit {
                return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(self.seen)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// A guest's response body that ends with an error, not cleanly, when the guest was stopped
/// before finishing it: hyper then closes the connection, and the client does not mistake a
/// cut-off body for a whole one.
pub(crate) struct GuardedBody {
    inner: HyperOutgoingBody,
    stopped: Arc<AtomicBool>,
}

impl GuardedBody {
    /// `inner`, failing at its end if `stopped` is set by then.
    pub(crate) fn new(inner: HyperOutgoingBody, stopped: Arc<AtomicBool>) -> Self {
        Self { inner, stopped }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) if self.stopped.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err(Error::HttpResponseIncomplete)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.stopped.load(Ordering::Acquire) && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An outgoing request's response body, which fails when a piece takes longer than the timeout
/// to arrive.
pub(crate) struct TimedBody {
    incoming: Incoming,
    timeout: Pin<Box<tokio::time::Sleep>>,
    between_bytes_timeout: Duration,
}

impl TimedBody {
    pub(crate) fn new(incoming: Incoming, between_bytes_timeout: Duration) -> Self {
        Self {
            incoming,
            timeout: Box::pin(tokio::time::sleep(between_bytes_timeout)),
            between_bytes_timeout,
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + self.between_bytes_timeout;
                self.timeout.as_mut().reset(next);
                Poll::Ready(frame.map(|frame| frame.map_err(Error::from)))
            }
            Poll::Pending => {
                ready!(self.timeout.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.incoming.size_hint()
    }
}

//! The bodies around a guest: what it receives (the request body, and the responses to its own
//! requests), which may neither grow past a limit (the guest reading past it gets
//! `HTTP-request-body-size` instead of the host buffering without bound) nor stall; and the
//! response body it sends, which ends with an error when the guest was stopped midway.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use wasmtime_wasi_http::Error;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A body received from a peer (the client's request body, or the response to a guest's own
/// request), cut off with an error once it has brought more than `limit` bytes, or once its
/// reader has waited longer than `stall_timeout` for the next piece.
pub(crate) struct CheckedBody {
    incoming: Incoming,
    limit: u64,
    seen: u64,
    stall_timeout: Duration,
    /// Armed when the reader starts waiting, not while it does something else; made at the
    /// first wait (a body that is all there at once, or none, never needs one).
    stalled_at: Option<Pin<Box<tokio::time::Sleep>>>,
    waiting: bool,
}

impl CheckedBody {
    pub(crate) fn new(incoming: Incoming, limit: u64, stall_timeout: Duration) -> Self {
        Self {
            incoming,
            limit,
            seen: 0,
            stall_timeout,
            stalled_at: None,
            waiting: false,
        }
    }
}

impl Body for CheckedBody {
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
            Poll::Pending => {
                let this = &mut *self;
                let stall_timeout = this.stall_timeout;
                let stalled_at = this
                    .stalled_at
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall_timeout)));
                if !this.waiting {
                    this.waiting = true;
                    let at = tokio::time::Instant::now() + stall_timeout;
                    stalled_at.as_mut().reset(at);
                }
                ready!(stalled_at.as_mut().poll(cx));
                return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
            }
        };
        self.waiting = false;
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

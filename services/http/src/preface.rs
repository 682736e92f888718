//! Which HTTP a cleartext connection speaks: HTTP/2 with prior knowledge (h2c) starts with the
//! connection preface, anything else is HTTP/1.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// What a client sends first on an HTTP/2 connection (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection is served with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

/// Reads `io`'s first bytes, no more than the preface's length, until they tell the protocol,
/// and gives them back in front of the rest of the stream. The caller bounds the wait.
pub(crate) async fn sniff<I: AsyncRead + Unpin>(mut io: I) -> io::Result<(Protocol, Prefixed<I>)> {
    let mut head = [0; PREFACE.len()];
    let mut seen = 0;
    loop {
        let read = io.read(&mut head[seen..]).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        seen += read;
        let protocol = if !PREFACE.starts_with(&head[..seen]) {
            Protocol::Http1
        } else if seen == PREFACE.len() {
            Protocol::Http2
        } else {
            continue;
        };
        let prefixed = Prefixed {
            head,
            unread: 0..seen,
            io,
        };
        return Ok((protocol, prefixed));
    }
}

/// A stream whose first bytes were read already: they are read again first.
pub(crate) struct Prefixed<I> {
    head: [u8; PREFACE.len()],
    unread: std::ops::Range<usize>,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.unread.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let this = &mut *self;
        let count = this.unread.len().min(buf.remaining());
        let start = this.unread.start;
        buf.put_slice(&this.head[start..start + count]);
        this.unread.start += count;
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    async fn sniffed(sent: &[&[u8]]) -> (Protocol, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(64);
        for piece in sent {
            client.write_all(piece).await.unwrap();
        }
        drop(client);
        let (protocol, mut stream) = sniff(server).await.unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.unwrap();
        (protocol, all)
    }

    #[tokio::test]
    async fn a_request_line_is_http1_and_reads_back_whole() {
        let request = b"POST / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            sniffed(&[request]).await,
            (Protocol::Http1, request.to_vec())
        );
        // Not a preface however much of one it starts with.
        let (protocol, all) = sniffed(&[b"PRI * HTTP/1.1\r\n"]).await;
        assert_eq!(
            (protocol, &all[..]),
            (Protocol::Http1, &b"PRI * HTTP/1.1\r\n"[..])
        );
    }

    #[tokio::test]
    async fn the_preface_is_http2_even_when_it_comes_in_pieces() {
        let mut sent = PREFACE.to_vec();
        sent.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        let (protocol, all) = sniffed(&[&sent[..3], &sent[3..20], &sent[20..]]).await;
        assert_eq!((protocol, all), (Protocol::Http2, sent));
    }

    #[tokio::test]
    async fn a_connection_closed_within_the_preface_is_an_error() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&PREFACE[..10]).await.unwrap();
        drop(client);
        assert!(sniff(server).await.is_err());
    }
}

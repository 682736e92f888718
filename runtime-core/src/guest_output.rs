//! Guest stdout and stderr as log lines: each complete line becomes one tracing event (target
//! [`GUEST_LOG_TARGET`]) carrying the component's name and the request id, so that output of
//! concurrent instances never interleaves mid-line and every line says which request wrote it.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::work::CurrentWork;

/// The tracing target of every line a guest logs, through stdio or `wasi:logging`.
pub const GUEST_LOG_TARGET: &str = "guest";

/// Where a guest stream's lines go.
#[derive(Clone, Debug)]
pub(crate) enum LineSink {
    /// A tracing event per line.
    Log {
        /// The component's name.
        component: Arc<str>,
        /// The work the instance handles.
        work: CurrentWork,
        /// `stdout` or `stderr`.
        stream: &'static str,
    },
    /// A list of lines, for tests.
    #[cfg(test)]
    Capture(Arc<Mutex<Vec<String>>>),
}

impl LineSink {
    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = crate::escape_guest_text(line.trim_end_matches(['\n', '\r']));
        match self {
            LineSink::Log {
                component,
                work,
                stream,
            } => tracing::info!(
                target: GUEST_LOG_TARGET,
                component = &**component,
                request_id = work.request_id().as_str(),
                stream = *stream,
                "{line}"
            ),
            #[cfg(test)]
            LineSink::Capture(lines) => lines.lock().unwrap().push(line.into_owned()),
        }
    }
}

/// A line longer than this is shown in pieces rather than buffered without bound.
const MAX_LINE: usize = 16 * 1024;

/// One instance's stdout or stderr: complete lines go out as events, a partial line waits for
/// its end (or for the instance to finish).
#[derive(Clone)]
pub(crate) struct LoggedOutput {
    inner: Arc<Inner>,
}

struct Inner {
    sink: LineSink,
    pending: Mutex<Vec<u8>>,
}

impl LoggedOutput {
    /// A stream whose lines go to `sink`.
    pub(crate) fn new(sink: LineSink) -> Self {
        Self {
            inner: Arc::new(Inner {
                sink,
                pending: Mutex::new(Vec::new()),
            }),
        }
    }

    fn write(&self, mut bytes: &[u8]) -> io::Result<()> {
        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            pending.extend_from_slice(&bytes[..end]);
            self.inner.sink.emit(&pending);
            pending.clear();
            bytes = &bytes[end + 1..];
        }
        pending.extend_from_slice(bytes);
        if pending.len() >= MAX_LINE {
            self.inner.sink.emit(&pending);
            pending.clear();
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let pending = self.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        if !pending.is_empty() {
            self.sink.emit(pending);
        }
    }
}

impl IsTerminal for LoggedOutput {
    fn is_terminal(&self) -> bool {
        // Lines become log events: no terminal control sequences belong in them.
        false
    }
}

impl StdoutStream for LoggedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LoggedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        LoggedOutput::write(self, &bytes).map_err(|e| StreamError::LastOperationFailed(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Lines go out as soon as they are complete; a partial line waits for its newline.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for LoggedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LoggedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.write(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(writes: &[&[u8]]) -> Vec<String> {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let output = LoggedOutput::new(LineSink::Capture(lines.clone()));
        let second_handle = output.clone();
        for (i, bytes) in writes.iter().enumerate() {
            let handle = if i % 2 == 0 { &output } else { &second_handle };
            handle.write(bytes).unwrap();
        }
        drop((output, second_handle));
        lines.lock().unwrap().clone()
    }

    #[test]
    fn each_whole_line_is_one_event() {
        assert_eq!(captured(&[b"one\ntwo\r\n"]), ["one", "two"]);
    }

    #[test]
    fn partial_lines_wait_for_their_end() {
        assert_eq!(captured(&[b"hel", b"lo\nwor", b"ld\n"]), ["hello", "world"]);
    }

    #[test]
    fn an_unfinished_line_is_shown_when_the_instance_ends() {
        assert_eq!(captured(&[b"no newline"]), ["no newline"]);
        assert!(captured(&[]).is_empty());
    }

    #[test]
    fn a_huge_line_is_cut_not_buffered_forever() {
        let long = vec![b'x'; MAX_LINE + 10];
        let lines = captured(&[&long, b"tail\n"]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE + 10);
        assert!(lines[1].ends_with("tail"));
    }
}

//! Guest stdout and stderr, shown in the terminal one whole line at a time with the component's
//! name in front, so that output of concurrent instances never interleaves mid-line.

use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Which host stream a guest stream goes to.
#[derive(Clone, Debug)]
pub(crate) enum HostStream {
    /// The host's stdout.
    Stdout,
    /// The host's stderr.
    Stderr,
    /// A buffer, for tests.
    #[cfg(test)]
    Capture(Arc<Mutex<Vec<u8>>>),
}

impl HostStream {
    fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            HostStream::Stdout => io::stdout().lock().write_all(bytes),
            HostStream::Stderr => io::stderr().lock().write_all(bytes),
            #[cfg(test)]
            HostStream::Capture(buffer) => {
                buffer.lock().unwrap().extend_from_slice(bytes);
                Ok(())
            }
        }
    }
}

/// A line longer than this is shown in pieces rather than buffered without bound.
const MAX_LINE: usize = 16 * 1024;

/// One instance's stdout or stderr: complete lines go out prefixed, a partial line waits for its
/// end (or for the instance to finish).
#[derive(Clone)]
pub(crate) struct PrefixedOutput {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    host: HostStream,
    pending: Mutex<Vec<u8>>,
}

impl PrefixedOutput {
    /// A stream writing to `host`, each line starting with `[name] `.
    pub(crate) fn new(name: &str, host: HostStream) -> Self {
        Self {
            inner: Arc::new(Inner {
                prefix: format!("[{name}] "),
                host,
                pending: Mutex::new(Vec::new()),
            }),
        }
    }

    fn write(&self, mut bytes: &[u8]) -> io::Result<()> {
        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            pending.extend_from_slice(&bytes[..=end]);
            self.inner.emit(&mut pending)?;
            bytes = &bytes[end + 1..];
        }
        pending.extend_from_slice(bytes);
        if pending.len() >= MAX_LINE {
            pending.push(b'\n');
            self.inner.emit(&mut pending)?;
        }
        Ok(())
    }
}

impl Inner {
    /// Writes the pending line (which ends in a newline) with its prefix in one write.
    fn emit(&self, pending: &mut Vec<u8>) -> io::Result<()> {
        let mut line = Vec::with_capacity(self.prefix.len() + pending.len());
        line.extend_from_slice(self.prefix.as_bytes());
        line.append(pending);
        self.host.write_all(&line)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let pending = self.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        if !pending.is_empty() {
            pending.push(b'\n');
            let mut rest = std::mem::take(pending);
            let _ = self.emit(&mut rest);
        }
    }
}

impl IsTerminal for PrefixedOutput {
    fn is_terminal(&self) -> bool {
        match self.inner.host {
            HostStream::Stdout => std::io::IsTerminal::is_terminal(&io::stdout()),
            HostStream::Stderr => std::io::IsTerminal::is_terminal(&io::stderr()),
            #[cfg(test)]
            HostStream::Capture(_) => false,
        }
    }
}

impl StdoutStream for PrefixedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for PrefixedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        PrefixedOutput::write(self, &bytes).map_err(|e| StreamError::LastOperationFailed(e.into()))
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
impl Pollable for PrefixedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for PrefixedOutput {
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

    fn captured(writes: &[&[u8]]) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let output = PrefixedOutput::new("app", HostStream::Capture(buffer.clone()));
        let second_handle = output.clone();
        for (i, bytes) in writes.iter().enumerate() {
            let handle = if i % 2 == 0 { &output } else { &second_handle };
            handle.write(bytes).unwrap();
        }
        drop((output, second_handle));
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn whole_lines_get_one_prefix() {
        assert_eq!(captured(&[b"one\ntwo\n"]), "[app] one\n[app] two\n");
    }

    #[test]
    fn partial_lines_wait_for_their_end() {
        assert_eq!(
            captured(&[b"hel", b"lo\nwor", b"ld\n"]),
            "[app] hello\n[app] world\n"
        );
    }

    #[test]
    fn an_unfinished_line_is_shown_when_the_instance_ends() {
        assert_eq!(captured(&[b"no newline"]), "[app] no newline\n");
        assert_eq!(captured(&[]), "");
    }

    #[test]
    fn a_huge_line_is_cut_not_buffered_forever() {
        let long = vec![b'x'; MAX_LINE + 10];
        let out = captured(&[&long, b"tail\n"]);
        assert_eq!(out.matches("[app] ").count(), 2);
        assert!(out.ends_with("x\n[app] tail\n"));
    }
}

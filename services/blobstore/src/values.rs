//! The bytes of an object a guest is writing: collected up to the size limit. Past it, the write
//! fails (an error the guest can handle, where wasmtime-wasi's in-memory pipe would trap) and the
//! value is marked too large, so storing it fails too.

use crate::BlobError;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// A growing buffer with a limit, shared by the outgoing value and its output stream.
#[derive(Clone)]
pub(crate) struct LimitedBuffer {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    bytes: Vec<u8>,
    limit: usize,
    too_large: bool,
}

impl LimitedBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                bytes: Vec::new(),
                limit,
                too_large: false,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The bytes written so far, or the reason they cannot be stored.
    pub(crate) fn contents(&self) -> Result<Vec<u8>, BlobError> {
        let inner = self.lock();
        if inner.too_large {
            return Err(BlobError::Refused(too_large(inner.limit)));
        }
        Ok(inner.bytes.clone())
    }
}

fn too_large(limit: usize) -> String {
    format!("the object is larger than the limit of {limit} bytes (blobstore max-object-bytes)")
}

impl OutputStream for LimitedBuffer {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut inner = self.lock();
        if inner.too_large || inner.bytes.len().saturating_add(bytes.len()) > inner.limit {
            inner.too_large = true;
            let message = too_large(inner.limit);
            return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                "{message}"
            )));
        }
        inner.bytes.extend_from_slice(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Never zero: a guest waiting for room would wait forever; an oversized write fails.
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for LimitedBuffer {
    async fn ready(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_up_to_the_limit_and_fails_past_it() {
        let mut buffer = LimitedBuffer::new(8);
        buffer.write(Bytes::from_static(b"12345678")).unwrap();
        assert_eq!(buffer.contents().unwrap(), b"12345678");
        assert!(matches!(
            buffer.write(Bytes::from_static(b"9")),
            Err(StreamError::LastOperationFailed(_))
        ));
        assert!(
            buffer
                .contents()
                .unwrap_err()
                .to_string()
                .contains("limit of 8 bytes")
        );
    }
}

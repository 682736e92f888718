//! Blob storage (`wasi:blobstore`): containers of named objects, read and written whole or as
//! streams ([`std::io::Read`] and [`std::io::Write`]).
//!
//! ```no_run
//! use std::io::{Read as _, Write as _};
//! use tempo_sdk::blobstore::Container;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let files = Container::open_or_create("files")?;
//! files.write("hello.txt", b"Hello!")?;
//!
//! let mut writer = files.writer("big.bin")?;
//! for chunk in [b"one ", b"two "] {
//!     writer.write_all(chunk)?;
//! }
//! writer.finish()?;
//!
//! let mut text = String::new();
//! files.reader("hello.txt")?.read_to_string(&mut text)?;
//! # Ok(()) }
//! ```
//!
//! Containers are granted to a component in tempo.toml (`[blobstore] containers`).

use std::io;

use crate::bindings::wasi::blobstore::{blobstore, container, types};
use crate::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Why a blob operation failed: the host's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        io::Error::other(error)
    }
}

/// What a container says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its size in bytes.
    pub size: u64,
    /// When it was written, in seconds since the Unix epoch.
    pub created_at: u64,
}

/// An open container.
pub struct Container {
    container: container::Container,
}

impl Container {
    /// Opens the existing container `name`.
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Self {
            container: blobstore::get_container(name)?,
        })
    }

    /// Creates the container `name` (an error if it exists).
    pub fn create(name: &str) -> Result<Self, Error> {
        Ok(Self {
            container: blobstore::create_container(name)?,
        })
    }

    /// Opens the container `name`, creating it if it does not exist.
    pub fn open_or_create(name: &str) -> Result<Self, Error> {
        if blobstore::container_exists(name)? {
            Self::open(name)
        } else {
            Self::create(name)
        }
    }

    /// Whether the container `name` exists.
    pub fn exists(name: &str) -> Result<bool, Error> {
        Ok(blobstore::container_exists(name)?)
    }

    /// Deletes the container `name` and every object in it.
    pub fn delete(name: &str) -> Result<(), Error> {
        Ok(blobstore::delete_container(name)?)
    }

    /// The container's name.
    pub fn name(&self) -> Result<String, Error> {
        Ok(self.container.name()?)
    }

    /// The whole of object `name`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, Error> {
        self.read_range(name, 0, u64::MAX)
    }

    /// Bytes `start..=end` of object `name` (an `end` past its size stops at its end).
    pub fn read_range(&self, name: &str, start: u64, end: u64) -> Result<Vec<u8>, Error> {
        let value = self.container.get_data(name, start, end)?;
        Ok(types::IncomingValue::incoming_value_consume_sync(value)?)
    }

    /// Object `name` as a stream.
    pub fn reader(&self, name: &str) -> Result<Reader, Error> {
        let value = self.container.get_data(name, 0, u64::MAX)?;
        let size = value.size();
        let stream = types::IncomingValue::incoming_value_consume_async(value)?;
        Ok(Reader { stream, size })
    }

    /// Writes `data` as object `name`, replacing what it held.
    pub fn write(&self, name: &str, data: &[u8]) -> Result<(), Error> {
        let mut writer = self.writer(name)?;
        io::Write::write_all(&mut writer, data).map_err(|err| Error(err.to_string()))?;
        writer.finish()
    }

    /// A stream that writes object `name`; it is stored when [`Writer::finish`] is called.
    pub fn writer(&self, name: &str) -> Result<Writer, Error> {
        let value = types::OutgoingValue::new_outgoing_value();
        let stream = value
            .outgoing_value_write_body()
            .map_err(|()| Error("the value's body was already taken".into()))?;
        self.container.write_data(name, &value)?;
        Ok(Writer {
            stream: Some(stream),
            value: Some(value),
        })
    }

    /// The names of every object.
    pub fn list(&self) -> Result<Vec<String>, Error> {
        let names = self.container.list_objects()?;
        let mut all = Vec::new();
        loop {
            let (page, done) = names.read_stream_object_names(256)?;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Whether object `name` exists.
    pub fn has(&self, name: &str) -> Result<bool, Error> {
        Ok(self.container.has_object(name)?)
    }

    /// The size and age of object `name`.
    pub fn info(&self, name: &str) -> Result<ObjectInfo, Error> {
        let info = self.container.object_info(name)?;
        Ok(ObjectInfo {
            size: info.size,
            created_at: info.created_at,
        })
    }

    /// Deletes object `name`.
    pub fn delete_object(&self, name: &str) -> Result<(), Error> {
        Ok(self.container.delete_object(name)?)
    }

    /// Deletes every object.
    pub fn clear(&self) -> Result<(), Error> {
        Ok(self.container.clear()?)
    }
}

/// An object read as a stream ([`Container::reader`]).
pub struct Reader {
    stream: InputStream,
    size: u64,
}

impl Reader {
    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl io::Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        match self.stream.blocking_read(want) {
            Ok(bytes) => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                Ok(bytes.len())
            }
            Err(StreamError::Closed) => Ok(0),
            Err(StreamError::LastOperationFailed(error)) => {
                Err(io::Error::other(error.to_debug_string()))
            }
        }
    }
}

/// An object written as a stream ([`Container::writer`]): call [`Writer::finish`] to store it.
pub struct Writer {
    stream: Option<OutputStream>,
    value: Option<types::OutgoingValue>,
}

impl Writer {
    /// Ends the stream and stores the object.
    pub fn finish(mut self) -> Result<(), Error> {
        drop(self.stream.take());
        match self.value.take() {
            Some(value) => Ok(types::OutgoingValue::finish(value)?),
            None => Ok(()),
        }
    }
}

impl io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let stream = self
            .stream
            .as_ref()
            .ok_or_else(|| io::Error::other("the object was finished"))?;
        // A stream takes at most 4096 bytes per blocking write.
        let chunk = &buf[..buf.len().min(4096)];
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|error| match error {
                StreamError::Closed => io::Error::from(io::ErrorKind::BrokenPipe),
                StreamError::LastOperationFailed(error) => {
                    io::Error::other(error.to_debug_string())
                }
            })?;
        Ok(chunk.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

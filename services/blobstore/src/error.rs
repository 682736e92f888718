//! What can go wrong in a blobstore call. A guest gets the message (wasi:blobstore's errors are
//! text); the variants keep the host's code honest about which is which.

use std::io;

/// An error of a blobstore call, told to the guest as its message.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The container does not exist.
    #[error("there is no container `{0}`")]
    NoSuchContainer(String),
    /// The container exists already.
    #[error("the container `{0}` already exists")]
    ContainerExists(String),
    /// The object does not exist.
    #[error("there is no object `{object}` in `{container}`")]
    NoSuchObject {
        /// The object's name.
        object: String,
        /// Its container's name.
        container: String,
    },
    /// Refused: a name, a grant or a limit, or something in the store tempo did not write (a
    /// symbolic link, a file where a folder should be).
    #[error("{0}")]
    Refused(String),
    /// The embedded backend's file system failed.
    #[error("embedded blobstore: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// NATS failed or did not answer.
    #[error("NATS: {0}")]
    Nats(String),
    /// The backend cannot be opened, or the host failed.
    #[error("{0}")]
    Unavailable(String),
}

impl BlobError {
    /// A file-system failure while doing `what`.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        BlobError::Io {
            what: what.into(),
            source,
        }
    }

    /// A NATS failure.
    pub(crate) fn nats(err: impl std::fmt::Display) -> Self {
        BlobError::Nats(err.to_string())
    }

    /// A stored object over the size limit.
    pub(crate) fn too_large(object: &str, container: &str, limit: u64) -> Self {
        BlobError::Refused(format!(
            "`{object}` in `{container}` is larger than the limit of {limit} bytes (blobstore max-object-bytes)"
        ))
    }

    /// A stored object that grew over the size limit while it was read.
    pub(crate) fn grew(object: &str, container: &str) -> Self {
        BlobError::Refused(format!(
            "`{object}` in `{container}` grew past the size limit"
        ))
    }

    /// A missing object.
    pub(crate) fn no_such_object(object: &str, container: &str) -> Self {
        BlobError::NoSuchObject {
            object: object.to_owned(),
            container: container.to_owned(),
        }
    }
}

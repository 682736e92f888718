//! Where the blobs live: behind one small trait, so the host code is written once.

use crate::BlobError;

pub(crate) mod embedded;
pub(crate) mod nats;

/// What a backend knows of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ObjectStat {
    /// Seconds since the Unix epoch.
    pub(crate) created_at: u64,
    pub(crate) size: u64,
}

/// Containers of objects.
#[async_trait::async_trait]
pub(crate) trait Blobs: Send + Sync {
    /// Creates an empty container; an existing one is an error.
    async fn create_container(&self, container: &str) -> Result<(), BlobError>;

    /// When the container was created (seconds since the epoch), or `None` if it does not exist.
    async fn container_created(&self, container: &str) -> Result<Option<u64>, BlobError>;

    /// Deletes a container and everything in it.
    async fn delete_container(&self, container: &str) -> Result<(), BlobError>;

    /// The names of the container's objects, in no particular order.
    async fn list_objects(&self, container: &str) -> Result<Vec<String>, BlobError>;

    /// The object's bytes, or `None` if there is no such object.
    async fn read(&self, container: &str, object: &str) -> Result<Option<Vec<u8>>, BlobError>;

    /// Creates or replaces an object; readers never see it half-written.
    async fn write(&self, container: &str, object: &str, data: Vec<u8>) -> Result<(), BlobError>;

    /// Deletes an object; a missing one is not an error.
    async fn delete_object(&self, container: &str, object: &str) -> Result<(), BlobError>;

    /// The object's size and creation time, or `None` if there is no such object.
    async fn stat(&self, container: &str, object: &str) -> Result<Option<ObjectStat>, BlobError>;
}

/// Seconds since the epoch of a system time (0 before it).
pub(crate) fn unix_seconds(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

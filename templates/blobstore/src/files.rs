//! Files in the `files` container of `wasi:blobstore`. Tested with `cargo tempo test`, which runs
//! the tests on tempo's runtime with a fresh store.

use crate::wasi::blobstore::{blobstore, container, types};
use crate::wasi::io::streams::StreamError;

const CONTAINER: &str = "files";

/// The container, created on first use.
fn files() -> Result<container::Container, String> {
    if blobstore::container_exists(CONTAINER)? {
        blobstore::get_container(CONTAINER)
    } else {
        blobstore::create_container(CONTAINER)
    }
}

/// Stores `data` as `name`, replacing what was there.
pub fn save(name: &str, data: &[u8]) -> Result<(), String> {
    let files = files()?;
    let value = types::OutgoingValue::new_outgoing_value();
    let stream = value.outgoing_value_write_body().map_err(|()| "the value's body was taken")?;
    for chunk in data.chunks(4096) {
        stream.blocking_write_and_flush(chunk).map_err(|err| match err {
            StreamError::LastOperationFailed(err) => err.to_debug_string(),
            StreamError::Closed => "the stream closed".to_owned(),
        })?;
    }
    drop(stream);
    files.write_data(name, &value)?;
    types::OutgoingValue::finish(value)
}

/// The file called `name`, if there is one.
pub fn load(name: &str) -> Result<Option<Vec<u8>>, String> {
    let files = files()?;
    if !files.has_object(name)? {
        return Ok(None);
    }
    let value = files.get_data(name, 0, u64::MAX)?;
    types::IncomingValue::incoming_value_consume_sync(value).map(Some)
}

/// Deletes the file called `name` (a missing one is fine).
pub fn remove(name: &str) -> Result<(), String> {
    files()?.delete_object(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip() {
        assert_eq!(load("a.txt").unwrap(), None);
        save("a.txt", b"hello").unwrap();
        assert_eq!(load("a.txt").unwrap(), Some(b"hello".to_vec()));
        save("a.txt", b"replaced").unwrap();
        assert_eq!(load("a.txt").unwrap(), Some(b"replaced".to_vec()));
        remove("a.txt").unwrap();
        assert_eq!(load("a.txt").unwrap(), None);
    }

    #[test]
    fn large_files_are_written_in_pieces() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        save("large.bin", &data).unwrap();
        assert_eq!(load("large.bin").unwrap(), Some(data));
    }
}

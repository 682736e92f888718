//! The embedded backend: a folder per container under the state folder, a file per object,
//! written to a temporary file and renamed into place.
//!
//! Container names are already safe file names (letters, digits, `-`, `_`). Object names may be
//! any string: every byte but letters, digits, `-`, `_` and a `.` that does not start the name
//! is written `%HH` (`photos/cat.png` is `photos%2Fcat.png`), so no name leaves its folder.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{Blobs, ObjectStat, unix_seconds};

/// Names of files being written start with this (and no encoded name can).
const TEMPORARY: &str = ".tmp-";

/// Containers as folders below `root`.
pub(crate) struct Embedded {
    root: PathBuf,
}

impl Embedded {
    /// Keeps containers below `root` (created on first write).
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn container(&self, container: &str) -> PathBuf {
        self.root.join(container)
    }

    fn object(&self, container: &str, object: &str) -> Result<PathBuf, String> {
        let file = encode_name(object);
        if file.len() > 255 {
            return Err(format!(
                "the object name `{object}` is too long for the embedded backend"
            ));
        }
        Ok(self.container(container).join(file))
    }
}

fn io(what: &str, err: std::io::Error) -> String {
    format!("embedded blobstore: {what}: {err}")
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| err.to_string())?
}

#[async_trait::async_trait]
impl Blobs for Embedded {
    async fn create_container(&self, container: &str) -> Result<(), String> {
        let (root, dir, name) = (
            self.root.clone(),
            self.container(container),
            container.to_owned(),
        );
        blocking(move || {
            std::fs::create_dir_all(&root).map_err(|e| io("cannot create the state folder", e))?;
            match std::fs::create_dir(&dir) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(format!("the container `{name}` already exists"))
                }
                Err(err) => Err(io(&format!("cannot create `{name}`"), err)),
            }
        })
        .await
    }

    async fn container_created(&self, container: &str) -> Result<Option<u64>, String> {
        let dir = self.container(container);
        blocking(move || match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => Ok(Some(unix_seconds(
                meta.created()
                    .or_else(|_| meta.modified())
                    .unwrap_or(std::time::UNIX_EPOCH),
            ))),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io("cannot read a container", err)),
        })
        .await
    }

    async fn delete_container(&self, container: &str) -> Result<(), String> {
        let dir = self.container(container);
        blocking(move || {
            std::fs::remove_dir_all(&dir).map_err(|e| io("cannot delete the container", e))
        })
        .await
    }

    async fn list_objects(&self, container: &str) -> Result<Vec<String>, String> {
        let dir = self.container(container);
        blocking(move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| io("cannot list the container", e))? {
                let entry = entry.map_err(|e| io("cannot list the container", e))?;
                let file = entry.file_name().to_string_lossy().into_owned();
                if !file.starts_with(TEMPORARY) {
                    names.push(decode_name(&file));
                }
            }
            Ok(names)
        })
        .await
    }

    async fn read(&self, container: &str, object: &str) -> Result<Option<Vec<u8>>, String> {
        let path = self.object(container, object)?;
        blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io("cannot read the object", err)),
        })
        .await
    }

    async fn write(&self, container: &str, object: &str, data: Vec<u8>) -> Result<(), String> {
        let (dir, path) = (self.container(container), self.object(container, object)?);
        blocking(move || {
            let mut file = tempfile::Builder::new()
                .prefix(TEMPORARY)
                .tempfile_in(&dir)
                .map_err(|e| io("cannot write in the container", e))?;
            file.write_all(&data)
                .map_err(|e| io("cannot write the object", e))?;
            file.as_file()
                .sync_data()
                .map_err(|e| io("cannot write the object", e))?;
            file.persist(&path)
                .map_err(|e| io("cannot write the object", e.error))?;
            Ok(())
        })
        .await
    }

    async fn delete_object(&self, container: &str, object: &str) -> Result<(), String> {
        let path = self.object(container, object)?;
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io("cannot delete the object", err)),
        })
        .await
    }

    async fn stat(&self, container: &str, object: &str) -> Result<Option<ObjectStat>, String> {
        let path = self.object(container, object)?;
        blocking(move || match std::fs::metadata(&path) {
            Ok(meta) => Ok(Some(ObjectStat {
                created_at: unix_seconds(meta.modified().unwrap_or(std::time::UNIX_EPOCH)),
                size: meta.len(),
            })),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io("cannot read the object", err)),
        })
        .await
    }
}

/// An object name as a file name (see the module documentation).
fn encode_name(name: &str) -> String {
    let mut file = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0) {
            file.push(char::from(byte));
        } else {
            let _ = write!(file, "%{byte:02X}");
        }
    }
    file
}

/// The object name [`encode_name`] made `file` from.
fn decode_name(file: &str) -> String {
    let bytes = file.as_bytes();
    let mut name = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| file.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                name.push(byte);
                i += 3;
            }
            None => {
                name.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_safe_file_names_and_come_back() {
        for (name, file) in [
            ("cat.png", "cat.png"),
            ("photos/cat.png", "photos%2Fcat.png"),
            ("..", "%2E."),
            (".hidden", "%2Ehidden"),
            ("a b%c", "a%20b%25c"),
            ("é", "%C3%A9"),
        ] {
            assert_eq!(encode_name(name), file, "{name}");
            assert_eq!(decode_name(file), name);
        }
    }

    #[test]
    fn no_name_escapes_its_folder_or_looks_temporary() {
        for name in ["..", ".", "../x", "/etc/passwd", ".tmp-x", "a/../../b"] {
            let file = encode_name(name);
            assert!(!file.contains('/') && file != "." && file != "..", "{file}");
            assert!(!file.starts_with(TEMPORARY), "{file}");
        }
    }
}

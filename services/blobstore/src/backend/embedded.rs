//! The embedded backend: a folder per container under the state folder, a file per object,
//! written to a temporary file, synced, renamed into place, and the folder synced.
//!
//! Every access goes through a directory handle on the state folder (cap-std's `Dir`, as
//! wasmtime-wasi's preopens do), so no name (absolute, `..`, or through a symlink) reaches
//! anything outside it. Symbolic links are never followed: one planted where a container or an
//! object should be is an error the guest gets. Only regular files are read, and never more
//! than `max-object-bytes` of them.
//!
//! Container names are checked by the host before they get here (letters, digits, `-`, `_`).
//! Object names may be any string: every byte but letters, digits, `-`, `_` and a `.` that does
//! not start the name is written `%HH` (`photos/cat.png` is `photos%2Fcat.png`), so no name leaves
//! its folder or looks like a temporary file.

use std::io::{self, Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use cap_fs_ext::{
    DirExt as _, FollowSymlinks, OpenOptionsFollowExt as _, OpenOptionsMaybeDirExt as _,
};
use cap_std::fs::{Dir, OpenOptions};

use tempo_runtime_core::names::Escaping;

use super::{Blobs, ObjectStat, unix_seconds};
use crate::BlobError;

/// Names of files being written start with this (and no encoded name can).
const TEMPORARY: &str = ".tmp-";

/// Containers as folders below the state folder.
pub(crate) struct Embedded {
    inner: Arc<Inner>,
}

struct Inner {
    root: Dir,
    max_object_bytes: u64,
}

impl Embedded {
    /// Opens (creating it if needed) the folder of containers at `path`, and removes the
    /// temporary files of writes a crash interrupted.
    pub(crate) fn open(path: &Path, max_object_bytes: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create the blobstore folder `{}`", path.display()))?;
        let root = Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .with_context(|| format!("cannot open the blobstore folder `{}`", path.display()))?;
        let inner = Inner {
            root,
            max_object_bytes: u64::try_from(max_object_bytes).unwrap_or(u64::MAX),
        };
        let removed = inner
            .remove_temporaries()
            .with_context(|| format!("cannot clean the blobstore folder `{}`", path.display()))?;
        if removed > 0 {
            tracing::warn!(
                "removed {removed} unfinished write(s) left in `{}` by an earlier crash",
                path.display()
            );
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Runs `work` on a blocking thread with the folder handles.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, BlobError> + Send + 'static,
    ) -> Result<T, BlobError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|err| BlobError::Unavailable(err.to_string()))?
    }
}

impl Inner {
    /// The folder of an existing container, never through a symlink.
    fn container(&self, name: &str) -> Result<Dir, BlobError> {
        self.root
            .open_dir_nofollow(name)
            .map_err(|err| match self.root.symlink_metadata(name) {
                Err(missing) if missing.kind() == io::ErrorKind::NotFound => {
                    BlobError::NoSuchContainer(name.to_owned())
                }
                Ok(meta) if meta.is_symlink() => symlink(name),
                Ok(meta) if !meta.is_dir() => not_a_folder(name),
                _ => io_error(&format!("cannot open the container `{name}`"), err),
            })
    }

    /// Removes what interrupted writes left in every container folder.
    fn remove_temporaries(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in self.root.entries()? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let folder = self.root.open_dir_nofollow(entry.file_name())?;
            for file in folder.entries()? {
                let file = file?;
                if file.file_name().to_string_lossy().starts_with(TEMPORARY) {
                    folder.remove_file(file.file_name())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

fn io_error(what: &str, err: io::Error) -> BlobError {
    BlobError::io(what, err)
}

fn symlink(name: &str) -> BlobError {
    BlobError::Refused(format!(
        "`{name}` is a symbolic link in the blobstore folder, and tempo follows none"
    ))
}

fn not_a_folder(name: &str) -> BlobError {
    BlobError::Refused(format!(
        "`{name}` in the blobstore folder is not a container folder"
    ))
}

fn not_a_file(object: &str, container: &str) -> BlobError {
    BlobError::Refused(format!("`{object}` in `{container}` is not a regular file"))
}

/// The file name of `object`, checked for the file system's limit.
fn object_file(object: &str) -> Result<String, BlobError> {
    let file = encode_name(object);
    if file.len() > 255 {
        return Err(BlobError::Refused(format!(
            "the object name `{object}` is too long for the embedded backend"
        )));
    }
    Ok(file)
}

/// Syncs a folder, so that a rename or removal in it survives a power loss. (A `Dir` holds a
/// path-only descriptor, which cannot be synced: the folder is opened for reading.)
fn sync_folder(folder: &Dir) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.read(true).maybe_dir(true);
    folder.open_with(".", &options)?.sync_all()
}

#[async_trait::async_trait]
impl Blobs for Embedded {
    async fn create_container(&self, container: &str) -> Result<(), BlobError> {
        let name = container.to_owned();
        self.blocking(move |inner| {
            match inner.root.create_dir(&name) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(BlobError::ContainerExists(name));
                }
                Err(err) => return Err(io_error(&format!("cannot create `{name}`"), err)),
            }
            sync_folder(&inner.root).map_err(|e| io_error("cannot sync the blobstore folder", e))
        })
        .await
    }

    async fn container_created(&self, container: &str) -> Result<Option<u64>, BlobError> {
        let name = container.to_owned();
        self.blocking(move |inner| match inner.root.symlink_metadata(&name) {
            Ok(meta) if meta.is_symlink() => Err(symlink(&name)),
            Ok(meta) if meta.is_dir() => {
                let created = meta.created().or_else(|_| meta.modified());
                Ok(Some(
                    created
                        .map(|time| unix_seconds(time.into_std()))
                        .unwrap_or(0),
                ))
            }
            Ok(_) => Err(not_a_folder(&name)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error("cannot read a container", err)),
        })
        .await
    }

    async fn delete_container(&self, container: &str) -> Result<(), BlobError> {
        let name = container.to_owned();
        self.blocking(move |inner| {
            // Checked first so that a symlink is refused, not merely unlinked; cap-std's
            // `remove_dir_all` follows no link inside the folder either.
            inner.container(&name)?;
            inner
                .root
                .remove_dir_all(&name)
                .map_err(|e| io_error("cannot delete the container", e))?;
            sync_folder(&inner.root).map_err(|e| io_error("cannot sync the blobstore folder", e))
        })
        .await
    }

    async fn list_objects(&self, container: &str) -> Result<Vec<String>, BlobError> {
        let name = container.to_owned();
        self.blocking(move |inner| {
            let folder = inner.container(&name)?;
            let listing = |e| io_error("cannot list the container", e);
            let mut names = Vec::new();
            for entry in folder.entries().map_err(listing)? {
                let file = entry.map_err(listing)?.file_name();
                let file = file.to_string_lossy();
                if !file.starts_with(TEMPORARY) {
                    names.push(decode_name(&file));
                }
            }
            Ok(names)
        })
        .await
    }

    async fn read(&self, container: &str, object: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let (name, object) = (container.to_owned(), object.to_owned());
        self.blocking(move |inner| {
            let file_name = object_file(&object)?;
            let folder = inner.container(&name)?;
            let mut options = OpenOptions::new();
            options.read(true).follow(FollowSymlinks::No);
            let file = match folder.open_with(&file_name, &options) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => {
                    return Err(match folder.symlink_metadata(&file_name) {
                        Ok(meta) if meta.is_symlink() => symlink(&object),
                        _ => io_error("cannot read the object", err),
                    });
                }
            };
            let meta = file
                .metadata()
                .map_err(|e| io_error("cannot read the object", e))?;
            if !meta.is_file() {
                return Err(not_a_file(&object, &name));
            }
            if meta.len() > inner.max_object_bytes {
                return Err(BlobError::too_large(&object, &name, inner.max_object_bytes));
            }
            // The file may grow while it is read: never read past the limit.
            let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
            file.take(inner.max_object_bytes.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|e| io_error("cannot read the object", e))?;
            if bytes.len() as u64 > inner.max_object_bytes {
                return Err(BlobError::grew(&object, &name));
            }
            Ok(Some(bytes))
        })
        .await
    }

    async fn write(&self, container: &str, object: &str, data: Vec<u8>) -> Result<(), BlobError> {
        let (name, object) = (container.to_owned(), object.to_owned());
        self.blocking(move |inner| {
            let file_name = object_file(&object)?;
            let folder = inner.container(&name)?;
            let temporary = format!("{TEMPORARY}{:016x}", rand::random::<u64>());
            let written = write_file(&folder, &temporary, &data)
                .and_then(|()| folder.rename(&temporary, &folder, &file_name))
                .and_then(|()| sync_folder(&folder));
            if let Err(err) = written {
                let _ = folder.remove_file(&temporary);
                return Err(io_error("cannot write the object", err));
            }
            Ok(())
        })
        .await
    }

    async fn delete_object(&self, container: &str, object: &str) -> Result<(), BlobError> {
        let (name, object) = (container.to_owned(), object.to_owned());
        self.blocking(move |inner| {
            let file_name = object_file(&object)?;
            let folder = inner.container(&name)?;
            match folder.remove_file(&file_name) {
                Ok(()) => sync_folder(&folder).map_err(|e| io_error("cannot delete the object", e)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(io_error("cannot delete the object", err)),
            }
        })
        .await
    }

    async fn stat(&self, container: &str, object: &str) -> Result<Option<ObjectStat>, BlobError> {
        let (name, object) = (container.to_owned(), object.to_owned());
        self.blocking(move |inner| {
            let file_name = object_file(&object)?;
            let folder = inner.container(&name)?;
            match folder.symlink_metadata(&file_name) {
                Ok(meta) if meta.is_symlink() => Err(symlink(&object)),
                Ok(meta) if !meta.is_file() => Err(not_a_file(&object, &name)),
                Ok(meta) => Ok(Some(ObjectStat {
                    created_at: meta
                        .modified()
                        .map(|time| unix_seconds(time.into_std()))
                        .unwrap_or(0),
                    size: meta.len(),
                })),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(io_error("cannot read the object", err)),
            }
        })
        .await
    }
}

/// Creates `file` (which must not exist) in `folder` with `data`, synced to disk.
fn write_file(folder: &Dir, file: &str, data: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .create_new(true)
        .follow(FollowSymlinks::No);
    let mut out = folder.open_with(file, &options)?;
    out.write_all(data)?;
    out.sync_data()
}

/// How object names are written as file names (see the module documentation).
const FILE_NAMES: Escaping = Escaping {
    marker: b'%',
    keep: |bytes, i| {
        let byte = bytes[i];
        byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0)
    },
};

/// An object name as a file name.
fn encode_name(name: &str) -> String {
    FILE_NAMES.escape(name)
}

/// The object name [`encode_name`] made `file` from.
fn decode_name(file: &str) -> String {
    String::from_utf8_lossy(&FILE_NAMES.unescape(file)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        /// No object name becomes a path: one plain file name in its folder, never `.` or `..`,
        /// never a temporary file's, and it decodes back to the name.
        #[test]
        fn no_object_name_leaves_its_folder(name in "\\PC*|[./\\\\%a-z]{0,12}") {
            let file = encode_name(&name);
            prop_assert!(!file.contains('/') && !file.contains('\\') && !file.contains('\0'));
            prop_assert!(file != "." && file != ".." && !file.is_empty() || name.is_empty());
            prop_assert!(!file.starts_with(TEMPORARY));
            let mut components = Path::new(&file).components();
            if !name.is_empty() {
                prop_assert!(matches!(
                    components.next(),
                    Some(std::path::Component::Normal(_))
                ));
                prop_assert!(components.next().is_none());
            }
            prop_assert_eq!(decode_name(&file), name);
        }
    }
}

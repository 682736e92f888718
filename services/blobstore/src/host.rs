//! The `wasi:blobstore` host functions, on a view borrowed from an instance's state.

use std::sync::Arc;

use bytes::Bytes;
use tempo_runtime_core::{ContextView, ServiceData, ServiceView, State};
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use crate::access::check_object_name;
use crate::backend::Blobs;
use crate::values::LimitedBuffer;
use crate::{BlobError, Shared};

tempo_runtime_core::host_bindings!(mod generated = async "wasi:blobstore/imports" {
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:blobstore/types.outgoing-value": crate::host::OutgoingValue,
        "wasi:blobstore/types.incoming-value": crate::host::IncomingValue,
        "wasi:blobstore/container.container": crate::host::ContainerHandle,
        "wasi:blobstore/container.stream-object-names": crate::host::ObjectNames,
    },
});

use generated::wasi::blobstore::{blobstore, container, types};

/// A container, as the guest holds it: its name (the data stays in the backend).
pub struct ContainerHandle {
    name: String,
}

/// The bytes a guest is writing as an object.
pub struct OutgoingValue {
    buffer: LimitedBuffer,
    stream_taken: bool,
    /// Where `write-data` stored the value, and how many bytes it stored then: bytes written to
    /// the stream after `write-data` are stored by `finish` (wasmCloud's components write in
    /// that order).
    destination: Option<(String, String, usize)>,
}

/// The bytes of an object (or of a range of it) read for the guest.
pub struct IncomingValue {
    bytes: Bytes,
}

/// The names of a container's objects, read by the guest in pieces.
pub struct ObjectNames {
    names: Vec<String>,
    next: usize,
}

/// The host functions' view of an instance: its resource table and the service's shared part.
type BlobView<'a> = ServiceView<'a, Shared>;

/// Adds the types, container and blobstore interfaces to `linker`.
pub(crate) fn add_to_linker(
    linker: &mut Linker<State>,
    view: ContextView<Shared>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<State, ServiceData<Shared>>(linker, view)?;
    container::add_to_linker::<State, ServiceData<Shared>>(linker, view)?;
    blobstore::add_to_linker::<State, ServiceData<Shared>>(linker, view)?;
    Ok(())
}

type Outcome<T> = wasmtime::Result<Result<T, String>>;

/// The name of the container behind a guest's handle.
fn container_name(
    table: &ResourceTable,
    handle: &Resource<ContainerHandle>,
) -> wasmtime::Result<String> {
    Ok(table.get(handle)?.name.clone())
}

/// Gives the guest a new resource made from `result`, or passes its error on.
fn push<T, R: Send + 'static>(
    table: &mut ResourceTable,
    result: Result<T, String>,
    make: impl FnOnce(T) -> R,
) -> Outcome<Resource<R>> {
    Ok(match result {
        Ok(value) => Ok(table.push(make(value))?),
        Err(err) => Err(err),
    })
}

/// The open backend, with the grants every container name is checked against.
struct Store {
    blobs: Arc<dyn Blobs>,
    shared: Arc<Shared>,
}

impl std::ops::Deref for Store {
    type Target = dyn Blobs;

    fn deref(&self) -> &Self::Target {
        self.blobs.as_ref()
    }
}

impl Store {
    /// Checks `object`'s name, that the guest may name `container` and that it exists.
    async fn existing_object(&self, container: &str, object: &str) -> Result<(), BlobError> {
        check_object_name(object)?;
        self.existing(container).await.map(drop)
    }

    /// Checks that the guest may name `container` and that it exists; returns when it was made.
    async fn existing(&self, container: &str) -> Result<u64, BlobError> {
        self.shared.grants.check(container)?;
        self.blobs
            .container_created(container)
            .await?
            .ok_or_else(|| BlobError::NoSuchContainer(container.to_owned()))
    }
}

/// Runs `work` against the backend once it is open, and gives the guest its error as the text
/// wasi:blobstore passes. (It takes the shared state rather than the view so that no borrow of
/// the instance's table is held across an await.)
async fn with_blobs<T, Fut>(
    shared: Arc<Shared>,
    work: impl FnOnce(Store) -> Fut,
) -> Result<T, String>
where
    Fut: Future<Output = Result<T, BlobError>>,
{
    let opened =
        shared.blobs.get().await.cloned().map_err(|err| {
            BlobError::Unavailable(format!("the blobstore cannot be opened: {err:#}"))
        });
    match opened {
        Ok(blobs) => work(Store { blobs, shared }).await,
        Err(err) => Err(err),
    }
    .map_err(|err| err.to_string())
}

/// The bytes `start..=end` of `data` (both inclusive, `end` clamped to the last byte).
pub(crate) fn range(
    object: &str,
    data: Vec<u8>,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, BlobError> {
    if start > end {
        return Err(BlobError::Refused(format!(
            "the range {start}..={end} of `{object}` is empty: start after end"
        )));
    }
    let size = data.len() as u64;
    if start >= size && !(start == 0 && size == 0) {
        return Err(BlobError::Refused(format!(
            "the range {start}..={end} starts past the end of `{object}` ({size} bytes)"
        )));
    }
    let end = end.min(size.saturating_sub(1));
    // Both fit in usize: they are below the length of a Vec.
    Ok(data
        .get(start as usize..=end as usize)
        .map(<[u8]>::to_vec)
        .unwrap_or_default())
}

impl types::Host for BlobView<'_> {}

impl types::HostOutgoingValue for BlobView<'_> {
    async fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
        let limit = self.context()?.clone().max_object_bytes;
        Ok(self.table.push(OutgoingValue {
            buffer: LimitedBuffer::new(limit),
            stream_taken: false,
            destination: None,
        })?)
    }

    async fn outgoing_value_write_body(
        &mut self,
        value: Resource<OutgoingValue>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
        let value = self.table.get_mut(&value)?;
        if std::mem::replace(&mut value.stream_taken, true) {
            return Ok(Err(()));
        }
        let stream: DynOutputStream = Box::new(value.buffer.clone());
        Ok(Ok(self.table.push(stream)?))
    }

    async fn finish(&mut self, value: Resource<OutgoingValue>) -> Outcome<()> {
        let value = self.table.delete(value)?;
        let contents = value.buffer.contents();
        let Some((container, object, stored)) = value.destination else {
            return Ok(contents.map(drop).map_err(|err| err.to_string()));
        };
        // What `write-data` stored is complete unless the stream grew since.
        if matches!(&contents, Ok(data) if data.len() == stored) {
            return Ok(Ok(()));
        }
        Ok(with_blobs(self.context()?.clone(), |blobs| async move {
            blobs.existing(&container).await?;
            blobs.write(&container, &object, contents?).await
        })
        .await)
    }

    async fn drop(&mut self, value: Resource<OutgoingValue>) -> wasmtime::Result<()> {
        self.drop_resource(value)
    }
}

impl types::HostIncomingValue for BlobView<'_> {
    async fn incoming_value_consume_sync(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> Outcome<Vec<u8>> {
        Ok(Ok(self.table.delete(value)?.bytes.to_vec()))
    }

    async fn incoming_value_consume_async(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> Outcome<Resource<DynInputStream>> {
        let bytes = self.table.delete(value)?.bytes;
        let stream: DynInputStream = Box::new(MemoryInputPipe::new(bytes));
        Ok(Ok(self.table.push(stream)?))
    }

    async fn size(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&value)?.bytes.len() as u64)
    }

    async fn drop(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<()> {
        self.drop_resource(value)
    }
}

impl container::Host for BlobView<'_> {}

impl container::HostContainer for BlobView<'_> {
    async fn name(&mut self, handle: Resource<ContainerHandle>) -> Outcome<String> {
        Ok(Ok(container_name(self.table, &handle)?))
    }

    async fn info(
        &mut self,
        handle: Resource<ContainerHandle>,
    ) -> Outcome<types::ContainerMetadata> {
        let name = container_name(self.table, &handle)?;
        Ok(with_blobs(self.context()?.clone(), |blobs| async move {
            let created_at = blobs.existing(&name).await?;
            Ok(types::ContainerMetadata { name, created_at })
        })
        .await)
    }

    async fn get_data(
        &mut self,
        handle: Resource<ContainerHandle>,
        object: String,
        start: u64,
        end: u64,
    ) -> Outcome<Resource<IncomingValue>> {
        let name = container_name(self.table, &handle)?;
        let read = with_blobs(self.context()?.clone(), |blobs| async move {
            blobs.existing_object(&name, &object).await?;
            let data = blobs
                .read(&name, &object)
                .await?
                .ok_or_else(|| BlobError::no_such_object(&object, &name))?;
            range(&object, data, start, end)
        })
        .await;
        push(self.table, read, |bytes| IncomingValue {
            bytes: bytes.into(),
        })
    }

    async fn write_data(
        &mut self,
        handle: Resource<ContainerHandle>,
        object: String,
        value: Resource<OutgoingValue>,
    ) -> Outcome<()> {
        let name = container_name(self.table, &handle)?;
        let contents = self.table.get(&value)?.buffer.contents();
        let destination = (name.clone(), object.clone());
        let stored = with_blobs(self.context()?.clone(), |blobs| async move {
            let data = contents?;
            if object.is_empty() {
                return Err(BlobError::Refused(
                    "an object name must not be empty".to_owned(),
                ));
            }
            blobs.existing_object(&name, &object).await?;
            let stored = data.len();
            blobs.write(&name, &object, data).await?;
            Ok(stored)
        })
        .await;
        Ok(match stored {
            Ok(stored) => {
                let (container, object) = destination;
                self.table.get_mut(&value)?.destination = Some((container, object, stored));
                Ok(())
            }
            Err(err) => Err(err),
        })
    }

    async fn list_objects(
        &mut self,
        handle: Resource<ContainerHandle>,
    ) -> Outcome<Resource<ObjectNames>> {
        let name = container_name(self.table, &handle)?;
        let listed = with_blobs(self.context()?.clone(), |blobs| async move {
            blobs.existing(&name).await?;
            let mut names = blobs.list_objects(&name).await?;
            names.sort();
            Ok(names)
        })
        .await;
        push(self.table, listed, |names| ObjectNames { names, next: 0 })
    }

    async fn delete_object(
        &mut self,
        handle: Resource<ContainerHandle>,
        object: String,
    ) -> Outcome<()> {
        self.delete_objects(handle, vec![object]).await
    }

    async fn delete_objects(
        &mut self,
        handle: Resource<ContainerHandle>,
        objects: Vec<String>,
    ) -> Outcome<()> {
        let name = container_name(self.table, &handle)?;
        Ok(with_blobs(self.context()?.clone(), |blobs| async move {
            objects
                .iter()
                .try_for_each(|object| check_object_name(object))?;
            blobs.existing(&name).await?;
            for object in &objects {
                blobs.delete_object(&name, object).await?;
            }
            Ok(())
        })
        .await)
    }

    async fn has_object(
        &mut self,
        handle: Resource<ContainerHandle>,
        object: String,
    ) -> Outcome<bool> {
        let name = container_name(self.table, &handle)?;
        Ok(with_blobs(self.context()?.clone(), |blobs| async move {
            blobs.existing_object(&name, &object).await?;
            Ok(blobs.stat(&name, &object).await?.is_some())
        })
        .await)
    }

    async fn object_info(
        &mut self,
        handle: Resource<ContainerHandle>,
        object: String,
    ) -> Outcome<types::ObjectMetadata> {
        let name = container_name(self.table, &handle)?;
        Ok(with_blobs(self.context()?.clone(), |blobs| async move {
            blobs.existing_object(&name, &object).await?;
            let stat = blobs
                .stat(&name, &object)
                .await?
                .ok_or_else(|| BlobError::no_such_object(&object, &name))?;
            Ok(types::ObjectMetadata {
                name: object,
                container: name,
                created_at: stat.created_at,
                size: stat.size,
            })
        })
        .await)
    }

    async fn clear(&mut self, handle: Resource<ContainerHandle>) -> Outcome<()> {
        let name = container_name(self.table, &handle)?;
        Ok(with_blobs(self.context()?.clone(), |blobs| async move {
            blobs.existing(&name).await?;
            for object in blobs.list_objects(&name).await? {
                blobs.delete_object(&name, &object).await?;
            }
            Ok(())
        })
        .await)
    }

    async fn drop(&mut self, handle: Resource<ContainerHandle>) -> wasmtime::Result<()> {
        self.drop_resource(handle)
    }
}

impl container::HostStreamObjectNames for BlobView<'_> {
    async fn read_stream_object_names(
        &mut self,
        stream: Resource<ObjectNames>,
        len: u64,
    ) -> Outcome<(Vec<String>, bool)> {
        let stream = self.table.get_mut(&stream)?;
        let take = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(stream.names.len() - stream.next);
        let names = stream.names[stream.next..stream.next + take].to_vec();
        stream.next += take;
        Ok(Ok((names, stream.next == stream.names.len())))
    }

    async fn skip_stream_object_names(
        &mut self,
        stream: Resource<ObjectNames>,
        num: u64,
    ) -> Outcome<(u64, bool)> {
        let stream = self.table.get_mut(&stream)?;
        let skip = usize::try_from(num)
            .unwrap_or(usize::MAX)
            .min(stream.names.len() - stream.next);
        stream.next += skip;
        Ok(Ok((skip as u64, stream.next == stream.names.len())))
    }

    async fn drop(&mut self, stream: Resource<ObjectNames>) -> wasmtime::Result<()> {
        self.drop_resource(stream)
    }
}

impl blobstore::Host for BlobView<'_> {
    async fn create_container(&mut self, name: String) -> Outcome<Resource<ContainerHandle>> {
        let created = with_blobs(self.context()?.clone(), |blobs| async move {
            blobs.shared.grants.check(&name)?;
            blobs.create_container(&name).await?;
            Ok(name)
        })
        .await;
        push(self.table, created, |name| ContainerHandle { name })
    }

    async fn get_container(&mut self, name: String) -> Outcome<Resource<ContainerHandle>> {
        let found = with_blobs(self.context()?.clone(), |blobs| async move {
            blobs.existing(&name).await?;
            Ok(name)
        })
        .await;
        push(self.table, found, |name| ContainerHandle { name })
    }

    async fn delete_container(&mut self, name: String) -> Outcome<()> {
        Ok(with_blobs(self.context()?.clone(), |blobs| async move {
            blobs.existing(&name).await?;
            blobs.delete_container(&name).await
        })
        .await)
    }

    async fn container_exists(&mut self, name: String) -> Outcome<bool> {
        Ok(with_blobs(self.context()?.clone(), |blobs| async move {
            blobs.shared.grants.check(&name)?;
            Ok(blobs.container_created(&name).await?.is_some())
        })
        .await)
    }

    async fn copy_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Outcome<()> {
        Ok(with_blobs(self.context()?.clone(), |blobs| async move {
            copy(&blobs, &src, &dest).await
        })
        .await)
    }

    async fn move_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Outcome<()> {
        Ok(with_blobs(self.context()?.clone(), |blobs| async move {
            copy(&blobs, &src, &dest).await?;
            if (&src.container, &src.object) != (&dest.container, &dest.object) {
                blobs.delete_object(&src.container, &src.object).await?;
            }
            Ok(())
        })
        .await)
    }
}

/// Copies an object, to the same or another container, replacing the destination.
async fn copy(
    blobs: &Store,
    src: &types::ObjectId,
    dest: &types::ObjectId,
) -> Result<(), BlobError> {
    if dest.object.is_empty() {
        return Err(BlobError::Refused(
            "an object name must not be empty".to_owned(),
        ));
    }
    blobs.existing_object(&src.container, &src.object).await?;
    blobs.existing_object(&dest.container, &dest.object).await?;
    let data = blobs
        .read(&src.container, &src.object)
        .await?
        .ok_or_else(|| BlobError::no_such_object(&src.object, &src.container))?;
    blobs.write(&dest.container, &dest.object, data).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_inclusive_and_clamped() {
        let data = b"0123456789".to_vec();
        assert_eq!(range("o", data.clone(), 0, u64::MAX).unwrap(), data);
        assert_eq!(range("o", data.clone(), 2, 4).unwrap(), b"234");
        assert_eq!(range("o", data.clone(), 9, 9).unwrap(), b"9");
        assert_eq!(range("o", data.clone(), 8, 100).unwrap(), b"89");
        assert_eq!(range("o", Vec::new(), 0, u64::MAX).unwrap(), b"");
    }

    #[test]
    fn empty_and_out_of_bounds_ranges_are_errors() {
        let data = b"0123456789".to_vec();
        assert!(
            range("o", data.clone(), 5, 4)
                .unwrap_err()
                .to_string()
                .contains("start after end")
        );
        assert!(
            range("o", data.clone(), 10, 12)
                .unwrap_err()
                .to_string()
                .contains("past the end of `o` (10 bytes)")
        );
        assert!(range("o", data, u64::MAX, u64::MAX).is_err());
    }
}

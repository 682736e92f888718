//! The `wasi:keyvalue` host functions, on a view borrowed from an instance's state.

use std::sync::Arc;

use tempo_runtime_core::ServiceView;
use wasmtime::component::{Resource, ResourceTable};

use crate::backend::Bucket;
use crate::{KvError, Shared};

tempo_runtime_core::host_bindings!(mod generated = async "wasi:keyvalue/imports" {
    with: {
        "wasi:keyvalue/store.bucket": crate::host::BucketHandle,
    },
    trappable_error_type: {
        "wasi:keyvalue/store.error" => crate::KvError,
    },
});

use generated::wasi::keyvalue::{atomics, batch, store};

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// How many keys one `list-keys` call returns at most.
const PAGE: usize = 1000;

/// An open bucket, as the guest holds it.
pub struct BucketHandle {
    name: String,
    bucket: Arc<dyn Bucket>,
}

/// The host functions' view of an instance: its resource table and the service's shared part.
type KvView<'a> = ServiceView<'a, Shared>;

/// The bindings of the interfaces the service provides, linked all at once on `Data`.
pub(crate) type Bindings = generated::Imports;

/// What the bindings are implemented on: [`ServiceView`] of the service's shared part.
pub(crate) type Data = tempo_runtime_core::ServiceData<Shared>;

/// The name and the bucket behind a guest's handle.
fn opened_bucket(
    table: &ResourceTable,
    handle: &Resource<BucketHandle>,
) -> Result<(String, Arc<dyn Bucket>), KvError> {
    let handle = table.get(handle)?;
    Ok((handle.name.clone(), handle.bucket.clone()))
}

/// Keys are checked at every entry point, on every backend: not empty, and short enough that
/// NATS carries them (escaped, up to three bytes each) in a subject within its 4096-byte control
/// line; a longer one would make the server close tempo's connection.
fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::Other("a key must not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::Other(format!(
            "a key of {} bytes is longer than the limit of {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

impl Shared {
    fn check_value(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_key(key)?;
        let limit = self.limits.max_value_bytes;
        if value.len() > limit {
            return Err(KvError::Other(format!(
                "the value for `{key}` has {} bytes, over the limit of {limit} (keyvalue max-value-bytes)",
                value.len()
            )));
        }
        Ok(())
    }
}

impl store::Host for KvView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<BucketHandle>, KvError> {
        let shared = self.context()?.clone();
        let Some(name) = shared.limits.resolve_bucket(&identifier) else {
            if shared.hinted.first(&identifier) {
                tracing::warn!(
                    "a guest opened the key-value bucket `{}`, which is not declared; add it to \
                     {} to grant it",
                    identifier.escape_debug(),
                    crate::settings::BUCKETS
                );
            }
            return Err(KvError::NoSuchStore);
        };
        let store = shared.store.get().await.map_err(|err| {
            KvError::Other(format!("the key-value store cannot be opened: {err:#}"))
        })?;
        let bucket = store.bucket(&name).await?;
        Ok(self.table.push(BucketHandle { name, bucket })?)
    }

    fn convert_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        match err {
            KvError::NoSuchStore => Ok(store::Error::NoSuchStore),
            KvError::AccessDenied => Ok(store::Error::AccessDenied),
            KvError::Other(message) => Ok(store::Error::Other(message)),
            KvError::Trap(err) => Err(err),
        }
    }
}

impl store::HostBucket for KvView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KvError> {
        check_key(&key)?;
        let (_, bucket) = opened_bucket(self.table, &bucket)?;
        bucket.get(&key).await
    }

    async fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        self.context()?.check_value(&key, &value)?;
        let (_, bucket) = opened_bucket(self.table, &bucket)?;
        bucket.set(&key, value).await
    }

    async fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<(), KvError> {
        check_key(&key)?;
        let (_, bucket) = opened_bucket(self.table, &bucket)?;
        bucket.delete(&key).await
    }

    async fn exists(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> Result<bool, KvError> {
        check_key(&key)?;
        let (_, bucket) = opened_bucket(self.table, &bucket)?;
        bucket.exists(&key).await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KvError> {
        let (name, bucket) = opened_bucket(self.table, &bucket)?;
        let cursors = &self.context()?.cursors;
        let after = cursor
            .map(|cursor| cursors.resume(cursor, &name))
            .transpose()?;
        let mut keys = bucket.keys_after(after.as_deref(), PAGE + 1).await?;
        let more = keys.len() > PAGE;
        keys.truncate(PAGE);
        let cursor = match keys.last() {
            Some(last) if more => Some(cursors.issue(&name, last)),
            _ => None,
        };
        Ok(store::KeyResponse { keys, cursor })
    }

    async fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.drop_resource(bucket)
    }
}

impl atomics::Host for KvView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: u64,
    ) -> Result<u64, KvError> {
        check_key(&key)?;
        let (_, bucket) = opened_bucket(self.table, &bucket)?;
        bucket.increment(&key, delta).await
    }
}

impl batch::Host for KvView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        keys.iter().try_for_each(|key| check_key(key))?;
        let (_, bucket) = opened_bucket(self.table, &bucket)?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let value = bucket.get(&key).await?;
            values.push(value.map(|value| (key, value)));
        }
        Ok(values)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        for (key, value) in &key_values {
            self.context()?.check_value(key, value)?;
        }
        let (_, bucket) = opened_bucket(self.table, &bucket)?;
        bucket.set_many(key_values).await
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        keys.iter().try_for_each(|key| check_key(key))?;
        let (_, bucket) = opened_bucket(self.table, &bucket)?;
        bucket.delete_many(keys).await
    }
}

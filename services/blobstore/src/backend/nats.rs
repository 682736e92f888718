//! The NATS backend: a JetStream object store per container, under the container's name, so any
//! NATS client (`nats object get photos cat.png`) reads what guests wrote.
//!
//! Guests share the NATS account with whatever else uses it, so they reach only object stores
//! meant for them: those tempo created (marked by their description) and those
//! `[blobstore] containers` declares. Any other application's object store does not exist for them.

use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use futures::TryStreamExt as _;
use tempo_nats::NatsServer;
use tokio::io::AsyncReadExt as _;

use super::{Blobs, ObjectStat};
use crate::BlobError;
use crate::access::Grants;

/// The description tempo gives the object stores it creates for guests.
const GUEST_STORE: &str = "created by tempo for guests";

/// How long a JetStream request may take before the guest gets an error (NATS may be down).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// JetStream object stores on one NATS server or cluster.
pub(crate) struct Nats {
    server: NatsServer,
    js: jetstream::Context,
    max_object_bytes: u64,
    grants: std::sync::Arc<Grants>,
}

impl Nats {
    /// Connects to `server`.
    pub(crate) async fn connect(
        server: &NatsServer,
        max_object_bytes: usize,
        grants: &std::sync::Arc<Grants>,
    ) -> anyhow::Result<Self> {
        let client = server.client().await?;
        Ok(Self {
            server: server.clone(),
            js: jetstream::ContextBuilder::new()
                .timeout(REQUEST_TIMEOUT)
                .build(client),
            max_object_bytes: u64::try_from(max_object_bytes).unwrap_or(u64::MAX),
            grants: grants.clone(),
        })
    }

    /// The object store of `container`, telling a missing container from NATS failing.
    async fn store(&self, container: &str) -> Result<object_store::ObjectStore, BlobError> {
        match self.js.get_object_store(container).await {
            Ok(store) => {
                tempo_nats::call_succeeded();
                Ok(store)
            }
            Err(err) => match self.container_created(container).await {
                Ok(None) => Err(BlobError::NoSuchContainer(container.to_owned())),
                _ => Err(nats(err)),
            },
        }
    }
}

/// A failed JetStream call as the guest's error, noted for the log of outages.
fn nats(err: impl std::error::Error + 'static) -> BlobError {
    let hint = tempo_nats::call_failed("a blob call", &err);
    BlobError::nats(format!("{err}{hint}"))
}

fn seconds(time: &async_nats::jetstream::stream::Info) -> u64 {
    u64::try_from(time.created.unix_timestamp()).unwrap_or(0)
}

#[async_trait::async_trait]
impl Blobs for Nats {
    async fn create_container(&self, container: &str) -> Result<(), BlobError> {
        if self.container_created(container).await?.is_some() {
            return Err(BlobError::ContainerExists(container.to_owned()));
        }
        self.js
            .create_object_store(object_store::Config {
                bucket: container.to_owned(),
                description: Some(GUEST_STORE.to_owned()),
                num_replicas: self.server.replicas(),
                ..object_store::Config::default()
            })
            .await
            .map_err(|err| {
                let hint = tempo_nats::call_failed("a blob call", &err);
                BlobError::nats(format!("{err}{}{hint}", self.server.replicas_asked()))
            })?;
        Ok(())
    }

    async fn container_created(&self, container: &str) -> Result<Option<u64>, BlobError> {
        match self.js.get_stream(format!("OBJ_{container}")).await {
            Ok(mut stream) => {
                let info = stream.info().await.map_err(nats)?;
                let for_guests = info.config.description.as_deref() == Some(GUEST_STORE);
                if !for_guests && !self.grants.declares(container) {
                    self.grants.hint(
                        container,
                        "is an object store tempo did not create for guests",
                    );
                    return Ok(None);
                }
                self.server.keep_replicas(
                    &format!("the JetStream object store `{container}`"),
                    info.config.num_replicas,
                );
                Ok(Some(seconds(info)))
            }
            Err(err) if tempo_nats::stream_missing(&err) => Ok(None),
            Err(err) => Err(nats(err)),
        }
    }

    async fn delete_container(&self, container: &str) -> Result<(), BlobError> {
        self.js.delete_object_store(container).await.map_err(nats)
    }

    async fn list_objects(&self, container: &str) -> Result<Vec<String>, BlobError> {
        let store = self.store(container).await?;
        let list = store.list().await.map_err(nats)?;
        let infos: Vec<object_store::ObjectInfo> = list.try_collect().await.map_err(nats)?;
        Ok(infos
            .into_iter()
            .filter(|info| !info.deleted)
            .map(|info| info.name)
            .collect())
    }

    async fn read(&self, container: &str, object: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(stat) = self.stat(container, object).await? else {
            return Ok(None);
        };
        if stat.size > self.max_object_bytes {
            return Err(BlobError::too_large(
                object,
                container,
                self.max_object_bytes,
            ));
        }
        let store = self.store(container).await?;
        let reader = store.get(object).await.map_err(nats)?;
        // Never more than the limit, even if the object was replaced since `stat`.
        let mut bytes = Vec::new();
        reader
            .take(self.max_object_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(nats)?;
        if bytes.len() as u64 > self.max_object_bytes {
            return Err(BlobError::grew(object, container));
        }
        Ok(Some(bytes))
    }

    async fn write(&self, container: &str, object: &str, data: Vec<u8>) -> Result<(), BlobError> {
        let store = self.store(container).await?;
        store
            .put(object, &mut data.as_slice())
            .await
            .map_err(nats)?;
        Ok(())
    }

    async fn delete_object(&self, container: &str, object: &str) -> Result<(), BlobError> {
        if self.stat(container, object).await?.is_none() {
            return Ok(());
        }
        let store = self.store(container).await?;
        store.delete(object).await.map_err(nats)
    }

    async fn stat(&self, container: &str, object: &str) -> Result<Option<ObjectStat>, BlobError> {
        let store = self.store(container).await?;
        match store.info(object).await {
            Ok(info) if !info.deleted => Ok(Some(ObjectStat {
                created_at: info
                    .modified
                    .map_or(0, |time| u64::try_from(time.unix_timestamp()).unwrap_or(0)),
                size: info.size as u64,
            })),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == object_store::InfoErrorKind::NotFound => Ok(None),
            Err(err) => Err(nats(err)),
        }
    }
}

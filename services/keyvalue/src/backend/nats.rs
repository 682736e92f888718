//! The NATS backend: a JetStream key-value bucket per wasi bucket, under the same name, so any
//! NATS client (`nats kv get default counter`) reads what guests wrote.
//!
//! NATS keys allow `[-/_=.a-zA-Z0-9]` and no leading, trailing or doubled `.`; any other byte of
//! a guest's key is written `=HH` (and `=` itself `=3D`), so keys that are valid NATS keys are
//! stored as they are and every key round-trips.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, kv};
use futures::TryStreamExt as _;
use tempo_nats::NatsServer;
use tempo_runtime_core::names::Escaping;

use super::{Bucket, Store, incremented};
use crate::KvError;

/// How long a JetStream request may take before the guest gets an error (NATS may be down).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How often an increment retries when another writer changed the key in between.
const INCREMENT_ATTEMPTS: usize = 32;

/// JetStream KV buckets on one NATS server or cluster.
pub(crate) struct Nats {
    buckets: HashMap<String, kv::Store>,
}

impl Nats {
    /// Connects to `server` and makes sure each of `buckets` exists (creating it with one value per
    /// key, file storage and `[nats] replicas`).
    pub(crate) async fn connect(
        server: &NatsServer,
        buckets: &[String],
        max_value_bytes: usize,
    ) -> anyhow::Result<Self> {
        let client = server.client().await?;
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .build(client);
        let mut stores = HashMap::new();
        for bucket in buckets {
            let what = format!("the opening of the JetStream KV bucket `{bucket}`");
            let open = || open_bucket(&js, server, bucket, max_value_bytes);
            let store = tempo_nats::patiently(&what, open).await?;
            stores.insert(bucket.clone(), store);
        }
        Ok(Self { buckets: stores })
    }
}

/// The bucket `bucket` on `server`: the one there, or a new one (one value per key, file storage,
/// `[nats] replicas`) when there is none. A lookup that fails otherwise is an error.
async fn open_bucket(
    js: &jetstream::Context,
    server: &NatsServer,
    bucket: &str,
    max_value_bytes: usize,
) -> anyhow::Result<kv::Store> {
    let url = server.url();
    match js.get_key_value(bucket).await {
        Ok(store) => {
            // Made before, perhaps with another replica count: kept as it is.
            let status = store.status().await.with_context(|| {
                format!("cannot read the JetStream KV bucket `{bucket}` on {url}")
            })?;
            let what = format!("the JetStream KV bucket `{bucket}`");
            server.keep_replicas(&what, status.info.config.num_replicas);
            Ok(store)
        }
        Err(err) if tempo_nats::stream_missing(&err) => js
            .create_key_value(kv::Config {
                bucket: bucket.to_owned(),
                history: 1,
                max_value_size: i32::try_from(max_value_bytes).unwrap_or(i32::MAX),
                num_replicas: server.replicas(),
                ..kv::Config::default()
            })
            .await
            .with_context(|| {
                format!(
                    "cannot create the JetStream KV bucket `{bucket}` on {url}{}",
                    server.replicas_asked()
                )
            }),
        Err(err) => Err(anyhow::Error::new(err).context(format!(
            "cannot read the JetStream KV bucket `{bucket}` on {url}"
        ))),
    }
}

#[async_trait::async_trait]
impl Store for Nats {
    async fn bucket(&self, name: &str) -> Result<Arc<dyn Bucket>, KvError> {
        let store = self.buckets.get(name).ok_or(KvError::NoSuchStore)?;
        Ok(Arc::new(NatsBucket {
            store: store.clone(),
        }))
    }
}

struct NatsBucket {
    store: kv::Store,
}

/// A failed JetStream call as the guest's error, noted for the log of outages.
fn nats_error(err: impl std::error::Error + 'static) -> KvError {
    let hint = tempo_nats::call_failed("a KV call", &err);
    KvError::Other(format!("NATS: {err}{hint}"))
}

/// The result of a JetStream call, noted for the log of outages; an error as the guest's.
fn noted<T, E: std::error::Error + 'static>(result: Result<T, E>) -> Result<T, KvError> {
    match result {
        Ok(value) => {
            tempo_nats::call_succeeded();
            Ok(value)
        }
        Err(err) => Err(nats_error(err)),
    }
}

#[async_trait::async_trait]
impl Bucket for NatsBucket {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let value = noted(self.store.get(encode_key(key)).await)?;
        Ok(value.map(|bytes| bytes.to_vec()))
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        noted(self.store.put(encode_key(key), value.into()).await)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        noted(self.store.delete(encode_key(key)).await)
    }

    /// NATS lists a bucket's keys in no order and from the start only: each page reads every key
    /// (O(n)) but holds only the page (O(page) memory).
    async fn keys_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, KvError> {
        let mut keys = noted(self.store.keys().await)?;
        let mut page = std::collections::BTreeSet::new();
        while let Some(key) = keys.try_next().await.map_err(nats_error)? {
            let key = decode_key(&key);
            if after.is_some_and(|after| key.as_str() <= after) {
                continue;
            }
            page.insert(key);
            if page.len() > limit {
                page.pop_last();
            }
        }
        Ok(page.into_iter().collect())
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        let stored = encode_key(key);
        for _ in 0..INCREMENT_ATTEMPTS {
            let entry = noted(self.store.entry(stored.clone()).await)?;
            let live = entry.filter(|entry| entry.operation == kv::Operation::Put);
            let (next, bytes) =
                incremented(key, live.as_ref().map(|entry| &entry.value[..]), delta)?;
            // Optimistic concurrency: write only if nobody wrote since the read, else read again.
            let written = match &live {
                Some(entry) => self
                    .store
                    .update(stored.clone(), bytes.into(), entry.revision)
                    .await
                    .map_err(|err| {
                        let lost_race = err.kind() == kv::UpdateErrorKind::WrongLastRevision;
                        (lost_race, nats_error(err))
                    }),
                None => self
                    .store
                    .create(stored.clone(), bytes.into())
                    .await
                    .map_err(|err| {
                        let lost_race = err.kind() == kv::CreateErrorKind::AlreadyExists;
                        (lost_race, nats_error(err))
                    }),
            };
            match written {
                Ok(_) => return Ok(next),
                Err((true, _)) => continue,
                Err((false, err)) => return Err(err),
            }
        }
        Err(KvError::Other(format!(
            "`{key}` kept changing during {INCREMENT_ATTEMPTS} attempts to increment it"
        )))
    }
}

/// How guest keys are written as NATS keys (see the module documentation).
const NATS_KEYS: Escaping = Escaping {
    marker: b'=',
    keep: |bytes, i| {
        let byte = bytes[i];
        let plain = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'/' | b'_');
        plain || (byte == b'.' && i > 0 && i + 1 < bytes.len() && bytes[i - 1] != b'.')
    },
};

/// A guest key as a valid NATS key.
pub(crate) fn encode_key(key: &str) -> String {
    NATS_KEYS.escape(key)
}

/// The guest key that [`encode_key`] stored as `stored`. A key written by another NATS client
/// that is not valid escaping is returned as it is.
pub(crate) fn decode_key(stored: &str) -> String {
    String::from_utf8(NATS_KEYS.unescape(stored)).unwrap_or_else(|_| stored.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_nats_keys_are_stored_as_they_are() {
        for key in ["counter", "user.42", "a/b/c", "with_under-score", "x.y.z"] {
            assert_eq!(encode_key(key), key);
        }
    }

    #[test]
    fn other_keys_are_escaped_and_round_trip() {
        for (key, stored) in [
            ("user:42", "user=3A42"),
            ("a=b", "a=3Db"),
            (".hidden", "=2Ehidden"),
            ("end.", "end=2E"),
            ("a..b", "a.=2Eb"),
            ("sp ace", "sp=20ace"),
            ("é", "=C3=A9"),
        ] {
            assert_eq!(encode_key(key), stored, "{key}");
            assert_eq!(decode_key(stored), key);
        }
    }

    #[test]
    fn every_escaped_key_is_a_valid_nats_key() {
        for key in ["user:42", "..", ".", "=", "a b c", "日本", "x.", "-.-"] {
            let stored = encode_key(key);
            assert!(
                !stored.starts_with('.') && !stored.ends_with('.') && !stored.contains(".."),
                "{stored}"
            );
            assert!(
                stored
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b)),
                "{stored}"
            );
            assert_eq!(decode_key(&stored), key);
        }
    }
}

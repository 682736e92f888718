//! The embedded backend: one redb file, a table per bucket. Writes commit durably before they
//! return, so data survives a restart of tempo; redb calls run on the blocking pool. redb has one
//! writer at a time: writes queue for it as tasks, not as blocking threads parked on its lock.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use tempo_runtime_core::settings::STATE_DIR;

use anyhow::Context as _;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition, TableError};
use tokio::sync::Semaphore;

use super::{Bucket, Store, incremented};
use crate::KvError;

/// A redb database of buckets.
pub(crate) struct Embedded {
    db: Arc<Database>,
    writer: Arc<Semaphore>,
}

impl Embedded {
    /// Opens (creating it and its folder if needed) the store at `path`.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
        }
        let db = Database::create(path).map_err(|err| match err {
            redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                "`{}` is in use by another tempo: give this one its own {}",
                path.display(),
                STATE_DIR.how_to_set()
            ),
            other => anyhow::anyhow!(
                "cannot open the key-value store `{}`: {other}",
                path.display()
            ),
        })?;
        Ok(Self {
            db: Arc::new(db),
            writer: Arc::new(Semaphore::new(1)),
        })
    }
}

#[async_trait::async_trait]
impl Store for Embedded {
    async fn bucket(&self, name: &str) -> Result<Arc<dyn Bucket>, KvError> {
        Ok(Arc::new(EmbeddedBucket {
            db: self.db.clone(),
            writer: self.writer.clone(),
            table: format!("bucket:{name}"),
        }))
    }
}

struct EmbeddedBucket {
    db: Arc<Database>,
    /// The database's one writer slot.
    writer: Arc<Semaphore>,
    table: String,
}

fn other(err: impl std::fmt::Display) -> KvError {
    KvError::Other(format!("embedded store: {err}"))
}

impl EmbeddedBucket {
    /// Runs `work` on the blocking pool with the database and this bucket's table name.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database, TableDefinition<'_, &str, &[u8]>) -> Result<T, KvError>
        + Send
        + 'static,
    ) -> Result<T, KvError> {
        let (db, table) = (self.db.clone(), self.table.clone());
        tokio::task::spawn_blocking(move || work(&db, TableDefinition::new(&table)))
            .await
            .map_err(other)?
    }

    /// Runs `write` in a write transaction on this bucket's table and commits it.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut redb::Table<'_, &str, &[u8]>) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        // Held by the blocking work itself, so that a caller that stops waiting does not let
        // the next writer in while this one still writes.
        let writer = self.writer.clone().acquire_owned().await.map_err(other)?;
        self.blocking(move |db, definition| {
            let _writer = writer;
            let txn = db.begin_write().map_err(other)?;
            let result = {
                let mut table = txn.open_table(definition).map_err(other)?;
                write(&mut table)?
            };
            txn.commit().map_err(other)?;
            Ok(result)
        })
        .await
    }
}

#[async_trait::async_trait]
impl Bucket for EmbeddedBucket {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = key.to_owned();
        self.blocking(move |db, definition| {
            let txn = db.begin_read().map_err(other)?;
            let table = match txn.open_table(definition) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(err) => return Err(other(err)),
            };
            Ok(table
                .get(key.as_str())
                .map_err(other)?
                .map(|value| value.value().to_vec()))
        })
        .await
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.set_many(vec![(key.to_owned(), value)]).await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.delete_many(vec![key.to_owned()]).await
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.write(move |table| {
            for (key, value) in &entries {
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(other)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError> {
        self.write(move |table| {
            for key in &keys {
                table.remove(key.as_str()).map_err(other)?;
            }
            Ok(())
        })
        .await
    }

    async fn keys_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, KvError> {
        let after = after.map(str::to_owned);
        self.blocking(move |db, definition| {
            let txn = db.begin_read().map_err(other)?;
            let table = match txn.open_table(definition) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(err) => return Err(other(err)),
            };
            let start = match &after {
                Some(after) => Bound::Excluded(after.as_str()),
                None => Bound::Unbounded,
            };
            let mut keys = Vec::new();
            for entry in table
                .range::<&str>((start, Bound::Unbounded))
                .map_err(other)?
                .take(limit)
            {
                let (key, _) = entry.map_err(other)?;
                keys.push(key.value().to_owned());
            }
            Ok(keys)
        })
        .await
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError> {
        let key = key.to_owned();
        self.write(move |table| {
            let current = table
                .get(key.as_str())
                .map_err(other)?
                .map(|value| value.value().to_vec());
            let (next, bytes) = incremented(&key, current.as_deref(), delta)?;
            table
                .insert(key.as_str(), bytes.as_slice())
                .map_err(other)?;
            Ok(next)
        })
        .await
    }
}

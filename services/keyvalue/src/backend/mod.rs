//! Where the key-value data lives: behind two small traits, so the host code is written once.

pub(crate) mod embedded;
pub(crate) mod nats;

use std::sync::Arc;

use crate::KvError;

/// A key-value store with named buckets.
#[async_trait::async_trait]
pub(crate) trait Store: Send + Sync {
    /// The bucket called `name`, which the configuration declared.
    async fn bucket(&self, name: &str) -> Result<Arc<dyn Bucket>, KvError>;
}

/// One bucket. Keys are any non-empty string; values any bytes.
#[async_trait::async_trait]
pub(crate) trait Bucket: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), KvError>;

    /// Deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), KvError>;

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.get(key).await?.is_some())
    }

    /// Sets several keys; backends that can make it one write do.
    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        for (key, value) in entries {
            self.set(&key, value).await?;
        }
        Ok(())
    }

    /// Deletes several keys; backends that can make it one write do.
    async fn delete_many(&self, keys: Vec<String>) -> Result<(), KvError> {
        for key in keys {
            self.delete(&key).await?;
        }
        Ok(())
    }

    /// Up to `limit` keys, sorted, of those that sort after `after` (all, without it).
    async fn keys_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, KvError>;

    /// Adds `delta` to the decimal number stored at `key` (0 when absent) atomically and returns
    /// the new value; refuses values that are not numbers and sums that overflow a `u64`.
    async fn increment(&self, key: &str, delta: u64) -> Result<u64, KvError>;
}

/// The counter arithmetic both backends share: parse the stored decimal (absent is 0), add.
pub(crate) fn incremented(
    key: &str,
    current: Option<&[u8]>,
    delta: u64,
) -> Result<(u64, Vec<u8>), KvError> {
    let current = match current {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or_else(|| {
                KvError::Other(format!(
                    "`{key}` holds a value that is not a decimal number"
                ))
            })?,
    };
    let next = current.checked_add(delta).ok_or_else(|| {
        KvError::Other(format!(
            "incrementing `{key}` ({current}) by {delta} overflows a u64"
        ))
    })?;
    Ok((next, next.to_string().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::incremented;

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(incremented("c", None, 5).unwrap(), (5, b"5".to_vec()));
        assert_eq!(
            incremented("c", Some(b"41"), 1).unwrap(),
            (42, b"42".to_vec())
        );
    }

    #[test]
    fn bad_counters_and_overflow_are_errors() {
        let max = u64::MAX.to_string();
        assert!(
            incremented("c", Some(max.as_bytes()), 1)
                .unwrap_err()
                .to_string()
                .contains("overflows")
        );
        assert!(
            incremented("c", Some(b"ten"), 1)
                .unwrap_err()
                .to_string()
                .contains("not a decimal")
        );
        assert!(incremented("c", Some(&[0xff]), 1).is_err());
    }
}

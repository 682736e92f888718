//! Key-value storage (`wasi:keyvalue`): buckets of byte values, with JSON and atomic increments.
//!
//! ```no_run
//! use tempo_sdk::keyvalue::Bucket;
//!
//! # fn main() -> Result<(), tempo_sdk::keyvalue::Error> {
//! let bucket = Bucket::open("default")?;
//! bucket.set_json("user:ada", &serde_json::json!({ "name": "Ada" }))?;
//! let visits = bucket.increment("visits", 1)?;
//! # Ok(()) }
//! ```
//!
//! A bucket other than `default` must be declared in tempo.toml (`[keyvalue] buckets`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wasi::keyvalue::{atomics, batch, store};

/// Why a key-value operation failed.
#[derive(Debug)]
pub enum Error {
    /// No bucket has that name (or it is not declared).
    NoSuchStore,
    /// The bucket is not open to this component.
    AccessDenied,
    /// The host's store failed; the text says why.
    Other(String),
    /// A stored value is not the JSON asked for.
    Json(serde_json::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSuchStore => f.write_str("no such bucket"),
            Self::AccessDenied => f.write_str("access to the bucket is denied"),
            Self::Other(text) => f.write_str(text),
            Self::Json(err) => write!(f, "the value is not the JSON expected: {err}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::NoSuchStore => Self::NoSuchStore,
            store::Error::AccessDenied => Self::AccessDenied,
            store::Error::Other(text) => Self::Other(text),
        }
    }
}

/// An open bucket.
pub struct Bucket {
    bucket: store::Bucket,
}

impl Bucket {
    /// Opens the bucket called `name`.
    pub fn open(name: &str) -> Result<Self, Error> {
        Ok(Self {
            bucket: store::open(name)?,
        })
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.bucket.get(key)?)
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        Ok(self.bucket.set(key, value.as_ref())?)
    }

    /// Removes `key` (nothing happens if it has no value).
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        Ok(self.bucket.delete(key)?)
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        Ok(self.bucket.exists(key)?)
    }

    /// The value of `key` read as JSON.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get(key)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(Error::Json))
            .transpose()
    }

    /// Sets `key` to `value` written as JSON.
    pub fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        let bytes = serde_json::to_vec(value).map_err(Error::Json)?;
        self.set(key, bytes)
    }

    /// Adds `delta` to the number stored at `key` (0 when it has none) atomically, and returns
    /// the new number.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
        Ok(atomics::increment(&self.bucket, key, delta)?)
    }

    /// The values of `keys`, in their order (`None` for a key without one).
    pub fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let keys: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        let found = batch::get_many(&self.bucket, &keys)?;
        Ok(found
            .into_iter()
            .map(|pair| pair.map(|(_, value)| value))
            .collect())
    }

    /// Sets each key to its value.
    pub fn set_many(&self, pairs: &[(&str, &[u8])]) -> Result<(), Error> {
        let pairs: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.to_vec()))
            .collect();
        Ok(batch::set_many(&self.bucket, &pairs)?)
    }

    /// Removes each of `keys`.
    pub fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        let keys: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        Ok(batch::delete_many(&self.bucket, &keys)?)
    }

    /// Every key, a page at a time as the host gives them.
    pub fn keys(&self) -> Keys<'_> {
        Keys {
            bucket: &self.bucket,
            page: Vec::new().into_iter(),
            cursor: Some(None),
        }
    }
}

/// The keys of a bucket ([`Bucket::keys`]): an error ends them.
pub struct Keys<'a> {
    bucket: &'a store::Bucket,
    page: std::vec::IntoIter<String>,
    /// The cursor of the next page: `None` when the last page was read.
    cursor: Option<Option<u64>>,
}

impl Iterator for Keys<'_> {
    type Item = Result<String, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.page.next() {
                return Some(Ok(key));
            }
            let cursor = self.cursor.take()?;
            match self.bucket.list_keys(cursor) {
                Ok(response) => {
                    self.page = response.keys.into_iter();
                    self.cursor = response.cursor.map(Some);
                }
                Err(error) => return Some(Err(error.into())),
            }
        }
    }
}

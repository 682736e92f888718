//! Configuration (`wasi:config`): the values tempo.toml's `[config]` section and the
//! `TEMPO_CONFIG_<KEY>` variables give the component.
//!
//! ```no_run
//! # fn main() -> Result<(), tempo_sdk::config::Error> {
//! let greeting = tempo_sdk::config::get("greeting")?.unwrap_or_else(|| "Hello".into());
//! let retries: u32 = tempo_sdk::config::get_as("retries")?.unwrap_or(3);
//! # Ok(()) }
//! ```

use std::str::FromStr;

use crate::bindings::wasi::config::store;

/// Why a value could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host could not read its configuration.
    Host(String),
    /// The value of `key` is not what was asked for.
    Invalid {
        /// The key.
        key: String,
        /// Why its value does not parse.
        reason: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Host(text) => write!(f, "the configuration cannot be read: {text}"),
            Self::Invalid { key, reason } => write!(f, "config value `{key}` is invalid: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::Upstream(text) | store::Error::Io(text) => Self::Host(text),
        }
    }
}

/// The value of `key`, if it has one.
pub fn get(key: &str) -> Result<Option<String>, Error> {
    Ok(store::get(key)?)
}

/// The value of `key` parsed as `T` (`u32`, `bool`, `f64`, …).
pub fn get_as<T>(key: &str) -> Result<Option<T>, Error>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    get(key)?
        .map(|value| {
            value.trim().parse().map_err(|err: T::Err| Error::Invalid {
                key: key.to_owned(),
                reason: err.to_string(),
            })
        })
        .transpose()
}

/// Every key and value.
pub fn all() -> Result<Vec<(String, String)>, Error> {
    Ok(store::get_all()?)
}

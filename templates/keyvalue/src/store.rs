//! The data, in the `default` bucket of `wasi:keyvalue`. Tested with `cargo tempo test`, which
//! runs the tests on tempo's runtime with a fresh store.

use crate::wasi::keyvalue::{atomics, store};

/// The key of the visit counter.
const VISITS: &str = "visits";

fn bucket() -> Result<store::Bucket, String> {
    store::open("default").map_err(describe)
}

fn describe(err: store::Error) -> String {
    match err {
        store::Error::NoSuchStore => "no such bucket".to_owned(),
        store::Error::AccessDenied => "access denied".to_owned(),
        store::Error::Other(message) => message,
    }
}

/// Counts one more visit and returns the count.
pub fn record_visit() -> Result<u64, String> {
    atomics::increment(&bucket()?, VISITS, 1).map_err(describe)
}

/// The value stored under `key`.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, String> {
    bucket()?.get(key).map_err(describe)
}

/// Stores `value` under `key`.
pub fn put(key: &str, value: &[u8]) -> Result<(), String> {
    bucket()?.set(key, value).map_err(describe)
}

/// Deletes `key`.
pub fn delete(key: &str) -> Result<(), String> {
    bucket()?.delete(key).map_err(describe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_count_up() {
        let first = record_visit().unwrap();
        assert_eq!(record_visit().unwrap(), first + 1);
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(get("greeting").unwrap(), None);
        put("greeting", b"hello").unwrap();
        assert_eq!(get("greeting").unwrap(), Some(b"hello".to_vec()));
        delete("greeting").unwrap();
        assert_eq!(get("greeting").unwrap(), None);
    }
}

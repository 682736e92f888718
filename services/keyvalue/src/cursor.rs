//! `list-keys` cursors. The WIT's cursor is a number, so each one the host hands out names, in a
//! bounded table, the bucket and the last key of the page it follows; the next page starts after
//! that key, so each page costs what the page holds, not what came before it. Cursors are random,
//! so a guest cannot guess one it was not given; the oldest are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use crate::KvError;

/// How many cursors are remembered at once (each holds a bucket name and a key of at most
/// [`crate::MAX_KEY_BYTES`]: about 10 MB in all).
const MAX_CURSORS: usize = 10_000;

/// The cursors handed out and not yet forgotten.
#[derive(Default)]
pub(crate) struct Cursors {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    after: HashMap<u64, (String, String)>,
    order: VecDeque<u64>,
}

impl Cursors {
    /// A new cursor for the page after `last_key` in `bucket`.
    pub(crate) fn issue(&self, bucket: &str, last_key: &str) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let cursor = loop {
            let candidate = rand::random::<u64>();
            if !inner.after.contains_key(&candidate) {
                break candidate;
            }
        };
        inner
            .after
            .insert(cursor, (bucket.to_owned(), last_key.to_owned()));
        inner.order.push_back(cursor);
        while inner.order.len() > MAX_CURSORS {
            if let Some(oldest) = inner.order.pop_front() {
                inner.after.remove(&oldest);
            }
        }
        cursor
    }

    /// The key after which `cursor`'s page starts, if it was handed out for `bucket` and is still
    /// remembered. (It stays valid: a guest may read the same page again.)
    pub(crate) fn resume(&self, cursor: u64, bucket: &str) -> Result<String, KvError> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match inner.after.get(&cursor) {
            Some((issued_for, after)) if issued_for == bucket => Ok(after.clone()),
            Some((issued_for, _)) => Err(KvError::Other(format!(
                "cursor {cursor} belongs to bucket `{issued_for}`, not `{bucket}`"
            ))),
            None => Err(KvError::Other(format!(
                "cursor {cursor} is unknown or expired: list bucket `{bucket}` from the start"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_resumes_after_its_key_in_its_bucket_only() {
        let cursors = Cursors::default();
        let cursor = cursors.issue("b", "k42");
        assert_eq!(cursors.resume(cursor, "b").unwrap(), "k42");
        assert_eq!(cursors.resume(cursor, "b").unwrap(), "k42", "reusable");
        let err = cursors.resume(cursor, "other").unwrap_err().to_string();
        assert!(err.contains("belongs to bucket `b`"), "{err}");
        let err = cursors.resume(cursor ^ 1, "b").unwrap_err().to_string();
        assert!(err.contains("unknown or expired"), "{err}");
    }

    #[test]
    fn the_oldest_cursors_are_forgotten_first() {
        let cursors = Cursors::default();
        let first = cursors.issue("b", "first");
        let mut last = first;
        for i in 0..MAX_CURSORS {
            last = cursors.issue("b", &format!("k{i}"));
        }
        assert!(cursors.resume(first, "b").is_err());
        assert!(cursors.resume(last, "b").is_ok());
        assert_eq!(cursors.inner.lock().unwrap().after.len(), MAX_CURSORS);
    }
}

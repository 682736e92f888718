//! Saying a thing once: a guest that asks again and again for what it was refused must not flood
//! the host's log, so each service remembers which refusals it has explained.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// How many distinct keys are remembered; past it nothing more is said, so a guest inventing
/// new names cannot grow the set (or the log) without bound.
const MAX_KEYS: usize = 1000;

/// The keys already explained.
#[derive(Debug, Default)]
pub struct OnceSet {
    said: Mutex<BTreeSet<String>>,
}

impl OnceSet {
    /// Whether `key` is new, in which case it is remembered and the caller says its thing.
    pub fn first(&self, key: &str) -> bool {
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        said.len() < MAX_KEYS && !said.contains(key) && said.insert(key.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_once_and_never_more_than_the_bound() {
        let once = OnceSet::default();
        assert!(once.first("a"));
        assert!(!once.first("a"));
        for i in 0..2 * MAX_KEYS {
            once.first(&i.to_string());
        }
        assert!(!once.first("new after the bound"));
    }
}

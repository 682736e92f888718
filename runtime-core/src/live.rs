//! The live component: the version that new work runs on, swappable while work is in flight.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::version::Version;

/// An atomically swappable handle to the current [`Version`] of a component.
///
/// Triggers call [`LiveComponent::current`] once per unit of work and keep the returned `Arc`
/// until the work is done, so a [`swap`](LiveComponent::swap) never blocks, never waits for work in
/// flight, and never changes the version a request started on.
///
/// A live component also carries an optional *stale* note, set while the newest build of the
/// component could not replace the version being served, so triggers can tell clients.
#[derive(Clone)]
pub struct LiveComponent {
    current: Arc<ArcSwap<Version>>,
    stale: Arc<ArcSwapOption<String>>,
}

impl LiveComponent {
    /// A handle serving `version`.
    pub fn new(version: Version) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(version)),
            stale: Arc::default(),
        }
    }

    /// The version new work should run on.
    pub fn current(&self) -> Arc<Version> {
        self.current.load_full()
    }

    /// Makes `next` the version for new work and returns the one it replaces. Work already
    /// running keeps its version alive until it finishes.
    pub fn swap(&self, next: Version) -> Arc<Version> {
        self.current.swap(Arc::new(next))
    }

    /// Says why the version being served is not the newest build (`None` once it is again).
    pub fn set_stale(&self, note: Option<String>) {
        self.stale.store(note.map(Arc::new));
    }

    /// Why the version being served is not the newest build, if it is not.
    pub fn stale(&self) -> Option<Arc<String>> {
        self.stale.load_full()
    }
}

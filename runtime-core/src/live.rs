//! The live component: the version that new work runs on, swappable while work is in flight.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::version::Version;

/// An atomically swappable handle to the current [`Version`] of a component.
///
/// Triggers call [`LiveComponent::current`] once per unit of work and keep the returned `Arc`
/// until the work is done, so a [`swap`](LiveComponent::swap) never blocks, never waits for work in
/// flight, and never changes the version a request started on.
#[derive(Clone)]
pub struct LiveComponent {
    current: Arc<ArcSwap<Version>>,
}

impl LiveComponent {
    /// A handle serving `version`.
    pub fn new(version: Version) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(version)),
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
}

//! What one instance may consume: a deadline for the work it was started for, and a memory limit
//! for all of its linear memories together. A guest that loops is stopped at its deadline (the
//! epoch ticks it already yields on trap it, so its core is freed at once); one that waits on
//! something that never comes is dropped by the same deadline; growth past the memory limit
//! fails inside the guest (a Rust guest aborts), so the host's memory stays bounded.

use std::time::Duration;

use futures::FutureExt as _;
use futures::future::Either;
use opentelemetry::KeyValue;
use wasmtime::component::ResourceTableError;
use wasmtime::{ResourceLimiter, Trap};

use crate::metrics::metrics;
use crate::state::State;

/// The default deadline of an HTTP request's or a message's instance.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// The default memory of one instance: 128 MiB.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 128 << 20;

/// The default number of resources (streams, headers, buckets, messages…) one instance may hold
/// in the host at once: 10,000, where wasmtime allows a million.
pub const DEFAULT_MAX_RESOURCES: usize = 10_000;

/// What one instance may consume. The default limits nothing, for `wasi:cli` programs, which run
/// as long and as large as the user's own programs do; served components get
/// [`InstanceLimits::served`] or the user's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceLimits {
    /// How long an instance may work on one request or message.
    pub deadline: Option<Duration>,
    /// How many bytes of linear memory an instance may have, all memories together.
    pub max_memory_bytes: Option<usize>,
    /// How many host resources an instance may hold at once (its resource table's entries).
    pub max_resources: Option<usize>,
}

impl InstanceLimits {
    /// The defaults for served components: [`DEFAULT_DEADLINE`], [`DEFAULT_MAX_MEMORY_BYTES`]
    /// and [`DEFAULT_MAX_RESOURCES`].
    pub fn served() -> Self {
        Self {
            deadline: Some(DEFAULT_DEADLINE),
            max_memory_bytes: Some(DEFAULT_MAX_MEMORY_BYTES),
            max_resources: Some(DEFAULT_MAX_RESOURCES),
        }
    }

    /// A line for the startup banner.
    pub fn describe(&self) -> String {
        let deadline = match self.deadline {
            Some(deadline) => format!("deadline {deadline:?}"),
            None => "no deadline".to_owned(),
        };
        let memory = match self.max_memory_bytes {
            Some(bytes) => format!("{} MiB of memory", bytes >> 20),
            None => "unlimited memory".to_owned(),
        };
        let resources = match self.max_resources {
            Some(count) => format!(", {count} resources"),
            None => String::new(),
        };
        format!("{deadline}, {memory}{resources} per instance")
    }
}

/// The error of an instance stopped at its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the component ran past its deadline of {0:?} and was stopped")]
pub struct DeadlineExceeded(pub Duration);

/// Runs `work`, the guest's part of one request or message on `store`'s instance, within
/// `deadline`, counted from this call. A guest still computing traps at the deadline (see
/// [`crate::Version::new_store`]); one waiting on a host call is dropped here. Either way the
/// error is [`DeadlineExceeded`].
///
/// Not an `async fn`: one would keep `work` twice in its state (as its argument, and inside the
/// timeout it awaits), and every future built on it (a request's, a message's) would carry both
/// copies and move them at each spawn and first poll. This one holds `work` once.
pub fn within_deadline<T>(
    deadline: Option<Duration>,
    work: impl Future<Output = wasmtime::Result<T>>,
) -> impl Future<Output = anyhow::Result<T>> {
    let Some(deadline) = deadline else {
        return Either::Right(work.map(|outcome| outcome.map_err(anyhow::Error::from)));
    };
    Either::Left(
        tokio::time::timeout(deadline, work).map(move |outcome| match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                Err(DeadlineExceeded(deadline).into())
            }
            Ok(Err(err)) => Err(err.into()),
            Err(_elapsed) => Err(DeadlineExceeded(deadline).into()),
        }),
    )
}

/// Explains a failed instance by the limit it hit, if any, and counts it in `tempo.limits.hit`
/// (by `component` and `limit`): the deadline, or memory the guest was refused (a Rust guest
/// then aborts, which would otherwise read as a plain trap).
pub fn explain_failure(err: anyhow::Error, state: &State, component: &KeyValue) -> anyhow::Error {
    let (limit, err) = if err.is::<DeadlineExceeded>() {
        ("deadline", err)
    } else if let Some(full) = table_full(&err, state) {
        ("resources", full.into())
    } else if let Some(refused) = state.memory_refused() {
        // The guest's own failure (a Rust guest aborts: `unreachable`) says nothing of why.
        tracing::debug!("after refusing memory: {err:?}");
        ("memory", refused.into())
    } else {
        return err;
    };
    metrics().limit_hit(component, limit, 1);
    err
}

/// Whether `err` is the instance's resource table refusing a new entry.
fn table_full(err: &anyhow::Error, state: &State) -> Option<ResourcesExhausted> {
    let full = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<ResourceTableError>(),
            Some(ResourceTableError::Full)
        )
    });
    full.then(|| ResourcesExhausted(state.max_resources()))
}

/// An instance stopped for holding more host resources than its limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "the component held more than {0} host resources at once (streams, headers, handles) and was stopped"
)]
pub struct ResourcesExhausted(pub usize);

/// Memory growth refused to an instance; as an error, what stopped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the component asked for {} MiB of memory, over its limit of {} MiB, and failed",
    desired >> 20,
    limit >> 20
)]
pub struct MemoryRefused {
    /// The instance's memory, all memories together, had the growth been allowed.
    pub desired: usize,
    /// The limit.
    pub limit: usize,
}

/// Counts an instance's linear memory against its limit.
#[derive(Debug, Default)]
pub(crate) struct MemoryLimiter {
    limit: Option<usize>,
    used: usize,
    pub(crate) refused: Option<MemoryRefused>,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: Option<usize>) -> Self {
        Self {
            limit,
            used: 0,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used.saturating_add(desired.saturating_sub(current));
        match self.limit {
            Some(limit) if total > limit => {
                self.refused = Some(MemoryRefused {
                    desired: total,
                    limit,
                });
                Ok(false)
            }
            _ => {
                self.used = total;
                Ok(true)
            }
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A table element is a pointer: a million of them is 8 MB of host memory.
        Ok(desired <= 1 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_counts_every_memory_of_the_instance() {
        let mut limiter = MemoryLimiter::new(Some(100));
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 30, None).unwrap());
        assert!(!limiter.memory_growing(60, 80, None).unwrap());
        assert_eq!(
            limiter.refused,
            Some(MemoryRefused {
                desired: 110,
                limit: 100
            })
        );
        assert!(limiter.memory_growing(60, 70, None).unwrap());
        let mut unlimited = MemoryLimiter::new(None);
        assert!(unlimited.memory_growing(0, usize::MAX, None).unwrap());
    }

    #[tokio::test]
    async fn work_past_the_deadline_is_dropped_and_named() {
        let deadline = Some(Duration::from_millis(20));
        let never = std::future::pending::<wasmtime::Result<()>>();
        let err = within_deadline(deadline, never).await.unwrap_err();
        assert!(err.is::<DeadlineExceeded>(), "{err}");
        let interrupted = async { Err::<(), _>(wasmtime::Error::from(Trap::Interrupt)) };
        let err = within_deadline(deadline, interrupted).await.unwrap_err();
        assert!(err.is::<DeadlineExceeded>(), "{err}");
        let done = within_deadline(None, async { Ok(7) }).await.unwrap();
        assert_eq!(done, 7);
    }
}

//! Admission: how many instances may run at once, and how they are shared among the triggers.
//!
//! At most `max-instances` guests run at once (the pooling allocator is sized from the same
//! number, so an admitted request never finds the pool full). Each trigger gets a share of its
//! own: a trigger with a fixed demand (messaging's `concurrency`) gets exactly that, and HTTP gets
//! the rest, so that a flood of one kind of work cannot starve the other. Beyond its share, a
//! request waits in a short, bounded queue and is then turned away ([`Busy`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default number of instances that may run at once, as wasmtime's pool has by default.
pub const DEFAULT_MAX_INSTANCES: usize = 1000;

/// The default time a request may wait for an instance before it is turned away.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);

/// How many instances run at once, and how long work waits for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The most instances alive at once, every trigger together.
    pub max_instances: usize,
    /// How long a request waits for a free instance before it is turned away.
    pub queue_timeout: Duration,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            max_instances: DEFAULT_MAX_INSTANCES,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }
}

/// How many instances a trigger wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Demand {
    /// Exactly this many, and never more (a message handler's `concurrency`).
    Fixed {
        /// How many.
        instances: usize,
        /// The setting that asks for them, for errors.
        setting: &'static str,
    },
    /// Whatever the fixed demands leave.
    Rest,
}

impl Admission {
    /// A line for the startup banner.
    pub fn describe(&self) -> String {
        format!(
            "at most {} instances at once, waiting up to {:?} for one",
            self.max_instances, self.queue_timeout
        )
    }

    /// Divides the instances among triggers asking for `demands`, one share each, in order. An
    /// error, naming the settings, when the fixed demands leave nothing to the others.
    pub fn divide(&self, demands: &[Demand]) -> Result<Vec<Slots>, String> {
        let fixed: usize = demands
            .iter()
            .map(|demand| match demand {
                Demand::Fixed { instances, .. } => (*instances).max(1),
                Demand::Rest => 0,
            })
            .sum();
        let wants_rest = demands.contains(&Demand::Rest);
        let left = self.max_instances.checked_sub(fixed).filter(|left| {
            // Something must be left for the triggers taking the rest.
            !wants_rest || *left > 0
        });
        let Some(left) = left else {
            let settings: Vec<String> = demands
                .iter()
                .filter_map(|demand| match demand {
                    Demand::Fixed { instances, setting } => {
                        Some(format!("`{setting}` ({instances})"))
                    }
                    Demand::Rest => None,
                })
                .collect();
            let settings = settings.join(" and ");
            let max = self.max_instances;
            let shortfall = if wants_rest {
                format!(
                    "`max-instances` ({max}) leaves no instances for HTTP requests after {settings}"
                )
            } else {
                format!("`max-instances` ({max}) is fewer than {settings}")
            };
            return Err(format!(
                "{shortfall}: raise `max-instances` or lower {settings}"
            ));
        };
        Ok(demands
            .iter()
            .map(|demand| match demand {
                Demand::Fixed { instances, .. } => {
                    Slots::new((*instances).max(1), self.queue_timeout)
                }
                Demand::Rest => Slots::new(left, self.queue_timeout),
            })
            .collect())
    }
}

/// A trigger's share of the instances: each running instance holds one slot.
#[derive(Clone, Debug)]
pub struct Slots {
    free: Arc<Semaphore>,
    size: usize,
    waiting: Arc<AtomicUsize>,
    queue_timeout: Duration,
}

/// Work turned away because every slot of its share stayed taken for the queue timeout, or the
/// queue itself was full.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("all {size} instances are busy")]
pub struct Busy {
    /// The share's size.
    pub size: usize,
}

/// A slot, held for as long as its instance lives.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code, reason = "held for its drop")] OwnedSemaphorePermit);

impl Slots {
    /// `size` slots; work waits at most `queue_timeout` for one.
    pub fn new(size: usize, queue_timeout: Duration) -> Self {
        Self {
            free: Arc::new(Semaphore::new(size)),
            size,
            waiting: Arc::new(AtomicUsize::new(0)),
            queue_timeout,
        }
    }

    /// How many slots the share has.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A slot now if one is free; else, if fewer than [`Slots::size`] others are already
    /// waiting, the first one freed within the queue timeout; else [`Busy`].
    pub async fn admit(&self) -> Result<Slot, Busy> {
        let busy = Busy { size: self.size };
        if let Ok(permit) = self.free.clone().try_acquire_owned() {
            return Ok(Slot(permit));
        }
        let queued = Queued::join(&self.waiting, self.size).ok_or(busy)?;
        let permit = tokio::time::timeout(self.queue_timeout, self.free.clone().acquire_owned())
            .await
            .map_err(|_elapsed| busy)?
            .map_err(|_closed| busy)?;
        drop(queued);
        Ok(Slot(permit))
    }

    /// A slot, however long it takes: for work that is pulled rather than pushed (messages wait
    /// in their subscription meanwhile).
    pub async fn wait(&self) -> Slot {
        // The semaphore is never closed.
        match self.free.clone().acquire_owned().await {
            Ok(permit) => Slot(permit),
            Err(_closed) => unreachable!("the slots' semaphore is never closed"),
        }
    }

    /// Waits, up to `grace`, for every slot to be free again; whether they all were.
    pub async fn all_free_within(&self, grace: Duration) -> bool {
        let all = u32::try_from(self.size).unwrap_or(u32::MAX);
        tokio::time::timeout(grace, self.free.acquire_many(all))
            .await
            .is_ok()
    }
}

/// A place in a share's queue, given back when dropped.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicUsize, limit: usize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(waiting))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_instances: usize) -> Admission {
        Admission {
            max_instances,
            queue_timeout: Duration::from_millis(50),
        }
    }

    const MESSAGES: Demand = Demand::Fixed {
        instances: 4,
        setting: "[messaging] concurrency",
    };

    #[test]
    fn fixed_demands_are_served_first_and_the_rest_gets_the_remainder() {
        let shares = admission(10).divide(&[Demand::Rest, MESSAGES]).unwrap();
        let sizes: Vec<usize> = shares.iter().map(Slots::size).collect();
        assert_eq!(sizes, [6, 4]);
        let alone = admission(10).divide(&[MESSAGES]).unwrap();
        assert_eq!(alone[0].size(), 4);
    }

    #[test]
    fn demands_over_the_total_are_refused_naming_the_settings() {
        let err = admission(4).divide(&[Demand::Rest, MESSAGES]).unwrap_err();
        assert!(err.contains("`[messaging] concurrency` (4)"), "{err}");
        assert!(err.contains("`max-instances` (4)"), "{err}");
        let err = admission(3).divide(&[MESSAGES]).unwrap_err();
        assert!(err.contains("`max-instances` (3) is fewer than"), "{err}");
    }

    #[tokio::test]
    async fn past_its_share_work_waits_briefly_then_is_turned_away() {
        let slots = Slots::new(1, Duration::from_millis(50));
        let held = slots.admit().await.unwrap();
        assert!(slots.admit().await.is_err(), "the queue timeout passed");

        // A slot freed while waiting goes to the waiter.
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.admit().await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held);
        assert!(waiter.await.unwrap());
        assert!(slots.all_free_within(Duration::from_millis(50)).await);
    }

    #[tokio::test]
    async fn the_queue_holds_no_more_than_the_share() {
        let slots = Slots::new(1, Duration::from_secs(60));
        let _held = slots.admit().await.unwrap();
        let queued = tokio::spawn({
            let slots = slots.clone();
            async move { slots.admit().await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The one place in the queue is taken: the next is turned away at once.
        let started = std::time::Instant::now();
        assert!(slots.admit().await.is_err());
        assert!(started.elapsed() < Duration::from_secs(30));
        queued.abort();
    }
}

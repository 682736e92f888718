//! Where a message handler's instance comes from: a fresh one per message, or with
//! `[messaging] instance-reuse = N` one of a version's idle instances, which handles up to N
//! messages in turn. An instance that trapped or passed its deadline is dropped, never reused;
//! one whose guest returned an error is reused (its state is the guest's own business, as its
//! statics are).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use tempo_runtime_core::limits::within_deadline;
use tempo_runtime_core::outcome::finish_run;
use tempo_runtime_core::wasmtime::Store;
use tempo_runtime_core::{RequestId, State, Version, Work};

use crate::MessagingService;
use crate::backend::Envelope;
use crate::host::MessageHandle;
use crate::host::generated::{MessagingRequestReply, MessagingRequestReplyPre};

/// What a version keeps for its messages, made when it is prepared
/// ([`MessagingService`]'s `Trigger::prepare`). Opaque outside this crate.
pub struct Prepared {
    /// The handler export, looked up once.
    pub(crate) handler: MessagingRequestReplyPre<State>,
    /// Idle instances to reuse, when `[messaging] instance-reuse` is over 1.
    pub(crate) pool: Option<Arc<Pool>>,
}

/// A version's idle instances (at most as many as messages are handled at once).
pub(crate) struct Pool {
    /// Messages one instance handles in its life.
    reuse: usize,
    idle: Mutex<Vec<Idle>>,
}

/// An instance between messages, with how many it has handled.
struct Idle {
    store: Store<State>,
    instance: MessagingRequestReply,
    handled: usize,
}

impl Pool {
    pub(crate) fn new(reuse: usize) -> Self {
        Self {
            reuse,
            idle: Mutex::default(),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A plain list that a panic cannot leave half-done.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `message` through `version`'s handler, in a reused instance when the version keeps a
/// [`Pool`] and one is idle, else in a fresh one; the instance goes back to the pool if it may
/// handle more.
pub(crate) async fn invoke(
    version: &Arc<Version>,
    message: Envelope,
    id: RequestId,
) -> anyhow::Result<()> {
    let prepared = version
        .prepared::<MessagingService>()
        .context("this version was not prepared for wasi:messaging")?;
    let handler = prepared.handler.clone();
    let pool = prepared.pool.clone();
    let deadline = version.limits().deadline;
    let reused = pool.as_ref().and_then(|pool| pool.idle().pop());
    let (mut store, instance, handled) = match reused {
        Some(Idle {
            mut store,
            instance,
            handled,
        }) => {
            let work = Work::in_current_span(id);
            let stop_at = deadline.map(|deadline| Instant::now() + deadline);
            version.begin_work(store.data_mut(), work, stop_at);
            (store, Some(instance), handled)
        }
        None => (version.new_store(id), None, 0),
    };
    let message = store
        .data_mut()
        .table()
        .push(MessageHandle { envelope: message })?;
    let outcome = within_deadline(deadline, async {
        let instance = match instance {
            Some(instance) => instance,
            None => handler.instantiate_async(&mut store).await?,
        };
        let returned = instance
            .wasi_messaging_incoming_handler()
            .call_handle(&mut store, message)
            .await?;
        Ok((returned, instance))
    })
    .await;
    // A trap or the deadline ends here, and the instance with it.
    let (returned, instance) = finish_run(outcome, store.data(), version.component_attribute())?;
    if let Some(pool) = pool
        && handled + 1 < pool.reuse
    {
        pool.idle().push(Idle {
            store,
            instance,
            handled: handled + 1,
        });
    }
    returned.map_err(|err| anyhow!("the handler returned an error: {err:?}"))
}

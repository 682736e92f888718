//! The unit of work (a request, a message) an instance handles, as its host calls see it: the id
//! its log lines carry and the trace its spans and outgoing calls continue. A fresh instance has
//! one; a reused one that takes several at once switches to the one whose guest task calls the
//! host (see [`crate::Version::follow_tasks`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use opentelemetry::Context;
use wasmtime::component::GuestTaskId;

use crate::request_id::RequestId;

/// A unit of work: its id, and the context of its host span.
#[derive(Clone, Debug)]
pub struct Work {
    /// The id its log lines carry.
    pub request_id: RequestId,
    /// The trace context of its span: the parent of the guest's spans, and what its outgoing
    /// requests and messages carry on.
    pub trace: Context,
}

impl Work {
    /// `request_id`, in the trace of the current span.
    pub fn in_current_span(request_id: RequestId) -> Self {
        Self {
            request_id,
            trace: crate::trace_context::current(),
        }
    }
}

/// The work an instance handles now, shared with what acts for the instance outside its host
/// calls (its stdout and stderr lines, its outgoing requests), so that a switch shows everywhere
/// at once.
#[derive(Clone, Debug)]
pub struct CurrentWork(Arc<Mutex<Work>>);

impl CurrentWork {
    pub(crate) fn new(work: Work) -> Self {
        Self(Arc::new(Mutex::new(work)))
    }

    /// The work.
    pub fn get(&self) -> Work {
        self.lock().clone()
    }

    /// The id of the work.
    pub fn request_id(&self) -> RequestId {
        self.lock().request_id.clone()
    }

    /// The trace context of the work's span.
    pub fn trace(&self) -> Context {
        self.lock().trace.clone()
    }

    pub(crate) fn set(&self, work: Work) {
        *self.lock() = work;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Work> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The requests a reused instance has begun, by the guest task that handles each (the root of
/// its calls), and the task whose request is current.
///
/// An entry stays until its task's id is given to a later request's task. Ids are slots of the
/// instance's resource table, reused once free, so the map holds at most one entry per slot the
/// table ever used, and at most one per request the instance began (its reuse count).
#[derive(Default)]
pub(crate) struct Tasks {
    begun: HashMap<GuestTaskId, (Work, Option<Instant>)>,
    current: Option<GuestTaskId>,
}

impl Tasks {
    /// Records that `task` handles `work`, due by `deadline`, and that it is current.
    pub(crate) fn begin(&mut self, task: GuestTaskId, work: Work, deadline: Option<Instant>) {
        self.begun.insert(task, (work, deadline));
        self.current = Some(task);
    }

    /// The work of `task`'s request and its deadline, if `task` began one and is not current
    /// already; it is current from now on.
    pub(crate) fn switch_to(&mut self, task: GuestTaskId) -> Option<(Work, Option<Instant>)> {
        if self.current == Some(task) {
            return None;
        }
        let begun = self.begun.get(&task)?.clone();
        self.current = Some(task);
        Some(begun)
    }
}

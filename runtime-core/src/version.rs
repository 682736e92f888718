//! One prepared version of a component: compiled, linked, pre-instantiated, ready to serve.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::KeyValue;
use wasmtime::component::{Component, GuestTaskId, InstancePre};
use wasmtime::{CallHook, Store, StoreContextMut, UpdateDeadline};

use crate::interface::InterfaceName;
use crate::limits::InstanceLimits;
use crate::metrics;
use crate::request_id::RequestId;
use crate::service::{AnyTrigger, PreparedAny, Service, Trigger};
use crate::state::{InstanceSettings, State};
use crate::work::{Tasks, Work};

/// A component linked against the services it imports and checked against the triggers it
/// exports. Immutable; a new build becomes a new `Version`.
pub struct Version {
    pub(crate) number: u64,
    pub(crate) component: Component,
    pub(crate) pre: InstancePre<State>,
    pub(crate) exports: Vec<String>,
    pub(crate) services: Vec<Arc<dyn Service>>,
    pub(crate) triggers: Vec<Arc<dyn AnyTrigger>>,
    /// What each of `triggers` prepared, in their order.
    pub(crate) prepared: Vec<PreparedAny>,
    pub(crate) settings: InstanceSettings,
    pub(crate) component_attribute: KeyValue,
}

impl Version {
    /// The component's name (from its file), shown in front of its output.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The `component` attribute of this version's metrics.
    pub fn component_attribute(&self) -> &KeyValue {
        &self.component_attribute
    }

    /// A number that grows with each version a runtime prepares.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The compiled component.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// The pre-instantiated component: imports resolved, ready to instantiate.
    pub fn instance_pre(&self) -> &InstancePre<State> {
        &self.pre
    }

    /// The names of the component's exports.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// Whether the component exports an interface matching `name`.
    pub fn exports_interface(&self, name: &InterfaceName) -> bool {
        self.exports.iter().any(|export| name.matches_str(export))
    }

    /// The services this version is linked with.
    pub fn services(&self) -> &[Arc<dyn Service>] {
        &self.services
    }

    /// Opens every service this version is linked with (see [`Service::open`]); the error names
    /// the service.
    pub async fn open_services(&self) -> anyhow::Result<()> {
        for service in &self.services {
            service
                .open()
                .await
                .map_err(|err| err.context(format!("{} cannot start", service.name())))?;
        }
        Ok(())
    }

    /// Closes every service this version is linked with (see [`Service::close`]), at shutdown.
    pub async fn close_services(&self) {
        for service in &self.services {
            service.close().await;
        }
    }

    /// The triggers whose export this version has, in the order the runtime knows them.
    pub fn triggers(&self) -> &[Arc<dyn AnyTrigger>] {
        &self.triggers
    }

    /// Whether `next` can replace this version under the triggers already running: it must be
    /// fired by exactly the same triggers. Says what differs otherwise.
    pub fn check_replacement(&self, next: &Version) -> Result<(), String> {
        let exports = |version: &Version| -> Vec<String> {
            version
                .triggers
                .iter()
                .map(|t| t.export().unversioned())
                .collect()
        };
        let (running, offered) = (exports(self), exports(next));
        if running == offered {
            return Ok(());
        }
        let list = |names: &[String]| match names {
            [] => "nothing a trigger serves".to_owned(),
            names => names.join(", "),
        };
        Err(format!(
            "the running version exports {} but the new build exports {}",
            list(&running),
            list(&offered)
        ))
    }

    /// What the trigger `T` made for this version in [`Trigger::prepare`]; `None` if it does
    /// not serve this version.
    pub fn prepared<T: Trigger>(&self) -> Option<&T::Prepared> {
        self.prepared.iter().find_map(PreparedAny::get::<T>)
    }

    /// What each instance of this version may consume.
    pub fn limits(&self) -> &InstanceLimits {
        &self.settings.limits
    }

    /// A fresh store for one instance handling `request_id`: new WASI context, each linked
    /// service's context, the memory limit, and an epoch callback that makes the guest yield to
    /// the executor on every tick and traps it once its deadline has passed. Counted in
    /// `tempo.instances.created`.
    pub fn new_store(&self, request_id: RequestId) -> Store<State> {
        metrics::metrics()
            .instances
            .add(1, std::slice::from_ref(&self.component_attribute));
        let mut state = State::new(&self.settings, request_id);
        for service in &self.services {
            service.init_instance(&mut state);
        }
        state.deadline = self.settings.limits.deadline.map(|d| Instant::now() + d);
        let mut store = Store::new(self.component.engine(), state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|store| match store.data().deadline {
            Some(deadline) if Instant::now() >= deadline => Ok(UpdateDeadline::Interrupt),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        store
    }

    /// Prepares a reused instance for its next request, handled by the guest task `task`: from
    /// now on its lines carry `work`'s id, what it sends on continues `work`'s trace, its guest
    /// code is stopped at `deadline`, and each linked service's [`Service::begin_request`] has
    /// run. With [`Version::follow_tasks`] it switches back to `work` whenever `task` calls the
    /// host, also after later requests have begun.
    pub fn begin_request(
        &self,
        store: &mut StoreContextMut<'_, State>,
        task: GuestTaskId,
        work: Work,
        deadline: Option<Instant>,
    ) {
        let state = store.data_mut();
        if let Some(tasks) = &mut state.tasks {
            tasks.begin(task, work.clone(), deadline);
        }
        self.begin_work(state, work, deadline);
    }

    /// Prepares a reused instance that handles one piece of work at a time (a WASI 0.2
    /// message handler) for its next: its lines carry `work`'s id, its guest code is stopped at
    /// `deadline`, and each linked service's [`Service::begin_request`] has run.
    pub fn begin_work(&self, state: &mut State, work: Work, deadline: Option<Instant>) {
        state.work.set(work);
        state.deadline = deadline;
        for service in &self.services {
            service.begin_request(state);
        }
    }

    /// Makes `store`'s instance, which takes several requests at once, switch to the request
    /// of whichever guest task calls the host: its log lines, spans, outgoing requests and
    /// messages, and its deadline are then that request's own, not those of the request begun
    /// last. (A call hook: it costs a look at the task on every host call.)
    pub fn follow_tasks(store: &mut Store<State>) {
        store.data_mut().tasks = Some(Tasks::default());
        store.call_hook(|mut store, hook| {
            if matches!(hook, CallHook::CallingHost) {
                switch_to_calling_task(&mut store);
            }
            Ok(())
        });
    }
}

/// Makes the request of the guest task calling the host the instance's current work, if it is
/// one that [`Version::begin_request`] began and is not current already.
fn switch_to_calling_task(store: &mut StoreContextMut<'_, State>) {
    // The root of the calls is the export call the request began with.
    let Some(root) = store.async_call_stack().ok().and_then(|tasks| tasks.last()) else {
        return;
    };
    let state = store.data_mut();
    let switched = state.tasks.as_mut().and_then(|tasks| tasks.switch_to(root));
    if let Some((work, deadline)) = switched {
        state.work.set(work);
        state.deadline = deadline;
    }
}

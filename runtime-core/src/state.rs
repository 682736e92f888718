//! Per-instance state: what one store of one component instance carries.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use std::sync::Arc;
use std::time::Instant;

use crate::guest_output::{LineSink, LoggedOutput};
use crate::limits::{InstanceLimits, MemoryLimiter, MemoryRefused};
use crate::parts::{Part, Parts};
use crate::request_id::RequestId;
use crate::work::{CurrentWork, Tasks, Work};

/// Where a guest's stdio goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GuestStdio {
    /// Stdout and stderr logged line by line with the component's name and the request id;
    /// stdin closed. For served components, whose output is a log.
    #[default]
    Logged,
    /// The host's own stdin, stdout and stderr, untouched. For `wasi:cli` programs, whose output
    /// is the product.
    Inherit,
}

/// What an instance is granted. Nothing of the host (environment, arguments, folders, network)
/// reaches a guest unless it is listed here.
#[derive(Clone, Debug, Default)]
pub struct InstanceSettings {
    /// The component's name, shown with its output and on its metrics; shared by every
    /// instance.
    pub name: Arc<str>,
    /// The arguments the guest sees; by convention the first is the program's name.
    pub args: Vec<String>,
    /// Environment variables granted to the guest.
    pub env: Vec<(String, String)>,
    /// Where the guest's stdio goes.
    pub stdio: GuestStdio,
    /// What each instance may consume; nothing is limited by default.
    pub limits: InstanceLimits,
}

impl InstanceSettings {
    /// Settings for a component called `name`, granting nothing.
    pub fn named(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// The data of one instance's store.
pub struct State {
    component: Arc<str>,
    pub(crate) work: CurrentWork,
    /// The requests of an instance that takes several at once, by the guest task that handles
    /// each; `None` where nothing follows them (see [`crate::Version::follow_tasks`]).
    pub(crate) tasks: Option<Tasks>,
    /// When the instance's guest code is stopped (see [`crate::Version::new_store`]).
    pub(crate) deadline: Option<Instant>,
    wasi: WasiCtx,
    table: ResourceTable,
    parts: Parts,
    pub(crate) memory: MemoryLimiter,
}

impl State {
    /// A fresh state for an instance with the given grants, handling the work `request_id`
    /// names, in the trace of the current span.
    pub fn new(settings: &InstanceSettings, request_id: RequestId) -> Self {
        let component = settings.name.clone();
        let work = CurrentWork::new(Work::in_current_span(request_id));
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&settings.args).envs(&settings.env);
        match settings.stdio {
            GuestStdio::Logged => {
                let sink = |stream| LineSink::Log {
                    component: component.clone(),
                    work: work.clone(),
                    stream,
                };
                wasi.stdout(LoggedOutput::new(sink("stdout")))
                    .stderr(LoggedOutput::new(sink("stderr")));
            }
            GuestStdio::Inherit => {
                wasi.inherit_stdio();
            }
        }
        Self {
            component,
            work,
            tasks: None,
            deadline: None,
            wasi: wasi.build(),
            table: {
                let mut table = ResourceTable::new();
                if let Some(max) = settings.limits.max_resources {
                    table.set_max_capacity(max);
                }
                table
            },
            parts: Parts::new(),
            memory: MemoryLimiter::new(settings.limits.max_memory_bytes),
        }
    }

    /// The name of the component this instance runs.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The id of the request or message this instance handles (if reused, the one whose guest
    /// task called the host last).
    pub fn request_id(&self) -> RequestId {
        self.work.request_id()
    }

    /// The work this instance handles, as a handle that follows it when a reused instance
    /// switches between requests: for what acts for the instance outside its host calls.
    pub fn current_work(&self) -> &CurrentWork {
        &self.work
    }

    /// The memory growth this instance was refused, if any.
    pub fn memory_refused(&self) -> Option<MemoryRefused> {
        self.memory.refused
    }

    /// How many entries the instance's resource table may hold.
    pub fn max_resources(&self) -> usize {
        self.table.max_capacity()
    }

    /// The instance's resource table.
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The services' parts of this instance, each in its own slot, for a service to put its
    /// part in (`init_instance`).
    pub fn parts_mut(&mut self) -> &mut Parts {
        &mut self.parts
    }

    /// A service's part of this instance, if the service put it there.
    pub fn part<P: Part>(&self) -> Option<&P> {
        self.parts.get()
    }

    /// What a service's host view may borrow at once: the resource table, the services'
    /// per-instance parts, mutably, and the work the instance handles.
    pub fn host_parts(&mut self) -> (&mut ResourceTable, &mut Parts, &CurrentWork) {
        (&mut self.table, &mut self.parts, &self.work)
    }

    /// What [`crate::context::view`] borrows at once: the table, the contexts and the name.
    pub(crate) fn view_parts(&mut self) -> (&mut ResourceTable, &Parts, &Arc<str>, &CurrentWork) {
        (&mut self.table, &self.parts, &self.component, &self.work)
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

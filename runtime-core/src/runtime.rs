//! The runtime: an engine, the registered services, and how a component is linked to them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::engine::EpochTicker;
use crate::interface::InterfaceName;
use crate::metrics;
use crate::service::{AnyTrigger, Service};
use crate::state::InstanceSettings;
use crate::version::Version;
use crate::wasi::WasiService;

/// Links components against registered services and prepares them to run.
pub struct Runtime {
    engine: Engine,
    services: Vec<Arc<dyn Service>>,
    /// What each service provides, in the order of `services`.
    provided: Vec<Vec<InterfaceName>>,
    triggers: Vec<Arc<dyn AnyTrigger>>,
    next_version: AtomicU64,
    _ticker: EpochTicker,
}

/// Why a component cannot run on this runtime.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Imports that no registered service provides.
    #[error("{}", missing_imports_message(.component, .imports))]
    MissingImports {
        /// The component's name.
        component: String,
        /// The imports nobody provides, as the component names them.
        imports: Vec<String>,
    },
    /// The services provide the interfaces, but wasmtime or a trigger refuses the component.
    #[error("`{component}` cannot be linked: {reason}")]
    Link {
        /// The component's name.
        component: String,
        /// What refused it.
        reason: String,
    },
}

fn missing_imports_message(component: &str, imports: &[String]) -> String {
    let what = if imports.len() == 1 {
        "an interface"
    } else {
        "interfaces"
    };
    format!(
        "`{component}` imports {what} that no tempo service provides: {}",
        imports.join(", ")
    )
}

impl Runtime {
    /// A runtime on `engine` with the base WASI service registered.
    pub fn new(engine: Engine) -> Self {
        let ticker = EpochTicker::start(&engine);
        let mut runtime = Self {
            engine,
            services: Vec::new(),
            provided: Vec::new(),
            triggers: Vec::new(),
            next_version: AtomicU64::new(1),
            _ticker: ticker,
        };
        runtime.add_service(Arc::new(WasiService::default()));
        runtime
    }

    /// Registers a service, and its trigger if it has one.
    pub fn add_service(&mut self, service: Arc<dyn Service>) {
        if let Some(trigger) = service.clone().trigger() {
            self.triggers.push(trigger);
        }
        self.provided.push(service.provides());
        self.services.push(service);
    }

    /// The engine components run on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The registered services, the base WASI service first.
    pub fn services(&self) -> &[Arc<dyn Service>] {
        &self.services
    }

    /// The registered triggers.
    pub fn triggers(&self) -> &[Arc<dyn AnyTrigger>] {
        &self.triggers
    }

    /// The exports the registered triggers serve, unversioned and comma-separated, for messages:
    /// `wasi:http/incoming-handler, wasi:http/handler, wasi:messaging/incoming-handler`.
    pub fn served_exports(&self) -> String {
        let exports: Vec<String> = self
            .triggers
            .iter()
            .flat_map(|trigger| {
                std::iter::once(trigger.export())
                    .chain(trigger.also_exports())
                    .map(InterfaceName::unversioned)
            })
            .collect();
        exports.join(", ")
    }

    /// Links `component` against the services whose interfaces it imports, pre-instantiates it,
    /// and lets each trigger whose export it has prepare for it.
    ///
    /// Refuses, naming them, any import that no service provides.
    pub fn prepare(
        &self,
        component: &Component,
        settings: InstanceSettings,
    ) -> Result<Version, PrepareError> {
        let ty = component.component_type();
        let exports = self.exports_of(component);

        let mut used = BTreeSet::new();
        for (import, _) in ty.imports(&self.engine) {
            if let Some(index) = self.provider_of(import) {
                used.insert(index);
            }
        }
        let missing = self.missing_imports(component);
        let name = settings.name.to_string();
        if !missing.is_empty() {
            return Err(PrepareError::MissingImports {
                component: name,
                imports: missing,
            });
        }
        let link_error = |reason: String| PrepareError::Link {
            component: name.clone(),
            reason,
        };

        let services: Vec<_> = used.into_iter().map(|i| self.services[i].clone()).collect();
        let mut linker = Linker::new(&self.engine);
        for service in &services {
            service
                .link(&mut linker)
                .map_err(|e| link_error(format!("{e:#}")))?;
        }
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| link_error(format!("{:#}", anyhow::Error::from(e))))?;

        let triggers = self.triggers_for(&exports);
        let prepared = triggers
            .iter()
            .map(|trigger| trigger.prepare_any(&pre))
            .collect::<anyhow::Result<_>>()
            .map_err(|e| link_error(format!("{e:#}")))?;

        Ok(Version {
            number: self.next_version.fetch_add(1, Ordering::Relaxed),
            component: component.clone(),
            pre,
            exports,
            services,
            triggers,
            prepared,
            component_attribute: metrics::component(settings.name.clone()),
            settings,
        })
    }

    /// The registered triggers that a component with these exports would fire.
    pub fn triggers_for(&self, exports: &[String]) -> Vec<Arc<dyn AnyTrigger>> {
        self.triggers
            .iter()
            .filter(|t| exports.iter().any(|e| t.serves(e)))
            .cloned()
            .collect()
    }

    /// The names of `component`'s exports.
    pub fn exports_of(&self, component: &Component) -> Vec<String> {
        let ty = component.component_type();
        ty.exports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// The imports of `component` that no registered service provides, as the component names
    /// them.
    pub fn missing_imports(&self, component: &Component) -> Vec<String> {
        let ty = component.component_type();
        ty.imports(&self.engine)
            .filter(|(import, _)| self.provider_of(import).is_none())
            .map(|(import, _)| import.to_owned())
            .collect()
    }

    /// The index of the service providing the interface named `import`.
    fn provider_of(&self, import: &str) -> Option<usize> {
        let name = InterfaceName::parse(import)?;
        self.provided
            .iter()
            .position(|provides| provides.iter().any(|p| p.matches(&name)))
    }
}

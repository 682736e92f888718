//! What a host capability is to the runtime: the interfaces it provides, how it links them, and
//! for trigger-shaped services, the loop that invokes the guest.

use std::any::{Any, TypeId};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{InstancePre, Linker};

use crate::admission::{Demand, Slots};
use crate::context::{self, ServiceContext, ServiceView};
use crate::interface::InterfaceName;
use crate::live::LiveComponent;
use crate::state::State;

/// A host capability offered to guests, such as `wasi:http` or `wasi:keyvalue`.
///
/// The runtime links a service into a component's linker only when the component imports one of
/// the interfaces it [provides](Service::provides).
pub trait Service: Send + Sync + 'static {
    /// The name shown in the startup banner, e.g. `wasi:http`.
    fn name(&self) -> &str;

    /// The interfaces this service implements for guests. Asked when a version is linked, not
    /// per request.
    fn provides(&self) -> Vec<InterfaceName>;

    /// Adds this service's host functions to `linker`.
    fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()>;

    /// One line for the startup banner: what the service offers and its backend.
    fn describe(&self) -> String;

    /// Opens what the service needs (a file, a connection) before it serves a component that
    /// imports it, so that a failure is reported at startup rather than on a guest's first
    /// call. Called for every version that links the service: it must be idempotent.
    fn open(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Finishes, at shutdown, what the service still owes for work already done: messages a guest
    /// sent that are not yet written to the broker, say. Called once after the last unit of work,
    /// before the process exits; it must not wait without limit.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Adds this service's per-instance context to a fresh instance's state.
    fn init_instance(&self, _state: &mut State) {}

    /// Tells the service's per-instance context that a reused instance begins another request
    /// (its id is already the state's). Called in the request's span.
    fn begin_request(&self, _state: &mut State) {}

    /// The loop this service runs to invoke guests, if it is trigger-shaped.
    fn trigger(self: Arc<Self>) -> Option<Arc<dyn AnyTrigger>> {
        None
    }
}

/// The getter a service's bindings take: an instance's view for the context `C`.
///
/// A [`SharedService`] is handed the view of its own context, and bindings generated for another
/// context's view do not take it; the compiler, not a run-time lookup, catches the mistake:
///
/// ```compile_fail,E0308
/// # use tempo_runtime_core::{ContextView, ServiceView, State};
/// struct Keyvalue;
/// tempo_runtime_core::service_context!(Keyvalue = "wasi:keyvalue");
/// struct Blobstore;
/// tempo_runtime_core::service_context!(Blobstore = "wasi:blobstore");
/// // What bindings on wasi:blobstore's context take.
/// fn link_blobstore(_getter: fn(&mut State) -> ServiceView<'_, Blobstore>) {}
/// fn link(view: ContextView<Keyvalue>) {
///     link_blobstore(view)
/// }
/// ```
///
/// The same with the service's own context compiles:
///
/// ```
/// # use tempo_runtime_core::{ContextView, ServiceView, State};
/// struct Blobstore;
/// tempo_runtime_core::service_context!(Blobstore = "wasi:blobstore");
/// fn link_blobstore(_getter: fn(&mut State) -> ServiceView<'_, Blobstore>) {}
/// fn link(view: ContextView<Blobstore>) {
///     link_blobstore(view)
/// }
/// ```
pub type ContextView<C> = for<'a> fn(&'a mut State) -> ServiceView<'a, C>;

/// The shape of most services: one context that every instance shares (see [`ServiceContext`],
/// whose name is the service's), host functions linked on it, and a backend opened on first
/// need. Implementing it implements [`Service`], which puts the context in each fresh instance.
pub trait SharedService: Send + Sync + 'static {
    /// What every instance shares.
    type Context: ServiceContext;

    /// The version of the WIT package (the context's [`ServiceContext::SERVICE`]) that the
    /// service implements, e.g. `0.2.0-draft`.
    const VERSION: &'static str;

    /// The package's interfaces that guests import, e.g. `store` for
    /// `wasi:keyvalue/store@0.2.0-draft`.
    const INTERFACES: &'static [&'static str];

    /// The context each instance gets.
    fn context(&self) -> &Arc<Self::Context>;

    /// Adds the host functions to `linker`, each taking `view` of the instance: the view of
    /// [`SharedService::Context`], the context each instance is given, so that bindings on any
    /// other context do not compile.
    fn link(linker: &mut Linker<State>, view: ContextView<Self::Context>) -> anyhow::Result<()>;

    /// See [`Service::describe`].
    fn describe(&self) -> String;

    /// See [`Service::open`].
    fn open(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// See [`Service::close`].
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// See [`Service::trigger`].
    fn trigger(self: Arc<Self>) -> Option<Arc<dyn AnyTrigger>> {
        None
    }
}

impl<S: SharedService> Service for S {
    fn name(&self) -> &str {
        S::Context::SERVICE
    }

    fn provides(&self) -> Vec<InterfaceName> {
        InterfaceName::all(S::Context::SERVICE, S::VERSION, S::INTERFACES)
    }

    fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()> {
        S::link(linker, context::view::<S::Context>)
    }

    fn describe(&self) -> String {
        SharedService::describe(self)
    }

    fn open(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        SharedService::open(self)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        SharedService::close(self)
    }

    fn init_instance(&self, state: &mut State) {
        state.insert_context(self.context().clone());
    }

    fn trigger(self: Arc<Self>) -> Option<Arc<dyn AnyTrigger>> {
        SharedService::trigger(self)
    }
}

/// Declares, inside `impl SharedService`, what every such service declares alike: its context,
/// kept in the service's field `shared`; the bindgen function that links the context's host
/// functions; and the interfaces of the package they provide, at its version.
///
/// ```ignore
/// impl SharedService for KeyValueService {
///     tempo_runtime_core::shared_service! {
///         context: Shared, link: host::Bindings::add_to_linker::<_, host::Data>,
///         interfaces: ["store", "atomics", "batch"] @ "0.2.0-draft",
///     }
///     fn describe(&self) -> String { /* … */ }
/// }
/// ```
#[macro_export]
macro_rules! shared_service {
    (
        context: $context:ty, link: $link:expr,
        interfaces: [$($interface:literal),+ $(,)?] @ $version:expr $(,)?
    ) => {
        type Context = $context;

        const VERSION: &'static str = $version;

        const INTERFACES: &'static [&'static str] = &[$($interface),+];

        fn context(&self) -> &::std::sync::Arc<$context> {
            &self.shared
        }

        fn link(
            linker: &mut $crate::wasmtime::component::Linker<$crate::State>,
            view: $crate::ContextView<$context>,
        ) -> ::anyhow::Result<()> {
            Ok($link(linker, view)?)
        }
    };
}

/// Declares, inside `impl Service`, the service's [name](Service::name) and the interfaces it
/// [provides](Service::provides), in one of two forms:
///
/// - `service_names!("wasi:config", ["store"] @ CONFIG_VERSION)`: the interfaces of one WIT
///   package, at its version; the service's name is the package's;
/// - `service_names!("wasi:http", self.provides)`: a name, and the interfaces the service listed
///   in a field when it was made (several packages, or several versions).
///
/// ```ignore
/// impl Service for ConfigService {
///     tempo_runtime_core::service_names!("wasi:config", ["store"] @ CONFIG_VERSION);
///     fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()> { /* … */ }
///     fn describe(&self) -> String { /* … */ }
/// }
/// ```
#[macro_export]
macro_rules! service_names {
    ($package:expr, [$($interface:literal),+ $(,)?] @ $version:expr $(,)?) => {
        fn name(&self) -> &str {
            $package
        }

        fn provides(&self) -> ::std::vec::Vec<$crate::InterfaceName> {
            $crate::InterfaceName::all($package, $version, &[$($interface),+])
        }
    };
    ($name:expr, self.$field:ident $(,)?) => {
        fn name(&self) -> &str {
            $name
        }

        fn provides(&self) -> ::std::vec::Vec<$crate::InterfaceName> {
            self.$field.clone()
        }
    };
}

/// Generates a service's host bindings: `bindgen!` on the world `world` of the workspace's
/// `wit/` folder, in a module of the name given, with what every tempo service's bindings take.
/// Each host call gets a span (exported with OTLP, off otherwise); with `async`, as for a
/// service whose calls wait on a backend, host functions are async and may trap. Options in
/// braces (`with`, `trappable_error_type`, `exports`) go to `bindgen!` as they are.
///
/// ```ignore
/// tempo_runtime_core::host_bindings!(mod generated = async "wasi:keyvalue/imports" {
///     with: { "wasi:keyvalue/store.bucket": crate::host::BucketHandle },
/// });
/// ```
#[macro_export]
macro_rules! host_bindings {
    ($vis:vis mod $module:ident = async $world:literal $({ $($options:tt)* })?) => {
        $crate::host_bindings!(@imports [async | trappable | tracing] $vis $module $world
            $($($options)*)?);
    };
    ($vis:vis mod $module:ident = $world:literal $({ $($options:tt)* })?) => {
        $crate::host_bindings!(@imports [tracing] $vis $module $world $($($options)*)?);
    };
    (@imports [$($imports:tt)*] $vis:vis $module:ident $world:literal $($options:tt)*) => {
        $vis mod $module {
            wasmtime::component::bindgen!({
                path: "../../wit",
                world: $world,
                imports: { default: $($imports)* },
                $($options)*
            });
        }
    };
}

/// The part of a service that invokes the guest for each unit of work: a request, a message.
///
/// The runtime keeps triggers as [`AnyTrigger`], which every `Trigger` is.
pub trait Trigger: Send + Sync + 'static {
    /// What the trigger keeps for each version it serves (typed export handles, say): made once
    /// by [`Trigger::prepare`], read on each unit of work through
    /// [`Version::prepared`](crate::Version::prepared), which hands a trigger its own type and
    /// no other.
    type Prepared: Send + Sync + 'static;

    /// The export of the guest that this trigger calls, e.g. `wasi:http/incoming-handler@0.2.12`.
    fn export(&self) -> &InterfaceName;

    /// Other exports it calls instead, when a component has one of them rather than
    /// [`Trigger::export`] (another version of the interface, e.g. `wasi:http/handler@0.3.0`).
    fn also_exports(&self) -> &[InterfaceName] {
        &[]
    }

    /// Whether this trigger calls the export named `name`.
    fn serves(&self, name: &str) -> bool {
        self.export().matches_str(name)
            || self
                .also_exports()
                .iter()
                .any(|export| export.matches_str(name))
    }

    /// Checks a component version that exports [`Trigger::export`] and makes what handling work
    /// with it needs, so that the request path does no lookups. An error rejects the version.
    fn prepare(&self, pre: &InstancePre<State>) -> anyhow::Result<Self::Prepared>;

    /// How many instances the trigger wants at once: by default, what the others leave.
    fn demand(&self) -> Demand {
        Demand::Rest
    }

    /// Binds what the trigger listens on and returns the loop that serves as [`ServeWith`] says.
    fn start(self: Arc<Self>, with: ServeWith) -> Starting;
}

/// What a trigger prepared for one version, kept with the trigger's type so that only that
/// trigger reads it back ([`Version::prepared`](crate::Version::prepared)).
pub struct PreparedAny {
    trigger: TypeId,
    prepared: Box<dyn Any + Send + Sync>,
}

impl PreparedAny {
    /// What trigger `T` prepared, if this is it.
    pub(crate) fn get<T: Trigger>(&self) -> Option<&T::Prepared> {
        (self.trigger == TypeId::of::<T>())
            .then(|| self.prepared.downcast_ref())
            .flatten()
    }
}

/// A [`Trigger`] whatever it prepares: what the runtime and a [`Version`](crate::Version) keep.
/// Every `Trigger` is one; see there for what each method does.
pub trait AnyTrigger: Send + Sync + 'static {
    /// See [`Trigger::export`].
    fn export(&self) -> &InterfaceName;

    /// See [`Trigger::also_exports`].
    fn also_exports(&self) -> &[InterfaceName];

    /// See [`Trigger::serves`].
    fn serves(&self, name: &str) -> bool;

    /// See [`Trigger::prepare`].
    fn prepare_any(&self, pre: &InstancePre<State>) -> anyhow::Result<PreparedAny>;

    /// See [`Trigger::demand`].
    fn demand(&self) -> Demand;

    /// See [`Trigger::start`].
    fn start(self: Arc<Self>, with: ServeWith) -> Starting;
}

impl<T: Trigger> AnyTrigger for T {
    fn export(&self) -> &InterfaceName {
        Trigger::export(self)
    }

    fn also_exports(&self) -> &[InterfaceName] {
        Trigger::also_exports(self)
    }

    fn serves(&self, name: &str) -> bool {
        Trigger::serves(self, name)
    }

    fn prepare_any(&self, pre: &InstancePre<State>) -> anyhow::Result<PreparedAny> {
        Ok(PreparedAny {
            trigger: TypeId::of::<T>(),
            prepared: Box::new(Trigger::prepare(self, pre)?),
        })
    }

    fn demand(&self) -> Demand {
        Trigger::demand(self)
    }

    fn start(self: Arc<Self>, with: ServeWith) -> Starting {
        Trigger::start(self, with)
    }
}

/// What a trigger's loop serves with: until `shutdown` is cancelled, it takes the current
/// version of `live` for each unit of work and runs at most as many instances at once as `slots`
/// has.
pub struct ServeWith {
    /// The component, whose current version each unit of work takes.
    pub live: LiveComponent,
    /// The trigger's share of instances.
    pub slots: Slots,
    /// Cancelled when the process stops.
    pub shutdown: CancellationToken,
}

/// A trigger starting: bound, or the reason it cannot be.
pub type Starting = BoxFuture<'static, anyhow::Result<Running>>;

/// A started trigger.
pub struct Running {
    /// Where it listens, e.g. `http://127.0.0.1:8080`.
    pub address: String,
    /// What the operator should know at start (an expiring certificate), said in the banner.
    pub warnings: Vec<String>,
    /// Serves until shutdown, then lets work in flight finish.
    pub serve: BoxFuture<'static, anyhow::Result<()>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trigger that prepares a number and serves nothing.
    struct Counting<const N: u8>;

    impl<const N: u8> Trigger for Counting<N> {
        type Prepared = u32;

        fn export(&self) -> &InterfaceName {
            unimplemented!("not called")
        }

        fn prepare(&self, _: &InstancePre<State>) -> anyhow::Result<u32> {
            Ok(u32::from(N))
        }

        fn start(self: Arc<Self>, _: ServeWith) -> Starting {
            Box::pin(async { anyhow::bail!("not started") })
        }
    }

    #[test]
    fn what_a_trigger_prepared_is_read_back_by_that_trigger_alone() {
        let prepared = PreparedAny {
            trigger: TypeId::of::<Counting<1>>(),
            prepared: Box::new(7_u32),
        };
        assert_eq!(prepared.get::<Counting<1>>(), Some(&7));
        // Another trigger preparing the same type does not read it.
        assert_eq!(prepared.get::<Counting<2>>(), None);
    }
}

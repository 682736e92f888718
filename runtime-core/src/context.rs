//! The one way a service keeps what its host functions need: a context shared by every instance,
//! put in each instance's state, handed to the bindings with the instance's resource table; and a
//! backend opened on first use.
//!
//! A service declares its shared part with [`service_context!`](crate::service_context) and links
//! its bindings with
//! [`ServiceData`] and the view its [`SharedService::link`](crate::SharedService::link) is given
//! (which puts the part in each instance), or, doing that itself, with
//! [`State::insert_context`] and [`view`]:
//!
//! ```ignore
//! store::add_to_linker::<State, ServiceData<Shared>>(linker, view)?;
//! impl store::Host for ServiceView<'_, Shared> { … }
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::parts::{Part, PartSlot};
use crate::state::State;
use crate::work::CurrentWork;

/// What a service shares with every instance it is linked into. Implement it with
/// [`service_context!`](crate::service_context).
pub trait ServiceContext: Send + Sync + 'static {
    /// The service's name, e.g. `wasi:keyvalue`, said when an instance lacks the context.
    const SERVICE: &'static str;

    /// The slot of the context in each instance's [`Parts`].
    fn slot() -> &'static PartSlot;
}

/// An instance holds its service's context as an `Arc<C>`, in the context's slot.
impl<C: ServiceContext> Part for Arc<C> {
    fn slot() -> &'static PartSlot {
        C::slot()
    }
}

/// Declares a service's shared context and the service it belongs to:
/// `tempo_runtime_core::service_context!(Shared = "wasi:keyvalue");`.
#[macro_export]
macro_rules! service_context {
    ($context:ty = $service:expr) => {
        impl $crate::ServiceContext for $context {
            const SERVICE: &'static str = $service;

            fn slot() -> &'static $crate::parts::PartSlot {
                $crate::part_slot!()
            }
        }
    };
}

/// What a service's host functions work on: the instance's resource table and the service's
/// context.
pub struct ServiceView<'a, C> {
    /// The instance's resource table, where the guest's handles live.
    pub table: &'a mut ResourceTable,
    /// The name of the component the instance runs, for logs and metrics.
    pub component: &'a Arc<str>,
    /// When the instance's current work is stopped, if it has a deadline: a host call that waits
    /// on something outside (a database, a server) should give up by then.
    pub deadline: Option<Instant>,
    /// The work the instance handles: what the guest sends on continues its trace.
    pub work: &'a CurrentWork,
    context: Option<&'a Arc<C>>,
}

impl<C> ServiceView<'_, C> {
    /// Drops a handle the guest dropped, and what the instance's table held for it.
    pub fn drop_resource<T: 'static>(&mut self, handle: Resource<T>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl<'a, C: ServiceContext> ServiceView<'a, C> {
    /// The service's context. The runtime puts every linked service's context in each instance,
    /// so a missing one is a host bug: the error traps the instance rather than telling the
    /// guest a story.
    pub fn context(&self) -> wasmtime::Result<&'a Arc<C>> {
        self.context
            .ok_or_else(|| wasmtime::format_err!("{} has no context in this instance", C::SERVICE))
    }
}

/// The [`HasData`] of a service whose host functions are implemented on [`ServiceView<C>`].
pub struct ServiceData<C>(PhantomData<C>);

impl<C: ServiceContext> HasData for ServiceData<C> {
    type Data<'a> = ServiceView<'a, C>;
}

/// The view of `state` for the service whose context is `C`: the getter to link bindings with.
pub fn view<C: ServiceContext>(state: &mut State) -> ServiceView<'_, C> {
    let deadline = state.deadline;
    let (table, parts, component, work) = state.view_parts();
    ServiceView {
        table,
        component,
        deadline,
        work,
        context: parts.get::<Arc<C>>(),
    }
}

impl State {
    /// Puts a service's context in this instance, for [`view`] to find.
    pub fn insert_context<C: ServiceContext>(&mut self, context: Arc<C>) {
        self.parts_mut().insert(context);
    }
}

type Opener<T> = Box<dyn Fn() -> BoxFuture<'static, anyhow::Result<T>> + Send + Sync>;

/// A backend (a file, a connection) opened on first use and shared from then on. A failed
/// attempt is not remembered: the next use tries again, so a server that comes up later heals.
pub struct LazyBackend<T> {
    open: Opener<T>,
    opened: tokio::sync::OnceCell<T>,
}

impl<T: Send + Sync> LazyBackend<T> {
    /// A backend that `open` opens when it is first needed.
    pub fn new<F, Fut>(open: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    {
        Self {
            open: Box::new(move || Box::pin(open())),
            opened: tokio::sync::OnceCell::new(),
        }
    }

    /// The backend, opened now if it was not yet.
    pub async fn get(&self) -> anyhow::Result<&T> {
        self.opened.get_or_try_init(|| (self.open)()).await
    }

    /// The backend if it has been opened; for work at shutdown that is moot otherwise.
    pub fn get_if_open(&self) -> Option<&T> {
        self.opened.get()
    }
}

/// Lets `?` turn wasmtime's errors (a host bug, a broken resource handle) into the variant of a
/// service's error type on which the instance traps: `trap_on_wasmtime_errors!(KvError::Trap)`
/// implements `From<wasmtime::Error>` and `From<ResourceTableError>` for `KvError`.
#[macro_export]
macro_rules! trap_on_wasmtime_errors {
    ($error:ident :: $variant:ident) => {
        impl From<$crate::wasmtime::component::ResourceTableError> for $error {
            fn from(err: $crate::wasmtime::component::ResourceTableError) -> Self {
                $error::$variant(err.into())
            }
        }

        impl From<$crate::wasmtime::Error> for $error {
            fn from(err: $crate::wasmtime::Error) -> Self {
                $error::$variant(err)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_failed_open_is_tried_again_and_a_success_is_kept() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = attempts.clone();
        let backend = LazyBackend::new(move || {
            let attempt = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                anyhow::ensure!(attempt > 0, "down");
                Ok(attempt)
            }
        });
        assert!(backend.get_if_open().is_none());
        assert!(backend.get().await.is_err());
        assert_eq!(*backend.get().await.unwrap(), 1);
        assert_eq!(*backend.get().await.unwrap(), 1);
        assert_eq!(backend.get_if_open(), Some(&1));
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    }

    struct Named;
    crate::service_context!(Named = "wasi:example");

    #[test]
    fn a_missing_context_names_the_service() {
        let mut state = State::new(
            &crate::InstanceSettings::named("app"),
            crate::RequestId::generate(),
        );
        let err = view::<Named>(&mut state).context().err().unwrap();
        assert_eq!(
            err.to_string(),
            "wasi:example has no context in this instance"
        );
        state.insert_context(Arc::new(Named));
        assert!(view::<Named>(&mut state).context().is_ok());
    }
}

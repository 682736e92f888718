//! What each instance's wasi:http host functions work on beside its resource table:
//! wasmtime-wasi-http's context and tempo's outbound policy, kept in the instance's state.

use std::sync::Arc;

use tempo_runtime_core::{CurrentWork, State};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView};

use crate::outbound::{GuestHttpHooks, Outbound, OwnAddresses, Policy};

/// An instance's wasi:http part, put in it by the service's `init_instance`.
#[derive(Clone)]
pub(crate) struct InstanceHttp {
    ctx: WasiHttpCtx,
    hooks: GuestHttpHooks,
}

tempo_runtime_core::part!(InstanceHttp);

impl InstanceHttp {
    /// Outgoing requests checked by `outbound`, each continuing the trace of the `work` the
    /// instance handles when it goes out.
    pub(crate) fn new(outbound: Arc<Outbound>, work: CurrentWork) -> Self {
        Self {
            ctx: WasiHttpCtx::new(),
            hooks: GuestHttpHooks { outbound, work },
        }
    }

    /// What an instance the service did not set up gets: outgoing requests to nowhere.
    fn refusing(work: CurrentWork) -> Self {
        let nowhere =
            Policy::new(Some(&[]), OwnAddresses::default()).unwrap_or_else(|_| unreachable!());
        let outbound = Outbound::new(
            nowhere,
            crate::DEFAULT_CONNECT_TIMEOUT,
            crate::DEFAULT_RESPONSE_TIMEOUT,
        );
        Self::new(Arc::new(outbound), work)
    }
}

/// The wasi:http view of an instance, which wasmtime-wasi-http's host functions and the handlers
/// take. An instance without its wasi:http part (none: the service sets up every instance it is
/// linked into) fails closed: it may send requests nowhere.
pub(crate) fn http_view(state: &mut State) -> WasiHttpCtxView<'_> {
    let (table, parts, work) = state.host_parts();
    let instance = parts.get_or_insert_with(|| InstanceHttp::refusing(work.clone()));
    WasiHttpCtxView {
        ctx: &mut instance.ctx,
        table,
        hooks: &mut instance.hooks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempo_runtime_core::{InstanceSettings, RequestId};

    #[test]
    fn an_instance_the_service_did_not_set_up_sends_requests_nowhere() {
        let settings = InstanceSettings::named("app");
        let mut state = State::new(&settings, RequestId::generate());
        let _ = http_view(&mut state);
        let instance = state.part::<InstanceHttp>().map(|i| &i.hooks.outbound);
        let policy = instance.map(|outbound| outbound.policy.describe());
        assert_eq!(policy.as_deref(), Some("no outgoing requests"));
    }
}

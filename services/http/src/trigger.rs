//! The server as the service's trigger: at preparation each version gets the handler its export
//! calls for (WASI 0.2 or 0.3), and at start the listener binds and serves.

use std::sync::Arc;

use anyhow::Context as _;
use futures::FutureExt as _;
use tempo_runtime_core::wasmtime::component::InstancePre;
use tempo_runtime_core::{InterfaceName, Running, ServeWith, Starting, State, Trigger};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::handler::{Handler, Prepared};
use crate::handler_p3::P3Handler;
use crate::metrics::StatusMetrics;
use crate::{HttpService, server, settings};

impl Trigger for HttpService {
    type Prepared = Prepared;

    fn export(&self) -> &InterfaceName {
        &self.export
    }

    fn also_exports(&self) -> &[InterfaceName] {
        &self.p3_export
    }

    /// A WASI 0.2 handler is preferred when a component exports both.
    fn prepare(&self, pre: &InstancePre<State>) -> anyhow::Result<Prepared> {
        let handler = match ProxyPre::new(pre.clone()) {
            Ok(proxy) => Handler::P2(proxy),
            Err(p2) => {
                let service = ServicePre::new(pre.clone()).map_err(|p3| {
                    anyhow::anyhow!(
                        "its wasi:http handler export has the wrong shape: {p2:#} (0.2), {p3:#} (0.3)"
                    )
                })?;
                Handler::P3(P3Handler::new(service, self.config.reuse))
            }
        };
        Ok(Prepared {
            handler,
            metrics: StatusMetrics::new(),
        })
    }

    fn start(self: Arc<Self>, with: ServeWith) -> Starting {
        let ServeWith {
            live,
            slots,
            shutdown,
        } = with;
        async move {
            let listen = self.config.listen;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {listen} ({})",
                        settings::LISTEN.how_to_set()
                    )
                })?;
            let address = listener
                .local_addr()
                .context("cannot read the bound address")?;
            // Guests do not reach their own server unless a rule names it.
            self.outbound.policy.add_own(address);
            let mut warnings = Vec::new();
            if let Some(tls) = &self.tls {
                warnings.extend(tls.identity().expiry_warning(&tls.files().cert));
                tokio::spawn(tls.clone().watch(shutdown.clone()));
            }
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            let serve = server::serve(
                listener,
                live,
                slots,
                shutdown,
                self.config.clone(),
                self.tls.clone(),
            );
            Ok(Running {
                address: format!("{scheme}://{address}"),
                warnings,
                serve: serve.boxed(),
            })
        }
        .boxed()
    }
}

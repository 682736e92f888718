//! The host as the commands use it: the runtime with tempo's services, serving a version's
//! triggers, and running a `wasi:cli` program to completion.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::anyhow;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use tempo_http::OwnAddresses;
use tempo_otel::{AdminServer, OTLP_ENDPOINT_VAR, Readiness, Telemetry};
use tempo_runtime_core::wasmtime::component::Component;
use tempo_runtime_core::wasmtime::{Engine, Trap};
use tempo_runtime_core::{
    Admission, Demand, InstanceSettings, LiveComponent, Runtime, ServeWith, Version, run_command,
};
use tokio_util::sync::CancellationToken;

use crate::settings::{Admin, Settings};
use crate::shell::{Exit, Shell};

/// The name a component is shown under: its file name without `.wasm` or `.bin`.
pub(crate) fn component_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |stem| stem.to_string_lossy().into_owned(),
    )
}

/// The loops serving a live component until shutdown.
pub(crate) struct Serving {
    pub(crate) live: LiveComponent,
    pub(crate) loops: Vec<BoxFuture<'static, anyhow::Result<()>>>,
}

/// A runtime on `engine` with every service tempo has, set up as `settings` says. Nothing is
/// opened yet: a service opens its backend when a version that links it is served or run.
pub(crate) fn runtime(engine: Engine, settings: &Settings) -> anyhow::Result<Runtime> {
    let mut runtime = Runtime::new(engine);
    for service in settings.services()? {
        runtime.add_service(service);
    }
    Ok(runtime)
}

/// Where `dev` serves `/metrics` unless told otherwise: the port OpenTelemetry's Prometheus
/// exporters conventionally use.
pub(crate) const DEV_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

/// What a serving command shows of its telemetry: the admin server and OTLP export.
pub(crate) struct Observability {
    registry: prometheus::Registry,
    /// What the admin server's `/readyz` answers.
    readiness: Readiness,
    otlp: Option<String>,
    admin: Option<Admin>,
    default_admin: Option<SocketAddr>,
    /// Where the admin server's bound address goes, for guests not to reach it.
    own: OwnAddresses,
}

impl Observability {
    /// The admin server at `admin` if given, else at `default_admin` (or off when that is
    /// `None`); the address it binds is added to `own`.
    pub(crate) fn new(
        telemetry: &Telemetry,
        admin: Option<Admin>,
        default_admin: Option<SocketAddr>,
        own: OwnAddresses,
    ) -> Self {
        Self {
            registry: telemetry.registry(),
            readiness: Readiness::default(),
            otlp: telemetry.otlp_endpoint().map(str::to_owned),
            admin,
            default_admin,
            own,
        }
    }

    /// Binds the admin server, if one is asked for, and says where metrics and traces go. An
    /// address given with `--admin` or `TEMPO_ADMIN` must be free; a taken default gives way to a
    /// free port.
    async fn start(
        &self,
        shell: &Shell,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<BoxFuture<'static, anyhow::Result<()>>>> {
        if let Some(endpoint) = &self.otlp {
            shell.status(
                "Exporting",
                format!("traces, metrics and logs to {endpoint} (`{OTLP_ENDPOINT_VAR}`)"),
            );
        }
        let registry = self.registry.clone();
        let server = match (self.admin, self.default_admin) {
            (Some(Admin::Off), _) | (None, None) => return Ok(None),
            (Some(Admin::On(address)), _) => {
                AdminServer::bind(address, registry, "--admin").await?
            }
            (None, Some(address)) => {
                match AdminServer::bind(address, registry.clone(), "--admin").await {
                    Ok(server) => server,
                    Err(err) => {
                        shell.warn(format!("{:#}; serving metrics on a free port instead", err));
                        let any = SocketAddr::new(address.ip(), 0);
                        AdminServer::bind(any, registry, "--admin").await?
                    }
                }
            }
        };
        let address = server.local_addr()?;
        // Guests do not reach it (a port 0 or a taken default is only known now).
        self.own.add(address);
        shell.status_always("Metrics", format!("http://{address}/metrics"));
        Ok(Some(
            server
                .serve(shutdown.clone(), self.readiness.clone())
                .boxed(),
        ))
    }

    /// What `/readyz` answers, for the command to change.
    pub(crate) fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }
}

/// Shows the services `version` is linked with, starts each of its triggers on a new live
/// component, with its share of `admission`'s instances, and shows where each listens, then the
/// admin server.
pub(crate) async fn serve(
    shell: &Shell,
    version: Version,
    admission: Admission,
    observability: &Observability,
    shutdown: &CancellationToken,
) -> anyhow::Result<Serving> {
    version.open_services().await?;
    for service in version.services() {
        shell.status(
            "Linked",
            format!("{}: {}", service.name(), service.describe()),
        );
    }
    shell.status(
        "Limits",
        format!("{}; {}", version.limits().describe(), admission.describe()),
    );
    let triggers = version.triggers().to_vec();
    let demands: Vec<Demand> = triggers.iter().map(|trigger| trigger.demand()).collect();
    let shares = admission.divide(&demands).map_err(|err| anyhow!("{err}"))?;
    let live = LiveComponent::new(version);
    let mut loops = Vec::new();
    for (trigger, slots) in triggers.into_iter().zip(shares) {
        let with = ServeWith {
            live: live.clone(),
            slots,
            shutdown: shutdown.clone(),
        };
        let running = trigger.start(with).await?;
        shell.status_always("Serving", &running.address);
        for warning in &running.warnings {
            shell.warn(warning);
        }
        loops.push(running.serve);
    }
    loops.extend(observability.start(shell, shutdown).await?);
    // Loaded, its backends answered, its triggers listening.
    observability.readiness.set_ready();
    Ok(Serving { live, loops })
}

/// The exit code of a guest that trapped, as `wasmtime run` reports it (128 + SIGABRT).
const TRAP_EXIT_CODE: i32 = 134;

/// Runs the `wasi:cli/run` export of `component` and returns the program's exit code. A trap is
/// one line (with `trap_hint` after it, if given) and exit code 134.
pub(crate) async fn run_program(
    shell: &Shell,
    runtime: &Runtime,
    component: &Component,
    settings: InstanceSettings,
    trap_hint: Option<&str>,
) -> anyhow::Result<i32> {
    let name = settings.name.clone();
    let version = runtime.prepare(component, settings)?;
    version.open_services().await?;
    match run_command(&version).await {
        Ok(code) => Ok(code),
        Err(err) if err.downcast_ref::<Trap>().is_some() => {
            tracing::debug!("{err:?}");
            let hint = trap_hint
                .map(|hint| format!("; {hint}"))
                .unwrap_or_default();
            shell.error(&anyhow!("`{name}` trapped: {}{hint}", err.root_cause()));
            Err(Exit(TRAP_EXIT_CODE).into())
        }
        Err(err) => Err(err.context(format!("`{name}` failed"))),
    }
}

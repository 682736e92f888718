//! The host as the commands use it: the runtime with tempo's services, serving a version's
//! triggers, and running a `wasi:cli` program to completion.

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use futures::future::BoxFuture;
use tempo_blobstore::BlobstoreService;
use tempo_http::HttpService;
use tempo_keyvalue::KeyValueService;
use tempo_messaging::MessagingService;
use tempo_runtime_core::wasmtime::component::Component;
use tempo_runtime_core::wasmtime::{Engine, Trap};
use tempo_runtime_core::{InstanceSettings, LiveComponent, Runtime, Version, run_command};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
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
pub(crate) fn runtime(engine: Engine, settings: Settings) -> anyhow::Result<Runtime> {
    let mut runtime = Runtime::new(engine);
    runtime.add_service(Arc::new(HttpService::new(settings.http)));
    runtime.add_service(Arc::new(KeyValueService::new(settings.keyvalue)?));
    runtime.add_service(Arc::new(BlobstoreService::new(settings.blobstore)));
    runtime.add_service(Arc::new(MessagingService::new(settings.messaging)));
    Ok(runtime)
}

/// Shows the services `version` is linked with, starts each of its triggers on a new live
/// component and shows where each listens.
pub(crate) async fn serve(
    shell: &Shell,
    version: Version,
    shutdown: &CancellationToken,
) -> anyhow::Result<Serving> {
    version.open_services().await?;
    for service in version.services() {
        shell.status(
            "Linked",
            format!("{}: {}", service.name(), service.describe()),
        );
    }
    let triggers = version.triggers().to_vec();
    let live = LiveComponent::new(version);
    let mut loops = Vec::new();
    for trigger in triggers {
        let running = trigger.start(live.clone(), shutdown.clone()).await?;
        shell.status_always("Serving", &running.address);
        loops.push(running.serve);
    }
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

//! Starting the triggers of a component version: shared by `run` and `dev`.

use std::path::Path;

use futures::future::BoxFuture;
use tempo_runtime_core::{LiveComponent, Version};
use tokio_util::sync::CancellationToken;

use crate::shell::Shell;

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

/// Shows the services `version` is linked with, starts each of its triggers on a new live
/// component and shows where each listens.
pub(crate) async fn start(
    shell: &Shell,
    version: Version,
    shutdown: &CancellationToken,
) -> anyhow::Result<Serving> {
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

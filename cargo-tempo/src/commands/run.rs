//! `cargo tempo run`: serve a wasi:http component, or run a wasi:cli program.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use futures::future::try_join_all;
use tempo_runtime_core::artifact::{Artifact, ArtifactKind, Loaded};
use tempo_runtime_core::{
    Admission, EngineSettings, GuestStdio, InstanceSettings, Runtime, is_cli_run,
};
use tokio_util::sync::CancellationToken;

use tempo_otel::Telemetry;

use crate::host::{self, Observability, component_name};
use crate::settings::{HostArgs, Settings};
use crate::shell::{Shell, display_path};
use crate::signals::{Drain, stop_on_signal};

/// Serve a component exporting wasi:http/incoming-handler, or run one exporting wasi:cli/run.
///
/// FILE is a .wasm component or a .bin from `cargo tempo build --release` or `cargo tempo
/// compile`. A wasi:cli program gets GUEST_ARGS and tempo exits with its exit code. Settings come
/// from the flags, the environment, `.env` and `tempo.toml` in the current folder.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The component to run: a file, or `oci://REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]`
    file: PathBuf,
    #[command(flatten)]
    host: HostArgs,
    /// Run precompiled native code from a file not named `*.bin` (a `.bin` is trusted as an
    /// executable is)
    #[arg(long)]
    allow_precompiled: bool,
    /// Arguments for the guest (after `--`); the component's name comes first
    #[arg(last = true, value_name = "GUEST_ARGS")]
    guest_args: Vec<String>,
}

pub(crate) fn exec(shell: &Shell, telemetry: &Telemetry, args: Args) -> anyhow::Result<i32> {
    let mut settings = Settings::load(&args.host, Path::new(""))?;
    // `oci://REF` runs a component from a registry, through the cache of pulled components.
    let (file_path, name) = match args.file.to_str().filter(|file| file.starts_with("oci://")) {
        Some(reference) => {
            let path = crate::commands::pull::cached(
                shell,
                reference,
                &crate::oci::OciSettings::from_sources(&settings.sources)?,
            )?;
            (path, crate::oci::repository_name(reference).to_owned())
        }
        None => (args.file.clone(), component_name(&args.file)),
    };
    settings.sources.share(telemetry.guest_spans());
    let admission = settings.admission;
    // The pool holds exactly the instances admission lets run.
    let settings_for_engine = EngineSettings {
        max_instances: admission.max_instances,
        ..EngineSettings::default()
    };
    let (engine, loaded) = Artifact::open(&file_path, settings_for_engine, args.allow_precompiled)?;
    shell.verbose_status(
        "Loaded",
        format!(
            "{} ({}) in {:.1}ms",
            display_path(&file_path),
            match loaded.kind {
                ArtifactKind::Precompiled => "precompiled",
                ArtifactKind::Compiled => "compiled from wasm",
            },
            loaded.elapsed.as_secs_f64() * 1e3
        ),
    );

    let observability =
        Observability::new(telemetry, settings.admin, None, settings.own_addresses());
    let drain = Drain {
        readiness: observability.readiness(),
        delay: tempo_http::settings::shutdown_delay(&settings.sources)?
            .unwrap_or(DEFAULT_SHUTDOWN_DELAY),
    };
    let limits = settings.limits;
    let runtime = host::runtime(engine, &settings)?;

    let exports = runtime.exports_of(&loaded.component);
    let served = !runtime.triggers_for(&exports).is_empty();
    let mut guest_args = vec![name.clone()];
    guest_args.extend(args.guest_args);

    let tokio = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if served {
        // Served instances are limited; a wasi:cli program runs as long and large as it needs.
        let settings = InstanceSettings {
            args: guest_args,
            limits,
            ..InstanceSettings::named(name)
        };
        tokio
            .block_on(serve(
                shell,
                &runtime,
                &loaded,
                settings,
                admission,
                &observability,
                drain,
            ))
            .map(|()| 0)
    } else if exports.iter().any(|e| is_cli_run(e)) {
        let settings = InstanceSettings {
            args: guest_args,
            stdio: GuestStdio::Inherit,
            ..InstanceSettings::named(name)
        };
        tokio.block_on(host::run_program(
            shell,
            &runtime,
            &loaded.component,
            settings,
            None,
        ))
    } else {
        let exports = if exports.is_empty() {
            "nothing".to_owned()
        } else {
            exports.join(", ")
        };
        let missing = runtime.missing_imports(&loaded.component);
        let imports = if missing.is_empty() {
            String::new()
        } else {
            format!(
                "; it also imports what no tempo service provides: {}",
                missing.join(", ")
            )
        };
        anyhow::bail!(
            "`{}` exports no handler tempo serves ({}) and no wasi:cli/run to run; it exports {exports}{imports}",
            display_path(&args.file),
            runtime.served_exports()
        );
    }
}

/// How long `run` goes on serving after the first shutdown signal, by default: long enough for
/// a load balancer or Kubernetes' endpoints to see `/readyz` fail and stop sending.
pub(crate) const DEFAULT_SHUTDOWN_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves until Ctrl-C or SIGTERM, drains as `drain` says, then lets requests in flight finish.
async fn serve(
    shell: &Shell,
    runtime: &Runtime,
    loaded: &Loaded,
    settings: InstanceSettings,
    admission: Admission,
    observability: &Observability,
    drain: Drain,
) -> anyhow::Result<()> {
    let version = runtime.prepare(&loaded.component, settings)?;
    let shutdown = CancellationToken::new();
    let serving = host::serve(shell, version, admission, observability, &shutdown).await?;
    shell.status("Shutdown", drain.describe());
    tokio::spawn(stop_on_signal(*shell, shutdown, drain));
    try_join_all(serving.loops).await?;
    serving.live.current().close_services().await;
    shell.status("Stopped", "all requests finished");
    Ok(())
}

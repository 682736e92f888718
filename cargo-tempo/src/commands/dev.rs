//! `cargo tempo dev`: build, serve, watch; on every save rebuild and hot-swap the component
//! inside the running server, which keeps its listener, its connections and its data.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use opentelemetry::KeyValue;
use tempo_http::STALE_HEADER;
use tempo_otel::Telemetry;
use tempo_runtime_core::metrics::metrics;
use tempo_runtime_core::{
    Admission, Compiler, Concurrency, EngineSettings, InstanceLimits, InstanceSettings,
    LiveComponent, Runtime, Version, artifact,
};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cargo_build::{self, Artifact, Build, Group, PackageArgs};
use crate::host::{self, Observability, component_name};
use crate::project::Project;
use crate::settings::{HostArgs, Settings};
use crate::shell::{Exit, Shell, display_path};
use crate::signals::{Drain, stop_on_signal};
use crate::watch::{Watch, WatchSet};

/// Build, serve and watch: every save rebuilds the component and swaps it into the running
/// server without dropping a request.
///
/// What is watched comes from `cargo metadata`: the sources of the package and of its path
/// dependencies, build scripts, manifests, Cargo.lock, wit/, tempo.toml and .env; never the
/// target folder, .git, or what .gitignore excludes. Requests in flight during a reload finish on
/// the old version. While the latest build fails, the last good one keeps serving and every
/// response carries an `x-tempo-stale` header.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    package: PackageArgs,
    #[command(flatten)]
    host: HostArgs,
    /// Quiet time after a change before building, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    debounce: u64,
    /// Clear the terminal before each rebuild
    #[arg(long)]
    clear: bool,
    /// Poll the file system instead of using OS notifications (for network or container mounts)
    #[arg(long)]
    poll: bool,
    /// Further arguments for `cargo build`, after `--`
    #[arg(last = true, value_name = "CARGO_ARGS")]
    cargo_args: Vec<OsString>,
}

pub(crate) fn exec(shell: &Shell, telemetry: &Telemetry, args: Args) -> anyhow::Result<i32> {
    cargo_build::preflight(shell, &args.package)?;
    // Winch compiles several times faster than Cranelift, and the compile sits between an edit
    // and its first response; `--release` gets the code `run` would serve.
    let compiler = if args.package.release {
        Compiler::Cranelift
    } else {
        Compiler::Winch
    };
    let mut settings = Settings::load(&args.host, &args.package.work_dir())?;
    settings.sources.share(telemetry.guest_spans());
    let engine = EngineSettings {
        compiler,
        // The next build may be a WASI 0.3 component; the dev loop is not where the cost of
        // async support to 0.2 requests matters.
        concurrency: Concurrency::On,
        max_instances: settings.admission.max_instances,
        ..EngineSettings::default()
    }
    .build()?;
    // `dev` serves metrics unless told `--admin off`: watching them is part of developing.
    let observability = Observability::new(
        telemetry,
        settings.admin,
        Some(host::DEV_ADMIN),
        settings.own_addresses(),
    );
    // `dev` stops at once unless told to wait: no load balancer is in front of it.
    let shutdown_delay =
        tempo_http::settings::shutdown_delay(&settings.sources)?.unwrap_or(Duration::ZERO);
    let limits = (settings.limits, settings.admission, shutdown_delay);
    let runtime = host::runtime(engine, &settings)?;
    let tokio = tokio::runtime::Runtime::new()?;
    tokio.block_on(Dev::new(shell, args, runtime, limits, observability).run())
}

/// The dev loop's state.
struct Dev<'a> {
    shell: &'a Shell,
    args: Args,
    runtime: Runtime,
    /// What each instance may consume.
    limits: InstanceLimits,
    /// How many instances run at once.
    admission: Admission,
    /// How long serving goes on after the first shutdown signal.
    shutdown_delay: Duration,
    observability: Observability,
    project: Option<Project>,
    watch: Option<Watch>,
    changes: UnboundedReceiver<Vec<PathBuf>>,
    sender: UnboundedSender<Vec<PathBuf>>,
    shutdown: CancellationToken,
    live: Option<LiveComponent>,
    loops: Vec<JoinHandle<anyhow::Result<()>>>,
}

/// What a build turned into.
enum Outcome {
    Built(anyhow::Result<Vec<Artifact>>, Duration),
    Stopped,
}

impl<'a> Dev<'a> {
    fn new(
        shell: &'a Shell,
        args: Args,
        runtime: Runtime,
        (limits, admission, shutdown_delay): (InstanceLimits, Admission, Duration),
        observability: Observability,
    ) -> Self {
        let (sender, changes) = mpsc::unbounded_channel();
        Self {
            shell,
            args,
            runtime,
            limits,
            admission,
            shutdown_delay,
            observability,
            project: None,
            watch: None,
            changes,
            sender,
            shutdown: CancellationToken::new(),
            live: None,
            loops: Vec::new(),
        }
    }

    async fn run(mut self) -> anyhow::Result<i32> {
        let drain = Drain {
            readiness: self.observability.readiness(),
            delay: self.shutdown_delay,
        };
        tokio::spawn(stop_on_signal(*self.shell, self.shutdown.clone(), drain));
        self.watch()?;
        let mut changed: Vec<PathBuf> = Vec::new();
        let mut since = Instant::now();
        loop {
            let Outcome::Built(result, build_time) = self.build(&mut changed, &mut since).await
            else {
                break;
            };
            self.apply(result, since, build_time).await?;
            if self.project.is_none() || changed.iter().any(|path| is_manifest(path)) {
                self.watch()?;
            }
            // Changes that came in meanwhile have queued up: they make one build together.
            let first = tokio::select! {
                batch = self.changes.recv() => batch,
                () = self.shutdown.cancelled() => None,
            };
            let Some(first) = first else { break };
            changed = first;
            while let Ok(more) = self.changes.try_recv() {
                changed.extend(more);
            }
            since = Instant::now();
            self.announce(&changed, "");
        }
        self.stop().await
    }

    /// (Re)starts the watcher on what `cargo metadata` says the project is, or on the whole
    /// package folder while the metadata cannot be read (a broken manifest, say).
    fn watch(&mut self) -> anyhow::Result<()> {
        let target_dir = self.args.package.target_dir.as_deref();
        let set = match Project::load(&self.args.package) {
            Ok(project) => {
                let set = project.watch_set(target_dir);
                self.project = Some(project);
                set
            }
            Err(err) => {
                self.shell.warn(format!(
                    "{err:#}; watching the whole package folder meanwhile"
                ));
                self.project = None;
                WatchSet::package_folder(
                    &std::path::absolute(self.args.package.work_dir())?,
                    target_dir,
                )
            }
        };
        self.shell.verbose_status("Watching", set.describe());
        self.watch = None;
        let debounce = Duration::from_millis(self.args.debounce);
        self.watch = Some(Watch::start(
            set,
            debounce,
            self.args.poll,
            self.sender.clone(),
        )?);
        Ok(())
    }

    /// Runs cargo until a build finishes that no newer change overtook; a change during a build
    /// cancels it (cargo and its rustc processes) and starts another.
    async fn build(&mut self, changed: &mut Vec<PathBuf>, since: &mut Instant) -> Outcome {
        loop {
            if self.args.clear && !changed.is_empty() {
                self.shell.clear_screen();
            }
            let started = Instant::now();
            let build = match Build::start(
                self.shell,
                &self.args.package,
                &self.args.cargo_args,
                Group::Own,
            ) {
                Ok(build) => build,
                Err(err) => return Outcome::Built(Err(err), started.elapsed()),
            };
            let cancel = build.cancel_handle();
            let mut task = tokio::task::spawn_blocking(move || build.finish());
            tokio::select! {
                joined = &mut task => {
                    let result = joined.unwrap_or_else(|err| Err(anyhow!("the build task failed: {err}")));
                    return Outcome::Built(result, started.elapsed());
                }
                Some(more) = self.changes.recv() => {
                    cancel.cancel();
                    let _ = task.await;
                    self.announce(&more, "; restarting the build");
                    changed.extend(more);
                    *since = Instant::now();
                }
                () = self.shutdown.cancelled() => {
                    cancel.cancel();
                    let _ = task.await;
                    return Outcome::Stopped;
                }
            }
        }
    }

    /// Turns a finished build into the served version: compile, check against the running
    /// triggers, swap. Anything that fails leaves the last good version serving.
    async fn apply(
        &mut self,
        result: anyhow::Result<Vec<Artifact>>,
        since: Instant,
        build: Duration,
    ) -> anyhow::Result<()> {
        let artifacts = match result {
            Ok(artifacts) => artifacts,
            Err(err) => {
                // Cargo has shown its diagnostics; anything else gets said here.
                if err.downcast_ref::<Exit>().is_none() {
                    self.shell.error(&err);
                }
                self.failed("the build failed");
                return Ok(());
            }
        };
        let [artifact] = artifacts.as_slice() else {
            let names: Vec<String> = artifacts.iter().map(|a| display_path(&a.wasm)).collect();
            self.shell.error(&anyhow!(
                "this build produced {} components ({}); `cargo tempo dev` serves one: choose it with `-p`",
                artifacts.len(),
                names.join(", ")
            ));
            self.failed("the build produced several components");
            return Ok(());
        };
        let name = self
            .project
            .as_ref()
            .and_then(|project| project.package_name(&artifact.package))
            .map_or_else(|| component_name(&artifact.wasm), str::to_owned);

        let compile_start = Instant::now();
        let version = match self.compile(&artifact.wasm).await {
            Ok(version) => version,
            Err(err) => {
                self.shell.error(&err);
                self.failed("the new build was refused");
                return Ok(());
            }
        };
        let compile = compile_start.elapsed();

        let Some(live) = &self.live else {
            return self.start_serving(&name, version).await;
        };
        if let Err(why) = live.current().check_replacement(&version) {
            self.shell.error(&anyhow!(
                "`{name}` cannot replace the running version: {why}"
            ));
            self.failed("the new build was refused");
            return Ok(());
        }
        let swap_start = Instant::now();
        live.swap(version);
        let swap = swap_start.elapsed();
        live.set_stale(None);
        metrics().reloads.add(
            1,
            &[
                live.current().component_attribute().clone(),
                KeyValue::new("outcome", "ok"),
            ],
        );
        self.shell.status(
            "Reloaded",
            format!(
                "{name} in {:.2}s (build {:.2}s, compile {:.2}s, swap {:.1}ms)",
                since.elapsed().as_secs_f64(),
                build.as_secs_f64(),
                compile.as_secs_f64(),
                swap.as_secs_f64() * 1e3
            ),
        );
        Ok(())
    }

    /// Compiles (off the async threads) and links a freshly built component.
    async fn compile(&self, wasm: &Path) -> anyhow::Result<Version> {
        let engine = self.runtime.engine().clone();
        let path = wasm.to_path_buf();
        let loaded = tokio::task::spawn_blocking(move || {
            artifact::Artifact::read(&path)?.load(&engine, false)
        })
        .await??;
        let settings = InstanceSettings {
            limits: self.limits,
            ..InstanceSettings::named(component_name(wasm))
        };
        let version = self.runtime.prepare(&loaded.component, settings)?;
        version.open_services().await?;
        Ok(version)
    }

    /// The first good build starts the server.
    async fn start_serving(&mut self, name: &str, version: Version) -> anyhow::Result<()> {
        if version.triggers().is_empty() {
            self.shell.error(&anyhow!(
                "`{name}` exports no handler tempo serves ({}): `cargo tempo dev` serves components that handle requests or messages (run wasi:cli programs with `cargo tempo run`)",
                self.runtime.served_exports()
            ));
            self.failed("the build cannot be served");
            return Ok(());
        }
        let serving = host::serve(
            self.shell,
            version,
            self.admission,
            &self.observability,
            &self.shutdown,
        )
        .await?;
        self.loops = serving.loops.into_iter().map(tokio::spawn).collect();
        self.live = Some(serving.live);
        Ok(())
    }

    /// Says that the newest build is not served, and marks the live component stale.
    fn failed(&self, what: &str) {
        match &self.live {
            Some(live) => {
                live.set_stale(Some(format!("{what}; serving the last good build")));
                metrics().reloads.add(
                    1,
                    &[
                        live.current().component_attribute().clone(),
                        KeyValue::new("outcome", "failed"),
                    ],
                );
                self.shell.warn(format!(
                    "{what}; still serving the last good build (responses carry `{STALE_HEADER}`)"
                ));
            }
            None => self.shell.warn(format!("{what}; waiting for a change")),
        }
    }

    /// `Changed src/lib.rs, src/api.rs and 3 more`.
    fn announce(&self, paths: &[PathBuf], suffix: &str) {
        const SHOWN: usize = 3;
        let mut names: Vec<String> = paths
            .iter()
            .take(SHOWN)
            .map(|path| display_path(path))
            .collect();
        if paths.len() > SHOWN {
            names.push(format!("{} more", paths.len() - SHOWN));
        }
        self.shell
            .status("Changed", format!("{}{suffix}", names.join(", ")));
    }

    /// Stops watching and lets requests in flight finish.
    async fn stop(mut self) -> anyhow::Result<i32> {
        self.watch = None;
        let serving = !self.loops.is_empty();
        for handle in self.loops.drain(..) {
            handle.await??;
        }
        if let Some(live) = &self.live {
            live.current().close_services().await;
        }
        if serving {
            self.shell.status("Stopped", "all requests finished");
        }
        Ok(0)
    }
}

fn is_manifest(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name == "Cargo.toml" || name == "Cargo.lock")
}

//! Driving cargo for `wasm32-wasip2`: the target check, the flags every command hands to cargo
//! in one place, and `cargo build` with the artifacts read from cargo's own JSON messages.

use std::ffi::{OsStr, OsString};
use std::io::BufReader;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};
use cargo_metadata::{Message, PackageId, TargetKind};
use clap::Args;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::shell::{Exit, Shell};

/// The target tempo builds for.
pub(crate) const WASM_TARGET: &str = "wasm32-wasip2";

/// What `build`, `dev` and `test` hand to cargo.
#[derive(Debug, Args)]
pub(crate) struct PackageArgs {
    /// Build with the release profile
    #[arg(short, long)]
    pub(crate) release: bool,
    /// Package(s) to build (see `cargo help pkgid`)
    #[arg(short, long = "package", value_name = "SPEC")]
    pub(crate) packages: Vec<String>,
    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    /// Directory for all generated artifacts
    #[arg(long, value_name = "DIRECTORY")]
    pub(crate) target_dir: Option<PathBuf>,
}

impl PackageArgs {
    /// The folder cargo (and rustc, and rustup) should run in, so that a `rust-toolchain.toml`
    /// beside the manifest is honoured.
    pub(crate) fn work_dir(&self) -> PathBuf {
        self.manifest_path
            .as_deref()
            .and_then(Path::parent)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }
}

/// A component cargo built: the package it belongs to and its `.wasm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Artifact {
    pub(crate) package: PackageId,
    pub(crate) wasm: PathBuf,
}

/// Builds the selected packages for `wasm32-wasip2` and returns the components cargo reported.
/// When cargo fails, its diagnostics have been shown and the error is [`Exit`] with cargo's code.
pub(crate) fn build(
    shell: &Shell,
    args: &PackageArgs,
    cargo_args: &[OsString],
) -> anyhow::Result<Vec<Artifact>> {
    preflight(shell, args)?;
    Build::start(shell, args, cargo_args, Group::Shared)?.finish()
}

/// What every command checks before cargo runs: the manifest exists, and the toolchain has the
/// `wasm32-wasip2` target (installed with rustup if it can be).
pub(crate) fn preflight(shell: &Shell, args: &PackageArgs) -> anyhow::Result<()> {
    check_manifest(args)?;
    ensure_wasm_target(shell, &args.work_dir())
}

/// Refuses a `--manifest-path` that names no file.
fn check_manifest(args: &PackageArgs) -> anyhow::Result<()> {
    match &args.manifest_path {
        Some(manifest) if !manifest.is_file() => {
            bail!(
                "no manifest at `{}` (`--manifest-path`)",
                manifest.display()
            )
        }
        _ => Ok(()),
    }
}

/// Whether cargo shares tempo's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// Ctrl-C in the terminal reaches cargo too, as for any command.
    Shared,
    /// Cargo and its rustc processes get a group of their own, which [`Cancel`] stops as a whole.
    Own,
}

/// A cargo build under way.
pub(crate) struct Build {
    child: Child,
}

/// Stops a [`Build`] started in its own process group, rustc processes included.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cancel(Pid);

impl Cancel {
    pub(crate) fn cancel(self) {
        // The group may have finished already; there is nothing to do then.
        let _ = killpg(self.0, Signal::SIGTERM);
    }
}

impl Build {
    /// Spawns `cargo build --target wasm32-wasip2` with cargo's JSON messages on its stdout.
    pub(crate) fn start(
        shell: &Shell,
        args: &PackageArgs,
        cargo_args: &[OsString],
        group: Group,
    ) -> anyhow::Result<Self> {
        let mut command = cargo_command(shell, "build", args);
        command
            .args(["--message-format", "json-render-diagnostics"])
            .args(cargo_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if group == Group::Own {
            command.process_group(0);
        }
        tracing::debug!("running {command:?}");
        let child = command
            .spawn()
            .with_context(|| format!("cannot run `{}`", command.get_program().to_string_lossy()))?;
        Ok(Self { child })
    }

    /// What stops this build; meaningful for builds in their [own group](Group::Own).
    pub(crate) fn cancel_handle(&self) -> Cancel {
        Cancel(Pid::from_raw(
            i32::try_from(self.child.id()).unwrap_or(i32::MAX),
        ))
    }

    /// Reads cargo's messages until it exits and returns the components it built.
    pub(crate) fn finish(mut self) -> anyhow::Result<Vec<Artifact>> {
        let stdout = self
            .child
            .stdout
            .take()
            .context("cargo's stdout was not captured")?;
        let mut artifacts = Vec::new();
        for message in Message::parse_stream(BufReader::new(stdout)) {
            match message.context("cannot read cargo's output")? {
                Message::CompilerArtifact(artifact)
                    if artifact.target.is_kind(TargetKind::CDyLib)
                        || artifact.target.is_kind(TargetKind::Bin) =>
                {
                    let package = artifact.package_id;
                    let wasm = artifact
                        .filenames
                        .into_iter()
                        .filter(|f| f.extension() == Some("wasm"));
                    artifacts.extend(wasm.map(|wasm| Artifact {
                        package: package.clone(),
                        wasm: wasm.into(),
                    }));
                }
                Message::TextLine(line) => anstream::eprintln!("{line}"),
                _ => {}
            }
        }
        let status = self.child.wait().context("cargo did not finish")?;
        if !status.success() {
            return Err(Exit(status.code().unwrap_or(1)).into());
        }
        artifacts.dedup();
        if artifacts.is_empty() {
            bail!(
                "cargo built no WebAssembly component: give the package a `[lib] crate-type = [\"cdylib\"]` or a binary target"
            );
        }
        Ok(artifacts)
    }
}

/// `$CARGO SUBCOMMAND --target wasm32-wasip2` with the package selection, profile, folders and
/// the output settings of `shell`, run in the package's folder.
pub(crate) fn cargo_command(shell: &Shell, subcommand: &str, args: &PackageArgs) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(args.work_dir())
        .args([subcommand, "--target", WASM_TARGET])
        .args(["--color", shell.color().as_str()]);
    if args.release {
        command.arg("--release");
    }
    for package in &args.packages {
        command.args(["--package", package]);
    }
    if let Some(manifest) = &args.manifest_path {
        command.arg("--manifest-path").arg(absolute(manifest));
    }
    if let Some(dir) = &args.target_dir {
        command.arg("--target-dir").arg(absolute(dir));
    }
    if shell.quiet() {
        command.arg("--quiet");
    }
    for _ in 0..shell.verbose() {
        command.arg("--verbose");
    }
    command
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Makes sure the active toolchain has the `wasm32-wasip2` standard library, installing it with
/// rustup when rustup is there.
fn ensure_wasm_target(shell: &Shell, work_dir: &Path) -> anyhow::Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = sysroot(&rustc, work_dir)?;
    if sysroot
        .join("lib/rustlib")
        .join(WASM_TARGET)
        .join("lib")
        .is_dir()
    {
        return Ok(());
    }
    let Ok(rustup) = which::which("rustup") else {
        bail!(
            "the {WASM_TARGET} target is not installed for `{}` (sysroot `{}`) and rustup is not on PATH: install the target with `rustup target add {WASM_TARGET}`, or your distribution's {WASM_TARGET} standard library",
            rustc.to_string_lossy(),
            sysroot.display()
        );
    };
    shell.status(
        "Installing",
        format!("the {WASM_TARGET} target (`rustup target add {WASM_TARGET}`)"),
    );
    let status = Command::new(&rustup)
        .current_dir(work_dir)
        .args(["target", "add", WASM_TARGET])
        .status()
        .with_context(|| format!("cannot run `{}`", rustup.display()))?;
    if !status.success() {
        bail!("`rustup target add {WASM_TARGET}` failed: install the target by hand and try again");
    }
    Ok(())
}

fn sysroot(rustc: &OsStr, work_dir: &Path) -> anyhow::Result<PathBuf> {
    let output = Command::new(rustc)
        .current_dir(work_dir)
        .args(["--print", "sysroot"])
        .output()
        .with_context(|| {
            format!(
                "cannot run `{}` to find the Rust sysroot",
                rustc.to_string_lossy()
            )
        })?;
    if !output.status.success() {
        bail!(
            "`{} --print sysroot` failed: {}",
            rustc.to_string_lossy(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

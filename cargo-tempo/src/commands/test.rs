//! `cargo tempo test`: the crate's tests, run as components on tempo's runtime.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tempo_runtime_core::artifact::Artifact;
use tempo_runtime_core::{Compiler, EngineSettings, GuestStdio, InstanceSettings};

use crate::cargo_build::{self, PackageArgs, WASM_TARGET, cargo_command};
use crate::host::{self, component_name};
use crate::services::SERVICES;
use crate::settings::{HostArgs, Settings};
use crate::shell::Shell;

/// Run the crate's tests as components, with the host services they import.
///
/// Runs `cargo test --target wasm32-wasip2` with tempo as cargo's runner for the target: each test
/// binary runs as a wasi:cli component on the runtime that serves the crate, with embedded
/// backends in a fresh state folder. Tests see no host environment variables or files. Cargo's
/// output and exit code are passed through.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    package: PackageArgs,
    /// Arguments for the test binaries, after `--` (a name filter, `--nocapture`, …)
    #[arg(last = true, value_name = "TEST_ARGS")]
    test_args: Vec<OsString>,
}

pub(crate) fn exec(shell: &Shell, args: Args) -> anyhow::Result<i32> {
    cargo_build::preflight(shell, &args.package)?;
    let tempo = std::env::current_exe().context("cannot find tempo's own executable")?;
    let runner = format!(
        "target.{WASM_TARGET}.runner=[{}, \"{RUNNER}\"]",
        toml_string(&tempo.to_string_lossy())
    );
    let mut command = cargo_command(shell, "test", &args.package);
    command.args(["--config", &runner]);
    if !args.test_args.is_empty() {
        command.arg("--").args(&args.test_args);
    }
    tracing::debug!("running {command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot run `{}`", command.get_program().to_string_lossy()))?;
    Ok(status.code().unwrap_or(1))
}

/// The hidden subcommand cargo calls for each test binary.
pub(crate) const RUNNER: &str = "test-runner";

/// Runs one test binary for `cargo test` (`cargo tempo test` makes tempo cargo's runner).
#[derive(Debug, clap::Args)]
pub(crate) struct RunnerArgs {
    /// The test binary, a wasi:cli component
    file: PathBuf,
    /// The harness's arguments, as cargo passes them
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Tests abort at their first panic on wasm32-wasip2 (`panic = "abort"`), before the harness
/// prints what it captured.
const TRAP_HINT: &str =
    "a test panicked (tests abort at the first panic: add `-- --nocapture` to see its message)";

pub(crate) fn exec_runner(shell: &Shell, args: RunnerArgs) -> anyhow::Result<i32> {
    // Test binaries are large debug builds that run briefly: Winch compiles them several times
    // faster than Cranelift.
    let winch = EngineSettings {
        compiler: Compiler::Winch,
        ..EngineSettings::default()
    };
    let (engine, loaded) = Artifact::open(&args.file, winch, false)?;
    // Each test binary gets embedded backends in a state folder of its own, so tests never see
    // the data of `dev` (or of each other) and leave nothing behind.
    let state = tempfile::tempdir().context("cannot create a state folder for the tests")?;
    let host = runner_host_args(state.path())?;
    let runtime = host::runtime(engine, &Settings::load(&host, Path::new(""))?)?;
    let name = component_name(&args.file);
    let settings = InstanceSettings {
        args: std::iter::once(name.clone()).chain(args.args).collect(),
        stdio: GuestStdio::Inherit,
        ..InstanceSettings::named(name)
    };
    let tokio = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    tokio.block_on(host::run_program(
        shell,
        &runtime,
        &loaded.component,
        settings,
        Some(TRAP_HINT),
    ))
}

/// A test binary's host flags: its own state folder, and each service's
/// [`TEST_FLAGS`](tempo_runtime_core::settings::Configured::TEST_FLAGS).
fn runner_host_args(state: &Path) -> anyhow::Result<HostArgs> {
    let mut flags = vec![OsString::from("--state-dir"), state.into()];
    flags.extend(
        SERVICES
            .iter()
            .flat_map(|service| service.test_flags())
            .map(OsString::from),
    );
    HostArgs::parse(flags)
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use tempo_runtime_core::settings::Sources;

    use super::{runner_host_args, toml_string};
    use crate::settings::Settings;

    /// A test binary reaches no NATS server or database the environment names: every service
    /// with a backend is embedded, in the test's state folder. A service added to the list with
    /// a production backend and no `TEST_FLAGS` fails here.
    #[test]
    fn a_test_binary_gets_every_backend_embedded_whatever_the_environment_names() {
        let state = tempfile::tempdir().unwrap();
        let production = [
            ("NATS_ADDR", "nats://192.0.2.1:4222"),
            (
                "TEMPO_SQL_DATABASE_ORDERS",
                "postgres://app@192.0.2.2/orders",
            ),
            ("TEMPO_KEYVALUE", "nats"),
            ("TEMPO_BLOBSTORE", "nats"),
            ("TEMPO_MESSAGING", "nats"),
        ];
        let sources = Sources::with_variables(state.path(), None, &production).unwrap();
        let flags = runner_host_args(state.path()).unwrap();
        let services = Settings::resolve(&flags, sources)
            .unwrap()
            .services()
            .unwrap();
        for service in services {
            let described = service.describe();
            assert!(
                !described.contains("192.0.2.") && !described.contains("NATS"),
                "{}: {described}",
                service.name()
            );
        }
    }

    #[test]
    fn paths_become_toml_strings() {
        assert_eq!(
            toml_string("/usr/bin/cargo-tempo"),
            r#""/usr/bin/cargo-tempo""#
        );
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
        assert_eq!(toml_string("a\tb"), r#""a\u0009b""#);
    }
}

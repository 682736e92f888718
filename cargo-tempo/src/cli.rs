//! The command line: global flags and the subcommands.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{
    Arg, ArgAction, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum,
};

use crate::commands::{build, compile, dev, kube, new, pull, push, run, test};

/// Build, run and hot-reload WASI components in Rust.
#[derive(Debug, Parser)]
#[command(
    name = "cargo-tempo",
    bin_name = "cargo tempo",
    version,
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// The command line in `args`. Each flag reads its variable through clap, except that an
    /// empty variable counts as unset (as in `.env`); a bad value from a variable is an error
    /// that names the variable. On an error, or for `--help`, the process exits.
    pub(crate) fn parse_args(args: Vec<OsString>) -> Self {
        let command = Self::command().mut_subcommands(|command| command.mut_args(unset_if_empty));
        let given = args.clone();
        command
            .clone()
            .try_get_matches_from(args)
            .and_then(|matches| Self::from_arg_matches(&matches))
            .unwrap_or_else(|err| name_the_variable(err, &command, &given).exit())
    }
}

/// `arg` without its variable when that is set but empty.
fn unset_if_empty(arg: Arg) -> Arg {
    match arg.get_env() {
        Some(var) if std::env::var_os(var).is_some_and(|value| value.is_empty()) => {
            arg.env(None::<&str>)
        }
        _ => arg,
    }
}

/// `err`, saying which variable a bad value came from when it was not on the command line.
fn name_the_variable(err: clap::Error, command: &clap::Command, given: &[OsString]) -> clap::Error {
    let (Some(ContextValue::String(flag)), Some(ContextValue::String(value))) = (
        err.get(ContextKind::InvalidArg),
        err.get(ContextKind::InvalidValue),
    ) else {
        return err;
    };
    let long = flag
        .trim_start_matches("--")
        .split(' ')
        .next()
        .unwrap_or_default();
    let on_command_line = given.iter().any(|arg| {
        arg.to_str()
            .and_then(|arg| arg.strip_prefix("--"))
            .is_some_and(|arg| arg == long || arg.starts_with(&format!("{long}=")))
    });
    let var = std::iter::once(command)
        .chain(command.get_subcommands())
        .flat_map(clap::Command::get_arguments)
        .find(|arg| arg.get_long() == Some(long))
        .and_then(Arg::get_env);
    match var {
        Some(var)
            if !on_command_line && std::env::var_os(var).is_some_and(|v| v == value.as_str()) =>
        {
            let message = err.to_string();
            let message = message.lines().next().unwrap_or_default();
            let message = message.strip_prefix("error: ").unwrap_or(message);
            clap::Error::raw(
                ErrorKind::InvalidValue,
                format!("`{}={value}`: {message}\n", var.to_string_lossy()),
            )
        }
        _ => err,
    }
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Print nothing but errors, results and where tempo serves
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Say more (-vv for debug logs; `RUST_LOG` overrides)
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// When to use colors
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto, global = true, env = "CARGO_TERM_COLOR")]
    pub(crate) color: ColorWhen,
    /// How logs and status lines are written: text on stderr, or JSON lines on stdout for a
    /// log collector
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text, global = true, env = "TEMPO_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// For people: cargo's style, on stderr
    Text,
    /// One JSON object per line on stdout (`timestamp`, `level`, `target`, `message` and the
    /// event's fields), as Kubernetes' log collectors read them
    Json,
}

/// When to color output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorWhen {
    /// When writing to a terminal
    Auto,
    /// Always
    Always,
    /// Never
    Never,
}

impl ColorWhen {
    /// How cargo spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ColorWhen::Auto => "auto",
            ColorWhen::Always => "always",
            ColorWhen::Never => "never",
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a guest crate from a template: it builds, serves and tests at once
    New(new::Args),
    /// Build the crate as a WASI component; with --release also AOT-compile it to a .bin
    Build(build::Args),
    /// AOT-compile a component to a .bin, with exactly the engine settings `run` uses
    Compile(compile::Args),
    /// Serve a wasi:http or wasi:messaging component, or run a wasi:cli program, with tempo's host services
    Run(run::Args),
    /// Build, serve and watch: every save rebuilds and hot-swaps the component, dropping nothing
    Dev(dev::Args),
    /// Run the crate's tests as components on tempo's runtime, with the services they import
    Test(test::Args),
    /// Push a component to an OCI registry; prints the reference pinned by digest
    Push(push::Args),
    /// Pull a component from an OCI registry to a .wasm file, its digests checked
    Pull(pull::Args),
    /// Print the Kubernetes manifests that run a pushed component (or write them for kustomize)
    Kube(kube::Args),
    /// Runs one test binary for `cargo tempo test` (cargo's runner; not for direct use)
    #[command(name = test::RUNNER, hide = true)]
    TestRunner(test::RunnerArgs),
}

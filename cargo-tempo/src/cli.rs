//! The command line: global flags and the subcommands.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::commands::{build, compile, dev, new, run, test};

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
    /// Runs one test binary for `cargo tempo test` (cargo's runner; not for direct use)
    #[command(name = test::RUNNER, hide = true)]
    TestRunner(test::RunnerArgs),
}

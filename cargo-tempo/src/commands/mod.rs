//! One file per subcommand, each with its `Args` and an `exec`.

pub(crate) mod build;
pub(crate) mod compile;
pub(crate) mod dev;
pub(crate) mod kube;
pub(crate) mod new;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod run;
pub(crate) mod test;

use tempo_otel::Telemetry;

use crate::cli::Command;
use crate::shell::Shell;

/// Runs a subcommand and returns the process exit code.
pub(crate) fn exec(shell: &Shell, telemetry: &Telemetry, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Build(args) => build::exec(shell, args).map(|()| 0),
        Command::Compile(args) => compile::exec(shell, args).map(|()| 0),
        Command::Run(args) => run::exec(shell, telemetry, args),
        Command::Dev(args) => dev::exec(shell, telemetry, args),
        Command::New(args) => new::exec(shell, args).map(|()| 0),
        Command::Push(args) => push::exec(shell, args).map(|()| 0),
        Command::Pull(args) => pull::exec(shell, args).map(|()| 0),
        Command::Kube(args) => kube::exec(shell, args).map(|()| 0),
        Command::Test(args) => test::exec(shell, args),
        Command::TestRunner(args) => test::exec_runner(shell, args),
    }
}

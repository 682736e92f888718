//! `cargo tempo`: build Rust crates as WASI components, AOT-compile them, and run them on
//! wasmtime with host services.

mod cargo_build;
mod cli;
mod commands;
mod host;
mod kube;
mod log_format;
mod oci;
mod project;
mod services;
mod settings;
mod shell;
mod signals;
mod templates;
mod watch;

use std::process::ExitCode;

use tempo_otel::Telemetry;

use crate::cli::Cli;
use crate::shell::{Exit, Shell};

/// mimalloc rather than glibc's malloc: 1.05x requests/s on a WASI 0.2 hello, 1.1x messages/s
/// with reused instances (docs/performance.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tempo_runtime_core::install_crypto_provider();
    // As `cargo tempo …`, cargo runs `cargo-tempo tempo …`.
    let mut args: Vec<_> = std::env::args_os().collect();
    if args.get(1).is_some_and(|arg| arg == "tempo") {
        args.remove(1);
    }
    let cli = Cli::parse_args(args);
    let shell = Shell::new(&cli.global);
    // Before anything records a metric: the runtime's instruments bind to this provider.
    let telemetry = match Telemetry::init() {
        Ok(telemetry) => telemetry,
        Err(err) => {
            shell.error(&err);
            return ExitCode::FAILURE;
        }
    };
    shell.init_tracing(telemetry.layers());
    let outcome = commands::exec(&shell, &telemetry, cli.command);
    telemetry.shutdown();
    match outcome {
        Ok(code) => exit_code(code),
        Err(err) => match err.downcast_ref::<Exit>() {
            // Whoever chose the code (cargo, the guest) has already said why.
            Some(Exit(code)) => exit_code(*code),
            None => {
                shell.error(&err);
                ExitCode::FAILURE
            }
        },
    }
}

fn exit_code(code: i32) -> ExitCode {
    match u8::try_from(code) {
        Ok(code) => ExitCode::from(code),
        Err(_) => ExitCode::FAILURE,
    }
}

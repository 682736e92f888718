//! `cargo tempo build`: the crate as a WASI component, and with `--release` its `.bin`.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context as _;
use tempo_runtime_core::artifact::{self, ArtifactError};

use crate::cargo_build::{self, PackageArgs};
use crate::commands::compile::precompile;
use crate::shell::{Shell, display_path};

/// Build the crate for wasm32-wasip2 and check that each artifact is a component.
///
/// With --release, also AOT-compile each component to NAME.bin beside NAME.wasm. The paths of
/// the files produced are printed on stdout, one per line.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    package: PackageArgs,
    /// Further arguments for `cargo build`, after `--`
    #[arg(last = true, value_name = "CARGO_ARGS")]
    cargo_args: Vec<OsString>,
}

pub(crate) fn exec(shell: &Shell, args: Args) -> anyhow::Result<()> {
    let components: Vec<PathBuf> = cargo_build::build(shell, &args.package, &args.cargo_args)?
        .into_iter()
        .map(|artifact| artifact.wasm)
        .collect();
    for wasm in &components {
        artifact::ensure_component(wasm).map_err(|err| match err {
            ArtifactError::CoreModule { path } => anyhow::anyhow!(
                "cargo produced `{}`, a core WebAssembly module, not a component: check that nothing in the build (RUSTFLAGS, .cargo/config.toml) skips wasm-component-ld",
                path.display()
            ),
            other => other.into(),
        })?;
    }

    let mut produced: Vec<PathBuf> = components.clone();
    if args.package.release {
        for wasm in &components {
            let bin = wasm.with_extension("bin");
            precompile(shell, wasm, &bin)
                .with_context(|| format!("cannot AOT-compile `{}`", display_path(wasm)))?;
            produced.push(bin);
        }
    }
    print_paths(&produced);
    Ok(())
}

#[allow(
    clippy::print_stdout,
    reason = "the paths are the command's result, for scripts"
)]
fn print_paths(paths: &[PathBuf]) {
    for path in paths {
        println!("{}", path.display());
    }
}

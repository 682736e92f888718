//! `cargo tempo compile`: AOT compilation with exactly the engine settings `run` uses.

use std::path::{Path, PathBuf};

use tempo_runtime_core::EngineSettings;
use tempo_runtime_core::artifact::{self, Artifact};

use crate::shell::{Shell, display_path, human_size};

/// AOT-compile a component to a .bin for this machine and this version of tempo.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The component to compile: a .wasm, or `oci://REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]`
    input: PathBuf,
    /// Where to write the .bin [default: INPUT with the extension .bin; for `oci://`, the
    /// repository's last name with .bin, here]
    #[arg(short, long, value_name = "OUT.bin")]
    output: Option<PathBuf>,
}

pub(crate) fn exec(shell: &Shell, args: Args) -> anyhow::Result<()> {
    // `oci://REF` compiles a component from a registry, through the cache of pulled components.
    let (input, default_output) = match args.input.to_str().filter(|i| i.starts_with("oci://")) {
        Some(reference) => {
            let name = crate::oci::repository_name(reference);
            (
                crate::commands::pull::cached(shell, reference, &crate::oci::OciSettings::load()?)?,
                PathBuf::from(format!("{name}.bin")),
            )
        }
        None => (args.input.clone(), args.input.with_extension("bin")),
    };
    let output = args.output.unwrap_or(default_output);
    if !artifact::is_bin_name(&output) {
        anyhow::bail!(
            "`-o {}`: precompiled code is native code, and tempo runs it only from a file named `*.bin`",
            display_path(&output)
        );
    }
    precompile(shell, &input, &output)
}

/// Compiles `wasm` to `bin` with a spinner while it works and a status line when done. Shared by
/// `build --release` and `compile`, so both write the same `.bin`.
pub(crate) fn precompile(shell: &Shell, wasm: &Path, bin: &Path) -> anyhow::Result<()> {
    // A WASI 0.3 component is compiled for the engine that runs it, with async support.
    let file = Artifact::read(wasm)?;
    let engine = EngineSettings::default().for_artifact(&file).build()?;
    let spinner = shell.spinner("Precompiling", display_path(wasm));
    let compiled = file.compile(&engine, bin);
    spinner.finish_and_clear();
    let compiled = compiled?;
    shell.status(
        "Precompiled",
        format!(
            "{} ({}) in {:.2}s",
            display_path(bin),
            human_size(compiled.bytes),
            compiled.elapsed.as_secs_f64()
        ),
    );
    Ok(())
}

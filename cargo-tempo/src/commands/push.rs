//! `cargo tempo push`: a component to an OCI registry, in the CNCF Wasm artifact layout.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use oci_client::RegistryOperation;
use tempo_runtime_core::artifact;

use crate::oci::{OciSettings, Registry, WasmConfig, digest_of, pinned, read_file};
use crate::shell::{Shell, display_path, human_size};

/// Push a component to an OCI registry (the layout `wkg oci` and `wash` use); prints REF@sha256:…
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to push: REGISTRY/REPOSITORY:TAG (plain HTTP only for a registry on this machine;
    /// login from TEMPO_REGISTRY_USERNAME and TEMPO_REGISTRY_PASSWORD)
    reference: String,
    /// The component to push (a .wasm; a .bin is native code for one tempo build, not portable)
    file: PathBuf,
}

pub(crate) fn exec(shell: &Shell, args: Args) -> anyhow::Result<()> {
    let bytes = read_file(&args.file)?;
    if artifact::is_bin_name(&args.file)
        || tempo_runtime_core::wasmtime::Engine::detect_precompiled(&bytes).is_some()
    {
        bail!(
            "`{}` is precompiled native code for one build of tempo on one kind of machine, not a \
             portable artifact: push the .wasm it was compiled from",
            display_path(&args.file)
        );
    }
    artifact::check_component(&args.file, &bytes)?;
    let registry = Registry::for_reference(&args.reference, &OciSettings::load()?)?;
    let layer_digest = digest_of(&bytes);
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let config = WasmConfig::describe(&bytes, &layer_digest, created.clone())
        .with_context(|| format!("`{}`", display_path(&args.file)))?;
    let config = serde_json::to_vec(&config)?;
    let config_digest = digest_of(&config);
    let annotations = BTreeMap::from([
        ("org.opencontainers.image.created".to_owned(), created),
        (
            "org.opencontainers.image.title".to_owned(),
            args.file
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    ]);
    let manifest = crate::oci::layout_manifest(
        (&config, &config_digest),
        (&bytes, &layer_digest),
        &annotations,
    )?;
    let manifest_digest = digest_of(&manifest);

    let spinner = shell.spinner("Pushing", &args.reference);
    let tokio = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let pushed = tokio.block_on(async {
        let Registry {
            client,
            auth,
            reference,
        } = &registry;
        client
            .auth(reference, auth, RegistryOperation::Push)
            .await?;
        client
            .push_blob(reference, bytes.clone(), &layer_digest)
            .await?;
        client.push_blob(reference, config, &config_digest).await?;
        let content_type = http::HeaderValue::from_static(crate::oci::MANIFEST_MEDIA_TYPE);
        client
            .push_manifest_raw(reference, manifest, content_type)
            .await
    });
    spinner.finish_and_clear();
    pushed.map_err(|err| registry.explain(err))?;
    shell.status(
        "Pushed",
        format!(
            "{} ({}) as {}",
            display_path(&args.file),
            human_size(bytes.len() as u64),
            registry.reference.whole()
        ),
    );
    print_reference(&pinned(&registry.reference, &manifest_digest));
    Ok(())
}

#[allow(
    clippy::print_stdout,
    reason = "the pinned reference is the command's result, for scripts"
)]
fn print_reference(reference: &str) {
    println!("{reference}");
}

//! `cargo tempo push`: a component to an OCI registry, in the CNCF Wasm artifact layout.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use oci_client::RegistryOperation;
use tempo_runtime_core::artifact;

use crate::cargo_build::{self, PackageArgs};
use crate::oci::{OciSettings, Registry, WasmConfig, digest_of, pinned, read_file};
use crate::project::Project;
use crate::shell::{Shell, display_path, human_size};

/// The OCI annotation keys `push` writes (the image spec's pre-defined ones).
const ANNOTATION: &str = "org.opencontainers.image";

/// Push a component to an OCI registry (the layout `wkg oci` and `wash` use); prints REF@sha256:…
///
/// With no FILE, builds the crate with --release first and pushes its .wasm, annotated with the
/// package's name, version, description, repository and license.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to push: REGISTRY/REPOSITORY:TAG (plain HTTP only for a registry on this machine or
    /// in `[oci] insecure-registries`; login from TEMPO_REGISTRY_USERNAME and
    /// TEMPO_REGISTRY_PASSWORD, else Docker's config.json)
    reference: String,
    /// The component to push (a .wasm; a .bin is native code for one tempo build, not portable)
    file: Option<PathBuf>,
    /// Package to build and push, when the workspace has several (see `cargo help pkgid`)
    #[arg(short, long = "package", value_name = "SPEC", conflicts_with = "file")]
    package: Option<String>,
    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH", conflicts_with = "file")]
    manifest_path: Option<PathBuf>,
    /// Directory for all generated artifacts
    #[arg(long, value_name = "DIRECTORY", conflicts_with = "file")]
    target_dir: Option<PathBuf>,
}

pub(crate) fn exec(shell: &Shell, args: Args) -> anyhow::Result<()> {
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut annotations = BTreeMap::from([(format!("{ANNOTATION}.created"), created.clone())]);
    let file = match args.file {
        Some(file) => {
            let name = file
                .file_name()
                .map(|name| name.to_string_lossy().into_owned());
            annotations.insert(format!("{ANNOTATION}.title"), name.unwrap_or_default());
            file
        }
        None => {
            let package = PackageArgs {
                release: true,
                packages: args.package.into_iter().collect(),
                manifest_path: args.manifest_path,
                target_dir: args.target_dir,
            };
            let (wasm, described) = build_one(shell, &package)?;
            annotations.extend(described);
            wasm
        }
    };
    let bytes = read_file(&file)?;
    if artifact::is_bin_name(&file)
        || tempo_runtime_core::wasmtime::Engine::detect_precompiled(&bytes).is_some()
    {
        bail!(
            "`{}` is precompiled native code for one build of tempo on one kind of machine, not a \
             portable artifact: push the .wasm it was compiled from",
            display_path(&file)
        );
    }
    artifact::check_component(&file, &bytes)?;
    let registry = Registry::for_reference(&args.reference, &OciSettings::load()?)?;
    let layer_digest = digest_of(&bytes);
    let config = WasmConfig::describe(&bytes, &layer_digest, created)
        .with_context(|| format!("`{}`", display_path(&file)))?;
    let config = serde_json::to_vec(&config)?;
    let config_digest = digest_of(&config);
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
            login,
            reference,
            ..
        } = &registry;
        let auth = &login.auth;
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
            display_path(&file),
            human_size(bytes.len() as u64),
            registry.reference.whole()
        ),
    );
    print_reference(&pinned(&registry.reference, &manifest_digest));
    Ok(())
}

/// Builds the selected package with the release profile, as `cargo publish` builds before it
/// uploads; returns its one component and the annotations its manifest gives: title, version,
/// description, source and licenses.
fn build_one(
    shell: &Shell,
    package: &PackageArgs,
) -> anyhow::Result<(PathBuf, BTreeMap<String, String>)> {
    let project = Project::load(package)?;
    let mut built = cargo_build::build(shell, package, &[])?;
    let artifact = match (built.pop(), built.is_empty()) {
        (Some(artifact), true) => artifact,
        (None, _) => bail!("the build produced no component: is the crate a `cdylib`?"),
        (Some(_), false) => bail!(
            "the build produced {} components: push one with `-p PACKAGE`, or name its .wasm",
            built.len() + 1
        ),
    };
    let metadata = project
        .package(&artifact.package)
        .with_context(|| format!("cargo metadata does not know `{}`", artifact.package))?;
    let fields = [
        ("title", Some(metadata.name.to_string())),
        ("version", Some(metadata.version.to_string())),
        ("description", metadata.description.clone()),
        ("source", metadata.repository.clone()),
        ("licenses", metadata.license.clone()),
    ];
    let annotations = fields
        .into_iter()
        .filter_map(|(key, value)| Some((format!("{ANNOTATION}.{key}"), value?)))
        .collect();
    Ok((artifact.wasm, annotations))
}

#[allow(
    clippy::print_stdout,
    reason = "the pinned reference is the command's result, for scripts"
)]
fn print_reference(reference: &str) {
    println!("{reference}");
}

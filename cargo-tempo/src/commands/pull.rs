//! `cargo tempo pull`: a component from an OCI registry to a file, its digests checked.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{Context as _, anyhow, bail};
use oci_client::manifest::OciManifest;
use tempo_runtime_core::artifact;
use tokio::io::AsyncWrite;

use crate::oci::{OciSettings, Registry, component_layer, pinned};
use crate::shell::{Shell, display_path, human_size};

/// Pull a component from an OCI registry (checking its digests) to a .wasm file
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// What to pull: REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]
    reference: String,
    /// Where to write it [default: the repository's last name, with .wasm, here]
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) fn exec(shell: &Shell, args: Args) -> anyhow::Result<()> {
    let registry = Registry::for_reference(&args.reference, &OciSettings::load()?)?;
    let output = args.output.unwrap_or_else(|| {
        let name = registry
            .reference
            .repository()
            .rsplit('/')
            .next()
            .unwrap_or("component");
        PathBuf::from(format!("{name}.wasm"))
    });
    let folder = match output.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
        _ => PathBuf::from("."),
    };
    // Written beside the output and moved there only once it is whole and checked.
    let partial = tempfile::NamedTempFile::new_in(&folder)
        .with_context(|| format!("cannot write in `{}`", display_path(&folder)))?;
    let spinner = shell.spinner("Pulling", &args.reference);
    let tokio = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let pulled = tokio.block_on(pull(&registry, partial.path()));
    spinner.finish_and_clear();
    let (digest, size) = pulled?;
    keep(&registry, partial, &output)?;
    shell.status(
        "Pulled",
        format!(
            "{} ({}) to {}",
            pinned(&registry.reference, &digest),
            human_size(size),
            display_path(&output)
        ),
    );
    print_path(&output);
    Ok(())
}

/// Moves a pulled component from `partial` to `to`, once it is checked to be a component.
fn keep(registry: &Registry, partial: tempfile::NamedTempFile, to: &Path) -> anyhow::Result<()> {
    artifact::ensure_component(partial.path()).map_err(|err| {
        anyhow!(
            "`{}`: what the registry sent {err}",
            registry.reference.whole()
        )
    })?;
    partial
        .persist(to)
        .with_context(|| format!("cannot write `{}`", display_path(to)))?;
    Ok(())
}

/// Pulls `registry`'s reference into the file at `into`: the manifest (its digest checked against
/// the reference's, if it has one), then the component layer, bounded in size and checked against
/// its digest. Returns the manifest's digest and the component's size.
async fn pull(registry: &Registry, into: &Path) -> anyhow::Result<(String, u64)> {
    let (manifest, digest) = registry.manifest().await?;
    let size = component(registry, &manifest, into).await?;
    Ok((digest, size))
}

/// Downloads the component layer of `manifest` into the file at `into`, bounded in size and
/// checked against its digest; returns its size.
async fn component(
    registry: &Registry,
    manifest: &OciManifest,
    into: &Path,
) -> anyhow::Result<u64> {
    let at = registry.reference.whole();
    let layer = component_layer(manifest).map_err(|why| anyhow!("`{at}`: {why}"))?;
    let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
    let most = registry.max_component_bytes;
    if size > most {
        bail!(
            "`{at}`: its component has {size} bytes, more than `[oci] max-component-bytes` \
             ({most})"
        );
    }
    let file = tokio::fs::File::create(into)
        .await
        .with_context(|| format!("cannot write `{}`", display_path(into)))?;
    let mut bounded = Bounded {
        inner: file,
        left: size,
    };
    registry
        .client
        .pull_blob(&registry.reference, layer, &mut bounded)
        .await
        .map_err(|err| registry.explain(err))?;
    tokio::io::AsyncWriteExt::flush(&mut bounded.inner).await?;
    Ok(size)
}

/// The component `reference` (`oci://…`) names, from the cache of pulled components, pulled into
/// it first when it is not there. A reference by digest that is cached needs no registry. Cache
/// paths are made from digests only.
pub(crate) fn cached(
    shell: &Shell,
    reference: &str,
    settings: &OciSettings,
) -> anyhow::Result<PathBuf> {
    let text = reference.strip_prefix("oci://").unwrap_or(reference);
    if settings.require_digest && !text.contains("@sha256:") {
        bail!(
            "`{text}` names a tag, and `[oci] require-digest` runs digests only: use \
             `REGISTRY/REPOSITORY@sha256:…` (`cargo tempo push` prints it)"
        );
    }
    let cache = settings.cache_dir()?;
    let path_of = |digest: &str| -> anyhow::Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| anyhow!("`{digest}` is not a sha256 digest"))?;
        Ok(cache.join(format!("{}.wasm", hex.to_ascii_lowercase())))
    };
    // A pinned reference that is cached starts without parsing the reference in full (the
    // parser builds a large regex: tens of milliseconds) or making a client.
    if let Some((_, digest)) = text.rsplit_once('@')
        && let Ok(path) = path_of(digest)
        && path.is_file()
    {
        shell.status("Cached", format!("{text} in `{}`", display_path(&path)));
        return Ok(path);
    }
    let reference = crate::oci::parse(text)?;
    // Only now a client: making one reads the system's root certificates.
    let registry = Registry::new(reference, settings)?;
    let pinned_text = |digest: &str| pinned(&registry.reference, digest);
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("cannot create the cache folder `{}`", display_path(&cache)))?;
    let spinner = shell.spinner("Pulling", registry.reference.whole());
    let tokio = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let pulled = tokio.block_on(async {
        let (manifest, digest) = registry.manifest().await?;
        let path = path_of(&digest)?;
        if path.is_file() {
            return Ok((path, digest, None));
        }
        let partial = tempfile::NamedTempFile::new_in(&cache)?;
        let size = component(&registry, &manifest, partial.path()).await?;
        Ok::<_, anyhow::Error>((path, digest, Some((partial, size))))
    });
    spinner.finish_and_clear();
    let (path, digest, downloaded) = pulled?;
    if let Some((partial, size)) = downloaded {
        keep(&registry, partial, &path)?;
        shell.status(
            "Pulled",
            format!("{} ({})", pinned_text(&digest), human_size(size)),
        );
    } else {
        shell.status(
            "Cached",
            format!("{} in `{}`", pinned_text(&digest), display_path(&path)),
        );
    }
    Ok(path)
}

/// A writer that fails once more than `left` bytes come: a registry that sends more than the
/// manifest announced, or never stops, is cut off.
struct Bounded<W> {
    inner: W,
    left: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Bounded<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.len() as u64 > self.left {
            return Poll::Ready(Err(io::Error::other(
                "the registry sent more bytes than the manifest announced",
            )));
        }
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.left -= written as u64;
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[allow(
    clippy::print_stdout,
    reason = "the path is the command's result, for scripts"
)]
fn print_path(path: &Path) {
    println!("{}", path.display());
}

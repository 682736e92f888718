//! `cargo tempo pull`: a component from an OCI registry to a file, its digests checked.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{Context as _, anyhow, bail};
use oci_client::RegistryOperation;
use tempo_runtime_core::artifact;
use tokio::io::AsyncWrite;

use crate::oci::{Registry, component_layer, pinned};
use crate::shell::{Shell, display_path, human_size};

/// The largest component pulled: 256 MiB (a registry that sends more is cut off).
const MAX_COMPONENT_BYTES: u64 = 256 << 20;

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
    let registry = Registry::for_reference(&args.reference)?;
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
    artifact::ensure_component(partial.path()).map_err(|err| {
        anyhow!(
            "`{}`: what the registry sent {err}",
            registry.reference.whole()
        )
    })?;
    partial
        .persist(&output)
        .with_context(|| format!("cannot write `{}`", display_path(&output)))?;
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

/// Pulls `registry`'s reference into the file at `into`: the manifest (its digest checked against
/// the reference's, if it has one), then the component layer, bounded in size and checked against
/// its digest. Returns the manifest's digest and the component's size.
async fn pull(registry: &Registry, into: &Path) -> anyhow::Result<(String, u64)> {
    let Registry {
        client,
        auth,
        reference,
    } = registry;
    let at = reference.whole();
    client
        .auth(reference, auth, RegistryOperation::Pull)
        .await
        .map_err(|err| registry.explain(err))?;
    let (manifest, digest) = client
        .pull_manifest(reference, auth)
        .await
        .map_err(|err| registry.explain(err))?;
    let layer = component_layer(&manifest).map_err(|why| anyhow!("`{at}`: {why}"))?;
    let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
    if size > MAX_COMPONENT_BYTES {
        bail!("`{at}`: its component has {size} bytes, more than {MAX_COMPONENT_BYTES}");
    }
    let file = tokio::fs::File::create(into)
        .await
        .with_context(|| format!("cannot write `{}`", display_path(into)))?;
    let mut bounded = Bounded {
        inner: file,
        left: size,
    };
    client
        .pull_blob(reference, layer, &mut bounded)
        .await
        .map_err(|err| registry.explain(err))?;
    tokio::io::AsyncWriteExt::flush(&mut bounded.inner).await?;
    Ok((digest, size))
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

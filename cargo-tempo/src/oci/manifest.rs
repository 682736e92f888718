//! A manifest read from a registry with a bound: oci-client reads a manifest's body whole, so a
//! registry that streams one for ever would fill memory. tempo reads it itself, after
//! oci-client's login dance, at most [`MAX_MANIFEST_BYTES`], and checks its digest.

use std::time::Duration;

use anyhow::{anyhow, bail};
use futures::StreamExt as _;
use oci_client::RegistryOperation;
use oci_client::config::Architecture as Arch;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, ImageIndexEntry,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciManifest,
};
use oci_client::secrets::RegistryAuth;

use super::{Registry, digest_of};

/// The largest manifest read: 4 MiB, what the distribution spec asks registries to accept.
pub(crate) const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// How long a registry may take to accept a connection, and to send the next bytes.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(30);

impl Registry {
    /// The image manifest the reference names and the `sha256:` digest the reference resolves
    /// to, computed from the bytes read (the reference's own digest when it has one, else an
    /// error), whatever a header claims. An image index is followed to its `wasm` entry.
    pub(crate) async fn manifest(&self) -> anyhow::Result<(OciManifest, String)> {
        let token = self
            .client
            .auth(&self.reference, &self.login.auth, RegistryOperation::Pull)
            .await
            .map_err(|err| self.explain(err))?;
        let wanted = self
            .reference
            .digest()
            .or(self.reference.tag())
            .unwrap_or("latest");
        // One client for the manifest and, for an index, its entry's: building one reads the
        // system's roots.
        let mut client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("cargo-tempo/", env!("CARGO_PKG_VERSION")));
        if self.plain_http {
            // No certificate to check: skip reading the system's roots (tens of milliseconds).
            client = client.tls_certs_only([]);
        }
        let client = client.build().map_err(|err| self.explain(err.into()))?;
        let token = token.as_deref();
        let (manifest, digest) = self.fetch(&client, token, wanted).await?;
        if let Some(named) = self.reference.digest()
            && named != digest
        {
            bail!(
                "`{}`: the registry sent a manifest whose digest is {digest}",
                self.reference.whole()
            );
        }
        let OciManifest::ImageIndex(index) = &manifest else {
            return Ok((manifest, digest));
        };
        let is_wasm = |entry: &&ImageIndexEntry| {
            entry
                .platform
                .as_ref()
                .is_some_and(|platform| platform.architecture == Arch::Wasm)
        };
        let Some(entry) = index.manifests.iter().find(is_wasm) else {
            let platforms: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|entry| entry.platform.as_ref())
                .map(|platform| format!("{}/{}", platform.os, platform.architecture))
                .collect();
            bail!(
                "`{}`: it is an image index with no `wasm` entry (platforms: {}), not a Wasm \
                 component",
                self.reference.whole(),
                platforms.join(", ")
            );
        };
        let (image, image_digest) = self.fetch(&client, token, &entry.digest).await?;
        if image_digest != entry.digest || matches!(image, OciManifest::ImageIndex(_)) {
            bail!(
                "`{}`: the index's `wasm` entry {} is not an image manifest of that digest",
                self.reference.whole(),
                entry.digest
            );
        }
        Ok((image, digest))
    }

    /// `GET /v2/REPOSITORY/manifests/WANTED` (a tag or digest), read up to
    /// [`MAX_MANIFEST_BYTES`]; the manifest and the digest of the bytes.
    async fn fetch(
        &self,
        client: &reqwest::Client,
        token: Option<&str>,
        wanted: &str,
    ) -> anyhow::Result<(OciManifest, String)> {
        let at = format!("`{}`", self.reference.whole());
        let registry = self.reference.resolve_registry();
        let scheme = if self.plain_http { "http" } else { "https" };
        let url = format!(
            "{scheme}://{registry}/v2/{}/manifests/{wanted}",
            self.reference.repository()
        );
        let accept = [
            OCI_IMAGE_MEDIA_TYPE,
            OCI_IMAGE_INDEX_MEDIA_TYPE,
            IMAGE_MANIFEST_MEDIA_TYPE,
            IMAGE_MANIFEST_LIST_MEDIA_TYPE,
        ]
        .join(", ");
        let request = client.get(url).header(http::header::ACCEPT, accept);
        let request = match (token, &self.login.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        };
        let response = request
            .send()
            .await
            .map_err(|err| self.explain(err.into()))?;
        match response.status().as_u16() {
            200..=299 => {}
            401 | 403 => return Err(self.refused(&at)),
            404 => bail!("{at}: the registry has no such tag or digest"),
            status => bail!("{at}: the registry answered {status} for the manifest"),
        }
        let too_large =
            || anyhow!("{at}: the registry sends a manifest over {MAX_MANIFEST_BYTES} bytes");
        if response
            .content_length()
            .is_some_and(|length| length > MAX_MANIFEST_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|err| self.explain(err.into()))?;
            if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let manifest = serde_json::from_slice(&body)
            .map_err(|err| anyhow!("{at}: the manifest is not an OCI manifest: {err}"))?;
        Ok((manifest, digest_of(&body)))
    }
}

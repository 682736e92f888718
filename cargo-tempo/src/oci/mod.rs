//! Components in OCI registries, in the CNCF TAG-Runtime "Wasm OCI artifact" layout that
//! `wkg oci` and `wash` write: an image manifest whose config is
//! `application/vnd.wasm.config.v0+json` and whose one layer is `application/wasm`.

mod layout;

pub(crate) use layout::{
    MANIFEST_MEDIA_TYPE, WasmConfig, component_layer, manifest as layout_manifest,
};

use std::net::IpAddr;

use anyhow::{Context as _, anyhow};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// The variables a registry's login is read from.
const USERNAME_VAR: &str = "TEMPO_REGISTRY_USERNAME";
const PASSWORD_VAR: &str = "TEMPO_REGISTRY_PASSWORD";

/// A registry client for `reference`, and the login to use there.
pub(crate) struct Registry {
    pub(crate) client: Client,
    pub(crate) auth: RegistryAuth,
    pub(crate) reference: Reference,
}

impl Registry {
    /// Parses `reference` and makes a client for its registry (see [`Registry::new`]).
    pub(crate) fn for_reference(reference: &str) -> anyhow::Result<Self> {
        Ok(Self::new(parse(reference)?))
    }

    /// A client for `reference`'s registry: HTTPS, or plain HTTP for a registry on this machine,
    /// as Docker allows. (Making one reads the system's root certificates.)
    pub(crate) fn new(reference: Reference) -> Self {
        let registry = reference.resolve_registry().to_owned();
        let protocol = if is_loopback(&registry) {
            ClientProtocol::HttpsExcept(vec![registry])
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            ..ClientConfig::default()
        });
        Self {
            client,
            auth: auth_from_env(),
            reference,
        }
    }

    /// What an error from the registry means, in one line naming the registry and reference.
    pub(crate) fn explain(&self, err: oci_client::errors::OciDistributionError) -> anyhow::Error {
        use oci_client::errors::OciDistributionError as Oci;
        let at = format!("`{}`", self.reference.whole());
        match err {
            Oci::AuthenticationFailure(why) => anyhow!(
                "{at}: the registry refused the login ({why}); set {USERNAME_VAR} and {PASSWORD_VAR}"
            ),
            Oci::UnauthorizedError { .. } => {
                anyhow!("{at}: the registry refused access; set {USERNAME_VAR} and {PASSWORD_VAR}")
            }
            Oci::ImageManifestNotFoundError(_) => {
                anyhow!("{at}: the registry has no such tag or digest")
            }
            Oci::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|error| {
                    error.code == oci_client::errors::OciErrorCode::ManifestUnknown
                }) =>
            {
                anyhow!("{at}: the registry has no such tag or digest")
            }
            Oci::RequestError(err) => anyhow!(
                "{at}: cannot reach the registry `{}`: {}",
                self.reference.resolve_registry(),
                one_line(&anyhow::Error::new(err))
            ),
            other => anyhow!("{at}: {other}"),
        }
    }
}

/// Parses `reference`: `[oci://]REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]`.
pub(crate) fn parse(reference: &str) -> anyhow::Result<Reference> {
    let text = reference.strip_prefix("oci://").unwrap_or(reference);
    text.parse()
        .map_err(|err| anyhow!("`{text}` is not an OCI reference: {err}"))
}

/// The last name of `reference`'s repository (`oci://r.io/team/app:v1` gives `app`), read without
/// parsing the reference in full.
pub(crate) fn repository_name(reference: &str) -> &str {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.split([':', '@']).next().unwrap_or(last)
}

/// `err` and its causes on one line.
fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace('\n', " ")
}

/// Whether `registry` (`HOST[:PORT]`) is on this machine.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Basic auth from `TEMPO_REGISTRY_USERNAME` and `TEMPO_REGISTRY_PASSWORD`, else anonymous.
fn auth_from_env() -> RegistryAuth {
    let var = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
    match (var(USERNAME_VAR), var(PASSWORD_VAR)) {
        (Some(user), Some(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    }
}

/// The `sha256:…` digest of `bytes`.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    let mut text = String::with_capacity(71);
    text.push_str("sha256:");
    for byte in hash {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// The reference `registry`'s `reference` resolves to, by digest.
pub(crate) fn pinned(reference: &Reference, digest: &str) -> String {
    format!(
        "{}/{}@{digest}",
        reference.registry(),
        reference.repository()
    )
}

/// Reads the whole file at `path`, naming it on failure.
pub(crate) fn read_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registries_on_this_machine_may_be_plain_http() {
        for local in [
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "127.0.0.1",
        ] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in ["ghcr.io", "10.0.0.1:5000", "localhost.example.com:5000"] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }
}

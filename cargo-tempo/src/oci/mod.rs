//! Components in OCI registries, in the CNCF TAG-Runtime "Wasm OCI artifact" layout that
//! `wkg oci` and `wash` write: an image manifest whose config is
//! `application/vnd.wasm.config.v0+json` and whose one layer is `application/wasm`.

mod layout;
mod login;
mod manifest;

pub(crate) use layout::{
    MANIFEST_MEDIA_TYPE, WasmConfig, component_layer, manifest as layout_manifest,
};

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::{Client, Reference};
use serde::Deserialize;

use login::{Login, PASSWORD_VAR, USERNAME_VAR};
use tempo_runtime_core::settings::{Setting, Sources};

/// The section of `tempo.toml` for registries.
pub(crate) const SECTION: &str = "oci";
/// Registries that may be spoken to in plain HTTP, beside those on this machine.
const INSECURE_REGISTRIES: Setting =
    Setting::new(SECTION, "insecure-registries").var("TEMPO_OCI_INSECURE_REGISTRIES");
/// Whether `run` and `compile` refuse `oci://` references by tag.
const REQUIRE_DIGEST: Setting =
    Setting::new(SECTION, "require-digest").var("TEMPO_OCI_REQUIRE_DIGEST");

/// The largest component pulled.
const MAX_COMPONENT_BYTES: Setting =
    Setting::new(SECTION, "max-component-bytes").var("TEMPO_OCI_MAX_COMPONENT_BYTES");
/// Where pulled components are kept.
const CACHE_DIR: Setting = Setting::new(SECTION, "cache-dir").var("TEMPO_OCI_CACHE_DIR");
/// [`MAX_COMPONENT_BYTES`] unless set: 256 MiB.
const DEFAULT_MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// `[oci]` in `tempo.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct OciToml {
    insecure_registries: Option<Vec<String>>,
    require_digest: Option<bool>,
    max_component_bytes: Option<u64>,
    cache_dir: Option<PathBuf>,
}

/// How tempo treats registries: `[oci]` and its variables, from the current folder.
#[derive(Debug)]
pub(crate) struct OciSettings {
    /// `HOST[:PORT]`s spoken to in plain HTTP.
    insecure: Vec<String>,
    /// `oci://` references must name a digest.
    pub(crate) require_digest: bool,
    /// A component larger than this is not pulled; a registry that sends more is cut off.
    pub(crate) max_component_bytes: u64,
    /// Where `run oci://` and `compile oci://` keep pulled components; `None`: beside the
    /// compile cache.
    cache_dir: Option<PathBuf>,
}

impl OciSettings {
    /// The settings from the current folder's `tempo.toml` and `.env`, and the environment.
    pub(crate) fn load() -> anyhow::Result<Self> {
        Self::from_sources(&Sources::load(Path::new(""))?)
    }

    /// The settings `sources` hold.
    pub(crate) fn from_sources(sources: &Sources) -> anyhow::Result<Self> {
        let toml: OciToml = sources.section(SECTION)?;
        let max_component_bytes = sources
            .value(
                &MAX_COMPONENT_BYTES,
                None,
                toml.max_component_bytes,
                "a number of bytes",
            )?
            .unwrap_or(DEFAULT_MAX_COMPONENT_BYTES);
        anyhow::ensure!(
            max_component_bytes > 0,
            "{MAX_COMPONENT_BYTES} must be more than 0"
        );
        let cache_dir = sources
            .value(&CACHE_DIR, None, toml.cache_dir, "a folder")?
            .map(|folder| sources.project().join(folder));
        Ok(Self {
            insecure: sources
                .list(&INSECURE_REGISTRIES, &[], toml.insecure_registries)
                .unwrap_or_default(),
            require_digest: sources
                .value(&REQUIRE_DIGEST, None, toml.require_digest, "true or false")?
                .unwrap_or(false),
            max_component_bytes,
            cache_dir,
        })
    }

    /// Where pulled components are kept: `[oci] cache-dir`, else `oci` beside the compile cache
    /// (`TEMPO_CACHE_DIR`, by default `~/.cache/tempo/wasmtime`), so `~/.cache/tempo/oci`.
    pub(crate) fn cache_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(folder) = &self.cache_dir {
            return Ok(folder.clone());
        }
        let compiled = tempo_runtime_core::default_cache_dir()
            .with_context(|| format!("no cache folder: set {CACHE_DIR} or TEMPO_CACHE_DIR"))?;
        Ok(compiled.with_file_name("oci"))
    }

    /// How `registry` (`HOST[:PORT]`) is spoken to: plain HTTP on this machine or when listed,
    /// HTTPS otherwise.
    fn protocol_for(&self, registry: &str) -> ClientProtocol {
        if is_loopback(registry) || self.insecure.iter().any(|listed| listed == registry) {
            ClientProtocol::HttpsExcept(vec![registry.to_owned()])
        } else {
            ClientProtocol::Https
        }
    }
}

/// A registry client for `reference`, and the login to use there.
pub(crate) struct Registry {
    pub(crate) client: Client,
    pub(crate) login: Login,
    pub(crate) reference: Reference,
    /// Spoken to in plain HTTP (on this machine, or listed as insecure).
    plain_http: bool,
    /// The largest component pulled from it.
    pub(crate) max_component_bytes: u64,
}

impl Registry {
    /// Parses `reference` and makes a client for its registry (see [`Registry::new`]).
    pub(crate) fn for_reference(reference: &str, settings: &OciSettings) -> anyhow::Result<Self> {
        Self::new(parse(reference)?, settings)
    }

    /// A client for `reference`'s registry: HTTPS, or plain HTTP for a registry on this machine
    /// (as Docker allows) or listed in `[oci] insecure-registries`; and the login for it (see
    /// [`Login::for_registry`]). Making one reads the system's root certificates, and may run a
    /// Docker credential helper.
    pub(crate) fn new(reference: Reference, settings: &OciSettings) -> anyhow::Result<Self> {
        let registry = reference.resolve_registry();
        let protocol = settings.protocol_for(registry);
        let login = Login::for_registry(registry)
            .map_err(|err| anyhow!("`{}`: {err:#}", reference.whole()))?;
        let plain_http = matches!(protocol, ClientProtocol::HttpsExcept(_));
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(manifest::CONNECT_TIMEOUT),
            read_timeout: Some(manifest::READ_TIMEOUT),
            ..ClientConfig::default()
        });
        Ok(Self {
            client,
            login,
            reference,
            plain_http,
            max_component_bytes: settings.max_component_bytes,
        })
    }

    /// What an error from the registry means, in one line naming the registry and reference.
    pub(crate) fn explain(&self, err: oci_client::errors::OciDistributionError) -> anyhow::Error {
        use oci_client::errors::OciDistributionError as Oci;
        let at = format!("`{}`", self.reference.whole());
        match err {
            Oci::AuthenticationFailure(_)
            | Oci::UnauthorizedError { .. }
            | Oci::ServerError {
                code: 401 | 403, ..
            } => self.refused(&at),
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
            Oci::RequestError(err) => {
                let why = one_line(&anyhow::Error::new(err));
                let hint = if why.contains("certificate") {
                    "; a registry whose certificate a private authority signed needs that \
                     authority in SSL_CERT_FILE"
                } else if why.contains("InvalidContentType") || why.contains("corrupt message") {
                    "; a registry that speaks plain HTTP must be listed in `[oci] insecure-registries`"
                } else {
                    ""
                };
                anyhow!(
                    "{at}: cannot reach the registry `{}`: {why}{hint}",
                    self.reference.resolve_registry(),
                )
            }
            other => anyhow!("{at}: {other}"),
        }
    }
}

impl Registry {
    /// The registry refused access: with no login, how to give one; with one, whose it was
    /// (the user name and where it came from, never the secret).
    fn refused(&self, at: &str) -> anyhow::Error {
        match self.login.user() {
            Some(user) => anyhow!(
                "{at}: the registry refused the login `{user}` (from {})",
                self.login.source
            ),
            None => anyhow!(
                "{at}: the registry asks for a login: set {USERNAME_VAR} and {PASSWORD_VAR}, or \
                 `docker login {}`",
                self.reference.resolve_registry()
            ),
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
    fn listed_registries_may_be_plain_http_too() {
        let sources = Sources::with_variables(
            Path::new("/project"),
            Some("[oci]\ninsecure-registries = [\"registry.internal:5000\"]\n"),
            &[],
        )
        .unwrap();
        let settings = OciSettings::from_sources(&sources).unwrap();
        assert!(!settings.require_digest);
        let plain = |registry: &str| {
            matches!(
                settings.protocol_for(registry),
                ClientProtocol::HttpsExcept(_)
            )
        };
        assert!(plain("registry.internal:5000") && plain("127.0.0.1:5000"));
        assert!(!plain("registry.internal:5001") && !plain("ghcr.io"));
        let sources = Sources::with_variables(
            Path::new("/project"),
            None,
            &[("TEMPO_OCI_REQUIRE_DIGEST", "true")],
        )
        .unwrap();
        assert!(OciSettings::from_sources(&sources).unwrap().require_digest);
    }

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

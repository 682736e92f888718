//! The settings of wasi:blobstore: its flag, its `[blobstore]` section of `tempo.toml`, and the
//! [`BlobstoreConfig`] they make.

use serde::Deserialize;
use tempo_nats::Backend;
use tempo_runtime_core::settings::{Configured, GuestSide, Setting, Sources};

use crate::{
    BlobstoreBackend, BlobstoreConfig, BlobstoreService, DEFAULT_MAX_OBJECT_BYTES,
    check_container_name,
};

const SECTION: &str = "blobstore";

/// Where the blobs live.
pub const BACKEND: Setting = Setting::new(SECTION, "backend")
    .var("TEMPO_BLOBSTORE")
    .flag("blobstore");
/// The containers guests may use.
pub const CONTAINERS: Setting =
    Setting::new(SECTION, "containers").var("TEMPO_BLOBSTORE_CONTAINERS");
/// The largest object.
pub const MAX_OBJECT_BYTES: Setting = Setting::new(SECTION, "max-object-bytes");

/// The flag of wasi:blobstore.
#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "wasi:blobstore")]
pub struct BlobstoreArgs {
    /// Backend for wasi:blobstore [default: nats with a NATS address, else embedded]
    #[arg(long = BACKEND.flag, env = BACKEND.var, value_name = "BACKEND", ignore_case = true)]
    pub blobstore: Option<Backend>,
}

/// `[blobstore]` in `tempo.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BlobstoreToml {
    backend: Option<Backend>,
    max_object_bytes: Option<usize>,
    containers: Option<Vec<String>>,
}

impl BlobstoreConfig {
    /// The configuration `args` and `sources` make.
    pub fn from_settings(args: &BlobstoreArgs, sources: &Sources) -> anyhow::Result<Self> {
        let toml: BlobstoreToml = sources.section(SECTION)?;
        let server = tempo_nats::server_for(
            "wasi:blobstore",
            &BACKEND,
            args.blobstore,
            toml.backend,
            sources,
        )?;
        Ok(Self {
            backend: match server {
                Some(server) => BlobstoreBackend::Nats(server),
                None => BlobstoreBackend::Embedded {
                    dir: sources.state_dir.join("blobstore"),
                },
            },
            max_object_bytes: toml.max_object_bytes.unwrap_or(DEFAULT_MAX_OBJECT_BYTES),
            containers: sources.checked_list(
                &CONTAINERS,
                &[],
                toml.containers,
                check_container_name,
            )?,
        })
    }
}

impl Configured for BlobstoreService {
    const SECTION: Option<&'static str> = Some(SECTION);
    const SETTINGS: &'static [Setting] = &[BACKEND, CONTAINERS, MAX_OBJECT_BYTES];
    type Args = BlobstoreArgs;
    const GUEST: GuestSide = GuestSide::new("wasi:blobstore", "blobstore", Some("blobstore"));
    const TEST_FLAGS: &'static [&'static str] = &["--blobstore", "embedded"];

    fn configure(args: BlobstoreArgs, sources: &Sources) -> anyhow::Result<Self> {
        Ok(BlobstoreService::new(BlobstoreConfig::from_settings(
            &args, sources,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(toml: Option<&str>, env: &[(&str, &str)]) -> anyhow::Result<BlobstoreConfig> {
        let sources = Sources::with_variables(Path::new("/project"), toml, env)?;
        BlobstoreConfig::from_settings(&BlobstoreArgs::default(), &sources)
    }

    #[test]
    fn containers_come_from_the_environment_or_tempo_toml_and_are_checked() {
        let toml = "[blobstore]\ncontainers = [\"photos\"]\n";
        let settings = config(Some(toml), &[]).unwrap();
        assert_eq!(
            settings.containers.as_deref(),
            Some(&["photos".to_owned()][..])
        );
        assert_eq!(
            settings.backend,
            BlobstoreBackend::Embedded {
                dir: "/project/.tempo/blobstore".into()
            }
        );
        let settings = config(Some(toml), &[("TEMPO_BLOBSTORE_CONTAINERS", "a,b")]).unwrap();
        assert_eq!(settings.containers.unwrap(), ["a", "b"]);
        let err = config(Some("[blobstore]\ncontainers = [\"../x\"]\n"), &[]).unwrap_err();
        assert!(
            format!("{err:#}").contains("`[blobstore] containers`"),
            "{err:#}"
        );
    }
}

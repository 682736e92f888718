//! The settings of wasi:keyvalue: its flag, its `[keyvalue]` section of `tempo.toml`, and the
//! [`KeyValueConfig`] they make.

use serde::Deserialize;
use tempo_nats::Backend;
use tempo_runtime_core::settings::{Configured, GuestSide, Setting, Sources};

use crate::{
    DEFAULT_BUCKET, DEFAULT_MAX_VALUE_BYTES, KeyValueBackend, KeyValueConfig, KeyValueService,
};

const SECTION: &str = "keyvalue";

/// Where the data lives.
pub const BACKEND: Setting = Setting::new(SECTION, "backend")
    .var("TEMPO_KEYVALUE")
    .flag("keyvalue");
/// The buckets guests may open.
pub const BUCKETS: Setting = Setting::new(SECTION, "buckets");
/// The largest value.
pub const MAX_VALUE_BYTES: Setting = Setting::new(SECTION, "max-value-bytes");

/// The flag of wasi:keyvalue.
#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "wasi:keyvalue")]
pub struct KeyValueArgs {
    /// Backend for wasi:keyvalue [default: nats with a NATS address, else embedded]
    #[arg(long = BACKEND.flag, env = BACKEND.var, value_name = "BACKEND", ignore_case = true)]
    pub keyvalue: Option<Backend>,
}

/// `[keyvalue]` in `tempo.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeyValueToml {
    backend: Option<Backend>,
    buckets: Option<Vec<String>>,
    max_value_bytes: Option<usize>,
}

impl KeyValueConfig {
    /// The configuration `args` and `sources` make.
    pub fn from_settings(args: &KeyValueArgs, sources: &Sources) -> anyhow::Result<Self> {
        let toml: KeyValueToml = sources.section(SECTION)?;
        let server = tempo_nats::server_for(
            "wasi:keyvalue",
            &BACKEND,
            args.keyvalue,
            toml.backend,
            sources,
        )?;
        Ok(Self {
            backend: match server {
                Some(server) => KeyValueBackend::Nats(server),
                None => KeyValueBackend::Embedded {
                    path: sources.state_dir.join("keyvalue.redb"),
                },
            },
            buckets: toml
                .buckets
                .unwrap_or_else(|| vec![DEFAULT_BUCKET.to_owned()]),
            max_value_bytes: toml.max_value_bytes.unwrap_or(DEFAULT_MAX_VALUE_BYTES),
        })
    }
}

impl Configured for KeyValueService {
    const SECTION: Option<&'static str> = Some(SECTION);
    const SETTINGS: &'static [Setting] = &[BACKEND, BUCKETS, MAX_VALUE_BYTES];
    type Args = KeyValueArgs;
    const GUEST: GuestSide = GuestSide::new("wasi:keyvalue", "keyvalue", Some("keyvalue"));
    const TEST_FLAGS: &'static [&'static str] = &["--keyvalue", "embedded"];

    fn configure(args: KeyValueArgs, sources: &Sources) -> anyhow::Result<Self> {
        KeyValueService::new(KeyValueConfig::from_settings(&args, sources)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tempo_nats::NatsServer;

    fn config(
        args: &KeyValueArgs,
        toml: Option<&str>,
        nats: bool,
    ) -> anyhow::Result<KeyValueConfig> {
        let mut sources = Sources::with_variables(Path::new("/project"), toml, &[])?;
        if nats {
            sources.share(NatsServer::new("nats://127.0.0.1:4222"));
        }
        KeyValueConfig::from_settings(args, &sources)
    }

    #[test]
    fn defaults_need_nothing() {
        let settings = config(&KeyValueArgs::default(), None, false).unwrap();
        assert_eq!(
            settings.backend,
            KeyValueBackend::Embedded {
                path: "/project/.tempo/keyvalue.redb".into()
            }
        );
        assert_eq!(settings.buckets, ["default"]);
    }

    #[test]
    fn a_nats_address_moves_keyvalue_to_nats_unless_told_otherwise() {
        let settings = config(&KeyValueArgs::default(), None, true).unwrap();
        assert_eq!(
            settings.backend,
            KeyValueBackend::Nats(NatsServer::new("nats://127.0.0.1:4222"))
        );
        let toml = "[keyvalue]\nbackend = \"embedded\"\n";
        let settings = config(&KeyValueArgs::default(), Some(toml), true).unwrap();
        assert!(matches!(settings.backend, KeyValueBackend::Embedded { .. }));
        let args = KeyValueArgs {
            keyvalue: Some(Backend::Nats),
        };
        let err = config(&args, None, false).unwrap_err().to_string();
        assert!(
            err.contains("no NATS server is given: set `--nats`, `NATS_ADDR`"),
            "{err}"
        );
    }

    #[test]
    fn tempo_toml_sets_buckets_and_limits() {
        let toml = "[keyvalue]\nbuckets = [\"default\", \"sessions\"]\nmax-value-bytes = 2048\n";
        let settings = config(&KeyValueArgs::default(), Some(toml), false).unwrap();
        assert_eq!(settings.buckets, ["default", "sessions"]);
        assert_eq!(settings.max_value_bytes, 2048);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = config(
            &KeyValueArgs::default(),
            Some("[keyvalue]\nbucket = [\"x\"]\n"),
            false,
        )
        .unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("`/project/tempo.toml` is not valid"),
            "{message}"
        );
        assert!(message.contains("unknown field `bucket`"), "{message}");
        let err = config(
            &KeyValueArgs::default(),
            Some("[keyvalue]\nbackend = \"redis\"\n"),
            false,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("redis"), "{err:#}");
    }
}

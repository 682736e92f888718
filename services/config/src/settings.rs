//! Where the declared values come from (`[config]`, `TEMPO_CONFIG_*`), and how the service makes
//! itself from its settings.

use std::collections::BTreeMap;

use tempo_runtime_core::settings::{Configured, GuestSide, NoArgs, Setting, Sources};

use crate::secrets::{self, SecretRef, Vault};
use crate::{ConfigService, ENV_PREFIX};

/// Merges the declared values; a later source wins: `tempo.toml`'s `[config]`, then `.env`, then
/// the process environment. Of `.env` and the environment only `TEMPO_CONFIG_*` entries count,
/// their key being the rest of the name in lower case (`TEMPO_CONFIG_API_URL` is `api_url`).
pub fn values(
    toml: BTreeMap<String, String>,
    dotenv: impl IntoIterator<Item = (String, String)>,
    env: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let mut values = toml;
    for (name, value) in dotenv.into_iter().chain(env) {
        if let Some(key) = name.strip_prefix(ENV_PREFIX).filter(|key| !key.is_empty()) {
            values.insert(key.to_ascii_lowercase(), value);
        }
    }
    values
}

/// The values guests read: `[config]` in `tempo.toml`, and `TEMPO_CONFIG_<KEY>` variables.
pub const VALUES: Setting = Setting::new("config", "<key>").var("TEMPO_CONFIG_<KEY>");

/// The values `[config]` and the `TEMPO_CONFIG_*` variables of `sources` declare, and the
/// secrets `[config]` names (`key = { secret = "PATH#FIELD" }`). A value in `tempo.toml` must be
/// text, a number, a boolean or a secret; a variable declaring a key replaces its secret.
pub fn declared_from(
    sources: &Sources,
) -> anyhow::Result<(BTreeMap<String, String>, BTreeMap<String, SecretRef>)> {
    let table: BTreeMap<String, toml::Value> = sources.section("config")?;
    let file = sources.project().join("tempo.toml");
    let mut declared = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for (key, value) in table {
        let text = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Table(table) if table.len() == 1 && table.contains_key("secret") => {
                let reference = table["secret"].as_str().unwrap_or_default();
                let secret = SecretRef::parse(reference).map_err(|err| {
                    anyhow::anyhow!("`{}`: `[config] {key}`: {err}", file.display())
                })?;
                secrets.insert(key, secret);
                continue;
            }
            other => anyhow::bail!(
                "`{}`: `[config] {key}` must be text, a number, a boolean or \
                 `{{ secret = \"PATH#FIELD\" }}`, not a TOML {}",
                file.display(),
                other.type_str()
            ),
        };
        declared.insert(key, text);
    }
    let values = values(declared, [], sources.variables());
    secrets.retain(|key, _| !values.contains_key(key));
    Ok((values, secrets))
}

impl Configured for ConfigService {
    const SECTION: Option<&'static str> = Some("config");
    const SETTINGS: &'static [Setting] = &[
        VALUES,
        secrets::ADDRESS,
        secrets::MOUNT,
        secrets::REFRESH_SECS,
        secrets::ON_MISSING,
    ];
    type Args = NoArgs;
    const GUEST: GuestSide = GuestSide::new("wasi:config", "config", None);

    fn configure(_: NoArgs, sources: &Sources) -> anyhow::Result<Self> {
        let (values, secrets) = declared_from(sources)?;
        let vault = Vault::from_sources(sources)?;
        match (secrets.keys().next(), vault) {
            (None, _) => Ok(ConfigService::new(values)),
            (Some(_), Some(vault)) => Ok(ConfigService::with_secrets(values, secrets, vault)),
            (Some(key), None) => anyhow::bail!(
                "`[config] {key}` names a secret, but no secrets server is set: set {} (and `{}`, \
                 or `{}` and `{}`)",
                secrets::ADDRESS.var.unwrap_or_default(),
                secrets::TOKEN_VAR,
                secrets::ROLE_ID_VAR,
                secrets::SECRET_ID_VAR
            ),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A name and a value, owned: an entry of a map or a source.
    pub(crate) fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn later_sources_win_and_only_prefixed_variables_count() {
        let toml = BTreeMap::from([pair("greeting", "toml"), pair("colour", "blue")]);
        let dotenv = [pair("TEMPO_CONFIG_GREETING", "dotenv"), pair("OTHER", "x")];
        let env = [
            pair("TEMPO_CONFIG_API_URL", "http://api"),
            pair("HOME", "/root"),
            pair("TEMPO_CONFIG_", "no key"),
        ];
        let merged = values(toml, dotenv, env);
        assert_eq!(
            merged,
            BTreeMap::from([
                pair("api_url", "http://api"),
                pair("colour", "blue"),
                pair("greeting", "dotenv"),
            ])
        );
    }

    #[test]
    fn config_comes_from_tempo_toml_and_prefixed_variables_only() {
        let sources = |toml: &str, env: &[(&str, &str)]| {
            Sources::with_variables("/project".as_ref(), Some(toml), env).unwrap()
        };
        let toml = "[config]\ngreeting = \"hello\"\nretries = 3\nverbose = true\n";
        let env = [
            ("TEMPO_CONFIG_GREETING", "hi"),
            ("TEMPO_CONFIG_API_URL", "http://api"),
            ("SECRET_TOKEN", "never"),
        ];
        let config: Vec<_> = declared_from(&sources(toml, &env))
            .unwrap()
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            config,
            [
                "api_url=http://api",
                "greeting=hi",
                "retries=3",
                "verbose=true"
            ]
        );
        let err = declared_from(&sources("[config]\nlist = [1]\n", &[])).unwrap_err();
        assert!(
            err.to_string()
                .contains("`[config] list` must be text, a number, a boolean or"),
            "{err}"
        );
    }
}

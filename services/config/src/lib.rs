//! `wasi:config` for tempo, through wasmtime-wasi-config: a guest reads the values its
//! deployment declares (in `tempo.toml`'s `[config]`, or as `TEMPO_CONFIG_*` variables in the
//! environment or `.env`) and nothing else: no host variable reaches it.
//!
//! ```
//! use std::collections::BTreeMap;
//! use tempo_config::{ConfigService, values};
//!
//! let declared = BTreeMap::from([("greeting".to_owned(), "hello".to_owned())]);
//! let env = [("TEMPO_CONFIG_GREETING".to_owned(), "hi".to_owned())];
//! let merged = values(declared, [], env);
//! assert_eq!(merged["greeting"], "hi");
//! let _service = ConfigService::new(merged);
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use tempo_runtime_core::settings::{Configured, NoArgs, Setting, Sources};
use tempo_runtime_core::wasmtime::component::Linker;
use tempo_runtime_core::{InterfaceName, Service, State};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

/// The `wasi:config` version wasmtime-wasi-config 48 implements.
pub const CONFIG_VERSION: &str = "0.2.0-rc.1";

/// Variables named `TEMPO_CONFIG_<KEY>` declare the value of `<key>` (lower-cased).
pub const ENV_PREFIX: &str = "TEMPO_CONFIG_";

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

/// The values `[config]` and the `TEMPO_CONFIG_*` variables of `sources` declare. A value in
/// `tempo.toml` must be text, a number or a boolean.
pub fn values_from(sources: &Sources) -> anyhow::Result<BTreeMap<String, String>> {
    let table: BTreeMap<String, toml::Value> = sources.section("config")?;
    let mut declared = BTreeMap::new();
    for (key, value) in table {
        let text = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => anyhow::bail!(
                "`{}`: `[config] {key}` must be text, a number or a boolean, not a TOML {}",
                sources.project().join("tempo.toml").display(),
                other.type_str()
            ),
        };
        declared.insert(key, text);
    }
    Ok(values(declared, [], sources.variables()))
}

impl Configured for ConfigService {
    const SECTION: Option<&'static str> = Some("config");
    const SETTINGS: &'static [Setting] = &[VALUES];
    type Args = NoArgs;

    fn configure(_: NoArgs, sources: &Sources) -> anyhow::Result<Self> {
        Ok(ConfigService::new(values_from(sources)?))
    }
}

/// The `wasi:config/store` service over a fixed set of values.
pub struct ConfigService {
    values: Arc<WasiConfigVariables>,
    keys: Vec<String>,
    provides: Vec<InterfaceName>,
}

impl ConfigService {
    /// A service that offers exactly `values` to every guest.
    pub fn new(values: BTreeMap<String, String>) -> Self {
        let keys = values.keys().cloned().collect();
        Self {
            values: Arc::new(values.into_iter().collect()),
            keys,
            provides: vec![InterfaceName::known(&format!(
                "wasi:config/store@{CONFIG_VERSION}"
            ))],
        }
    }
}

/// The instance's values, as wasmtime-wasi-config reads them.
fn view(state: &mut State) -> WasiConfig<'_> {
    static NONE: LazyLock<WasiConfigVariables> = LazyLock::new(WasiConfigVariables::new);
    let values = state
        .extensions()
        .get::<Arc<WasiConfigVariables>>()
        .map_or(&*NONE, |values| &**values);
    WasiConfig::new(values)
}

impl Service for ConfigService {
    fn name(&self) -> &str {
        "wasi:config"
    }

    fn provides(&self) -> &[InterfaceName] {
        &self.provides
    }

    fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()> {
        wasmtime_wasi_config::add_to_linker(linker, view)?;
        Ok(())
    }

    /// Names the keys, never the values: they may be secrets.
    fn describe(&self) -> String {
        match self.keys.as_slice() {
            [] => format!("no values (set `[config]` in tempo.toml or {ENV_PREFIX}<KEY>)"),
            keys => format!("{} value(s): {}", keys.len(), keys.join(", ")),
        }
    }

    fn init_instance(&self, state: &mut State) {
        state.extensions_mut().insert(self.values.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, value: &str) -> (String, String) {
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
        let config: Vec<_> = values_from(&sources(toml, &env))
            .unwrap()
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
        let err = values_from(&sources("[config]\nlist = [1]\n", &[])).unwrap_err();
        assert!(
            err.to_string()
                .contains("`[config] list` must be text, a number or a boolean, not a TOML array"),
            "{err}"
        );
    }

    #[test]
    fn the_banner_names_keys_but_never_values() {
        let service = ConfigService::new(BTreeMap::from([pair("token", "s3cret")]));
        assert_eq!(service.describe(), "1 value(s): token");
        assert!(
            ConfigService::new(BTreeMap::new())
                .describe()
                .contains("no values")
        );
    }
}

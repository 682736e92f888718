//! `wasi:config` for tempo, through wasmtime-wasi-config: a guest reads the values its
//! deployment declares (in `tempo.toml`'s `[config]`, or as `TEMPO_CONFIG_*` variables in the
//! environment or `.env`) and nothing else: no host variable reaches it. A `[config]` value may
//! name a secret on a Vault-compatible server instead (see [`secrets`]).
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

pub mod secrets;
pub mod settings;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Weak};

use arc_swap::ArcSwap;
use futures::future::BoxFuture;
use secrets::{OnMissing, SecretRef, Vault};
pub use settings::{VALUES, declared_from, values};
use tempo_runtime_core::wasmtime::component::Linker;
use tempo_runtime_core::{Service, State};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

/// The `wasi:config` version wasmtime-wasi-config 48 implements.
pub const CONFIG_VERSION: &str = "0.2.0-rc.1";

/// Variables named `TEMPO_CONFIG_<KEY>` declare the value of `<key>` (lower-cased).
pub const ENV_PREFIX: &str = "TEMPO_CONFIG_";

/// The `wasi:config/store` service: fixed values, and secrets read at start and refreshed.
pub struct ConfigService {
    literal: BTreeMap<String, String>,
    secrets: BTreeMap<String, SecretRef>,
    vault: Option<Vault>,
    /// What instances read now; replaced whole when the secrets are read again.
    current: Arc<ArcSwap<WasiConfigVariables>>,
    /// Set once the secrets have been read and their refresh started.
    opened: tokio::sync::OnceCell<()>,
}

impl ConfigService {
    /// A service that offers exactly `values` to every guest.
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(values.clone().into_iter().collect())),
            literal: values,
            secrets: BTreeMap::new(),
            vault: None,
            opened: tokio::sync::OnceCell::new(),
        }
    }

    /// A service offering `values` and, once [opened](Service::open), the `secrets` read from
    /// `vault`.
    pub fn with_secrets(
        values: BTreeMap<String, String>,
        secrets: BTreeMap<String, SecretRef>,
        vault: Vault,
    ) -> Self {
        Self {
            secrets,
            vault: Some(vault),
            ..Self::new(values)
        }
    }

    /// Reads the secrets, offers them, and starts reading them again every `refresh-secs`.
    async fn read_secrets(&self, vault: &Vault) -> anyhow::Result<()> {
        let read = vault.read(&self.secrets).await?;
        self.current
            .store(Arc::new(merge(&self.literal, &self.secrets, read, vault)?));
        tokio::spawn(refresh(
            Arc::downgrade(&self.current),
            self.literal.clone(),
            self.secrets.clone(),
            vault.clone(),
        ));
        Ok(())
    }
}

/// The values to offer: the literal ones, and each secret that was found. A secret that is not
/// there is an error unless `[secrets] on-missing` says `undefined`.
fn merge(
    literal: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, SecretRef>,
    read: BTreeMap<String, Option<String>>,
    vault: &Vault,
) -> anyhow::Result<WasiConfigVariables> {
    let mut values = literal.clone();
    for (key, value) in read {
        match value {
            Some(value) => {
                values.insert(key, value);
            }
            None if vault.on_missing == OnMissing::Undefined => tracing::warn!(
                "`[config] {key}`: there is no secret `{}` on {}; the key is left undefined",
                secrets[&key],
                vault.address()
            ),
            None => anyhow::bail!(
                "`[config] {key}`: there is no secret `{}` on {} (set {} = \"undefined\" to \
                 start without it)",
                secrets[&key],
                vault.address(),
                secrets::ON_MISSING
            ),
        }
    }
    Ok(values.into_iter().collect())
}

/// Reads the secrets again every `vault.refresh` while the service lives; a failure keeps the
/// values read before, with a warning that never shows a value.
async fn refresh(
    current: Weak<ArcSwap<WasiConfigVariables>>,
    literal: BTreeMap<String, String>,
    secrets: BTreeMap<String, SecretRef>,
    vault: Vault,
) {
    loop {
        tokio::time::sleep(vault.refresh).await;
        let Some(current) = current.upgrade() else {
            return;
        };
        let read = vault.read(&secrets).await;
        match read.and_then(|read| merge(&literal, &secrets, read, &vault)) {
            Ok(values) => current.store(Arc::new(values)),
            Err(err) => tracing::warn!(
                "the secrets could not be read again ({err:#}); the values read before stay"
            ),
        }
    }
}

/// The values an instance reads: those current when it was made, kept for its whole life.
struct InstanceValues(Arc<WasiConfigVariables>);
tempo_runtime_core::part!(InstanceValues);

/// The instance's values, as wasmtime-wasi-config reads them.
fn view(state: &mut State) -> WasiConfig<'_> {
    static NONE: LazyLock<WasiConfigVariables> = LazyLock::new(WasiConfigVariables::new);
    let values = state
        .part::<InstanceValues>()
        .map_or(&*NONE, |values| &*values.0);
    WasiConfig::new(values)
}

impl Service for ConfigService {
    tempo_runtime_core::service_names!("wasi:config", ["store"] @ CONFIG_VERSION);

    fn link(&self, linker: &mut Linker<State>) -> anyhow::Result<()> {
        wasmtime_wasi_config::add_to_linker(linker, view)?;
        Ok(())
    }

    /// Reads the secrets, if any: one that cannot be read stops the start.
    fn open(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async {
            let Some(vault) = &self.vault else {
                return Ok(());
            };
            self.opened
                .get_or_try_init(|| self.read_secrets(vault))
                .await
                .map(drop)
        })
    }

    /// Names the keys, never the values: they may be secrets.
    fn describe(&self) -> String {
        let mut keys: Vec<&str> = self
            .literal
            .keys()
            .chain(self.secrets.keys())
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let from_secrets = match &self.vault {
            Some(vault) if !self.secrets.is_empty() => format!(
                " ({} from secrets at {}, read every {}s)",
                self.secrets.len(),
                vault.address(),
                vault.refresh.as_secs()
            ),
            _ => String::new(),
        };
        match keys.as_slice() {
            [] => format!("no values (set `[config]` in tempo.toml or {ENV_PREFIX}<KEY>)"),
            keys => format!("{} value(s): {}{from_secrets}", keys.len(), keys.join(", ")),
        }
    }

    fn init_instance(&self, state: &mut State) {
        state
            .parts_mut()
            .insert(InstanceValues(self.current.load_full()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tests::pair;

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

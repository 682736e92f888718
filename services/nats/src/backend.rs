//! The choice every service with a NATS backend makes the same way: embedded or NATS, by its
//! own setting, else NATS when a server is given.

use serde::Deserialize;
use tempo_runtime_core::settings::{Setting, Sources};

use crate::NatsServer;

/// The NATS server the services on the nats backend share.
pub const URL: Setting = Setting::new("nats", "url").var("NATS_ADDR").flag("nats");
/// How many replicas every bucket, object store and stream tempo creates gets.
pub const REPLICAS: Setting = Setting::new("nats", "replicas").var("TEMPO_NATS_REPLICAS");

/// Where a service keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Built into tempo, keeping data in the project's state folder: no setup
    Embedded,
    /// On the NATS server (JetStream for stored data)
    Nats,
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(value, true)
    }
}

/// The NATS server `service` uses, or `None` for its embedded backend: the backend its
/// `setting` chooses (flag, variable or `tempo.toml`), else NATS when a server is
/// [shared](Sources::share), else embedded. Choosing NATS without a server is an error.
pub fn server_for(
    service: &str,
    setting: &Setting,
    flag: Option<Backend>,
    toml: Option<Backend>,
    sources: &Sources,
) -> anyhow::Result<Option<NatsServer>> {
    let chosen = sources.value(setting, flag, toml, "`embedded` or `nats`")?;
    let server = sources.shared::<NatsServer>();
    match (chosen, server) {
        (Some(Backend::Embedded), _) | (None, None) => Ok(None),
        (Some(Backend::Nats) | None, Some(server)) => Ok(Some(server.clone())),
        (Some(Backend::Nats), None) => Err(anyhow::anyhow!(
            "{service} is set to the nats backend but no NATS server is given: set {}",
            URL.how_to_set()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const DEMO: Setting = Setting::new("demo", "backend").var("DEMO_BACKEND");

    fn sources(vars: &[(&str, &str)], nats: bool) -> Sources {
        let mut sources = Sources::with_variables(Path::new("/p"), None, vars).unwrap();
        if nats {
            sources.share(NatsServer::new("nats://127.0.0.1:4222"));
        }
        sources
    }

    #[test]
    fn a_nats_server_moves_a_service_to_nats_unless_told_otherwise() {
        let with = sources(&[], true);
        let server = server_for("demo", &DEMO, None, None, &with)
            .unwrap()
            .unwrap();
        assert!(server.shares_connection_with(with.shared::<NatsServer>().unwrap()));
        let told = server_for("demo", &DEMO, None, Some(Backend::Embedded), &with).unwrap();
        assert!(told.is_none());
        assert!(
            server_for("demo", &DEMO, None, None, &sources(&[], false))
                .unwrap()
                .is_none()
        );
        let var = sources(&[("DEMO_BACKEND", "NATS")], true);
        assert!(
            server_for("demo", &DEMO, None, Some(Backend::Embedded), &var)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn nats_without_a_server_and_unknown_backends_are_errors() {
        let err = server_for(
            "wasi:demo",
            &DEMO,
            Some(Backend::Nats),
            None,
            &sources(&[], false),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no NATS server is given: set `--nats`, `NATS_ADDR`"),
            "{err}"
        );
        let err = server_for(
            "d",
            &DEMO,
            None,
            None,
            &sources(&[("DEMO_BACKEND", "redis")], true),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`DEMO_BACKEND=redis`"), "{err}");
    }
}

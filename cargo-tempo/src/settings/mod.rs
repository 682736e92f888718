//! The host's settings: the global ones (the state folder, the NATS server, the limits, the
//! admin address), and every service's own through the [list of services](crate::services).
//! Each comes from, highest first: its flag, the environment (the process's, then the project's
//! `.env`), the project's `tempo.toml`, its default; [`Sources`] does the merge.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{ArgMatches, FromArgMatches as _};
use serde::Deserialize;
use tempo_nats::NatsServer;
use tempo_runtime_core::admission::{DEFAULT_MAX_INSTANCES, DEFAULT_QUEUE_TIMEOUT};
use tempo_runtime_core::limits::{
    DEFAULT_DEADLINE, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_RESOURCES,
};
use tempo_runtime_core::settings::{DEFAULT_STATE_DIR, STATE_DIR, Setting, Sources};
use tempo_runtime_core::{Admission, InstanceLimits, Service};

use crate::services::SERVICES;

/// How long a served instance may work on one request or message.
const DEADLINE_MS: Setting = Setting::new(LIMITS, "deadline-ms")
    .var("TEMPO_DEADLINE_MS")
    .flag("deadline-ms");
/// How much memory a served instance may have.
const MEMORY_MIB: Setting = Setting::new(LIMITS, "memory-mib")
    .var("TEMPO_MEMORY_MIB")
    .flag("memory-mib");
/// How many instances may run at once.
const MAX_INSTANCES: Setting = Setting::new(LIMITS, "max-instances")
    .var("TEMPO_MAX_INSTANCES")
    .flag("max-instances");
/// How long a request waits for an instance.
const QUEUE_TIMEOUT_MS: Setting =
    Setting::new(LIMITS, "queue-timeout-ms").var("TEMPO_QUEUE_TIMEOUT_MS");
/// How many host resources an instance may hold.
const MAX_RESOURCES: Setting = Setting::new(LIMITS, "max-resources").var("TEMPO_MAX_RESOURCES");

/// The global settings, beside the services' own (for the test that the manual names each).
#[cfg(test)]
pub(crate) const GLOBAL_SETTINGS: &[Setting] = &[
    STATE_DIR,
    tempo_nats::URL,
    tempo_nats::REPLICAS,
    DEADLINE_MS,
    MEMORY_MIB,
    MAX_INSTANCES,
    QUEUE_TIMEOUT_MS,
    MAX_RESOURCES,
];

pub(crate) const LIMITS: &str = "limits";

/// The variable of the admin address, which has no place in `tempo.toml`.
const ADMIN_VAR: &str = "TEMPO_ADMIN";

/// The flags of `run`, `dev` and `test` that set the host up: the global ones, and every
/// service's.
#[derive(Clone, Debug)]
pub(crate) struct HostArgs {
    global: GlobalArgs,
    /// What the services read their flags from.
    matches: ArgMatches,
}

/// The global flags.
#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Host")]
struct GlobalArgs {
    /// Folder for the embedded backends' data [default: .tempo]
    #[arg(long = STATE_DIR.flag, env = STATE_DIR.var, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// NATS server for the services on the nats backend, which it makes their default
    #[arg(long = tempo_nats::URL.flag, env = tempo_nats::URL.var, value_name = "URL")]
    nats: Option<String>,
    /// How long a served instance may work on one request or message, in milliseconds, before
    /// it is stopped [default: 60000]
    #[arg(long = DEADLINE_MS.flag, env = DEADLINE_MS.var, value_name = "MS")]
    deadline_ms: Option<u64>,
    /// How much memory a served instance may have, in MiB [default: 128]
    #[arg(long = MEMORY_MIB.flag, env = MEMORY_MIB.var, value_name = "MIB")]
    memory_mib: Option<usize>,
    /// How many instances may run at once, HTTP requests and messages together; past it,
    /// requests wait briefly, then get 503 [default: 1000]
    #[arg(long = MAX_INSTANCES.flag, env = MAX_INSTANCES.var, value_name = "N")]
    max_instances: Option<usize>,
    /// Address for the admin server (`/metrics` for Prometheus, `/healthz`), or `off`
    /// [default: off for run; 127.0.0.1:9464 for dev]
    #[arg(long, env = ADMIN_VAR, value_name = "ADDR")]
    admin: Option<Admin>,
}

impl clap::FromArgMatches for HostArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            global: GlobalArgs::from_arg_matches(matches)?,
            matches: matches.clone(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for HostArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        let command = <GlobalArgs as clap::Args>::augment_args(command);
        SERVICES
            .iter()
            .fold(command, |command, service| service.augment(command))
            // The command's own flags, added after these, are under its usual heading.
            .next_help_heading(None::<&str>)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl HostArgs {
    /// The host flags in `flags`, as `run` would take them (the process's variables too).
    pub(crate) fn parse<I, T>(flags: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let command = <Self as clap::Args>::augment_args(
            clap::Command::new("cargo-tempo").no_binary_name(true),
        );
        Ok(Self::from_arg_matches(
            &command.try_get_matches_from(flags)?,
        )?)
    }
}

/// Where the admin server listens, if anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admin {
    /// On this address.
    On(SocketAddr),
    /// Nowhere.
    Off,
}

impl std::str::FromStr for Admin {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "off" => Ok(Admin::Off),
            address => address
                .parse()
                .map(Admin::On)
                .map_err(|_| format!("`{address}` is neither an address (IP:PORT) nor `off`")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateToml {
    dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NatsToml {
    url: Option<String>,
    replicas: Option<usize>,
}

/// `[limits]` in `tempo.toml` (also read by `kube`, which sizes pods from it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct LimitsToml {
    deadline_ms: Option<u64>,
    pub(crate) memory_mib: Option<usize>,
    pub(crate) max_instances: Option<usize>,
    queue_timeout_ms: Option<u64>,
    max_resources: Option<usize>,
}

/// Everything the host is set up with.
#[derive(Debug)]
pub(crate) struct Settings {
    /// What the services' settings are read from, with the state folder, the NATS server and
    /// the addresses guests may not reach.
    pub(crate) sources: Sources,
    /// The services' flags.
    matches: ArgMatches,
    /// The admin server's address, if one was asked for (`None`: the command's default).
    pub(crate) admin: Option<Admin>,
    /// What each served instance may consume.
    pub(crate) limits: InstanceLimits,
    /// How many instances run at once.
    pub(crate) admission: Admission,
}

impl Settings {
    /// The settings for the project in `project`: its `tempo.toml` and `.env`, the process's
    /// environment and `args`.
    pub(crate) fn load(args: &HostArgs, project: &Path) -> anyhow::Result<Self> {
        Self::resolve(args, Sources::load(project)?)
    }

    /// [`Settings::load`] with its sources given: testable without files or a process
    /// environment.
    pub(crate) fn resolve(args: &HostArgs, mut sources: Sources) -> anyhow::Result<Self> {
        let global = &args.global;
        let sections = [
            "state",
            "nats",
            LIMITS,
            tempo_config::secrets::SECTION,
            crate::oci::SECTION,
        ]
        .into_iter()
        .chain(SERVICES.iter().filter_map(|service| service.section()));
        sources.check_sections(sections)?;
        let (state, nats, limits): (StateToml, NatsToml, LimitsToml) = (
            sources.section("state")?,
            sources.section("nats")?,
            sources.section(LIMITS)?,
        );

        let state_dir = sources
            .value(&STATE_DIR, global.state_dir.clone(), state.dir, "a folder")?
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        sources.state_dir = sources.project().join(state_dir);
        // One connection for every service on the nats backend.
        let url = sources.value(&tempo_nats::URL, global.nats.clone(), nats.url, "a URL")?;
        let replicas = sources
            .value(&tempo_nats::REPLICAS, None, nats.replicas, "a whole number")?
            .unwrap_or(1);
        if !(1..=tempo_nats::MAX_REPLICAS).contains(&replicas) {
            anyhow::bail!(
                "{} is {replicas}: JetStream keeps 1 to {} replicas",
                tempo_nats::REPLICAS.how_to_set(),
                tempo_nats::MAX_REPLICAS
            );
        }
        if let Some(url) = url.filter(|url| !url.is_empty()) {
            sources.share(NatsServer::new(url).with_replicas(replicas));
        }

        let number = "a whole number";
        let deadline_ms =
            sources.value(&DEADLINE_MS, global.deadline_ms, limits.deadline_ms, number)?;
        let memory_mib =
            sources.value(&MEMORY_MIB, global.memory_mib, limits.memory_mib, number)?;
        let limits_settings = InstanceLimits {
            max_resources: Some(
                sources
                    .value(&MAX_RESOURCES, None, limits.max_resources, number)?
                    .unwrap_or(DEFAULT_MAX_RESOURCES),
            ),
            deadline: Some(deadline_ms.map_or(DEFAULT_DEADLINE, Duration::from_millis)),
            max_memory_bytes: Some(
                memory_mib.map_or(DEFAULT_MAX_MEMORY_BYTES, |mib| mib.saturating_mul(1 << 20)),
            ),
        };
        let max_instances = sources
            .value(
                &MAX_INSTANCES,
                global.max_instances,
                limits.max_instances,
                number,
            )?
            .unwrap_or(DEFAULT_MAX_INSTANCES);
        if max_instances == 0 {
            bail!("{MAX_INSTANCES} must be at least 1");
        }
        let admission = Admission {
            max_instances,
            queue_timeout: sources
                .value(&QUEUE_TIMEOUT_MS, None, limits.queue_timeout_ms, number)?
                .map_or(DEFAULT_QUEUE_TIMEOUT, Duration::from_millis),
        };

        let admin = match global.admin {
            Some(admin) => Some(admin),
            None => sources
                .var(ADMIN_VAR)
                .map(|value| {
                    value
                        .parse()
                        .map_err(|err| anyhow::anyhow!("`{ADMIN_VAR}`: {err}"))
                })
                .transpose()?,
        };
        // The admin server's address, once bound, joins it (`host::Observability`).
        let own = tempo_http::OwnAddresses::default();
        if let Some(Admin::On(address)) = admin {
            own.add(address);
        }
        sources.share(own);
        Ok(Self {
            sources,
            matches: args.matches.clone(),
            admin,
            limits: limits_settings,
            admission,
        })
    }

    /// This process's own addresses, which guests may not reach: the list the HTTP service
    /// checks, to which the admin server adds the address it binds.
    pub(crate) fn own_addresses(&self) -> tempo_http::OwnAddresses {
        self.sources
            .shared::<tempo_http::OwnAddresses>()
            .cloned()
            .unwrap_or_default()
    }

    /// Every service, as the settings make it; nothing is opened yet.
    pub(crate) fn services(&self) -> anyhow::Result<Vec<Arc<dyn Service>>> {
        SERVICES
            .iter()
            .map(|service| service.configure(&self.matches, &self.sources))
            .collect()
    }
}

#[cfg(test)]
mod tests;

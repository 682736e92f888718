//! The host's settings, from (highest first) command-line flags, the environment (the process's,
//! then the project's `.env`), the project's `tempo.toml`, and defaults.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use serde::Deserialize;
use tempo_blobstore::{BlobstoreBackend, BlobstoreConfig, DEFAULT_MAX_OBJECT_BYTES};
use tempo_http::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_RESPONSE_TIMEOUT, DEFAULT_STALL_TIMEOUT, HttpConfig,
};
use tempo_keyvalue::{DEFAULT_BUCKET, DEFAULT_MAX_VALUE_BYTES, KeyValueBackend, KeyValueConfig};
use tempo_messaging::{MessagingBackend, MessagingConfig};
use tempo_nats::NatsServer;
use tempo_runtime_core::admission::{DEFAULT_MAX_INSTANCES, DEFAULT_QUEUE_TIMEOUT};
use tempo_runtime_core::limits::{
    DEFAULT_DEADLINE, DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_RESOURCES,
};
use tempo_runtime_core::{Admission, InstanceLimits};

/// The flags of `run` and `dev` that set up host services.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct HostArgs {
    /// Address for the HTTP server; port 0 picks a free port [env: TEMPO_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Folder for the embedded backends' data [env: TEMPO_STATE_DIR] [default: .tempo]
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// NATS server for the services on the nats backend, which it makes their default
    /// [env: NATS_ADDR]
    #[arg(long, value_name = "URL")]
    pub(crate) nats: Option<String>,
    /// Backend for wasi:keyvalue [env: TEMPO_KEYVALUE] [default: nats with a NATS address, else embedded]
    #[arg(long, value_name = "BACKEND")]
    pub(crate) keyvalue: Option<Backend>,
    /// Backend for wasi:blobstore [env: TEMPO_BLOBSTORE] [default: nats with a NATS address, else embedded]
    #[arg(long, value_name = "BACKEND")]
    pub(crate) blobstore: Option<Backend>,
    /// Backend for wasi:messaging [env: TEMPO_MESSAGING] [default: nats with a NATS address, else embedded]
    #[arg(long, value_name = "BACKEND")]
    pub(crate) messaging: Option<Backend>,
    /// A subject whose messages invoke the component's wasi:messaging handler; repeat for more,
    /// `*` and `>` are NATS wildcards [env: TEMPO_SUBSCRIBE, comma-separated]
    #[arg(long = "subscribe", value_name = "SUBJECT")]
    pub(crate) subscriptions: Vec<String>,
    /// A host guests' outgoing HTTP requests may reach, as `SCHEME://HOST[:PORT]` with `*`
    /// wildcards (e.g. `https://api.example.com`, `http://127.0.0.1:9000`); repeat for more
    /// [env: TEMPO_ALLOWED_OUTBOUND_HOSTS, comma-separated] [default: any public address]
    #[arg(long = "allow-outbound", value_name = "RULE")]
    pub(crate) allowed_outbound_hosts: Vec<String>,
    /// How long a served instance may work on one request or message, in milliseconds, before
    /// it is stopped [env: TEMPO_DEADLINE_MS] [default: 60000]
    #[arg(long, value_name = "MS")]
    pub(crate) deadline_ms: Option<u64>,
    /// How much memory a served instance may have, in MiB [env: TEMPO_MEMORY_MIB] [default: 128]
    #[arg(long, value_name = "MIB")]
    pub(crate) memory_mib: Option<usize>,
    /// How many instances may run at once, HTTP requests and messages together; past it,
    /// requests wait briefly, then get 503 [env: TEMPO_MAX_INSTANCES] [default: 1000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_instances: Option<u32>,
    /// Address for the admin server (`/metrics` for Prometheus, `/healthz`), or `off`
    /// [env: TEMPO_ADMIN] [default: off for run; 127.0.0.1:9464 for dev]
    #[arg(long, value_name = "ADDR")]
    pub(crate) admin: Option<Admin>,
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

/// Where a service keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// In the project's state folder: no setup
    Embedded,
    /// In NATS (JetStream for stored data)
    Nats,
}

/// The file tempo reads its project settings from.
pub(crate) const TEMPO_TOML: &str = "tempo.toml";

/// `tempo.toml`. Unknown keys are errors, so a typo never goes unnoticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TempoToml {
    #[serde(default)]
    http: HttpToml,
    #[serde(default)]
    state: StateToml,
    #[serde(default)]
    nats: NatsToml,
    #[serde(default)]
    keyvalue: KeyValueToml,
    #[serde(default)]
    blobstore: BlobstoreToml,
    #[serde(default)]
    messaging: MessagingToml,
    #[serde(default)]
    limits: LimitsToml,
    /// The values guests read through wasi:config.
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
struct HttpToml {
    listen: Option<SocketAddr>,
    header_timeout_ms: Option<u64>,
    stall_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    max_body_bytes: Option<u64>,
    allowed_outbound_hosts: Option<Vec<String>>,
    outbound_connect_timeout_ms: Option<u64>,
    outbound_response_timeout_ms: Option<u64>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct KeyValueToml {
    backend: Option<Backend>,
    buckets: Option<Vec<String>>,
    max_value_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BlobstoreToml {
    backend: Option<Backend>,
    max_object_bytes: Option<usize>,
    containers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MessagingToml {
    backend: Option<Backend>,
    subscriptions: Option<Vec<String>>,
    queue_group: Option<String>,
    concurrency: Option<usize>,
    max_message_bytes: Option<usize>,
    max_pending_bytes: Option<usize>,
    request_timeout_ms: Option<u64>,
    allowed_subjects: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LimitsToml {
    deadline_ms: Option<u64>,
    memory_mib: Option<usize>,
    max_instances: Option<usize>,
    queue_timeout_ms: Option<u64>,
    max_resources: Option<usize>,
}

/// Everything the host services are configured with.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) http: HttpConfig,
    pub(crate) keyvalue: KeyValueConfig,
    pub(crate) blobstore: BlobstoreConfig,
    pub(crate) messaging: MessagingConfig,
    /// What guests read through wasi:config.
    pub(crate) config: BTreeMap<String, String>,
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
        let toml_path = project.join(TEMPO_TOML);
        let toml = match std::fs::read_to_string(&toml_path) {
            Ok(text) => Some(text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => bail!("cannot read `{}`: {err}", toml_path.display()),
        };
        let dotenv = read_dotenv(&project.join(".env"))?;
        let env = |name: &str| {
            std::env::var(name)
                .ok()
                .or_else(|| dotenv.get(name).cloned())
        };
        // `.env` first, so that the process's variables win.
        let variables: Vec<(String, String)> = dotenv
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .chain(std::env::vars())
            .collect();
        Self::resolve(args, toml.as_deref(), &env, &variables, project)
    }

    /// [`Settings::load`] with its inputs given: testable without files or a process
    /// environment.
    fn resolve(
        args: &HostArgs,
        toml: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        variables: &[(String, String)],
        project: &Path,
    ) -> anyhow::Result<Self> {
        let file: TempoToml = match toml {
            Some(text) => toml::from_str(text).map_err(|err| {
                anyhow::anyhow!("`{TEMPO_TOML}`: {}", err.message()).context(format!(
                    "`{}` is not valid",
                    project.join(TEMPO_TOML).display()
                ))
            })?,
            None => TempoToml::default(),
        };
        let from_env = |name: &str| env(name).filter(|value| !value.is_empty());

        let listen = match args.listen {
            Some(listen) => listen,
            None => parse_var(&from_env, "TEMPO_LISTEN", "an address")?
                .or(file.http.listen)
                .unwrap_or(DEFAULT_LISTEN),
        };
        let state_dir = args
            .state_dir
            .clone()
            .or_else(|| from_env("TEMPO_STATE_DIR").map(PathBuf::from))
            .or(file.state.dir)
            .unwrap_or_else(|| PathBuf::from(".tempo"));
        let state_dir = project.join(state_dir);
        let messaging_defaults = MessagingConfig::default();
        let concurrency = file
            .messaging
            .concurrency
            .unwrap_or(messaging_defaults.concurrency);
        // One connection for every service on the nats backend.
        let nats = args
            .nats
            .clone()
            .or_else(|| from_env("NATS_ADDR"))
            .or(file.nats.url)
            .map(|url| {
                NatsServer::with_subscription_capacity(
                    url,
                    tempo_messaging::subscription_capacity(concurrency),
                )
            });

        // Which backend a service uses: flag, environment, tempo.toml; else NATS when a NATS
        // server is given, else embedded.
        let backend = |flag: Option<Backend>,
                       variable: &str,
                       file: Option<Backend>,
                       service: &str| {
            let chosen = match flag {
                Some(backend) => Some(backend),
                None => from_env(variable)
                    .map(|value| {
                        Backend::from_str(&value, true).map_err(|_| {
                            anyhow::anyhow!(
                                "`{variable}={value}`: the backends are `embedded` and `nats`"
                            )
                        })
                    })
                    .transpose()?
                    .or(file),
            };
            match (chosen, &nats) {
                (Some(Backend::Embedded), _) | (None, None) => Ok(None),
                (Some(Backend::Nats), Some(server)) | (None, Some(server)) => {
                    Ok(Some(server.clone()))
                }
                (Some(Backend::Nats), None) => Err(anyhow::anyhow!(
                    "{service} is set to the nats backend but no NATS server is given: set `NATS_ADDR`, `--nats` or `[nats] url` in {TEMPO_TOML}"
                )),
            }
        };
        let keyvalue_backend = match backend(
            args.keyvalue,
            "TEMPO_KEYVALUE",
            file.keyvalue.backend,
            "wasi:keyvalue",
        )? {
            Some(server) => KeyValueBackend::Nats(server),
            None => KeyValueBackend::Embedded {
                path: state_dir.join("keyvalue.redb"),
            },
        };
        let blobstore_backend = match backend(
            args.blobstore,
            "TEMPO_BLOBSTORE",
            file.blobstore.backend,
            "wasi:blobstore",
        )? {
            Some(server) => BlobstoreBackend::Nats(server),
            None => BlobstoreBackend::Embedded {
                dir: state_dir.join("blobstore"),
            },
        };
        let messaging_backend = match backend(
            args.messaging,
            "TEMPO_MESSAGING",
            file.messaging.backend,
            "wasi:messaging",
        )? {
            Some(server) => MessagingBackend::Nats(server),
            None => MessagingBackend::Embedded,
        };
        let subscriptions = if args.subscriptions.is_empty() {
            from_env("TEMPO_SUBSCRIBE")
                .map(|list| comma_list(&list))
                .or(file.messaging.subscriptions)
                .unwrap_or_default()
        } else {
            args.subscriptions.clone()
        };
        let allowed_subjects = checked_list(
            from_env("TEMPO_MESSAGING_ALLOWED_SUBJECTS"),
            file.messaging.allowed_subjects,
            "`[messaging] allowed-subjects` (or TEMPO_MESSAGING_ALLOWED_SUBJECTS)",
            tempo_messaging::check_subject_pattern,
        )?;
        let messaging = MessagingConfig {
            backend: messaging_backend,
            subscriptions,
            queue_group: from_env("TEMPO_QUEUE_GROUP").or(file.messaging.queue_group),
            concurrency,
            max_message_bytes: file
                .messaging
                .max_message_bytes
                .unwrap_or(messaging_defaults.max_message_bytes),
            max_pending_bytes: file
                .messaging
                .max_pending_bytes
                .unwrap_or(messaging_defaults.max_pending_bytes),
            request_timeout: file
                .messaging
                .request_timeout_ms
                .map_or(messaging_defaults.request_timeout, Duration::from_millis),
            allowed_subjects,
            ..messaging_defaults
        };

        let containers = checked_list(
            from_env("TEMPO_BLOBSTORE_CONTAINERS"),
            file.blobstore.containers,
            "`[blobstore] containers` (or TEMPO_BLOBSTORE_CONTAINERS)",
            tempo_blobstore::check_container_name,
        )?;

        let number = "a whole number";
        let deadline_ms = match args.deadline_ms {
            Some(ms) => Some(ms),
            None => parse_var(&from_env, "TEMPO_DEADLINE_MS", number)?.or(file.limits.deadline_ms),
        };
        let memory_mib = match args.memory_mib {
            Some(mib) => Some(mib),
            None => parse_var(&from_env, "TEMPO_MEMORY_MIB", number)?.or(file.limits.memory_mib),
        };
        let max_resources = parse_var(&from_env, "TEMPO_MAX_RESOURCES", number)?
            .or(file.limits.max_resources)
            .unwrap_or(DEFAULT_MAX_RESOURCES);
        let limits = InstanceLimits {
            max_resources: Some(max_resources),
            deadline: Some(deadline_ms.map_or(DEFAULT_DEADLINE, Duration::from_millis)),
            max_memory_bytes: Some(
                memory_mib.map_or(DEFAULT_MAX_MEMORY_BYTES, |mib| mib.saturating_mul(1 << 20)),
            ),
        };
        let header_timeout = parse_var(&from_env, "TEMPO_HTTP_HEADER_TIMEOUT_MS", number)?
            .or(file.http.header_timeout_ms)
            .map_or(DEFAULT_HEADER_TIMEOUT, Duration::from_millis);
        let max_body_bytes = parse_var(&from_env, "TEMPO_HTTP_MAX_BODY_BYTES", number)?
            .or(file.http.max_body_bytes)
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        let stall_timeout = parse_var(&from_env, "TEMPO_HTTP_STALL_TIMEOUT_MS", number)?
            .or(file.http.stall_timeout_ms)
            .map_or(DEFAULT_STALL_TIMEOUT, Duration::from_millis);
        let max_connections = parse_var(&from_env, "TEMPO_HTTP_MAX_CONNECTIONS", number)?
            .or(file.http.max_connections)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            bail!("`[http] max-connections` (or TEMPO_HTTP_MAX_CONNECTIONS) must be at least 1");
        }
        let max_instances = match args.max_instances {
            Some(n) => Some(n as usize),
            None => {
                parse_var(&from_env, "TEMPO_MAX_INSTANCES", number)?.or(file.limits.max_instances)
            }
        }
        .unwrap_or(DEFAULT_MAX_INSTANCES);
        if max_instances == 0 {
            bail!("`[limits] max-instances` (or TEMPO_MAX_INSTANCES) must be at least 1");
        }
        let admission = Admission {
            max_instances,
            queue_timeout: parse_var(&from_env, "TEMPO_QUEUE_TIMEOUT_MS", number)?
                .or(file.limits.queue_timeout_ms)
                .map_or(DEFAULT_QUEUE_TIMEOUT, Duration::from_millis),
        };

        let admin = match args.admin {
            Some(admin) => Some(admin),
            None => from_env("TEMPO_ADMIN")
                .map(|value| {
                    value
                        .parse()
                        .map_err(|err| anyhow::anyhow!("`TEMPO_ADMIN`: {err}"))
                })
                .transpose()?,
        };
        let mut declared = BTreeMap::new();
        for (key, value) in file.config {
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => bail!(
                    "`{}`: `[config] {key}` must be text, a number or a boolean, not a TOML {}",
                    project.join(TEMPO_TOML).display(),
                    other.type_str()
                ),
            };
            declared.insert(key, text);
        }
        let config = tempo_config::values(declared, [], variables.iter().cloned());

        Ok(Self {
            messaging,
            config,
            admin,
            limits,
            admission,
            http: HttpConfig {
                listen,
                header_timeout,
                stall_timeout,
                max_connections,
                max_body_bytes,
                allowed_outbound_hosts: if args.allowed_outbound_hosts.is_empty() {
                    from_env("TEMPO_ALLOWED_OUTBOUND_HOSTS")
                        .map(|list| comma_list(&list))
                        .or(file.http.allowed_outbound_hosts)
                } else {
                    Some(args.allowed_outbound_hosts.clone())
                },
                outbound_connect_timeout: file
                    .http
                    .outbound_connect_timeout_ms
                    .map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_millis),
                outbound_response_timeout: file
                    .http
                    .outbound_response_timeout_ms
                    .map_or(DEFAULT_RESPONSE_TIMEOUT, Duration::from_millis),
                own_addresses: match admin {
                    Some(Admin::On(address)) => vec![address],
                    _ => Vec::new(),
                },
                ..HttpConfig::default()
            },
            keyvalue: KeyValueConfig {
                backend: keyvalue_backend,
                buckets: file
                    .keyvalue
                    .buckets
                    .unwrap_or_else(|| vec![DEFAULT_BUCKET.to_owned()]),
                max_value_bytes: file
                    .keyvalue
                    .max_value_bytes
                    .unwrap_or(DEFAULT_MAX_VALUE_BYTES),
            },
            blobstore: BlobstoreConfig {
                backend: blobstore_backend,
                max_object_bytes: file
                    .blobstore
                    .max_object_bytes
                    .unwrap_or(DEFAULT_MAX_OBJECT_BYTES),
                containers,
            },
        })
    }
}

/// The variable `name` (as `from_env` finds it) parsed, or an error saying it is not `what`.
fn parse_var<T>(
    from_env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    what: &str,
) -> anyhow::Result<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    from_env(name)
        .map(|value| {
            value
                .parse()
                .with_context(|| format!("`{name}={value}` is not {what}"))
        })
        .transpose()
}

/// A list setting that grants guests something: the variable (comma-separated) over
/// `tempo.toml`, each item checked by `check`, an error naming `setting` otherwise.
fn checked_list(
    variable: Option<String>,
    toml: Option<Vec<String>>,
    setting: &str,
    check: fn(&str) -> Result<(), String>,
) -> anyhow::Result<Option<Vec<String>>> {
    let list = variable.map(|list| comma_list(&list)).or(toml);
    for item in list.iter().flatten() {
        check(item).map_err(|err| anyhow::anyhow!("{setting}: {err}"))?;
    }
    Ok(list)
}

/// The items of a comma-separated variable, trimmed, without empty ones.
fn comma_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The variables in the `.env` file at `path`, if there is one.
fn read_dotenv(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    match dotenvy::from_path_iter(path) {
        Ok(entries) => entries
            .map(|entry| entry.with_context(|| format!("`{}` is not valid", path.display())))
            .collect(),
        Err(err) if err.not_found() => Ok(HashMap::new()),
        Err(err) => Err(err).with_context(|| format!("cannot read `{}`", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        args: &HostArgs,
        toml: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Settings> {
        let variables: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env: HashMap<String, String> = variables.iter().cloned().collect();
        Settings::resolve(
            args,
            toml,
            &|name| env.get(name).cloned(),
            &variables,
            Path::new("/project"),
        )
    }

    #[test]
    fn config_comes_from_tempo_toml_and_prefixed_variables_only() {
        let toml = "[config]\ngreeting = \"hello\"\nretries = 3\nverbose = true\n";
        let env = [
            ("TEMPO_CONFIG_GREETING", "hi"),
            ("TEMPO_CONFIG_API_URL", "http://api"),
            ("SECRET_TOKEN", "never"),
        ];
        let settings = resolve(&HostArgs::default(), Some(toml), &env).unwrap();
        let config: Vec<_> = settings
            .config
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
        let err = resolve(&HostArgs::default(), Some("[config]\nlist = [1]\n"), &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("`[config] list` must be text, a number or a boolean, not a TOML array"),
            "{err}"
        );
    }

    #[test]
    fn the_admin_address_is_a_flag_or_tempo_admin() {
        assert_eq!(
            resolve(&HostArgs::default(), None, &[]).unwrap().admin,
            None
        );
        let env = [("TEMPO_ADMIN", "127.0.0.1:9999")];
        let settings = resolve(&HostArgs::default(), None, &env).unwrap();
        assert_eq!(
            settings.admin,
            Some(Admin::On("127.0.0.1:9999".parse().unwrap()))
        );
        let args = HostArgs {
            admin: Some(Admin::Off),
            ..HostArgs::default()
        };
        assert_eq!(resolve(&args, None, &env).unwrap().admin, Some(Admin::Off));
        let err = resolve(&HostArgs::default(), None, &[("TEMPO_ADMIN", "nope")]).unwrap_err();
        assert!(
            err.to_string().contains("`TEMPO_ADMIN`: `nope` is neither"),
            "{err}"
        );
    }

    #[test]
    fn grants_come_from_flags_the_environment_or_tempo_toml_and_are_checked() {
        let toml = "[http]\nallowed-outbound-hosts = [\"https://api.example.com\"]\n\
                    outbound-connect-timeout-ms = 500\n\
                    [blobstore]\ncontainers = [\"photos\"]\n\
                    [messaging]\nallowed-subjects = [\"events.>\"]\n";
        let settings = resolve(&HostArgs::default(), Some(toml), &[]).unwrap();
        assert_eq!(
            settings.http.allowed_outbound_hosts.as_deref(),
            Some(&["https://api.example.com".to_owned()][..])
        );
        assert_eq!(
            settings.http.outbound_connect_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(
            settings.blobstore.containers.as_deref(),
            Some(&["photos".to_owned()][..])
        );
        assert_eq!(
            settings.messaging.allowed_subjects.as_deref(),
            Some(&["events.>".to_owned()][..])
        );

        let env = [
            (
                "TEMPO_ALLOWED_OUTBOUND_HOSTS",
                "http://a.test, http://b.test",
            ),
            ("TEMPO_BLOBSTORE_CONTAINERS", "a,b"),
        ];
        let settings = resolve(&HostArgs::default(), Some(toml), &env).unwrap();
        assert_eq!(settings.http.allowed_outbound_hosts.unwrap().len(), 2);
        assert_eq!(settings.blobstore.containers.unwrap(), ["a", "b"]);
        let args = HostArgs {
            allowed_outbound_hosts: vec!["*://*:*".into()],
            ..HostArgs::default()
        };
        let settings = resolve(&args, Some(toml), &env).unwrap();
        assert_eq!(settings.http.allowed_outbound_hosts.unwrap(), ["*://*:*"]);

        let err = resolve(
            &HostArgs::default(),
            Some("[blobstore]\ncontainers = [\"../x\"]\n"),
            &[],
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("`[blobstore] containers`"),
            "{err:#}"
        );
        let err = resolve(
            &HostArgs::default(),
            None,
            &[("TEMPO_MESSAGING_ALLOWED_SUBJECTS", "a.>.b")],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("allowed-subjects"), "{err:#}");
    }

    #[test]
    fn limits_come_from_flags_the_environment_or_tempo_toml() {
        let settings = resolve(&HostArgs::default(), None, &[]).unwrap();
        assert_eq!(settings.limits, InstanceLimits::served());
        assert_eq!(settings.admission, Admission::default());
        assert_eq!(settings.http.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(settings.http.max_connections, DEFAULT_MAX_CONNECTIONS);
        let toml = "[limits]\ndeadline-ms = 2000\nmemory-mib = 32\nmax-instances = 10\n\
                    queue-timeout-ms = 5\nmax-resources = 50\n\
                    [http]\nheader-timeout-ms = 500\nmax-body-bytes = 100\n\
                    stall-timeout-ms = 700\nmax-connections = 20\n\
                    [messaging]\nmax-pending-bytes = 4096\n";
        let settings = resolve(&HostArgs::default(), Some(toml), &[]).unwrap();
        assert_eq!(settings.limits.deadline, Some(Duration::from_secs(2)));
        assert_eq!(settings.limits.max_memory_bytes, Some(32 << 20));
        assert_eq!(settings.admission.max_instances, 10);
        assert_eq!(settings.admission.queue_timeout, Duration::from_millis(5));
        assert_eq!(settings.limits.max_resources, Some(50));
        assert_eq!(settings.http.header_timeout, Duration::from_millis(500));
        assert_eq!(settings.http.max_body_bytes, 100);
        assert_eq!(settings.http.stall_timeout, Duration::from_millis(700));
        assert_eq!(settings.http.max_connections, 20);
        assert_eq!(settings.messaging.max_pending_bytes, 4096);
        let env = [
            ("TEMPO_DEADLINE_MS", "3000"),
            ("TEMPO_MEMORY_MIB", "16"),
            ("TEMPO_MAX_INSTANCES", "11"),
            ("TEMPO_HTTP_STALL_TIMEOUT_MS", "800"),
            ("TEMPO_HTTP_MAX_CONNECTIONS", "30"),
        ];
        let settings = resolve(&HostArgs::default(), Some(toml), &env).unwrap();
        assert_eq!(settings.limits.deadline, Some(Duration::from_secs(3)));
        assert_eq!(settings.limits.max_memory_bytes, Some(16 << 20));
        assert_eq!(settings.admission.max_instances, 11);
        assert_eq!(settings.http.stall_timeout, Duration::from_millis(800));
        assert_eq!(settings.http.max_connections, 30);
        let args = HostArgs {
            deadline_ms: Some(4000),
            max_instances: Some(12),
            ..HostArgs::default()
        };
        let settings = resolve(&args, Some(toml), &env).unwrap();
        assert_eq!(settings.limits.deadline, Some(Duration::from_secs(4)));
        assert_eq!(settings.admission.max_instances, 12);
        for zero in ["TEMPO_MAX_INSTANCES", "TEMPO_HTTP_MAX_CONNECTIONS"] {
            let err = resolve(&HostArgs::default(), None, &[(zero, "0")]).unwrap_err();
            assert!(format!("{err:#}").contains("must be at least 1"), "{err:#}");
        }
        let err =
            resolve(&HostArgs::default(), None, &[("TEMPO_DEADLINE_MS", "soon")]).unwrap_err();
        assert!(
            format!("{err:#}").contains("TEMPO_DEADLINE_MS=soon"),
            "{err:#}"
        );
    }

    #[test]
    fn defaults_need_nothing() {
        let settings = resolve(&HostArgs::default(), None, &[]).unwrap();
        assert_eq!(settings.http.listen, DEFAULT_LISTEN);
        assert_eq!(
            settings.keyvalue.backend,
            KeyValueBackend::Embedded {
                path: "/project/.tempo/keyvalue.redb".into()
            }
        );
        assert_eq!(settings.keyvalue.buckets, ["default"]);
    }

    #[test]
    fn flags_beat_the_environment_which_beats_tempo_toml() {
        let toml = "[http]\nlisten = \"127.0.0.1:1111\"\n[state]\ndir = \"from-toml\"\n";
        let settings = resolve(&HostArgs::default(), Some(toml), &[]).unwrap();
        assert_eq!(settings.http.listen.port(), 1111);

        let env = [
            ("TEMPO_LISTEN", "127.0.0.1:2222"),
            ("TEMPO_STATE_DIR", "/elsewhere"),
        ];
        let settings = resolve(&HostArgs::default(), Some(toml), &env).unwrap();
        assert_eq!(settings.http.listen.port(), 2222);
        assert_eq!(
            settings.keyvalue.backend,
            KeyValueBackend::Embedded {
                path: "/elsewhere/keyvalue.redb".into()
            }
        );

        let args = HostArgs {
            listen: Some("127.0.0.1:3333".parse().unwrap()),
            ..HostArgs::default()
        };
        assert_eq!(
            resolve(&args, Some(toml), &env).unwrap().http.listen.port(),
            3333
        );
    }

    #[test]
    fn every_service_on_nats_shares_one_connection() {
        let env = [("NATS_ADDR", "nats://127.0.0.1:4222")];
        let settings = resolve(&HostArgs::default(), None, &env).unwrap();
        let (
            KeyValueBackend::Nats(keyvalue),
            BlobstoreBackend::Nats(blobstore),
            MessagingBackend::Nats(messaging),
        ) = (
            &settings.keyvalue.backend,
            &settings.blobstore.backend,
            &settings.messaging.backend,
        )
        else {
            panic!("{settings:?}");
        };
        assert!(keyvalue.shares_connection_with(blobstore));
        assert!(keyvalue.shares_connection_with(messaging));
    }

    #[test]
    fn a_nats_address_moves_keyvalue_to_nats_unless_told_otherwise() {
        let env = [("NATS_ADDR", "nats://127.0.0.1:4222")];
        let settings = resolve(&HostArgs::default(), None, &env).unwrap();
        assert_eq!(
            settings.keyvalue.backend,
            KeyValueBackend::Nats(NatsServer::new("nats://127.0.0.1:4222"))
        );
        let toml = "[keyvalue]\nbackend = \"embedded\"\n";
        let settings = resolve(&HostArgs::default(), Some(toml), &env).unwrap();
        assert!(matches!(
            settings.keyvalue.backend,
            KeyValueBackend::Embedded { .. }
        ));
        let args = HostArgs {
            keyvalue: Some(Backend::Nats),
            ..HostArgs::default()
        };
        let err = resolve(&args, None, &[]).unwrap_err().to_string();
        assert!(
            err.contains("no NATS server is given: set `NATS_ADDR`"),
            "{err}"
        );
    }

    #[test]
    fn subscriptions_come_from_flags_the_environment_or_tempo_toml() {
        let toml = "[messaging]\nsubscriptions = [\"orders.>\"]\nqueue-group = \"shop\"\nconcurrency = 8\n";
        let settings = resolve(&HostArgs::default(), Some(toml), &[]).unwrap();
        assert_eq!(settings.messaging.subscriptions, ["orders.>"]);
        assert_eq!(settings.messaging.queue_group.as_deref(), Some("shop"));
        assert_eq!(settings.messaging.concurrency, 8);
        assert_eq!(settings.messaging.backend, MessagingBackend::Embedded);

        let env = [
            ("TEMPO_SUBSCRIBE", "a.*, b"),
            ("NATS_ADDR", "nats://127.0.0.1:4222"),
        ];
        let settings = resolve(&HostArgs::default(), Some(toml), &env).unwrap();
        assert_eq!(settings.messaging.subscriptions, ["a.*", "b"]);
        assert_eq!(
            settings.messaging.backend,
            MessagingBackend::Nats(NatsServer::new("nats://127.0.0.1:4222"))
        );

        let args = HostArgs {
            subscriptions: vec!["c".into()],
            messaging: Some(Backend::Embedded),
            ..HostArgs::default()
        };
        let settings = resolve(&args, Some(toml), &env).unwrap();
        assert_eq!(settings.messaging.subscriptions, ["c"]);
        assert_eq!(settings.messaging.backend, MessagingBackend::Embedded);
    }

    #[test]
    fn tempo_toml_sets_buckets_and_limits() {
        let toml = "[keyvalue]\nbuckets = [\"default\", \"sessions\"]\nmax-value-bytes = 2048\n";
        let settings = resolve(&HostArgs::default(), Some(toml), &[]).unwrap();
        assert_eq!(settings.keyvalue.buckets, ["default", "sessions"]);
        assert_eq!(settings.keyvalue.max_value_bytes, 2048);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = resolve(
            &HostArgs::default(),
            Some("[keyvalue]\nbucket = [\"x\"]\n"),
            &[],
        )
        .unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("`/project/tempo.toml` is not valid"),
            "{message}"
        );
        assert!(message.contains("unknown field `bucket`"), "{message}");
        let err = resolve(
            &HostArgs::default(),
            Some("[keyvalue]\nbackend = \"redis\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("redis"), "{err:#}");
        let err = resolve(&HostArgs::default(), None, &[("TEMPO_LISTEN", "nowhere")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("`TEMPO_LISTEN=nowhere` is not an address"),
            "{err}"
        );
    }

    #[test]
    fn dotenv_files_are_read_without_touching_the_process_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "NATS_ADDR=nats://10.0.0.1:4222\n# a comment\n",
        )
        .unwrap();
        let settings = Settings::load(&HostArgs::default(), dir.path()).unwrap();
        assert_eq!(
            settings.keyvalue.backend,
            KeyValueBackend::Nats(NatsServer::new("nats://10.0.0.1:4222"))
        );
        assert!(std::env::var("NATS_ADDR").is_err());
    }
}

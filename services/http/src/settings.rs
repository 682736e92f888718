//! The settings of wasi:http: its flags, its `[http]` section of `tempo.toml`, and the
//! [`HttpConfig`] they make.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tempo_runtime_core::settings::{Configured, GuestSide, Setting, Sources};

use crate::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_INSTANCE_CONCURRENCY,
    DEFAULT_INSTANCE_REUSE, DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENT_STREAMS,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_RESPONSE_TIMEOUT, DEFAULT_STALL_TIMEOUT, HttpConfig,
    HttpService, OwnAddresses, Reuse, TlsFiles,
};

const SECTION: &str = "http";

/// The address the server listens on.
pub const LISTEN: Setting = Setting::new(SECTION, "listen")
    .var("TEMPO_LISTEN")
    .flag("listen");
/// The hosts guests' outgoing requests may reach.
pub const ALLOWED_OUTBOUND_HOSTS: Setting = Setting::new(SECTION, "allowed-outbound-hosts")
    .var("TEMPO_ALLOWED_OUTBOUND_HOSTS")
    .flag("allow-outbound");
/// How long a client may take to send a request's head.
pub const HEADER_TIMEOUT_MS: Setting =
    Setting::new(SECTION, "header-timeout-ms").var("TEMPO_HTTP_HEADER_TIMEOUT_MS");
/// How long a body may stall.
pub const STALL_TIMEOUT_MS: Setting =
    Setting::new(SECTION, "stall-timeout-ms").var("TEMPO_HTTP_STALL_TIMEOUT_MS");
/// How many connections may be open at once.
pub const MAX_CONNECTIONS: Setting =
    Setting::new(SECTION, "max-connections").var("TEMPO_HTTP_MAX_CONNECTIONS");
/// The largest request body.
pub const MAX_BODY_BYTES: Setting =
    Setting::new(SECTION, "max-body-bytes").var("TEMPO_HTTP_MAX_BODY_BYTES");
/// How long an outgoing request may take to connect.
pub const OUTBOUND_CONNECT_TIMEOUT_MS: Setting =
    Setting::new(SECTION, "outbound-connect-timeout-ms");
/// How long an outgoing request may wait for its response.
pub const OUTBOUND_RESPONSE_TIMEOUT_MS: Setting =
    Setting::new(SECTION, "outbound-response-timeout-ms");

/// How long, from the first shutdown signal, the server goes on serving while `/readyz` says
/// it is draining.
pub const SHUTDOWN_DELAY_MS: Setting =
    Setting::new(SECTION, "shutdown-delay-ms").var("TEMPO_HTTP_SHUTDOWN_DELAY_MS");

/// The server's certificate chain (PEM): set with `tls-key`, the server speaks HTTPS only.
pub const TLS_CERT: Setting = Setting::new(SECTION, "tls-cert")
    .var("TEMPO_TLS_CERT")
    .flag("tls-cert");
/// The server certificate's private key (PEM).
pub const TLS_KEY: Setting = Setting::new(SECTION, "tls-key")
    .var("TEMPO_TLS_KEY")
    .flag("tls-key");
/// The CAs (PEM) a client certificate must chain to: mutual TLS.
pub const TLS_CLIENT_CA: Setting =
    Setting::new(SECTION, "tls-client-ca").var("TEMPO_TLS_CLIENT_CA");
/// How many streams an HTTP/2 connection may have open at once.
pub const MAX_CONCURRENT_STREAMS: Setting =
    Setting::new(SECTION, "max-concurrent-streams").var("TEMPO_HTTP_MAX_CONCURRENT_STREAMS");

/// How many requests a WASI 0.3 instance handles in its life.
pub const INSTANCE_REUSE: Setting =
    Setting::new(SECTION, "instance-reuse").var("TEMPO_HTTP_INSTANCE_REUSE");
/// How many requests a WASI 0.3 instance handles at once.
pub const INSTANCE_CONCURRENCY: Setting =
    Setting::new(SECTION, "instance-concurrency").var("TEMPO_HTTP_INSTANCE_CONCURRENCY");

/// The flags of wasi:http.
#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "wasi:http")]
pub struct HttpArgs {
    /// Address for the HTTP server; port 0 picks a free port [default: 127.0.0.1:8080]
    #[arg(long = LISTEN.flag, env = LISTEN.var, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// A host guests' outgoing HTTP requests may reach, as `SCHEME://HOST[:PORT]` with `*`
    /// wildcards (e.g. `https://api.example.com`, `http://127.0.0.1:9000`); repeat for more
    /// [default: any public address]
    #[arg(
        long = ALLOWED_OUTBOUND_HOSTS.flag,
        env = ALLOWED_OUTBOUND_HOSTS.var,
        value_name = "RULE",
        value_delimiter = ','
    )]
    pub allowed_outbound_hosts: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM; with `--tls-key`)
    #[arg(long = TLS_CERT.flag, env = TLS_CERT.var, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long = TLS_KEY.flag, env = TLS_KEY.var, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// `[http]` in `tempo.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpToml {
    listen: Option<SocketAddr>,
    header_timeout_ms: Option<u64>,
    stall_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    max_body_bytes: Option<u64>,
    allowed_outbound_hosts: Option<Vec<String>>,
    outbound_connect_timeout_ms: Option<u64>,
    outbound_response_timeout_ms: Option<u64>,
    instance_reuse: Option<usize>,
    instance_concurrency: Option<usize>,
    shutdown_delay_ms: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    max_concurrent_streams: Option<u32>,
}

/// `[http] shutdown-delay-ms` (or its variable), if set: how long a serving command goes on
/// serving after the first shutdown signal, so that load balancers stop sending first. Each
/// command has its own default (`run` waits, `dev` does not).
pub fn shutdown_delay(sources: &Sources) -> anyhow::Result<Option<Duration>> {
    let toml: HttpToml = sources.section(SECTION)?;
    Ok(sources
        .value(
            &SHUTDOWN_DELAY_MS,
            None,
            toml.shutdown_delay_ms,
            "a whole number",
        )?
        .map(Duration::from_millis))
}

impl HttpConfig {
    /// The configuration `args` and `sources` make.
    pub fn from_settings(args: &HttpArgs, sources: &Sources) -> anyhow::Result<Self> {
        let toml: HttpToml = sources.section(SECTION)?;
        let millis = |setting, toml, default| -> anyhow::Result<Duration> {
            Ok(sources
                .value(setting, None, toml, "a whole number")?
                .map_or(default, Duration::from_millis))
        };
        let number = "a whole number";
        let max_connections = sources
            .value(&MAX_CONNECTIONS, None, toml.max_connections, number)?
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        anyhow::ensure!(max_connections > 0, "{MAX_CONNECTIONS} must be at least 1");
        let at_least_one = |setting: &Setting, toml, default| -> anyhow::Result<usize> {
            let value = sources
                .value(setting, None, toml, number)?
                .unwrap_or(default);
            anyhow::ensure!(value > 0, "{setting} must be at least 1");
            Ok(value)
        };
        let reuse = Reuse {
            requests: at_least_one(&INSTANCE_REUSE, toml.instance_reuse, DEFAULT_INSTANCE_REUSE)?,
            concurrent: at_least_one(
                &INSTANCE_CONCURRENCY,
                toml.instance_concurrency,
                DEFAULT_INSTANCE_CONCURRENCY,
            )?,
        };
        let max_concurrent_streams = sources
            .value(
                &MAX_CONCURRENT_STREAMS,
                None,
                toml.max_concurrent_streams,
                number,
            )?
            .unwrap_or(DEFAULT_MAX_CONCURRENT_STREAMS);
        anyhow::ensure!(
            max_concurrent_streams > 0,
            "{MAX_CONCURRENT_STREAMS} must be at least 1"
        );
        Ok(Self {
            tls: tls_files(args, sources, &toml)?,
            max_concurrent_streams,
            listen: sources
                .value(&LISTEN, args.listen, toml.listen, "an address")?
                .unwrap_or(DEFAULT_LISTEN),
            header_timeout: millis(
                &HEADER_TIMEOUT_MS,
                toml.header_timeout_ms,
                DEFAULT_HEADER_TIMEOUT,
            )?,
            stall_timeout: millis(
                &STALL_TIMEOUT_MS,
                toml.stall_timeout_ms,
                DEFAULT_STALL_TIMEOUT,
            )?,
            max_connections,
            max_body_bytes: sources
                .value(&MAX_BODY_BYTES, None, toml.max_body_bytes, number)?
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            allowed_outbound_hosts: sources.list(
                &ALLOWED_OUTBOUND_HOSTS,
                &args.allowed_outbound_hosts,
                toml.allowed_outbound_hosts,
            ),
            outbound_connect_timeout: toml
                .outbound_connect_timeout_ms
                .map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_millis),
            outbound_response_timeout: toml
                .outbound_response_timeout_ms
                .map_or(DEFAULT_RESPONSE_TIMEOUT, Duration::from_millis),
            own_addresses: sources
                .shared::<OwnAddresses>()
                .cloned()
                .unwrap_or_default(),
            reuse,
            ..Self::default()
        })
    }
}

/// The TLS files, if any: a flag's path as given (from the current folder), one from a variable
/// or `tempo.toml` from the project's folder. A certificate without its key, a key without its
/// certificate, or a client CA without both, is an error naming what is missing.
fn tls_files(
    args: &HttpArgs,
    sources: &Sources,
    toml: &HttpToml,
) -> anyhow::Result<Option<TlsFiles>> {
    let path = |setting: &Setting, flag: &Option<PathBuf>, toml: &Option<PathBuf>| {
        if flag.is_some() {
            return Ok(flag.clone());
        }
        let found = sources.value(setting, None, toml.clone(), "a path")?;
        Ok::<_, anyhow::Error>(found.map(|path| sources.project().join(path)))
    };
    let cert = path(&TLS_CERT, &args.tls_cert, &toml.tls_cert)?;
    let key = path(&TLS_KEY, &args.tls_key, &toml.tls_key)?;
    let client_ca = path(&TLS_CLIENT_CA, &None, &toml.tls_client_ca)?;
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert,
            key,
            client_ca,
        })),
        (None, None) if client_ca.is_none() => Ok(None),
        (None, None) => anyhow::bail!(
            "{TLS_CLIENT_CA} needs the server's own certificate too: set {TLS_CERT} and {TLS_KEY}"
        ),
        (Some(_), None) => anyhow::bail!("{TLS_CERT} is set without {TLS_KEY}"),
        (None, Some(_)) => anyhow::bail!("{TLS_KEY} is set without {TLS_CERT}"),
    }
}

impl Configured for HttpService {
    const SECTION: Option<&'static str> = Some(SECTION);
    const SETTINGS: &'static [Setting] = &[
        LISTEN,
        ALLOWED_OUTBOUND_HOSTS,
        HEADER_TIMEOUT_MS,
        STALL_TIMEOUT_MS,
        MAX_CONNECTIONS,
        MAX_BODY_BYTES,
        OUTBOUND_CONNECT_TIMEOUT_MS,
        OUTBOUND_RESPONSE_TIMEOUT_MS,
        INSTANCE_REUSE,
        INSTANCE_CONCURRENCY,
        SHUTDOWN_DELAY_MS,
        TLS_CERT,
        TLS_KEY,
        TLS_CLIENT_CA,
        MAX_CONCURRENT_STREAMS,
    ];
    type Args = HttpArgs;
    const GUEST: GuestSide = GuestSide::new("wasi:http", "http", Some("http"));

    fn configure(args: HttpArgs, sources: &Sources) -> anyhow::Result<Self> {
        HttpService::new(HttpConfig::from_settings(&args, sources)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(
        args: &HttpArgs,
        toml: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<HttpConfig> {
        let sources = Sources::with_variables(Path::new("/project"), toml, env)?;
        HttpConfig::from_settings(args, &sources)
    }

    #[test]
    fn flags_beat_the_environment_which_beats_tempo_toml() {
        let toml = "[http]\nlisten = \"127.0.0.1:1111\"\n";
        assert_eq!(
            config(&HttpArgs::default(), Some(toml), &[])
                .unwrap()
                .listen
                .port(),
            1111
        );
        let env = [("TEMPO_LISTEN", "127.0.0.1:2222")];
        assert_eq!(
            config(&HttpArgs::default(), Some(toml), &env)
                .unwrap()
                .listen
                .port(),
            2222
        );
        let args = HttpArgs {
            listen: Some("127.0.0.1:3333".parse().unwrap()),
            ..HttpArgs::default()
        };
        assert_eq!(config(&args, Some(toml), &env).unwrap().listen.port(), 3333);
        assert_eq!(
            config(&HttpArgs::default(), None, &[]).unwrap().listen,
            DEFAULT_LISTEN
        );
        let err = config(&HttpArgs::default(), None, &[("TEMPO_LISTEN", "nowhere")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("`TEMPO_LISTEN=nowhere` is not an address"),
            "{err}"
        );
    }

    #[test]
    fn outbound_rules_come_from_flags_the_environment_or_tempo_toml() {
        let toml = "[http]\nallowed-outbound-hosts = [\"https://api.example.com\"]\n\
                    outbound-connect-timeout-ms = 500\n";
        let settings = config(&HttpArgs::default(), Some(toml), &[]).unwrap();
        assert_eq!(
            settings.allowed_outbound_hosts.as_deref(),
            Some(&["https://api.example.com".to_owned()][..])
        );
        assert_eq!(
            settings.outbound_connect_timeout,
            Duration::from_millis(500)
        );
        let env = [(
            "TEMPO_ALLOWED_OUTBOUND_HOSTS",
            "http://a.test, http://b.test",
        )];
        let settings = config(&HttpArgs::default(), Some(toml), &env).unwrap();
        assert_eq!(settings.allowed_outbound_hosts.unwrap().len(), 2);
        let args = HttpArgs {
            allowed_outbound_hosts: vec!["*://*:*".into()],
            ..HttpArgs::default()
        };
        let settings = config(&args, Some(toml), &env).unwrap();
        assert_eq!(settings.allowed_outbound_hosts.unwrap(), ["*://*:*"]);
    }

    #[test]
    fn wasi_p3_instance_reuse_comes_from_the_environment_or_tempo_toml() {
        let defaults = config(&HttpArgs::default(), None, &[]).unwrap().reuse;
        assert_eq!(
            defaults,
            Reuse {
                requests: DEFAULT_INSTANCE_REUSE,
                concurrent: DEFAULT_INSTANCE_CONCURRENCY,
            }
        );
        let toml = "[http]\ninstance-reuse = 1\ninstance-concurrency = 4\n";
        let reuse = config(&HttpArgs::default(), Some(toml), &[]).unwrap().reuse;
        assert_eq!((reuse.requests, reuse.concurrent), (1, 4));
        let env = [("TEMPO_HTTP_INSTANCE_REUSE", "64")];
        let reuse = config(&HttpArgs::default(), Some(toml), &env)
            .unwrap()
            .reuse;
        assert_eq!((reuse.requests, reuse.concurrent), (64, 4));
        let err = config(
            &HttpArgs::default(),
            Some("[http]\ninstance-concurrency = 0\n"),
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("instance-concurrency")
                && err.to_string().contains("at least 1"),
            "{err}"
        );
    }

    #[test]
    fn limits_come_from_the_environment_or_tempo_toml() {
        let settings = config(&HttpArgs::default(), None, &[]).unwrap();
        assert_eq!(settings.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(settings.max_connections, DEFAULT_MAX_CONNECTIONS);
        let toml = "[http]\nheader-timeout-ms = 500\nmax-body-bytes = 100\n\
                    stall-timeout-ms = 700\nmax-connections = 20\n";
        let settings = config(&HttpArgs::default(), Some(toml), &[]).unwrap();
        assert_eq!(settings.header_timeout, Duration::from_millis(500));
        assert_eq!(settings.max_body_bytes, 100);
        assert_eq!(settings.stall_timeout, Duration::from_millis(700));
        assert_eq!(settings.max_connections, 20);
        let env = [
            ("TEMPO_HTTP_STALL_TIMEOUT_MS", "800"),
            ("TEMPO_HTTP_MAX_CONNECTIONS", "30"),
        ];
        let settings = config(&HttpArgs::default(), Some(toml), &env).unwrap();
        assert_eq!(settings.stall_timeout, Duration::from_millis(800));
        assert_eq!(settings.max_connections, 30);
        let err = config(
            &HttpArgs::default(),
            None,
            &[("TEMPO_HTTP_MAX_CONNECTIONS", "0")],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("must be at least 1"), "{err:#}");
    }
}

//! Secrets from a Vault-compatible server (OpenBao, HashiCorp Vault: they share the HTTP API)
//! into wasi:config. A `[config]` value may name one, `api_key = { secret = "app/api#key" }`: the
//! field `key` of the KV version 2 secret at `app/api`. They are read at start, with a token or
//! an AppRole login from the environment, and read again every `refresh-secs`; a value is never
//! logged, and an error names the key and the path, never what was read.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use serde::Deserialize;
use tempo_runtime_core::settings::{Setting, Sources};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The section of `tempo.toml` with the server's settings.
pub const SECTION: &str = "secrets";
/// The server's address.
pub const ADDRESS: Setting = Setting::new(SECTION, "address").var("VAULT_ADDR");
/// The KV version 2 engine secrets are read from.
pub const MOUNT: Setting = Setting::new(SECTION, "mount");
/// How often secrets are read again, in seconds.
pub const REFRESH_SECS: Setting = Setting::new(SECTION, "refresh-secs");
/// What a secret that is not there does: stop the start, or leave its key undefined.
pub const ON_MISSING: Setting = Setting::new(SECTION, "on-missing");

/// The token variable.
pub const TOKEN_VAR: &str = "VAULT_TOKEN";
/// The AppRole variables: a role id and a secret id, logged in with at each read.
pub const ROLE_ID_VAR: &str = "VAULT_ROLE_ID";
/// See [`ROLE_ID_VAR`].
pub const SECRET_ID_VAR: &str = "VAULT_SECRET_ID";

/// The default KV mount: what `bao server -dev` and `vault server -dev` make.
const DEFAULT_MOUNT: &str = "secret";
/// How often secrets are read again by default.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// How long one exchange with the server may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from the server.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// `[secrets]` in `tempo.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SecretsToml {
    address: Option<String>,
    mount: Option<String>,
    refresh_secs: Option<u64>,
    on_missing: Option<OnMissing>,
}

/// What a secret that is not on the server does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnMissing {
    /// Stops the start with a sentence naming the key and the path.
    #[default]
    Fail,
    /// Leaves the key undefined, with a warning.
    Undefined,
}

/// A secret a config key names: the field `field` of the secret at `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// The secret's path below the mount, e.g. `app/api`.
    pub path: String,
    /// The field of its data, e.g. `key`.
    pub field: String,
}

impl SecretRef {
    /// Reads `path#field`; the path is letters, digits, `-`, `_`, `.` and `/`, with no empty
    /// or `..` segment, so it stays below the mount.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (path, field) = text
            .split_once('#')
            .ok_or_else(|| anyhow!("`{}` is not `PATH#FIELD`", text.escape_debug()))?;
        let segments_ok = path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
        let chars_ok = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        };
        if !segments_ok || !chars_ok(path) || field.is_empty() || !chars_ok(field) {
            bail!(
                "`{}` is not `PATH#FIELD` with a path of letters, digits, `-`, `_`, `.` and `/`",
                text.escape_debug()
            );
        }
        Ok(Self {
            path: path.to_owned(),
            field: field.to_owned(),
        })
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.path, self.field)
    }
}

/// How tempo proves itself to the server.
#[derive(Clone)]
enum Auth {
    Token(String),
    AppRole { role_id: String, secret_id: String },
}

/// The server secrets are read from.
#[derive(Clone)]
pub struct Vault {
    address: http::Uri,
    mount: String,
    auth: Auth,
    /// How often secrets are read again.
    pub refresh: Duration,
    /// What a missing secret does.
    pub on_missing: OnMissing,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("address", &self.address)
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

/// `address` as a server's URI: `http://` or `https://`, a host, no path or query; from a
/// project's `tempo.toml`, `https://` or a loopback host.
fn check_address(address: &str, from_project: bool) -> anyhow::Result<http::Uri> {
    let uri: http::Uri = address
        .parse()
        .ok()
        .filter(|uri: &http::Uri| {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some()
                && uri.path_and_query().is_none_or(|path| path.as_str() == "/")
                && !uri.authority().is_some_and(|a| a.as_str().contains('@'))
        })
        .ok_or_else(|| anyhow!("{ADDRESS}: `{address}` is not an http:// or https:// address"))?;
    let host = uri.host().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if from_project && uri.scheme_str() == Some("http") && !loopback {
        bail!(
            "{ADDRESS}: `{address}` would send `{TOKEN_VAR}` in the clear; a project's tempo.toml \
             names an https:// server or one on this machine (set `VAULT_ADDR` in the environment \
             to choose another)"
        );
    }
    Ok(uri)
}

/// `mount` as a KV engine's path: segments of letters, digits, `_`, `-` and `.`, and no `.` or
/// `..` segment, so that it names a mount and nothing else on the server.
fn check_mount(mount: &str) -> anyhow::Result<()> {
    let valid = !mount.is_empty()
        && mount.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        });
    if !valid {
        bail!(
            "{MOUNT}: `{}` is not a mount path: use letters, digits, `_`, `-` and `.`, in \
             segments joined by `/`",
            mount.escape_debug()
        );
    }
    Ok(())
}

impl Vault {
    /// The server `sources` set, if any: `VAULT_ADDR` (or `[secrets] address`) and, from the
    /// environment only, `VAULT_TOKEN` or `VAULT_ROLE_ID` with `VAULT_SECRET_ID`.
    pub fn from_sources(sources: &Sources) -> anyhow::Result<Option<Self>> {
        let toml: SecretsToml = sources.section(SECTION)?;
        let Some(address) = sources.value(&ADDRESS, None, toml.address, "an address")? else {
            return Ok(None);
        };
        // The token goes where the address says: a project's own files (`tempo.toml`, `.env`)
        // may only name a server reached over TLS, or on this machine; the process's
        // environment is the operator's to set.
        let from_project = sources.process_var("VAULT_ADDR").is_none();
        let address = check_address(&address, from_project)?;
        let mount = toml.mount.unwrap_or_else(|| DEFAULT_MOUNT.to_owned());
        check_mount(&mount)?;
        let auth = match (
            sources.var(TOKEN_VAR),
            sources.var(ROLE_ID_VAR),
            sources.var(SECRET_ID_VAR),
        ) {
            (Some(token), _, _) => Auth::Token(token),
            (None, Some(role_id), Some(secret_id)) => Auth::AppRole { role_id, secret_id },
            _ => bail!(
                "the secrets server {address} is set, but no way to log in: set `{TOKEN_VAR}`, or \
                 `{ROLE_ID_VAR}` and `{SECRET_ID_VAR}` for AppRole"
            ),
        };
        let refresh = match toml.refresh_secs {
            Some(0) => bail!("{REFRESH_SECS} must be at least 1"),
            Some(secs) => Duration::from_secs(secs),
            None => DEFAULT_REFRESH,
        };
        Ok(Some(Self {
            address,
            mount,
            auth,
            refresh,
            on_missing: toml.on_missing.unwrap_or_default(),
        }))
    }

    /// The server's address, for the banner.
    pub fn address(&self) -> String {
        self.address.to_string().trim_end_matches('/').to_owned()
    }

    /// The value of each key's secret: `None` for one that is not there (a missing secret or
    /// field). Each path is read once.
    pub async fn read(
        &self,
        secrets: &BTreeMap<String, SecretRef>,
    ) -> anyhow::Result<BTreeMap<String, Option<String>>> {
        let token = self.token().await?;
        let mut documents: BTreeMap<&str, Option<serde_json::Value>> = BTreeMap::new();
        let mut values = BTreeMap::new();
        for (key, secret) in secrets {
            if !documents.contains_key(secret.path.as_str()) {
                let document = self.document(&token, &secret.path).await.with_context(|| {
                    format!(
                        "`[config] {key}`: the secret `{secret}` cannot be read from {}",
                        self.address()
                    )
                })?;
                documents.insert(&secret.path, document);
            }
            let value = documents[secret.path.as_str()]
                .as_ref()
                .and_then(|data| data.get(&secret.field))
                .map(|value| match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                });
            values.insert(key.clone(), value);
        }
        Ok(values)
    }

    /// The token to read with: the one given, or one from an AppRole login.
    async fn token(&self) -> anyhow::Result<String> {
        match &self.auth {
            Auth::Token(token) => Ok(token.clone()),
            Auth::AppRole { role_id, secret_id } => {
                let body = serde_json::json!({ "role_id": role_id, "secret_id": secret_id });
                let (status, answer) = self
                    .exchange(
                        http::Method::POST,
                        "/v1/auth/approle/login",
                        None,
                        Some(body),
                    )
                    .await
                    .context("the AppRole login failed")?;
                if !status.is_success() {
                    bail!(
                        "the AppRole login was refused ({status}){}",
                        errors(&answer)
                    );
                }
                answer["auth"]["client_token"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("the AppRole login gave no token"))
            }
        }
    }

    /// The data of the secret at `path`, or `None` when there is none.
    async fn document(&self, token: &str, path: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let uri = format!("/v1/{}/data/{path}", self.mount);
        let (status, answer) = self
            .exchange(http::Method::GET, &uri, Some(token), None)
            .await?;
        match status {
            http::StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(answer["data"]["data"]
                .is_object()
                .then(|| answer["data"]["data"].clone())),
            status => bail!("the server answered {status}{}", errors(&answer)),
        }
    }

    /// One request to the server, on a connection of its own; its status and JSON answer.
    async fn exchange(
        &self,
        method: http::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(http::StatusCode, serde_json::Value)> {
        let host = self
            .address
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']']);
        let https = self.address.scheme_str() == Some("https");
        let port = self
            .address
            .port_u16()
            .unwrap_or(if https { 443 } else { 80 });
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(
                http::header::HOST,
                self.address.authority().map_or(host, |a| a.as_str()),
            )
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header("x-vault-token", token);
        }
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let request = request.body(Full::new(Bytes::from(body)))?;
        let exchange = async {
            let stream = TcpStream::connect((host, port)).await?;
            if https {
                send(tls(host, stream).await?, request).await
            } else {
                send(stream, request).await
            }
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("no answer within {TIMEOUT:?}"))?
    }
}

/// The server's `errors` list, if it gave one.
fn errors(answer: &serde_json::Value) -> String {
    match answer["errors"].as_array() {
        Some(errors) if !errors.is_empty() => {
            let texts: Vec<String> = errors
                .iter()
                .map(|e| e.as_str().unwrap_or("?").to_owned())
                .collect();
            format!(": {}", texts.join("; "))
        }
        _ => String::new(),
    }
}

/// TLS to `host`, verified against the web's root certificates.
async fn tls(
    host: &str,
    stream: TcpStream,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
    Ok(
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, stream)
            .await?,
    )
}

/// Sends `request` over `stream` and reads the answer, at most [`MAX_ANSWER_BYTES`].
async fn send<S>(
    stream: S,
    request: http::Request<Full<Bytes>>,
) -> anyhow::Result<(http::StatusCode, serde_json::Value)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|err| anyhow!("the answer could not be read: {err}"))?
        .to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_stays_below_its_mount() {
        let secret = SecretRef::parse("app/api#key").unwrap();
        assert_eq!(
            (secret.path.as_str(), secret.field.as_str()),
            ("app/api", "key")
        );
        for bad in [
            "app/api",
            "../sys/x#key",
            "app//x#key",
            "app/x#",
            "#key",
            "app x#key",
        ] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_address_needs_a_way_to_log_in() {
        let sources =
            |env: &[(&str, &str)]| Sources::with_variables("/project".as_ref(), None, env).unwrap();
        assert!(Vault::from_sources(&sources(&[])).unwrap().is_none());
        let err = Vault::from_sources(&sources(&[("VAULT_ADDR", "http://127.0.0.1:8200")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("set `VAULT_TOKEN`"), "{err}");
        let vault = Vault::from_sources(&sources(&[
            ("VAULT_ADDR", "http://127.0.0.1:8200"),
            ("VAULT_TOKEN", "s.hidden"),
        ]))
        .unwrap()
        .unwrap();
        assert!(!format!("{vault:?}").contains("s.hidden"));
        assert_eq!(vault.address(), "http://127.0.0.1:8200");
        let err = Vault::from_sources(&sources(&[("VAULT_ADDR", "vault:8200")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an http:// or https:// address"), "{err}");
    }

    #[test]
    fn a_projects_file_sends_the_token_only_over_tls_or_to_this_machine_and_to_a_mount() {
        let token = [("VAULT_TOKEN", "s.hidden")];
        let vault = |toml: &str, env: &[(&str, &str)]| {
            let env: Vec<_> = token.iter().chain(env).copied().collect();
            let sources = Sources::with_variables("/project".as_ref(), Some(toml), &env).unwrap();
            Vault::from_sources(&sources).map(|vault| vault.map(|v| (v.address(), v.mount)))
        };
        let clear = vault(
            "[secrets]\naddress = \"http://vault.example.com:8200\"\n",
            &[],
        );
        let err = clear.unwrap_err().to_string();
        assert!(
            err.contains("in the clear") && err.contains("VAULT_ADDR"),
            "{err}"
        );
        for fine in [
            "https://vault.example.com",
            "http://127.0.0.1:8200",
            "http://localhost:8200",
            "http://[::1]:8200",
        ] {
            let toml = format!("[secrets]\naddress = \"{fine}\"\n");
            assert!(vault(&toml, &[]).unwrap().is_some(), "{fine}");
        }
        // The operator's environment chooses freely.
        let operator = [("VAULT_ADDR", "http://vault.internal:8200")];
        assert!(vault("", &operator).unwrap().is_some());
        // A project's .env is the project's, not the operator's.
        let dotenv = [
            ("VAULT_ADDR", "http://vault.internal:8200"),
            ("VAULT_TOKEN", "s.x"),
        ];
        let dotenv = dotenv.map(|(name, value)| (name.to_owned(), value.to_owned()));
        let sources = Sources::new("/project".as_ref(), None, dotenv.into(), Vec::new()).unwrap();
        assert!(Vault::from_sources(&sources).is_err());
        for bad in [
            "https://vault.example.com/v1/other?x=",
            "https://user@vault.example.com",
        ] {
            let toml = format!("[secrets]\naddress = \"{bad}\"\n");
            assert!(vault(&toml, &[]).is_err(), "{bad}");
        }
        let mount = |mount: &str| {
            let toml = format!("[secrets]\naddress = \"https://v.test\"\nmount = \"{mount}\"\n");
            vault(&toml, &[])
        };
        assert_eq!(mount("kv/team-a").unwrap().unwrap().1, "kv/team-a");
        for bad in [
            "secret/data/x?list=true",
            "../sys",
            "kv//x",
            "",
            "kv#x",
            "/kv",
        ] {
            let err = mount(bad).unwrap_err().to_string();
            assert!(err.contains("is not a mount path"), "{bad}: {err}");
        }
    }
}

//! The login tempo presents to a registry: `TEMPO_REGISTRY_USERNAME` and
//! `TEMPO_REGISTRY_PASSWORD`, else what `docker login` left in Docker's `config.json` (its
//! `auths`, or a credential helper it names), else none.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use docker_credential::{CredentialRetrievalError as Docker, DockerCredential};
use oci_client::secrets::RegistryAuth;

/// The variables a registry's login is read from first.
pub(crate) const USERNAME_VAR: &str = "TEMPO_REGISTRY_USERNAME";
pub(crate) const PASSWORD_VAR: &str = "TEMPO_REGISTRY_PASSWORD";

/// Docker Hub's key in `config.json`, as `docker login` writes it.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// A helper's answer for a registry it holds nothing for (docker-credential-helpers' wording).
const HELPER_HAS_NONE: &str = "credentials not found";

/// A login and where it came from. Never displays the secret.
pub(crate) struct Login {
    pub(crate) auth: RegistryAuth,
    /// Whose words these are, for errors: "TEMPO_REGISTRY_USERNAME", "the Docker config `…`".
    pub(crate) source: String,
}

impl Login {
    /// The login for `registry` (`HOST[:PORT]` as oci-client resolves it, `index.docker.io` for
    /// Docker Hub).
    pub(crate) fn for_registry(registry: &str) -> anyhow::Result<Self> {
        let var = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
        match (var(USERNAME_VAR), var(PASSWORD_VAR)) {
            (Some(user), Some(password)) => {
                return Ok(Self {
                    auth: RegistryAuth::Basic(user, password),
                    source: USERNAME_VAR.to_owned(),
                });
            }
            (Some(_), None) => bail!("{USERNAME_VAR} is set but {PASSWORD_VAR} is not"),
            (None, Some(_)) => bail!("{PASSWORD_VAR} is set but {USERNAME_VAR} is not"),
            (None, None) => {}
        }
        match docker_config() {
            Some(path) if path.is_file() => from_docker_config(&path, registry),
            _ => Ok(Self::anonymous()),
        }
    }

    fn anonymous() -> Self {
        Self {
            auth: RegistryAuth::Anonymous,
            source: String::new(),
        }
    }

    /// The user name presented, if any.
    pub(crate) fn user(&self) -> Option<&str> {
        match &self.auth {
            RegistryAuth::Basic(user, _) => Some(user),
            RegistryAuth::Anonymous | RegistryAuth::Bearer(_) => None,
        }
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as Docker looks for it.
fn docker_config() -> Option<PathBuf> {
    let folder = std::env::var_os("DOCKER_CONFIG")
        .filter(|folder| !folder.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|home| home.join(".docker")))?;
    Some(folder.join("config.json"))
}

/// The login Docker's config at `path` holds for `registry`, running the credential helper it
/// names if it names one.
fn from_docker_config(path: &Path, registry: &str) -> anyhow::Result<Login> {
    let file = std::fs::File::open(path)
        .map_err(|err| anyhow!("cannot read the Docker config `{}`: {err}", path.display()))?;
    let server = if registry == "index.docker.io" {
        DOCKER_HUB_KEY
    } else {
        registry
    };
    let source = format!("the Docker config `{}`", path.display());
    let auth = match docker_credential::get_credential_from_reader(file, server) {
        Ok(DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        Ok(DockerCredential::IdentityToken(_)) => bail!(
            "{source} holds an identity token for `{registry}`, which tempo cannot present: set \
             {USERNAME_VAR} and {PASSWORD_VAR} instead"
        ),
        Err(Docker::NoCredentialConfigured) => return Ok(Login::anonymous()),
        Err(Docker::HelperFailure { stdout, stderr, .. })
            if stdout.contains(HELPER_HAS_NONE) || stderr.contains(HELPER_HAS_NONE) =>
        {
            return Ok(Login::anonymous());
        }
        Err(Docker::HelperFailure {
            helper,
            stdout,
            stderr,
        }) => {
            let said = first_line(if stderr.trim().is_empty() {
                &stdout
            } else {
                &stderr
            });
            bail!("the Docker credential helper `{helper}` failed for `{registry}`: {said}")
        }
        Err(Docker::HelperCommunicationError) => bail!(
            "cannot run the credential helper {source} names for `{registry}`: is its \
             `docker-credential-…` program on PATH?"
        ),
        Err(Docker::MalformedHelperResponse) => bail!(
            "the credential helper {source} names for `{registry}` answered something that is not \
             a login"
        ),
        Err(Docker::ConfigReadError) => bail!("{source} is not a Docker config (JSON)"),
        Err(other) => bail!("{source}: the login for `{registry}`: {other}"),
    };
    Ok(Login { auth, source })
}

/// The first line of `text`, trimmed and cut to 200 characters: a helper's words, kept short.
fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty());
    let line: String = line
        .unwrap_or("(no message)")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helpers_words_are_one_short_line() {
        assert_eq!(first_line("\n  denied \u{1b}[31m\nmore"), "denied [31m");
        assert_eq!(first_line(""), "(no message)");
        assert_eq!(first_line(&"x".repeat(500)).len(), 200);
    }
}

//! Settings, as every service reads its own: it declares each of its settings once (a
//! [`Setting`]: its key in its section of `tempo.toml`, and the variable and flag that also set
//! it), has a clap `Args` struct for its flags (each reading its variable, through clap's `env`)
//! and a serde struct for its section, and makes itself from them ([`Configured`]). This module
//! has what they share: [`Sources`], what lies beneath the command line, and the one merge of
//! flag > environment > `.env` > `tempo.toml` > default; and [`ServiceEntry`], a service in the
//! list a host offers.
//!
//! ```no_run
//! use tempo_runtime_core::settings::{Setting, Sources};
//!
//! const LISTEN: Setting = Setting::new("http", "listen").var("TEMPO_LISTEN").flag("listen");
//!
//! # fn demo(flag: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
//! let sources = Sources::load(".".as_ref())?;
//! let listen = sources.value(&LISTEN, flag, None, "an address")?;
//! # let _ = listen; Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context as _, anyhow, bail};
use serde::de::DeserializeOwned;

use crate::parts::{Part, Parts};

mod entry;

pub use entry::{Configured, GuestSide, NoArgs, ServiceEntry};

/// The file a project's settings are in.
pub const TEMPO_TOML: &str = "tempo.toml";

/// The folder of the embedded backends, relative to the project.
pub const STATE_DIR: Setting = Setting::new("state", "dir")
    .var("TEMPO_STATE_DIR")
    .flag("state-dir");

/// The default of [`STATE_DIR`].
pub const DEFAULT_STATE_DIR: &str = ".tempo";

/// One setting, declared once by the crate that reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Its section of `tempo.toml`, e.g. `http`.
    pub section: &'static str,
    /// Its key in that section, e.g. `listen`.
    pub key: &'static str,
    /// The environment variable that sets it, if any.
    pub var: Option<&'static str>,
    /// The flag that sets it, without its dashes, if any.
    pub flag: Option<&'static str>,
}

impl Setting {
    /// The setting `key` of `[section]`, with no variable and no flag.
    pub const fn new(section: &'static str, key: &'static str) -> Self {
        Self {
            section,
            key,
            var: None,
            flag: None,
        }
    }

    /// The setting, also set by the variable `var`.
    pub const fn var(mut self, var: &'static str) -> Self {
        self.var = Some(var);
        self
    }

    /// The setting, also set by the flag `--flag`.
    pub const fn flag(mut self, flag: &'static str) -> Self {
        self.flag = Some(flag);
        self
    }

    /// Every way to set it, for a message: `` `--listen`, `TEMPO_LISTEN` or `[http] listen` in
    /// tempo.toml ``.
    pub fn how_to_set(&self) -> String {
        let mut ways: Vec<String> = Vec::new();
        ways.extend(self.flag.map(|flag| format!("`--{flag}`")));
        ways.extend(self.var.map(|var| format!("`{var}`")));
        let toml = format!("{self} in {TEMPO_TOML}");
        match ways.as_slice() {
            [] => toml,
            _ => format!("{} or {toml}", ways.join(", ")),
        }
    }
}

/// `` `[http] listen` ``: the setting's name in `tempo.toml`.
impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`[{}] {}`", self.section, self.key)
    }
}

/// What lies beneath the command line: the process's environment, the project's `.env` and
/// `tempo.toml`; and what every service's settings may draw on: the state folder and what the
/// host [shares](Sources::share) with them.
pub struct Sources {
    project: PathBuf,
    toml: toml::Table,
    dotenv: HashMap<String, String>,
    process: Vec<(String, String)>,
    /// The folder of the embedded backends.
    pub state_dir: PathBuf,
    shared: Parts,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Variables may hold secrets: only their names.
        let names = |vars: &mut dyn Iterator<Item = &String>| vars.cloned().collect::<Vec<_>>();
        f.debug_struct("Sources")
            .field("project", &self.project)
            .field("toml", &self.toml)
            .field("dotenv", &names(&mut self.dotenv.keys()))
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Sources {
    /// The sources of the project in `project`: its `tempo.toml` and `.env`, if it has them, and
    /// the process's environment. The `.env` file is read, never put into the process's
    /// environment.
    pub fn load(project: &Path) -> anyhow::Result<Self> {
        let toml_path = project.join(TEMPO_TOML);
        let toml = match std::fs::read_to_string(&toml_path) {
            Ok(text) => Some(text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => bail!("cannot read `{}`: {err}", toml_path.display()),
        };
        let dotenv = read_dotenv(&project.join(".env"))?;
        Self::new(project, toml.as_deref(), dotenv, std::env::vars().collect())
    }

    /// Sources from what they would be read from: the text of `tempo.toml`, the variables of
    /// `.env` and of the process.
    pub fn new(
        project: &Path,
        toml: Option<&str>,
        dotenv: HashMap<String, String>,
        process: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        let toml_path = project.join(TEMPO_TOML);
        let toml = match toml {
            Some(text) => toml::from_str(text).map_err(|err| {
                anyhow!("`{TEMPO_TOML}`: {}", err.message())
                    .context(format!("`{}` is not valid", toml_path.display()))
            })?,
            None => toml::Table::new(),
        };
        Ok(Self {
            project: project.to_owned(),
            toml,
            dotenv,
            process,
            state_dir: project.join(DEFAULT_STATE_DIR),
            shared: Parts::new(),
        })
    }

    /// Sources with the given `tempo.toml` text and process variables, and no `.env`: what a
    /// service's tests and an embedder that reads no files need.
    pub fn with_variables(
        project: &Path,
        toml: Option<&str>,
        variables: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let variables = variables
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()));
        Self::new(project, toml, HashMap::new(), variables.collect())
    }

    /// The project's folder.
    pub fn project(&self) -> &Path {
        &self.project
    }

    /// A variable: the process's, else the one in `.env`. An empty one counts as unset (and an
    /// empty one of the process's hides `.env`'s).
    pub fn var(&self, name: &str) -> Option<String> {
        let process = self.process.iter().rev().find(|(var, _)| var == name);
        process
            .map(|(_, value)| value.clone())
            .or_else(|| self.dotenv.get(name).cloned())
            .filter(|value| !value.is_empty())
    }

    /// The process's own variable `name`, if set and not empty: the operator's, where `.env`
    /// is the project's.
    pub fn process_var(&self, name: &str) -> Option<&str> {
        let process = self.process.iter().rev().find(|(var, _)| var == name);
        process
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// Every variable, those of `.env` first, so that a later one of the process's wins.
    pub fn variables(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.dotenv
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .chain(self.process.iter().cloned())
    }

    /// The section `name` of `tempo.toml`, or its defaults; an unknown key or a bad value is an
    /// error naming the file and the section.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> anyhow::Result<T> {
        let Some(section) = self.toml.get(name) else {
            return Ok(T::default());
        };
        section.clone().try_into().map_err(|err: toml::de::Error| {
            anyhow!("`[{name}]`: {}", err.message()).context(format!(
                "`{}` is not valid",
                self.project.join(TEMPO_TOML).display()
            ))
        })
    }

    /// Checks that `tempo.toml` has no section but `known`, so a typo never goes unnoticed.
    pub fn check_sections<'a>(
        &self,
        known: impl IntoIterator<Item = &'a str> + Clone,
    ) -> anyhow::Result<()> {
        for name in self.toml.keys() {
            if !known.clone().into_iter().any(|known| known == name) {
                let known: Vec<_> = known.into_iter().map(|k| format!("`{k}`")).collect();
                bail!(
                    "`{}` is not valid: `{TEMPO_TOML}`: unknown section `[{name}]`, expected one of {}",
                    self.project.join(TEMPO_TOML).display(),
                    known.join(", ")
                );
            }
        }
        Ok(())
    }

    /// `setting`'s value: the flag's (clap gives it the process's variable too), else its
    /// variable's, parsed (an error names the variable and says it is not `what`), else
    /// `tempo.toml`'s.
    pub fn value<T>(
        &self,
        setting: &Setting,
        flag: Option<T>,
        toml: Option<T>,
        what: &str,
    ) -> anyhow::Result<Option<T>>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        if flag.is_some() {
            return Ok(flag);
        }
        let from_var = match setting.var.and_then(|var| Some((var, self.var(var)?))) {
            Some((var, value)) => Some(
                value
                    .parse()
                    .map_err(|err| anyhow!("`{var}={value}` is not {what}: {err}"))?,
            ),
            None => None,
        };
        Ok(from_var.or(toml))
    }

    /// A list `setting`: the flag's items (repeated or comma-separated), else its variable's
    /// (comma-separated), else `tempo.toml`'s; items trimmed, empty ones dropped.
    pub fn list(
        &self,
        setting: &Setting,
        flag: &[String],
        toml: Option<Vec<String>>,
    ) -> Option<Vec<String>> {
        let flag = comma_list(flag.iter().flat_map(|item| item.split(',')));
        if !flag.is_empty() {
            return Some(flag);
        }
        let var = setting
            .var
            .and_then(|var| self.var(var))
            .map(|value| comma_list(value.split(',')));
        var.or(toml)
    }

    /// A list [`Sources::list`] reads that grants guests something: each item checked by
    /// `check`, an error naming `setting` otherwise.
    pub fn checked_list(
        &self,
        setting: &Setting,
        flag: &[String],
        toml: Option<Vec<String>>,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> anyhow::Result<Option<Vec<String>>> {
        let list = self.list(setting, flag, toml);
        for item in list.iter().flatten() {
            check(item).map_err(|err| anyhow!("{setting}: {err}"))?;
        }
        Ok(list)
    }

    /// Makes `value` available to every service's settings (e.g. a connection they share).
    pub fn share<T: Part>(&mut self, value: T) {
        self.shared.insert(value);
    }

    /// What was [shared](Sources::share) of type `T`.
    pub fn shared<T: Part>(&self) -> Option<&T> {
        self.shared.get::<T>()
    }
}

/// Items trimmed, without empty ones.
fn comma_list<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    items
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
mod tests;

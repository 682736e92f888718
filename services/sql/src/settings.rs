//! The settings of wasi:sql: its `[sql]` section of `tempo.toml`, the `TEMPO_SQL_DATABASE_*`
//! variables, and the [`SqlConfig`] they make.

use std::collections::BTreeMap;

use serde::Deserialize;
use tempo_runtime_core::settings::{Configured, GuestSide, Setting, Sources};

use crate::{
    DEFAULT_DATABASE, DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, DEFAULT_MEMORY_MIB, DEFAULT_POOL_SIZE,
    Location, SqlConfig, SqlService,
};

const SECTION: &str = "sql";

/// The databases guests may open, and where each lives: `embedded` or a `postgres://` URL.
pub const DATABASES: Setting =
    Setting::new("sql.databases", "<name>").var("TEMPO_SQL_DATABASE_<NAME>");
/// The most rows one query may return.
pub const MAX_ROWS: Setting = Setting::new(SECTION, "max-rows");
/// The most bytes one query may return.
pub const MAX_BYTES: Setting = Setting::new(SECTION, "max-bytes");
/// Connections per database.
pub const POOL_SIZE: Setting = Setting::new(SECTION, "pool-size");
/// The most memory SQLite may hold for the embedded databases, in MiB.
pub const MEMORY_MIB: Setting = Setting::new(SECTION, "memory-mib");

/// Variables named `TEMPO_SQL_DATABASE_<NAME>` declare the database `<name>` (lower-cased), or
/// move it.
pub const ENV_PREFIX: &str = "TEMPO_SQL_DATABASE_";

/// The flag of wasi:sql: not for users, for `cargo tempo test`, whose tests must never reach a
/// production database named in the environment.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SqlArgs {
    /// Keep every declared database embedded, whatever its location says
    #[arg(long = "sql-embedded", hide = true)]
    pub embedded: bool,
}

/// `[sql]` in `tempo.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SqlToml {
    databases: Option<BTreeMap<String, String>>,
    max_rows: Option<usize>,
    max_bytes: Option<usize>,
    pool_size: Option<usize>,
    memory_mib: Option<u64>,
}

/// Reads a database's location: `embedded`, or a PostgreSQL URL.
fn location(name: &str, origin: &str, value: &str) -> anyhow::Result<Location> {
    if value.eq_ignore_ascii_case("embedded") {
        Ok(Location::Embedded)
    } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        Ok(Location::Postgres(value.to_owned()))
    } else {
        anyhow::bail!(
            "{origin}: the database `{name}` must be `embedded` or a `postgres://` URL, not `{}`",
            crate::backend::postgres::redact(value).escape_debug()
        )
    }
}

impl SqlConfig {
    /// The configuration `args` and `sources` make.
    pub fn from_settings(args: &SqlArgs, sources: &Sources) -> anyhow::Result<Self> {
        let toml: SqlToml = sources.section(SECTION)?;
        let file = sources.project().join("tempo.toml");
        let mut databases = BTreeMap::new();
        for (name, value) in toml.databases.unwrap_or_default() {
            let origin = format!("`{}`: `[sql.databases] {name}`", file.display());
            databases.insert(name.clone(), location(&name, &origin, &value)?);
        }
        for (variable, value) in sources.variables() {
            if let Some(name) = variable.strip_prefix(ENV_PREFIX).filter(|n| !n.is_empty()) {
                let name = name.to_ascii_lowercase();
                let origin = format!("`{variable}`");
                databases.insert(name.clone(), location(&name, &origin, &value)?);
            }
        }
        if databases.is_empty() {
            databases.insert(DEFAULT_DATABASE.to_owned(), Location::Embedded);
        }
        if args.embedded {
            databases
                .values_mut()
                .for_each(|location| *location = Location::Embedded);
        }
        Ok(Self {
            folder: sources.state_dir.join("sql"),
            databases,
            max_rows: toml.max_rows.unwrap_or(DEFAULT_MAX_ROWS),
            max_bytes: toml.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            pool_size: toml.pool_size.unwrap_or(DEFAULT_POOL_SIZE),
            memory_mib: toml.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB),
        })
    }
}

impl Configured for SqlService {
    const SECTION: Option<&'static str> = Some(SECTION);
    const SETTINGS: &'static [Setting] = &[DATABASES, MAX_ROWS, MAX_BYTES, POOL_SIZE, MEMORY_MIB];
    type Args = SqlArgs;
    const GUEST: GuestSide = GuestSide::new("wasi:sql", "sql", Some("sql"));
    const TEST_FLAGS: &'static [&'static str] = &["--sql-embedded"];

    fn configure(args: SqlArgs, sources: &Sources) -> anyhow::Result<Self> {
        SqlService::new(SqlConfig::from_settings(&args, sources)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(toml: Option<&str>, env: &[(&str, &str)]) -> anyhow::Result<SqlConfig> {
        SqlConfig::from_settings(
            &SqlArgs::default(),
            &Sources::with_variables(Path::new("/project"), toml, env)?,
        )
    }

    #[test]
    fn defaults_need_nothing() {
        let config = config(None, &[]).unwrap();
        assert_eq!(config.folder, Path::new("/project/.tempo/sql"));
        assert_eq!(
            config.databases,
            BTreeMap::from([("default".to_owned(), Location::Embedded)])
        );
        assert_eq!(config.max_rows, DEFAULT_MAX_ROWS);
    }

    #[test]
    fn one_variable_moves_a_database_to_postgres() {
        let toml =
            "[sql]\nmax-rows = 5\n[sql.databases]\nmain = \"embedded\"\nlogs = \"embedded\"\n";
        let env = [("TEMPO_SQL_DATABASE_MAIN", "postgres://app@db/app")];
        let config = config(Some(toml), &env).unwrap();
        assert_eq!(
            config.databases["main"],
            Location::Postgres("postgres://app@db/app".into())
        );
        assert_eq!(config.databases["logs"], Location::Embedded);
        assert_eq!(config.max_rows, 5);
        let sources = Sources::with_variables(Path::new("/project"), Some(toml), &env).unwrap();
        let tests = SqlConfig::from_settings(&SqlArgs { embedded: true }, &sources).unwrap();
        assert_eq!(tests.databases["main"], Location::Embedded);
    }

    #[test]
    fn a_bad_location_is_named_without_its_password() {
        let toml = "[sql.databases]\nmain = \"mysql://app:s3cret@db/app\"\n";
        let err = config(Some(toml), &[]).unwrap_err().to_string();
        assert!(
            err.contains("`[sql.databases] main`") && err.contains("must be `embedded`"),
            "{err}"
        );
        let err = config(None, &[("TEMPO_SQL_DATABASE_X", "postgres:/nowhere")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`TEMPO_SQL_DATABASE_X`"), "{err}");
        let err = config(Some("[sql]\nmax_rows = 1\n"), &[]).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `max_rows`"),
            "{err:#}"
        );
    }
}

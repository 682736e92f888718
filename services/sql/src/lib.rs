//! `wasi:sql@0.2.0-draft` for tempo: guests open the databases the configuration declares, by
//! name, and run one statement at a time with its parameters bound, never spliced into the SQL.
//!
//! Each declared database lives in one of two places:
//!
//! - **embedded** (the default): a SQLite file, `sql/<name>.sqlite3` under the state folder, in
//!   WAL mode (readers never wait for the writer), each write durable when `exec` returns;
//! - **postgres**: a PostgreSQL server, through a pool of connections (TLS when the URL's
//!   `sslmode` asks for it); a server that goes away gives guests errors and is reconnected to
//!   when it is back.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use tempo_sql::{Location, SqlConfig, SqlService};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let config = SqlConfig {
//!     databases: BTreeMap::from([("main".to_owned(), Location::Embedded)]),
//!     ..SqlConfig::default()
//! };
//! let service = SqlService::start(config).await?;
//! # let _ = service; Ok(()) }
//! ```
//!
//! What a guest may do is bounded: a query returning more rows or bytes than the settings allow
//! is an error (the rows are never all held), a statement has the deadline of the request it is
//! made for, and an embedded database cannot reach another file (`ATTACH` and `VACUUM INTO` are
//! refused).

mod backend;
mod error;
mod host;
mod result;
pub mod settings;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use tempo_runtime_core::{LazyBackend, SharedService};

use crate::backend::Database;

pub(crate) use error::Failure;
pub use host::{ConnectionHandle, SqlError, StatementHandle};
pub use settings::{SqlArgs, SqlToml};

/// The database guests get when nothing is declared.
pub const DEFAULT_DATABASE: &str = "default";
/// The most rows one query returns by default.
pub const DEFAULT_MAX_ROWS: usize = 10_000;
/// The most bytes (names and values) one query returns by default: 16 MiB.
pub const DEFAULT_MAX_BYTES: usize = 16 << 20;
/// How many connections each PostgreSQL database pools by default, and how many SQLite
/// connections each embedded database keeps.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// The longest statement text a guest may prepare, in bytes.
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;
/// The most parameters one statement may have.
pub const MAX_PARAMS: usize = 1000;
/// The most memory SQLite may hold for the embedded databases of one process by default, in
/// MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 256;

/// Where a declared database lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file under the state folder.
    Embedded,
    /// A PostgreSQL server, at a `postgres://` URL (which may hold a password).
    Postgres(String),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("Embedded"),
            Self::Postgres(url) => write!(f, "Postgres({})", backend::postgres::redact(url)),
        }
    }
}

/// How the service is set up.
#[derive(Clone, Debug)]
pub struct SqlConfig {
    /// The folder of embedded databases' files (`<state>/sql`).
    pub folder: PathBuf,
    /// The databases guests may open, by name.
    pub databases: BTreeMap<String, Location>,
    /// The most rows one query may return.
    pub max_rows: usize,
    /// The most bytes one query may return.
    pub max_bytes: usize,
    /// Connections per database.
    pub pool_size: usize,
    /// The most memory SQLite may hold for all embedded databases, in MiB.
    pub memory_mib: u64,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self {
            folder: PathBuf::from(".tempo").join("sql"),
            databases: BTreeMap::from([(DEFAULT_DATABASE.to_owned(), Location::Embedded)]),
            max_rows: DEFAULT_MAX_ROWS,
            max_bytes: DEFAULT_MAX_BYTES,
            pool_size: DEFAULT_POOL_SIZE,
            memory_mib: DEFAULT_MEMORY_MIB,
        }
    }
}

/// One statement as the guest prepared it: the SQL and its parameters, in text.
#[derive(Debug)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<String>,
}

impl Statement {
    /// `sql` with `params`, refused when longer than [`MAX_STATEMENT_BYTES`] or with more
    /// parameters than [`MAX_PARAMS`].
    pub(crate) fn checked(sql: String, params: Vec<String>) -> Result<Self, Failure> {
        if sql.len() > MAX_STATEMENT_BYTES {
            return Err(Failure::Refused(format!(
                "a statement of {} bytes is longer than the limit of {MAX_STATEMENT_BYTES}",
                sql.len()
            )));
        }
        if params.len() > MAX_PARAMS {
            return Err(Failure::Refused(format!(
                "{} parameters are more than the limit of {MAX_PARAMS}",
                params.len()
            )));
        }
        Ok(Self { sql, params })
    }
}

/// How much one query may return.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) max_rows: usize,
    pub(crate) max_bytes: usize,
}

/// The `wasi:sql` service.
pub struct SqlService {
    shared: Arc<Shared>,
}

/// What every instance shares: the configuration, and each database opened on first need.
pub struct Shared {
    config: SqlConfig,
    databases: BTreeMap<String, LazyBackend<Arc<dyn Database>>>,
    /// Undeclared names guests asked for, explained in the log once each.
    hinted: tempo_runtime_core::OnceSet,
    /// Declared databases that could not be opened for a guest, logged once each.
    unopened: tempo_runtime_core::OnceSet,
}

tempo_runtime_core::service_context!(Shared = "wasi:sql");

impl Shared {
    fn bounds(&self) -> Bounds {
        Bounds {
            max_rows: self.config.max_rows,
            max_bytes: self.config.max_bytes,
        }
    }
}

/// Opens the database `name` at `location`.
async fn open_database(
    config: &SqlConfig,
    name: &str,
    location: &Location,
) -> anyhow::Result<Arc<dyn Database>> {
    Ok(match location {
        Location::Embedded => Arc::new(backend::embedded::Embedded::open(
            &config.folder.join(format!("{name}.sqlite3")),
            config.pool_size,
            backend::sandbox::Bounds {
                value_bytes: config.max_bytes.max(1 << 20),
                statement_bytes: MAX_STATEMENT_BYTES,
                params: MAX_PARAMS,
                heap_bytes: config.memory_mib.saturating_mul(1 << 20),
            },
        )?),
        Location::Postgres(url) => {
            Arc::new(backend::postgres::Postgres::connect(name, url, config.pool_size).await?)
        }
    })
}

impl SqlService {
    /// A service for `config`; nothing is opened until a component that imports it runs (see
    /// [`Service::open`]).
    pub fn new(config: SqlConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.pool_size > 0,
            "{} must be at least 1",
            settings::POOL_SIZE
        );
        anyhow::ensure!(
            config.memory_mib >= 8,
            "{} must be at least 8",
            settings::MEMORY_MIB
        );
        let mut databases = BTreeMap::new();
        for (name, location) in &config.databases {
            tempo_runtime_core::names::check_store_name("database", name)
                .map_err(anyhow::Error::msg)?;
            if let Location::Postgres(url) = location {
                backend::postgres::check_url(name, url)?;
            }
            let open = {
                let (config, name, location) = (config.clone(), name.clone(), location.clone());
                move || {
                    let (config, name, location) = (config.clone(), name.clone(), location.clone());
                    async move { open_database(&config, &name, &location).await }
                }
            };
            databases.insert(name.clone(), LazyBackend::new(open));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                databases,
                hinted: tempo_runtime_core::OnceSet::default(),
                unopened: tempo_runtime_core::OnceSet::default(),
            }),
        })
    }

    /// A service for `config` with every database opened now.
    pub async fn start(config: SqlConfig) -> anyhow::Result<Self> {
        let service = Self::new(config)?;
        service.open().await?;
        Ok(service)
    }
}

impl SharedService for SqlService {
    tempo_runtime_core::shared_service! {
        context: Shared, link: host::Bindings::add_to_linker::<_, host::Data>,
        interfaces: ["types", "readwrite"] @ "0.2.0-draft",
    }

    /// Opens every declared database. A PostgreSQL server that cannot be reached or refuses
    /// the settings stops the start with a sentence naming the database; an embedded file that
    /// cannot be opened (a damaged file, say) is that database's error alone: it is logged with
    /// the file and a hint, guests that open it get the error, and everything else serves.
    fn open(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async {
            let config = &self.shared.config;
            for (name, database) in &self.shared.databases {
                let Err(err) = database.get().await else {
                    continue;
                };
                if config.databases.get(name) != Some(&Location::Embedded) {
                    return Err(err);
                }
                // Said once here; guests that open it are not told the log again.
                self.shared.unopened.first(name);
                tracing::error!(
                    "wasi:sql: {err:#}; guests that open `{name}` get this error until it is \
                     fixed (hint: `sqlite3 FILE 'PRAGMA integrity_check'` tells what is wrong; \
                     move the file aside to start afresh)"
                );
            }
            Ok(())
        })
    }

    /// Names each database and where it lives, never a password.
    fn describe(&self) -> String {
        let config = &self.shared.config;
        let databases: Vec<String> = config
            .databases
            .iter()
            .map(|(name, location)| match location {
                Location::Embedded => format!(
                    "{name} (embedded, {})",
                    config.folder.join(format!("{name}.sqlite3")).display()
                ),
                Location::Postgres(url) => format!("{name} ({})", backend::postgres::redact(url)),
            })
            .collect();
        match databases.as_slice() {
            [] => format!("no databases (declare them in {})", settings::DATABASES),
            _ => databases.join(", "),
        }
    }
}

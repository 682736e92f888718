//! The embedded backend: one SQLite file per database, in WAL mode with `synchronous=FULL`, so
//! readers never wait for the writer and a write is on disk when `exec` returns.
//!
//! A guest's connection is a SQLite connection of its own, taken from a small pool and given
//! back (with any transaction it left open rolled back) when the guest drops it. Statements run
//! on tokio's blocking threads; a progress handler stops one at the deadline of the request it
//! was made for, or as soon as the guest is gone. Each connection runs guest SQL inside SQLite's
//! own sandbox ([`crate::sandbox`]): shut in its file, with no TEMP objects and no pragma that
//! changes the connection, so the next guest to lease it finds it as the host set it up.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::sandbox;
use super::{Database, Session, until};
use crate::result::{Cell, Gathered, Value};
use crate::{Bounds, Failure, Statement};

/// How long a writer waits for another's transaction before its statement fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many SQLite virtual-machine steps run between checks of the deadline.
const STEPS_PER_CHECK: i32 = 1000;

/// How many checks a read may pass on the async thread (about 20,000 steps, well under a
/// millisecond) before it is stopped and run again on a blocking thread.
const INLINE_CHECKS: i32 = 20;

/// A SQLite database file and its connections.
pub(crate) struct Embedded {
    pool: Arc<Pool>,
}

struct Pool {
    path: PathBuf,
    bounds: sandbox::Bounds,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

/// One SQLite connection, and when its current statement must stop.
struct Connection {
    db: rusqlite::Connection,
    watch: Arc<Watch>,
}

/// Read by the progress handler between steps.
struct Watch {
    deadline: Mutex<Option<Instant>>,
    abandoned: AtomicBool,
    /// Checks left to a read running on the async thread; negative when none is.
    inline_checks: AtomicI32,
}

impl Default for Watch {
    fn default() -> Self {
        Self {
            deadline: Mutex::new(None),
            abandoned: AtomicBool::new(false),
            inline_checks: AtomicI32::new(-1),
        }
    }
}

impl Watch {
    fn should_stop(&self) -> bool {
        let inline = self.inline_checks.load(Ordering::Relaxed);
        if inline >= 0 {
            self.inline_checks.store(inline - 1, Ordering::Relaxed);
            return inline == 0;
        }
        self.abandoned.load(Ordering::Relaxed)
            || self
                .deadline
                .lock()
                .ok()
                .and_then(|deadline| *deadline)
                .is_some_and(|deadline| Instant::now() >= deadline)
    }
}

impl Embedded {
    /// Opens (creating if need be) the database at `path`, checking it is usable now.
    pub(crate) fn open(
        path: &Path,
        pool_size: usize,
        bounds: sandbox::Bounds,
    ) -> anyhow::Result<Self> {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|err| {
                anyhow::anyhow!("cannot create the SQL folder {}: {err}", folder.display())
            })?;
        }
        let pool = Arc::new(Pool {
            path: path.to_owned(),
            bounds,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(pool_size)),
        });
        let first = pool
            .open_connection()
            .map_err(|err| anyhow::anyhow!("cannot open the database {}: {err}", path.display()))?;
        pool.give_back(first);
        Ok(Self { pool })
    }
}

impl Pool {
    fn open_connection(&self) -> rusqlite::Result<Connection> {
        let db = rusqlite::Connection::open(&self.path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.pragma_update(None, "foreign_keys", "ON")?;
        db.pragma_update(None, "trusted_schema", "OFF")?;
        db.busy_timeout(BUSY_TIMEOUT)?;
        // Reads the schema now, so that a damaged file is found when it is opened.
        db.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        sandbox::confine(&db, self.bounds)?;
        let watch = Arc::new(Watch::default());
        let watched = watch.clone();
        db.progress_handler(STEPS_PER_CHECK, Some(move || watched.should_stop()));
        Ok(Connection { db, watch })
    }

    /// Puts `connection` back for the next guest, after rolling back what this one left open.
    fn give_back(&self, connection: Connection) {
        if !connection.db.is_autocommit() && connection.db.execute_batch("ROLLBACK").is_err() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(connection);
        }
    }
}

#[async_trait::async_trait]
impl Database for Embedded {
    async fn connect(&self, deadline: Option<Instant>) -> Result<Arc<dyn Session>, Failure> {
        let permit = until(deadline, self.pool.permits.clone().acquire_owned())
            .await?
            .map_err(|_| Failure::Unavailable("the database is closed".into()))?;
        let idle = self.pool.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let pool = self.pool.clone();
                tokio::task::spawn_blocking(move || pool.open_connection())
                    .await
                    .map_err(|err| Failure::Unavailable(err.to_string()))?
                    .map_err(|err| {
                        Failure::Unavailable(format!("cannot open the database: {err}"))
                    })?
            }
        };
        Ok(Arc::new(Lease {
            watch: connection.watch.clone(),
            held: Arc::new(Mutex::new(Held {
                connection: Some(connection),
                pool: self.pool.clone(),
                _permit: permit,
            })),
        }))
    }
}

/// A connection lent to a guest; given back when the guest and any statement still running are
/// done with it.
struct Lease {
    watch: Arc<Watch>,
    held: Arc<Mutex<Held>>,
}

struct Held {
    connection: Option<Connection>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.watch.abandoned.store(false, Ordering::Relaxed);
            self.pool.give_back(connection);
        }
    }
}

/// Sets the guest gone when a statement's future is dropped before it finished (the request
/// was stopped), so the progress handler ends the statement.
struct AbandonOnDrop {
    watch: Arc<Watch>,
    finished: bool,
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if !self.finished {
            self.watch.abandoned.store(true, Ordering::Relaxed);
        }
    }
}

impl Lease {
    /// Runs `work` on the connection on a blocking thread, stopped at `deadline`.
    async fn run<T: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        work: impl FnOnce(&rusqlite::Connection) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        let held = self.held.clone();
        let mut abandon = AbandonOnDrop {
            watch: self.watch.clone(),
            finished: false,
        };
        let outcome = tokio::task::spawn_blocking(move || {
            let held = held.lock().map_err(poisoned)?;
            let Some(connection) = held.connection.as_ref() else {
                return Err(Failure::Unavailable("the connection is closed".into()));
            };
            *connection.watch.deadline.lock().map_err(poisoned)? = deadline;
            let outcome = work(&connection.db);
            *connection.watch.deadline.lock().map_err(poisoned)? = None;
            outcome
        })
        .await
        .map_err(|err| Failure::Unavailable(err.to_string()))?;
        abandon.finished = true;
        outcome
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> Failure {
    Failure::Unavailable("the connection was lost to an earlier failure".into())
}

#[async_trait::async_trait]
impl Session for Lease {
    /// A short read runs on the async thread: a hop to a blocking thread and back costs more
    /// than most point queries. One that needs more steps, or would wait for a lock, is stopped
    /// (a read, it changed nothing) and run again on a blocking thread.
    async fn query(
        &self,
        statement: &Statement,
        bounds: Bounds,
        deadline: Option<Instant>,
    ) -> Result<Vec<Cell>, Failure> {
        if let Some(outcome) = self.query_inline(statement, bounds) {
            return outcome;
        }
        let (sql, params) = (statement.sql.clone(), statement.params.clone());
        self.run(deadline, move |db| {
            let mut prepared = db.prepare_cached(&sql).map_err(refused)?;
            gather(&mut prepared, &params, bounds)
        })
        .await
    }

    async fn exec(&self, statement: &Statement, deadline: Option<Instant>) -> Result<u64, Failure> {
        let (sql, params) = (statement.sql.clone(), statement.params.clone());
        self.run(deadline, move |db| {
            let mut prepared = db.prepare_cached(&sql).map_err(refused)?;
            bind(&mut prepared, &params)?;
            let changed = prepared.raw_execute().map_err(refused)?;
            Ok(u64::try_from(changed).unwrap_or(u64::MAX))
        })
        .await
    }
}

impl Lease {
    /// The outcome of `statement` if it is a read that finished within [`INLINE_CHECKS`] with
    /// no wait; `None` to run it on a blocking thread.
    fn query_inline(
        &self,
        statement: &Statement,
        bounds: Bounds,
    ) -> Option<Result<Vec<Cell>, Failure>> {
        let held = self.held.try_lock().ok()?;
        let db = &held.connection.as_ref()?.db;
        let mut prepared = db.prepare_cached(&statement.sql).ok()?;
        // A read: it changes nothing, so stopping it early loses nothing (`BEGIN` and `COMMIT`
        // count as read-only to SQLite, but return no columns).
        if !prepared.readonly() || prepared.column_count() == 0 {
            return None;
        }
        db.busy_timeout(Duration::ZERO).ok()?;
        self.watch
            .inline_checks
            .store(INLINE_CHECKS, Ordering::Relaxed);
        let outcome = gather(&mut prepared, &statement.params, bounds);
        // The progress handler leaves -1 when it stopped the read for running too long.
        let stopped = self.watch.inline_checks.swap(-1, Ordering::Relaxed) < 0;
        db.busy_timeout(BUSY_TIMEOUT).ok()?;
        match outcome {
            Err(_) if stopped => None,
            Err(Failure::Unavailable(_)) => None,
            outcome => Some(outcome),
        }
    }
}

/// The rows of `prepared` with `params` bound, within `bounds`.
fn gather(
    prepared: &mut rusqlite::Statement<'_>,
    params: &[String],
    bounds: Bounds,
) -> Result<Vec<Cell>, Failure> {
    bind(prepared, params)?;
    let columns: Vec<(String, Kind)> = prepared
        .columns()
        .iter()
        .map(|column| (column.name().to_owned(), Kind::of(column.decl_type())))
        .collect();
    let mut rows = prepared.raw_query();
    let mut gathered = Gathered::new(bounds);
    while let Some(row) = rows.next().map_err(refused)? {
        gathered.begin_row()?;
        for (index, (name, kind)) in columns.iter().enumerate() {
            let value = row.get_ref(index).map_err(refused)?;
            gathered.push(name, kind.value(value))?;
        }
    }
    Ok(gathered.into_cells())
}

/// SQLite's error as the guest reads it; an interrupted statement says why.
fn refused(err: rusqlite::Error) -> Failure {
    if let Some(what) = sandbox::refusal_behind(&err) {
        return Failure::Refused(format!(
            "{err}: an embedded database does not allow {what} (see the security model)"
        ));
    }
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::OperationInterrupted) => Failure::out_of_time(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Failure::Unavailable(format!("{err}: another connection held it too long"))
        }
        _ => Failure::Refused(err.to_string()),
    }
}

/// Binds the guest's parameters, as text. `?` and named parameters take them in order of first
/// appearance; `$N` and `?N` take the N-th, so `$1, $2` means the same here as on PostgreSQL.
fn bind(prepared: &mut rusqlite::Statement<'_>, params: &[String]) -> Result<(), Failure> {
    let mut needed = 0;
    for index in 1..=prepared.parameter_count() {
        let position = match prepared.parameter_name(index) {
            Some(name) if name.len() > 1 && name[1..].bytes().all(|b| b.is_ascii_digit()) => {
                match name[1..].parse::<usize>() {
                    Ok(number) if number >= 1 => number - 1,
                    _ => {
                        return Err(Failure::Refused(format!(
                            "parameter `{name}` is out of range: they are numbered from 1"
                        )));
                    }
                }
            }
            _ => index - 1,
        };
        needed = needed.max(position + 1);
        if let Some(value) = params.get(position) {
            prepared
                .raw_bind_parameter(index, value.as_str())
                .map_err(refused)?;
        }
    }
    if needed != params.len() {
        return Err(Failure::Refused(format!(
            "the statement takes {needed} parameter(s), and {} were given",
            params.len()
        )));
    }
    Ok(())
}

/// What a column's declared type says its values mean, beyond SQLite's storage class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    Boolean,
    Date,
    Time,
    Timestamp,
}

impl Kind {
    fn of(declared: Option<&str>) -> Self {
        let declared = declared.unwrap_or_default();
        let has = |word: &str| {
            declared
                .as_bytes()
                .windows(word.len())
                .any(|window| window.eq_ignore_ascii_case(word.as_bytes()))
        };
        if has("BOOL") {
            Self::Boolean
        } else if has("TIMESTAMP") || has("DATETIME") {
            Self::Timestamp
        } else if declared.eq_ignore_ascii_case("DATE") {
            Self::Date
        } else if declared.eq_ignore_ascii_case("TIME") {
            Self::Time
        } else {
            Self::Plain
        }
    }

    fn value(self, value: ValueRef<'_>) -> Value {
        match (self, value) {
            (_, ValueRef::Null) => Value::Null,
            (Self::Boolean, ValueRef::Integer(n)) => Value::Boolean(n != 0),
            (_, ValueRef::Integer(n)) => Value::Int64(n),
            (_, ValueRef::Real(x)) => Value::Double(x),
            (_, ValueRef::Blob(bytes)) => Value::Binary(bytes.to_vec()),
            (kind, ValueRef::Text(text)) => {
                let text = String::from_utf8_lossy(text).into_owned();
                match kind {
                    Self::Date => Value::Date(text),
                    Self::Time => Value::Time(text),
                    Self::Timestamp => Value::Timestamp(text),
                    Self::Plain | Self::Boolean => Value::Str(text),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_choose_the_wit_case() {
        assert_eq!(Kind::of(Some("boolean")), Kind::Boolean);
        assert_eq!(Kind::of(Some("TIMESTAMP")), Kind::Timestamp);
        assert_eq!(Kind::of(Some("datetime")), Kind::Timestamp);
        assert_eq!(Kind::of(Some("DATE")), Kind::Date);
        assert_eq!(Kind::of(Some("TIME")), Kind::Time);
        assert_eq!(Kind::of(Some("TEXT")), Kind::Plain);
        assert_eq!(Kind::of(None), Kind::Plain);
        assert_eq!(
            Kind::Boolean.value(ValueRef::Integer(1)),
            Value::Boolean(true)
        );
        assert_eq!(
            Kind::Date.value(ValueRef::Text(b"2024-02-29")),
            Value::Date("2024-02-29".into())
        );
    }
}

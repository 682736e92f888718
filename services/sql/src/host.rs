//! The `wasi:sql` host functions, on a view borrowed from an instance's state.

use std::sync::Arc;

use tempo_runtime_core::ServiceView;
use tempo_runtime_core::metrics::{component, metrics};
use wasmtime::component::Resource;

use crate::backend::Session;
use crate::result::{Cell, Value};
use crate::{Failure, Shared, Statement};

tempo_runtime_core::host_bindings!(mod generated = async "wasi:sql/imports" {
    with: {
        "wasi:sql/types.connection": crate::host::ConnectionHandle,
        "wasi:sql/types.statement": crate::host::StatementHandle,
        "wasi:sql/types.error": crate::host::SqlError,
    },
});

use generated::wasi::sql::{readwrite, types};

/// A database connection, as the guest holds it.
pub struct ConnectionHandle {
    session: Arc<dyn Session>,
}

/// A statement and its parameters, as the guest prepared it.
pub struct StatementHandle(Statement);

/// An error a guest is given: its text, through `trace`.
pub struct SqlError(String);

/// The host functions' view of an instance.
type SqlView<'a> = ServiceView<'a, Shared>;

/// The bindings of the interfaces the service provides, linked all at once on `Data`.
pub(crate) type Bindings = generated::Imports;

/// What the bindings are implemented on: [`ServiceView`] of the service's shared part.
pub(crate) type Data = tempo_runtime_core::ServiceData<Shared>;

/// An outcome the guest gets: the value, or an error resource with the text.
type Answer<T> = wasmtime::Result<Result<T, Resource<SqlError>>>;

/// Hands `failure` to the guest, counting a bound that was hit.
fn fail<T>(view: &mut SqlView<'_>, failure: Failure) -> Answer<T> {
    if let Failure::Limit { limit, .. } = &failure {
        metrics().limit_hit(&component(view.component.clone()), limit, 1);
    }
    Ok(Err(view.table.push(SqlError(failure.to_string()))?))
}

/// The session and the statement behind the guest's handles.
fn parts<'a>(
    view: &'a SqlView<'_>,
    connection: &Resource<ConnectionHandle>,
    statement: &Resource<StatementHandle>,
) -> wasmtime::Result<(Arc<dyn Session>, &'a Statement)> {
    let session = view.table.get(connection)?.session.clone();
    Ok((session, &view.table.get(statement)?.0))
}

impl types::Host for SqlView<'_> {}

impl types::HostConnection for SqlView<'_> {
    async fn open(&mut self, name: String) -> Answer<Resource<ConnectionHandle>> {
        let shared = self.context()?.clone();
        let Some(database) = shared.databases.get(&name) else {
            if shared.hinted.first(&name) {
                tracing::warn!(
                    "a guest opened the SQL database `{}`, which is not declared; add it to {} \
                     to grant it",
                    name.escape_debug(),
                    crate::settings::DATABASES
                );
            }
            return fail(
                self,
                Failure::Refused(format!("no database `{}` is declared", name.escape_debug())),
            );
        };
        let database = match database.get().await {
            Ok(database) => database.clone(),
            Err(err) => {
                // The reason may name a host path: it is the operator's to read.
                if shared.unopened.first(&name) {
                    tracing::error!("wasi:sql: {err:#}");
                }
                return fail(
                    self,
                    Failure::Unavailable(format!(
                        "the database `{name}` cannot be opened; the server's log says why"
                    )),
                );
            }
        };
        match database.connect(self.deadline).await {
            Ok(session) => Ok(Ok(self.table.push(ConnectionHandle { session })?)),
            Err(failure) => fail(self, failure),
        }
    }

    async fn drop(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.drop_resource(connection)
    }
}

impl types::HostStatement for SqlView<'_> {
    async fn prepare(
        &mut self,
        query: String,
        params: Vec<String>,
    ) -> Answer<Resource<StatementHandle>> {
        let statement = match Statement::checked(query, params) {
            Ok(statement) => statement,
            Err(failure) => return fail(self, failure),
        };
        Ok(Ok(self.table.push(StatementHandle(statement))?))
    }

    async fn drop(&mut self, statement: Resource<StatementHandle>) -> wasmtime::Result<()> {
        self.drop_resource(statement)
    }
}

impl types::HostError for SqlView<'_> {
    async fn trace(&mut self, error: Resource<SqlError>) -> wasmtime::Result<String> {
        Ok(self.table.get(&error)?.0.clone())
    }

    async fn drop(&mut self, error: Resource<SqlError>) -> wasmtime::Result<()> {
        self.drop_resource(error)
    }
}

impl readwrite::Host for SqlView<'_> {
    async fn query(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: Resource<StatementHandle>,
    ) -> Answer<Vec<types::Row>> {
        let bounds = self.context()?.bounds();
        let (session, statement) = parts(self, &connection, &statement)?;
        match session.query(statement, bounds, self.deadline).await {
            Ok(cells) => Ok(Ok(cells.into_iter().map(row).collect())),
            Err(failure) => fail(self, failure),
        }
    }

    async fn exec(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: Resource<StatementHandle>,
    ) -> Answer<u32> {
        let (session, statement) = parts(self, &connection, &statement)?;
        match session.exec(statement, self.deadline).await {
            Ok(changed) => Ok(Ok(u32::try_from(changed).unwrap_or(u32::MAX))),
            Err(failure) => fail(self, failure),
        }
    }
}

/// A cell as the WIT's `row` record.
fn row((field_name, value): Cell) -> types::Row {
    use types::DataType;
    let value = match value {
        Value::Int32(n) => DataType::Int32(n),
        Value::Int64(n) => DataType::Int64(n),
        Value::Uint32(n) => DataType::Uint32(n),
        Value::Float(x) => DataType::Float(x),
        Value::Double(x) => DataType::Double(x),
        Value::Str(text) => DataType::Str(text),
        Value::Boolean(b) => DataType::Boolean(b),
        Value::Date(text) => DataType::Date(text),
        Value::Time(text) => DataType::Time(text),
        Value::Timestamp(text) => DataType::Timestamp(text),
        Value::Binary(bytes) => DataType::Binary(bytes),
        Value::Null => DataType::Null,
    };
    types::Row { field_name, value }
}

//! A component on tempo-sdk that runs the SQL it is sent, for the tests of wasi:sql. Each route
//! takes `{"sql": "...", "params": ["..."]}` (or a list of them) and answers JSON; a database
//! error is a 422 with `{"error": message}`.
//!
//! - `POST /query/{db}`: `{"rows": [{column: {case: value}}]}`, each value tagged with its
//!   `data-type` case (`{"int64": 7}`, `{"null": null}`);
//! - `POST /exec/{db}`: `{"changed": n}`;
//! - `POST /script/{db}`: a list of statements run with `exec` on one connection, in order:
//!   `{"changed": [n, …]}`, or a 422 naming the first that failed. A step
//!   `{"wait_for": URL}` GETs URL in between, so a test holds the connection where it likes.

use serde::Deserialize;
use serde_json::{Value as Json, json};
use tempo_sdk::http::{self, ReadBody as _, Request, RequestExt as _, Router, StatusCode};
use tempo_sdk::sql::{Database, Param, Value};

tempo_sdk::serve!(
    Router::new()
        .post("/query/{db}", query)
        .post("/exec/{db}", exec)
        .post("/script/{db}", script)
);

#[derive(Deserialize)]
struct Statement {
    sql: String,
    #[serde(default)]
    params: Vec<String>,
}

/// A step of a script: a statement, or a request that holds the script until it is answered.
#[derive(Deserialize)]
#[serde(untagged)]
enum Step {
    Statement(Statement),
    WaitFor { wait_for: String },
}

impl Statement {
    fn params(&self) -> Vec<&dyn Param> {
        self.params.iter().map(|param| param as &dyn Param).collect()
    }
}

fn refused(err: impl std::fmt::Display) -> http::Error {
    http::Error::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
}

fn open(request: &Request) -> Result<Database, http::Error> {
    Database::open(request.param("db").unwrap_or_default()).map_err(refused)
}

async fn query(mut request: Request) -> Result<http::Json<Json>, http::Error> {
    let statement: Statement = request.json().await?;
    let rows = open(&request)?
        .query(&statement.sql, &statement.params())
        .map_err(refused)?;
    let rows: Vec<Json> = rows
        .iter()
        .map(|row| {
            rows.columns()
                .iter()
                .zip(row.values())
                .map(|(name, value)| (name.clone(), tagged(value)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    Ok(http::Json(json!({ "rows": rows })))
}

/// A value with the name of its `data-type` case.
fn tagged(value: &Value) -> Json {
    let (case, value) = match value {
        Value::Int32(n) => ("int32", json!(n)),
        Value::Int64(n) => ("int64", json!(n)),
        Value::Uint32(n) => ("uint32", json!(n)),
        Value::Uint64(n) => ("uint64", json!(n)),
        Value::Float(x) => ("float", json!(x)),
        Value::Double(x) => ("double", json!(x)),
        Value::Str(text) => ("str", json!(text)),
        Value::Boolean(b) => ("boolean", json!(b)),
        Value::Date(text) => ("date", json!(text)),
        Value::Time(text) => ("time", json!(text)),
        Value::Timestamp(text) => ("timestamp", json!(text)),
        Value::Binary(bytes) => ("binary", json!(bytes)),
        Value::Null => ("null", Json::Null),
    };
    json!({ case: value })
}

async fn exec(mut request: Request) -> Result<http::Json<Json>, http::Error> {
    let statement: Statement = request.json().await?;
    let changed = open(&request)?
        .exec(&statement.sql, &statement.params())
        .map_err(refused)?;
    Ok(http::Json(json!({ "changed": changed })))
}

async fn script(mut request: Request) -> Result<http::Json<Json>, http::Error> {
    let steps: Vec<Step> = request.json().await?;
    let db = open(&request)?;
    let mut changed = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let statement = match step {
            Step::Statement(statement) => statement,
            Step::WaitFor { wait_for } => {
                http::get(wait_for).await?;
                continue;
            }
        };
        let count = db
            .exec(&statement.sql, &statement.params())
            .map_err(|err| refused(format!("statement {index}: {err}")))?;
        changed.push(count);
    }
    Ok(http::Json(json!({ "changed": changed })))
}

//! A JSON API over a table of todos, on wasi:sql:
//!
//! - `GET /todos` lists them (`?done=true` or `?done=false` filters);
//! - `POST /todos` adds one: `{"title": "…"}`, answered `201` with the todo;
//! - `GET /todos/{id}` reads one; `PATCH /todos/{id}` sets `title` and/or `done`;
//!   `DELETE /todos/{id}` removes it.
//!
//! The same SQL runs on SQLite and PostgreSQL: parameters as `$N`, booleans stored as `1`/`0` in
//! a `BOOLEAN` column, and no backend's own functions.

use serde::Deserialize;
use serde_json::{Value, json};
use tempo_sdk::http::{Error, Json, ReadBody as _, Request, RequestExt as _, Router, StatusCode};
use tempo_sdk::sql::{Database, Param};

tempo_sdk::serve!(
    Router::new()
        .get("/todos", list)
        .post("/todos", add)
        .get("/todos/{id}", read)
        .patch("/todos/{id}", update)
        .delete("/todos/{id}", remove)
);

/// The `todos` database, with its table made on first use.
fn database() -> Result<Database, Error> {
    let db = Database::open("todos")?;
    db.exec(
        "CREATE TABLE IF NOT EXISTS todos (
            id BIGINT PRIMARY KEY,
            title TEXT NOT NULL,
            done BOOLEAN NOT NULL,
            created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
        )",
        &[],
    )?;
    Ok(db)
}

fn id(request: &Request) -> Result<i64, Error> {
    let id = request.param("id").unwrap_or_default();
    id.parse()
        .map_err(|_| Error::bad_request(format!("not a todo id: {id}")))
}

/// The todo `id` as JSON, if there is one.
fn find(db: &Database, id: i64) -> Result<Json<Value>, Error> {
    let rows = db.query("SELECT id, title, done FROM todos WHERE id = $1", &[&id])?;
    match rows.iter().next() {
        Some(row) => Ok(Json(todo(&row))),
        None => Err(Error::not_found(format!("no todo {id}"))),
    }
}

/// A row as the API shows it: `done` a boolean on both backends.
fn todo(row: &tempo_sdk::sql::Row<'_>) -> Value {
    let field = |name| row.get(name);
    json!({
        "id": field("id").and_then(|v| v.as_i64()),
        "title": field("title").and_then(|v| v.as_str()),
        "done": field("done").and_then(|v| v.as_bool()),
    })
}

async fn list(request: Request) -> Result<Json<Value>, Error> {
    let db = database()?;
    let done = match request.uri().query() {
        Some("done=true") => Some(true),
        Some("done=false") => Some(false),
        None | Some("") => None,
        Some(other) => return Err(Error::bad_request(format!("unknown filter: {other}"))),
    };
    let rows = match done {
        Some(done) => db.query(
            "SELECT id, title, done FROM todos WHERE done = $1 ORDER BY id",
            &[&done],
        )?,
        None => db.query("SELECT id, title, done FROM todos ORDER BY id", &[])?,
    };
    Ok(Json(rows.iter().map(|row| todo(&row)).collect()))
}

#[derive(Deserialize)]
struct NewTodo {
    title: String,
}

async fn add(mut request: Request) -> Result<(StatusCode, Json<Value>), Error> {
    let new: NewTodo = request.json().await?;
    let db = database()?;
    let rows = db.query(
        "INSERT INTO todos (id, title, done) SELECT COALESCE(MAX(id), 0) + 1, $1, $2 FROM todos \
         RETURNING id",
        &[&new.title, &false],
    )?;
    let id = rows
        .iter()
        .next()
        .and_then(|row| row.get("id")?.as_i64())
        .ok_or_else(|| Error::internal("the insert returned no id"))?;
    Ok((StatusCode::CREATED, find(&db, id)?))
}

async fn read(request: Request) -> Result<Json<Value>, Error> {
    find(&database()?, id(&request)?)
}

#[derive(Deserialize)]
struct Change {
    title: Option<String>,
    done: Option<bool>,
}

async fn update(mut request: Request) -> Result<Json<Value>, Error> {
    let change: Change = request.json().await?;
    let id = id(&request)?;
    let db = database()?;
    // One statement: both columns keep their value unless the change names them.
    let title: &dyn Param = match &change.title {
        Some(title) => title,
        None => &"",
    };
    let done: &dyn Param = match &change.done {
        Some(done) => done,
        None => &-1,
    };
    let changed = db.exec(
        "UPDATE todos SET
            title = CASE WHEN $2 = '' THEN title ELSE $2 END,
            done = CASE WHEN CAST($3 AS INTEGER) = -1 THEN done ELSE CAST($3 AS INTEGER) = 1 END
         WHERE id = $1",
        &[&id, title, done],
    )?;
    if changed == 0 {
        return Err(Error::not_found(format!("no todo {id}")));
    }
    find(&db, id)
}

async fn remove(request: Request) -> Result<StatusCode, Error> {
    let id = id(&request)?;
    match database()?.exec("DELETE FROM todos WHERE id = $1", &[&id])? {
        0 => Err(Error::not_found(format!("no todo {id}"))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

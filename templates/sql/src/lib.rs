//! A wasi:http component on wasi:sql: notes in a table. `GET /notes` lists them, `POST /notes`
//! adds one (`{"text": "…"}`), `GET` and `DELETE /notes/{id}` read and remove one.

use serde_json::{Value, json};
use tempo_sdk::http::{Error, Json, ReadBody as _, Request, RequestExt as _, Router, StatusCode};
use tempo_sdk::sql::Database;

tempo_sdk::serve!(routes());

/// Every route; a path no route matches is a 404, another method a 405.
pub fn routes() -> Router {
    Router::new()
        .get("/", |_| async {
            Json(json!({ "routes": ["GET /notes", "POST /notes", "GET /notes/{id}", "DELETE /notes/{id}"] }))
        })
        .get("/notes", list)
        .post("/notes", add)
        .get("/notes/{id}", read)
        .delete("/notes/{id}", remove)
}

/// The `main` database (see tempo.toml), with its table made if it is not there yet. The SQL
/// is the same on SQLite and PostgreSQL.
fn database() -> Result<Database, Error> {
    let db = Database::open("main")?;
    db.exec(
        "CREATE TABLE IF NOT EXISTS notes (id BIGINT PRIMARY KEY, text TEXT NOT NULL)",
        &[],
    )?;
    Ok(db)
}

/// The `{id}` of the path, as a number.
fn id(request: &Request) -> Result<i64, Error> {
    let id = request.param("id").unwrap_or_default();
    id.parse()
        .map_err(|_| Error::bad_request(format!("not a note id: {id}")))
}

async fn list(_: Request) -> Result<Json<Value>, Error> {
    let rows = database()?.query("SELECT id, text FROM notes ORDER BY id", &[])?;
    Ok(Json(rows.to_json()))
}

async fn add(mut request: Request) -> Result<(StatusCode, Json<Value>), Error> {
    let note: Value = request.json().await?;
    let Some(text) = note["text"].as_str() else {
        return Err(Error::bad_request("expected {\"text\": \"…\"}"));
    };
    // Parameters are bound by the database: the text is never part of the SQL.
    let rows = database()?.query(
        "INSERT INTO notes (id, text) SELECT COALESCE(MAX(id), 0) + 1, $1 FROM notes RETURNING id",
        &[&text],
    )?;
    let id = rows.iter().next().and_then(|row| row.get("id")?.as_i64());
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "text": text }))))
}

async fn read(request: Request) -> Result<Json<Value>, Error> {
    let id = id(&request)?;
    let rows = database()?.query("SELECT id, text FROM notes WHERE id = $1", &[&id])?;
    match rows.iter().next() {
        Some(row) => Ok(Json(row.to_json())),
        None => Err(Error::not_found(format!("no note {id}"))),
    }
}

async fn remove(request: Request) -> Result<StatusCode, Error> {
    let id = id(&request)?;
    match database()?.exec("DELETE FROM notes WHERE id = $1", &[&id])? {
        0 => Err(Error::not_found(format!("no note {id}"))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// `cargo tempo test` runs these on tempo's runtime, with a fresh database.
#[cfg(test)]
mod tests {
    use super::*;
    use tempo_sdk::http::{Body, Handler as _, Method, request};

    /// What the routes answer to `method path` with `body`: the status and the body as JSON.
    fn call(method: Method, path: &str, body: &str) -> (StatusCode, Value) {
        tempo_sdk::block_on(async {
            let request = request(method, path).body(Body::from(body)).unwrap();
            let mut response = routes().call(request).await;
            let bytes = response.bytes().await.unwrap();
            (response.status(), serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        })
    }

    #[test]
    fn notes_are_added_listed_read_and_removed() {
        let (status, added) = call(Method::POST, "/notes", r#"{"text": "it's; DROP TABLE notes"}"#);
        assert_eq!(status, StatusCode::CREATED);
        let id = added["id"].as_i64().unwrap();
        let (_, note) = call(Method::GET, &format!("/notes/{id}"), "");
        assert_eq!(note["text"], "it's; DROP TABLE notes");
        let (_, all) = call(Method::GET, "/notes", "");
        assert!(all.as_array().unwrap().contains(&note));
        assert_eq!(call(Method::DELETE, &format!("/notes/{id}"), "").0, StatusCode::NO_CONTENT);
        assert_eq!(call(Method::GET, &format!("/notes/{id}"), "").0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_bad_note_is_refused() {
        assert_eq!(call(Method::POST, "/notes", r#"{"body": 1}"#).0, StatusCode::BAD_REQUEST);
        assert_eq!(call(Method::GET, "/notes/first", "").0, StatusCode::BAD_REQUEST);
    }
}

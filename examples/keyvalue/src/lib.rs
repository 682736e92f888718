//! A visit counter and JSON documents by key, on `wasi:keyvalue`:
//!
//! - `GET /` counts a visit and answers `{"message": …, "visits": N}`;
//! - `PUT /docs/{id}` stores a JSON document, `GET /docs/{id}` returns it, `DELETE /docs/{id}`
//!   removes it, `GET /docs` lists the ids.
//!
//! Documents are stored under `docs.{id}` in the `default` bucket: on NATS,
//! `nats kv get default docs.{id}` shows them.

use serde_json::{Value, json};
use tempo_sdk::http::{Error, Json, ReadBody as _, Request, RequestExt as _, Router, StatusCode};
use tempo_sdk::keyvalue::Bucket;

const WELCOME: &str = "Welcome to the keyvalue example";
const DOCS: &str = "docs.";

tempo_sdk::serve!(
    Router::new()
        .get("/", visit)
        .get("/docs", ids)
        .get("/docs/{id}", read)
        .put("/docs/{id}", write)
        .delete("/docs/{id}", delete)
);

fn bucket() -> Result<Bucket, Error> {
    Ok(Bucket::open("default")?)
}

fn key(request: &Request) -> String {
    format!("{DOCS}{}", request.param("id").unwrap_or_default())
}

async fn visit(_: Request) -> Result<Json<Value>, Error> {
    let visits = bucket()?.increment("visits", 1)?;
    Ok(Json(json!({ "message": WELCOME, "visits": visits })))
}

/// The ids of every stored document, through every page of keys.
async fn ids(_: Request) -> Result<Json<Value>, Error> {
    let mut ids = Vec::new();
    for key in bucket()?.keys() {
        if let Some(id) = key?.strip_prefix(DOCS) {
            ids.push(id.to_owned());
        }
    }
    Ok(Json(json!({ "ids": ids })))
}

async fn read(request: Request) -> Result<Json<Value>, Error> {
    let id = request.param("id").unwrap_or_default();
    match bucket()?.get_json::<Value>(&key(&request))? {
        Some(document) => Ok(Json(document)),
        None => Err(Error::not_found(format!("no such document: {id}"))),
    }
}

async fn write(mut request: Request) -> Result<(StatusCode, Json<Value>), Error> {
    let document: Value = request.json().await?;
    bucket()?.set_json(&key(&request), &document)?;
    let id = request.param("id").unwrap_or_default();
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn delete(request: Request) -> Result<(), Error> {
    bucket()?.delete(&key(&request))?;
    Ok(())
}

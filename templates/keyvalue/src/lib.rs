//! A wasi:http component on wasi:keyvalue: `GET /` counts visits; `GET`, `PUT` and `DELETE
//! /kv/{key}` read, write and delete values.

use serde_json::{Value, json};
use tempo_sdk::http::{Error, Json, ReadBody as _, Request, RequestExt as _, Router};
use tempo_sdk::keyvalue::Bucket;

tempo_sdk::serve!(routes());

/// Every route; a path no route matches is a 404, another method a 405.
pub fn routes() -> Router {
    Router::new()
        .get("/", visit)
        .get("/kv/{key}", read)
        .put("/kv/{key}", write)
        .delete("/kv/{key}", delete)
}

/// The `default` bucket: in `.tempo/` on the embedded store, or in NATS JetStream.
fn bucket() -> Result<Bucket, Error> {
    Ok(Bucket::open("default")?)
}

async fn visit(_: Request) -> Result<Json<Value>, Error> {
    let visits = bucket()?.increment("visits", 1)?;
    Ok(Json(json!({ "visits": visits })))
}

async fn read(request: Request) -> Result<Vec<u8>, Error> {
    let key = request.param("key").unwrap_or_default();
    bucket()?
        .get(key)?
        .ok_or_else(|| Error::not_found(format!("no such key: {key}")))
}

async fn write(mut request: Request) -> Result<(), Error> {
    let value = request.bytes().await?;
    bucket()?.set(request.param("key").unwrap_or_default(), value)?;
    Ok(())
}

async fn delete(request: Request) -> Result<(), Error> {
    bucket()?.delete(request.param("key").unwrap_or_default())?;
    Ok(())
}

/// `cargo tempo test` runs these on tempo's runtime, with a fresh store.
#[cfg(test)]
mod tests {
    use super::*;
    use tempo_sdk::http::{Body, Handler as _, Method, StatusCode, request};

    /// What the routes answer to `method path` with `body`: the status and the body.
    fn call(method: Method, path: &str, body: &str) -> (StatusCode, Vec<u8>) {
        tempo_sdk::block_on(async {
            let request = request(method, path).body(Body::from(body)).unwrap();
            let mut response = routes().call(request).await;
            (response.status(), response.bytes().await.unwrap())
        })
    }

    #[test]
    fn visits_count_up() {
        let (_, first) = call(Method::GET, "/", "");
        let first: Value = serde_json::from_slice(&first).unwrap();
        let (status, second) = call(Method::GET, "/", "");
        let second: Value = serde_json::from_slice(&second).unwrap();
        assert_eq!(status, 200);
        assert_eq!(second["visits"], first["visits"].as_u64().unwrap() + 1);
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(call(Method::GET, "/kv/greeting", "").0, 404);
        assert_eq!(call(Method::PUT, "/kv/greeting", "hello").0, 204);
        assert_eq!(
            call(Method::GET, "/kv/greeting", ""),
            (StatusCode::OK, b"hello".to_vec())
        );
        assert_eq!(call(Method::DELETE, "/kv/greeting", "").0, 204);
        assert_eq!(call(Method::GET, "/kv/greeting", "").0, 404);
    }
}

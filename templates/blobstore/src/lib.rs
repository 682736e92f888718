//! A wasi:http component on wasi:blobstore: `PUT /files/{name}` stores the body as it streams in,
//! `GET /files/{name}` returns it, `DELETE /files/{name}` removes it.

use serde_json::{Value, json};
use tempo_sdk::blobstore::Container;
use tempo_sdk::http::{Error, Json, ReadBody as _, Request, RequestExt as _, Router, StatusCode};

tempo_sdk::serve!(routes());

/// Every route; a path no route matches is a 404, another method a 405.
pub fn routes() -> Router {
    Router::new()
        .get("/files/{name}", download)
        .put("/files/{name}", upload)
        .delete("/files/{name}", remove)
}

/// The `files` container, created on first use.
fn files() -> Result<Container, Error> {
    Ok(Container::open_or_create("files")?)
}

async fn download(request: Request) -> Result<Vec<u8>, Error> {
    let name = request.param("name").unwrap_or_default();
    let files = files()?;
    if !files.has(name)? {
        return Err(Error::not_found(format!("no such file: {name}")));
    }
    Ok(files.read(name)?)
}

/// Writes the body into the container as it arrives, never holding all of it.
async fn upload(mut request: Request) -> Result<(StatusCode, Json<Value>), Error> {
    let name = request.param("name").unwrap_or_default().to_owned();
    let mut writer = files()?.writer(&name)?;
    request.copy_to(&mut writer).await?;
    writer.finish()?;
    Ok((StatusCode::CREATED, Json(json!({ "name": name }))))
}

async fn remove(request: Request) -> Result<(), Error> {
    files()?.delete_object(request.param("name").unwrap_or_default())?;
    Ok(())
}

/// `cargo tempo test` runs these on tempo's runtime, with a fresh store.
#[cfg(test)]
mod tests {
    use super::*;
    use tempo_sdk::http::{Body, Handler as _, Method, request};

    fn call(method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        tempo_sdk::block_on(async {
            let request = request(method, path).body(Body::from(body)).unwrap();
            let mut response = routes().call(request).await;
            (response.status(), response.bytes().await.unwrap())
        })
    }

    #[test]
    fn files_round_trip() {
        assert_eq!(call(Method::GET, "/files/a.txt", vec![]).0, 404);
        assert_eq!(call(Method::PUT, "/files/a.txt", b"hello".to_vec()).0, 201);
        assert_eq!(
            call(Method::GET, "/files/a.txt", vec![]),
            (StatusCode::OK, b"hello".to_vec())
        );
        assert_eq!(
            call(Method::PUT, "/files/a.txt", b"replaced".to_vec()).0,
            201
        );
        assert_eq!(call(Method::GET, "/files/a.txt", vec![]).1, b"replaced");
        assert_eq!(call(Method::DELETE, "/files/a.txt", vec![]).0, 204);
        assert_eq!(call(Method::GET, "/files/a.txt", vec![]).0, 404);
    }

    #[test]
    fn large_files_stream_through() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        assert_eq!(call(Method::PUT, "/files/large.bin", data.clone()).0, 201);
        assert_eq!(call(Method::GET, "/files/large.bin", vec![]).1, data);
    }
}

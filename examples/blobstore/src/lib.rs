//! Upload and download files over HTTP, on `wasi:blobstore`:
//!
//! - `PUT /files/{name}` stores the request body as `{name}` in the `files` container, as it
//!   streams in;
//! - `GET /files/{name}` returns it (a `Range: bytes=A-B` header gets those bytes, 206);
//! - `DELETE /files/{name}` removes it; `GET /files` lists the names and sizes.
//!
//! On NATS the container is a JetStream object store: `nats object get files {name}`.

use serde_json::{Value, json};
use tempo_sdk::blobstore::Container;
use tempo_sdk::http::{Error, Json, ReadBody as _, Request, RequestExt as _, Router, StatusCode};

tempo_sdk::serve!(
    Router::new()
        .get("/files", list)
        .get("/files/{name}", download)
        .put("/files/{name}", upload)
        .delete("/files/{name}", remove)
);

/// The `files` container, created on first use.
fn files() -> Result<Container, Error> {
    Ok(Container::open_or_create("files")?)
}

async fn list(_: Request) -> Result<Json<Value>, Error> {
    let files = files()?;
    let mut listed = Vec::new();
    for name in files.list()? {
        let size = files.info(&name)?.size;
        listed.push(json!({ "name": name, "size": size }));
    }
    Ok(Json(json!({ "files": listed })))
}

async fn download(request: Request) -> Result<(StatusCode, Vec<u8>), Error> {
    let name = request.param("name").unwrap_or_default();
    let files = files()?;
    if !files.has(name)? {
        return Err(Error::not_found(format!("no such file: {name}")));
    }
    match range(&request) {
        Some((start, end)) => match files.read_range(name, start, end) {
            Ok(bytes) => Ok((StatusCode::PARTIAL_CONTENT, bytes)),
            Err(err) => Err(Error::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                err.to_string(),
            )),
        },
        None => Ok((StatusCode::OK, files.read(name)?)),
    }
}

/// Writes the body into the container as it arrives, never holding all of it.
async fn upload(mut request: Request) -> Result<(StatusCode, Json<Value>), Error> {
    let name = request.param("name").unwrap_or_default().to_owned();
    let mut writer = files()?.writer(&name)?;
    let size = request.copy_to(&mut writer).await?;
    writer.finish()?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "size": size })),
    ))
}

async fn remove(request: Request) -> Result<(), Error> {
    files()?.delete_object(request.param("name").unwrap_or_default())?;
    Ok(())
}

/// `Range: bytes=A-B` (or `bytes=A-`) as inclusive offsets.
fn range(request: &Request) -> Option<(u64, u64)> {
    let value = request.headers().get("range")?.to_str().ok()?;
    let (start, end) = value.strip_prefix("bytes=")?.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => u64::MAX,
        end => end.parse().ok()?,
    };
    Some((start, end))
}

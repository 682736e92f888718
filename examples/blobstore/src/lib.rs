//! Upload and download files over HTTP, on `wasi:blobstore`:
//!
//! - `PUT /files/{name}` stores the request body as `{name}` in the `files` container;
//! - `GET /files/{name}` returns it (a `Range: bytes=A-B` header gets those bytes, 206);
//! - `DELETE /files/{name}` removes it; `GET /files` lists the names and sizes.
//!
//! On NATS the container is a JetStream object store: `nats object get files {name}`.

wit_bindgen::generate!({
    world: "tempo:host/http-blobstore",
    path: "../../wit",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use serde_json::json;
use wasi::blobstore::{blobstore, container, types};
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::{OutputStream, StreamError};

const CONTAINER: &str = "files";

struct BlobstoreExample;

impl Guest for BlobstoreExample {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let path = path.split('?').next().unwrap_or("/").to_owned();
        let (status, content_type, body) = route(request, &path).unwrap_or_else(|err| json_reply(500, json!({ "error": err })));
        respond(response_out, status, content_type, &body);
    }
}

export!(BlobstoreExample);

type Reply = (u16, &'static str, Vec<u8>);

fn json_reply(status: u16, value: serde_json::Value) -> Reply {
    (status, "application/json", value.to_string().into_bytes())
}

fn route(request: IncomingRequest, path: &str) -> Result<Reply, String> {
    let files = match blobstore::container_exists(CONTAINER)? {
        true => blobstore::get_container(CONTAINER)?,
        false => blobstore::create_container(CONTAINER)?,
    };
    let name = path.strip_prefix("/files/").filter(|name| !name.is_empty());
    Ok(match (request.method(), path, name) {
        (Method::Get, "/files", _) => {
            let mut listed = Vec::new();
            for name in all_names(&files)? {
                let size = files.object_info(&name)?.size;
                listed.push(json!({ "name": name, "size": size }));
            }
            json_reply(200, json!({ "files": listed }))
        }
        (Method::Put, _, Some(name)) => {
            let body = read_body(request)?;
            let size = body.len();
            upload(&files, name, &body)?;
            json_reply(201, json!({ "name": name, "size": size }))
        }
        (Method::Get, _, Some(name)) if !files.has_object(name)? => {
            json_reply(404, json!({ "error": "no such file", "name": name }))
        }
        (Method::Get, _, Some(name)) => match range_header(&request) {
            Some((start, end)) => match files.get_data(name, start, end) {
                Ok(value) => (206, "application/octet-stream", types::IncomingValue::incoming_value_consume_sync(value)?),
                Err(err) => json_reply(416, json!({ "error": err })),
            },
            None => {
                let value = files.get_data(name, 0, u64::MAX)?;
                (200, "application/octet-stream", types::IncomingValue::incoming_value_consume_sync(value)?)
            }
        },
        (Method::Delete, _, Some(name)) => {
            files.delete_object(name)?;
            (204, "application/json", Vec::new())
        }
        _ => json_reply(404, json!({ "error": "not found", "path": path })),
    })
}

/// Every object name in the container, read from its stream of names.
fn all_names(files: &container::Container) -> Result<Vec<String>, String> {
    let stream = files.list_objects()?;
    let mut names = Vec::new();
    loop {
        let (batch, end) = stream.read_stream_object_names(100)?;
        names.extend(batch);
        if end {
            return Ok(names);
        }
    }
}

/// Writes `data` as `name` through an outgoing value.
fn upload(files: &container::Container, name: &str, data: &[u8]) -> Result<(), String> {
    let value = types::OutgoingValue::new_outgoing_value();
    let stream = value.outgoing_value_write_body().map_err(|()| "the value's body was taken")?;
    write_all(&stream, data)?;
    drop(stream);
    files.write_data(name, &value)?;
    types::OutgoingValue::finish(value)
}

/// `Range: bytes=A-B` (or `bytes=A-`) as inclusive offsets.
fn range_header(request: &IncomingRequest) -> Option<(u64, u64)> {
    let values = request.headers().get("range");
    let value = std::str::from_utf8(values.first()?).ok()?;
    let (start, end) = value.strip_prefix("bytes=")?.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => u64::MAX,
        end => end.parse().ok()?,
    };
    Some((start, end))
}

/// The whole request body.
fn read_body(request: IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request.consume().map_err(|()| "the body was already read")?;
    let stream = body.stream().map_err(|()| "the body was already read")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(err)) => return Err(err.to_debug_string()),
        }
    }
}

/// Writes `data` to `stream`, at most 4096 bytes at a time as blocking writes allow.
fn write_all(stream: &OutputStream, data: &[u8]) -> Result<(), String> {
    for chunk in data.chunks(4096) {
        stream.blocking_write_and_flush(chunk).map_err(|err| match err {
            StreamError::LastOperationFailed(err) => err.to_debug_string(),
            StreamError::Closed => "the stream closed".to_owned(),
        })?;
    }
    Ok(())
}

/// Sends `body` with `status` and `content_type`.
fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), content_type.as_bytes().to_vec())])
        .expect("a valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("the stream is taken once");
    write_all(&stream, body).expect("write the body");
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish the body");
}

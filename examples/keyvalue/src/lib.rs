//! A visit counter and JSON documents by key, on `wasi:keyvalue`:
//!
//! - `GET /` counts a visit and answers `{"message": …, "visits": N}`;
//! - `PUT /docs/{id}` stores a JSON document, `GET /docs/{id}` returns it, `DELETE /docs/{id}`
//!   removes it, `GET /docs` lists the ids.
//!
//! Documents are stored under `docs.{id}` in the `default` bucket: on NATS,
//! `nats kv get default docs.{id}` shows them.

wit_bindgen::generate!({
    world: "tempo:host/http-keyvalue",
    path: "../../wit",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use serde_json::{Value, json};
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;
use wasi::keyvalue::{atomics, store};

const WELCOME: &str = "Welcome to the keyvalue example";
const DOCS: &str = "docs.";

struct KeyValueExample;

impl Guest for KeyValueExample {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let path = path.split('?').next().unwrap_or("/").to_owned();
        let reply = route(request, &path).unwrap_or_else(|err| (500, json!({ "error": err })));
        let body = if reply.1.is_null() { Vec::new() } else { reply.1.to_string().into_bytes() };
        respond(response_out, reply.0, &body);
    }
}

export!(KeyValueExample);

fn route(request: IncomingRequest, path: &str) -> Result<(u16, Value), String> {
    let bucket = store::open("default").map_err(describe)?;
    let id = path.strip_prefix("/docs/").filter(|id| !id.is_empty());
    Ok(match (request.method(), path, id) {
        (Method::Get, "/", _) => {
            let visits = atomics::increment(&bucket, "visits", 1).map_err(describe)?;
            (200, json!({ "message": WELCOME, "visits": visits }))
        }
        (Method::Get, "/docs", _) => (200, json!({ "ids": ids(&bucket)? })),
        (Method::Get, _, Some(id)) => match bucket.get(&format!("{DOCS}{id}")).map_err(describe)? {
            Some(document) => (200, serde_json::from_slice(&document).map_err(|e| e.to_string())?),
            None => (404, json!({ "error": "no such document", "id": id })),
        },
        (Method::Put, _, Some(id)) => {
            let body = read_body(request)?;
            match serde_json::from_slice::<Value>(&body) {
                Ok(document) => {
                    bucket.set(&format!("{DOCS}{id}"), document.to_string().as_bytes()).map_err(describe)?;
                    (201, json!({ "id": id }))
                }
                Err(err) => (400, json!({ "error": format!("the body is not JSON: {err}") })),
            }
        }
        (Method::Delete, _, Some(id)) => {
            bucket.delete(&format!("{DOCS}{id}")).map_err(describe)?;
            (204, Value::Null)
        }
        _ => (404, json!({ "error": "not found", "path": path })),
    })
}

/// The ids of every stored document, following `list-keys`' cursor through every page.
fn ids(bucket: &store::Bucket) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = bucket.list_keys(cursor).map_err(describe)?;
        ids.extend(page.keys.iter().filter_map(|key| key.strip_prefix(DOCS)).map(str::to_owned));
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(ids),
        }
    }
}

fn describe(err: store::Error) -> String {
    match err {
        store::Error::NoSuchStore => "no such bucket".to_owned(),
        store::Error::AccessDenied => "access denied".to_owned(),
        store::Error::Other(message) => message,
    }
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

/// Sends a JSON `body` with `status`.
fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"application/json".to_vec())])
        .expect("a valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("the stream is taken once");
    for chunk in body.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write the body");
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish the body");
}

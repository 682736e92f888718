//! A wasi:http component: `GET /` counts visits; `GET`, `PUT` and `DELETE /kv/{key}` read, write
//! and delete values.

mod store;

wit_bindgen::generate!({
    world: "tempo:host/http-keyvalue",
    path: "wit",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use serde_json::json;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let path = path.split('?').next().unwrap_or("/").to_owned();
        let key = path.strip_prefix("/kv/").filter(|key| !key.is_empty());
        let (status, content_type, body) = match (request.method(), path.as_str(), key) {
            (Method::Get, "/", _) => match store::record_visit() {
                Ok(visits) => (200, "application/json", json!({ "visits": visits }).to_string().into_bytes()),
                Err(err) => failure(&err),
            },
            (Method::Get, _, Some(key)) => match store::get(key) {
                Ok(Some(value)) => (200, "application/octet-stream", value),
                Ok(None) => (404, "application/json", json!({ "error": "no such key", "key": key }).to_string().into_bytes()),
                Err(err) => failure(&err),
            },
            (Method::Put, _, Some(key)) => match read_body(request).and_then(|value| store::put(key, &value)) {
                Ok(()) => (204, "application/json", Vec::new()),
                Err(err) => failure(&err),
            },
            (Method::Delete, _, Some(key)) => match store::delete(key) {
                Ok(()) => (204, "application/json", Vec::new()),
                Err(err) => failure(&err),
            },
            _ => (404, "application/json", json!({ "error": "not found", "path": path }).to_string().into_bytes()),
        };
        respond(response_out, status, content_type, &body);
    }
}

export!(Component);

/// A 500 naming what failed (the store may be unreachable, a value too large…).
fn failure(err: &str) -> (u16, &'static str, Vec<u8>) {
    (500, "application/json", json!({ "error": err }).to_string().into_bytes())
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

/// Sends `body` with `status` and `content_type`.
fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), content_type.as_bytes().to_vec())])
        .expect("a valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("the stream is taken once");
    // A stream accepts at most 4096 bytes per blocking write.
    for chunk in body.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write the body");
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish the body");
}

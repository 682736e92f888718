//! A wasi:http component: `PUT /files/{name}` stores the body, `GET /files/{name}` returns it,
//! `DELETE /files/{name}` removes it.

mod files;

wit_bindgen::generate!({
    world: "tempo:host/http-blobstore",
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
        let name = path.strip_prefix("/files/").filter(|name| !name.is_empty());
        let (status, content_type, body) = match (request.method(), name) {
            (Method::Get, Some(name)) => match files::load(name) {
                Ok(Some(data)) => (200, "application/octet-stream", data),
                Ok(None) => json_reply(404, json!({ "error": "no such file", "name": name })),
                Err(err) => json_reply(500, json!({ "error": err })),
            },
            (Method::Put, Some(name)) => match read_body(request).and_then(|body| files::save(name, &body)) {
                Ok(()) => json_reply(201, json!({ "name": name })),
                Err(err) => json_reply(500, json!({ "error": err })),
            },
            (Method::Delete, Some(name)) => match files::remove(name) {
                Ok(()) => (204, "application/json", Vec::new()),
                Err(err) => json_reply(500, json!({ "error": err })),
            },
            _ => json_reply(404, json!({ "error": "not found", "path": path })),
        };
        respond(response_out, status, content_type, &body);
    }
}

export!(Component);

fn json_reply(status: u16, value: serde_json::Value) -> (u16, &'static str, Vec<u8>) {
    (status, "application/json", value.to_string().into_bytes())
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

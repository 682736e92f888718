//! A wasi:http component: `GET /` lists the routes; `GET /hello/{name}` asks the `greet` subject
//! for a greeting, which this component's own wasi:messaging handler answers.

mod greetings;

wit_bindgen::generate!({
    world: "tempo:host/http-messaging",
    path: "wit",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest as HttpGuest;
use exports::wasi::messaging::incoming_handler::Guest as MessageGuest;
use serde_json::json;
use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::messaging::types::{Error, Message};

struct Component;

impl HttpGuest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let path = path.split('?').next().unwrap_or("/").to_owned();
        let (status, body) = match (request.method(), path.as_str()) {
            (Method::Get, "/") => (200, json!({ "routes": ["GET /", "GET /hello/{name}"] })),
            (Method::Get, _) if path.starts_with("/hello/") => {
                match greetings::ask(greetings::SUBJECT, &path["/hello/".len()..]) {
                    Ok(greeting) => (200, json!({ "greeting": greeting })),
                    Err(err) => (502, json!({ "error": err })),
                }
            }
            _ => (404, json!({ "error": "not found", "path": path })),
        };
        respond(response_out, status, body.to_string().as_bytes());
    }
}

impl MessageGuest for Component {
    fn handle(message: Message) -> Result<(), Error> {
        match message.topic().as_deref() {
            Some(greetings::SUBJECT) => greetings::answer(&message),
            topic => Err(Error::Other(format!("no handler for {topic:?}"))),
        }
    }
}

export!(Component);

/// Sends a JSON `body` with `status`.
fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"application/json".to_vec())])
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

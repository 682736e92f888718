//! Publish and subscribe on `wasi:messaging`:
//!
//! - `POST /publish` sends the request body to `events.in`;
//! - the handler, subscribed to `events.in`, upper-cases each message, sends it on to
//!   `events.out` and counts it in `wasi:keyvalue`;
//! - the handler, subscribed to `events.out` as well, keeps the latest message;
//! - `GET /stats` answers `{"handled": N, "last": "…"}`.
//!
//! The subscriptions are in `tempo.toml`. Under `cargo tempo dev` messages go through tempo's
//! embedded broker; with `NATS_ADDR` set they go through NATS, where `nats sub 'events.>'` shows
//! them, and every tempo process running this component shares the load.

wit_bindgen::generate!({
    world: "tempo:host/http-messaging",
    path: "../../wit",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest as HttpGuest;
use exports::wasi::messaging::incoming_handler::Guest as MessageGuest;
use serde_json::json;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;
use wasi::keyvalue::{atomics, store};
use wasi::messaging::producer;
use wasi::messaging::types::{Client, Error, Message};

const INBOX: &str = "events.in";
const OUTBOX: &str = "events.out";

struct PubSub;

impl HttpGuest for PubSub {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (status, body) = match (request.method(), path.as_str()) {
            (Method::Post, "/publish") => match read_body(request).and_then(|body| publish(body)) {
                Ok(bytes) => (202, json!({ "published": INBOX, "bytes": bytes })),
                Err(err) => (502, json!({ "error": err })),
            },
            (Method::Get, "/stats") => match stats() {
                Ok(stats) => (200, stats),
                Err(err) => (500, json!({ "error": err })),
            },
            _ => (404, json!({ "error": "not found", "routes": ["POST /publish", "GET /stats"] })),
        };
        respond(response_out, status, body.to_string().as_bytes());
    }
}

impl MessageGuest for PubSub {
    fn handle(message: Message) -> Result<(), Error> {
        let data = message.data();
        match message.topic().as_deref() {
            Some(INBOX) => {
                let shouted = Message::new(&data.to_ascii_uppercase());
                shouted.set_content_type("text/plain");
                shouted.add_metadata("transformed-from", INBOX);
                // Counted before it is sent on: whoever sees it on `events.out` sees it counted.
                atomics::increment(&bucket()?, "handled", 1).map_err(other)?;
                producer::send(&Client::connect("default")?, OUTBOX, shouted)
            }
            Some(OUTBOX) => bucket()?.set("last", &data).map_err(other),
            topic => Err(Error::Other(format!("no handler for {topic:?}"))),
        }
    }
}

export!(PubSub);

fn publish(body: Vec<u8>) -> Result<usize, String> {
    let bytes = body.len();
    let message = Message::new(&body);
    message.set_content_type("text/plain");
    let client = Client::connect("default").map_err(|err| format!("{err:?}"))?;
    producer::send(&client, INBOX, message).map_err(|err| format!("{err:?}"))?;
    Ok(bytes)
}

fn stats() -> Result<serde_json::Value, String> {
    let bucket = bucket().map_err(|err| format!("{err:?}"))?;
    // Adding nothing reads the counter, 0 before the first message.
    let handled = atomics::increment(&bucket, "handled", 0).map_err(|err| format!("{err:?}"))?;
    let last = bucket.get("last").map_err(|err| format!("{err:?}"))?;
    let last = last.map(|raw| String::from_utf8_lossy(&raw).into_owned());
    Ok(json!({ "handled": handled, "last": last }))
}

fn bucket() -> Result<store::Bucket, Error> {
    store::open("default").map_err(other)
}

fn other(err: store::Error) -> Error {
    Error::Other(format!("keyvalue: {err:?}"))
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

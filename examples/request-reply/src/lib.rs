//! Request and reply on `wasi:messaging`:
//!
//! - `GET /ask/{name}` sends `name` as a request to the `greet` subject and answers with the
//!   reply (504 when none comes within a second);
//! - the handler, subscribed to `greet` (see `tempo.toml`), replies `Hello, {name}!`.
//!
//! Under `cargo tempo dev` the request goes through tempo's embedded broker to the same
//! component; with `NATS_ADDR` set it goes through NATS, where `nats request greet Ada` is
//! answered too.

wit_bindgen::generate!({
    world: "tempo:host/http-messaging",
    path: "../../wit",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest as HttpGuest;
use exports::wasi::messaging::incoming_handler::Guest as MessageGuest;
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::messaging::request_reply::{self, RequestOptions};
use wasi::messaging::types::{Client, Error, Message};

const SUBJECT: &str = "greet";

struct RequestReply;

impl HttpGuest for RequestReply {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (status, body) = match path.strip_prefix("/ask/") {
            Some(name) if !name.is_empty() => match ask(name) {
                Ok(answer) => (200, answer),
                Err(Error::Timeout) => (504, "no answer within a second\n".to_owned()),
                Err(err) => (502, format!("the request failed: {err:?}\n")),
            },
            _ => (404, "try GET /ask/{name}\n".to_owned()),
        };
        respond(response_out, status, body.as_bytes());
    }
}

impl MessageGuest for RequestReply {
    fn handle(message: Message) -> Result<(), Error> {
        let name = String::from_utf8_lossy(&message.data()).into_owned();
        let answer = Message::new(format!("Hello, {name}!").as_bytes());
        answer.set_content_type("text/plain");
        request_reply::reply(&message, answer)
    }
}

export!(RequestReply);

/// Asks whoever answers on `greet`, waiting up to a second for the first reply.
fn ask(name: &str) -> Result<String, Error> {
    let client = Client::connect("default")?;
    let options = RequestOptions::new();
    options.set_timeout_ms(1000);
    let replies = request_reply::request(&client, SUBJECT, &Message::new(name.as_bytes()), Some(options))?;
    let reply = replies.first().ok_or(Error::Timeout)?;
    Ok(String::from_utf8_lossy(&reply.data()).into_owned())
}

/// Sends a plain-text `body` with `status`.
fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
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

//! Request and reply on `wasi:messaging`:
//!
//! - `GET /ask/{name}` sends `name` as a request to the `greet` subject and answers with the
//!   reply (504 when none comes within a second);
//! - the handler, subscribed to `greet` (see `tempo.toml`), replies `Hello, {name}!`.
//!
//! Under `cargo tempo dev` the request goes through tempo's embedded broker to the same
//! component; with `NATS_ADDR` set it goes through NATS, where `nats request greet Ada` is
//! answered too.

use std::time::Duration;

use tempo_sdk::http::{Error, Request, RequestExt as _, Router, StatusCode};
use tempo_sdk::messaging::{self, Message};

const SUBJECT: &str = "greet";

tempo_sdk::serve!(Router::new().get("/ask/{name}", ask));
tempo_sdk::handle_messages!(greet);

/// Asks whoever answers on `greet`, waiting up to a second for the first reply.
async fn ask(request: Request) -> Result<String, Error> {
    let name = request.param("name").unwrap_or_default();
    match messaging::request(SUBJECT, Message::new(name), Duration::from_secs(1)) {
        Ok(reply) => Ok(reply.text()),
        Err(messaging::Error::Timeout) => Err(Error::new(
            StatusCode::GATEWAY_TIMEOUT,
            "no answer within a second",
        )),
        Err(err) => Err(Error::new(
            StatusCode::BAD_GATEWAY,
            format!("the request failed: {err}"),
        )),
    }
}

fn greet(message: Message) -> Result<(), messaging::Error> {
    let name = message.text();
    message.reply(Message::new(format!("Hello, {name}!")).with_content_type("text/plain"))
}

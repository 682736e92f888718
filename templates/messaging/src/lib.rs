//! A wasi:http component that asks its own wasi:messaging handler for greetings: `GET
//! /hello/{name}` sends a request on `greet`; the handler, subscribed to `greet` in `tempo.toml`,
//! replies.

use std::time::Duration;

use serde_json::{Value, json};
use tempo_sdk::http::{Error, Json, Request, RequestExt as _, Router, StatusCode};
use tempo_sdk::messaging::{self, Message};

/// The subject greetings are asked for on.
pub const SUBJECT: &str = "greet";

tempo_sdk::serve!(routes());
tempo_sdk::handle_messages!(answer);

/// Every route; a path no route matches is a 404, another method a 405.
pub fn routes() -> Router {
    Router::new().get("/", index).get("/hello/{name}", hello)
}

async fn index(_: Request) -> Json<Value> {
    Json(json!({ "routes": ["GET /", "GET /hello/{name}"] }))
}

async fn hello(request: Request) -> Result<Json<Value>, Error> {
    let name = request.param("name").unwrap_or_default();
    let reply = messaging::request(SUBJECT, Message::new(name), Duration::from_secs(1))
        .map_err(|err| Error::new(StatusCode::BAD_GATEWAY, err.to_string()))?;
    Ok(Json(json!({ "greeting": reply.text() })))
}

/// What the handler answers to `name`.
pub fn greeting(name: &str) -> String {
    format!("Hello, {name}!")
}

/// Answers a request for a greeting.
fn answer(request: Message) -> Result<(), messaging::Error> {
    let reply = Message::new(greeting(&request.text())).with_content_type("text/plain");
    request.reply(reply)
}

/// `cargo tempo test` runs these on tempo's runtime and its embedded broker.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_name_the_guest() {
        assert_eq!(greeting("Ada"), "Hello, Ada!");
    }

    #[test]
    fn a_request_nobody_answers_says_so() {
        let err = messaging::request("nobody.home", Message::new("Ada"), Duration::from_secs(1));
        let err = err.err().unwrap().to_string();
        assert_eq!(err, "no one is subscribed to `nobody.home`");
    }

    #[test]
    fn a_message_that_was_not_a_request_cannot_be_answered() {
        let err = answer(Message::new("Ada")).unwrap_err().to_string();
        assert!(err.contains("no reply-to"), "{err}");
    }
}

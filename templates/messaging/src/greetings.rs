//! The greetings, asked for and answered over `wasi:messaging`. Tested with `cargo tempo test`,
//! which runs the tests on tempo's runtime with its embedded broker.

use crate::wasi::messaging::request_reply::{self, RequestOptions};
use crate::wasi::messaging::types::{Client, Error, Message};

/// The subject greetings are asked for on; `tempo.toml` subscribes the handler to it.
pub const SUBJECT: &str = "greet";

/// What the handler answers to `name`.
pub fn greeting(name: &str) -> String {
    format!("Hello, {name}!")
}

/// Asks whoever answers on `subject` to greet `name`, waiting up to a second.
pub fn ask(subject: &str, name: &str) -> Result<String, String> {
    let client = Client::connect("default").map_err(describe)?;
    let options = RequestOptions::new();
    options.set_timeout_ms(1000);
    let request = Message::new(name.as_bytes());
    let replies = request_reply::request(&client, subject, &request, Some(options)).map_err(describe)?;
    let reply = replies.first().ok_or("no reply")?;
    Ok(String::from_utf8_lossy(&reply.data()).into_owned())
}

/// Answers a request for a greeting.
pub fn answer(request: &Message) -> Result<(), Error> {
    let name = String::from_utf8_lossy(&request.data()).into_owned();
    let reply = Message::new(greeting(&name).as_bytes());
    reply.set_content_type("text/plain");
    request_reply::reply(request, reply)
}

fn describe(err: Error) -> String {
    match err {
        Error::Timeout => "no reply within a second".to_owned(),
        Error::Connection(message) | Error::PermissionDenied(message) | Error::Other(message) => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_name_the_guest() {
        assert_eq!(greeting("Ada"), "Hello, Ada!");
    }

    #[test]
    fn a_request_nobody_answers_says_so() {
        let err = ask("nobody.home", "Ada").unwrap_err();
        assert_eq!(err, "no one is subscribed to `nobody.home`");
    }

    #[test]
    fn a_message_that_was_not_a_request_cannot_be_answered() {
        let err = answer(&Message::new(b"Ada")).unwrap_err();
        assert!(matches!(err, Error::Other(ref m) if m.contains("no reply-to")), "{err:?}");
    }
}

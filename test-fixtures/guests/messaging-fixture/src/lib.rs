//! A `wasi:messaging` handler for the host's tests. What it does with a message depends on its
//! data:
//!
//! - `trap`: panics, so the instance traps;
//! - `loop`: computes for ever, until the host's deadline stops it;
//! - `fail`: returns an error;
//! - `sleep MS …`: waits MS milliseconds, then replies as to anything else;
//! - `ask SUBJECT N`: requests SUBJECT with a 2 s timeout and up to N replies, and replies
//!   `N': DATA,DATA,…` with the replies' data sorted (or `error: …`);
//! - `send SUBJECT KEY`: sends a message with the metadata `KEY: v` to SUBJECT, and replies
//!   `sent` or `error: …`;
//! - `count`: replies `count: N`, N counting the messages this instance handled (a static, so
//!   it shows whether an instance is reused);
//! - `forward SUBJECT ID`: sends `ID` to SUBJECT with the metadata it came with, and returns
//!   without a reply (an error if the send failed): a handler of published messages;
//! - anything else: replies `echo: DATA` with the message's content type, its metadata, and a
//!   `topic` entry naming the subject it came on.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "tempo:host/messaging",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::messaging::producer;
use wasi::messaging::request_reply::{self, RequestOptions};
use wasi::messaging::types::{Client, Error, Message};

struct Fixture;

impl Guest for Fixture {
    fn handle(message: Message) -> Result<(), Error> {
        let data = String::from_utf8_lossy(&message.data()).into_owned();
        let answer = match data.split(' ').collect::<Vec<_>>().as_slice() {
            ["trap"] => panic!("asked to trap"),
            ["loop"] => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            ["fail"] => return Err(Error::Other("asked to fail".into())),
            ["sleep", ms, ..] => {
                std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
                echo(&message, &data)
            }
            ["ask", subject, expected] => ask(subject, expected.parse().unwrap_or(1)),
            ["count"] => {
                static HANDLED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = HANDLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                Message::new(format!("count: {n}").as_bytes())
            }
            ["forward", subject, id] => {
                let client = Client::connect("default")?;
                let forwarded = Message::new(id.as_bytes());
                forwarded.set_metadata(&message.metadata().unwrap_or_default());
                return producer::send(&client, subject, forwarded);
            }
            ["send", subject, key] => {
                let sent = Client::connect("default").and_then(|client| {
                    let message = Message::new(b"sent by the fixture");
                    message.add_metadata(key, "v");
                    producer::send(&client, subject, message)
                });
                let text = match sent {
                    Ok(()) => "sent".to_owned(),
                    Err(err) => format!("error: {err:?}"),
                };
                Message::new(text.as_bytes())
            }
            _ => echo(&message, &data),
        };
        request_reply::reply(&message, answer)
    }
}

/// `echo: DATA`, with `message`'s content type and metadata and a `topic` entry.
fn echo(message: &Message, data: &str) -> Message {
    let echo = Message::new(format!("echo: {data}").as_bytes());
    if let Some(content_type) = message.content_type() {
        echo.set_content_type(&content_type);
    }
    echo.set_metadata(&message.metadata().unwrap_or_default());
    echo.add_metadata("topic", &message.topic().unwrap_or_default());
    echo
}

fn ask(subject: &str, expected: u32) -> Message {
    let text = match request(subject, expected) {
        Ok(mut replies) => {
            replies.sort();
            format!("{}: {}", replies.len(), replies.join(","))
        }
        Err(err) => format!("error: {err:?}"),
    };
    Message::new(text.as_bytes())
}

fn request(subject: &str, expected: u32) -> Result<Vec<String>, Error> {
    let client = Client::connect("default")?;
    let options = RequestOptions::new();
    options.set_timeout_ms(2000);
    options.set_expected_replies(expected);
    let replies = request_reply::request(&client, subject, &Message::new(b"?"), Some(options))?;
    Ok(replies
        .iter()
        .map(|reply| String::from_utf8_lossy(&reply.data()).into_owned())
        .collect())
}

export!(Fixture);

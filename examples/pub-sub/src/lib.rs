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

use serde_json::{Value, json};
use tempo_sdk::http::{Error, Json, ReadBody as _, Request, Router, StatusCode};
use tempo_sdk::keyvalue::Bucket;
use tempo_sdk::messaging::{self, Message};

const INBOX: &str = "events.in";
const OUTBOX: &str = "events.out";

tempo_sdk::serve!(Router::new().post("/publish", publish).get("/stats", stats));
tempo_sdk::handle_messages!(handle);

async fn publish(mut request: Request) -> Result<(StatusCode, Json<Value>), Error> {
    let body = request.bytes().await?;
    let bytes = body.len();
    messaging::send(INBOX, Message::new(body).with_content_type("text/plain"))
        .map_err(|err| Error::new(StatusCode::BAD_GATEWAY, err.to_string()))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "published": INBOX, "bytes": bytes })),
    ))
}

async fn stats(_: Request) -> Result<Json<Value>, Error> {
    let bucket = Bucket::open("default")?;
    // Adding nothing reads the counter, 0 before the first message.
    let handled = bucket.increment("handled", 0)?;
    let last = bucket
        .get("last")?
        .map(|raw| String::from_utf8_lossy(&raw).into_owned());
    Ok(Json(json!({ "handled": handled, "last": last })))
}

fn handle(message: Message) -> Result<(), messaging::Error> {
    let bucket = Bucket::open("default").map_err(keyvalue)?;
    match message.subject().as_deref() {
        Some(INBOX) => {
            let shouted = Message::new(message.data().to_ascii_uppercase())
                .with_content_type("text/plain")
                .with_metadata("transformed-from", INBOX);
            // Counted before it is sent on: whoever sees it on `events.out` sees it counted.
            bucket.increment("handled", 1).map_err(keyvalue)?;
            messaging::send(OUTBOX, shouted)
        }
        Some(OUTBOX) => bucket.set("last", message.data()).map_err(keyvalue),
        subject => Err(messaging::Error::Other(format!(
            "no handler for {subject:?}"
        ))),
    }
}

fn keyvalue(err: tempo_sdk::keyvalue::Error) -> messaging::Error {
    messaging::Error::Other(format!("keyvalue: {err}"))
}

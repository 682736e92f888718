//! A component written on tempo-sdk, for the tests of the SDK and of wasi:otel:
//!
//! - `GET /hello/{name}`: a span `hello` with a child span `compose`, a log line, the counter
//!   `sdk_fixture.greetings` and the histogram `sdk_fixture.name_length`; answers JSON;
//! - `GET|PUT|DELETE /kv/{key}`: JSON values in the `default` bucket; `POST /kv/{key}/incr`;
//! - `PUT|GET /blob/{name}`: the body streamed into and out of the `files` container;
//! - `POST /echo`: the request body streamed back;
//! - `GET /fetch?url=U`: GETs `U` inside a span `fetch`, answers `<status> <body>`;
//! - `GET /config/{key}`: a config value, 404 when it has none;
//! - `GET /fail`: a 500 from an `Error`;
//! - `POST /metric/{kind}/{name}`: adds 1 to counter `name`, or records 1 in gauge `name`;
//! - `GET /ask/{subject}`: a request on `subject`, answered with the reply's text;
//! - messages: `incr KEY` adds 1 to `KEY` in the `default` bucket (a handler of published
//!   messages whose work can be counted), `fail` returns an error, anything else is answered
//!   `sdk: DATA`.

use std::io::Read as _;
use std::time::Duration;

use serde_json::{Value, json};
use tempo_sdk::blobstore::Container;
use tempo_sdk::http::{self, Error, Json, ReadBody as _, Request, RequestExt as _, Router};
use tempo_sdk::keyvalue::Bucket;
use tempo_sdk::messaging::{self, Message};
use tempo_sdk::telemetry::metrics;
use tracing::{Instrument as _, info, info_span};

tempo_sdk::serve!(routes());
tempo_sdk::handle_messages!(handle_message);

fn routes() -> Router {
    Router::new()
        .get("/hello/{name}", hello)
        .get("/kv/{key}", kv_get)
        .put("/kv/{key}", kv_put)
        .delete("/kv/{key}", kv_delete)
        .post("/kv/{key}/incr", kv_incr)
        .put("/blob/{name}", blob_put)
        .get("/blob/{name}", blob_get)
        .post("/echo", echo)
        .get("/fetch", fetch)
        .get("/config/{key}", config)
        .get("/fail", |_| async {
            Err::<(), _>(Error::internal("it failed on purpose"))
        })
        .get("/ask/{subject}", ask)
        .post("/metric/{kind}/{name}", metric)
}

#[tracing::instrument(skip(request), fields(greeted))]
async fn hello(request: Request) -> Json<Value> {
    let name = request.param("name").unwrap_or("nobody").to_owned();
    tracing::Span::current().record("greeted", name.as_str());
    let greeting = compose(&name);
    info!(name = name.as_str(), "greeted {name}");
    metrics::counter("sdk_fixture.greetings")
        .with_description("Greetings made")
        .add(1, &[("route", "hello")]);
    metrics::histogram("sdk_fixture.name_length")
        .with_bounds(&[2.0, 4.0, 8.0])
        .record(name.len() as f64, &[]);
    Json(json!({ "greeting": greeting }))
}

#[tracing::instrument]
fn compose(name: &str) -> String {
    format!("Hello, {name}!")
}

async fn kv_get(request: Request) -> Result<Json<Value>, Error> {
    let key = request.param("key").unwrap_or_default();
    match Bucket::open("default")?.get_json::<Value>(key)? {
        Some(value) => Ok(Json(value)),
        None => Err(Error::not_found(format!("no value for {key}"))),
    }
}

async fn kv_put(mut request: Request) -> Result<(), Error> {
    let value: Value = request.json().await?;
    let key = request.param("key").unwrap_or_default();
    Bucket::open("default")?.set_json(key, &value)?;
    Ok(())
}

async fn kv_delete(request: Request) -> Result<(), Error> {
    Bucket::open("default")?.delete(request.param("key").unwrap_or_default())?;
    Ok(())
}

async fn kv_incr(request: Request) -> Result<String, Error> {
    let by = request
        .query_param("by")
        .and_then(|by| by.parse().ok())
        .unwrap_or(1);
    let value = Bucket::open("default")?.increment(request.param("key").unwrap_or_default(), by)?;
    Ok(value.to_string())
}

async fn blob_put(mut request: Request) -> Result<(), Error> {
    let name = request.param("name").unwrap_or_default().to_owned();
    let files = Container::open_or_create("files")?;
    let mut writer = files.writer(&name)?;
    request.copy_to(&mut writer).await?;
    writer.finish()?;
    Ok(())
}

async fn blob_get(request: Request) -> Result<Vec<u8>, Error> {
    let files = Container::open("files")?;
    let mut reader = files.reader(request.param("name").unwrap_or_default())?;
    let mut data = Vec::new();
    reader
        .read_to_end(&mut data)
        .map_err(|err| Error::internal(err.to_string()))?;
    Ok(data)
}

async fn echo(request: Request) -> http::Response {
    http::Response::new(request.into_body())
}

async fn fetch(request: Request) -> Result<String, Error> {
    let url = request
        .query_param("url")
        .ok_or_else(|| Error::bad_request("give ?url="))?;
    async move {
        let mut response = http::get(&url).await?;
        let body = response.bytes().await?;
        Ok(format!(
            "{} {}",
            response.status().as_u16(),
            String::from_utf8_lossy(&body)
        ))
    }
    .instrument(info_span!("fetch"))
    .await
}

async fn config(request: Request) -> Result<String, Error> {
    let key = request.param("key").unwrap_or_default();
    tempo_sdk::config::get(key)?.ok_or_else(|| Error::not_found(format!("no value for {key}")))
}

async fn ask(request: Request) -> Result<String, Error> {
    let subject = request.param("subject").unwrap_or_default();
    let reply = messaging::request(subject, Message::new("from http"), Duration::from_secs(2))?;
    Ok(reply.text())
}

async fn metric(request: Request) -> Result<(), Error> {
    let name = request.param("name").unwrap_or_default();
    match request.param("kind") {
        Some("counter") => metrics::counter(name).add(1, &[]),
        Some("gauge") => metrics::gauge(name).record(1.0, &[]),
        _ => return Err(Error::not_found("kinds: counter, gauge")),
    }
    Ok(())
}

fn handle_message(message: Message) -> Result<(), messaging::Error> {
    let text = message.text();
    if let Some(key) = text.strip_prefix("incr ") {
        return Bucket::open("default")
            .and_then(|bucket| bucket.increment(key, 1))
            .map(drop)
            .map_err(|err| messaging::Error::Other(format!("keyvalue: {err}")));
    }
    if text == "fail" {
        return Err(messaging::Error::Other("asked to fail".into()));
    }
    message.reply(Message::new(format!("sdk: {text}")))
}

//! Greets by name, with a greeting from `wasi:config`, and logs each request:
//!
//! - `GET /` and `GET /{name}` answer `{greeting}, {name}!` (`world` when no name is given);
//! - `GET /slow` waits 200 ms first, to show in the latency histogram.
//!
//! Under `cargo tempo dev`, each log line shows the component and the request id; `/metrics` on
//! the admin address counts the requests.

use std::time::Duration;

use tempo_sdk::http::{Request, RequestExt as _, Router};

tempo_sdk::serve!(
    Router::new()
        .get("/", greet)
        .get("/slow", slow)
        .get("/{name}", greet)
);

async fn slow(request: Request) -> String {
    tempo_sdk::sleep(Duration::from_millis(200)).await;
    greet(request).await
}

async fn greet(request: Request) -> String {
    let name = request.param("name").unwrap_or("world");
    let greeting = match tempo_sdk::config::get("greeting") {
        Ok(Some(greeting)) => greeting,
        Ok(None) => {
            tracing::warn!(target: "config", "no `greeting` is configured; using Hello");
            "Hello".to_owned()
        }
        Err(err) => {
            tracing::error!(target: "config", "cannot read `greeting`: {err}");
            "Hello".to_owned()
        }
    };
    tracing::info!(target: "greeter", "greeting {name}");
    format!("{greeting}, {name}!\n")
}

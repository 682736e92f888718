//! A WASI 0.3 HTTP component: an async handler (`wasi:http/handler@0.3.0`). Add routes to
//! [`route`]; a response whose body takes time is written by a task of its own ([`countdown`]).

use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use wasip3::clocks::monotonic_clock::wait_for;
use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::http_compat::{http_from_wasi_request, http_into_wasi_response};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(Component);

/// Requests this instance has handled. Tempo gives a WASI 0.3 instance many requests in turn
/// (`[http] instance-reuse`), so a static lives across them: keep nothing in one that a request
/// must not see from another.
static HANDLED: AtomicU64 = AtomicU64::new(0);

struct Component;

impl wasip3::exports::http::handler::Guest for Component {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let handled = HANDLED.fetch_add(1, Ordering::Relaxed) + 1;
        let request = http_from_wasi_request(request)?;
        let path = request.uri().path().to_owned();
        match (request.method().as_str(), path.as_str()) {
            // The request body streams straight back, as it arrives.
            ("POST", "/echo") => http_into_wasi_response(http::Response::new(request.into_body())),
            ("GET", "/countdown") => {
                let from = request.uri().query().and_then(|q| q.parse().ok());
                Ok(countdown(from.unwrap_or(5).min(100)))
            }
            (method, path) => http_into_wasi_response(route(method, path, handled)),
        }
    }
}

/// The answer to `METHOD path`, the instance's `handled`-th request.
pub fn route(method: &str, path: &str, handled: u64) -> http::Response<String> {
    let (status, body) = match (method, path) {
        ("GET", "/") => (
            StatusCode::OK,
            format!("Hello from {{name}}! This instance has handled {handled} requests.\n"),
        ),
        ("GET", path) => match path.strip_prefix("/hello/") {
            Some(name) if !name.is_empty() => (StatusCode::OK, format!("Hello, {name}!\n")),
            _ => (StatusCode::NOT_FOUND, format!("no route for {path}\n")),
        },
        _ => (StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed\n")),
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response
}

/// A response whose body is written after it has gone: a line every 200 ms from `from` down,
/// then `liftoff`. The instance keeps running until the body ends (or the client leaves).
fn countdown(from: u32) -> Response {
    let (mut body, reader) = wit_stream::new();
    let (trailers, result) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(reader), result);
    drop(trailers);
    wit_bindgen::spawn_local(async move {
        for n in (1..=from).rev() {
            // What the client did not take back means it has gone.
            if !body.write_all(format!("{n}\n").into_bytes()).await.is_empty() {
                return;
            }
            wait_for(200_000_000).await;
        }
        body.write_all(b"liftoff\n".to_vec()).await;
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_says_hello_and_counts_the_instances_requests() {
        let response = route("GET", "/", 3);
        assert_eq!(response.status(), 200);
        assert!(response.body().ends_with("has handled 3 requests.\n"));
    }

    #[test]
    fn hello_greets_by_name() {
        assert_eq!(route("GET", "/hello/Ada", 1).body(), "Hello, Ada!\n");
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        assert_eq!(route("GET", "/hello/", 1).status(), 404);
        assert_eq!(route("GET", "/nowhere", 1).status(), 404);
        assert_eq!(route("DELETE", "/", 1).status(), 405);
    }
}

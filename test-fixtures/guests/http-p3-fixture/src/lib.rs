//! A WASI 0.3 HTTP handler (`wasi:http/handler@0.3.0`), built with the `wasip3` crate:
//!
//! - `GET /count`: how many requests this instance has handled, this one included;
//! - `POST /echo`: the request body, streamed back as it arrives;
//! - `GET /stream?N`: N chunks of 1000 bytes, written after the response head has gone;
//! - `GET /fetch?URL`: GETs URL through `wasi:http/client`, answers its status, or fails with
//!   the error code the host gave;
//! - `GET /trap`: panics;
//! - `GET /spin`: computes for ever;
//! - `GET /stream-then-spin`: sends the head and 1000 bytes of body, then computes for ever;
//! - `GET /alloc?MIB`: allocates MIB mebibytes and answers their sum;
//! - `GET /hits`: increments `p3-hits` in the `default` bucket through wasi:keyvalue (a WASI 0.2
//!   interface, imported by a 0.3 component) and answers the new count;
//! - `POST /log?WORD`: prints `WORD begins as request N of this instance`, reads the request
//!   body to its end, then prints `WORD ends`: while it waits for the body, the instance can
//!   begin other requests;
//! - anything else: `p3 <path>`.

use std::sync::atomic::{AtomicU64, Ordering};

use http_body::Body as _;

use wasip3::http::types::{self, ErrorCode, Fields, Response};
use wasip3::http_compat::{
    http_from_wasi_request, http_into_wasi_request, http_into_wasi_response,
};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(Fixture);

mod keyvalue {
    wasip3::wit_bindgen::generate!({
        inline: "package tempo:http-p3-fixture; world kv { import wasi:keyvalue/atomics@0.2.0-draft; }",
        path: "../../../wit/deps/keyvalue",
        generate_all,
        runtime_path: "wasip3::wit_bindgen::rt",
    });
}

static HANDLED: AtomicU64 = AtomicU64::new(0);

struct Fixture;

impl wasip3::exports::http::handler::Guest for Fixture {
    async fn handle(request: types::Request) -> Result<types::Response, ErrorCode> {
        let handled = HANDLED.fetch_add(1, Ordering::Relaxed) + 1;
        let request = http_from_wasi_request(request)?;
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        match path.as_str() {
            "/count" => http_into_wasi_response(http::Response::new(handled.to_string())),
            "/echo" => http_into_wasi_response(http::Response::new(request.into_body())),
            "/stream" => Ok(stream(query.parse().unwrap_or(1), false)),
            "/stream-then-spin" => Ok(stream(1, true)),
            "/fetch" => fetch(&query).await,
            "/trap" => panic!("the fixture traps on purpose"),
            "/spin" => {
                let mut turns = 0u64;
                loop {
                    turns = std::hint::black_box(turns.wrapping_add(1));
                }
            }
            "/alloc" => {
                let bytes = vec![1u8; query.parse::<usize>().unwrap_or(1) << 20];
                let sum: u64 = std::hint::black_box(&bytes)
                    .iter()
                    .map(|&b| u64::from(b))
                    .sum();
                http_into_wasi_response(http::Response::new(sum.to_string()))
            }
            "/hits" => {
                use keyvalue::wasi::keyvalue::{atomics, store};
                let bucket = store::open("default").map_err(internal)?;
                let hits = atomics::increment(&bucket, "p3-hits", 1).map_err(internal)?;
                http_into_wasi_response(http::Response::new(hits.to_string()))
            }
            "/log" => {
                println!("{query} begins as request {handled} of this instance");
                let mut body = std::pin::pin!(request.into_body());
                while let Some(frame) =
                    std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await
                {
                    frame?;
                }
                println!("{query} ends");
                http_into_wasi_response(http::Response::new(String::new()))
            }
            _ => http_into_wasi_response(http::Response::new(format!("p3 {path}"))),
        }
    }
}

/// The host's error, as the guest's error code.
fn internal(err: impl std::fmt::Debug) -> ErrorCode {
    ErrorCode::InternalError(Some(format!("{err:?}")))
}

/// GETs `url` and answers with its status.
async fn fetch(url: &str) -> Result<Response, ErrorCode> {
    let outgoing = http::Request::get(url)
        .body(String::new())
        .map_err(|err| ErrorCode::InternalError(Some(err.to_string())))?;
    let answer = wasip3::http::client::send(http_into_wasi_request(outgoing)?).await?;
    let status = answer.get_status_code();
    http_into_wasi_response(http::Response::new(format!("fetched {status}")))
}

/// A response whose body is written by a task of its own, `chunks` times 1000 bytes; then, if
/// `spin`, the task computes for ever instead of ending the body.
fn stream(chunks: usize, spin: bool) -> Response {
    let (mut body_tx, body_rx) = wit_stream::new();
    let (result_tx, result_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(body_rx), result_rx);
    drop(result_tx);
    wit_bindgen::spawn_local(async move {
        for chunk in 0..chunks {
            let byte = b'a' + (chunk % 26) as u8;
            let left = body_tx.write_all(vec![byte; 1000]).await;
            if !left.is_empty() {
                return;
            }
        }
        let mut turns = 0u64;
        while spin {
            turns = std::hint::black_box(turns.wrapping_add(1));
        }
    });
    response
}

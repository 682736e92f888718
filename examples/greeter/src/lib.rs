//! Greets by name, with a greeting from `wasi:config`, and logs each request through
//! `wasi:logging`:
//!
//! - `GET /` and `GET /{name}` answer `{greeting}, {name}!` (`world` when no name is given);
//! - `GET /slow` waits 200 ms first, to show in the latency histogram.
//!
//! Under `cargo tempo dev`, each log line shows the component and the request id; `/metrics` on
//! the admin address counts the requests.

wit_bindgen::generate!({
    world: "tempo:host/http",
    path: "../../wit",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::config::store;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::logging::logging::{Level, log};

struct Greeter;

impl Guest for Greeter {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let path = path.split('?').next().unwrap_or("/");
        if path == "/slow" {
            wasi::clocks::monotonic_clock::subscribe_duration(200_000_000).block();
        }
        let name = match path.trim_start_matches('/') {
            "" | "slow" => "world",
            name => name,
        };
        let greeting = match store::get("greeting") {
            Ok(Some(greeting)) => greeting,
            Ok(None) => {
                log(
                    Level::Warn,
                    "config",
                    "no `greeting` is configured; using Hello",
                );
                "Hello".to_owned()
            }
            Err(err) => {
                log(
                    Level::Error,
                    "config",
                    &format!("cannot read `greeting`: {err:?}"),
                );
                "Hello".to_owned()
            }
        };
        log(Level::Info, "greeter", &format!("greeting {name}"));
        respond(response_out, 200, &format!("{greeting}, {name}!\n"));
    }
}

export!(Greeter);

fn respond(response_out: ResponseOutparam, status: u16, text: &str) {
    let headers = Fields::from_list(&[(
        "content-type".to_owned(),
        b"text/plain; charset=utf-8".to_vec(),
    )])
    .expect("a valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let body = response.body().expect("the body is taken once");
    ResponseOutparam::set(response_out, Ok(response));
    let stream = body.write().expect("the stream is taken once");
    stream
        .blocking_write_and_flush(text.as_bytes())
        .expect("write the body");
    drop(stream);
    OutgoingBody::finish(body, None).expect("finish the body");
}

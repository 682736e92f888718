//! A wasi:http guest that shows the host's tests what it can read through `wasi:config` and
//! writes through `wasi:logging`:
//!
//! - `GET /config/{key}`: 200 with the value, or 404 `undeclared` when the host has none;
//! - `GET /config`: every `key=value` the guest can see, one per line, sorted;
//! - `GET /env`: the guest's WASI environment variables, one per line;
//! - `GET /log`: logs `logged at info` (context `fixture`) and `logged at warn` through
//!   wasi:logging, and prints `printed on stdout`;
//! - `GET /forge`: logs and prints lines that try to forge another component's line (CR, LF),
//!   drive the terminal (ESC) and reorder text (a bidi override).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "tempo:host/http",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::config::store;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::logging::logging::{Level, log};

struct Fixture;

impl Guest for Fixture {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (status, body) = match path.as_str() {
            "/config" => match store::get_all() {
                Ok(mut pairs) => {
                    pairs.sort();
                    let lines: Vec<String> =
                        pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                    (200, lines.concat())
                }
                Err(err) => (500, format!("{err:?}")),
            },
            "/env" => {
                let lines: Vec<String> = wasi::cli::environment::get_environment()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect();
                (200, lines.concat())
            }
            "/log" => {
                log(Level::Info, "fixture", "logged at info");
                log(Level::Warn, "", "logged at warn");
                println!("printed on stdout");
                (200, "logged\n".to_owned())
            }
            "/forge" => {
                log(Level::Info, "ctx\u{1b}[31m", "first\r\n[other-app 0000] forged by logging");
                println!("\u{1b}[2Jprinted\r[other-app 0000] forged by stdout \u{202e}txt.exe");
                (200, "forged\n".to_owned())
            }
            _ => match path.strip_prefix("/config/") {
                Some(key) => match store::get(key) {
                    Ok(Some(value)) => (200, value),
                    Ok(None) => (404, "undeclared".to_owned()),
                    Err(err) => (500, format!("{err:?}")),
                },
                None => (404, "no such route".to_owned()),
            },
        };
        respond(out, status, body.as_bytes());
    }
}

export!(Fixture);

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).expect("valid status");
    let outgoing = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("stream taken once");
    stream.blocking_write_and_flush(body).expect("write body");
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish body");
}

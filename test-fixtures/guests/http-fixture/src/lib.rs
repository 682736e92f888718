//! A wasi:http guest for tempo's tests. Every answer carries the package name, so a test serving
//! `http-fixture` and then `http-fixture-v2` (the same source) can tell which one answered.

use std::io::Write as _;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam,
    Scheme,
};
use wasip2::io::streams::StreamError;

const NAME: &str = env!("CARGO_PKG_NAME");

struct Fixture;

wasip2::http::proxy::export!(Fixture);

impl wasip2::exports::http::incoming_handler::Guest for Fixture {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let url = query.strip_prefix("url=").unwrap_or_default();
        match path {
            "/trap" => panic!("trap requested"),
            "/trap-late" => {
                // The head and a first line go out, then the guest traps.
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().expect("body taken once");
                ResponseOutparam::set(out, Ok(response));
                let mut stream = body.write().expect("stream taken once");
                stream.write_all(b"a first line\n").expect("write body");
                stream.flush().expect("flush body");
                panic!("trap late");
            }
            "/stdout" => {
                println!("hello on stdout from {NAME}");
                eprintln!("hello on stderr from {NAME}");
                respond(out, 200, &[b"printed\n"]);
            }
            "/fetch" => match get(url) {
                Ok((status, body)) => respond(out, 200, &[format!("{status} {body}").as_bytes()]),
                Err(err) => respond(out, 502, &[err.as_bytes()]),
            },
            "/hold" => hold(out, url),
            "/forge" => {
                // Headers that are the host's to set.
                let headers = Fields::new();
                for name in ["x-tempo-stale", "x-request-id"] {
                    headers.append(name, b"forged").expect("a valid header");
                }
                let response = OutgoingResponse::new(headers);
                let body = response.body().expect("body taken once");
                ResponseOutparam::set(out, Ok(response));
                OutgoingBody::finish(body, None).expect("finish body");
            }
            "/echo" => echo(request, out),
            "/whoami" => {
                // What the host says of the connection: its scheme, the authority asked for,
                // and every client-certificate subject header the guest sees.
                let scheme = match request.scheme() {
                    Some(Scheme::Https) => "https".to_owned(),
                    Some(Scheme::Http) => "http".to_owned(),
                    Some(Scheme::Other(other)) => other,
                    None => "none".to_owned(),
                };
                let subjects: Vec<String> = request
                    .headers()
                    .get("x-client-cert-subject")
                    .iter()
                    .map(|value| String::from_utf8_lossy(value).into_owned())
                    .collect();
                let authority = request.authority().unwrap_or_default();
                let answer = format!("scheme={scheme} authority={authority} subjects={subjects:?}\n");
                respond(out, 200, &[answer.as_bytes()]);
            }
            "/resources" => {
                // Holds N header collections at once, each a resource in the host's table.
                let n: usize = query
                    .strip_prefix("n=")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let held: Vec<Fields> = (0..n).map(|_| Fields::new()).collect();
                respond(
                    out,
                    200,
                    &[format!("held {} resources\n", held.len()).as_bytes()],
                );
            }
            "/upload" => match drain(request) {
                Ok(bytes) => respond(out, 200, &[format!("received {bytes} bytes\n").as_bytes()]),
                Err(err) => respond(out, 400, &[err.as_bytes()]),
            },
            "/download" => {
                let mib: usize = query
                    .strip_prefix("mib=")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let block = [b'x'; 64 * 1024];
                let pieces = vec![&block[..]; mib * 16];
                respond(out, 200, &pieces);
            }
            "/loop" => {
                // Computes for ever: only the host's deadline stops it.
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/alloc" => {
                let mib: usize = query
                    .strip_prefix("mib=")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let block = vec![1u8; mib << 20];
                let sum: usize = block.iter().step_by(4096).map(|&b| usize::from(b)).sum();
                respond(
                    out,
                    200,
                    &[format!("allocated {mib} MiB ({sum} pages)\n").as_bytes()],
                );
            }
            _ => respond(out, 200, &[format!("{NAME} {target}\n").as_bytes()]),
        }
    }
}

/// Answers with `status` and the given body pieces, each flushed as it is written.
fn respond(out: ResponseOutparam, status: u16, pieces: &[&[u8]]) {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).expect("valid status");
    let body = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = body.write().expect("stream taken once");
    for piece in pieces {
        stream.write_all(piece).expect("write body");
        stream.flush().expect("flush body");
    }
    drop(stream);
    OutgoingBody::finish(body, None).expect("finish body");
}

/// Reads the request body to its end and returns its length.
fn drain(request: IncomingRequest) -> Result<usize, String> {
    let incoming = request.consume().expect("body taken once");
    let input = incoming.stream().expect("stream taken once");
    let mut bytes = 0;
    loop {
        match input.blocking_read(64 * 1024) {
            Ok(chunk) => bytes += chunk.len(),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(err)) => return Err(err.to_debug_string()),
        }
    }
}

/// Streams the request body back as it arrives. A body that fails to arrive (cut off, stalled)
/// leaves the response unfinished, which the host reports to the client as an error.
fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let incoming = request.consume().expect("body taken once");
    let input = incoming.stream().expect("stream taken once");
    let response = OutgoingResponse::new(Fields::new());
    let body = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut output = body.write().expect("stream taken once");
    loop {
        match input.blocking_read(64 * 1024) {
            Ok(chunk) => {
                let written = output.write_all(&chunk);
                if written
                    .and_then(|()| std::io::Write::flush(&mut output))
                    .is_err()
                {
                    return;
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(_)) => return,
        }
    }
    drop(output);
    OutgoingBody::finish(body, None).expect("finish body");
}

/// Sends the headers and a first line, waits for `url` to answer, then sends the last line.
fn hold(out: ResponseOutparam, url: &str) {
    let response = OutgoingResponse::new(Fields::new());
    let body = response.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = body.write().expect("stream taken once");
    writeln!(stream, "{NAME}:held").expect("write body");
    stream.flush().expect("flush body");
    let released = match get(url) {
        Ok((status, _)) => format!("{NAME}:released:{status}"),
        Err(err) => format!("{NAME}:release-failed:{err}"),
    };
    writeln!(stream, "{released}").expect("write body");
    stream.flush().expect("flush body");
    drop(stream);
    OutgoingBody::finish(body, None).expect("finish body");
}

/// GETs `url` through outgoing wasi:http and returns the status and body.
fn get(url: &str) -> Result<(u16, String), String> {
    let (scheme, rest) = url.split_once("://").ok_or("the url needs a scheme")?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "bad scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "bad authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "bad path")?;
    let body = request.body().map_err(|()| "body taken")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response after block")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "body consumed twice")?;
    let stream = body.stream().map_err(|()| "stream taken twice")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

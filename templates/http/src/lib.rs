//! A wasi:http component: each request goes to [`routes::route`], and its reply goes back as JSON.

mod routes;

wit_bindgen::generate!({
    world: "tempo:host/http",
    path: "wit",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let reply = routes::route(method_name(&request.method()), &path);
        respond(response_out, reply.status, reply.body.to_string().as_bytes());
    }
}

export!(Component);

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
}

/// Sends `body` as a JSON response with `status`.
fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"application/json".to_vec())])
        .expect("a valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("a valid status");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("the stream is taken once");
    // A stream accepts at most 4096 bytes per blocking write.
    for chunk in body.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write the body");
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish the body");
}

//! A wasi:http component: answers every request with `Hello from tempo` and the path it asked for.
//!
//! Build and serve it with `cargo tempo build --release` and `cargo tempo run <the .bin>`.

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct HelloHttp;

wasip2::http::proxy::export!(HelloHttp);

impl wasip2::exports::http::incoming_handler::Guest for HelloHttp {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let headers = Fields::from_list(&[(
            "content-type".to_owned(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));

        let mut stream = body.write().expect("the stream is taken once");
        let greeting = format!("Hello from tempo! You asked for {path}\n");
        stream.write_all(greeting.as_bytes()).expect("write the body");
        stream.flush().expect("flush the body");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish the body");
    }
}

//! HTTP: a handler is an async function from a [`Request`] to anything that is
//! [`IntoResponse`]; [`serve!`](crate::serve) exports it as the component's
//! `wasi:http/incoming-handler`. A [`Router`] dispatches on method and path, with path
//! parameters, and answers 404 and 405 itself.
//!
//! ```no_run
//! use tempo_sdk::http::{Json, Request, RequestExt as _, Router};
//!
//! tempo_sdk::serve!(Router::new().get("/hello/{name}", hello));
//!
//! async fn hello(request: Request) -> Json<serde_json::Value> {
//!     let name = request.param("name").unwrap_or("world");
//!     Json(serde_json::json!({ "greeting": format!("Hello, {name}!") }))
//! }
//! ```
//!
//! Bodies stream both ways ([`Body::from_stream`], [`BodyExt`]); outgoing requests are built with
//! [`request`] (or [`get`]) and go through [`send`], which carries the current span's trace
//! context.
//!
//! Built on [wstd](https://docs.rs/wstd): its [`Request`], [`Response`] and [`Body`] are the
//! `http` crate's types, so what works with `http` works here.

mod response;
mod router;

use std::future::Future;
use std::pin::Pin;

pub use response::{Error, IntoResponse, Json};
pub use router::Router;
pub use wstd::http::BodyExt;
pub use wstd::http::body::{Body, Bytes};
pub use wstd::http::request::Builder as RequestBuilder;
pub use wstd::http::response::Builder as ResponseBuilder;
pub use wstd::http::{Client, HeaderMap, HeaderValue, Method, StatusCode, Uri};

/// An incoming or outgoing request.
pub type Request = wstd::http::Request<Body>;
/// An incoming or outgoing response.
pub type Response = wstd::http::Response<Body>;

/// A future a handler returns; it need not be `Send`.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Response> + 'a>>;

/// What answers requests: an async function `fn(Request) -> impl IntoResponse`, or a [`Router`].
pub trait Handler {
    /// Answers `request`.
    fn call(&self, request: Request) -> HandlerFuture<'_>;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    fn call(&self, request: Request) -> HandlerFuture<'_> {
        let answer = self(request);
        Box::pin(async move { answer.await.into_response() })
    }
}

/// What a handler reads from a request besides the `http` crate's accessors.
pub trait RequestExt {
    /// The path parameter `name` of the route that matched (`/users/{name}`), percent-decoded.
    fn param(&self, name: &str) -> Option<&str>;

    /// The query parameter `name`, percent-decoded (`+` is a space); the first if repeated.
    fn query_param(&self, name: &str) -> Option<String>;
}

/// Reading a whole body, of a request or of a response. A body that cannot be read, or is not
/// the JSON asked for, is an [`Error`]: the client's fault for a request (400), the upstream's
/// for a response (502).
pub trait ReadBody {
    /// The body as JSON.
    fn json<T: serde::de::DeserializeOwned>(&mut self) -> impl Future<Output = Result<T, Error>>;

    /// The whole body as bytes.
    fn bytes(&mut self) -> impl Future<Output = Result<Vec<u8>, Error>>;

    /// Writes the body to `out` as it arrives, never holding all of it, and returns how many
    /// bytes it had (a blob [`Writer`](crate::blobstore::Writer), a file…).
    fn copy_to(
        &mut self,
        out: &mut impl std::io::Write,
    ) -> impl Future<Output = Result<u64, Error>>;
}

impl<M> ReadBody for M
where
    M: HasBody,
{
    async fn json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, Error> {
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes)
            .map_err(|err| Error::new(M::BAD_BODY, format!("invalid JSON: {err}")))
    }

    async fn bytes(&mut self) -> Result<Vec<u8>, Error> {
        let body = self
            .body()
            .contents()
            .await
            .map_err(|err| Error::new(M::BAD_BODY, format!("cannot read the body: {err}")))?;
        Ok(body.to_vec())
    }

    async fn copy_to(&mut self, out: &mut impl std::io::Write) -> Result<u64, Error> {
        let mut body = std::mem::replace(self.body(), Body::empty()).into_boxed_body();
        let mut copied = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|err| Error::new(M::BAD_BODY, format!("cannot read the body: {err}")))?;
            if let Ok(chunk) = frame.into_data() {
                out.write_all(&chunk)
                    .map_err(|err| Error::internal(format!("cannot write the body: {err}")))?;
                copied += chunk.len() as u64;
            }
        }
        Ok(copied)
    }
}

/// A request or a response: what has a [`Body`].
pub trait HasBody {
    /// The status of an [`Error`] for a body that cannot be read or is not what was asked for.
    const BAD_BODY: StatusCode;

    /// Its body.
    fn body(&mut self) -> &mut Body;
}

impl HasBody for Request {
    const BAD_BODY: StatusCode = StatusCode::BAD_REQUEST;

    fn body(&mut self) -> &mut Body {
        self.body_mut()
    }
}

impl HasBody for Response {
    const BAD_BODY: StatusCode = StatusCode::BAD_GATEWAY;

    fn body(&mut self) -> &mut Body {
        self.body_mut()
    }
}

impl RequestExt for Request {
    fn param(&self, name: &str) -> Option<&str> {
        self.extensions()
            .get::<router::Params>()
            .and_then(|params| params.get(name))
    }

    fn query_param(&self, name: &str) -> Option<String> {
        let query = self.uri().query()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (router::decode(&key.replace('+', " ")) == name)
                .then(|| router::decode(&value.replace('+', " ")))
        })
    }
}

/// A request to send: `request(Method::POST, url).header(…).body(…)`.
pub fn request(method: Method, uri: &str) -> RequestBuilder {
    wstd::http::Request::builder().method(method).uri(uri)
}

/// GETs `uri` with [`send`].
pub async fn get(uri: &str) -> Result<Response, Error> {
    let request = request(Method::GET, uri)
        .body(Body::empty())
        .map_err(|err| Error::bad_request(format!("cannot GET {uri}: {err}")))?;
    send(request).await
}

/// Sends `request` and waits for the response head, with the current span's `traceparent`
/// (unless the request has one), so the server joins the trace.
pub async fn send(mut request: Request) -> Result<Response, Error> {
    if let Some(traceparent) = crate::telemetry::traceparent()
        && !request.headers().contains_key("traceparent")
        && let Ok(value) = HeaderValue::from_str(&traceparent)
    {
        request.headers_mut().insert("traceparent", value);
    }
    Client::new()
        .send(request)
        .await
        .map_err(|err| Error::new(StatusCode::BAD_GATEWAY, err.to_string()))
}

/// Exports `handler` (an expression giving a [`Handler`], evaluated per request) as the
/// component's `wasi:http/incoming-handler`.
///
/// ```no_run
/// tempo_sdk::serve!(hello);
///
/// async fn hello(_: tempo_sdk::http::Request) -> &'static str {
///     "Hello from tempo!\n"
/// }
/// ```
#[macro_export]
macro_rules! serve {
    ($handler:expr) => {
        struct __TempoHttpHandler;

        impl $crate::__private::wasip2::exports::http::incoming_handler::Guest
            for __TempoHttpHandler
        {
            fn handle(
                request: $crate::__private::wasip2::http::types::IncomingRequest,
                response_out: $crate::__private::wasip2::http::types::ResponseOutparam,
            ) {
                $crate::__private::handle_http(request, response_out, &$handler)
            }
        }

        $crate::__private::wasip2::http::proxy::export!(
            __TempoHttpHandler with_types_in $crate::__private::wasip2
        );
    };
}

/// What [`serve!`](crate::serve) expands to.
#[doc(hidden)]
pub fn handle_http(
    request: wstd::__internal::wasip2::http::types::IncomingRequest,
    response_out: wstd::__internal::wasip2::http::types::ResponseOutparam,
    handler: &dyn Handler,
) {
    crate::telemetry::init();
    let responder = wstd::http::server::Responder::new(response_out);
    wstd::runtime::block_on(async move {
        match wstd::http::request::try_from_incoming(request) {
            Ok(request) => {
                let response = handler.call(request).await;
                if let Err(err) = responder.respond(response).await {
                    tracing::warn!("the response was not sent whole: {err}");
                }
            }
            Err(err) => responder.fail(err),
        }
    });
}

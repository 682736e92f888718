//! What a handler may return: [`IntoResponse`], with [`Json`] for JSON bodies and [`Error`] for
//! failures that become error responses.

use std::fmt;

use super::{Body, Response, StatusCode};

/// Anything a handler can answer with.
pub trait IntoResponse {
    /// The response.
    fn into_response(self) -> Response;
}

impl<B: Into<Body>> IntoResponse for wstd::http::Response<B> {
    fn into_response(self) -> Response {
        self.map(Into::into)
    }
}

/// `200 OK` with the text as `text/plain; charset=utf-8`.
impl IntoResponse for String {
    fn into_response(self) -> Response {
        with_type(StatusCode::OK, "text/plain; charset=utf-8", self.into())
    }
}

/// `200 OK` with the text as `text/plain; charset=utf-8`.
impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        self.to_owned().into_response()
    }
}

/// `200 OK` with the bytes as `application/octet-stream`.
impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        with_type(StatusCode::OK, "application/octet-stream", self.into())
    }
}

/// The status with an empty body.
impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self;
        response
    }
}

/// `()` is `204 No Content`.
impl IntoResponse for () {
    fn into_response(self) -> Response {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// Another status for what `T` answers.
impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        *response.status_mut() = self.0;
        response
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(answer) => answer.into_response(),
            Err(error) => error.into_response(),
        }
    }
}

/// A JSON body: as a response, `200 OK` with `application/json` (a value that cannot be written
/// as JSON is a 500).
#[derive(Clone, Debug, PartialEq)]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => with_type(StatusCode::OK, "application/json", bytes.into()),
            Err(err) => {
                Error::internal(format!("cannot write the answer as JSON: {err}")).into_response()
            }
        }
    }
}

/// A failure answered as `{"error": message}` with its status. The SDK's errors convert to it
/// (storage and messaging failures are 500s), so a handler returning `Result<_, Error>` can use
/// `?` on them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    status: StatusCode,
    message: String,
}

impl Error {
    /// An error answered with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// `400 Bad Request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// `404 Not Found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// `500 Internal Server Error`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What it says.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for Error {}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), "{}", self.message);
        }
        let body = serde_json::json!({ "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// A storage or messaging failure: the host's, so a 500.
macro_rules! server_errors {
    ($($error:ty),*) => {$(
        impl From<$error> for Error {
            fn from(error: $error) -> Self {
                Self::internal(error.to_string())
            }
        }
    )*};
}

server_errors!(
    crate::keyvalue::Error,
    crate::blobstore::Error,
    crate::messaging::Error,
    crate::config::Error,
    crate::sql::Error
);

fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        super::HeaderValue::from_static(content_type),
    );
    response
}

//! A small router: routes by method and path pattern, path parameters, 404 and 405.

use std::collections::HashMap;

use super::{
    Error, Handler, HandlerFuture, HeaderValue, IntoResponse, Method, Request, StatusCode,
};

/// Dispatches a request to the route that matches its method and path.
///
/// A pattern is a path whose segments are literal text, a parameter (`{name}`, one segment) or,
/// last, a rest parameter (`{*path}`, the remaining segments, maybe none). Routes are tried in
/// the order they were added. A path that no route matches is a 404; a path some route matches
/// with another method is a 405 with an `Allow` header. `HEAD` is answered by the `GET` route.
///
/// ```no_run
/// use tempo_sdk::http::{Request, RequestExt as _, Router};
///
/// fn routes() -> Router {
///     Router::new()
///         .get("/", |_| async { "the index\n" })
///         .get("/files/{*path}", |request: Request| async move {
///             format!("you asked for {}\n", request.param("path").unwrap_or(""))
///         })
/// }
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

struct Route {
    method: Method,
    pattern: Vec<Segment>,
    handler: Box<dyn Handler>,
}

#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

/// The parameters of the route that matched, kept in the request's extensions.
#[derive(Clone, Debug, Default)]
pub(super) struct Params(HashMap<String, String>);

impl Params {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl Router {
    /// A router with no routes: every request is a 404.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route for `method` and `pattern`.
    ///
    /// # Panics
    /// When `pattern` does not start with `/`, or has a `{*rest}` parameter before its last
    /// segment: a mistake in the component's own code, found at its first request.
    pub fn route(mut self, method: Method, pattern: &str, handler: impl Handler + 'static) -> Self {
        self.routes.push(Route {
            method,
            pattern: parse(pattern),
            handler: Box::new(handler),
        });
        self
    }

    /// A `GET` (and `HEAD`) route.
    pub fn get(self, pattern: &str, handler: impl Handler + 'static) -> Self {
        self.route(Method::GET, pattern, handler)
    }

    /// A `POST` route.
    pub fn post(self, pattern: &str, handler: impl Handler + 'static) -> Self {
        self.route(Method::POST, pattern, handler)
    }

    /// A `PUT` route.
    pub fn put(self, pattern: &str, handler: impl Handler + 'static) -> Self {
        self.route(Method::PUT, pattern, handler)
    }

    /// A `PATCH` route.
    pub fn patch(self, pattern: &str, handler: impl Handler + 'static) -> Self {
        self.route(Method::PATCH, pattern, handler)
    }

    /// A `DELETE` route.
    pub fn delete(self, pattern: &str, handler: impl Handler + 'static) -> Self {
        self.route(Method::DELETE, pattern, handler)
    }
}

impl Handler for Router {
    fn call(&self, mut request: Request) -> HandlerFuture<'_> {
        let path = request.uri().path().to_owned();
        let mut allowed: Vec<&Method> = Vec::new();
        for route in &self.routes {
            let Some(params) = matches(&route.pattern, &path) else {
                continue;
            };
            let method = request.method();
            if route.method == method || (method == Method::HEAD && route.method == Method::GET) {
                request.extensions_mut().insert(params);
                return route.handler.call(request);
            }
            if !allowed.contains(&&route.method) {
                allowed.push(&route.method);
            }
        }
        let response = if allowed.is_empty() {
            Error::not_found(format!("no route for {path}")).into_response()
        } else {
            let allow: Vec<&str> = allowed.iter().map(|method| method.as_str()).collect();
            let mut response = Error::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed on {path}", request.method()),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                response.headers_mut().insert("allow", value);
            }
            response
        };
        Box::pin(async move { response })
    }
}

fn parse(pattern: &str) -> Vec<Segment> {
    let rest = pattern
        .strip_prefix('/')
        .unwrap_or_else(|| panic!("route pattern {pattern:?} must start with `/`"));
    let segments: Vec<Segment> = rest
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_prefix('*') {
                    Some(name) => Segment::Rest(name.to_owned()),
                    None => Segment::Param(name.to_owned()),
                },
                None => Segment::Literal(segment.to_owned()),
            },
        )
        .collect();
    let early_rest = segments
        .iter()
        .rev()
        .skip(1)
        .any(|segment| matches!(segment, Segment::Rest(_)));
    assert!(
        !early_rest,
        "route pattern {pattern:?}: a `{{*rest}}` parameter must be the last segment"
    );
    segments
}

/// The parameters, if `path` matches `pattern`. Empty segments (`//`, a trailing `/`) are
/// ignored, as most routers do.
fn matches(pattern: &[Segment], path: &str) -> Option<Params> {
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    let mut params = HashMap::new();
    for part in pattern {
        match part {
            Segment::Literal(text) => {
                if decode(segments.next()?) != *text {
                    return None;
                }
            }
            Segment::Param(name) => {
                params.insert(name.clone(), decode(segments.next()?));
            }
            Segment::Rest(name) => {
                let rest: Vec<String> = segments.by_ref().map(decode).collect();
                params.insert(name.clone(), rest.join("/"));
            }
        }
    }
    segments.next().is_none().then_some(Params(params))
}

/// Percent-decodes `text`; an escape that is not one, or bytes that are not UTF-8, stay as they
/// were (lossily).
pub(super) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| bytes.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        let mut found: Vec<_> = matches(&parse(pattern), path)?.0.into_iter().collect();
        found.sort();
        Some(found)
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn literals_parameters_and_rest() {
        assert_eq!(params("/", "/"), Some(vec![]));
        assert_eq!(params("/a/b", "/a/b/"), Some(vec![]));
        assert_eq!(params("/a/b", "/a/c"), None);
        assert_eq!(params("/a", "/a/b"), None);
        assert_eq!(
            params("/users/{id}/posts/{post}", "/users/7/posts/hello%20world"),
            Some(vec![pair("id", "7"), pair("post", "hello world")])
        );
        assert_eq!(params("/users/{id}", "/users"), None);
        assert_eq!(
            params("/files/{*path}", "/files/a/b%2Fc"),
            Some(vec![pair("path", "a/b/c")])
        );
        assert_eq!(
            params("/files/{*path}", "/files"),
            Some(vec![pair("path", "")])
        );
    }

    #[test]
    fn decoding_keeps_what_is_not_an_escape() {
        assert_eq!(decode("a%41%zz%4"), "aA%zz%4");
        assert_eq!(decode("%C3%A9"), "é");
        assert_eq!(decode("%FF"), "\u{FFFD}");
    }

    #[test]
    #[should_panic(expected = "must be the last segment")]
    fn rest_must_be_last() {
        parse("/{*rest}/more");
    }
}

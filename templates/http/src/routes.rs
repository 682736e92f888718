//! The routes: plain Rust, tested with `cargo tempo test`.

use serde_json::{Value, json};

/// What a route answers: a status and a JSON body.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    fn new(status: u16, body: Value) -> Self {
        Self { status, body }
    }
}

/// Answers `method path` (the path may carry a query, which is ignored).
pub fn route(method: &str, path: &str) -> Reply {
    let path = path.split('?').next().unwrap_or("/");
    let greeting = path.strip_prefix("/hello/").filter(|name| !name.is_empty() && !name.contains('/'));
    match (method, path, greeting) {
        ("GET", "/", _) => Reply::new(
            200,
            json!({ "service": env!("CARGO_PKG_NAME"), "routes": ["GET /", "GET /hello/{name}"] }),
        ),
        ("GET", _, Some(name)) => Reply::new(200, json!({ "greeting": format!("Hello, {name}!") })),
        (_, "/", _) | (_, _, Some(_)) => {
            Reply::new(405, json!({ "error": "method not allowed", "method": method }))
        }
        _ => Reply::new(404, json!({ "error": "not found", "path": path })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_lists_the_routes() {
        let reply = route("GET", "/");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body["routes"][1], "GET /hello/{name}");
    }

    #[test]
    fn hello_greets_by_name() {
        assert_eq!(
            route("GET", "/hello/Ada?lang=en"),
            Reply::new(200, json!({ "greeting": "Hello, Ada!" }))
        );
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        assert_eq!(route("GET", "/nowhere").status, 404);
        assert_eq!(route("GET", "/hello/").status, 404);
        assert_eq!(route("POST", "/").status, 405);
        assert_eq!(route("DELETE", "/hello/Ada").status, 405);
    }
}

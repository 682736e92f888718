//! A wasi:http component: its routes answer JSON. Add yours to [`routes`].

use serde_json::{Value, json};
use tempo_sdk::http::{Json, Request, RequestExt as _, Router};

tempo_sdk::serve!(routes());

/// Every route; a path no route matches is a 404, another method a 405.
pub fn routes() -> Router {
    Router::new().get("/", index).get("/hello/{name}", hello)
}

async fn index(_: Request) -> Json<Value> {
    Json(json!({ "service": env!("CARGO_PKG_NAME"), "routes": ["GET /", "GET /hello/{name}"] }))
}

/// A span of its own in the request's trace, with a log line in it.
#[tracing::instrument(skip(request))]
async fn hello(request: Request) -> Json<Value> {
    let name = request.param("name").unwrap_or_default();
    tracing::info!("greeting {name}");
    Json(json!({ "greeting": format!("Hello, {name}!") }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempo_sdk::http::{Body, Handler as _, Method, ReadBody as _, StatusCode, request};

    /// What the routes answer to `method path`: the status and the JSON body.
    fn call(method: Method, path: &str) -> (StatusCode, Value) {
        tempo_sdk::block_on(async {
            let request = request(method, path).body(Body::empty()).unwrap();
            let mut response = routes().call(request).await;
            (response.status(), response.json().await.unwrap())
        })
    }

    #[test]
    fn the_root_lists_the_routes() {
        let (status, body) = call(Method::GET, "/");
        assert_eq!(status, 200);
        assert_eq!(body["routes"][1], "GET /hello/{name}");
    }

    #[test]
    fn hello_greets_by_name() {
        let (status, body) = call(Method::GET, "/hello/Ada?lang=en");
        assert_eq!(status, 200);
        assert_eq!(body, json!({ "greeting": "Hello, Ada!" }));
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        assert_eq!(call(Method::GET, "/nowhere").0, 404);
        assert_eq!(call(Method::GET, "/hello/").0, 404);
        assert_eq!(call(Method::POST, "/").0, 405);
        assert_eq!(call(Method::DELETE, "/hello/Ada").0, 405);
    }
}

//! Write WASI components for [tempo](https://github.com/tempo-rs/tempo) in a few lines.
//!
//! ```no_run
//! use tempo_sdk::http::{Json, Request, RequestExt as _, Router};
//!
//! tempo_sdk::serve!(Router::new().get("/hello/{name}", hello));
//!
//! #[tracing::instrument(skip(request))]
//! async fn hello(request: Request) -> Json<serde_json::Value> {
//!     let name = request.param("name").unwrap_or("world");
//!     tempo_sdk::telemetry::metrics::counter("greetings").add(1, &[]);
//!     Json(serde_json::json!({ "greeting": format!("Hello, {name}!") }))
//! }
//! ```
//!
//! - [`http`]: handlers, a [`Router`](http::Router), JSON, streaming bodies, outgoing requests
//!   ([`serve!`] exports the handler);
//! - [`keyvalue`], [`blobstore`], [`sql`], [`messaging`] ([`handle_messages!`] exports a
//!   handler), [`config`]: thin, typed layers over tempo's WIT, with no behaviour of their own;
//! - [`telemetry`]: `tracing` spans and events, `log` records and [`metrics`](telemetry::metrics)
//!   go to the host through wasi:otel, in the trace of the request or message being handled.
//!
//! The crate is for guests: build with `--target wasm32-wasip2` (what `cargo tempo build` does).

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod blobstore;
pub mod config;
pub mod http;
pub mod keyvalue;
pub mod messaging;
pub mod sql;
pub mod telemetry;

#[allow(missing_docs, unsafe_code, unreachable_pub, clippy::all)]
mod bindings;

/// Runs a future to completion: for tests of handlers, and for code outside of one.
pub use wstd::runtime::block_on;

/// Waits `duration` without blocking the component's other tasks.
pub async fn sleep(duration: std::time::Duration) {
    wstd::task::sleep(duration.into()).await;
}

/// The `tracing` crate, for its macros (`info!`, `info_span!`, …). `#[tracing::instrument]`
/// needs `tracing` as a dependency of the component itself.
pub use tracing;

/// What the macros expand to: not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::http::handle_http;
    pub use crate::messaging::handle_message;
    pub use wstd::__internal::wasip2;

    pub use crate::bindings::wasi::messaging::types as messaging_types;

    #[allow(missing_docs, unsafe_code, unreachable_pub, clippy::all)]
    pub mod messaging_handler {
        wit_bindgen::generate!({
            world: "tempo:host/sdk-messaging-handler",
            path: "../wit",
            with: {
                "wasi:messaging/types@0.2.0-draft": crate::bindings::wasi::messaging::types,
            },
            pub_export_macro: true,
            export_macro_name: "export_messaging_handler",
            default_bindings_module: "tempo_sdk::__private::messaging_handler",
        });
    }

    pub use messaging_handler::export_messaging_handler;
    pub use messaging_handler::exports::wasi::messaging::incoming_handler as messaging_export;
}

//! Messaging (`wasi:messaging`): send, request and reply, and a handler for the messages on the
//! subjects a component subscribes to (tempo.toml: `[messaging] subscriptions`).
//!
//! ```no_run
//! use tempo_sdk::messaging::{self, Message};
//!
//! tempo_sdk::handle_messages!(greet);
//!
//! fn greet(message: Message) -> Result<(), messaging::Error> {
//!     let name = message.text();
//!     message.reply(Message::new(format!("Hello, {name}!")))
//! }
//! ```
//!
//! What a component sends carries the trace context of its current span (the `traceparent`
//! metadata), so the handler of the message joins the trace.

use std::time::Duration;

use crate::bindings::wasi::messaging::{producer, request_reply, types};

/// Why sending or handling a message failed.
#[derive(Debug)]
pub enum Error {
    /// No reply came in time.
    Timeout,
    /// The connection to the broker failed.
    Connection(String),
    /// The host refused the operation.
    PermissionDenied(String),
    /// Another failure, as the host or the handler says.
    Other(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("no reply in time"),
            Self::Connection(text) => write!(f, "connection failed: {text}"),
            Self::PermissionDenied(text) => write!(f, "permission denied: {text}"),
            Self::Other(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for Error {}

impl From<types::Error> for Error {
    fn from(error: types::Error) -> Self {
        match error {
            types::Error::Timeout => Self::Timeout,
            types::Error::Connection(text) => Self::Connection(text),
            types::Error::PermissionDenied(text) => Self::PermissionDenied(text),
            types::Error::Other(text) => Self::Other(text),
        }
    }
}

impl From<Error> for types::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Timeout => Self::Timeout,
            Error::Connection(text) => Self::Connection(text),
            Error::PermissionDenied(text) => Self::PermissionDenied(text),
            Error::Other(text) => Self::Other(text),
        }
    }
}

/// A message: one received, or one to send.
pub struct Message {
    message: types::Message,
}

impl Message {
    /// A message carrying `data`.
    pub fn new(data: impl AsRef<[u8]>) -> Self {
        Self {
            message: types::Message::new(data.as_ref()),
        }
    }

    /// A message carrying `value` as JSON, with content type `application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, Error> {
        let bytes = serde_json::to_vec(value).map_err(|err| Error::Other(err.to_string()))?;
        Ok(Self::new(bytes).with_content_type("application/json"))
    }

    /// Sets its content type.
    pub fn with_content_type(self, content_type: &str) -> Self {
        self.message.set_content_type(content_type);
        self
    }

    /// Adds a metadata entry.
    pub fn with_metadata(self, key: &str, value: &str) -> Self {
        self.message.add_metadata(key, value);
        self
    }

    /// Its data.
    pub fn data(&self) -> Vec<u8> {
        self.message.data()
    }

    /// Its data as text (invalid UTF-8 is replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.message.data()).into_owned()
    }

    /// Its data read as JSON.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.message.data()).map_err(|err| Error::Other(err.to_string()))
    }

    /// The subject it came on, for a received message.
    pub fn subject(&self) -> Option<String> {
        self.message.topic()
    }

    /// Its content type, if it has one.
    pub fn content_type(&self) -> Option<String> {
        self.message.content_type()
    }

    /// Its metadata entries.
    pub fn metadata(&self) -> Vec<(String, String)> {
        self.message.metadata().unwrap_or_default()
    }

    /// Sends `reply` to whoever sent this request.
    pub fn reply(&self, reply: Message) -> Result<(), Error> {
        Ok(request_reply::reply(&self.message, reply.traced())?)
    }

    /// The message with the current span's `traceparent`, unless it has one.
    fn traced(self) -> types::Message {
        let has_one = self
            .metadata()
            .iter()
            .any(|(key, _)| key.eq_ignore_ascii_case("traceparent"));
        if !has_one && let Some(traceparent) = crate::telemetry::traceparent() {
            self.message.add_metadata("traceparent", &traceparent);
        }
        self.message
    }
}

/// A connection to a broker: tempo's embedded one or NATS, as tempo is configured.
pub struct Client {
    client: types::Client,
}

impl Client {
    /// Connects to the broker called `name` (tempo has one: `default`).
    pub fn connect(name: &str) -> Result<Self, Error> {
        Ok(Self {
            client: types::Client::connect(name)?,
        })
    }

    /// Sends `message` on `subject`.
    pub fn send(&self, subject: &str, message: Message) -> Result<(), Error> {
        Ok(producer::send(&self.client, subject, message.traced())?)
    }

    /// Sends `message` as a request on `subject` and waits up to `timeout` for `expected`
    /// replies; it returns those that came (an error if none did).
    pub fn request_many(
        &self,
        subject: &str,
        message: Message,
        timeout: Duration,
        expected: u32,
    ) -> Result<Vec<Message>, Error> {
        let options = request_reply::RequestOptions::new();
        options.set_timeout_ms(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX));
        options.set_expected_replies(expected);
        let replies =
            request_reply::request(&self.client, subject, &message.traced(), Some(options))?;
        Ok(replies
            .into_iter()
            .map(|message| Message { message })
            .collect())
    }

    /// Sends `message` as a request on `subject` and returns the first reply within `timeout`.
    pub fn request(
        &self,
        subject: &str,
        message: Message,
        timeout: Duration,
    ) -> Result<Message, Error> {
        self.request_many(subject, message, timeout, 1)?
            .into_iter()
            .next()
            .ok_or(Error::Timeout)
    }
}

/// Sends `message` on `subject` through the `default` broker.
pub fn send(subject: &str, message: Message) -> Result<(), Error> {
    Client::connect("default")?.send(subject, message)
}

/// Sends a request on `subject` through the `default` broker and returns the first reply within
/// `timeout`.
pub fn request(subject: &str, message: Message, timeout: Duration) -> Result<Message, Error> {
    Client::connect("default")?.request(subject, message, timeout)
}

/// Exports `handler` (an expression giving a `Fn(Message) -> Result<(), messaging::Error>`,
/// evaluated per message) as the component's `wasi:messaging/incoming-handler`. An error goes
/// back to tempo, which counts and logs it.
#[macro_export]
macro_rules! handle_messages {
    ($handler:expr) => {
        struct __TempoMessageHandler;

        impl $crate::__private::messaging_export::Guest for __TempoMessageHandler {
            fn handle(
                message: $crate::__private::messaging_types::Message,
            ) -> ::core::result::Result<(), $crate::__private::messaging_types::Error> {
                $crate::__private::handle_message(message, &$handler)
            }
        }

        $crate::__private::export_messaging_handler!(
            __TempoMessageHandler with_types_in $crate::__private::messaging_handler
        );
    };
}

/// What [`handle_messages!`](crate::handle_messages) expands to.
#[doc(hidden)]
pub fn handle_message(
    message: types::Message,
    handler: &dyn Fn(Message) -> Result<(), Error>,
) -> Result<(), types::Error> {
    crate::telemetry::init();
    handler(Message { message }).map_err(Into::into)
}

//! `wasi:messaging` (the proposal's `0.2.0-draft`: types, producer, request-reply and
//! incoming-handler) for tempo, with two backends:
//!
//! - **embedded**: an in-process broker with NATS subject semantics, the default; components in
//!   one tempo process talk to each other with no server;
//! - **nats**: core NATS. Guests' handlers subscribe in a queue group named after the
//!   application, so N tempo processes on any number of machines share the messages. With
//!   [`MessagingConfig::durable`], a JetStream consumer instead: at least once, acknowledged
//!   after the handler, retried, and dead-lettered after the last attempt.
//!
//! On the import side guests send, make requests and reply. As a trigger, the service subscribes
//! to the configured subjects and runs each message through the guest's `incoming-handler` in a
//! fresh instance of the live component, at most [`MessagingConfig::concurrency`] at a time.
//!
//! ```no_run
//! use tempo_messaging::{MessagingConfig, MessagingService};
//!
//! let service = MessagingService::new(MessagingConfig {
//!     subscriptions: vec!["orders.>".into()],
//!     ..MessagingConfig::default()
//! });
//! # let _ = service;
//! ```

mod backend;
mod error;
mod host;
mod instances;
pub mod settings;
mod subject;
mod trigger;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tempo_nats::NatsServer;
use tempo_runtime_core::{AnyTrigger, InterfaceName, LazyBackend, SharedService};

pub use backend::subscription_capacity;
pub use error::MsgError;
pub use host::{ClientHandle, MessageHandle, RequestOptions};
pub use instances::Prepared;
pub use settings::{MessagingArgs, MessagingToml};
pub use subject::check_pattern as check_subject_pattern;

/// The version of `wasi:messaging` tempo implements.
pub const MESSAGING_VERSION: &str = "0.2.0-draft";

/// The largest message accepted by default: 1 MiB, NATS's default `max_payload`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// How many messages are handled at once by default.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// How long shutdown waits for the broker to confirm what guests sent.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for replies when the guest sets no timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where messages travel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MessagingBackend {
    /// Within this process.
    #[default]
    Embedded,
    /// Core NATS on this server, whose connection other services may share. Its subscription
    /// capacity should be at least [`subscription_capacity`] of the configured concurrency
    /// ([`MessagingConfig::from_settings`] asks for it).
    Nats(NatsServer),
}

/// How the service is set up.
#[derive(Clone, Debug)]
pub struct MessagingConfig {
    /// Where messages travel.
    pub backend: MessagingBackend,
    /// The subjects whose messages invoke the guest's handler (NATS wildcards `*` and `>`).
    pub subscriptions: Vec<String>,
    /// The queue group the handlers join; the component's name when `None`.
    pub queue_group: Option<String>,
    /// How many messages are handled at once; more wait their turn.
    pub concurrency: usize,
    /// The largest message a guest may send, in bytes.
    pub max_message_bytes: usize,
    /// How long a request waits for replies when the guest sets no timeout.
    pub request_timeout: Duration,
    /// The subjects (NATS wildcards allowed) guests may send and make requests to, or `None`
    /// for any but `$` subjects, which guests never reach.
    pub allowed_subjects: Option<Vec<String>>,
    /// How many bytes of messages a subscription of the embedded broker holds for its handlers
    /// before new ones are dropped (both brokers also bound it by count: sixteen per `concurrency`,
    /// at least 1024).
    pub max_pending_bytes: usize,
    /// How long, after a shutdown signal, messages being handled may take to finish.
    pub shutdown_grace: Duration,
    /// Durable delivery (JetStream on NATS, queues in memory on the embedded broker), or `None`
    /// for core subscriptions.
    pub durable: Option<DurableConfig>,
    /// How many messages one instance handles in turn (1: a fresh instance per message). One
    /// that trapped or passed its deadline is never used again.
    pub instance_reuse: usize,
}

/// How durable subscriptions deliver: acknowledged after the handler returns `ok`, retried after
/// failures with a delay that doubles, dead-lettered after the last attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableConfig {
    /// Attempts before a message goes to the dead-letter subject.
    pub max_deliver: u32,
    /// Where a message goes after its last failed attempt; `tempo.dead-letter.QUEUE` when `None`.
    pub dead_letter: Option<String>,
    /// The delay before the first retry.
    pub retry_delay: Duration,
}

/// Attempts of a durable message by default.
pub const DEFAULT_MAX_DELIVER: u32 = 5;

impl Default for DurableConfig {
    fn default() -> Self {
        Self {
            max_deliver: DEFAULT_MAX_DELIVER,
            dead_letter: None,
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// How many bytes of messages may wait for the handlers by default: 64 MiB.
pub const DEFAULT_MAX_PENDING_BYTES: usize = 64 << 20;

impl Default for MessagingConfig {
    fn default() -> Self {
        Self {
            backend: MessagingBackend::Embedded,
            subscriptions: Vec::new(),
            queue_group: None,
            concurrency: DEFAULT_CONCURRENCY,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            allowed_subjects: None,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            shutdown_grace: Duration::from_secs(10),
            durable: None,
            instance_reuse: 1,
        }
    }
}

/// What every instance and the trigger share: the configuration and the broker.
pub struct Shared {
    config: MessagingConfig,
    /// The broker, connected on first use.
    broker: LazyBackend<Arc<dyn backend::Broker>>,
}

tempo_runtime_core::service_context!(Shared = "wasi:messaging");

/// Connects the broker `config` names.
async fn open_broker(config: MessagingConfig) -> anyhow::Result<Arc<dyn backend::Broker>> {
    let capacity = backend::subscription_capacity(config.concurrency);
    Ok(match &config.backend {
        MessagingBackend::Embedded => Arc::new(backend::embedded::Embedded::new(
            backend::embedded::Backlog {
                messages: capacity,
                bytes: config.max_pending_bytes,
            },
        )),
        MessagingBackend::Nats(server) => Arc::new(backend::nats::Nats::connect(server).await?),
    })
}

/// The `wasi:messaging` service.
pub struct MessagingService {
    export: InterfaceName,
    shared: Arc<Shared>,
}

impl MessagingService {
    /// A service for `config`; nothing is opened until a component that uses it runs.
    pub fn new(config: MessagingConfig) -> Self {
        Self {
            export: InterfaceName::known(&format!(
                "wasi:messaging/incoming-handler@{MESSAGING_VERSION}"
            )),
            shared: Arc::new(Shared {
                broker: LazyBackend::new({
                    let config = config.clone();
                    move || open_broker(config.clone())
                }),
                config,
            }),
        }
    }

    fn backend_description(&self) -> String {
        match &self.shared.config.backend {
            MessagingBackend::Embedded => "the embedded broker".into(),
            MessagingBackend::Nats(server) => format!("NATS at {}", server.url()),
        }
    }
}

impl SharedService for MessagingService {
    tempo_runtime_core::shared_service! {
        context: Shared, link: host::Bindings::add_to_linker::<_, host::Data>,
        interfaces: ["types", "producer", "request-reply"] @ MESSAGING_VERSION,
    }

    fn open(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { self.shared.broker.get().await.map(drop) })
    }

    /// Writes out what guests sent (their replies above all) before the process exits: NATS
    /// sends are queued, and a queue dropped at exit loses them.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            let Some(broker) = self.shared.broker.get_if_open() else {
                return;
            };
            match tokio::time::timeout(CLOSE_TIMEOUT, broker.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!("messages sent at shutdown may be lost: {err:#}"),
                Err(_) => tracing::warn!(
                    "messages sent at shutdown may be lost: the broker did not confirm them within {CLOSE_TIMEOUT:?}"
                ),
            }
        })
    }

    fn describe(&self) -> String {
        let to = match &self.shared.config.allowed_subjects {
            None => String::new(),
            Some(allowed) => format!(" to {}", allowed.join(", ")),
        };
        format!(
            "send and request{to} through {}",
            self.backend_description()
        )
    }

    fn trigger(self: Arc<Self>) -> Option<Arc<dyn AnyTrigger>> {
        Some(self)
    }
}

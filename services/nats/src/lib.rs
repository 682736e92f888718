//! The NATS server a tempo process talks to, shared by every service on the nats backend
//! (keyvalue, blobstore, messaging): one connection, made on first use, whose reconnects and
//! disconnects are logged once, however many services use it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let nats = tempo_nats::NatsServer::new("nats://127.0.0.1:4222");
//! let client = nats.client().await?;
//! # let _ = client; Ok(()) }
//! ```

mod backend;

pub use backend::{Backend, URL, server_for};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use async_nats::{Client, Event};
use tempo_runtime_core::LazyBackend;

/// How many messages a subscription holds when no service asks for more: 1024.
pub const MIN_SUBSCRIPTION_CAPACITY: usize = 1024;

/// A NATS server (or cluster), connected once and shared. Clones share the connection.
#[derive(Clone)]
pub struct NatsServer {
    url: Arc<str>,
    subscription_capacity: Arc<AtomicUsize>,
    client: Arc<LazyBackend<Client>>,
}

impl NatsServer {
    /// The server at `url`, e.g. `nats://127.0.0.1:4222`; nothing is connected yet.
    pub fn new(url: impl Into<String>) -> Self {
        let url: Arc<str> = url.into().into();
        let subscription_capacity = Arc::new(AtomicUsize::new(MIN_SUBSCRIPTION_CAPACITY));
        let client = LazyBackend::new({
            let (url, capacity) = (url.clone(), subscription_capacity.clone());
            move || connect(url.clone(), capacity.load(Ordering::Relaxed))
        });
        Self {
            url,
            subscription_capacity,
            client: Arc::new(client),
        }
    }

    /// Asks that each subscription hold up to `capacity` messages before NATS drops new ones as
    /// a slow consumer's. The connection takes the largest capacity asked for before it is
    /// made, so services ask when they are set up.
    pub fn require_subscription_capacity(&self, capacity: usize) {
        self.subscription_capacity
            .fetch_max(capacity, Ordering::Relaxed);
    }

    /// How many messages each subscription holds.
    pub fn subscription_capacity(&self) -> usize {
        self.subscription_capacity.load(Ordering::Relaxed)
    }

    /// Whether `other` is a clone of this handle, sharing its one connection.
    pub fn shares_connection_with(&self, other: &NatsServer) -> bool {
        Arc::ptr_eq(&self.client, &other.client)
    }

    /// The server's address, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection, made now if it was not yet. An unreachable server is an error now (and
    /// tried again on the next call); an outage later is retried by the client itself.
    pub async fn client(&self) -> anyhow::Result<Client> {
        self.client.get().await.cloned()
    }
}

impl fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsServer")
            .field("url", &self.url)
            .field("subscription_capacity", &self.subscription_capacity())
            .finish_non_exhaustive()
    }
}

/// Two handles are equal when they name the same server.
impl PartialEq for NatsServer {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Eq for NatsServer {}

async fn connect(url: Arc<str>, subscription_capacity: usize) -> anyhow::Result<Client> {
    let logged_url = url.clone();
    async_nats::ConnectOptions::new()
        .name("tempo")
        .subscription_capacity(subscription_capacity)
        .event_callback(move |event| {
            let url = logged_url.clone();
            async move {
                match event {
                    Event::Disconnected => tracing::warn!("lost NATS at {url}; reconnecting"),
                    Event::Connected => tracing::info!("connected to NATS at {url}"),
                    Event::SlowConsumer(_) => {
                        tracing::warn!("a subscription fell behind; NATS dropped messages");
                    }
                    other => tracing::debug!("NATS: {other}"),
                }
            }
        })
        .connect(&*url)
        .await
        .with_context(|| format!("cannot reach NATS at {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_server_is_named_and_nothing_is_kept() {
        // Port 1 on loopback: nothing listens there.
        let nats = NatsServer::new("nats://127.0.0.1:1");
        let err = nats.client().await.unwrap_err();
        assert_eq!(format!("{err}"), "cannot reach NATS at nats://127.0.0.1:1");
        // Not remembered: the next use tries again.
        assert!(nats.client().await.is_err());
    }

    #[tokio::test]
    async fn clones_share_one_connection_to_a_real_server() {
        let server = tempo_test_fixtures::NatsServer::start();
        let nats = NatsServer::new(server.url.clone());
        let (first, second) = (
            nats.client().await.unwrap(),
            nats.clone().client().await.unwrap(),
        );
        // The server numbers each connection it accepts.
        assert_eq!(
            first.server_info().client_id,
            second.server_info().client_id
        );
        let other = NatsServer::new(server.url.clone()).client().await.unwrap();
        assert_ne!(first.server_info().client_id, other.server_info().client_id);
    }

    #[test]
    fn clones_are_one_server_with_the_largest_capacity_asked_for() {
        let nats = NatsServer::new("nats://a:4222");
        nats.clone().require_subscription_capacity(4096);
        nats.require_subscription_capacity(2048);
        assert_eq!(nats.subscription_capacity(), 4096);
        assert!(nats.shares_connection_with(&nats.clone()));
        let other = NatsServer::new("nats://a:4222");
        assert_eq!(nats, other);
        assert!(!nats.shares_connection_with(&other));
    }
}

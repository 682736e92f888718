//! The NATS server a tempo process talks to, shared by every service on the nats backend
//! (keyvalue, blobstore, messaging): one connection, made on first use, whose reconnects and
//! disconnects are logged once and counted (`tempo.nats.events`), however many services use it;
//! and the replica count every bucket, object store and stream tempo creates gets.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let nats = tempo_nats::NatsServer::new("nats://127.0.0.1:4222");
//! let client = nats.client().await?;
//! # let _ = client; Ok(()) }
//! ```

mod backend;
mod outage;

pub use backend::{Backend, REPLICAS, URL, server_for};
pub use outage::{
    UNAVAILABLE_HINT, call_failed, call_succeeded, jetstream_unavailable, patiently, stream_missing,
};

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use anyhow::{Context as _, anyhow};
use async_nats::{Client, Event, ServerAddr};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use tempo_runtime_core::LazyBackend;

/// How many messages a subscription holds when no service asks for more: 1024.
pub const MIN_SUBSCRIPTION_CAPACITY: usize = 1024;

/// The most replicas JetStream keeps of a stream.
pub const MAX_REPLICAS: usize = 5;

/// A NATS server (or cluster), connected once and shared. Clones share the connection.
#[derive(Clone)]
pub struct NatsServer {
    url: Arc<str>,
    replicas: usize,
    subscription_capacity: Arc<AtomicUsize>,
    client: Arc<LazyBackend<Client>>,
    /// Streams whose replica count differs from [`NatsServer::replicas`], already warned of.
    warned: Arc<Mutex<HashSet<String>>>,
}
tempo_runtime_core::part!(NatsServer);

impl NatsServer {
    /// The server at `url`, e.g. `nats://127.0.0.1:4222`, or several members of a cluster
    /// separated by commas; nothing is connected yet. Streams get one replica.
    pub fn new(url: impl Into<String>) -> Self {
        let url: Arc<str> = url.into().into();
        let subscription_capacity = Arc::new(AtomicUsize::new(MIN_SUBSCRIPTION_CAPACITY));
        let client = LazyBackend::new({
            let (url, capacity) = (url.clone(), subscription_capacity.clone());
            move || connect(url.clone(), capacity.load(Ordering::Relaxed))
        });
        Self {
            url,
            replicas: 1,
            subscription_capacity,
            client: Arc::new(client),
            warned: Arc::default(),
        }
    }

    /// The same server, with `replicas` (1 to [`MAX_REPLICAS`]) for every bucket, object store
    /// and stream tempo creates there.
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.clamp(1, MAX_REPLICAS);
        self
    }

    /// How many replicas what tempo creates gets (`[nats] replicas`).
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// For the banner: `, N replicas` when more than one.
    pub fn replicas_described(&self) -> String {
        if self.replicas > 1 {
            format!(", {} replicas", self.replicas)
        } else {
            String::new()
        }
    }

    /// For an error creating something: ` with N replicas (`[nats] replicas`)` when more than
    /// one was asked for (a server that is no cluster, or a smaller one, refuses), else nothing.
    pub fn replicas_asked(&self) -> String {
        if self.replicas > 1 {
            format!(" with {} replicas ({REPLICAS})", self.replicas)
        } else {
            String::new()
        }
    }

    /// Notes that `what` (a bucket or object store named for people) exists with `found`
    /// replicas: tempo leaves it so, and warns once when that is not what `[nats] replicas`
    /// asks for.
    pub fn keep_replicas(&self, what: &str, found: usize) {
        if found == self.replicas {
            return;
        }
        let first = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(what.to_owned());
        if first {
            tracing::warn!(
                "{what} has {found} replica(s) and {REPLICAS} asks for {}: tempo leaves it as \
                 it is (change it on the server, e.g. `nats stream edit --replicas`)",
                self.replicas
            );
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
            .field("replicas", &self.replicas)
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

/// NATS's connection events, by `event` (`disconnected`, `connected`, `lame_duck`,
/// `slow_consumer`, `server_error`, `client_error`), and JetStream calls the cluster could not
/// answer (`jetstream_unavailable`, see [`call_failed`]).
fn events() -> &'static Counter<u64> {
    static EVENTS: LazyLock<Counter<u64>> = LazyLock::new(|| {
        opentelemetry::global::meter("tempo")
            .u64_counter("tempo.nats.events")
            .with_description(
                "NATS connection events (disconnects, reconnects, lame duck servers), and \
                 JetStream calls the cluster could not answer",
            )
            .build()
    });
    &EVENTS
}

/// The addresses in `url`: one, or several separated by commas.
fn addresses(url: &str) -> anyhow::Result<Vec<ServerAddr>> {
    url.split(',')
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .map(|address| {
            address
                .parse::<ServerAddr>()
                .map_err(|err| anyhow!("`{address}` is not a NATS address: {err}"))
        })
        .collect()
}

async fn connect(url: Arc<str>, subscription_capacity: usize) -> anyhow::Result<Client> {
    let servers = addresses(&url)?;
    let logged_url = url.clone();
    async_nats::ConnectOptions::new()
        .name("tempo")
        .subscription_capacity(subscription_capacity)
        // Reconnects go on for ever, to any member of the cluster: those given, and those its
        // servers announce.
        .max_reconnects(None)
        .event_callback(move |event| {
            let url = logged_url.clone();
            async move {
                let name = match &event {
                    Event::Disconnected => "disconnected",
                    Event::Connected => "connected",
                    Event::LameDuckMode => "lame_duck",
                    Event::SlowConsumer(_) => "slow_consumer",
                    Event::ServerError(_) => "server_error",
                    Event::ClientError(_) => "client_error",
                    Event::Draining | Event::Closed => "closed",
                };
                events().add(1, &[KeyValue::new("event", name)]);
                match event {
                    Event::Disconnected => {
                        outage::DISCONNECTED.store(true, Ordering::Relaxed);
                        tracing::warn!("lost NATS at {url}; reconnecting");
                    }
                    Event::Connected => {
                        outage::DISCONNECTED.store(false, Ordering::Relaxed);
                        tracing::info!("connected to NATS at {url}");
                    }
                    Event::LameDuckMode => {
                        tracing::warn!(
                            "a NATS server at {url} is shutting down; moving to another"
                        );
                    }
                    Event::SlowConsumer(_) => {
                        tracing::warn!("a subscription fell behind; NATS dropped messages");
                    }
                    other => tracing::debug!("NATS: {other}"),
                }
            }
        })
        .connect(servers)
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
    fn a_cluster_is_several_addresses_and_a_bad_one_is_named() {
        let servers = addresses("nats://a:4222, nats://b:4222,").unwrap();
        assert_eq!(servers.len(), 2);
        let err = addresses("nats://a:4222,nats://b:notaport").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`nats://b:notaport` is not a NATS address"),
            "{err}"
        );
        let server = NatsServer::new("nats://a:4222").with_replicas(9);
        assert_eq!(server.replicas(), MAX_REPLICAS);
        assert_eq!(server.replicas_described(), ", 5 replicas");
        assert_eq!(NatsServer::new("nats://a:4222").replicas_asked(), "");
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

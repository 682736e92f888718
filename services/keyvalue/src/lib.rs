//! `wasi:keyvalue` (store, atomics and batch, at `0.2.0-draft` as wasmtime-wasi-keyvalue
//! implements it) for tempo, with two backends:
//!
//! - **embedded**: a redb file under the project's state folder; no setup, and the data survives
//!   reloads and restarts;
//! - **nats**: a NATS JetStream KV bucket per wasi bucket, readable by any NATS client.
//!
//! Guests open the buckets the configuration declares (`default` unless told otherwise; the
//! empty name, which wasmtime's own implementation uses, means `default`).
//!
//! ```no_run
//! use tempo_keyvalue::{KeyValueBackend, KeyValueConfig, KeyValueService};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let config = KeyValueConfig {
//!     backend: KeyValueBackend::Embedded { path: ".tempo/keyvalue.redb".into() },
//!     ..KeyValueConfig::default()
//! };
//! let service = KeyValueService::start(config).await?;
//! # let _ = service; Ok(()) }
//! ```

mod backend;
mod cursor;
mod error;
mod host;
pub mod settings;

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use tempo_nats::NatsServer;
use tempo_runtime_core::{LazyBackend, SharedService};

pub use error::KvError;
pub use host::{BucketHandle, MAX_KEY_BYTES};
pub use settings::{KeyValueArgs, KeyValueToml};

/// The bucket guests get by default, and the one the empty identifier names.
pub const DEFAULT_BUCKET: &str = "default";

/// The largest value accepted by default: 1 MiB, NATS's default message size.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

/// Where the data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyValueBackend {
    /// A redb file at `path`.
    Embedded {
        /// The database file.
        path: PathBuf,
    },
    /// JetStream KV on this NATS server, whose connection other services may share.
    Nats(NatsServer),
}

/// How the service is set up.
#[derive(Clone, Debug)]
pub struct KeyValueConfig {
    /// Where the data lives.
    pub backend: KeyValueBackend,
    /// The buckets guests may open.
    pub buckets: Vec<String>,
    /// The largest value a guest may store, in bytes.
    pub max_value_bytes: usize,
}

impl Default for KeyValueConfig {
    fn default() -> Self {
        Self {
            backend: KeyValueBackend::Embedded {
                path: PathBuf::from(".tempo").join("keyvalue.redb"),
            },
            buckets: vec![DEFAULT_BUCKET.to_owned()],
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// What guests are allowed, shared by every instance.
#[derive(Debug)]
pub(crate) struct KvLimits {
    buckets: Vec<String>,
    max_value_bytes: usize,
}

impl KvLimits {
    /// The declared bucket a guest's identifier names, if any.
    fn resolve_bucket(&self, identifier: &str) -> Option<String> {
        let name = if identifier.is_empty() {
            DEFAULT_BUCKET
        } else {
            identifier
        };
        self.buckets.iter().find(|bucket| *bucket == name).cloned()
    }
}

/// The `wasi:keyvalue` service.
pub struct KeyValueService {
    shared: Arc<Shared>,
}

/// What every instance shares: the configuration and the backend, opened on first need.
pub struct Shared {
    config: KeyValueConfig,
    limits: KvLimits,
    /// Undeclared buckets guests asked for, explained in the log once each.
    hinted: tempo_runtime_core::OnceSet,
    /// The backend: the file created, or NATS connected and its buckets made.
    store: LazyBackend<Arc<dyn backend::Store>>,
    /// The `list-keys` cursors handed out.
    cursors: cursor::Cursors,
}

tempo_runtime_core::service_context!(Shared = "wasi:keyvalue");

/// Opens the backend `config` names.
async fn open_store(config: KeyValueConfig) -> anyhow::Result<Arc<dyn backend::Store>> {
    Ok(match &config.backend {
        KeyValueBackend::Embedded { path } => Arc::new(backend::embedded::Embedded::open(path)?),
        KeyValueBackend::Nats(server) => Arc::new(
            backend::nats::Nats::connect(server, &config.buckets, config.max_value_bytes).await?,
        ),
    })
}

impl KeyValueService {
    /// A service for `config`; nothing is opened until a component that imports it runs (see
    /// [`SharedService::open`]).
    pub fn new(config: KeyValueConfig) -> anyhow::Result<Self> {
        for bucket in &config.buckets {
            tempo_runtime_core::names::check_store_name("bucket", bucket)
                .map_err(anyhow::Error::msg)?;
        }
        let limits = KvLimits {
            buckets: config.buckets.clone(),
            max_value_bytes: config.max_value_bytes,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                store: LazyBackend::new({
                    let config = config.clone();
                    move || open_store(config.clone())
                }),
                config,
                limits,
                hinted: tempo_runtime_core::OnceSet::default(),
                cursors: cursor::Cursors::default(),
            }),
        })
    }

    /// A service for `config` with its backend opened now.
    pub async fn start(config: KeyValueConfig) -> anyhow::Result<Self> {
        let service = Self::new(config)?;
        service.shared.store.get().await?;
        Ok(service)
    }
}

impl SharedService for KeyValueService {
    tempo_runtime_core::shared_service! {
        context: Shared, link: host::Bindings::add_to_linker::<_, host::Data>,
        interfaces: ["store", "atomics", "batch"] @ "0.2.0-draft",
    }

    fn describe(&self) -> String {
        let shared = &self.shared;
        let backend = match &shared.config.backend {
            KeyValueBackend::Embedded { path } => format!("embedded, in {}", path.display()),
            KeyValueBackend::Nats(server) => format!(
                "NATS JetStream KV at {}{}",
                server.url(),
                server.replicas_described()
            ),
        };
        format!("{backend}; buckets {}", shared.limits.buckets.join(", "))
    }

    fn open(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { self.shared.store.get().await.map(drop) })
    }
}
